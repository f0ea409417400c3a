"""diff against the fake API server: what a deploy would change, after a real deploy of the same engine."""

from __future__ import annotations

from dataclasses import replace

from bodywork_action import diffing
from bodywork_action.diffing import KeyState, ObjectState
from bodywork_action.kube.diff import diff_pipeline
from bodywork_action.result_document import diff_document, format_document
from bodywork_action.secret_groups import SecretRequest, build_secret_supply
from testing.builders import (
    MLFLOW_SECRET_ENV,
    MLFLOW_SECRETS,
    batch,
    context,
    four_stage_pipeline,
    mlflow_pipeline,
    mlflow_secret_supply,
    pipeline,
)
from testing.deploy_runs import Deployer
from testing.fake_k8s.cluster import FakeCluster


def states(diff: diffing.PipelineDiff) -> dict[str, str]:
    return {
        obj.title.split("-")[0] if obj.kind == "Job" else obj.title: obj.state.value for obj in diff.objects
    }


def test_before_any_deploy_everything_is_created(deploy: Deployer, fake_cluster: FakeCluster) -> None:
    diff = diff_pipeline(four_stage_pipeline(), context("diff-1"), target=deploy.target, environ={})

    assert {obj.state for obj in diff.objects} == {ObjectState.CREATED}
    assert [obj.title for obj in diff.objects][:1] == ["Namespace/demo"]
    assert diff.changes == len(diff.objects) == 1 + 2 + 2 * 2 + 1  # namespace, 2 Jobs, 2 services, 1 ingress
    assert "namespace demo does not exist" in diff.notes[0]
    assert fake_cluster.get("Namespace", "demo", None) is None, "nothing was written"


def test_a_redeploy_of_the_same_commit_and_config_changes_nothing(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    p = four_stage_pipeline()
    assert deploy(p, deployment_id="run-1").succeeded
    fake_cluster.requests.clear()

    diff = diff_pipeline(
        p, context("run-2", run_url="https://ci/2", actor="someone"), target=deploy.target, environ={}
    )

    assert diff.changes == 0, diffing.format_diff_text(diff)
    assert states(diff) == {
        "Job/a": "unchanged",
        "Job/b": "unchanged",
        "Deployment/c": "unchanged",
        "Service/c": "unchanged",
        "Deployment/d": "unchanged",
        "Service/d": "unchanged",
        "Ingress/d": "unchanged",
    }
    job_a = next(obj for obj in diff.objects if obj.kind == "Job" and obj.stage == "a")
    assert job_a.notes[0].startswith("would run again (compared with Job/a-")
    assert diff.one_line() == "demo in demo: 0 created, 0 changed, 0 deleted, 7 unchanged"
    writes = [r for r in fake_cluster.requests.filter() if r.method in ("POST", "PUT", "PATCH", "DELETE")]
    assert len(writes) == 7 and all("dryRun=All" in str(record.query) for record in writes), writes


def test_a_changed_cpu_request_and_requirements_show_exactly_that(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    p = four_stage_pipeline()
    assert deploy(p).succeeded
    changed = replace(
        p,
        stages={
            **p.stages,
            "c": replace(p.stages["c"], cpu_request=0.5),
            "a": replace(p.stages["a"], requirements=("numpy==2.0.0",)),
        },
    )

    diff = diff_pipeline(changed, context("run-2"), target=deploy.target, environ={})

    assert states(diff) == {
        "Job/a": "changed",
        "Job/b": "unchanged",
        "Deployment/c": "changed",
        "Service/c": "unchanged",
        "Deployment/d": "unchanged",
        "Service/d": "unchanged",
        "Ingress/d": "unchanged",
    }
    deployment_c = next(obj for obj in diff.objects if obj.title == "Deployment/c")
    changed_lines = [line for line in deployment_c.diff.splitlines() if line[:1] in "+-"]
    assert changed_lines == [
        "--- live/Deployment/c",
        "+++ deploy/Deployment/c",
        "-            cpu: 250m",
        "+            cpu: 500m",
    ]
    job_a = next(obj for obj in diff.objects if obj.kind == "Job" and obj.stage == "a")
    job_lines = [line for line in job_a.diff.splitlines()[2:] if line[:1] in "+-"]
    assert job_lines == ["-        - '0'", "+        - '1'", "+        - numpy==2.0.0"]


def test_a_stage_removed_from_the_dag_is_shown_as_deleted(deploy: Deployer) -> None:
    assert deploy(four_stage_pipeline()).succeeded

    diff = diff_pipeline(
        pipeline("a >> b", batch("a"), batch("b")), context("run-2"), target=deploy.target, environ={}
    )

    deleted = sorted(obj.title for obj in diff.objects if obj.state is ObjectState.DELETED)
    assert deleted == ["Deployment/c", "Deployment/d", "Ingress/d", "Service/c", "Service/d"]
    assert diff.changes == 5
    service_c = next(obj for obj in diff.objects if obj.title == "Service/c")
    assert service_c.diff.startswith("--- live/Service/c\n+++ /dev/null\n")


def test_old_jobs_beyond_the_history_are_noted_not_counted(deploy: Deployer) -> None:
    p = pipeline("train", batch("train"))
    for run in range(3):
        assert deploy(p, deployment_id=f"run-{run}").succeeded

    diff = diff_pipeline(p, context("run-9"), target=deploy.target, environ={})

    assert diff.changes == 0
    assert len(diff.old_jobs) == 1
    assert "a deploy also removes 1 older Job(s) beyond the 3 kept per stage" in diffing.format_diff_text(
        diff
    )


def test_a_changed_secret_value_shows_the_key_and_never_a_value(deploy: Deployer) -> None:
    p = mlflow_pipeline()
    assert deploy(p, secrets=mlflow_secret_supply()).succeeded
    env = {**MLFLOW_SECRET_ENV, "AWS_SECRET_ACCESS_KEY": "rotated-secret-value-0001"}
    supply = build_secret_supply(
        [SecretRequest(secret, keys) for secret, keys in MLFLOW_SECRETS.items()], [env], group="prod"
    )

    diff = diff_pipeline(p, context("run-2"), target=deploy.target, secrets=supply, environ={})

    by_title = {obj.title: obj for obj in diff.objects}
    assert by_title["Secret/aws-credentials"].state is ObjectState.CHANGED
    assert dict(by_title["Secret/aws-credentials"].keys) == {
        "AWS_ACCESS_KEY_ID": KeyState.UNCHANGED,
        "AWS_DEFAULT_REGION": KeyState.UNCHANGED,
        "AWS_SECRET_ACCESS_KEY": KeyState.CHANGED,
    }
    assert by_title["Secret/mlflow-config"].state is ObjectState.UNCHANGED
    assert by_title["Deployment/server"].state is ObjectState.UNCHANGED
    assert diff.changes == 1
    text, as_json = diffing.format_diff_text(diff), format_document(diff_document(diff, exit_code=0))
    for value in [*env.values(), *MLFLOW_SECRET_ENV.values()]:
        for line in value.splitlines():
            assert line not in text and line not in as_json
    assert "    key AWS_SECRET_ACCESS_KEY: changed" in text.splitlines()
