"""Options shared by the CLI, the action and the local runner, parsed and checked against the pipeline.

Pure functions: a bad option is an ``InputError`` naming it, never a silent default.
"""

from __future__ import annotations

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
