"""Service ports of a local run: services sharing a port (fine on Kubernetes) are moved to free ports,
``--port STAGE=PORT`` chooses one, and a stage that hard-codes its port is said to when it is moved."""

from __future__ import annotations

import json
import urllib.request

import pytest

from bodywork_action.local.ports import PortInUse
from bodywork_action.results import DeploymentStatus, StageStatus
from testing.local_runs import Project, batch, build_pipeline, free_port, service, set_service_port, start_cli

# Listens on the port its arguments name, whatever BODYWORK_SERVICE_PORT says.
FIXED_PORT_SERVICE = """\
import http.server, sys
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[2])), http.server.BaseHTTPRequestHandler)
print("listening on", sys.argv[2], flush=True)
server.serve_forever()
"""


def test_services_sharing_a_port_are_moved_to_free_ports_and_serve_there(project: Project) -> None:
    port = free_port()
    pipeline = build_pipeline(
        "prepare >> a,b",
        batch("prepare", "work.py"),
        service("a", "serve.py", port=port),
        service("b", "serve.py", port=port),
    )

    run = project.run(pipeline, smoke_tests={"a": "/health", "b": "/health"})

    assert run.result.status is DeploymentStatus.SUCCEEDED, run.output
    assert run.result.stage("a").url == f"http://127.0.0.1:{port}"
    moved_url = run.result.stage("b").url
    moved_port = int(moved_url.rsplit(":", 1)[1])
    assert moved_port != port
    assert (
        "services that share a port (fine on Kubernetes, not on one machine) moved to free ports"
        in run.output
    )
    assert f"  a → http://127.0.0.1:{port}\n" in run.output
    assert f"  b → {moved_url} (wanted {port})\n" in run.output
    # The smoke test passed on the moved port: b itself listened there (it read BODYWORK_SERVICE_PORT).
    listening = [line for line in run.output.splitlines() if "| listening on" in line]
    assert f"b       | listening on ('127.0.0.1', {moved_port})" in listening, listening


def test_port_option_chooses_where_a_service_listens(project: Project) -> None:
    wanted, chosen = free_port(), free_port()
    pipeline = build_pipeline("serve", service("serve", "serve.py", port=wanted))

    run = project.run(pipeline, ports={"serve": chosen}, smoke_tests={"serve": "/health"})

    assert run.result.status is DeploymentStatus.SUCCEEDED, run.output
    assert run.result.stage("serve").url == f"http://127.0.0.1:{chosen}"
    assert "services on the ports --port chose" in run.output
    assert f"serve → http://127.0.0.1:{chosen} (wanted {wanted})" in run.output


def test_two_port_options_with_one_port_are_refused_before_anything_starts(project: Project) -> None:
    port = free_port()
    pipeline = build_pipeline(
        "a,b", service("a", "serve.py", port=free_port()), service("b", "serve.py", port=free_port())
    )

    with pytest.raises(PortInUse, match=f"--port gives stages 'a' and 'b' the same port {port}"):
        project.run(pipeline, ports={"a": port, "b": port})

    assert not project.out_dir.exists()


def test_a_moved_stage_that_hard_codes_its_port_fails_saying_so(project: Project) -> None:
    (project.root / "fixed_port.py").write_text(FIXED_PORT_SERVICE)
    port = free_port()
    pipeline = build_pipeline(
        "a >> b",
        service("a", "serve.py", port=port),
        service("b", "fixed_port.py", str(port), port=port, startup_seconds=5),
    )

    run = project.run(pipeline)

    b = run.result.stage("b")
    assert b.status is StageStatus.FAILED, run.output
    assert f"warning: b's args name port {port}" in run.output
    assert f"it was moved from port {port} to " in b.message
    assert "make this one read BODYWORK_SERVICE_PORT" in b.message


def test_run_local_port_option_from_the_command_line(project: Project) -> None:
    wanted, chosen = free_port(), free_port()
    set_service_port(project, wanted)
    cli = start_cli(project, "run", "--local", "--reuse-env", "--port", f"serve={chosen}")
    cli.wait_for(f"serve → http://127.0.0.1:{chosen} (wanted {wanted})")
    cli.wait_for("serving: ")
    with urllib.request.urlopen(f"http://127.0.0.1:{chosen}/health", timeout=10) as response:
        assert json.load(response) == {"stage": "serve"}

    cli.interrupt()
    code, output, _ = cli.finish()

    assert code == 0, output


@pytest.mark.parametrize(
    ("option", "complaint"),
    [
        ("serve=http", "give STAGE=PORT, a port from 1 to 65535 (e.g. server=5001)"),
        ("serve=70000", "give STAGE=PORT, a port from 1 to 65535 (e.g. server=5001)"),
        ("prepare=5000", "'prepare' is not a service stage of the DAG (services: serve)"),
    ],
)
def test_a_bad_port_option_is_one_clear_error(project: Project, option: str, complaint: str) -> None:
    cli = start_cli(project, "run", "--local", "--reuse-env", "--port", option, split=True)
    code, out, err = cli.finish()

    assert code == 2 and out == ""
    assert err.strip() == f"error: --port {option!r}: {complaint}"
    assert not project.out_dir.exists()
