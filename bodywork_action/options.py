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


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str, *, option: str) -> float:
    """``90s``, ``15m``, ``1h`` or plain seconds (``90``), more than zero; else an error naming ``option``."""
    match = _DURATION.match(text)
    seconds = float(match[1]) * _UNIT_SECONDS[match[2]] if match else 0.0
    if not seconds > 0:
        raise InputError(
            f"{option} {text!r}: give a duration of more than zero, in seconds (90) or with a unit: "
            "90s, 15m, 1h"
        )
    return seconds


def describe_duration(seconds: float) -> str:
    """The shortest of ``1h``, ``15m``, ``90s`` that is exact."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def parse_port_overrides(specs: Iterable[str], pipeline: Pipeline) -> dict[str, int]:
    """``STAGE=PORT`` per service stage of the DAG (``run --local --port``), each port 1-65535."""
    services = _service_stages(pipeline)
    ports: dict[str, int] = {}
    for raw in specs:
        stage, sep, port_text = raw.partition("=")
        stage, port_text = stage.strip(), port_text.strip()
        if not sep or not stage or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InputError(f"--port {raw!r}: give STAGE=PORT, a port from 1 to 65535 (e.g. server=5001)")
        if stage not in services:
            known = ", ".join(services) or "none"
            raise InputError(
                f"--port {raw!r}: {stage!r} is not a service stage of the DAG (services: {known})"
            )
        ports[stage] = int(port_text)
    return ports
