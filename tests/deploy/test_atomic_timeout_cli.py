"""``deploy --atomic --timeout`` with ``--format json``, through ``main(argv)`` against the fake API server:
a deploy stopped by its time limit is undone like a failed one, and the one document says both."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jsonschema

from bodywork_action.cli import main
from bodywork_action.result_document import read_schema
from testing.builders import COMMIT, REPOSITORY_URL
from testing.fake_k8s.cluster import FakeCluster

PIPELINE = """\
version: "1.1"
pipeline:
  name: demo
  docker_image: python:3.11-slim
  DAG: serve >> check
stages:
  serve:
    executable_module_path: serve.py
    cpu_request: 0.1
    memory_request_mb: 50
    service:
      max_startup_time_seconds: 60
      replicas: 1
      port: 8000
      ingress: false
  check:
    executable_module_path: check.py
    cpu_request: 0.1
    memory_request_mb: 50
    batch:
      max_completion_time_seconds: 600
      retries: 0
logging:
  log_level: INFO
"""


def deploy(fake: FakeCluster, config: Path, *more: str) -> tuple[int, dict[str, Any], str]:
    out, err = io.StringIO(), io.StringIO()
    argv = ["deploy", "-f", str(config), "--kubeconfig", str(fake.kubeconfig_path), "--repo", REPOSITORY_URL]
    code = main([*argv, "--commit", COMMIT, "--format", "json", *more], out=out, err=err, environ={})
    document = json.loads(out.getvalue())
    jsonschema.validate(document, read_schema())
    return code, document, err.getvalue()


def served_cpu(fake: FakeCluster) -> str:
    deployment = fake.get("Deployment", "serve", "demo")
    assert deployment is not None
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"])


def job_names(fake: FakeCluster) -> list[str]:
    return sorted(job["metadata"]["name"] for job in fake.list("Job", "demo"))


def test_an_atomic_deploy_past_its_timeout_puts_the_service_back_and_says_so(
    tmp_path: Path, fake_cluster: FakeCluster
) -> None:
    config = tmp_path / "bodywork.yaml"
    config.write_text(PIPELINE)
    first = deploy(fake_cluster, config)
    assert first[0] == 0, first
    before, jobs_before = served_cpu(fake_cluster), job_names(fake_cluster)
    config.write_text(
        PIPELINE.replace(
            "cpu_request: 0.1\n    memory_request_mb: 50\n    service",
            "cpu_request: 0.5\n    memory_request_mb: 50\n    service",
        )
    )
    fake_cluster.script("Job", {"app.kubernetes.io/name": "check"}, {"run_seconds": 86400})

    code, document, err = deploy(fake_cluster, config, "--atomic", "--timeout", "3s")

    assert code == 1, err
    assert (document["status"], document["timed_out"]) == ("failed", True)
    assert document["message"].startswith("--timeout 3s reached")
    assert "atomic: the pipeline's services were left at their previous revision" in err  # the result line
    serve, check = document["stages"]
    assert (serve["stage"], serve["rolled_back"], serve["rollback_error"]) == ("serve", True, "")
    assert serve["message"].startswith("atomic: rolled back to the revision it had before this deploy")
    assert (check["stage"], check["status"]) == ("check", "cancelled")
    assert served_cpu(fake_cluster) == before != "500m"
    assert job_names(fake_cluster) == jobs_before  # the cancelled Job deleted; batch history kept
