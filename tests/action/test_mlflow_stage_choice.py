"""mlflow-url: the action says in its log which stage it chose and why, or why it chose none (a service
that only imports mlflow is a client, not the tracking server), through entrypoint.py and the fake
cluster."""

from __future__ import annotations

from pathlib import Path

from testing.action_runs import MLFLOW_SECRET_ENV, MLFLOW_SECRETS_INPUT, Runner
from testing.fake_k8s.cluster import FakeCluster

SCORER = """\
  scorer:
    executable_module_path: score.py
    requirements:
      - mlflow==3.17.2
      - flask>=3
    cpu_request: 0.25
    memory_request_mb: 256
    service:
      max_startup_time_seconds: 60
      replicas: 1
      port: 8000
      ingress: false
"""


def inputs(fake: FakeCluster) -> dict[str, str]:
    return {"kubeconfig": Path(fake.kubeconfig_path).read_text(), "secrets": MLFLOW_SECRETS_INPUT}


def test_the_tracking_server_is_chosen_over_a_scoring_client_and_the_log_says_why(
    run_action: Runner, workspace: Path, fake_cluster: FakeCluster
) -> None:
    config = workspace / "bodywork.yaml"
    text = config.read_text().replace("DAG: server", "DAG: server, scorer")
    config.write_text(text.replace("logging:", SCORER + "logging:"))
    (workspace / "score.py").write_text("import mlflow\n")

    run = run_action(workspace, inputs(fake_cluster), MLFLOW_SECRET_ENV)

    assert run.returncode == 0, run.stdout + run.stderr
    assert "mlflow-url: stage server, it needs mlflow and runs mlflow_server.py (a tracking server)\n" in (
        run.stdout
    )
    assert run.outputs["mlflow-url"] == "http://server.bodywork-mlflow.svc.cluster.local:5000"


def test_only_a_client_means_no_mlflow_url_and_the_log_says_how_to_choose(
    run_action: Runner, workspace: Path, fake_cluster: FakeCluster
) -> None:
    config = workspace / "bodywork.yaml"
    config.write_text(
        config.read_text().replace(
            "executable_module_path: mlflow_server.py", "executable_module_path: score.py"
        )
    )
    (workspace / "score.py").write_text("import mlflow\n")

    run = run_action(workspace, inputs(fake_cluster), MLFLOW_SECRET_ENV)

    assert run.returncode == 0, run.stdout + run.stderr
    assert (
        "mlflow-url: not set: service stage(s) server need mlflow but none looks like a tracking server: "
        "set mlflow-stage if one is\n"
    ) in run.stdout
    assert run.outputs["mlflow-url"] == "" and run.outputs["service-url"] != ""
