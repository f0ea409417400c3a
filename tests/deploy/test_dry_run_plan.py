"""A dry run checks exactly the objects a deploy applies: both come from one rendered Plan."""

from __future__ import annotations

import json

from bodywork_action import render
from bodywork_action.plan import render_plan
from testing.builders import context, four_stage_pipeline
from testing.deploy_runs import Deployer
from testing.fake_k8s.cluster import FakeCluster


def sent_objects(fake: FakeCluster, *, dry_run: bool) -> dict[tuple[str, str], dict]:
    """Every object body the tool created, by (kind, name), from the fake's request log."""
    sent: dict[tuple[str, str], dict] = {}
    for record in fake.requests.filter(verb="create"):
        if ("dryRun=All" in record.query) != dry_run or not record.body:
            continue
        body = json.loads(record.body)
        sent[(body["kind"], body["metadata"]["name"])] = body
    return sent


def working_dirs(objects: dict[tuple[str, str], dict]) -> dict[tuple[str, str], str]:
    found = {}
    for key, obj in objects.items():
        if key[0] in ("Job", "Deployment"):
            containers = obj["spec"]["template"]["spec"]["containers"]
            found[key] = next(c["workingDir"] for c in containers if c["name"] == render.STAGE_CONTAINER)
    return found


def test_a_dry_run_of_a_config_in_a_subfolder_checks_the_objects_a_deploy_applies(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    pipeline = four_stage_pipeline()
    expected_dir = render.project_path("ml/pipeline")

    dry = deploy(pipeline, deployment_id="run-1", dry_run=True, config_dir="ml/pipeline")
    assert dry.succeeded and dry.dry_run, dry.one_line()
    real = deploy(pipeline, deployment_id="run-1", config_dir="ml/pipeline")
    assert real.succeeded, real.one_line()

    checked = working_dirs(sent_objects(fake_cluster, dry_run=True))
    applied = working_dirs(sent_objects(fake_cluster, dry_run=False))
    assert checked and set(checked.values()) == {expected_dir}
    assert checked == applied  # same objects, same names, same working directory


def test_the_plan_holds_the_namespace_then_every_stage_s_objects_in_dag_order() -> None:
    pipeline = four_stage_pipeline()
    plan = render_plan(pipeline, context("run-1"), config_dir="ml/pipeline")
    objects = plan.objects()
    assert objects[0]["kind"] == "Namespace"
    assert objects[1:] == [obj for stage_plan in plan.stages for obj in stage_plan.objects]
    assert [sp.stage.name for sp in plan.stages] == [s.name for s in pipeline.dag_stages]
    by_key = {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}
    assert set(working_dirs(by_key).values()) == {render.project_path("ml/pipeline")}
