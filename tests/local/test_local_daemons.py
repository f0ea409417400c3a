"""No process of a local run outlives it: a stage that daemonises (double fork + ``setsid``) is found and
ended in every path, and its port is free afterwards.

Each run happens in a child interpreter, as from a terminal (SIGINT reaches run_local's handler), and is
waited for with a generous bound: a run that hangs fails the test instead of hanging it.
"""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from bodywork_action.local.runner import check_port_free, stop_local
from bodywork_action.local.supervise import read_token
from bodywork_action.model import SecretEnv, Stage
from bodywork_action.results import DeploymentStatus
from bodywork_action.secret_groups import SecretRequest
from testing.local_runs import (
    LocalRun,
    Project,
    batch,
    build_pipeline,
    free_port,
    is_gone,
    read_records,
    service,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
BOUND_SECONDS = 120  # how long a run may take to end before the test calls it hung (runs take ~2 s)

RUNNER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from bodywork_action.local.runner import run_local
    from testing.local_runs import batch, build_pipeline, service

    root, case, port, daemon_port, grace = sys.argv[1:6]
    if case.startswith("batch"):
        code = "1" if case == "batch-fails" else "0"
        stages = [batch("daemon", "daemon.py", daemon_port, "--exit", code), batch("after", "work.py")]
        pipeline = build_pipeline("daemon >> after", *stages)
    else:
        flags = ["--stubborn"] if case == "serve-stubborn" else []
        serve = service("daemon", "daemon.py", daemon_port, "--serve", *flags, port=int(port))
        pipeline = build_pipeline("daemon", serve)
    result = run_local(pipeline, Path(root) / "bodywork.yaml", reuse_env=True, grace_seconds=float(grace))
    print("RESULT", result.status.value, flush=True)
    """
)


@contextmanager
def local_run(
    project: Project, case: str, port: int, daemon_port: int, grace: float
) -> Iterator[subprocess.Popen[str]]:
    environ = {**project.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-c", RUNNER, str(project.root), case, str(port), str(daemon_port), str(grace)]
    with subprocess.Popen(
        command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as run:
        try:
            yield run
        finally:
            if run.poll() is None:  # the test failed half-way: leave nothing behind
                run.kill()
                run.wait()


def read_until(run: subprocess.Popen[str], marker: str) -> str:
    assert run.stdout is not None
    seen: list[str] = []
    for line in run.stdout:
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"the run ended before printing {marker!r}:\n{''.join(seen)}")


def finish(run: subprocess.Popen[str], seen: str = "") -> str:
    try:
        rest, _ = run.communicate(timeout=BOUND_SECONDS)
    except subprocess.TimeoutExpired:
        run.kill()
        rest, _ = run.communicate()
        raise AssertionError(f"the run did not end within {BOUND_SECONDS}s:\n{seen}{rest}") from None
    return seen + rest


def the_daemon(project: Project) -> dict[str, object]:
    (record,) = [r for r in read_records(project.out_dir, "daemon") if r["event"] == "daemon"]
    return record


def assert_nothing_left(project: Project, *ports: int) -> None:
    (start,) = [r for r in read_records(project.out_dir, "daemon") if r["event"] == "start"]
    assert the_daemon(project)["sid"] != start["sid"]  # it really left the stage's session
    for record in read_records(project.out_dir, "daemon"):
        pid = int(record.get("daemon_pid") or record["pid"])
        assert is_gone(pid), f"pid {pid} ({record['event']}) outlived the run"
    for port in ports:
        assert check_port_free(port), f"port {port} is still held"


@pytest.mark.parametrize("case", ["batch-succeeds", "batch-fails"])
def test_a_batch_stage_that_daemonises_ends_with_its_daemon(project: Project, case: str) -> None:
    daemon_port = free_port()

    with local_run(project, case, free_port(), daemon_port, grace=600) as run:
        output = finish(run)

    assert run.returncode == 0, output
    # The stage's pipe closed when its daemon was ended: the next step ran (or the failure was seen).
    expected = "failed" if case == "batch-fails" else "succeeded"
    assert f"RESULT {expected}" in output
    assert ("after done" in output) is (case == "batch-succeeds")
    assert_nothing_left(project, daemon_port)


def test_ctrl_c_ends_a_service_and_the_daemon_it_started(project: Project) -> None:
    port, daemon_port = free_port(), free_port()

    with local_run(project, "serve", port, daemon_port, grace=600) as run:
        seen = read_until(run, "Ctrl+C stops everything")  # serving, the DAG done
        run.send_signal(signal.SIGINT)
        output = finish(run, seen)

    assert run.returncode == 0 and "RESULT succeeded" in output, output
    assert_nothing_left(project, port, daemon_port)


def test_a_second_ctrl_c_kills_at_once_what_ignores_sigterm(project: Project) -> None:
    # The grace period far beyond the bound: only the second Ctrl+C can end this run in time.
    port, daemon_port = free_port(), free_port()

    with local_run(project, "serve-stubborn", port, daemon_port, grace=3600) as run:
        seen = read_until(run, "Ctrl+C stops everything")  # serving, the DAG done
        run.send_signal(signal.SIGINT)
        seen += read_until(run, "ignores SIGTERM")  # the first Ctrl+C was handled, and ignored
        run.send_signal(signal.SIGINT)
        output = finish(run, seen)

    assert run.returncode == 0 and "RESULT" in output, output
    assert_nothing_left(project, port, daemon_port)


def run_detached_daemon(project: Project) -> tuple[int, int, int]:
    """A detached service that daemonised, both up: its port, the daemon's port, the daemon's pid."""
    port, daemon_port = free_port(), free_port()
    serve = service("daemon", "daemon.py", str(daemon_port), "--serve", port=port)
    run = project.run(build_pipeline("daemon", serve), detach=True)
    assert run.result.status is DeploymentStatus.SUCCEEDED, run.output
    daemon_pid = int(the_daemon(project)["daemon_pid"])  # type: ignore[call-overload]
    assert not is_gone(daemon_pid, wait_seconds=0)
    assert not check_port_free(port) and not check_port_free(daemon_port)
    return port, daemon_port, daemon_pid


def test_detach_then_stop_local_ends_the_daemon_too(project: Project) -> None:
    port, daemon_port, _ = run_detached_daemon(project)

    out = io.StringIO()
    assert stop_local(project.root, out=out) == 0, out.getvalue()

    assert "stopped daemon" in out.getvalue()
    assert_nothing_left(project, port, daemon_port)


def test_stop_local_finds_by_token_what_escaped_a_supervisor_killed_from_outside(project: Project) -> None:
    port, daemon_port, daemon_pid = run_detached_daemon(project)
    (entry,) = json.loads((project.state_dir / "services.json").read_text())["services"]
    assert read_token(daemon_pid) == entry["token"]
    os.kill(entry["pid"], signal.SIGKILL)  # the supervisor: its stage and daemon are orphaned
    assert is_gone(entry["pid"])
    assert not check_port_free(port) and not check_port_free(daemon_port)

    assert stop_local(project.root, out=io.StringIO()) == 0

    assert_nothing_left(project, port, daemon_port)


# A value every encoding changes: "/", space, "+", "%", quotes and a backslash.
SECRET = 'tok/3f9a "canary"+value%\\x'
LEAK_FORMS = ("raw", "quote", "quote_plus", "hex", "HEX", "base64", "base64url", "json")


def leaky(stage: Stage) -> Stage:
    return replace(stage, secrets=(SecretEnv(env_var="BW_TEST_SECRET_TOKEN", secret="creds"),))


def assert_redacted(text: str) -> None:
    import base64
    import urllib.parse

    raw = SECRET.encode()
    shown = (
        SECRET,
        urllib.parse.quote(SECRET, safe=""),
        urllib.parse.quote_plus(SECRET),
        raw.hex(),
        raw.hex().upper(),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        json.dumps(SECRET)[1:-1],
    )
    assert len(set(shown)) == len(shown)
    for form, encoded in zip(LEAK_FORMS, shown, strict=True):
        assert encoded not in text, f"the {form} form leaked"
        assert f"leaks BW_TEST_SECRET_TOKEN as {form}: ***" in text  # the line was there, redacted


def run_leaky(project: Project, stage: Stage, **options: object) -> LocalRun:
    run = project.run(
        build_pipeline(stage.name, leaky(stage)),
        environ={**project.environ, "BW_TEST_SECRET_TOKEN": SECRET},
        secrets=[SecretRequest("creds", ("BW_TEST_SECRET_TOKEN",))],
        **options,
    )
    assert run.result.status is DeploymentStatus.SUCCEEDED, run.output
    return run


def assert_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o600, f"{path.name} is {oct(mode)}"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_every_encoding_of_a_secret_is_redacted_on_the_terminal_and_in_the_log(project: Project) -> None:
    run = run_leaky(project, batch("leak", "leak.py"))

    assert "leak leaked everything" in run.output
    assert_redacted(run.output)
    (log,) = (project.state_dir / "runs").glob("*/leak.log")
    assert_redacted(log.read_text())
    assert_private(log)


def test_a_detached_service_log_is_redacted_and_private(project: Project) -> None:
    run_leaky(project, service("leak", "leak.py", "--serve", port=free_port()), detach=True)
    (log,) = (project.state_dir / "runs").glob("*/leak.log")
    assert_private(log)

    assert stop_local(project.root, out=io.StringIO()) == 0  # the supervisor has written every line

    text = log.read_text()
    assert "leak leaked everything" in text
    assert_redacted(text)


def test_an_executed_notebook_is_rewritten_redacted_and_private(tmp_path: Path) -> None:
    # What nbconvert leaves in the run directory: cell output as JSON strings (the secret JSON-escaped).
    from bodywork_action.local.runner import redact_file
    from bodywork_action.redact import Redactor

    executed = tmp_path / "notebook.ipynb"
    outputs = [{"output_type": "stream", "name": "stdout", "text": [f"password: {SECRET}\n", "done\n"]}]
    executed.write_text(json.dumps({"cells": [{"cell_type": "code", "outputs": outputs}]}, indent=1))
    executed.chmod(0o644)

    redact_file(executed, Redactor([SECRET]))

    text = executed.read_text()
    assert SECRET not in json.loads(text)["cells"][0]["outputs"][0]["text"][0]
    assert json.loads(text)["cells"][0]["outputs"][0]["text"] == ["password: ***\n", "done\n"]
    assert stat.S_IMODE(executed.stat().st_mode) == 0o600
    redact_file(tmp_path / "missing.ipynb", Redactor([SECRET]))  # no notebook written: nothing to do
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notebook.ipynb"]
