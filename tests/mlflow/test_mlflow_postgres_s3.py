"""The production configuration: PostgreSQL backend store, S3 artifacts (moto) proxied by the server.

The server gets the AWS credentials and the S3 endpoint; the client (the demo) gets neither.
"""

from __future__ import annotations

import time
from pathlib import Path

import boto3
import pytest

from testing.mlflow_servers import clean_env, run_demo

pytestmark = pytest.mark.slow

DB_PASSWORD = "Pg-pw-7c1e9a"
AWS_SECRET = "aws-secret-4d2b8f"
BUCKET = "mlflow-artifacts-test"


@pytest.fixture(scope="module")
def s3(moto_s3):
    client = boto3.client(
        "s3",
        endpoint_url=moto_s3.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key=AWS_SECRET,
    )
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(scope="module")
def server(server_factory, postgres, moto_s3, s3):
    uri = postgres.create_database("mlflow", DB_PASSWORD)
    env = clean_env(
        MLFLOW_BACKEND_STORE_URI=uri,
        MLFLOW_DEFAULT_ARTIFACT_ROOT=f"s3://{BUCKET}/mlflow",
        MLFLOW_S3_ENDPOINT_URL=moto_s3.url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY=AWS_SECRET,
        AWS_DEFAULT_REGION="us-east-1",
    )
    server = server_factory(env, name="pg")
    server.wait_healthy()
    return server


@pytest.fixture(scope="module")
def demo(server):
    client_env = clean_env()
    assert not any(k.startswith("AWS_") or k == "MLFLOW_S3_ENDPOINT_URL" for k in client_env)
    return run_demo(server.url, "iris_pg", env=client_env)


def test_schema_is_created_on_first_start(server, postgres):
    tables = int(postgres.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", db="mlflow"))
    assert tables > 30
    assert postgres.psql("SELECT version_num FROM alembic_version", db="mlflow")
    assert "postgresql+psycopg2://mlflow:***@127.0.0.1" in server.log()


def test_demo_passes_with_a_client_without_aws_credentials(demo):
    assert demo["model_version"] == 1
    assert demo["artifact_uri"].startswith("mlflow-artifacts:/")
    assert demo["production_accuracy"] > 0.9
    # The class names come from classes.txt, downloaded through the server from S3.
    assert set(demo["sample_predictions"]) <= {"setosa", "versicolor", "virginica"}


def test_artifacts_are_objects_in_the_bucket(demo, s3, server):
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="mlflow/").get("Contents", [])]
    assert any(k.endswith(f"{demo['run_id']}/artifacts/classes.txt") for k in keys), keys
    assert any(k.endswith("/MLmodel") for k in keys), keys
    classes = next(k for k in keys if k.endswith("classes.txt"))
    body = s3.get_object(Bucket=BUCKET, Key=classes)["Body"].read().decode()
    assert body.split() == ["setosa", "versicolor", "virginica"]
    assert not (server.workdir / "mlartifacts").exists()


def test_the_registry_lives_in_postgres(demo, postgres):
    assert postgres.psql("SELECT name FROM registered_models", db="mlflow") == "iris_pg"
    assert postgres.psql("SELECT alias FROM registered_model_aliases", db="mlflow") == "production"


def test_no_secret_in_any_log_line_or_command_line(demo, server):
    log = server.log()
    assert "MLflow tracking server on 127.0.0.1" in log
    assert DB_PASSWORD not in log
    assert AWS_SECRET not in log
    for pid in [server.proc.pid, *server.tree]:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        assert DB_PASSWORD.encode() not in cmdline
        assert AWS_SECRET.encode() not in cmdline


def test_sigterm_stops_the_postgres_server_cleanly(demo, server):
    started = time.monotonic()
    assert server.stop() == 0, server.log()
    assert time.monotonic() - started < 20
    assert server.leftovers() == []
    assert DB_PASSWORD not in server.log()
