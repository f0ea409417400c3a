"""Options shared by the CLI, the action and the local runner, parsed and checked against the pipeline.

Pure functions: a bad option is an ``InputError`` naming it, never a silent default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bodywork_action.errors import InputError
from bodywork_action.model import Pipeline

# One deploy (or delete) of a pipeline at a time: how long a second run waits for the Lease by
# default (the CLI's --lock-timeout, the action's lock-timeout-seconds).
DEFAULT_LOCK_TIMEOUT_SECONDS = 300


def _service_stages(pipeline: Pipeline) -> list[str]:
    return [stage.name for stage in pipeline.dag_stages if stage.service is not None]


def parse_smoke_tests(specs: Iterable[str], pipeline: Pipeline) -> dict[str, str]:
    """``STAGE=/path`` per service stage, or a bare ``/path`` for every service stage of the DAG."""
    services = _service_stages(pipeline)
    parsed: dict[str, str] = {}
    for raw in specs:
        spec = raw.strip()
        if not spec:
            continue
        stage, sep, path = spec.partition("=")
        if not sep:
            stage, path = "", spec
        stage, path = stage.strip(), path.strip()
        if not path.startswith("/"):
            raise InputError(f"smoke test {spec!r}: the path must start with '/', e.g. server=/health")
        if not stage:
            if not services:
                raise InputError(f"smoke test {spec!r}: the pipeline has no service stage to test")
            parsed.update(dict.fromkeys(services, path))
        elif stage not in services:
            known = ", ".join(services) or "none"
            raise InputError(
                f"smoke test {spec!r}: {stage!r} is not a service stage of the DAG (services: {known})"
            )
        else:
            parsed[stage] = path
    return parsed


_MLFLOW_REQUIREMENT = re.compile(r"^mlflow(?:-skinny)?(?:\[[^\]]*\])?\s*(?:[=<>!~;@]|$)", re.IGNORECASE)
_SERVER_WORDS = re.compile(r"server|tracking", re.IGNORECASE)


def choose_mlflow_stage(pipeline: Pipeline, requested: str) -> tuple[str, str]:
    """The service stage that runs the MLflow tracking server, and why it was chosen ("" if none).

    A stage that only imports mlflow (a scoring service, say) is not a tracking server: besides mlflow
    in its requirements, its module's file name or its args must say "server" or "tracking". With no
    such stage, or more than one, nothing is guessed and the reason says to set ``mlflow-stage``.
    """
    services = [s for s in pipeline.dag_stages if s.service is not None]
    if requested:
        if requested not in {s.name for s in services}:
            raise InputError(f"input 'mlflow-stage': {requested!r} is not a service stage of the DAG")
        return requested, "named by the mlflow-stage input"
    with_mlflow = [s for s in services if any(_MLFLOW_REQUIREMENT.match(r.strip()) for r in s.requirements)]
    servers = [
        s
        for s in with_mlflow
        if _SERVER_WORDS.search(s.executable_module_path.rsplit("/", 1)[-1])
        or any(_SERVER_WORDS.search(arg) for arg in s.args)
    ]
    if len(servers) == 1:
        stage = servers[0]
        return stage.name, f"it needs mlflow and runs {stage.executable_module_path} (a tracking server)"
    if len(servers) > 1:
        names = ", ".join(s.name for s in servers)
        return "", f"several stages look like MLflow servers ({names}): set mlflow-stage to choose"
    if with_mlflow:
        names = ", ".join(s.name for s in with_mlflow)
        return "", (
            f"service stage(s) {names} need mlflow but none looks like a tracking server: "
            "set mlflow-stage if one is"
        )
    return "", ""
