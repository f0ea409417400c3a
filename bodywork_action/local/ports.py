"""Which port each service stage of a local run listens on.

Shell module (sockets). On Kubernetes every service has its own address, so two services may both
use ``port: 5000``; on one machine they cannot. ``run --local --port STAGE=PORT`` chooses a port; a
service whose port an earlier stage already uses is moved to a free one. Either way the stage learns
its port from ``BODYWORK_SERVICE_PORT``: a stage that hard-codes its port cannot be moved, which shows
as the moved port never answering (the runner says so). A port held by another process is an error
before anything starts.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass

from bodywork_action.errors import InputError
from bodywork_action.model import Stage

LOCAL_HOST = "127.0.0.1"  # readiness checks and printed URLs


class PortInUse(InputError):
    """A service stage's port is taken (or two --port options give one port twice); nothing started."""


def check_port_free(port: int) -> bool:
    """True when nothing listens on ``port`` on any interface (binding the wildcard address would fail)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT leftovers
        try:
            probe.bind(("", port))
        except OSError:
            return False
    return True


def pick_free_port(exclude: Container[int]) -> int:
    """A port nothing listens on (the kernel's choice), not one of ``exclude``."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("", 0))
            port = int(probe.getsockname()[1])
        if port not in exclude:
            return port


@dataclass(frozen=True)
class PortPlan:
    """Each service stage's port here, and the ``service.port`` each moved stage asked for."""

    ports: Mapping[str, int]
    wanted: Mapping[str, int]  # only the stages not on their own service.port
    chosen: frozenset[str]  # stages moved by --port (the others were moved because the port was shared)

    def url(self, stage: str) -> str:
        return f"http://{LOCAL_HOST}:{self.ports[stage]}"


def assign_service_ports(
    stages: Sequence[Stage],
    requested: Mapping[str, int],
    *,
    is_free: Callable[[int], bool] = check_port_free,
    pick_free: Callable[[Container[int]], int] = pick_free_port,
) -> PortPlan:
    """``requested`` (``--port``) first, then each service on its own port unless an earlier stage has
    it (then a free one); every port but the freshly picked ones must be free, else one error."""
    services = [s for s in stages if s.service is not None]
    owners: dict[int, str] = {}
    problems: list[str] = []
    for stage in services:
        port = requested.get(stage.name)
        if port is None:
            continue
        if port in owners:
            problems.append(f"--port gives stages {owners[port]!r} and {stage.name!r} the same port {port}")
        owners[port] = stage.name
    shared: list[Stage] = []
    for stage in services:
        assert stage.service is not None
        if stage.name in requested:
            continue
        if stage.service.port in owners:
            shared.append(stage)
        else:
            owners[stage.service.port] = stage.name
    for port, name in owners.items():
        if not is_free(port):
            problems.append(
                f"port {port} (stage {name!r}) is already in use: stop whatever holds it, "
                f"or use --port {name}=PORT"
            )
    if problems:
        raise PortInUse(
            "cannot run locally: " + "; ".join(problems) + " (a detached run of this project? "
            "`bodywork-action stop --local` stops it). Nothing was started."
        )
    for stage in shared:
        owners[pick_free(owners)] = stage.name
    ports = {name: port for port, name in owners.items()}
    wanted: dict[str, int] = {
        s.name: s.service.port for s in services if s.service is not None and ports[s.name] != s.service.port
    }
    return PortPlan(ports=ports, wanted=wanted, chosen=frozenset(requested) & set(wanted))


def format_port_table(stages: Sequence[Stage], plan: PortPlan) -> list[str]:
    """``stage → http://127.0.0.1:PORT (wanted 5000)`` per service, under a line saying why; [] when
    every service is on its own service.port."""
    if not plan.wanted:
        return []
    shared = set(plan.wanted) - plan.chosen
    why = (
        "services that share a port (fine on Kubernetes, not on one machine) moved to free ports"
        if shared
        else "services on the ports --port chose"
    )
    names = [s.name for s in stages if s.service is not None]
    width = max(len(name) for name in names)
    lines = [f"{why}; each stage reads its port from BODYWORK_SERVICE_PORT (--port STAGE=PORT chooses):"]
    for name in names:
        moved = f" (wanted {plan.wanted[name]})" if name in plan.wanted else ""
        lines.append(f"  {name:<{width}} → {plan.url(name)}{moved}")
    return lines


def describe_moved_port(stage: Stage, plan: PortPlan) -> str:
    """For a moved service that never answered: why that may be (it hard-codes its port), or ""."""
    if stage.name not in plan.wanted:
        return ""
    wanted, port = plan.wanted[stage.name], plan.ports[stage.name]
    return (
        f"; it was moved from port {wanted} to {port} (BODYWORK_SERVICE_PORT={port}): a stage that "
        f"listens on {wanted} whatever it is told cannot be moved, so give the other stage another "
        f"port with --port, or make this one read BODYWORK_SERVICE_PORT"
    )


def find_hard_coded_ports(stages: Sequence[Stage], plan: PortPlan) -> list[str]:
    """A warning per moved stage whose args name the port it wanted (it may listen there regardless)."""
    return [
        f"warning: {s.name}'s args name port {plan.wanted[s.name]}; if that is what it listens on, "
        f"it will not answer on {plan.ports[s.name]}"
        for s in stages
        if s.name in plan.wanted and any(str(plan.wanted[s.name]) in arg for arg in s.args)
    ]
