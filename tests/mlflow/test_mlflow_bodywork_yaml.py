"""The MLflow deployment's bodywork.yaml: valid (with --check-files) and fit for MLflow 3."""

from __future__ import annotations

from bodywork_action.config import read_config
from testing.mlflow_servers import ROOT


def test_bodywork_yaml_validates_with_check_files():
    outcome = read_config(ROOT / "bodywork.yaml", strict=True, check_files=True)
    assert outcome.problems == ()
    pipeline = outcome.pipeline
    assert pipeline.name == "bodywork-mlflow"
    assert pipeline.secrets_group == "prod"
    assert [stage.name for stage in pipeline.dag_stages] == ["server"]

    server = pipeline.stages["server"]
    assert server.executable_module_path == "mlflow_server.py"
    assert (ROOT / server.executable_module_path).is_file()
    assert server.service.port == 5000
    assert server.service.replicas == 1
    assert server.service.ingress is False
    assert server.service.max_startup_time_seconds >= 180  # pip install + schema + MLflow's DB retries
    assert 0.5 <= server.cpu_request <= 1
    assert server.memory_request_mb >= 512  # one MLflow 3 worker uses ~440 MB

    requirements = set(server.requirements)
    assert "mlflow==3.17.2" in requirements
    for package in ("psycopg2-binary", "boto3", "sentry-sdk", "uvloop"):
        assert any(r.startswith(package) for r in requirements), package
    assert not any(r.startswith("protobuf") for r in requirements)

    secrets = {(s.env_var, s.secret) for s in server.secrets}
    assert secrets == {
        ("MLFLOW_BACKEND_STORE_URI", "mlflow-config"),
        ("MLFLOW_DEFAULT_ARTIFACT_ROOT", "mlflow-config"),
        ("AWS_ACCESS_KEY_ID", "aws-credentials"),
        ("AWS_SECRET_ACCESS_KEY", "aws-credentials"),
        ("AWS_DEFAULT_REGION", "aws-credentials"),
    }
