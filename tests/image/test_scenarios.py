"""The built image run as GitHub's runner runs a container action, against the fake API server.

validate (clean and invalid, with annotations), a deploy of the MLflow example with secrets (outputs and
summary read back from the mounted file-command files; no secret byte anywhere), a failing stage, and
delete. The fake listens on the host's loopback; the container shares the host's network.
"""

from __future__ import annotations

import json
from pathlib import Path

from testing.action_runs import MLFLOW_SECRET_ENV, MLFLOW_SECRETS_INPUT, OUTPUT_NAMES, TWO_STAGE_YAML
from testing.fake_k8s import Scenario
from testing.fake_k8s.cluster import FakeCluster
from testing.image import REPO_ROOT, ContainerRun, RunnerDirs, checkout, run_container_action
from testing.images import Engine

MLFLOW_URL = "http://server.bodywork-mlflow.svc.cluster.local:5000"
NAME_LABEL = "app.kubernetes.io/name"


def kubeconfig(fake: FakeCluster) -> str:
    return Path(fake.kubeconfig_path).read_text()


def every_byte(run: ContainerRun, dirs: RunnerDirs) -> bytes:
    """Streams, and every file under the runner's temp (file commands, home, workflow) after the step."""
    chunks = [run.stdout.encode(), run.stderr.encode()]
    chunks += [path.read_bytes() for path in sorted(dirs.temp.rglob("*")) if path.is_file()]
    return b"\n".join(chunks)


def test_validate_a_clean_pipeline(engine: Engine, image: str, workspace: Path, dirs: RunnerDirs) -> None:
    run = run_container_action(engine, image, workspace, dirs, {"command": "validate"})

    assert run.returncode == 0, run.stdout + run.stderr
    assert run.outputs["status"] == "valid"
    assert set(run.outputs) == set(OUTPUT_NAMES)
    assert run.annotations() == []


def test_validate_an_invalid_pipeline_annotates_each_line(
    engine: Engine, image: str, tmp_path: Path, dirs: RunnerDirs
) -> None:
    broken = TWO_STAGE_YAML.replace("DAG: train >> serve", "DAG: train >> nowhere").replace(
        "cpu_request: 0.25", "cpu_request: lots", 1
    )
    workspace = checkout(tmp_path / "ws", {"bodywork.yaml": broken, "train.py": "", "serve.py": ""})

    run = run_container_action(engine, image, workspace, dirs, {"command": "validate"})

    assert run.returncode == 2, run.stdout + run.stderr
    lines = broken.splitlines()
    dag_line = next(i for i, line in enumerate(lines, 1) if "DAG:" in line)
    cpu_line = next(i for i, line in enumerate(lines, 1) if "cpu_request" in line)
    errors = run.annotations()
    dag_prefix, cpu_prefix = (f"::error file=bodywork.yaml,line={n}," for n in (dag_line, cpu_line))
    assert any(a.startswith(dag_prefix) and "nowhere" in a for a in errors)
    assert any(a.startswith(cpu_prefix) for a in errors)
    assert run.outputs["status"] == "invalid"
    assert "Traceback" not in run.stderr


def test_deploy_the_mlflow_example_with_secrets(
    engine: Engine, image: str, workspace: Path, dirs: RunnerDirs, fake_cluster: FakeCluster
) -> None:
    inputs = {"kubeconfig": kubeconfig(fake_cluster), "secrets": MLFLOW_SECRETS_INPUT}

    run = run_container_action(engine, image, workspace, dirs, inputs, MLFLOW_SECRET_ENV)

    assert run.returncode == 0, run.stdout + run.stderr
    outputs = run.outputs
    assert set(outputs) == set(OUTPUT_NAMES)
    assert outputs["status"] == "succeeded"
    assert outputs["namespace"] == "bodywork-mlflow"
    assert outputs["mlflow-url"] == outputs["service-url"] == MLFLOW_URL
    assert [(s["stage"], s["status"]) for s in json.loads(outputs["stages"])] == [("server", "succeeded")]
    assert "Bodywork deployment of `bodywork-mlflow` succeeded" in run.summary
    assert "https://github.com/owner/repo/commit/" in run.summary
    # Both secrets reached the cluster with the values from the step's env ...
    secret = fake_cluster.get("Secret", "mlflow-config", "bodywork-mlflow")
    assert secret is not None
    # ... every value was masked before anything was printed, and none is in any byte left behind.
    for value in MLFLOW_SECRET_ENV.values():
        assert f"::add-mask::{value}" in run.stdout
    left = every_byte(run, dirs)
    for value in MLFLOW_SECRET_ENV.values():
        unmasked = left.replace(f"::add-mask::{value}".encode(), b"")
        assert value.encode() not in unmasked, f"secret value {value[:4]}… found outside ::add-mask::"
    # The action wrote nothing into the checkout: the same two files, byte for byte.
    assert sorted(p.name for p in workspace.iterdir()) == ["bodywork.yaml", "mlflow_server.py"]
    for path in workspace.iterdir():
        assert path.read_bytes() == (REPO_ROOT / path.name).read_bytes()


def test_a_failing_stage_exits_1_and_the_summary_explains(
    engine: Engine, image: str, tmp_path: Path, dirs: RunnerDirs, fake_cluster: FakeCluster
) -> None:
    workspace = checkout(tmp_path / "ws", {"bodywork.yaml": TWO_STAGE_YAML, "train.py": "", "serve.py": ""})
    fake_cluster.script(
        "Job",
        {NAME_LABEL: "train"},
        Scenario(behavior="fail", logs=["loading features", "ValueError: no rows in table features"]),
    )
    inputs = {"kubeconfig": kubeconfig(fake_cluster), "secrets": "db-credentials: DB_PASSWORD, TLS_KEY"}
    env = {"DB_PASSWORD": "not-a-real-password", "TLS_KEY": "not-a-real-key"}

    run = run_container_action(engine, image, workspace, dirs, inputs, env)

    assert run.returncode == 1, run.stdout + run.stderr
    assert run.outputs["status"] == "failed"
    statuses = {s["stage"]: s["status"] for s in json.loads(run.outputs["stages"])}
    assert statuses == {"train": "failed", "serve": "skipped"}
    assert "ValueError: no rows in table features" in run.summary
    assert [line for line in run.annotations() if "bodywork deploy failed" in line]
    assert fake_cluster.get("Deployment", "serve", "two-stage") is None


def test_delete_after_a_deploy_removes_the_namespace(
    engine: Engine, image: str, workspace: Path, dirs: RunnerDirs, fake_cluster: FakeCluster
) -> None:
    inputs = {"kubeconfig": kubeconfig(fake_cluster), "secrets": MLFLOW_SECRETS_INPUT}
    deployed = run_container_action(engine, image, workspace, dirs, inputs, MLFLOW_SECRET_ENV)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert fake_cluster.get("Namespace", "bodywork-mlflow", None) is not None

    run = run_container_action(
        engine, image, workspace, dirs, {"command": "delete", "kubeconfig": kubeconfig(fake_cluster)}
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert run.outputs["status"] == "deleted"
    fake_cluster.wait_for(lambda: fake_cluster.get("Namespace", "bodywork-mlflow", None) is None)
