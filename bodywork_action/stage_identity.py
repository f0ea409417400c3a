"""A stage's identity in the cluster: its objects, whatever kind the stage was when they were made.

Core. Every object of a stage carries the stage's Kubernetes name (``app.kubernetes.io/name``) and its
kind (``bodywork.dev/stage-kind``). A stage changed from batch to service (or back) keeps that name,
so its old objects are recognised by it: pruning removes the old kind's objects once the new kind is
deployed, and ``status`` shows one row per stage, of the kind the pipeline has now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bodywork_action import render
from bodywork_action.model import Pipeline, StageKind
from bodywork_action.results import StageState

# The object kinds each stage kind is made of.
KINDS_OF_STAGE = {
    StageKind.BATCH.value: frozenset({"Job"}),
    StageKind.SERVICE.value: frozenset({"Deployment", "Service", "Ingress"}),
}


def stage_of(obj: Mapping[str, Any]) -> str:
    """The Kubernetes name of the stage ``obj`` belongs to ("" for the pipeline's own objects)."""
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(render.LABEL_NAME, ""))


def build_stage_kinds(desired: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Stage name → "batch" or "service", as the objects about to be deployed say."""
    kinds: dict[str, str] = {}
    for obj in desired:
        kind = str(((obj.get("metadata") or {}).get("labels") or {}).get(render.LABEL_STAGE_KIND, ""))
        if stage_of(obj) and kind:
            kinds[stage_of(obj)] = kind
    return kinds


def is_of_former_kind(obj: Mapping[str, Any], stage_kinds: Mapping[str, str]) -> bool:
    """Is ``obj`` left from before its stage changed kind (a Job of what is now a service, or the
    Deployment, Service or Ingress of what is now batch)?"""
    current = stage_kinds.get(stage_of(obj))
    return current in KINDS_OF_STAGE and str(obj.get("kind")) not in KINDS_OF_STAGE[current]


def select_current_states(states: Sequence[StageState], pipeline: Pipeline) -> tuple[StageState, ...]:
    """One row per stage of ``pipeline``: where both kinds' objects exist (a deploy that changed the
    stage's kind failed before pruning), the row of the kind the pipeline has now. Stages no longer
    in the pipeline keep every row: there is no current kind to prefer."""
    current: dict[str, str] = {stage.name: stage.kind.value for stage in pipeline.stages.values()}
    kinds_seen: dict[str, set[str]] = {}
    for state in states:
        kinds_seen.setdefault(state.stage, set()).add(state.kind)
    return tuple(
        state
        for state in states
        if state.stage not in current
        or len(kinds_seen[state.stage]) == 1
        or state.kind == current[state.stage]
    )
