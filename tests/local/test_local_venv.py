"""Per-stage venvs: built from the stage's requirements once, reused from the cache (no pip) after that."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest

from bodywork_action.local.venvs import (
    MARKER_NAME,
    EnvBuildFailed,
    build_env_key,
    build_env_requirements,
    ensure_stage_env,
    read_python_identity,
)
from bodywork_action.results import DeploymentStatus
from testing.local_runs import Project, batch, free_port, read_records, standard_pipeline


def _build_marker_wheel(folder: Path) -> Path:
    """A one-module wheel, so installing a requirement needs no index and no network."""
    files = {
        "bw_marker/__init__.py": b'VERSION = "1.0"\n',
        "bw_marker-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: bw-marker\nVersion: 1.0\n",
        "bw_marker-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("bw_marker-1.0.dist-info/RECORD,,")
    wheel = folder / "bw_marker-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("bw_marker-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


def test_the_second_run_reuses_the_cached_venvs_without_invoking_pip(
    project: Project, tmp_path: Path
) -> None:
    requirement = f"bw-marker @ {_build_marker_wheel(tmp_path).as_uri()}"
    with_marker = {
        name: batch(name, "work.py", requirements=(requirement,)) for name in ("prepare", "left", "right")
    }
    pip_log = tmp_path / "pip.log"  # pip appends to PIP_LOG on every invocation: our witness
    environ = {**project.environ, "PIP_LOG": str(pip_log)}

    first = project.run(standard_pipeline(free_port(), **with_marker), reuse_env=False, environ=environ)

    assert first.result.status is DeploymentStatus.SUCCEEDED, first.output
    assert "building" in first.output
    installed = pip_log.read_bytes()
    assert b"bw-marker" in installed or b"bw_marker" in installed
    prepare = read_records(project.out_dir, "prepare")[0]
    assert Path(prepare["prefix"]).parent == project.cache_dir  # ran inside a cached venv
    assert "bw_marker 1.0 from " + str(project.cache_dir) in first.output
    # Three stages share one requirement set: one environment, built once.
    assert first.output.count("building (1 requirement(s)") == 1

    second = project.run(standard_pipeline(free_port(), **with_marker), reuse_env=False, environ=environ)

    assert second.result.status is DeploymentStatus.SUCCEEDED, second.output
    assert "building" not in second.output
    assert second.output.count("cached (1 requirement(s))") == 3
    assert pip_log.read_bytes() == installed  # pip never ran again


def test_reuse_env_runs_stages_with_the_current_interpreter(project: Project) -> None:
    import sys

    run = project.run(standard_pipeline(free_port()), reuse_env=True)

    assert run.result.status is DeploymentStatus.SUCCEEDED
    assert read_records(project.out_dir, "prepare")[0]["prefix"] == sys.prefix
    assert not project.cache_dir.exists()


def test_a_half_built_environment_is_removed_and_rebuilt(tmp_path: Path) -> None:
    key = build_env_key(read_python_identity(), ())
    half_built = tmp_path / key
    (half_built / "bin").mkdir(parents=True)
    (half_built / "leftover").write_text("from a crashed build")

    env = ensure_stage_env((), cache_dir=tmp_path, log_file=tmp_path / "env.log", progress=lambda _: None)

    assert env.built and env.path == half_built
    assert not (half_built / "leftover").exists()
    assert (half_built / MARKER_NAME).is_file()
    assert env.python.exists()


def test_a_failed_install_leaves_no_environment_behind(tmp_path: Path) -> None:
    lines: list[str] = []
    missing_wheel = (tmp_path / "absent-1.0-py3-none-any.whl").as_uri()

    with pytest.raises(EnvBuildFailed, match="pip install failed"):
        ensure_stage_env(
            (f"absent @ {missing_wheel}",),
            cache_dir=tmp_path / "cache",
            log_file=tmp_path / "env.log",
            progress=lines.append,
        )

    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


def test_the_cache_key_ignores_requirement_order_and_notebooks_add_nbconvert() -> None:
    assert build_env_key("py", ["b", "a"]) == build_env_key("py", ["a", "b", "a"])
    assert build_env_key("py", ["a"]) != build_env_key("py3.12", ["a"])
    assert build_env_requirements(["pandas"], notebook=True) == ("ipykernel", "nbconvert", "pandas")
    assert build_env_requirements([" pandas ", ""], notebook=False) == ("pandas",)


def test_progress_of_an_install_is_shown_with_the_stage_name(project: Project, tmp_path: Path) -> None:
    requirement = f"bw-marker @ {_build_marker_wheel(tmp_path).as_uri()}"
    prepare = batch("prepare", "work.py", requirements=(requirement,))

    run = project.run(standard_pipeline(free_port(), prepare=prepare), reuse_env=False)

    assert "prepare | [env] environment " in run.output
    assert "prepare | [env] Successfully installed bw-marker-1.0" in run.output
