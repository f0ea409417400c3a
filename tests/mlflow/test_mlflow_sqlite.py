"""End to end on SQLite and a local artifact folder: the seed's "trivial configuration"."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testing.mlflow_servers import SCORING_SERVICE, clean_env, free_port, http, run_demo

pytestmark = pytest.mark.slow

STAGE_ENV = {"BODYWORK_STAGE": "server", "BODYWORK_NAMESPACE": "bodywork-mlflow"}


@pytest.fixture(scope="module")
def server(server_factory):
    server = server_factory(clean_env(**STAGE_ENV))
    server.wait_healthy()
    return server


@pytest.fixture(scope="module")
def demo(server):
    return run_demo(server.url, "iris_sqlite")


def test_server_runs_mlflow_cli_with_one_worker_and_no_job_runner(server):
    log = server.log()
    assert "backend store sqlite:///mlflow.db" in log
    assert "SENTRY_DSN is not set: error reporting to Sentry is off" in log
    commands = []
    for pid in [server.proc.pid, *sorted(server.tree)]:
        with contextlib.suppress(OSError):
            commands.append(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"))
    assert commands[0][1:4] == [b"-m", b"mlflow", b"server"]  # exec'd: the script's pid is the CLI
    server_processes = [cmd for cmd in commands if b"gunicorn" in cmd]
    assert len(server_processes) == 5  # gunicorn's arbiter and its 4 workers (SQLite in WAL)
    assert b"gthread" in b" ".join(server_processes[0])
    assert not any(b"uvicorn" in cmd for cmd in commands)
    assert not any(b"huey" in b" ".join(cmd) for cmd in commands)
    assert (server.workdir / "mlflow.db").exists()


def test_demo_sweeps_registers_aliases_loads_and_predicts(demo, server):
    assert demo["candidates"] == 8
    assert demo["best"]["f1"] > 0.9
    assert demo["model_version"] == 1
    assert demo["production_accuracy"] == demo["best"]["accuracy"]
    assert set(demo["sample_predictions"]) <= {"setosa", "versicolor", "virginica"}
    assert demo["artifact_uri"].startswith("mlflow-artifacts:/")  # proxied, not a server path
    stored = list((server.workdir / "mlartifacts").rglob("classes.txt"))
    assert len(stored) == 1
    assert stored[0].read_text().split() == ["setosa", "versicolor", "virginica"]

    status, body = http(
        "GET", f"{server.url}/api/2.0/mlflow/registered-models/alias?name=iris_sqlite&alias=production"
    )
    assert status == 200
    assert json.loads(body)["model_version"]["version"] == "1"


def test_in_cluster_host_names_are_allowed_and_others_rejected(server):
    url = f"{server.url}/api/2.0/mlflow/experiments/get?experiment_id=0"
    for host in (
        f"server.bodywork-mlflow.svc.cluster.local:{server.port}",
        "server.bodywork-mlflow.svc.cluster.local",
        f"server:{server.port}",
        f"10.1.2.3:{server.port}",
        f"localhost:{server.port}",
    ):
        assert http("GET", url, headers={"Host": host})[0] == 200, host
    status, body = http("GET", url, headers={"Host": "evil.example.com"})
    assert status == 403
    assert b"Invalid Host header" in body


def test_scoring_service_serves_the_production_model(demo, server, tmp_path):
    port = free_port()
    log_path = tmp_path / "scoring.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(SCORING_SERVICE),
                "--tracking-uri",
                server.url,
                "--model-name",
                "iris_sqlite",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=clean_env(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                status, body = http("GET", f"{url}/health", timeout=2)
                if status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "scoring service did not start"
            time.sleep(0.2)
        assert json.loads(body) == {"status": "ok", "model": "models:/iris_sqlite@production", "version": "1"}

        rows = {"X": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
        status, body = http(
            "POST", f"{url}/api/v1/predict", json.dumps(rows).encode(), {"Content-Type": "application/json"}
        )
        assert status == 200, body
        assert json.loads(body)["predictions"] == [0, 2]  # setosa, virginica

        status, body = http(
            "POST", f"{url}/api/v1/predict", b'{"X": [[1, 2]]}', {"Content-Type": "application/json"}
        )
        assert status == 400
        assert b"4 values" in body
    finally:
        proc.terminate()
        proc.wait(10)


def test_sigterm_stops_every_process_cleanly(server, demo):
    assert server.tree, "the server should have started gunicorn"
    started = time.monotonic()
    returncode = server.stop()
    assert returncode == 0, server.log()
    assert time.monotonic() - started < 20
    assert server.leftovers() == []
    assert "Shutting down" in server.log()
    assert "Traceback" not in server.log()
