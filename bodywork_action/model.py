"""The validated pipeline as immutable values: what ``config.py`` produces and everything else reads.

Pure data. The user's stage names (``StageName``) and the Kubernetes names derived from them
(``K8sName``) are kept apart by type, so one can't be passed for the other by accident.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import NewType

StageName = NewType("StageName", str)
K8sName = NewType("K8sName", str)

SCHEMA_VERSION = "1.1"


class StageKind(str, Enum):
    BATCH = "batch"
    SERVICE = "service"


@dataclass(frozen=True)
class BatchSettings:
    max_completion_time_seconds: int
    retries: int


@dataclass(frozen=True)
class ServiceSettings:
    max_startup_time_seconds: int
    replicas: int
    port: int
    ingress: bool


@dataclass(frozen=True)
class SecretEnv:
    """One environment variable taken from a Kubernetes secret (Bodywork: key = env var name)."""

    env_var: str
    secret: str


@dataclass(frozen=True)
class Stage:
    name: StageName
    k8s_name: K8sName
    executable_module_path: str  # relative to the directory holding bodywork.yaml, as written
    cpu_request: float
    memory_request_mb: int
    settings: BatchSettings | ServiceSettings
    args: tuple[str, ...] = ()
    requirements: tuple[str, ...] = ()
    secrets: tuple[SecretEnv, ...] = ()
    # (resource name, Kubernetes quantity), sorted: bodywork.yaml's extra_resources merged with the
    # deploy's overrides (overrides.py); extended resources such as nvidia.com/gpu, cpu/memory requests
    extra_resources: tuple[tuple[str, str], ...] = ()

    @property
    def kind(self) -> StageKind:
        return StageKind.BATCH if isinstance(self.settings, BatchSettings) else StageKind.SERVICE

    @property
    def batch(self) -> BatchSettings | None:
        return self.settings if isinstance(self.settings, BatchSettings) else None

    @property
    def service(self) -> ServiceSettings | None:
        return self.settings if isinstance(self.settings, ServiceSettings) else None

    @property
    def is_notebook(self) -> bool:
        return self.executable_module_path.endswith(".ipynb")


def _frozen_stages(stages: Mapping[StageName, Stage]) -> Mapping[StageName, Stage]:
    return MappingProxyType(dict(stages))


@dataclass(frozen=True)
class Pipeline:
    name: str
    docker_image: str
    dag_text: str
    steps: tuple[tuple[StageName, ...], ...]  # stages of a step run concurrently
    stages: Mapping[StageName, Stage] = field(default_factory=dict)  # every stage, in the DAG or not
    namespace: str = ""  # as written; see target_namespace
    secrets_group: str = ""
    run_on_failure: StageName | None = None
    usage_stats: bool = True  # accepted for compatibility; this tool never phones home
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", _frozen_stages(self.stages))

    @property
    def target_namespace(self) -> str:
        return self.namespace or self.name

    @property
    def dag_stages(self) -> tuple[Stage, ...]:
        """Stages in the DAG, in step order."""
        return tuple(self.stages[name] for step in self.steps for name in step)

    def step_stages(self) -> tuple[tuple[Stage, ...], ...]:
        return tuple(tuple(self.stages[name] for name in step) for step in self.steps)

    @property
    def failure_stage(self) -> Stage | None:
        return self.stages[self.run_on_failure] if self.run_on_failure else None


# Set by the tool in every stage container; a stage secret may not use these names.
RESERVED_ENV_VARS = frozenset(
    {
        "GIT_COMMIT_HASH",
        "PYTHONPATH",
        "PYTHONUNBUFFERED",
        "BODYWORK_LOG_LEVEL",
        "BODYWORK_STAGE",
        "BODYWORK_NAMESPACE",
        "BODYWORK_SERVICE_PORT",
    }
)

DEFAULT_GIT_SYNC_IMAGE = "registry.k8s.io/git-sync/git-sync:v4.4.0"


@dataclass(frozen=True)
class ResourceOverride:
    """``stage: name=quantity`` from ``--resource`` or the ``resources`` input (see overrides.py)."""

    stage: StageName
    name: str
    quantity: str


@dataclass(frozen=True)
class DeployContext:
    """Where the code comes from and who asked: everything rendering needs beyond the pipeline."""

    repository_url: str  # https://github.com/owner/repo or git@…
    commit: str  # full SHA: every stage runs exactly this commit
    ref: str = ""  # refs/heads/main, shown only
    run_url: str = ""  # the GitHub Actions run that deployed, shown only
    actor: str = ""
    deployment_id: str = ""  # unique per deployment (e.g. the run id + attempt); makes Job names unique
    namespace: str = ""  # override of pipeline.target_namespace
    ingress_class: str = ""  # "" → the cluster's default IngressClass
    git_sync_image: str = DEFAULT_GIT_SYNC_IMAGE
    git_credentials_secret: str = ""  # a Secret with ssh / token credentials for private repositories
    restart_token: str = ""  # changes on every deploy: a re-deploy of the same commit restarts services
    # Overrides of bodywork.yaml for this deploy only (overrides.py checks them; render.py applies them).
    image: str = ""  # "" → pipeline.docker_image
    image_pull_secrets: tuple[str, ...] = ()  # existing Secrets for private registries, on every pod
    resource_overrides: tuple[ResourceOverride, ...] = ()  # win over a stage's extra_resources

    @property
    def short_commit(self) -> str:
        return self.commit[:7]
