"""Image tests: the unmodified Dockerfile built on the test engine and run as GitHub's runner runs it.

The engine (Debian's dockerd) is started for the session and stopped after it, like PostgreSQL; a base
image that can't be pulled is a stand-in built from Debian packages (testing/images.py). Without an
engine, or with an image that can't be built, these tests skip with the exact reason, and fail the run
when CI=true.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.fake_k8s.fixtures import fake_cluster, fake_cluster_https  # noqa: F401
from testing.image import Build, RunnerDirs, build_image, checkout
from testing.images import Engine, EngineUnavailable, ImageBuildFailed, ensure_engine, required


def unavailable(reason: str) -> None:
    if required():
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    try:
        holder = ensure_engine()
        running = holder.__enter__()
    except EngineUnavailable as exc:
        unavailable(f"no container engine: {exc}")
    try:
        yield running
    finally:
        # Images a rebuild left untagged would pile up in ~/.cache run after run.
        running.docker("image", "prune", "--force", check=False)
        holder.__exit__(None, None, None)


@pytest.fixture(scope="session")
def built(engine: Engine) -> Build:
    try:
        return build_image(engine)
    except (ImageBuildFailed, RuntimeError) as exc:
        unavailable(f"the action's image could not be built: {exc}")
        raise


@pytest.fixture(scope="session")
def image(built: Build) -> str:
    return built.tag


@pytest.fixture
def dirs(tmp_path: Path) -> RunnerDirs:
    return RunnerDirs(tmp_path / "runner")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return checkout(tmp_path / "workspace")
