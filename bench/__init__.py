"""
The multistore benchmark harness (``make bench``, ``python -m bench``).

It starts SeaweedFS, two nginx instances (a static file backend and a
reverse proxy) and the multistore daemon on 127.0.0.1, runs the same
workloads direct to a backend, through nginx and through multistore, and
reports rates, latency percentiles, ratios and the issue's targets. See
``docs/performance.md``.
"""
