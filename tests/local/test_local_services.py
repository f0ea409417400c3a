"""Service stages locally: readiness, taken ports (an error before anything starts), fast failures, detach."""

from __future__ import annotations

import io
import json
import socket
import urllib.request
from collections.abc import Iterator

import pytest

from bodywork_action.local.ports import PortInUse
from bodywork_action.local.runner import stop_local
from bodywork_action.results import DeploymentStatus, StageStatus
from testing.local_runs import (
    Project,
    batch,
    build_pipeline,
    free_port,
    is_gone,
    read_records,
    service,
    standard_pipeline,
)


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


def test_a_taken_port_is_a_clear_error_and_nothing_starts(project: Project, taken_port: int) -> None:
    with pytest.raises(PortInUse, match=rf"port {taken_port} \(stage 'serve'\) is already in use") as error:
        project.run(standard_pipeline(taken_port))

    assert "--port serve=PORT" in str(error.value) and "service.port" not in str(error.value)

    assert not project.out_dir.exists()  # not even the first batch stage ran
    assert not (project.state_dir / "runs").exists()


def test_a_service_that_exits_during_startup_fails_fast_with_its_output(project: Project) -> None:
    # A startup limit far beyond the test timeout: only noticing the exit can end this run.
    crashing = service("serve", "serve.py", "--exit-early", port=free_port(), startup_seconds=3600)

    run = project.run(standard_pipeline(free_port(), serve=crashing))

    serve = run.result.stage("serve")
    assert (serve.status, serve.reason) == (StageStatus.FAILED, "ExitedDuringStartup")
    assert "exited with code 3" in serve.message
    assert "exiting before listening" in serve.logs["serve"]


def test_a_smoke_test_path_that_does_not_answer_2xx_fails_the_startup(project: Project) -> None:
    port = free_port()
    pipeline = standard_pipeline(port, serve=service("serve", "serve.py", port=port, startup_seconds=1))

    run = project.run(pipeline, smoke_tests={"serve": "/missing"})

    serve = run.result.stage("serve")
    assert (serve.status, serve.reason) == (StageStatus.FAILED, "StartupTimeout")
    assert "GET /missing answered 404" in serve.message
    assert is_gone(record_of_pid(project, "serve"))


def test_a_smoke_test_path_that_answers_2xx_makes_the_service_ready(project: Project) -> None:
    run = project.run(standard_pipeline(free_port()), smoke_tests={"serve": "/health"})

    assert run.result.status is DeploymentStatus.SUCCEEDED, run.output
    assert "GET /health" in run.output  # the request reached the service's own log


def test_later_steps_run_while_services_keep_serving(project: Project) -> None:
    port = free_port()
    pipeline = build_pipeline(
        "api >> client",
        service("api", "serve.py", port=port),
        batch("client", "work.py"),
    )

    run = project.run(pipeline)

    assert run.result.status is DeploymentStatus.SUCCEEDED, run.output
    assert read_records(project.out_dir, "client")
    assert run.output.index("api is serving") < run.output.index("client done")


def test_detach_leaves_services_serving_until_stop_local(project: Project) -> None:
    port = free_port()

    run = project.run(standard_pipeline(port), detach=True)

    assert run.result.status is DeploymentStatus.SUCCEEDED, run.output
    assert "bodywork-action stop --local" in run.output
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
        assert json.load(response) == {"stage": "serve"}
    recorded = json.loads((project.state_dir / "services.json").read_text())["services"]
    assert [(s["stage"], s["port"]) for s in recorded] == [("serve", port)]

    out = io.StringIO()
    assert stop_local(project.root, out=out) == 0

    assert f"stopped serve (pid {recorded[0]['pid']}" in out.getvalue()
    assert is_gone(recorded[0]["pid"])
    assert not (project.state_dir / "services.json").exists()
    assert stop_local(project.root, out=io.StringIO()) == 0  # nothing left: still fine


def record_of_pid(project: Project, stage: str) -> int:
    (first,) = read_records(project.out_dir, stage)
    return int(first["pid"])
