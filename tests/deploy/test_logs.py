"""`bodywork-action logs` against the fake API server: the real client over HTTP, the real CLI.

Each test deploys (or creates) the pipeline's objects on the fake, scripts what the containers print,
then runs the command as a user would and checks what it printed and its exit code.
"""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bodywork_action import config, render
from bodywork_action.cli import main
from testing.action_runs import TWO_STAGE_YAML
from testing.builders import COMMIT, REPOSITORY_URL, context
from testing.fake_k8s.cluster import FakeCluster
from testing.fake_k8s.controllers import Scenario

NAMESPACE = "two-stage"
PASSWORD = "pw-canary-4f1d9e7a"  # the value of the Secret the stages get: never printed
# The action tests' pipeline, with a retry for `train` and two replicas of `serve`.
PIPELINE_YAML = TWO_STAGE_YAML.replace("retries: 0", "retries: 1").replace("replicas: 1", "replicas: 2")
TRAIN = {render.LABEL_NAME: "train"}  # what the scripts match
SERVE = {render.LABEL_NAME: "serve"}


class Cli:
    """The CLI run in-process on one project, against one fake cluster."""

    def __init__(self, fake: FakeCluster, project: Path) -> None:
        self.fake = fake
        self.file = project / "bodywork.yaml"
        self.environ = {"HOME": str(project), "DB_PASSWORD": PASSWORD, "TLS_KEY": "not-a-real-key"}

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(
            [*argv[:1], "--file", str(self.file), "--kubeconfig", str(self.fake.kubeconfig_path), *argv[1:]],
            out=out,
            err=err,
            environ=self.environ,
        )
        return code, out.getvalue(), err.getvalue()

    def deploy(self) -> None:
        code, out, err = self(
            "deploy",
            "--repo",
            REPOSITORY_URL,
            "--commit",
            COMMIT,
            "--secret",
            "db-credentials=DB_PASSWORD,TLS_KEY",
        )
        assert code == 0, out + err


@pytest.fixture
def cli(fake_cluster: FakeCluster, tmp_path: Path) -> Cli:
    (tmp_path / "bodywork.yaml").write_text(PIPELINE_YAML)
    return Cli(fake_cluster, tmp_path)


def pods(fake: FakeCluster, labels: dict[str, str]) -> list[dict]:
    selector = ",".join(f"{key}={value}" for key, value in labels.items())
    return sorted(fake.list("Pod", NAMESPACE, labels=selector), key=lambda p: p["metadata"]["name"])


def test_a_batch_stage_shows_its_newest_attempt_of_its_newest_job(cli: Cli) -> None:
    cli.fake.script("Job", TRAIN, Scenario(logs=["first deploy"]))
    cli.deploy()
    first = {job["metadata"]["name"] for job in cli.fake.list("Job", NAMESPACE)}
    cli.fake.script(
        "Job", TRAIN, Scenario(fail_times=1, failure_logs=["attempt 1 failed"], logs=["epoch 1", "done"])
    )
    cli.deploy()
    (newest,) = [
        job["metadata"]["name"]
        for job in cli.fake.list("Job", NAMESPACE)
        if job["metadata"]["name"] not in first
    ]

    code, out, err = cli("logs", "train")

    assert code == 0, err
    assert out.splitlines() == ["epoch 1", "done"]
    assert f"train (batch): attempt 2 of 2, pod {newest}-" in err
    assert err.rstrip().endswith(f"of Job {newest}")


def test_a_service_shows_every_pod_each_line_prefixed_with_its_short_name(cli: Cli) -> None:
    cli.fake.script("Deployment", SERVE, Scenario(logs=["listening on 8000", "GET /health 200"]))
    cli.deploy()
    names = [p["metadata"]["name"] for p in pods(cli.fake, SERVE)]
    assert len(names) == 2

    code, out, err = cli("logs", "serve")

    assert code == 0, err
    shorts = [name.rsplit("-", 1)[-1] for name in names]
    assert sorted(out.splitlines()) == sorted(
        f"{short} | {line}" for short in shorts for line in ("listening on 8000", "GET /health 200")
    )
    assert f"serve (service): 2 pod(s) of Deployment serve: {names[0]} ({shorts[0]})" in err


def test_every_stage_without_a_stage_argument_and_no_git_sync_unless_asked(cli: Cli) -> None:
    logs = {"stage": ["stage line"], render.GIT_SYNC_CONTAINER: ["cloned at " + COMMIT[:7]]}
    cli.fake.script("Job", TRAIN, Scenario(logs=logs))
    cli.fake.script("Deployment", SERVE, Scenario(logs=logs))
    cli.deploy()

    code, out, err = cli("logs")
    asked = cli("logs", "train", "--container", "git-sync")

    assert code == 0, err
    assert "== train (batch)" in err and "== serve (service)" in err
    assert err.index("== train") < err.index("== serve")
    assert out.splitlines().count("stage line") == 1 and "cloned at" not in out
    assert asked[0] == 0 and asked[1].splitlines() == ["cloned at " + COMMIT[:7]]


def test_previous_shows_the_restarted_containers_previous_instance(cli: Cli) -> None:
    cli.fake.script("Deployment", SERVE, Scenario(logs=["now"], previous_logs=["Traceback: crashed before"]))
    cli.deploy()
    restarted, steady = pods(cli.fake, SERVE)
    status = restarted["status"]
    for cs in status["containerStatuses"]:
        cs.update(
            restartCount=1, lastState={"terminated": {"exitCode": 1, "startedAt": "2026-01-01T00:00:00Z"}}
        )
    cli.fake.set_status("Pod", restarted["metadata"]["name"], status, NAMESPACE)

    code, out, err = cli("logs", "serve", "--previous")
    batch = cli("logs", "train", "--previous")

    assert code == 0, err
    short = restarted["metadata"]["name"].rsplit("-", 1)[-1]
    assert out.splitlines() == [f"{short} | Traceback: crashed before"]
    assert f"pod {steady['metadata']['name']}: stage: no previous instance, it has not restarted" in err
    assert batch[0] == 0 and batch[1] == ""
    assert "each retry is a new pod" in batch[2]


def test_secret_values_from_the_cluster_are_redacted(cli: Cli) -> None:
    cli.fake.script("Job", TRAIN, Scenario(logs=[f"connecting with password={PASSWORD}", "ok"]))
    cli.fake.script("Deployment", SERVE, Scenario(logs=[f"DB_PASSWORD={PASSWORD}"]))
    cli.deploy()
    cli.environ = {"HOME": cli.environ["HOME"]}  # the value is known only to the cluster's Secret now

    code, out, err = cli("logs")

    assert code == 0, err
    assert PASSWORD not in out + err
    assert "connecting with password=***" in out.splitlines()
    assert out.count("DB_PASSWORD=***") == 2
    assert cli.fake.requests.count(verb="get", resource="secrets", name="db-credentials") >= 1


def test_an_unknown_stage_is_exit_2_with_did_you_mean_before_connecting(cli: Cli) -> None:
    code, out, err = cli("logs", "trian")

    assert code == 2
    assert out == ""
    assert (
        err.strip() == "error: two-stage has no stage 'trian'; did you mean 'train'? (stages: train, serve)"
    )
    assert len(cli.fake.requests.filter()) == 0


def test_nothing_deployed_or_no_pod_yet_is_said_and_exit_0(cli: Cli) -> None:
    before = cli("logs")
    cli.fake.script("Deployment", SERVE, Scenario(behavior="unschedulable"))
    pipeline = config.load_pipeline(cli.file)
    cli.fake.create(render.render_namespace(pipeline, context()))
    cli.fake.create(render.render_deployment(pipeline.stages["serve"], pipeline, context()))
    cli.fake.wait_for(lambda: len(pods(cli.fake, SERVE)) == 2)

    code, out, err = cli("logs")

    assert before[0] == 0 and before[1] == ""
    assert f"namespace {NAMESPACE} does not exist: two-stage is not deployed there, no logs" in before[2]
    assert code == 0 and out == ""
    assert "train (batch): not deployed (no Job), no logs" in err
    assert err.count("stage has not started yet (Pending), no logs") == 2


def test_since_passes_kubectl_seconds_and_keeps_only_newer_lines(cli: Cli) -> None:
    cli.fake.script("Job", TRAIN, Scenario(logs=["an old line"]))
    cli.deploy()
    (pod,) = pods(cli.fake, TRAIN)
    status = pod["status"]
    for cs in status["containerStatuses"]:
        cs["state"]["terminated"]["startedAt"] = "2026-01-01T00:00:00Z"  # long before the last hour
    cli.fake.set_status("Pod", pod["metadata"]["name"], status, NAMESPACE)
    cli.fake.append_log(NAMESPACE, pod["metadata"]["name"], "stage", "a new line")

    code, out, err = cli("logs", "train", "--since", "1h")
    everything = cli("logs", "train")
    bad = cli("logs", "train", "--since", "ten minutes")

    assert code == 0, err
    assert out.splitlines() == ["a new line"]
    assert everything[1].splitlines() == ["an old line", "a new line"]
    assert any("sinceSeconds=3600" in r.query for r in cli.fake.requests.filter(subresource="log"))
    assert bad[0] == 2 and "--since 'ten minutes': expected a duration such as 30s" in bad[2]


def test_follow_streams_lines_as_they_come_and_ends_when_the_pod_ends(cli: Cli) -> None:
    cli.fake.script("Job", TRAIN, Scenario(behavior="hang", logs=["started"]))
    pipeline = config.load_pipeline(cli.file)
    cli.fake.create(render.render_namespace(pipeline, context()))
    cli.fake.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db-credentials", "namespace": NAMESPACE},
            "data": {"DB_PASSWORD": base64.b64encode(PASSWORD.encode()).decode()},
        }
    )
    cli.fake.create(render.render_job(pipeline.stages["train"], pipeline, context()))
    cli.fake.wait_for(lambda: any(_running(p) for p in pods(cli.fake, TRAIN)))
    (pod,) = pods(cli.fake, TRAIN)
    name = pod["metadata"]["name"]
    lines: list[str] = []
    first_line = threading.Event()

    class Out(io.StringIO):
        def write(self, text: str) -> int:
            lines.extend(line for line in text.splitlines() if line)
            first_line.set()
            return len(text)

    result: list[int] = []
    follower = threading.Thread(
        target=lambda: result.append(
            main(
                [
                    "logs",
                    "train",
                    "--follow",
                    "--file",
                    str(cli.file),
                    "--kubeconfig",
                    str(cli.fake.kubeconfig_path),
                ],
                out=Out(),
                err=io.StringIO(),
                environ=cli.environ,
            )
        )
    )
    follower.start()
    assert first_line.wait(30)
    cli.fake.append_log(NAMESPACE, name, "stage", f"step 2 with {PASSWORD}")
    cli.fake.wait_for(lambda: len(lines) == 2)
    status = pod["status"]
    for cs in status["containerStatuses"]:
        cs["state"] = {
            "terminated": {"exitCode": 0, "reason": "Completed", "startedAt": "2026-01-01T00:00:00Z"}
        }
    cli.fake.set_status("Pod", name, status, NAMESPACE)
    follower.join(30)

    assert not follower.is_alive()
    assert result == [0]
    assert lines == ["started", "step 2 with ***"]


def _running(pod: dict) -> bool:
    return any(
        "running" in cs.get("state", {}) for cs in (pod.get("status") or {}).get("containerStatuses") or []
    )


def test_follow_interleaves_a_services_pods_and_ctrl_c_ends_it_with_130(cli: Cli) -> None:
    cli.fake.script("Deployment", SERVE, Scenario(logs=["ready"]))
    cli.deploy()
    names = [p["metadata"]["name"] for p in pods(cli.fake, SERVE)]
    shorts = {name: name.rsplit("-", 1)[-1] for name in names}
    command = [sys.executable, "-m", "bodywork_action", "logs", "serve", "--follow"]
    command += ["--file", str(cli.file), "--kubeconfig", str(cli.fake.kubeconfig_path)]
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": cli.environ["HOME"]}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        seen = {process.stdout.readline().strip(), process.stdout.readline().strip()}
        assert seen == {f"{shorts[name]} | ready" for name in names}
        for name in reversed(names):  # written to the second pod first: printed in that order
            cli.fake.append_log(NAMESPACE, name, "stage", f"request to {shorts[name]}")
            assert process.stdout.readline().strip() == f"{shorts[name]} | request to {shorts[name]}"
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()  # or leaving the block would wait for it forever
            pytest.fail("Ctrl+C did not end `logs --follow` within 30 s")

    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
