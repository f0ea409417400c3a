"""Ctrl+C (SIGINT) during a local run stops every process it started: services and running batch stages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from testing.local_runs import Project, free_port, is_gone, read_records

REPO_ROOT = Path(__file__).resolve().parents[2]

# Runs in a child interpreter, so SIGINT reaches run_local's own handler as it would from a terminal.
RUNNER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from bodywork_action.local.runner import run_local
    from testing.local_runs import batch, build_pipeline, service

    root, port = Path(sys.argv[1]), int(sys.argv[2])
    serve = service("serve", "serve.py", port=port)
    pipeline = build_pipeline("serve >> prepare", serve, batch("prepare", "hang.py", limit_seconds=0))
    result = run_local(pipeline, root / "bodywork.yaml", reuse_env=True, grace_seconds=2.0)
    statuses = [result.status, result.stage("serve").status, result.stage("prepare").status]
    print("RESULT", *(status.value for status in statuses))
    """
)


def test_ctrl_c_stops_the_service_and_the_running_batch_stage(project: Project) -> None:
    environ = {**project.environ, "PYTHONPATH": str(REPO_ROOT)}
    with subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(project.root), str(free_port())],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as runner:
        assert runner.stdout is not None
        seen: list[str] = []
        for line in runner.stdout:  # watch the run's output until the batch stage is hanging
            seen.append(line)
            if "prepare | hanging" in line:
                break
        runner.send_signal(signal.SIGINT)
        rest = runner.stdout.read()
        code = runner.wait(timeout=60)

    output = "".join(seen) + rest
    assert code == 0, output
    assert "RESULT cancelled succeeded cancelled" in output
    (serve,) = read_records(project.out_dir, "serve")
    (prepare,) = read_records(project.out_dir, "prepare")
    for pid in (serve["pid"], prepare["pid"], prepare["child_pid"]):
        assert is_gone(pid), f"pid {pid} survived Ctrl+C"
    assert os.path.exists(project.state_dir / "runs")
