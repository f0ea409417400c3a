"""Sentry: every server process reports unhandled errors to SENTRY_DSN, with secrets scrubbed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mlflow_server
from testing.mlflow_servers import SERVER_SCRIPT, clean_env, http

DB_PASSWORD = "sentry-db-pw-51ac"


@pytest.fixture
def boot_dir():
    folder = mlflow_server.write_sentry_boot(SERVER_SCRIPT)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_boot_reports_an_unhandled_error_with_secrets_scrubbed(sentry_receiver, boot_dir):
    uri = f"postgresql://mlflow:{DB_PASSWORD}@db.example:5432/mlflow"
    env = clean_env(PYTHONPATH=boot_dir, SENTRY_DSN=sentry_receiver.dsn, MLFLOW_BACKEND_STORE_URI=uri)
    code = (
        "import os\nuri = os.environ['MLFLOW_BACKEND_STORE_URI']\nraise RuntimeError('cannot reach ' + uri)"
    )
    result = run_python(code, env)
    assert result.returncode == 1
    events = sentry_receiver.events()
    assert len(events) == 1, result.stderr
    exception = events[0]["exception"]["values"][-1]
    assert exception["type"] == "RuntimeError"
    assert exception["mechanism"]["type"] == "excepthook"
    assert "mlflow:***@db.example" in exception["value"]
    assert not any(DB_PASSWORD.encode() in body for body in sentry_receiver.raw)


def test_boot_without_dsn_sends_nothing(sentry_receiver, boot_dir):
    result = run_python("1/0", clean_env(PYTHONPATH=boot_dir))
    assert result.returncode == 1
    assert "ZeroDivisionError" in result.stderr
    assert sentry_receiver.envelopes == []


@pytest.mark.slow
def test_an_unhandled_error_in_a_server_worker_reaches_sentry(sentry_receiver, server_factory):
    server = server_factory(clean_env(SENTRY_DSN=sentry_receiver.dsn), name="sentry")
    server.wait_healthy()
    assert "Sentry error reporting is on in every server process" in server.log()
    assert http("GET", f"{server.url}/api/2.0/mlflow/experiments/get?experiment_id=0")[0] == 200
    assert sentry_receiver.events() == []  # normal traffic sends no events

    status, _ = http(
        "POST",
        f"{server.url}/api/2.0/mlflow/runs/log-metric",
        b"[]",
        {"Content-Type": "application/json"},
    )
    assert status == 500
    deadline = time.monotonic() + 20
    while not sentry_receiver.events() and time.monotonic() < deadline:
        time.sleep(0.1)
    events = sentry_receiver.events()
    assert events, server.log()
    exception = events[0]["exception"]["values"][-1]
    assert exception["type"] == "AttributeError"
    assert exception["mechanism"] == {"type": "flask", "handled": False}
    assert server.stop() == 0
    assert server.leftovers() == []


def test_boot_folder_holds_only_the_generated_sitecustomize(boot_dir):
    files = sorted(p.name for p in Path(boot_dir).iterdir())
    assert files == ["sitecustomize.py"]
    assert str(SERVER_SCRIPT) in Path(boot_dir, "sitecustomize.py").read_text()
