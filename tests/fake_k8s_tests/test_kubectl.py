"""kubectl (the real binary) against the fake over HTTPS with a bearer token."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
ROOT = Path(__file__).resolve().parents[2]

JOB = """
apiVersion: batch/v1
kind: Job
metadata: {name: hello, namespace: default}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: "busybox:1"}]
"""

DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "%s", env: [{name: %s, value: "1"}]}]
"""


def kubectl(kubeconfig: Path | str, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, f"kubectl {' '.join(args)} failed: {proc.stderr}"
    return proc.stdout


def test_kubectl_get_apply_delete(fake):
    out = kubectl(fake.kubeconfig_path, "get", "ns", "-o", "name")
    assert "namespace/default" in out.split()
    assert "created" in kubectl(
        fake.kubeconfig_path, "apply", "--validate=false", "-f", "-", stdin=DEPLOY % ("web:1", "A")
    )
    # a second apply goes through kubectl's client-side strategic merge patch ($setElementOrder etc.)
    assert "configured" in kubectl(
        fake.kubeconfig_path, "apply", "--validate=false", "-f", "-", stdin=DEPLOY % ("web:2", "B")
    )
    container = fake.get("Deployment", "web")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "web:2" and container["env"] == [{"name": "B", "value": "1"}]
    assert fake.requests.filter(verb="patch", resource="deployments")
    fake.wait_for(lambda: len(fake.list("ReplicaSet", "default")) == 2)
    pods = json.loads(kubectl(fake.kubeconfig_path, "get", "pods", "-l", "app=web", "-o", "json"))
    assert pods["kind"] == "List" and pods["items"]
    jsonpath = kubectl(fake.kubeconfig_path, "get", "deploy", "web", "-o", "jsonpath={.spec.replicas}")
    assert jsonpath == "1"
    assert "deleted" in kubectl(fake.kubeconfig_path, "delete", "deployment", "web")
    assert fake.get("Deployment", "web") is None
    # every request kubectl made carried the token (no 401s)
    assert all(r.status != 401 for r in fake.requests)


def test_kubectl_against_standalone_server(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        "time_scale: 0.01\n"
        "scripts:\n"
        "  - {kind: Job, name: hello, behavior: ok, run_seconds: 1, logs: [hello from the fake]}\n"
        "objects:\n"
        "  - {apiVersion: v1, kind: Namespace, metadata: {name: preloaded}}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "testing.fake_k8s",
            "--kubeconfig",
            str(kubeconfig),
            "--https",
            "--scenario",
            str(scenario),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not kubeconfig.exists():  # written only once the server listens
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "standalone server did not start"
            time.sleep(0.02)
        kubectl(kubeconfig, "apply", "--validate=false", "-f", "-", stdin=JOB)
        out = kubectl(kubeconfig, "wait", "--for=condition=complete", "job/hello", "--timeout=20s")
        assert "condition met" in out
        table = kubectl(kubeconfig, "get", "ns,jobs,deploy", "-A")
        assert "preloaded" in table and "job.batch/hello" in table
        pod = kubectl(kubeconfig, "get", "pods", "-l", "job-name=hello", "-o", "name").split()[0]
        assert kubectl(kubeconfig, "logs", pod) == "hello from the fake\n"
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "serving at https://127.0.0.1:" in out
