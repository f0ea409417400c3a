"""Partial runs on the fake API server: the stages left out are not applied, pruned or deleted."""

from __future__ import annotations

import io
from pathlib import Path

from bodywork_action.cli import main
from bodywork_action.results import StageStatus
from bodywork_action.selection import select_stages
from testing.action_runs import TWO_STAGE_YAML
from testing.builders import COMMIT, REPOSITORY_URL, batch, four_stage_pipeline, pipeline, service
from testing.deploy_runs import NAME_LABEL, Deployer, names
from testing.fake_k8s.cluster import FakeCluster


def _jobs_of(fake: FakeCluster, stage: str) -> list[str]:
    return sorted(
        j["metadata"]["name"]
        for j in fake.list("Job", "demo")
        if j["metadata"]["name"].startswith(f"{stage}-")
    )


def test_only_reruns_the_selected_stages_and_leaves_the_others_exactly_as_they_were(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    p = four_stage_pipeline()
    assert deploy(p, deployment_id="run-1").succeeded
    c_before = fake_cluster.get("Deployment", "c", "demo")
    assert c_before is not None

    result = deploy(p, deployment_id="run-2", selection=select_stages(p, only=("b", "d")))

    assert result.succeeded, result.one_line()
    assert [(r.stage, r.status.value, r.reason) for r in result.stages] == [
        ("a", "skipped", "not selected (--only)"),
        ("b", "succeeded", ""),
        ("c", "skipped", "not selected (--only)"),
        ("d", "succeeded", ""),
    ]
    assert len(_jobs_of(fake_cluster, "a")) == 1 and len(_jobs_of(fake_cluster, "b")) == 2
    c_after = fake_cluster.get("Deployment", "c", "demo")
    assert c_after is not None
    assert c_after["metadata"]["resourceVersion"] == c_before["metadata"]["resourceVersion"], "c untouched"
    started = [p.stages for p in deploy.progress if p.kind.value == "step-started"]
    assert started[-2:] == [("b",), ("d",)]


def test_a_partial_run_never_prunes_what_belongs_to_stages_it_left_out(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    whole = four_stage_pipeline()
    assert deploy(whole, deployment_id="run-1").succeeded
    # d left the DAG: a whole run would remove its Deployment, Service and Ingress; a run of a must not.
    without_d = pipeline("a >> b,c", batch("a"), batch("b"), service("c"))
    for run in range(2, 6):  # more runs of a than its Job history keeps: only a's own Jobs are pruned
        result = deploy(
            without_d, deployment_id=f"run-{run}", selection=select_stages(without_d, only=("a",))
        )
        assert result.succeeded, result.one_line()

    assert names(fake_cluster, "Deployment") == ["c", "d"]
    assert names(fake_cluster, "Ingress") == ["d"]
    assert len(_jobs_of(fake_cluster, "a")) == 3 and len(_jobs_of(fake_cluster, "b")) == 1
    assert "Deployment/d" not in result.message

    assert deploy(without_d, deployment_id="run-6").succeeded  # the whole DAG again: now d goes
    assert names(fake_cluster, "Deployment") == ["c"]


def test_from_step_reruns_the_later_steps_and_a_failure_there_still_runs_on_failure(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    p = pipeline(
        "prep >> train >> serve",
        batch("prep"),
        batch("train"),
        service("serve"),
        batch("undo"),
        run_on_failure="undo",
    )
    fake_cluster.script("Job", {NAME_LABEL: "train"}, {"behavior": "fail"})

    result = deploy(p, selection=select_stages(p, from_step=2))

    assert not result.succeeded
    assert [(r.stage, r.status, r.reason) for r in result.stages if not r.run_on_failure] == [
        ("prep", StageStatus.SKIPPED, "before --from-step 2"),
        ("train", StageStatus.FAILED, "BackoffLimitExceeded"),
        ("serve", StageStatus.SKIPPED, ""),
    ]
    assert [(r.stage, r.status) for r in result.stages if r.run_on_failure] == [
        ("undo", StageStatus.SUCCEEDED)
    ]
    assert _jobs_of(fake_cluster, "prep") == [] and names(fake_cluster, "Deployment") == []


def test_a_partial_dry_run_sends_only_the_selected_stages_objects(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    p = four_stage_pipeline()
    result = deploy(p, dry_run=True, selection=select_stages(p, from_step=3))

    assert result.succeeded and result.dry_run
    assert [(r.stage, r.status.value) for r in result.stages] == [
        ("a", "skipped"),
        ("b", "skipped"),
        ("c", "skipped"),
        ("d", "pending"),
    ]
    assert result.stage("d").message.endswith("Deployment/d, Service/d, Ingress/d")
    assert "(4 objects sent with dryRun=All" in result.message  # the Namespace and d's three
    assert fake_cluster.get("Namespace", "demo", None) is None


def test_deploy_only_on_the_command_line_shows_the_skipped_stage_and_why(
    tmp_path: Path, fake_cluster: FakeCluster
) -> None:
    config = tmp_path / "bodywork.yaml"
    config.write_text(TWO_STAGE_YAML)
    secrets = {"DB_PASSWORD": "pw-canary", "TLS_KEY": "key-canary"}

    def cli(*flags: str) -> tuple[int, str]:
        out = io.StringIO()
        argv = ["deploy", "-f", str(config), "--kubeconfig", str(fake_cluster.kubeconfig_path)]
        argv += ["--repo", REPOSITORY_URL, "--commit", COMMIT, *flags]
        return main(argv, out=out, err=out, environ=secrets), out.getvalue()

    assert cli("--secret", "db-credentials=DB_PASSWORD,TLS_KEY")[0] == 0
    code, out = cli("--only", "serve")

    assert code == 0, out
    rows = [line.split(maxsplit=5) for line in out.splitlines()]
    assert ["train", "batch", "skipped", "-", "-", "not selected (--only)"] in rows
    assert "partial run (--only serve): the other stages were left as they were" in out
    assert len(fake_cluster.list("Job", "two-stage")) == 1, "train did not run again"
