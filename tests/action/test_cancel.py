"""The runner cancelling a job: SIGTERM to the action's container stops the wait like Ctrl+C does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from testing.action_runs import ENTRYPOINT, SHA
from testing.fake_k8s import Scenario
from testing.fake_k8s.cluster import FakeCluster
from testing.github_files import parse_output_file


def test_sigterm_deletes_the_running_job_writes_every_output_and_frees_the_lock(
    two_stage_workspace: Path, fake_cluster: FakeCluster, tmp_path: Path
) -> None:
    fake_cluster.script("Job", {"app.kubernetes.io/name": "train"}, Scenario(behavior="hang"))
    output, step_summary = tmp_path / "output", tmp_path / "summary"
    output.touch()
    step_summary.touch()
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(step_summary),
        "GITHUB_WORKSPACE": str(two_stage_workspace),
        "GITHUB_SHA": SHA,
        "GITHUB_REPOSITORY": "owner/repo",
        "GITHUB_RUN_ID": "4242",
        "INPUT_KUBECONFIG": Path(fake_cluster.kubeconfig_path).read_text(),
        "INPUT_SECRETS": "db-credentials: DB_PASSWORD, TLS_KEY",
        "DB_PASSWORD": "not-a-real-password",
        "TLS_KEY": "not-a-real-key",
        "PYTHONFAULTHANDLER": "1",  # SIGABRT below prints every thread's stack if the stop never comes
    }
    process = subprocess.Popen(
        [sys.executable, str(ENTRYPOINT)],
        env=environ,
        cwd=two_stage_workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not fake_cluster.list("Job", "two-stage") and process.poll() is None:
            assert time.monotonic() < deadline, "the Job never started"
            time.sleep(0.1)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGTERM)
        try:
            stdout, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            stdout, stderr = process.communicate()
            threads = f"its threads:\n{stderr}\n{stdout}"
            raise AssertionError(f"still running 60 s after SIGTERM; {threads}") from None
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 130, stdout
    assert "received SIGTERM: stopping the wait" in stdout
    outputs = parse_output_file(output.read_text())
    assert outputs["status"] == "cancelled"
    assert fake_cluster.list("Job", "two-stage") == []  # the running Job was deleted, not left behind
    lease = fake_cluster.get("Lease", "bodywork-two-stage", "two-stage")
    assert lease is not None and not lease["spec"].get("holderIdentity")  # freed at once
    assert "cancelled" in step_summary.read_text()
