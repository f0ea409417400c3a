"""Running the local runner on a copy of the test pipeline (tests/local/pipeline) and reading what its
stages recorded.

Every test runs real processes from a copy of ``tests/local/pipeline`` under ``tmp_path``; stages write
what they saw to ``BW_TEST_OUT`` (see ``pipeline/stage_record.py``). Services listen on 127.0.0.1 only and
every run is stopped before its test ends.
"""

from __future__ import annotations

import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bodywork_action.local.runner import run_local
from bodywork_action.model import Pipeline, Stage
from bodywork_action.results import DeploymentResult
from testing import builders

PIPELINE_DIR = Path(__file__).resolve().parents[1] / "tests" / "local" / "pipeline"


def is_gone(pid: int, *, wait_seconds: float = 10.0) -> bool:
    """True once ``pid`` has exited (a zombie counts as exited), watching a pidfd for up to ``wait_seconds``.

    Killing is asynchronous: a SIGKILLed process may still be running for a moment after kill() returns.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(wait_seconds * 1000))
    finally:
        os.close(fd)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def batch(
    name: str,
    module: str,
    *args: str,
    retries: int = 0,
    limit_seconds: int = 60,
    requirements: tuple[str, ...] = (),
    secrets: dict[str, str] | None = None,
) -> Stage:
    """A batch stage of the test pipeline: ``secrets`` maps each variable to its secret."""
    return builders.batch(
        name,
        retries=retries,
        max_seconds=limit_seconds,
        **_stage_options(name, module, args),
        requirements=requirements,
        secrets=[(secret, key) for key, secret in (secrets or {}).items()],
    )


def service(name: str, module: str, *args: str, port: int, startup_seconds: int = 30) -> Stage:
    return builders.service(
        name, port=port, startup_seconds=startup_seconds, **_stage_options(name, module, args)
    )


def _stage_options(name: str, module: str, args: tuple[str, ...]) -> dict[str, Any]:
    """Small requests, and the stage's name as its first argument (stage_record.py records under it)."""
    return {"module": module, "args": (name, *args), "cpu_request": 0.1, "memory_request_mb": 50}


def build_pipeline(dag: str, *stages: Stage, run_on_failure: str | None = None) -> Pipeline:
    return builders.pipeline(
        dag, *stages, name="local-test", docker_image=builders.BODYWORK_IMAGE, run_on_failure=run_on_failure
    )


def standard_pipeline(port: int, **overrides: Stage) -> Pipeline:
    """The shipped shape: prepare >> left,right >> serve (any stage replaceable by name)."""
    stages = {
        "prepare": batch("prepare", "work.py"),
        "left": batch("left", "work.py", "0.5"),
        "right": batch("right", "work.py", "0.5"),
        "serve": service("serve", "serve.py", port=port),
        **overrides,
    }
    return build_pipeline("prepare >> left,right >> serve", *stages.values())


def read_records(out_dir: Path, name: str) -> list[dict[str, Any]]:
    path = out_dir / f"{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def record_of(out_dir: Path, name: str, event: str) -> dict[str, Any]:
    (found,) = [r for r in read_records(out_dir, name) if r.get("event") == event]
    return found


@dataclass
class LocalRun:
    result: DeploymentResult
    output: str


@dataclass
class Project:
    """A copy of the test pipeline, where runs write their state and stages their records."""

    root: Path
    out_dir: Path
    cache_dir: Path
    environ: dict[str, str]

    @property
    def config_file(self) -> Path:
        return self.root / "bodywork.yaml"

    @property
    def state_dir(self) -> Path:
        return self.root / ".bodywork"

    def run(self, pipeline: Pipeline, **options: Any) -> LocalRun:
        """run_local with output captured; services (unless detached) are stopped as soon as all are up."""
        options.setdefault("reuse_env", True)
        stop = threading.Event()
        stop.set()
        out = io.StringIO()
        result = run_local(
            pipeline,
            self.config_file,
            out=out,
            environ=options.pop("environ", self.environ),
            cache_dir=self.cache_dir,
            stop=stop,
            grace_seconds=options.pop("grace_seconds", 5.0),
            **options,
        )
        return LocalRun(result=result, output=out.getvalue())


OnLine = Callable[[str], bool]


REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class CliProcess:
    """``python -m bodywork_action ...`` as a real process (so SIGINT reaches its own handlers), its
    stdout and stderr merged unless ``split`` was asked for."""

    process: subprocess.Popen[str]
    seen: list[str]

    def wait_for(self, text: str) -> str:
        """Read output lines until one holds ``text``; fail with everything read if the output ends first."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} never appeared in the output:\n{''.join(self.seen)}")

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)

    def finish(self, timeout_seconds: float = 120.0) -> tuple[int, str, str]:
        """Exit code, all of stdout (with what ``wait_for`` read) and stderr."""
        out, err = self.process.communicate(timeout=timeout_seconds)
        return self.process.returncode, "".join(self.seen) + out, err or ""


def start_cli(project: Project, *argv: str, split: bool = False) -> CliProcess:
    """Start the command line on ``project`` with ``argv`` (``-f`` is added); ``split`` keeps stderr apart."""
    environ = {**project.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "bodywork_action", *argv, "-f", str(project.config_file)],
        env=environ,
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if split else subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    return CliProcess(process=process, seen=[])


def set_service_port(project: Project, port: int) -> None:
    """Give the test pipeline's ``serve`` stage ``port`` (its file says 8765, which may be taken)."""
    config = project.config_file
    config.write_text(config.read_text().replace("port: 8765", f"port: {port}"))
