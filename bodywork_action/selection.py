"""Partial runs: which stages of the DAG a run touches (``--only a,b`` or ``--from-step N``).

Core: ``select_stages`` checks the request against the pipeline and returns a ``StageSelection``; the
plan carries it, the executor runs only its stages (in the DAG's order, keeping step numbers) and
reports every other one as skipped with its own reason, and pruning looks only at the objects of
selected stages. A stage left out is never applied, pruned or deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from bodywork_action.config import suggest_close_match
from bodywork_action.errors import InputError
from bodywork_action.model import Pipeline, Stage
from bodywork_action.results import StageResult, StageStatus
from bodywork_action.stage_identity import stage_of


@dataclass(frozen=True)
class SelectionNames:
    """How the request was spelled where it came from, for messages and skip reasons."""

    only: str
    from_step: str


CLI_NAMES = SelectionNames(only="--only", from_step="--from-step")
ACTION_NAMES = SelectionNames(only="stages", from_step="from-step")


@dataclass(frozen=True)
class StageSelection:
    """The DAG stages a run leaves out, each with the reason shown for it; every other one runs."""

    skipped: Mapping[str, str] = field(default_factory=dict)  # stage name → why it is skipped
    description: str = ""  # "--only b, c" / "--from-step 2": what was asked, for the one-line result

    def __post_init__(self) -> None:
        object.__setattr__(self, "skipped", MappingProxyType(dict(self.skipped)))

    @property
    def partial(self) -> bool:
        return bool(self.skipped)

    def includes(self, name: str) -> bool:
        return name not in self.skipped

    def skipped_result(self, stage: Stage) -> StageResult:
        return StageResult(
            stage=stage.name, kind=stage.kind, status=StageStatus.SKIPPED, reason=self.skipped[stage.name]
        )


EVERY_STAGE = StageSelection()


def parse_only(values: Iterable[str]) -> tuple[str, ...]:
    """Stage names from ``--only`` values (repeatable) or the ``stages`` input: comma-separated."""
    return tuple(name.strip() for value in values for name in value.split(",") if name.strip())


def select_stages(
    pipeline: Pipeline,
    *,
    only: Sequence[str] | None = None,
    from_step: int | None = None,
    names: SelectionNames = CLI_NAMES,
) -> StageSelection:
    """The selection ``only`` (stage names, None: not asked) or ``from_step`` (1-based) describe.

    Raises ``InputError`` (exit 2) for both asked at once, an empty ``only``, a name that is not a
    stage of the DAG (with the closest name), or a step the DAG does not have."""
    if only is not None and from_step is not None:
        raise InputError(f"{names.only} and {names.from_step} can't be combined: choose one")
    if from_step is not None:
        return _from_step(pipeline, from_step, names)
    if only is not None:
        return _only(pipeline, only, names)
    return EVERY_STAGE


def _from_step(pipeline: Pipeline, from_step: int, names: SelectionNames) -> StageSelection:
    count = len(pipeline.steps)
    if not 1 <= from_step <= count:
        steps = "1 step (1)" if count == 1 else f"{count} steps (1 to {count})"
        raise InputError(f"{names.from_step} {from_step}: the DAG {pipeline.dag_text!r} has {steps}")
    reason = f"before {names.from_step} {from_step}"
    skipped: dict[str, str] = {name: reason for step in pipeline.steps[: from_step - 1] for name in step}
    return StageSelection(skipped, description=f"{names.from_step} {from_step}")


def _only(pipeline: Pipeline, only: Sequence[str], names: SelectionNames) -> StageSelection:
    wanted = list(dict.fromkeys(only))
    if not wanted:
        raise InputError(
            f"{names.only} names no stage: give one or more of the DAG's stages, comma-separated"
        )
    in_dag = [name for step in pipeline.steps for name in step]
    for name in wanted:
        if name in in_dag:
            continue
        if name == pipeline.run_on_failure:
            raise InputError(
                f"{names.only}: {name!r} is the pipeline's run_on_failure stage, which runs only when a "
                f"selected stage fails; select stages of the DAG {pipeline.dag_text!r}"
            )
        if name in pipeline.stages:
            raise InputError(
                f"{names.only}: stage {name!r} is not in the DAG {pipeline.dag_text!r}: it is never deployed"
            )
        raise InputError(
            f"{names.only}: {name!r} is not a stage of the DAG {pipeline.dag_text!r}"
            f"{suggest_close_match(name, in_dag)}"
        )
    reason = f"not selected ({names.only})"
    skipped: dict[str, str] = {name: reason for name in in_dag if name not in wanted}
    shown = ", ".join(name for name in in_dag if name in wanted)
    return StageSelection(skipped, description=f"{names.only} {shown}")


def select_stage_objects(
    objects: Iterable[Mapping[str, Any]], pipeline: Pipeline, selection: StageSelection
) -> list[Mapping[str, Any]]:
    """The objects a run may prune: all of them for a whole run; for a partial run only those of its
    selected stages (by the stage label), so nothing of a stage left out (or gone from the DAG) is
    removed."""
    if not selection.partial:
        return list(objects)
    selected = {stage.k8s_name for stage in pipeline.dag_stages if selection.includes(stage.name)}
    return [obj for obj in objects if stage_of(obj) in selected]
