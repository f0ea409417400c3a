"""Which pods and containers the ``logs`` command reads, and how its lines look.

Pure: from the pipeline and the objects read from its namespace (Jobs, Deployments, pods) to one
``StageLogs`` per stage — a header saying what is shown (which attempt, which pods) or why there is
nothing to show, and the containers to read. ``kube/logs.py`` reads them and prints each line through
``format_log_line`` after redaction.

What is shown (the README's "Logs" section):

- a batch stage: its newest attempt — the newest Job of the stage, that Job's newest pod;
- a service stage: every pod of its Deployment's current template, each line prefixed with the pod's
  short name (the part its ReplicaSet made up);
- the stage's own container; git-sync's (the init container that fetches the commit) only when asked
  for, or on its own when the stage container never started because git-sync failed — its log is then
  the only one that says why;
- nothing to read (not deployed, no pod yet, a container still waiting, no previous instance) is said
  in the header or a note, and is not an error.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bodywork_action import render
from bodywork_action.errors import InputError
from bodywork_action.model import Pipeline, Stage
from bodywork_action.verdicts import select_job_pods, select_template_pods

Obj = Mapping[str, Any]

STAGE_CONTAINER = render.STAGE_CONTAINER
GIT_SYNC_CONTAINER = render.GIT_SYNC_CONTAINER
CONTAINERS = (STAGE_CONTAINER, GIT_SYNC_CONTAINER)

# kubectl's --since takes a Go duration: a sequence of decimal numbers with units ("1h30m", "90s").
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_since(text: str) -> int:
    """``--since`` as whole seconds, rounded up as kubectl does (``10m`` → 600, ``1h30m`` → 5400)."""
    spec = text.strip()
    parts = list(_DURATION_PART.finditer(spec))
    if not spec or "".join(m.group(0) for m in parts) != spec:
        raise InputError(f"--since {text!r}: expected a duration such as 30s, 10m, 1h or 1h30m")
    seconds = sum(float(m.group(1)) * _UNIT_SECONDS[m.group(2)] for m in parts)
    whole = int(seconds) + (seconds > int(seconds))
    if whole <= 0:
        raise InputError(f"--since {text!r}: the duration must be more than 0")
    return whole


def select_stages(pipeline: Pipeline, name: str = "") -> tuple[Stage, ...]:
    """Every stage (the DAG's in order, then any other, e.g. ``run_on_failure``), or the one named."""
    ordered = [*pipeline.dag_stages]
    ordered += [stage for stage in pipeline.stages.values() if stage not in ordered]
    if not name:
        return tuple(ordered)
    for stage in ordered:
        if name in (stage.name, stage.k8s_name):
            return (stage,)
    names = [stage.name for stage in ordered]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise InputError(f"{pipeline.name} has no stage {name!r}{hint} (stages: {', '.join(names)})")


@dataclass(frozen=True)
class LogSource:
    """One container of one pod to read; ``skip_reason``: why it can't be read (then it isn't)."""

    stage: str
    pod: str
    container: str
    prefix: str = ""  # put before each line ("" for none)
    note: str = ""  # said before its lines
    skip_reason: str = ""


@dataclass(frozen=True)
class StageLogs:
    stage: str
    kind: str  # "batch" or "service"
    header: str
    sources: tuple[LogSource, ...] = ()


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _created(obj: Obj) -> tuple[str, int, str]:
    """Creation order. Timestamps have whole seconds; within one, the higher resourceVersion: a
    newer attempt (or Job) is created after the older one's last change (one deploy at a time)."""
    version = str(_meta(obj).get("resourceVersion") or "")
    return (
        str(_meta(obj).get("creationTimestamp") or ""),
        int(version) if version.isdigit() else 0,
        str(_meta(obj).get("name") or ""),
    )


def _of_stage(objs: Iterable[Obj], stage: Stage) -> list[Obj]:
    return [o for o in objs if (_meta(o).get("labels") or {}).get(render.LABEL_NAME) == stage.k8s_name]


def _status_of(pod: Obj, container: str) -> Obj:
    status = pod.get("status") or {}
    statuses = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    return next((s for s in statuses if s.get("name") == container), {})


def _git_sync_failure(pod: Obj) -> str:
    """Why git-sync stopped the stage container from starting ("" if it did not)."""
    status = _status_of(pod, GIT_SYNC_CONTAINER)
    for state in (status.get("state") or {}, status.get("lastState") or {}):
        terminated = state.get("terminated") or {}
        if terminated and terminated.get("exitCode") not in (0, None):
            return f"git-sync failed (exit {terminated['exitCode']})"
    return ""


@dataclass(frozen=True)
class _Wanted:
    container: str  # which container of each pod
    previous: bool  # its previous instance
    label: str  # the stage's name before each line ("" for none)
    asked: bool  # the container was named (no falling back to git-sync's log)


def _source(stage: Stage, pod: Obj, wanted: _Wanted, *, prefix: str) -> LogSource:
    """The container to read in ``pod``, or why there is nothing to read."""
    name = str(_meta(pod).get("name") or "")
    container, previous, asked = wanted.container, wanted.previous, wanted.asked
    status = _status_of(pod, container)
    restarts = int(status.get("restartCount") or 0)
    state = status.get("state") or {}
    if previous:
        if restarts:
            return LogSource(stage.name, name, container, prefix)
        why = " (a batch stage's pods are never restarted: each retry is a new pod)" if stage.batch else ""
        return LogSource(
            stage.name,
            name,
            container,
            prefix,
            skip_reason=f"{container}: no previous instance, it has not restarted{why}",
        )
    if "running" in state or "terminated" in state or restarts:
        return LogSource(stage.name, name, container, prefix)
    failure = _git_sync_failure(pod) if container == STAGE_CONTAINER and not asked else ""
    if failure:
        return LogSource(
            stage.name,
            name,
            GIT_SYNC_CONTAINER,
            prefix,
            note=f"the stage container never started: {failure}; its log instead",
        )
    reason = str(
        (state.get("waiting") or {}).get("reason") or (pod.get("status") or {}).get("phase") or "Pending"
    )
    return LogSource(
        stage.name, name, container, prefix, skip_reason=f"{container} has not started yet ({reason})"
    )


def _batch_logs(
    stage: Stage,
    jobs: Sequence[Obj],
    pods: Sequence[Obj],
    wanted: _Wanted,
) -> StageLogs:
    ours = sorted(_of_stage(jobs, stage), key=_created)
    if not ours:
        return StageLogs(stage.name, "batch", f"{stage.name} (batch): not deployed (no Job), no logs")
    job = ours[-1]
    job_name = str(_meta(job).get("name"))
    attempts = sorted(select_job_pods(job, pods), key=_created)
    if not attempts:
        return StageLogs(
            stage.name, "batch", f"{stage.name} (batch): Job {job_name} has no pods yet, no logs"
        )
    pod = attempts[-1]
    header = (
        f"{stage.name} (batch): attempt {len(attempts)} of {len(attempts)}, "
        f"pod {_meta(pod).get('name')} of Job {job_name}"
    )
    source = _source(stage, pod, wanted, prefix=wanted.label)
    return StageLogs(stage.name, "batch", header, (source,))


def short_pod_names(pod_names: Sequence[str], workload: str) -> dict[str, str]:
    """Each pod's name without what all of them share: the random suffix, else all after ``workload-``."""
    suffixes = {name: name.rsplit("-", 1)[-1] for name in pod_names}
    if len(set(suffixes.values())) == len(pod_names):
        return suffixes
    return {name: name.removeprefix(f"{workload}-") for name in pod_names}


def _service_logs(
    stage: Stage,
    deployments: Sequence[Obj],
    pods: Sequence[Obj],
    wanted: _Wanted,
) -> StageLogs:
    name = render.service_name(stage)
    deployment = next((d for d in deployments if _meta(d).get("name") == name), None)
    if deployment is None:
        return StageLogs(
            stage.name, "service", f"{stage.name} (service): not deployed (no Deployment), no logs"
        )
    current = sorted(
        select_template_pods(deployment, _of_stage(pods, stage)), key=lambda p: str(_meta(p).get("name"))
    )
    if not current:
        return StageLogs(
            stage.name, "service", f"{stage.name} (service): Deployment {name} has no pods yet, no logs"
        )
    names = [str(_meta(p).get("name")) for p in current]
    shorts = short_pod_names(names, name)
    header = f"{stage.name} (service): {len(current)} pod(s) of Deployment {name}: " + ", ".join(
        f"{pod} ({shorts[pod]})" for pod in names
    )
    sources = tuple(
        _source(
            stage, pod, wanted, prefix="/".join(part for part in (wanted.label, shorts[pod_name]) if part)
        )
        for pod, pod_name in zip(current, names, strict=True)
    )
    return StageLogs(stage.name, "service", header, sources)


def plan_stage_logs(
    stages: Sequence[Stage],
    *,
    jobs: Sequence[Obj],
    deployments: Sequence[Obj],
    pods: Sequence[Obj],
    container: str = "",
    previous: bool = False,
    label_stages: bool = False,
) -> tuple[StageLogs, ...]:
    """What to read for each stage. ``container``: "" for the stage's own (git-sync's if it never
    started because git-sync failed), or one of ``CONTAINERS``; ``label_stages``: prefix every line
    with its stage (several stages followed at once)."""
    if container and container not in CONTAINERS:
        raise InputError(f"--container {container!r}: one of {', '.join(CONTAINERS)}")
    chosen = container or STAGE_CONTAINER
    planned: list[StageLogs] = []
    for stage in stages:
        wanted = _Wanted(chosen, previous, stage.name if label_stages else "", bool(container))
        if stage.service is not None:
            planned.append(_service_logs(stage, deployments, pods, wanted))
        else:
            planned.append(_batch_logs(stage, jobs, pods, wanted))
    return tuple(planned)


def format_log_line(prefix: str, line: str) -> str:
    return f"{prefix} | {line}" if prefix else line


def referenced_secret_names(stages: Iterable[Stage], pods: Iterable[Obj]) -> list[str]:
    """The Secrets whose values may show in these logs: those the stages name, and any the pods
    reference (env, envFrom, volumes — the git credentials too)."""
    names = {secret.secret for stage in stages for secret in stage.secrets}
    for pod in pods:
        spec = pod.get("spec") or {}
        for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            for env in container.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef") or {}
                if ref.get("name"):
                    names.add(str(ref["name"]))
            for source in container.get("envFrom") or []:
                ref = source.get("secretRef") or {}
                if ref.get("name"):
                    names.add(str(ref["name"]))
        for volume in spec.get("volumes") or []:
            secret = volume.get("secret") or {}
            if secret.get("secretName"):
                names.add(str(secret["secretName"]))
    return sorted(names)
