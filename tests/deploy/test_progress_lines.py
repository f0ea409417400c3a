"""What ``bodywork-action deploy`` prints while it runs, against the fake API server: one timestamped
line per change of a stage's phase (scheduled, pulling image, running, ready n/m, attempt k of n), the
smoke test's answer, and with ``--debug`` every API call and decision, never a secret value."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from bodywork_action.cli import main
from testing.action_runs import TWO_STAGE_YAML
from testing.builders import COMMIT, REPOSITORY_URL
from testing.deploy_runs import NAME_LABEL
from testing.fake_k8s import Scenario
from testing.fake_k8s.cluster import FakeCluster

SECRET_ENV = {"DB_PASSWORD": "db-password-canary-0001", "TLS_KEY": "tls-key-canary-0002"}
TIMESTAMP = re.compile(r"^\d\d:\d\d:\d\d ")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text("print('training')\n")
    (tmp_path / "serve.py").write_text("print('serving')\n")
    config = tmp_path / "bodywork.yaml"
    config.write_text(TWO_STAGE_YAML.replace("retries: 0", "retries: 1"))
    return config


def deploy(config: Path, fake: FakeCluster, *options: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    argv = [
        *options,
        "deploy",
        "-f",
        str(config),
        "--kubeconfig",
        str(fake.kubeconfig_path),
        "--repo",
        REPOSITORY_URL,
        "--commit",
        COMMIT,
        "--secret",
        "db-credentials=DB_PASSWORD,TLS_KEY",
        "--smoke-test",
        "serve=/health",
    ]
    code = main(argv, out=out, err=err, environ=SECRET_ENV)
    return code, out.getvalue(), err.getvalue()


def progress_lines(out: str) -> list[str]:
    """The timestamped lines, without their time of day and elapsed time."""
    return [re.sub(r" \[\d+s\]$", "", line[9:]) for line in out.splitlines() if TIMESTAMP.match(line)]


def assert_in_order(lines: list[str], expected: list[str]) -> None:
    """Each expected line is shown (as the start of a line), in this order."""
    positions = []
    for text in expected:
        found = [i for i, line in enumerate(lines) if line.startswith(text)]
        assert found, f"{text!r} not shown; shown: {lines}"
        positions.append(found[0])
    assert positions == sorted(positions), f"out of order: {lines}"


def script_retry_and_rollout(fake: FakeCluster) -> None:
    # The first attempt fails; the second starts while its pods are already watched, so every
    # state it goes through is an event the deploy sees.
    fake.script("Job", {NAME_LABEL: "train"}, Scenario(fail_times=1, start_seconds=10, run_seconds=30))
    fake.script("Deployment", {NAME_LABEL: "serve"}, Scenario(start_seconds=10, ready_seconds=20))
    fake.script_service("two-stage", "serve", (200, "OK"))


def test_a_deploy_shows_each_stage_going_through_its_phases_in_order(
    project: Path, fake_cluster: FakeCluster
) -> None:
    script_retry_and_rollout(fake_cluster)

    code, out, err = deploy(project, fake_cluster)

    assert code == 0, out + err
    lines = progress_lines(out)
    assert_in_order(
        lines,
        [
            "== step 1: train",
            "   train: attempt 1 of 2: failed (exit code 1)",
            "   train: attempt 2 of 2: pending",
            "   train: attempt 2 of 2: scheduled",
            "   train: attempt 2 of 2: pulling image",
            "   train: attempt 2 of 2: running",
            "-- train: succeeded in",
            "== step 2: serve",
            "   serve: ready 1/1",
            "   serve: smoke test GET /health -> 200 in",
            "-- serve: succeeded in",
        ],
    )
    assert len(lines) == len(set(lines)), "a line per change, never the same state twice in a row"
    assert not any(line.startswith("debug:") for line in out.splitlines())
    assert "\x1b[" not in out, "not a terminal: no colour, no cursor movement"


def test_debug_lines_show_every_api_call_and_decision_and_no_secret_value(
    project: Path, fake_cluster: FakeCluster
) -> None:
    script_retry_and_rollout(fake_cluster)

    code, out, err = deploy(project, fake_cluster, "--debug")

    assert code == 0, out + err
    debug = [line.removeprefix("debug: ") for line in progress_lines(out) if line.startswith("debug: ")]
    api = [line for line in debug if line.startswith("API ")]
    assert len(api) == len(fake_cluster.requests.filter()), "one line per request the API server answered"
    assert any(
        re.fullmatch(r"API create POST /api/v1/namespaces/two-stage/secrets 201 \d+ ms", line) for line in api
    )
    assert any(
        re.fullmatch(r"API watch GET /apis/batch/v1/namespaces/two-stage/jobs 200 \d+ ms", line)
        for line in api
    )
    assert "train: retrying, attempt 2 of 2" in debug
    assert "train: verdict succeeded" in debug and "serve: verdict succeeded" in debug
    for value in SECRET_ENV.values():
        assert value not in out + err


def test_a_crash_looping_service_shows_its_back_off_then_the_failure_and_the_rollback(
    project: Path, fake_cluster: FakeCluster
) -> None:
    fake_cluster.script("Deployment", {NAME_LABEL: "serve"}, Scenario(behavior="crashloop"))

    code, out, err = deploy(project, fake_cluster, "--debug")

    assert code == 1, out + err
    assert_in_order(
        progress_lines(out),
        [
            "== step 2: serve",
            "   serve: ready 0/1: backing off (CrashLoopBackOff)",
            "debug: serve: verdict failed (CrashLoopBackOff",
            "-- serve: failed in",
            "debug: serve: rolling back the failed rollout (CrashLoopBackOff)",
            "-- serve: rolled back (the new Deployment was removed (no previous revision existed))",
        ],
    )
