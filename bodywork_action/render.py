"""A validated pipeline plus a deployment context → every Kubernetes manifest, as plain dicts.

Pure: no cluster, no files, no environment, no clock. ``plan.render_plan`` asks this module for every
object once; deploy, dry run, prune and ``plan --output yaml`` (through ``format_manifests_yaml``,
Secret values redacted) all use that one Plan.

What is rendered:

- Namespace: ``context.namespace``, else ``pipeline.namespace``, else the pipeline's name as a
  DNS-1123 label. Labelled managed-by and part-of, and annotated as created for this pipeline.
- Batch stage → ``batch/v1`` Job named ``<stage>-<deployment id>`` (unique per deployment, so a re-run
  never trips on the immutable Job template; the cluster code prunes older ones).
- Service stage → ``apps/v1`` Deployment, ClusterIP Service (port named ``http``) and, with
  ``ingress: true``, a ``networking.k8s.io/v1`` Ingress on path ``/<namespace>/<stage>`` (Prefix).
- Every object carries ``app.kubernetes.io/name`` (stage), ``app.kubernetes.io/part-of`` (pipeline),
  ``app.kubernetes.io/managed-by: bodywork-action`` and ``bodywork.dev/commit``, plus annotations for
  the ref, run URL, actor and repository. Selectors use pipeline + stage, so equal stage names of two
  pipelines in one namespace never collide (Bodywork selected on the stage alone, so two
  pipelines with a stage of the same name took each other's pods).

How a stage pod gets its code (Bodywork re-cloned the branch's newest commit in every pod): an init
container runs git-sync v4 in one-time mode and checks out exactly ``context.commit`` into an
emptyDir, at ``/bodywork/repo``. The main container (``pipeline.docker_image``) starts in the
directory holding ``bodywork.yaml`` and runs a fixed bootstrap program (``python -c BOOTSTRAP``) that
receives the module path, the requirements and the args as argv elements: it pip-installs the
requirements, then ``exec``s ``python <module> <args…>`` from the module's directory (as Bodywork
did), or ``python -m jupyter nbconvert --to notebook --execute`` for ``.ipynb`` stages (``nbconvert``
and ``ipykernel`` are added to their requirements; notebooks take no args, as in Bodywork). No user
value is ever part of a shell string: there is no shell.

Private repositories: set ``context.git_credentials_secret`` to the name of a Secret in the target
namespace. It is mounted read-only into the init container only, never into the stage container:

- SSH URLs (``git@host:owner/repo`` or ``ssh://…``): keys ``ssh`` (the private deploy key) and
  ``known_hosts`` (e.g. from ``ssh-keyscan github.com``); host keys are always verified.
- HTTPS URLs: keys ``username`` and ``password`` (a token, e.g. ``x-access-token`` + a GitHub token).
  Credentials inside the URL itself are refused, so they can't end up in an annotation or argv.

Environment of the stage container, in order: one variable per stage secret (``secretKeyRef``, key =
variable name, as Bodywork), then ``GIT_COMMIT_HASH`` (the full commit SHA), ``PYTHONPATH`` (the
project directory, as Bodywork), ``PYTHONUNBUFFERED=1`` (logs arrive as they are written),
``BODYWORK_LOG_LEVEL`` (bodywork.yaml's ``logging.log_level``, the variable Bodywork's stages read), and for
service stages ``BODYWORK_STAGE`` (the stage's Kubernetes name, which is also its Service's name),
``BODYWORK_NAMESPACE`` and ``BODYWORK_SERVICE_PORT`` (what ``mlflow_server.py`` reads to build its
in-cluster URL and allowed hosts). Those are ``RESERVED_ENV_VARS``: a stage secret may not use them.

Resources of the stage container: ``cpu_request`` and ``memory_request_mb`` as requests, then the
stage's ``extra_resources`` merged with ``context.resource_overrides`` (which win; ``overrides.py``):
an extended resource such as ``nvidia.com/gpu`` in requests and limits alike (Kubernetes requires
both, equal), cpu/memory/ephemeral-storage in requests only. ``context.image`` replaces
``pipeline.docker_image``; ``context.image_pull_secrets`` become every pod's ``imagePullSecrets``.
"""

from __future__ import annotations

import copy
import hashlib
import math
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from bodywork_action import verdicts
from bodywork_action.dag import DNS1123_LABEL_MAX, is_dns1123_label, k8s_name
from bodywork_action.errors import InputError
from bodywork_action.model import (
    BatchSettings,
    DeployContext,
    K8sName,
    Pipeline,
    ServiceSettings,
    Stage,
    StageKind,
)
from bodywork_action.overrides import is_extended_resource, stage_resources

Manifest = dict[str, Any]

# --- label and annotation keys (everything that reads objects back uses these) -------------------
LABEL_NAME = "app.kubernetes.io/name"  # the stage's Kubernetes name
LABEL_PART_OF = "app.kubernetes.io/part-of"  # the pipeline, as a label value (pipeline_label)
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "bodywork-action"
LABEL_COMMIT = "bodywork.dev/commit"
LABEL_STAGE_KIND = "bodywork.dev/stage-kind"  # "batch" or "service"
LABEL_DEPLOYMENT = "bodywork.dev/deployment"  # deployment_short_id, on Jobs and their pods
LABEL_SECRET_GROUP = "bodywork.dev/secret-group"

ANNOTATION_STAGE = "bodywork.dev/stage"  # the user's stage name as written (label values can't hold it)
ANNOTATION_PIPELINE = "bodywork.dev/pipeline"  # the pipeline name as written
ANNOTATION_COMMIT = "bodywork.dev/commit"  # full SHA (a label value is capped at 63 characters)
ANNOTATION_REPOSITORY = "bodywork.dev/repository"
ANNOTATION_REF = "bodywork.dev/ref"
ANNOTATION_RUN_URL = "bodywork.dev/run-url"
ANNOTATION_ACTOR = "bodywork.dev/actor"
# On a Namespace this tool created: only such a namespace is ever deleted (by ``delete``).
ANNOTATION_NAMESPACE_CREATED_FOR = "bodywork.dev/created-for-pipeline"
ANNOTATION_DEPLOYMENT_ID = "bodywork.dev/deployment-id"
# On the Deployment's pod template: changes on every deploy, so re-deploying the same commit rolls the
# pods (services reload state such as the latest production model).
ANNOTATION_RESTART_TOKEN = "bodywork.dev/restart-token"

# --- pod layout -----------------------------------------------------------------------------------
CODE_VOLUME = "code"
CODE_MOUNT_PATH = "/bodywork"
REPO_LINK = "repo"  # git-sync publishes the checkout as a symlink under its --root
REPO_PATH = f"{CODE_MOUNT_PATH}/{REPO_LINK}"
GIT_CREDENTIALS_VOLUME = "git-credentials"
GIT_CREDENTIALS_MOUNT_PATH = "/etc/git-secret"  # git-sync's default location for these files
GIT_SSH_KEY = "ssh"
GIT_KNOWN_HOSTS_KEY = "known_hosts"
GIT_USERNAME_KEY = "username"
GIT_PASSWORD_KEY = "password"
GIT_SYNC_UID = 65533  # the user git-sync's image runs as; fsGroup makes checkout and key readable
GIT_SYNC_CONTAINER = "git-sync"
STAGE_CONTAINER = "stage"
PORT_NAME = "http"
NOTEBOOK_OUTPUT_DIR = "/tmp/bodywork-notebooks"  # executed copies go here: the checkout is the source
NOTEBOOK_REQUIREMENTS = ("nbconvert", "ipykernel")
SECRET_VALUE_REDACTED = "<redacted>"

# --- timing ---------------------------------------------------------------------------------------
# max_completion_time_seconds limits one attempt of the stage's module, as it did in Bodywork (whose
# limit covered the script, not the clone or the pip install). The bootstrap enforces it exactly, from
# the moment the module starts: it runs the module as its child, stops it when its time is up (SIGTERM,
# then SIGKILL after a grace) and ends the attempt with exit code 142. The pod's own
# activeDeadlineSeconds adds this allowance for scheduling, image pull, the clone and the pip install,
# as a backstop for an attempt that hangs before its module starts.
JOB_ATTEMPT_STARTUP_ALLOWANCE_SECONDS = 300
TIME_LIMIT_EXIT_CODE = verdicts.TIME_LIMIT_EXIT_CODE  # an attempt stopped at its limit (128 + SIGALRM)
TIME_LIMIT_STOP_GRACE_SECONDS = 10  # between SIGTERM and SIGKILL for a module past its limit
# Kubernetes waits 10 s, 20 s, 40 s … (capped at 6 min) before re-creating a failed Job pod; that wait
# counts against activeDeadlineSeconds too.
JOB_RETRY_BACKOFF_BASE_SECONDS = 10
JOB_RETRY_BACKOFF_MAX_SECONDS = 360
# Deployments: max_startup_time_seconds covers the pip install and the server start (the startup
# probe); scheduling, image pull and the clone (init container) come on top.
DEPLOYMENT_PROGRESS_ALLOWANCE_SECONDS = 120
PROBE_PERIOD_SECONDS = 10  # as Bodywork's startup probe, so failureThreshold = ceil(t / 10)
READINESS_PERIOD_SECONDS = 5
LIVENESS_FAILURE_THRESHOLD = 3
REVISION_HISTORY_LIMIT = 3  # > 0: rolling back needs the previous ReplicaSet (Bodywork kept 0)

SHORT_ID_LENGTH = 10  # hex digits of a hash: no realistic collision among one stage's Jobs

_FULL_COMMIT = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_SCP_LIKE_SSH_URL = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:")
_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_NOT_LABEL_VALUE_CHARS = re.compile(r"[^-A-Za-z0-9_.]+")

# The stage container's program. A constant: it holds no user data; requirements, module path and
# args arrive as argv elements:
# sys.argv = ["-c", module_path, time_limit_seconds, requirement_count, *requirements, *args].
BOOTSTRAP_PROGRAM = (
    """\
import os, signal, subprocess, sys
module_path, time_limit, requirement_count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
requirements = sys.argv[4 : 4 + requirement_count]
args = sys.argv[4 + requirement_count :]
if requirements:
    print("bodywork-action: installing " + ", ".join(requirements), flush=True)
    pip = [sys.executable, "-m", "pip", "install", "--no-cache-dir", "--disable-pip-version-check"]
    code = subprocess.call([*pip, "--", *requirements])
    if code:
        print("bodywork-action: pip install failed, exit code " + str(code), file=sys.stderr, flush=True)
        sys.exit(code)
directory, file_name = os.path.split(module_path)
os.chdir(directory or ".")
if file_name.startswith("-"):
    file_name = "./" + file_name
if file_name.endswith(".ipynb"):
    jupyter = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute"]
    command = [*jupyter, "--output-dir", "NOTEBOOK_OUTPUT_DIR", file_name]
else:
    command = [sys.executable, file_name, *args]
if time_limit <= 0:
    print("bodywork-action: running " + module_path, flush=True)
    os.execv(sys.executable, command)
# A time limit needs a parent that outlives the module: in a container the module would be PID 1,
# which ignores signals it has no handler for (an alarm, a SIGTERM from here) - so it runs as a child.
print("bodywork-action: running " + module_path + " (time limit " + str(time_limit) + " s)", flush=True)
child = subprocess.Popen(command)
for forwarded in (signal.SIGTERM, signal.SIGINT):
    signal.signal(forwarded, lambda signum, frame: child.send_signal(signum))
try:
    code = child.wait(timeout=time_limit)
except subprocess.TimeoutExpired:
    message = " ran past its time limit of " + str(time_limit) + " s (max_completion_time_seconds); stopped"
    print("bodywork-action: " + module_path + message, file=sys.stderr, flush=True)
    child.terminate()
    try:
        child.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
    sys.exit(TIME_LIMIT_EXIT_CODE)
sys.exit(code if code >= 0 else 128 - code)
""".replace("NOTEBOOK_OUTPUT_DIR", NOTEBOOK_OUTPUT_DIR)
    .replace("STOP_GRACE_SECONDS", str(TIME_LIMIT_STOP_GRACE_SECONDS))
    .replace("TIME_LIMIT_EXIT_CODE", str(TIME_LIMIT_EXIT_CODE))
)


# --- names and values -----------------------------------------------------------------------------
def target_namespace(pipeline: Pipeline, context: DeployContext) -> str:
    """The namespace everything goes to: the context's override, the pipeline's, or its name."""
    namespace = context.namespace or pipeline.namespace
    if not namespace:
        return k8s_name(pipeline.name)
    if not is_dns1123_label(namespace):
        raise InputError(
            f"namespace {namespace!r} is not a valid Kubernetes namespace name: use at most "
            f"{DNS1123_LABEL_MAX} lower-case letters, digits and '-', starting and ending with a "
            "letter or digit"
        )
    return namespace


def label_value(text: str) -> str:
    """``text`` as a valid label value; altered or long text gets a hash suffix to stay distinct."""
    if len(text) <= DNS1123_LABEL_MAX and _LABEL_VALUE.match(text):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    stem = _NOT_LABEL_VALUE_CHARS.sub("-", text)[: DNS1123_LABEL_MAX - len(digest) - 1]
    stem = stem.strip("-_.")
    return f"{stem}-{digest}" if stem else digest


def pipeline_label(pipeline: Pipeline) -> str:
    return label_value(pipeline.name)


def selector_labels(pipeline: Pipeline, stage: Stage) -> dict[str, str]:
    """Pipeline + stage: what a Deployment and its Service select on (immutable once applied)."""
    return {LABEL_PART_OF: pipeline_label(pipeline), LABEL_NAME: stage.k8s_name}


def deployment_short_id(context: DeployContext) -> str:
    """A short hex id, unique per deployment: from the deployment id, else commit + restart token."""
    source = context.deployment_id or f"{context.commit}:{context.restart_token}"
    return hashlib.sha256(source.encode()).hexdigest()[:SHORT_ID_LENGTH]


def job_name(stage: Stage, context: DeployContext) -> K8sName:
    """``<stage>-<short id>``: unique per deployment, a DNS-1123 label of at most 63 characters."""
    suffix = deployment_short_id(context)
    stem = stage.k8s_name[: DNS1123_LABEL_MAX - len(suffix) - 1].rstrip("-")
    return K8sName(f"{stem}-{suffix}")


def service_name(stage: Stage) -> K8sName:
    return stage.k8s_name


def service_url(stage: Stage, namespace: str) -> str:
    """In-cluster URL of a service stage: ``http://<svc>.<ns>.svc.cluster.local:<port>``."""
    service = _service_settings(stage)
    return f"http://{service_name(stage)}.{namespace}.svc.cluster.local:{service.port}"


def ingress_path(namespace: str, stage: Stage) -> str:
    return f"/{namespace}/{stage.k8s_name}"


def cpu_quantity(cpu_request: float) -> str:
    """Whole cores as ``"1"``, fractions in millicores (``"250m"``); never rounds a request to zero."""
    millicores = max(1, round(cpu_request * 1000))
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def memory_quantity(memory_request_mb: int) -> str:
    return f"{memory_request_mb}M"  # SI megabytes, as Bodywork rendered memory_request_mb


def attempt_deadline_seconds(batch: BatchSettings) -> int | None:
    """The pod's ``activeDeadlineSeconds``: one attempt's module time plus the start-up allowance;
    ``None`` (no limit) when max_completion_time_seconds is 0."""
    if batch.max_completion_time_seconds <= 0:
        return None
    return batch.max_completion_time_seconds + JOB_ATTEMPT_STARTUP_ALLOWANCE_SECONDS


def job_wait_limit_seconds(batch: BatchSettings) -> int | None:
    """The longest a whole Job can take when every attempt runs to its pod's deadline: all attempts
    (retries + 1) plus the Job controller's back-off between them. The client stops waiting after
    this (plus a grace); the cluster itself stops each attempt much sooner."""
    if batch.max_completion_time_seconds <= 0:
        return None
    attempts = batch.retries + 1
    per_attempt = batch.max_completion_time_seconds + JOB_ATTEMPT_STARTUP_ALLOWANCE_SECONDS
    # Doubling until the cap, then the cap for every further retry (in closed form: retries may be huge).
    doubling = 0
    while (
        doubling < batch.retries
        and JOB_RETRY_BACKOFF_BASE_SECONDS << doubling < JOB_RETRY_BACKOFF_MAX_SECONDS
    ):
        doubling += 1
    backoff = JOB_RETRY_BACKOFF_BASE_SECONDS * ((1 << doubling) - 1) + JOB_RETRY_BACKOFF_MAX_SECONDS * (
        batch.retries - doubling
    )
    return attempts * per_attempt + backoff


def startup_failure_threshold(service: ServiceSettings) -> int:
    return max(1, math.ceil(service.max_startup_time_seconds / PROBE_PERIOD_SECONDS))


def progress_deadline_seconds(service: ServiceSettings) -> int:
    return service.max_startup_time_seconds + DEPLOYMENT_PROGRESS_ALLOWANCE_SECONDS


def stage_requirements(stage: Stage) -> tuple[str, ...]:
    """What the bootstrap pip-installs: the stage's requirements, plus nbconvert for notebooks."""
    if not stage.is_notebook:
        return stage.requirements
    missing = tuple(r for r in NOTEBOOK_REQUIREMENTS if r not in stage.requirements)
    return (*stage.requirements, *missing)


# The stage container's ``command``: the same for every stage.
STAGE_COMMAND = ("python", "-c", BOOTSTRAP_PROGRAM)


def stage_args(stage: Stage) -> list[str]:
    """The stage container's ``args``: every user value is one whole argv element."""
    requirements = stage_requirements(stage)
    args = () if stage.is_notebook else stage.args  # nbconvert takes no args (nor did Bodywork)
    time_limit = stage.batch.max_completion_time_seconds if stage.batch is not None else 0
    return [stage.executable_module_path, str(time_limit), str(len(requirements)), *requirements, *args]


def project_path(config_dir: str = "") -> str:
    """Absolute path, in the stage container, of the directory holding ``bodywork.yaml``."""
    if not config_dir:
        return REPO_PATH
    normalised = posixpath.normpath(config_dir)
    if posixpath.isabs(normalised) or normalised == ".." or normalised.startswith("../"):
        raise InputError(
            f"the config directory {config_dir!r} must be a path inside the repository, relative to its root"
        )
    return REPO_PATH if normalised == "." else f"{REPO_PATH}/{normalised}"


# --- metadata -------------------------------------------------------------------------------------
def common_labels(pipeline: Pipeline, context: DeployContext, stage: Stage | None = None) -> dict[str, str]:
    labels = {
        LABEL_PART_OF: pipeline_label(pipeline),
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_COMMIT: label_value(context.commit),
    }
    if stage is not None:
        labels[LABEL_NAME] = stage.k8s_name
        labels[LABEL_STAGE_KIND] = stage.kind.value
    return labels


def common_annotations(
    pipeline: Pipeline, context: DeployContext, stage: Stage | None = None
) -> dict[str, str]:
    annotations = {
        ANNOTATION_PIPELINE: pipeline.name,
        ANNOTATION_COMMIT: context.commit,
        ANNOTATION_REPOSITORY: context.repository_url,
        ANNOTATION_REF: context.ref,
        ANNOTATION_RUN_URL: context.run_url,
        ANNOTATION_ACTOR: context.actor,
    }
    if stage is not None:
        annotations[ANNOTATION_STAGE] = stage.name
    return {key: value for key, value in annotations.items() if value}


def _metadata(
    name: str,
    *,
    namespace: str | None,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
) -> Manifest:
    metadata: Manifest = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    return metadata


# --- the pod --------------------------------------------------------------------------------------
def _uses_ssh(repository_url: str) -> bool:
    return repository_url.startswith("ssh://") or bool(_SCP_LIKE_SSH_URL.match(repository_url))


def check_deploy_context(context: DeployContext) -> None:
    """Refuse a context that can't pin the code or would put credentials where they'd be shown."""
    if not _FULL_COMMIT.match(context.commit):
        raise InputError(
            "the commit must be a full lower-case SHA (40 or 64 hex digits), so every stage runs "
            "exactly that code; a branch or short hash is not enough"
        )
    url = context.repository_url
    if not url:
        raise InputError("no repository URL: the stage pods fetch the code from it")
    if _uses_ssh(url):
        if not context.git_credentials_secret:
            raise InputError(
                "an SSH repository URL needs a credentials secret with the keys "
                f"{GIT_SSH_KEY!r} and {GIT_KNOWN_HOSTS_KEY!r}; or use the HTTPS URL"
            )
        return
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http", "file") or (parts.scheme != "file" and not parts.netloc):
        raise InputError("the repository URL must be an https://, ssh:// or git@host:owner/repo URL")
    if parts.username is not None or parts.password is not None:
        # The URL is not repeated: it holds the credential.
        raise InputError(
            "the repository URL embeds credentials; put them in a Kubernetes secret with the keys "
            f"{GIT_USERNAME_KEY!r} and {GIT_PASSWORD_KEY!r} and name it as the git credentials secret"
        )


def _git_sync_container(context: DeployContext) -> Manifest:
    args = [
        f"--repo={context.repository_url}",
        f"--ref={context.commit}",
        f"--root={CODE_MOUNT_PATH}",
        f"--link={REPO_LINK}",
        "--one-time",
        "--depth=1",
        "--group-write",  # the stage may run as any user: the pod's fsGroup lets it write there
    ]
    env: list[Manifest] = []
    mounts: list[Manifest] = [{"name": CODE_VOLUME, "mountPath": CODE_MOUNT_PATH}]
    if context.git_credentials_secret:
        mounts.append(
            {"name": GIT_CREDENTIALS_VOLUME, "mountPath": GIT_CREDENTIALS_MOUNT_PATH, "readOnly": True}
        )
        if _uses_ssh(context.repository_url):
            args += [
                "--ssh",
                f"--ssh-key-file={GIT_CREDENTIALS_MOUNT_PATH}/{GIT_SSH_KEY}",
                f"--ssh-known-hosts-file={GIT_CREDENTIALS_MOUNT_PATH}/{GIT_KNOWN_HOSTS_KEY}",
            ]
        else:
            args.append(f"--password-file={GIT_CREDENTIALS_MOUNT_PATH}/{GIT_PASSWORD_KEY}")
            # git-sync has no --username-file; its own env var, filled from the secret, is the same flag.
            env.append(_secret_env("GITSYNC_USERNAME", context.git_credentials_secret, GIT_USERNAME_KEY))
    container: Manifest = {
        "name": GIT_SYNC_CONTAINER,
        "image": context.git_sync_image,
        "args": args,
        "volumeMounts": mounts,
        "securityContext": {
            "runAsUser": GIT_SYNC_UID,
            "runAsGroup": GIT_SYNC_UID,
            "allowPrivilegeEscalation": False,
        },
    }
    if env:
        container["env"] = env
    return container


def _secret_env(name: str, secret: str, key: str) -> Manifest:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": False}}}


def _stage_env(
    stage: Stage,
    context: DeployContext,
    *,
    namespace: str,
    working_dir: str,
    log_level: str,
) -> list[Manifest]:
    env = [_secret_env(secret.env_var, secret.secret, secret.env_var) for secret in stage.secrets]
    env += [
        {"name": "GIT_COMMIT_HASH", "value": context.commit},
        {"name": "PYTHONPATH", "value": working_dir},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        # bodywork.yaml's logging.log_level, under the variable Bodywork's own stage containers read.
        {"name": "BODYWORK_LOG_LEVEL", "value": log_level},
    ]
    service = stage.service
    if service is not None:
        env += [
            {"name": "BODYWORK_STAGE", "value": service_name(stage)},
            {"name": "BODYWORK_NAMESPACE", "value": namespace},
            {"name": "BODYWORK_SERVICE_PORT", "value": str(service.port)},
        ]
    return env


def _resources(stage: Stage, context: DeployContext) -> Manifest:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if stage.cpu_request > 0:
        requests["cpu"] = cpu_quantity(stage.cpu_request)
    if stage.memory_request_mb > 0:
        requests["memory"] = memory_quantity(stage.memory_request_mb)
    for name, quantity in stage_resources(stage, context.resource_overrides):
        requests[name] = quantity
        if is_extended_resource(name):  # Kubernetes requires limit == request for these (GPUs, …)
            limits[name] = quantity
    resources: Manifest = {"requests": requests} if requests else {}
    if limits:
        resources["limits"] = limits
    return resources


def _tcp_probe(*, period_seconds: int, failure_threshold: int) -> Manifest:
    return {
        "tcpSocket": {"port": PORT_NAME},
        "periodSeconds": period_seconds,
        "failureThreshold": failure_threshold,
    }


def _stage_container(
    stage: Stage,
    pipeline: Pipeline,
    context: DeployContext,
    *,
    namespace: str,
    config_dir: str,
) -> Manifest:
    working_dir = project_path(config_dir)
    container: Manifest = {
        "name": STAGE_CONTAINER,
        "image": context.image or pipeline.docker_image,
        "command": list(STAGE_COMMAND),
        "args": stage_args(stage),
        "workingDir": working_dir,
        "env": _stage_env(
            stage, context, namespace=namespace, working_dir=working_dir, log_level=pipeline.log_level
        ),
        "volumeMounts": [{"name": CODE_VOLUME, "mountPath": CODE_MOUNT_PATH}],
    }
    resources = _resources(stage, context)
    if resources:
        container["resources"] = resources
    service = stage.service
    if service is not None:
        container["ports"] = [{"name": PORT_NAME, "containerPort": service.port, "protocol": "TCP"}]
        container["startupProbe"] = _tcp_probe(
            period_seconds=PROBE_PERIOD_SECONDS, failure_threshold=startup_failure_threshold(service)
        )
        container["readinessProbe"] = _tcp_probe(period_seconds=READINESS_PERIOD_SECONDS, failure_threshold=3)
        container["livenessProbe"] = _tcp_probe(
            period_seconds=PROBE_PERIOD_SECONDS, failure_threshold=LIVENESS_FAILURE_THRESHOLD
        )
    return container


def _pod_spec(
    stage: Stage,
    pipeline: Pipeline,
    context: DeployContext,
    *,
    namespace: str,
    restart_policy: str,
    config_dir: str,
) -> Manifest:
    check_deploy_context(context)
    volumes: list[Manifest] = [{"name": CODE_VOLUME, "emptyDir": {}}]
    if context.git_credentials_secret:
        volumes.append(
            {
                "name": GIT_CREDENTIALS_VOLUME,
                # 0440 + fsGroup: readable by git-sync's group only (ssh refuses world-readable keys).
                "secret": {"secretName": context.git_credentials_secret, "defaultMode": 0o440},
            }
        )
    spec: Manifest = {
        "restartPolicy": restart_policy,
        # Stages don't talk to the Kubernetes API; don't hand them a token.
        "automountServiceAccountToken": False,
        "securityContext": {"fsGroup": GIT_SYNC_UID},
        "initContainers": [_git_sync_container(context)],
        "containers": [
            _stage_container(
                stage,
                pipeline,
                context,
                namespace=namespace,
                config_dir=config_dir,
            )
        ],
        "volumes": volumes,
    }
    if context.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": name} for name in context.image_pull_secrets]
    return spec


def _service_settings(stage: Stage) -> ServiceSettings:
    service = stage.service
    if service is None:
        raise ValueError(f"stage {stage.name!r} is a batch stage, not a service stage")
    return service


def _batch_settings(stage: Stage) -> BatchSettings:
    batch = stage.batch
    if batch is None:
        raise ValueError(f"stage {stage.name!r} is a service stage, not a batch stage")
    return batch


# --- the objects ----------------------------------------------------------------------------------
def render_namespace(pipeline: Pipeline, context: DeployContext) -> Manifest:
    """The Namespace, marked as created by this tool for this pipeline: ``delete`` removes a
    namespace only when it carries that mark, and it is applied only when the namespace is new."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": _metadata(
            target_namespace(pipeline, context),
            namespace=None,
            labels={LABEL_MANAGED_BY: MANAGED_BY, LABEL_PART_OF: pipeline_label(pipeline)},
            annotations={
                **common_annotations(pipeline, context),
                ANNOTATION_NAMESPACE_CREATED_FOR: pipeline_label(pipeline),
            },
        ),
    }


def render_job(
    stage: Stage,
    pipeline: Pipeline,
    context: DeployContext,
    *,
    config_dir: str = "",
) -> Manifest:
    """A batch stage as a Job (where a stage becomes a Job)."""
    batch = _batch_settings(stage)
    namespace = target_namespace(pipeline, context)
    labels = {**common_labels(pipeline, context, stage), LABEL_DEPLOYMENT: deployment_short_id(context)}
    annotations = common_annotations(pipeline, context, stage)
    if context.deployment_id:
        annotations[ANNOTATION_DEPLOYMENT_ID] = context.deployment_id
    spec: Manifest = {
        "completions": 1,
        "parallelism": 1,
        "backoffLimit": batch.retries,  # Kubernetes really retries (Bodywork's status check didn't)
        "template": {
            "metadata": {"labels": dict(labels), "annotations": dict(annotations)},
            "spec": _pod_spec(
                stage,
                pipeline,
                context,
                namespace=namespace,
                restart_policy="Never",
                config_dir=config_dir,
            ),
        },
    }
    deadline = attempt_deadline_seconds(batch)
    if deadline is not None:  # per attempt: a Job-level deadline would span every retry
        spec["template"]["spec"]["activeDeadlineSeconds"] = deadline
    # No ttlSecondsAfterFinished: the cluster code prunes old Jobs itself, keeping the last few.
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(
            job_name(stage, context), namespace=namespace, labels=labels, annotations=annotations
        ),
        "spec": spec,
    }


def render_deployment(
    stage: Stage, pipeline: Pipeline, context: DeployContext, *, config_dir: str = ""
) -> Manifest:
    service = _service_settings(stage)
    namespace = target_namespace(pipeline, context)
    labels = common_labels(pipeline, context, stage)
    annotations = common_annotations(pipeline, context, stage)
    pod_annotations = dict(annotations)
    if context.restart_token:
        pod_annotations[ANNOTATION_RESTART_TOKEN] = context.restart_token
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(
            service_name(stage), namespace=namespace, labels=labels, annotations=annotations
        ),
        "spec": {
            "replicas": service.replicas,
            "selector": {"matchLabels": selector_labels(pipeline, stage)},
            "strategy": {
                "type": "RollingUpdate",
                # The old pods keep serving until a new one is ready; one extra pod at a time.
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "revisionHistoryLimit": REVISION_HISTORY_LIMIT,
            "progressDeadlineSeconds": progress_deadline_seconds(service),
            "template": {
                "metadata": {"labels": dict(labels), "annotations": pod_annotations},
                "spec": _pod_spec(
                    stage,
                    pipeline,
                    context,
                    namespace=namespace,
                    restart_policy="Always",
                    config_dir=config_dir,
                ),
            },
        },
    }


def render_service(stage: Stage, pipeline: Pipeline, context: DeployContext) -> Manifest:
    service = _service_settings(stage)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(
            service_name(stage),
            namespace=target_namespace(pipeline, context),
            labels=common_labels(pipeline, context, stage),
            annotations=common_annotations(pipeline, context, stage),
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(pipeline, stage),
            "ports": [{"name": PORT_NAME, "port": service.port, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def render_ingress(stage: Stage, pipeline: Pipeline, context: DeployContext) -> Manifest:
    """Path ``/<namespace>/<stage>``, pathType Prefix (Bodywork put a regex under pathType Exact,
    which matched nothing beneath the path).

    No rewrite: the service receives the full path (MLflow, for one, takes it as --static-prefix).
    """
    _service_settings(stage)
    namespace = target_namespace(pipeline, context)
    spec: Manifest = {}
    if context.ingress_class:
        spec["ingressClassName"] = context.ingress_class
    spec["rules"] = [
        {
            "http": {
                "paths": [
                    {
                        "path": ingress_path(namespace, stage),
                        "pathType": "Prefix",
                        "backend": {"service": {"name": service_name(stage), "port": {"name": PORT_NAME}}},
                    }
                ]
            }
        }
    ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _metadata(
            service_name(stage),
            namespace=namespace,
            labels=common_labels(pipeline, context, stage),
            annotations=common_annotations(pipeline, context, stage),
        ),
        "spec": spec,
    }


def render_secret(
    name: str,
    values: Mapping[str, str],
    *,
    namespace: str,
    group: str,
    kept_data: Mapping[str, str] | None = None,
    owner: str | None = None,
    existing_labels: Mapping[str, str] | None = None,
) -> Manifest:
    """A Secret holding ``values`` as stringData (multi-line values survive as written) and
    ``kept_data`` (already base64, e.g. keys of the existing secret not supplied now) as data.

    ``owner`` (a pipeline label) marks a secret this tool creates for that pipeline; a secret that
    someone else made keeps ``existing_labels`` and gains ours. Never print the result: show
    ``redact_secret(...)`` instead.
    """
    labels = {**(existing_labels or {}), LABEL_MANAGED_BY: MANAGED_BY}
    if group:
        labels[LABEL_SECRET_GROUP] = label_value(group)
    if owner:
        labels[LABEL_PART_OF] = owner
    manifest: Manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(name, namespace=namespace, labels=labels, annotations={}),
        "type": "Opaque",
    }
    if kept_data:
        manifest["data"] = dict(kept_data)
    manifest["stringData"] = dict(values)
    return manifest


def with_stage_env(manifest: Mapping[str, Any], extra_env: Mapping[str, str]) -> Manifest:
    """A copy of a planned Job or Deployment whose stage container also gets ``extra_env`` (the
    run_on_failure stage's EXCEPTION_MESSAGE, known only once something failed)."""
    copied: Manifest = copy.deepcopy(dict(manifest))
    for container in copied["spec"]["template"]["spec"]["containers"]:
        if container["name"] == STAGE_CONTAINER:
            added = [{"name": name, "value": value} for name, value in extra_env.items()]
            container["env"] = [*container.get("env", []), *added]
    return copied


def redact_secret(manifest: Mapping[str, Any]) -> Manifest:
    """The same object with every value under ``data`` / ``stringData`` replaced; keys are kept."""
    redacted = dict(manifest)
    for field in ("data", "stringData"):
        if field in redacted and redacted[field] is not None:
            redacted[field] = {key: SECRET_VALUE_REDACTED for key in redacted[field]}
    return redacted


# Which objects a stage becomes, in apply order (a data table, like lightkube's RANK_ORDER): the
# Service after its Deployment, the Ingress after its Service. ``None`` means "not for this stage".
StageRenderer = Callable[[Stage, Pipeline, DeployContext, str], "Manifest | None"]
STAGE_RENDERERS: Mapping[StageKind, tuple[StageRenderer, ...]] = {
    StageKind.BATCH: (lambda s, p, c, d: render_job(s, p, c, config_dir=d),),
    StageKind.SERVICE: (
        lambda s, p, c, d: render_deployment(s, p, c, config_dir=d),
        lambda s, p, c, d: render_service(s, p, c),
        lambda s, p, c, d: render_ingress(s, p, c) if _service_settings(s).ingress else None,
    ),
}


def render_stage_objects(
    stage: Stage, pipeline: Pipeline, context: DeployContext, *, config_dir: str = ""
) -> list[Manifest]:
    rendered = (render(stage, pipeline, context, config_dir) for render in STAGE_RENDERERS[stage.kind])
    return [manifest for manifest in rendered if manifest is not None]


# --- output ---------------------------------------------------------------------------------------
def format_manifests_yaml(objects: Iterable[Mapping[str, Any]]) -> str:
    """Multi-document YAML for ``plan --output yaml``; Secret values are always redacted."""
    import yaml  # lazily: the CLI's --help must not pay for it

    shown: Sequence[Mapping[str, Any]] = [
        redact_secret(obj) if obj.get("kind") == "Secret" else obj for obj in objects
    ]
    return yaml.safe_dump_all(
        [_plain(obj) for obj in shown], sort_keys=False, default_flow_style=False, width=110
    )


def _plain(value: Any) -> Any:
    """Plain dicts and lists only, so safe_dump never meets a mapping proxy or a tuple."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value
