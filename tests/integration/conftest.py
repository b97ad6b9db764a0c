"""
pytest fixtures for the integration tests: real backends and the daemon.

Backends are session-scoped and start on first use (a run that needs only
moto never starts SeaweedFS); each is stopped when the session ends, whatever
the tests did. Daemons come from a factory fixture, per test
(C{multistore_daemon}) or per module (C{module_multistore_daemon}), and are
stopped when their scope ends.

Every test collected below this directory is marked C{integration}, so
C{pytest -m "not integration"} runs only the unit tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.emulators import (
    AzureServer,
    GcsServer,
    emulating,
    start_azurite,
    start_fake_gcs,
)
from tests.integration.servers import (
    DaemonFactory,
    S3Server,
    running,
    start_moto,
    start_rclone,
    start_seaweedfs,
)

_HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    """
    Register the C{integration} marker.

    :param config: the pytest configuration.
    """
    config.addinivalue_line(
        "markers", "integration: needs real servers started on 127.0.0.1"
    )


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """
    Mark every test under this directory C{integration}.

    :param config: the pytest configuration.
    :param items: the collected tests.
    """
    for item in items:
        if _HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """
    A SeaweedFS S3 gateway that verifies SigV4, for the whole session.

    :return: how to reach it.
    """
    with running(start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))) as server:
        yield server


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """
    A moto server (S3, STS, ...; accepts any credentials), for the whole
    session.

    :return: how to reach it.
    """
    with running(start_moto(tmp_path_factory.mktemp("moto"))) as server:
        yield server


@pytest.fixture(scope="session")
def rclone_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """
    C{rclone serve s3} over a directory, verifying SigV4, for the whole
    session.

    :return: how to reach it; L{S3Server.root} is the directory.
    """
    with running(start_rclone(tmp_path_factory.mktemp("rclone"))) as server:
        yield server


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureServer]:
    """
    Azurite's blob service, verifying SharedKey and SAS, for the whole
    session.

    :return: how to reach it.
    """
    with emulating(start_azurite(tmp_path_factory.mktemp("azurite"))) as server:
        yield server


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsServer]:
    """
    fake-gcs-server (JSON and XML APIs, no authentication), for the whole
    session.

    :return: how to reach it.
    """
    with emulating(start_fake_gcs(tmp_path_factory.mktemp("fake-gcs"))) as server:
        yield server


@pytest.fixture
def multistore_daemon(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DaemonFactory]:
    """
    Start multistore daemons for one test: call it as
    C{multistore_daemon(config, *, domains=(), extra_args=(), env=None,
    https=False)}; every daemon started is stopped after the test.

    :return: the factory.
    """
    factory = DaemonFactory(lambda: tmp_path_factory.mktemp("daemon"))
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="module")
def module_multistore_daemon(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DaemonFactory]:
    """
    Like C{multistore_daemon}, but its daemons live until the module's tests
    are done.

    :return: the factory.
    """
    factory = DaemonFactory(lambda: tmp_path_factory.mktemp("daemon"))
    try:
        yield factory
    finally:
        factory.stop_all()
