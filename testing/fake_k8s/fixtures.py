"""pytest fixtures for the fake cluster.

Use from any test directory's conftest.py:

    from testing.fake_k8s.fixtures import fake_cluster, fake_cluster_https  # noqa: F401

Both are function-scoped, start in a few milliseconds, run the simulated controllers with
`time_scale=0.01` (a scripted 1 s takes 10 ms) and fail the test at teardown if the fake itself
raised an internal error.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .cluster import FakeCluster


def _run(https: bool) -> Iterator[FakeCluster]:
    cluster = FakeCluster(https=https, time_scale=0.01, bookmark_interval=0.2)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
    if cluster.internal_errors:
        raise AssertionError(f"the fake cluster hit internal errors: {cluster.internal_errors!r}")


@pytest.fixture
def fake_cluster() -> Iterator[FakeCluster]:
    """A FakeCluster over plain http (the Python client sends its token over http)."""
    yield from _run(https=False)


@pytest.fixture
def fake_cluster_https() -> Iterator[FakeCluster]:
    """A FakeCluster over https with a per-run certificate (needed for kubectl with a token)."""
    yield from _run(https=True)
