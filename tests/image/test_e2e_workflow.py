""".github/workflows/e2e.yml's own steps, in its order, with its own inputs and env, through the image.

The workflow file is the one place those inputs live: this test reads it, evaluates its ``${{ }}``
expressions, runs each ``uses: ./`` step as GitHub's runner runs a container action and each of its
checking ``run:`` steps with bash, exactly as written. The kind steps are emulated (the fake API server
stands in for the cluster, its kubeconfig for the exported one); the /health step needs a real MLflow
pod and is left to the workflow (and the real node's tests). A step this test doesn't know fails it, so
the workflow can't grow a step that is never proven here.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from testing.fake_k8s.cluster import FakeCluster
from testing.image import SHA, RunnerDirs, github_environment, run_container_action
from testing.images import Engine

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = yaml.safe_load((ROOT / ".github" / "workflows" / "e2e.yml").read_text())
EMULATED = {
    "Write the kind config",
    "Create the kind cluster",
    "Export a kubeconfig the action's container can use",
}
NEEDS_A_REAL_POD = {"Reach MLflow /health through kubectl proxy"}
RUN_HERE = {"Check the outputs", "Check that the namespace is gone"}
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def evaluate(text: str, context: Mapping[str, Any]) -> str:
    """``${{ a.b || c.d }}`` over ``context``: property paths and ``||`` only (all e2e.yml uses)."""

    def lookup(path: str) -> str:
        value: Any = context
        for part in path.strip().split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        return "" if value is None else str(value)

    def replace(match: re.Match[str]) -> str:
        expression = match.group(1)
        assert re.fullmatch(r"[\w.\- |]+", expression), f"unsupported expression in e2e.yml: {expression}"
        return next((v for v in map(lookup, expression.split("||")) if v), "")

    return EXPRESSION.sub(replace, text)


def test_the_workflow_steps_pass_against_the_fake_cluster(
    engine: Engine, image: str, workspace: Path, tmp_path: Path, fake_cluster_https: FakeCluster
) -> None:
    dirs = RunnerDirs(tmp_path / "runner")
    github = github_environment()
    context: dict[str, Any] = {
        "github": {
            "run_id": github["GITHUB_RUN_ID"],
            "run_attempt": github["GITHUB_RUN_ATTEMPT"],
            "sha": SHA,
        },
        "env": {},
        "steps": {},
    }
    context["env"] = {name: evaluate(value, context) for name, value in WORKFLOW["env"].items()}
    kubeconfig_path = Path(fake_cluster_https.kubeconfig_path)
    (job,) = WORKFLOW["jobs"].values()
    ran: list[str] = []
    for step in job["steps"]:
        name = step["name"]
        if step.get("uses", "").startswith("actions/checkout@"):
            continue  # the workspace fixture is the checkout
        if name in EMULATED:
            if step.get("id") == "kubeconfig":
                encoded = base64.b64encode(kubeconfig_path.read_bytes()).decode()
                context["steps"]["kubeconfig"] = {"outputs": {"kubeconfig": encoded}}
            continue
        if name in NEEDS_A_REAL_POD:
            continue
        env = {k: evaluate(str(v), context) for k, v in (step.get("env") or {}).items()}
        if step.get("uses") == "./":
            inputs = {k: evaluate(str(v), context) for k, v in (step.get("with") or {}).items()}
            run = run_container_action(engine, image, workspace, dirs, inputs, env)
            assert run.returncode == 0, f"step {name!r}:\n{run.stdout}\n{run.stderr}"
            if "id" in step:
                context["steps"][step["id"]] = {"outputs": run.outputs, "outcome": "success"}
        elif name in RUN_HERE:
            script = evaluate(step["run"], context)
            environ = {
                **os.environ,
                **context["env"],
                **env,
                "KUBECONFIG": str(kubeconfig_path),
            }
            done = subprocess.run(
                ["bash", "-e", "-c", script], env=environ, capture_output=True, text=True, timeout=240
            )
            assert done.returncode == 0, f"step {name!r} failed:\n{done.stdout}\n{done.stderr}"
        else:
            pytest.fail(f"e2e.yml has a step this test doesn't know: {name!r}")
        ran.append(name)

    assert ran == [
        "Validate bodywork.yaml",
        "Deploy the MLflow example",
        "Check the outputs",
        "Delete the deployment",
        "Check that the namespace is gone",
    ]
    assert context["steps"]["deploy"]["outputs"]["namespace"] == context["env"]["NAMESPACE"]
