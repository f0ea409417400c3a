"""Every rendered object is valid for Kubernetes 1.29 and for the newest version kubernetes-validate bundles.

The pipelines are built here, as ``config.py`` would build them from the MLflow example's
``bodywork.yaml`` (spec §9.1) and from Bodywork's own test project (spec §8): 7 stages, a service stage
with an ingress, a notebook stage and a run_on_failure stage. The schemas don't check names or label
values, so those are checked here too.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from bodywork_action import render
from bodywork_action.dag import is_dns1123_label
from bodywork_action.model import (
    DeployContext,
    Pipeline,
    ResourceOverride,
    StageName,
)
from bodywork_action.plan import render_plan
from testing.builders import COMMIT, batch, bodywork_test_project, mlflow_pipeline, pipeline, service

kubernetes_validate = pytest.importorskip("kubernetes_validate")

OLDEST_SUPPORTED_KUBERNETES = "1.29"
NEWEST_BUNDLED_KUBERNETES = kubernetes_validate.latest_version()

_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_QUALIFIED_NAME = re.compile(
    r"^(?:[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)

CONTEXT = DeployContext(
    repository_url="https://github.com/bodywork-ml/bodywork-mlflow",
    commit=COMMIT,
    ref="refs/heads/main",
    run_url="https://github.com/bodywork-ml/bodywork-mlflow/actions/runs/42",
    actor="octocat",
    deployment_id="42-1",
    ingress_class="nginx",
    restart_token="42-1",
)
PRIVATE_SSH_CONTEXT = DeployContext(
    repository_url="git@github.com:bodywork-ml/bodywork-test-project.git",
    commit="89abcdef0123456789abcdef0123456789abcdef",
    deployment_id="7",
    git_credentials_secret="git-deploy-key",
)
PRIVATE_TOKEN_CONTEXT = DeployContext(
    repository_url="https://github.com/bodywork-ml/bodywork-test-project",
    commit="89abcdef0123456789abcdef0123456789abcdef",
    deployment_id="8",
    git_credentials_secret="git-token",
)


def every_object(pipeline: Pipeline, context: DeployContext) -> list[dict[str, Any]]:
    """The DAG's objects, plus a Job for each batch stage outside it (run_on_failure and the rest)."""
    objects = render_plan(pipeline, context).objects()
    in_dag = {stage.name for stage in pipeline.dag_stages}
    for stage in pipeline.stages.values():
        if stage.name not in in_dag and stage.batch is not None:
            objects.append(
                render.with_stage_env(render.render_job(stage, pipeline, context), {"EXCEPTION_MESSAGE": "x"})
            )
    objects.append(
        render.render_secret(
            "mlflow-config",
            {"MLFLOW_BACKEND_STORE_URI": "postgresql://u:p@db/mlflow"},
            namespace=render.target_namespace(pipeline, context),
            group=pipeline.secrets_group,
        )
    )
    return objects


# A private registry and GPUs: a digest image, imagePullSecrets on every pod, an extended resource
# in requests and limits (from bodywork.yaml's extra_resources and from an override), memory as a request.
GPU_CONTEXT = dataclasses.replace(
    CONTEXT,
    image="ghcr.io/bodywork-ml/trainer@sha256:" + "0f" * 32,
    image_pull_secrets=("ghcr-pull", "regcred.internal"),
    resource_overrides=(
        ResourceOverride(StageName("serve"), "nvidia.com/gpu", "1"),
        ResourceOverride(StageName("serve"), "memory", "2Gi"),
        ResourceOverride(StageName("train"), "ephemeral-storage", "10Gi"),
    ),
)


def gpu_pipeline() -> Pipeline:
    return pipeline(
        "train >> serve",
        batch("train", extra_resources=(("nvidia.com/gpu", "2"),)),
        service("serve", ingress=True),
    )


CASES = {
    "mlflow": (mlflow_pipeline, CONTEXT),
    "gpu-private-registry": (gpu_pipeline, GPU_CONTEXT),
    "bodywork-test-project": (bodywork_test_project, CONTEXT),
    "bodywork-test-project-private-ssh": (bodywork_test_project, PRIVATE_SSH_CONTEXT),
    "bodywork-test-project-private-token": (bodywork_test_project, PRIVATE_TOKEN_CONTEXT),
}


def _rendered(case: str) -> list[dict[str, Any]]:
    build, context = CASES[case]
    return every_object(build(), context)


def test_the_examples_render_every_kind_of_object() -> None:
    kinds = {obj["kind"] for case in CASES for obj in _rendered(case)}
    assert kinds == {"Namespace", "Job", "Deployment", "Service", "Ingress", "Secret"}
    # stage_1, stage_2, stage_4 in the DAG; stage_5, stage_jupyter, on_fail_stage outside it
    rendered = [(obj["kind"], obj["metadata"]["name"]) for obj in _rendered("bodywork-test-project")]
    assert [kind for kind, _ in rendered].count("Job") == 6
    assert [name for kind, name in rendered if kind != "Job"] == [
        "bodywork-test-project",
        "stage-3",
        "stage-3",
        "stage-3",
        "mlflow-config",
    ]


@pytest.mark.parametrize("version", [OLDEST_SUPPORTED_KUBERNETES, NEWEST_BUNDLED_KUBERNETES])
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_rendered_object_passes_strict_schema_validation(case: str, version: str) -> None:
    for obj in _rendered(case):
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_name_and_label_is_one_the_api_server_accepts(case: str) -> None:
    for obj in _rendered(case):
        metadata = obj["metadata"]
        assert is_dns1123_label(metadata["name"]), metadata["name"]
        if "namespace" in metadata:
            assert is_dns1123_label(metadata["namespace"])
        label_sets = [metadata["labels"]]
        template = obj.get("spec", {}).get("template")
        if template:
            label_sets.append(template["metadata"]["labels"])
        for labels in label_sets:
            for key, value in labels.items():
                assert _QUALIFIED_NAME.match(key), key
                assert len(value) <= 63 and _LABEL_VALUE.match(value), (key, value)
        for key in metadata.get("annotations", {}):
            assert _QUALIFIED_NAME.match(key), key


def test_the_gpu_case_really_has_limits_and_pull_secrets_to_validate() -> None:
    templates = [
        obj["spec"]["template"]["spec"]
        for obj in _rendered("gpu-private-registry")
        if "spec" in obj and "template" in obj["spec"]
    ]
    assert len(templates) == 2  # the Job and the Deployment
    for pod in templates:
        assert pod["imagePullSecrets"] == [{"name": "ghcr-pull"}, {"name": "regcred.internal"}]
        resources = pod["containers"][0]["resources"]
        assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"]


def test_the_schema_check_is_real_it_rejects_an_unknown_field() -> None:
    job = _rendered("bodywork-test-project")[1]
    job["spec"]["template"]["spec"]["containers"][0]["comand"] = ["typo"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, OLDEST_SUPPORTED_KUBERNETES, strict=True)
