"""A bad configuration stops mlflow_server.py with a clear, masked message and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys

import pytest

from testing.mlflow_servers import SERVER_SCRIPT, clean_env, free_port

PASSWORD = "bad-config-pw-93e"


def run_script(tmp_path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SERVER_SCRIPT), "--host", "127.0.0.1", "--port", str(free_port())],
        env=clean_env(**env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MLFLOW_BACKEND_STORE_URI": f"oracle://mlflow:{PASSWORD}@db:1521/mlflow"},
            "unknown scheme 'oracle' (use one of: sqlite, postgresql, mysql, mssql, file)",
        ),
        (
            {"MLFLOW_BACKEND_STORE_URI": f"mysql://mlflow:{PASSWORD}@db/mlflow"},
            "needs a mysql driver: pip install PyMySQL",
        ),
        (
            {"MLFLOW_BACKEND_STORE_URI": f"postgresql+pg8000://mlflow:{PASSWORD}@db/mlflow"},
            "uses driver 'pg8000', which is not installed: pip install pg8000",
        ),
        ({"MLFLOW_DEFAULT_ARTIFACT_ROOT": "nfs://server/share"}, "unknown scheme 'nfs'"),
        ({"MLFLOW_WORKERS": "lots"}, "MLFLOW_WORKERS='lots' must be a whole number"),
    ],
)
def test_config_errors_exit_2_before_starting_mlflow(tmp_path, env, message):
    result = run_script(tmp_path, **env)
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "ERROR mlflow_server: cannot start the MLflow server:" in output
    assert message in output
    assert PASSWORD not in output
    assert "Traceback" not in output
    assert not (tmp_path / "mlflow.db").exists()


def test_unreachable_database_exits_2_with_the_password_masked(tmp_path):
    uri = f"postgresql://mlflow:{PASSWORD}@127.0.0.1:{free_port()}/mlflow"
    result = run_script(tmp_path, MLFLOW_BACKEND_STORE_URI=uri, MLFLOW_DB_WAIT_SECONDS="1")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "is unreachable at 127.0.0.1" in output
    assert "postgresql+psycopg2://mlflow:***@127.0.0.1" in output
    assert PASSWORD not in output


@pytest.mark.slow
def test_mlflow_own_backend_failure_exits_non_zero(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database folder should be")
    result = run_script(tmp_path, MLFLOW_BACKEND_STORE_URI=f"sqlite:///{blocker}/mlflow.db")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Error initializing backend store" in output
