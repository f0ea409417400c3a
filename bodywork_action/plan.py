"""One deployment, rendered once: the ``Plan`` value that deploy, dry run, prune and ``plan`` all consume.

Core: ``render_plan(pipeline, context)`` asks ``render.py`` for every object of every stage, in apply
order, and returns them as one frozen value. Nothing downstream renders again, so the objects a dry
run checks, the objects ``plan --output yaml`` prints and the objects a deploy applies and keeps when
pruning are the same objects.

Secrets are not part of the plan: their contents depend on what the cluster already holds (kept keys,
Bodywork's store), so ``secret_groups.build_secret_manifests`` renders them once the shell has read it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from bodywork_action import render
from bodywork_action.model import DeployContext, Pipeline, Stage, StageName
from bodywork_action.overrides import apply_overrides
from bodywork_action.selection import EVERY_STAGE, StageSelection

Manifest = dict[str, Any]


@dataclass(frozen=True)
class StagePlan:
    """A stage's objects in apply order: a Job; or a Deployment, its Service and maybe an Ingress."""

    stage: Stage
    objects: tuple[Manifest, ...]

    def get(self, kind: str) -> Manifest | None:
        return next((obj for obj in self.objects if obj["kind"] == kind), None)

    def require(self, kind: str) -> Manifest:
        found = self.get(kind)
        if found is None:
            raise KeyError(f"stage {self.stage.name!r} has no {kind} in the plan")
        return found


@dataclass(frozen=True)
class Plan:
    pipeline: Pipeline
    context: DeployContext  # with its deployment id: Job names are final
    namespace: str
    namespace_object: Manifest  # applied only if the namespace does not exist yet
    stages: tuple[StagePlan, ...]  # the DAG's stages, in DAG order
    failure_stage: StagePlan | None = None  # run_on_failure, when it is not also a DAG stage
    selection: StageSelection = EVERY_STAGE  # a partial run: the stages it leaves alone

    def for_stage(self, name: StageName) -> StagePlan:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"stage {name!r} is not in the plan") from None

    def objects(self) -> list[Manifest]:
        """The Namespace, then every DAG stage's objects, in apply order (run_on_failure excluded:
        it runs only after a failure)."""
        return [self.namespace_object, *self.stage_objects()]

    def stage_objects(self) -> list[Manifest]:
        return [obj for stage_plan in self.stages for obj in stage_plan.objects]

    def selected_stages(self) -> tuple[StagePlan, ...]:
        return tuple(s for s in self.stages if self.selection.includes(s.stage.name))

    def selected_objects(self) -> list[Manifest]:
        """What this run applies: the Namespace, then the objects of the selected stages."""
        return [self.namespace_object, *(obj for s in self.selected_stages() for obj in s.objects)]

    @cached_property
    def _by_name(self) -> dict[StageName, StagePlan]:
        # every running stage looks itself up: a scan each time was quadratic in a 1,000-stage step
        return {stage_plan.stage.name: stage_plan for stage_plan in self._all_stages()}

    def _all_stages(self) -> Iterator[StagePlan]:
        yield from self.stages
        if self.failure_stage is not None:
            yield self.failure_stage


def render_plan(
    pipeline: Pipeline,
    context: DeployContext,
    *,
    config_dir: str = "",
    selection: StageSelection = EVERY_STAGE,
) -> Plan:
    """Every object of a deployment of ``pipeline`` at ``context``; ``selection``: the stages a partial
    run touches (every stage is still rendered, so pruning keeps the others' objects).

    ``config_dir`` is the directory of bodywork.yaml relative to the repository root: stages run from
    there, so deploy and dry run must both pass the real one. The context's overrides (image, extra
    resources) are applied first: ``Plan.pipeline`` is the pipeline as deployed.
    """
    pipeline = apply_overrides(pipeline, image=context.image, resources=context.resource_overrides)

    def stage_plan(stage: Stage) -> StagePlan:
        objects = render.render_stage_objects(stage, pipeline, context, config_dir=config_dir)
        return StagePlan(stage, tuple(objects))

    failure = pipeline.failure_stage
    in_dag = failure is not None and any(s.name == failure.name for s in pipeline.dag_stages)
    return Plan(
        pipeline=pipeline,
        context=context,
        namespace=render.target_namespace(pipeline, context),
        namespace_object=render.render_namespace(pipeline, context),
        stages=tuple(stage_plan(stage) for stage in pipeline.dag_stages),
        failure_stage=stage_plan(failure) if failure is not None and not in_dag else None,
        selection=selection,
    )
