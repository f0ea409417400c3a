"""The real-node tier's test helpers: a project pushed to the tier's git server, deploys through the
engine and the entrypoint, and reading what the stages printed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client

from bodywork_action.config import load_pipeline
from bodywork_action.kube.client import KubeTarget
from bodywork_action.kube.deploy import deploy_pipeline
from bodywork_action.model import DeployContext, Pipeline
from bodywork_action.results import DeploymentResult
from testing.cluster.realnode import RealTier

NAME_LABEL = "app.kubernetes.io/name"


class Project:
    """A git repository served to pods, holding one Bodywork pipeline."""

    def __init__(self, tier: RealTier, name: str) -> None:
        self.tier = tier
        self.name = name
        self.path = tier.node.create_repo(name)
        self.url = f"{tier.node.git_base}/{name}"

    def commit(self, files: Mapping[str, str], message: str = "change") -> str:
        for rel, text in files.items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(text).lstrip("\n"))
        subprocess.run(["git", "-C", str(self.path), "add", "-A"], check=True)
        subprocess.run(["git", "-C", str(self.path), "commit", "-q", "-m", message], check=True)
        out = subprocess.run(
            ["git", "-C", str(self.path), "rev-parse", "HEAD"], capture_output=True, text=True
        )
        return out.stdout.strip()

    def pipeline(self) -> Pipeline:
        return load_pipeline(self.path / "bodywork.yaml")


class RealCluster:
    """Deploys projects to the real tier and reads what really happened."""

    def __init__(self, tier: RealTier) -> None:
        self.tier = tier
        self.target = KubeTarget(kubeconfig=str(tier.cp.kubeconfig_path))
        self.namespaces: list[str] = []

    def project(self, files: Mapping[str, str]) -> tuple[Project, str]:
        project = Project(self.tier, f"p-{uuid.uuid4().hex[:8]}")
        return project, project.commit(files, "first")

    def namespace(self) -> str:
        name = f"rn-{uuid.uuid4().hex[:8]}"
        self.namespaces.append(name)
        return name

    def deploy(
        self,
        project: Project,
        commit: str,
        namespace: str,
        *,
        deployment_id: str = "run-1",
        git_credentials_secret: str = "",
        **kwargs: Any,
    ) -> DeploymentResult:
        context = DeployContext(
            git_credentials_secret=git_credentials_secret,
            repository_url=project.url,
            commit=commit,
            ref="refs/heads/main",
            deployment_id=deployment_id,
            restart_token=deployment_id,
            namespace=namespace,
        )
        return deploy_pipeline(project.pipeline(), context, target=self.target, environ={}, **kwargs)

    # ------------------------------------------------------------------ reading the cluster
    def api(self) -> Any:
        return self.tier.cp.api_client()

    def pods(self, namespace: str, stage: str | None = None) -> list[Any]:
        selector = f"{NAME_LABEL}={stage}" if stage else None
        with self.api() as api:
            pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector).items
        return sorted(pods, key=lambda p: p.metadata.creation_timestamp)

    def logs(self, namespace: str, pod: str, container: str = "stage") -> str:
        with self.api() as api:
            return client.CoreV1Api(api).read_namespaced_pod_log(pod, namespace, container=container)

    def proxy(self, namespace: str, url: str, path: str, body: Any = None) -> tuple[int, str]:
        """GET (or POST JSON ``body`` to) ``path`` on a service through the apiserver's service proxy;
        ``url`` is the service's in-cluster URL as the deploy result gives it."""
        host_port = url.split("//", 1)[1]
        service, port = host_port.split(".", 1)[0], host_port.rsplit(":", 1)[1]
        resource = f"/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy/{path.lstrip('/')}"
        with self.api() as api:
            method, full_url, headers, payload, post = api.param_serialize(
                method="GET" if body is None else "POST",
                resource_path=resource,
                header_params={"Content-Type": "application/json", "Accept": "*/*"},
                body=body,
                auth_settings=["BearerToken"],
            )
            response = api.call_api(method, full_url, header_params=headers, body=payload, post_params=post)
            response.read()
            return response.status, response.data.decode()

    def cleanup(self) -> None:
        with self.api() as api:
            core = client.CoreV1Api(api)
            for name in self.namespaces:
                try:
                    core.delete_namespace(name, grace_period_seconds=0)
                except client.ApiException as exc:
                    if exc.status != 404:
                        raise


def run_entrypoint(
    workspace: Path, files: Path, inputs: Mapping[str, str], env: Mapping[str, str]
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """entrypoint.py as GitHub runs the action (INPUT_*, GITHUB_OUTPUT), with time for real pods:
    tests/action's runner allows 60 s, less than a first MLflow deploy's pip install takes here."""
    from testing.action_runs import ENTRYPOINT
    from testing.github_files import parse_output_file

    files.mkdir(parents=True, exist_ok=True)
    output = files / "output"
    output.touch()
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(files),
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(files / "summary"),
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_REPOSITORY": "owner/repo",
        "RUNNER_TEMP": str(files),
        **{f"INPUT_{name.upper()}": value for name, value in inputs.items()},
        **env,
    }
    done = subprocess.run(
        [sys.executable, str(ENTRYPOINT)],
        env=environ,
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    return done, parse_output_file(output.read_text())


def program_output(log: str, module: str) -> list[str]:
    """The lines a stage's module printed: everything after the bootstrap's "running <module>" line."""
    lines = log.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(f"bodywork-action: running {module}")]
    assert starts, f"no 'bodywork-action: running {module}' line in:\n{log}"
    return lines[starts[-1] + 1 :]


def stage_logs(result: DeploymentResult, stage: str) -> str:
    """Every log line the engine collected for one stage (it collects them for failed stages)."""
    for s in result.stages:
        if s.stage == stage:
            return "\n".join(line for lines in s.logs.values() for line in lines)
    raise KeyError(stage)


def result_of(result: DeploymentResult, stage: str) -> Any:
    for s in result.stages:
        if s.stage == stage:
            return s
    raise KeyError(stage)
