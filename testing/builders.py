"""Builders for the values tests make: stages, pipelines, deploy contexts and the MLflow example's secrets.

Pure: each function returns a new model value; nothing here touches a cluster, a process or a file.
Defaults are the plain case (a batch stage of one minute, a service on port 8000, a pipeline named
``demo``); a test passes whatever it relies on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bodywork_action.dag import k8s_name, parse_dag
from bodywork_action.model import (
    BatchSettings,
    DeployContext,
    Pipeline,
    SecretEnv,
    ServiceSettings,
    Stage,
    StageName,
)
from bodywork_action.secret_groups import SecretRequest, SecretSupply, build_secret_supply

COMMIT = "0123456789abcdef0123456789abcdef01234567"  # a full SHA: every stage runs exactly this commit
REPOSITORY_URL = "https://github.com/example/project"
BODYWORK_IMAGE = "bodyworkml/bodywork-core:3.0"
PYTHON_IMAGE = "python:3.11-slim"

SecretPairs = Iterable[tuple[str, str]]  # (secret, key): the key is also the variable the stage sees


def secret_envs(pairs: SecretPairs) -> tuple[SecretEnv, ...]:
    return tuple(SecretEnv(env_var=key, secret=secret) for secret, key in pairs)


def build_stage(
    name: str,
    settings: BatchSettings | ServiceSettings,
    *,
    module: str = "",
    cpu_request: float = 0.5,
    memory_request_mb: int = 100,
    **fields: Any,
) -> Stage:
    """A stage as config.py builds it; ``module`` defaults to Bodywork's layout, ``{name}/main.py``.
    ``fields``: ``args``, ``requirements``, ``secrets`` (SecretEnv entries)."""
    return Stage(
        name=StageName(name),
        k8s_name=k8s_name(name),
        executable_module_path=module or f"{name}/main.py",
        cpu_request=cpu_request,
        memory_request_mb=memory_request_mb,
        settings=settings,
        **fields,
    )


def batch(name: str, *, retries: int = 0, max_seconds: int = 60, **options: Any) -> Stage:
    """A batch stage; ``options`` as for ``runnable_stage``."""
    return runnable_stage(
        name, BatchSettings(max_completion_time_seconds=max_seconds, retries=retries), **options
    )


def service(
    name: str,
    *,
    port: int = 8000,
    replicas: int = 1,
    ingress: bool = False,
    startup_seconds: int = 60,
    **options: Any,
) -> Stage:
    """A service stage; ``options`` as for ``runnable_stage``."""
    settings = ServiceSettings(
        max_startup_time_seconds=startup_seconds, replicas=replicas, port=port, ingress=ingress
    )
    return runnable_stage(name, settings, **options)


def runnable_stage(
    name: str,
    settings: BatchSettings | ServiceSettings,
    *,
    module: str = "",
    cpu_request: float = 0.25,
    memory_request_mb: int = 100,
    secrets: SecretPairs = (),
    **fields: Any,
) -> Stage:
    """A stage running ``{name}.py`` unless ``module`` says otherwise, with ``secrets`` as (secret, key)
    pairs; ``fields``: ``args``, ``requirements``."""
    return build_stage(
        name,
        settings,
        module=module or f"{name}.py",
        cpu_request=cpu_request,
        memory_request_mb=memory_request_mb,
        secrets=secret_envs(secrets),
        **fields,
    )


def pipeline(
    dag: str,
    *stages: Stage,
    name: str = "demo",
    docker_image: str = PYTHON_IMAGE,
    run_on_failure: str | None = None,
    **fields: Any,
) -> Pipeline:
    """A pipeline from a valid DAG string (``a >> b,c``) and its stages, in the DAG or not.
    ``fields``: ``namespace``, ``secrets_group``, ``usage_stats``, ``log_level``."""
    steps, problems = parse_dag(dag)
    assert not problems, problems
    return Pipeline(
        name=name,
        docker_image=docker_image,
        dag_text=dag,
        steps=steps,
        stages={stage.name: stage for stage in stages},
        run_on_failure=StageName(run_on_failure) if run_on_failure else None,
        **fields,
    )


def four_stage_pipeline(**fields: Any) -> Pipeline:
    """``a >> b,c >> d``: batch, (batch, service), service with an ingress."""
    return pipeline(
        "a >> b,c >> d", batch("a"), batch("b"), service("c"), service("d", ingress=True), **fields
    )


def context(deployment_id: str = "run-1", **fields: Any) -> DeployContext:
    """A deploy of COMMIT from REPOSITORY_URL's main branch; ``fields`` override any DeployContext field."""
    values: dict[str, Any] = {
        "repository_url": REPOSITORY_URL,
        "commit": COMMIT,
        "ref": "refs/heads/main",
        "deployment_id": deployment_id,
        "restart_token": deployment_id,
        **fields,
    }
    return DeployContext(**values)


# --- the repository's MLflow example (bodywork.yaml + mlflow_server.py) --------------------------
MLFLOW_SECRETS: Mapping[str, tuple[str, ...]] = {
    "mlflow-config": ("MLFLOW_BACKEND_STORE_URI", "MLFLOW_DEFAULT_ARTIFACT_ROOT"),
    "aws-credentials": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"),
}

# What the MLflow example's two secrets hold in these tests; the password is the canary.
MLFLOW_SECRET_ENV = {
    "MLFLOW_BACKEND_STORE_URI": "postgresql://mlflow:s3cret-password@db:5432/mlflow",
    "MLFLOW_DEFAULT_ARTIFACT_ROOT": "s3://bucket/mlflow",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "line-one\nline-two",
    "AWS_DEFAULT_REGION": "eu-west-2",
}


def mlflow_secret_supply(group: str = "prod") -> SecretSupply:
    """The MLflow example's secrets, from MLFLOW_SECRET_ENV, as the action would map them."""
    return build_secret_supply(
        [SecretRequest(secret, keys) for secret, keys in MLFLOW_SECRETS.items()],
        [MLFLOW_SECRET_ENV],
        group=group,
    )


def mlflow_pipeline() -> Pipeline:
    """The MLflow example as config.py builds it from bodywork.yaml, with the MLflow pin this project uses."""
    server = build_stage(
        "server",
        ServiceSettings(max_startup_time_seconds=240, replicas=1, port=5000, ingress=False),
        module="mlflow_server.py",
        cpu_request=1,
        memory_request_mb=250,
        requirements=("mlflow==3.17.2", "scikit-learn", "pyarrow", "boto3", "psycopg2-binary"),
        secrets=secret_envs((secret, key) for secret, keys in MLFLOW_SECRETS.items() for key in keys),
    )
    return pipeline(
        "server", server, name="bodywork-mlflow", docker_image=BODYWORK_IMAGE, secrets_group="prod"
    )


def bodywork_test_project() -> Pipeline:
    """Bodywork's own test project (tests/resources/project_repo/bodywork.yaml in bodywork-core): 7 stages,
    a service with an ingress, a notebook stage and a run_on_failure stage."""
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
    return pipeline(
        "stage_1 >> stage_2,stage_3 >> stage_4",
        *stages,
        name="bodywork-test-project",
        docker_image="bodyworkml/bodywork-core:latest",
        secrets_group="test",
        usage_stats=False,
        run_on_failure="on_fail_stage",
    )
