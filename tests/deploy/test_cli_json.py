"""deploy, status and delete with ``--format json`` (and deploy's ``--timeout``) through the command line,
against the fake API server: stdout is one document of result.schema.json, progress goes to stderr."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bodywork_action.cli import main
from bodywork_action.result_document import read_schema
from testing.builders import COMMIT, REPOSITORY_URL
from testing.deploy_runs import NAME_LABEL
from testing.fake_k8s.cluster import FakeCluster

PIPELINE = """\
version: "1.1"
pipeline:
  name: demo
  docker_image: bodyworkml/bodywork-core:3.0
  DAG: prepare >> serve
stages:
  prepare:
    executable_module_path: prepare.py
    cpu_request: 0.1
    memory_request_mb: 50
    batch:
      max_completion_time_seconds: 600
      retries: 0
  serve:
    executable_module_path: serve.py
    cpu_request: 0.1
    memory_request_mb: 50
    service:
      max_startup_time_seconds: 600
      replicas: 1
      port: 8000
      ingress: false
logging:
  log_level: INFO
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "bodywork.yaml"
    path.write_text(PIPELINE)
    return path


def run_json(fake: FakeCluster, config_file: Path, *argv: str) -> tuple[int, dict[str, Any], str]:
    """Exit code, stdout as one JSON document (checked against the schema), stderr."""
    out, err = io.StringIO(), io.StringIO()
    cluster = ["--kubeconfig", str(fake.kubeconfig_path), "-f", str(config_file), "--format", "json"]
    code = main([*argv, *cluster], out=out, err=err, environ={})
    document = json.loads(out.getvalue())
    jsonschema.validate(document, read_schema())
    assert document["exit_code"] == code
    return code, document, err.getvalue()


def deploy_json(fake: FakeCluster, config_file: Path, *argv: str) -> tuple[int, dict[str, Any], str]:
    return run_json(fake, config_file, "deploy", "--repo", REPOSITORY_URL, "--commit", COMMIT, *argv)


def test_deploy_status_and_delete_print_one_document_each(
    fake_cluster: FakeCluster, config_file: Path
) -> None:
    code, deployed, err = deploy_json(fake_cluster, config_file)

    assert code == 0, err
    assert (deployed["command"], deployed["status"], deployed["namespace"]) == ("deploy", "succeeded", "demo")
    assert [(s["stage"], s["type"], s["status"]) for s in deployed["stages"]] == [
        ("prepare", "batch", "succeeded"),
        ("serve", "service", "succeeded"),
    ]
    assert deployed["service_urls"] == {"serve": "http://serve.demo.svc.cluster.local:8000"}
    assert deployed["commit"] == COMMIT and deployed["timed_out"] is False
    assert "== step 1: prepare" in err and "demo: succeeded in" in err  # progress and the table: stderr

    code, status, _ = run_json(fake_cluster, config_file, "status")
    assert code == 0 and (status["command"], status["status"]) == ("status", "deployed")
    assert {(s["stage"], s["status"]) for s in status["stages"]} == {
        ("prepare", "succeeded"),
        ("serve", "succeeded"),
    }
    assert {o["stage"]: o["commit"] for o in status["objects"]} == {"prepare": COMMIT, "serve": COMMIT}

    code, would, _ = run_json(fake_cluster, config_file, "delete", "--dry-run")
    assert code == 0 and would["dry_run"] is True and "Deployment/serve" in would["deleted"]
    code, deleted, _ = run_json(fake_cluster, config_file, "delete")
    assert code == 0 and (deleted["status"], deleted["dry_run"]) == ("deleted", False)
    assert set(deleted["deleted"]) >= {"Deployment/serve", "Service/serve"}
    assert deleted["namespace_deleted"] is True

    code, gone, _ = run_json(fake_cluster, config_file, "status")
    assert code == 0 and gone["status"] == "not-deployed" and gone["stages"] == []


def test_deploy_past_its_timeout_stops_the_running_stage_and_fails_saying_so(
    fake_cluster: FakeCluster, config_file: Path
) -> None:
    # A Job that runs for a scripted day: only the time limit can end this deploy.
    fake_cluster.script("Job", {NAME_LABEL: "prepare"}, {"run_seconds": 86400})

    code, document, err = deploy_json(fake_cluster, config_file, "--timeout", "2s")

    assert code == 1, err
    assert (document["status"], document["timed_out"]) == ("failed", True)
    assert document["message"].startswith("--timeout 2s reached; cancelled")
    assert [(s["stage"], s["status"]) for s in document["stages"]] == [
        ("prepare", "cancelled"),
        ("serve", "cancelled"),
    ]
    assert fake_cluster.list("Job", "demo") == []  # the running Job was deleted, as on Ctrl+C
    assert "--timeout 2s reached" in err


def test_a_cluster_error_is_an_error_document(fake_cluster: FakeCluster, config_file: Path) -> None:
    fake_cluster.stop()

    code, document, err = run_json(fake_cluster, config_file, "status")

    assert code != 0 and document["status"] == "error" and document["error"] in err
