"""The DAG string (``a >> b,c >> d``) as ordered steps, and Kubernetes names derived from stage names.

Pure functions. Bodywork 3.0's syntax: spaces are removed, ``>>`` separates steps that run
in order, ``,`` separates stages that run concurrently within a step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bodywork_action.model import K8sName, StageName

DNS1123_LABEL_MAX = 63
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NOT_NAME_CHARS = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class DagProblem:
    message: str


def parse_dag(text: str) -> tuple[tuple[tuple[StageName, ...], ...], list[DagProblem]]:
    """Parse a DAG string into steps; problems are returned, not raised, so all can be reported."""
    problems: list[DagProblem] = []
    steps: list[tuple[StageName, ...]] = []
    compact = text.replace(" ", "")
    if not compact.strip():
        return (), [DagProblem("the DAG is empty: name at least one stage, e.g. 'train >> serve'")]
    seen: dict[str, int] = {}
    for number, step_text in enumerate(compact.split(">>"), start=1):
        names = step_text.split(",")
        if any(not name.strip() for name in names):
            shown = step_text or "<nothing>"
            problems.append(DagProblem(f"step {number} ({shown!r}) has an empty stage name"))
        step = tuple(StageName(name.strip()) for name in names if name.strip())
        for name in step:
            if name in seen:
                problems.append(
                    DagProblem(f"stage {name!r} appears more than once (steps {seen[name]} and {number})")
                )
            else:
                seen[name] = number
        if step:
            steps.append(step)
    return tuple(steps), problems


def k8s_name(name: str) -> K8sName:
    """A DNS-1123 label from a stage or pipeline name: lower case, runs of other characters → '-'.

    Bodywork kept upper case and had no length limit; the API server refuses both.
    """
    candidate = _NOT_NAME_CHARS.sub("-", name.strip().lower()).strip("-")
    return K8sName(candidate[:DNS1123_LABEL_MAX].rstrip("-"))


def is_dns1123_label(value: str) -> bool:
    return len(value) <= DNS1123_LABEL_MAX and bool(_DNS1123_LABEL.match(value))
