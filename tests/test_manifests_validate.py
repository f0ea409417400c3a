"""Every rendered object is valid for Kubernetes 1.29 and for the newest version kubernetes-validate bundles.

The pipelines are built here, as ``config.py`` would build them from the MLflow example's
``bodywork.yaml`` (spec §9.1) and from Bodywork's own test project (spec §8): 7 stages, a service stage
with an ingress, a notebook stage and a run_on_failure stage. The schemas don't check names or label
values, so those are checked here too.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from bodywork_action import render
from bodywork_action.dag import is_dns1123_label, k8s_name, parse_dag
from bodywork_action.model import (
    BatchSettings,
    DeployContext,
    Pipeline,
    SecretEnv,
    ServiceSettings,
    Stage,
    StageName,
)
from bodywork_action.plan import render_plan

kubernetes_validate = pytest.importorskip("kubernetes_validate")

OLDEST_SUPPORTED_KUBERNETES = "1.29"
NEWEST_BUNDLED_KUBERNETES = kubernetes_validate.latest_version()

_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_QUALIFIED_NAME = re.compile(
    r"^(?:[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)

CONTEXT = DeployContext(
    repository_url="https://github.com/bodywork-ml/bodywork-mlflow",
    commit="0123456789abcdef0123456789abcdef01234567",
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


def build_pipeline(
    name: str,
    dag: str,
    stages: list[Stage],
    *,
    docker_image: str = "bodyworkml/bodywork-core:3.0",
    **fields: Any,
) -> Pipeline:
    steps, problems = parse_dag(dag)
    assert not problems
    return Pipeline(
        name=name,
        docker_image=docker_image,
        dag_text=dag,
        steps=steps,
        stages={stage.name: stage for stage in stages},
        **fields,
    )


def build_stage(
    name: str,
    settings: BatchSettings | ServiceSettings,
    *,
    module: str = "",
    cpu_request: float = 0.5,
    memory_request_mb: int = 100,
    **fields: Any,
) -> Stage:
    return Stage(
        name=StageName(name),
        k8s_name=k8s_name(name),
        executable_module_path=module or f"{name}/main.py",
        cpu_request=cpu_request,
        memory_request_mb=memory_request_mb,
        settings=settings,
        **fields,
    )


def mlflow_pipeline() -> Pipeline:
    """The bodywork-mlflow example (spec §9.1), with the MLflow pin this project uses."""
    server = build_stage(
        "server",
        ServiceSettings(max_startup_time_seconds=240, replicas=1, port=5000, ingress=False),
        module="mlflow_server.py",
        cpu_request=1,
        memory_request_mb=250,
        requirements=("mlflow==3.17.2", "scikit-learn", "pyarrow", "boto3", "psycopg2-binary"),
        secrets=(
            SecretEnv("MLFLOW_BACKEND_STORE_URI", "mlflow-config"),
            SecretEnv("MLFLOW_DEFAULT_ARTIFACT_ROOT", "mlflow-config"),
            SecretEnv("AWS_ACCESS_KEY_ID", "aws-credentials"),
            SecretEnv("AWS_SECRET_ACCESS_KEY", "aws-credentials"),
            SecretEnv("AWS_DEFAULT_REGION", "aws-credentials"),
        ),
    )
    return build_pipeline("bodywork-mlflow", "server", [server], secrets_group="prod")


def bodywork_test_project() -> Pipeline:
    """Bodywork's tests/resources/project_repo/bodywork.yaml (spec §8)."""
    foobar = (SecretEnv("FOO", "foobar-secret"), SecretEnv("BAR", "foobar-secret"))
    stages = [
        build_stage(
            "stage_1",
            BatchSettings(max_completion_time_seconds=60, retries=4),
            secrets=foobar,
            requirements=("numpy>=1.21.2",),
        ),
        build_stage("stage_2", BatchSettings(max_completion_time_seconds=60, retries=2)),
        build_stage(
            "stage_3",
            ServiceSettings(max_startup_time_seconds=60, replicas=2, port=5000, ingress=True),
            args=("Hello World", "1"),
            secrets=foobar,
            requirements=("wheel==0.34.2",),
        ),
        build_stage("stage_4", BatchSettings(max_completion_time_seconds=60, retries=2)),
        build_stage("stage_5", BatchSettings(max_completion_time_seconds=60, retries=0)),
        build_stage(
            "stage_jupyter",
            BatchSettings(max_completion_time_seconds=60, retries=2),
            module="stage_jupyter/main.ipynb",
            cpu_request=0,
            memory_request_mb=0,
        ),
        build_stage("on_fail_stage", BatchSettings(max_completion_time_seconds=0, retries=0)),
    ]
    return build_pipeline(
        "bodywork-test-project",
        "stage_1 >> stage_2,stage_3 >> stage_4",
        stages,
        docker_image="bodyworkml/bodywork-core:latest",
        secrets_group="test",
        usage_stats=False,
        run_on_failure=StageName("on_fail_stage"),
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


CASES = {
    "mlflow": (mlflow_pipeline, CONTEXT),
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


def test_the_schema_check_is_real_it_rejects_an_unknown_field() -> None:
    job = _rendered("bodywork-test-project")[1]
    job["spec"]["template"]["spec"]["containers"][0]["comand"] = ["typo"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, OLDEST_SUPPORTED_KUBERNETES, strict=True)
