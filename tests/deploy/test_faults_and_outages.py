"""An API server that fails requests, loses answers, resets connections and goes away for a while.

The real client over real HTTP to the fake (testing/fake_k8s), with its fault injection: 429 (with
Retry-After), 500, 503 and dropped connections at a given rate, watch streams cut after 20 events,
and outages where every request is dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from bodywork_action.errors import EXIT_DEPLOYMENT_FAILED
from bodywork_action.executor import Progress, ProgressKind
from bodywork_action.kube.client import KubeTarget
from bodywork_action.kube.deploy import deploy_pipeline
from bodywork_action.plan import render_plan
from bodywork_action.results import DeploymentStatus, StageStatus
from testing.builders import batch, context, four_stage_pipeline, mlflow_secret_supply, pipeline
from testing.deploy_runs import NAME_LABEL, Deployer, names
from testing.fake_k8s.cluster import FakeCluster
from testing.fault_deploys import check_deploy, deploy_with_faults, faulty_pipeline

PARALLEL_DEPLOYS = 3  # each against its own fake; they spend most of their time waiting


def run_many(rate: float, count: int, first_seed: int) -> list[str]:
    with ThreadPoolExecutor(PARALLEL_DEPLOYS) as pool:
        checks = list(
            pool.map(lambda seed: deploy_with_faults(rate, seed=seed), range(first_seed, first_seed + count))
        )
    fired = sum(c.faults_fired for c in checks)
    assert fired >= count * rate * 10, f"only {fired} faults fired over {count} deploys"
    return [
        f"seed {first_seed + i}: {c.problems} "
        + "; ".join(f"{s.stage}: {s.reason} {s.message}" for s in c.result.stages if s.reason)
        for i, c in enumerate(checks)
        if not c.correct
    ]


def test_fifty_deploys_with_ten_percent_of_requests_failing_are_all_correct() -> None:
    assert run_many(0.10, 50, first_seed=1000) == []


def test_twenty_deploys_with_a_quarter_of_requests_failing_are_all_correct() -> None:
    assert run_many(0.25, 20, first_seed=2000) == []


def _first_create_fails(fake: FakeCluster, plural: str, fault: str = "500") -> list[int]:
    """Answer the first create of ``plural`` with ``fault`` (the fake then stores nothing)."""
    seen: list[int] = []

    def match(method: str, path: str) -> bool:
        if method == "POST" and path.endswith(f"/{plural}") and not seen:
            seen.append(1)
            return True
        return False

    fake.faults.match = match
    if fault == "drop":
        fake.faults.rate_drop = 1.0
    else:
        setattr(fake.faults, f"rate_{fault}", 1.0)
    return seen


def test_a_create_whose_answer_was_lost_is_read_back_and_counts_as_created(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    p = faulty_pipeline()
    # What a create that the server stored, but whose answer was lost, leaves behind: our Job.
    plan = render_plan(p, context("run-1"))
    job = plan.for_stage("a").require("Job")
    fake_cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
    fake_cluster.create(job)
    fired = _first_create_fails(fake_cluster, "jobs")

    result = deploy(p, secrets=mlflow_secret_supply())

    assert fired, "the fault really fired"
    assert result.succeeded, result.one_line()
    assert names(fake_cluster, "Job") == sorted(
        [job["metadata"]["name"], plan.for_stage("b").require("Job")["metadata"]["name"]]
    )
    assert fake_cluster.requests.count(verb="get", resource="jobs", name=job["metadata"]["name"]) == 1


def test_someone_elses_object_found_after_a_failed_create_is_a_clear_conflict(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    p = faulty_pipeline()
    plan = render_plan(p, context("run-1"))
    job = plan.for_stage("a").require("Job")
    theirs = {
        **job,
        "metadata": {"name": job["metadata"]["name"], "namespace": "demo", "labels": {"team": "x"}},
    }
    fake_cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
    fake_cluster.create(theirs)
    _first_create_fails(fake_cluster, "jobs", "503")

    result = deploy(p, secrets=mlflow_secret_supply())

    a = result.stage("a")
    assert (result.status, a.status, a.reason) == (
        DeploymentStatus.FAILED,
        StageStatus.FAILED,
        "AlreadyExists",
    )
    assert "already exists and is not the one this deploy created" in a.message
    assert "none of this tool's labels" in a.message
    assert fake_cluster.get("Job", job["metadata"]["name"], "demo")["metadata"]["labels"] == {"team": "x"}


def test_one_reset_during_a_two_hundred_stage_step_does_not_abort_the_deploy(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    stages = [batch(f"s{i:03d}") for i in range(200)]
    p = pipeline(",".join(s.name for s in stages), *stages)
    fired = _first_create_fails(fake_cluster, "jobs", "drop")

    result = deploy(p)

    assert fired
    assert result.succeeded, result.one_line()
    assert len(names(fake_cluster, "Job")) == 200
    assert (
        len([r for r in fake_cluster.requests.filter(verb="create", resource="jobs") if r.status == 201])
        == 200
    )


def _outage_when(fake: FakeCluster, stage: str, seconds: float | None) -> Callable[[Progress], None]:
    """Drop every request from the moment ``stage``'s Job exists, for ``seconds`` (None: for good)."""

    def begin() -> None:
        fake.wait_for(lambda: fake.list("Job", "demo", labels=f"{NAME_LABEL}={stage}"), timeout=60)
        fake.faults.rate_drop = 1.0
        if seconds is not None:
            timer = threading.Timer(seconds, fake.faults.reset)
            timer.daemon = True
            timer.start()

    def on_progress(progress: Progress) -> None:
        if progress.kind is ProgressKind.STAGE_STARTED and progress.stages == (stage,):
            threading.Thread(target=begin, daemon=True).start()

    return on_progress


@pytest.mark.slow
def test_a_thirty_second_outage_mid_deploy_is_waited_out_with_progress_lines(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    # b finishes 10 s into the outage: its end is seen once the API server is back.
    fake_cluster.script("Job", {NAME_LABEL: "b"}, {"run_seconds": 1000})

    result = deploy(four_stage_pipeline(), report=_outage_when(fake_cluster, "b", 30.0), timeout_seconds=300)

    assert result.succeeded, result.one_line()
    waits = [p.detail for p in deploy.progress if p.kind is ProgressKind.WAITING]
    assert any("has not answered for" in line for line in waits), waits
    assert any("answers again after" in line for line in waits), waits
    assert [r for r in fake_cluster.requests if r.fault == "drop"], "the outage really happened"
    assert sorted(o["metadata"]["labels"][NAME_LABEL] for o in fake_cluster.list("Job", "demo")) == ["a", "b"]


def test_an_outage_that_outlasts_the_deploy_fails_it_with_exit_1_naming_what_was_applied(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    fake_cluster.script("Job", {NAME_LABEL: "b"}, {"run_seconds": 3000})

    result = deploy(four_stage_pipeline(), report=_outage_when(fake_cluster, "b", None), timeout_seconds=6)

    assert result.status is DeploymentStatus.FAILED
    assert result.exit_code == EXIT_DEPLOYMENT_FAILED
    assert result.stage("a").status is StageStatus.SUCCEEDED
    assert {result.stage("b").reason, result.stage("c").reason} == {"APIUnavailable"}
    assert result.stage("d").status is StageStatus.SKIPPED
    assert "stopped answering" in result.stage("b").message
    assert "applied: " in result.message and "Job/a-" in result.message
    assert "not applied: stage(s) d" in result.message
    assert "kubeconfig" not in result.message


def test_an_outage_before_anything_is_applied_is_exit_1_too(fake_cluster: FakeCluster) -> None:
    # The cluster answered (the namespace read), then every request is dropped for good.
    reads: list[int] = []

    def match(method: str, path: str) -> bool:
        reads.append(1)
        return len(reads) > 1

    fake_cluster.faults.match = match
    fake_cluster.faults.rate_drop = 1.0
    result = deploy_pipeline(
        four_stage_pipeline(),
        context(),
        target=KubeTarget(kubeconfig=str(fake_cluster.kubeconfig_path)),
        environ={},
        timeout_seconds=3,
    )
    assert (result.status, result.exit_code) == (DeploymentStatus.FAILED, EXIT_DEPLOYMENT_FAILED)
    assert "stopped answering" in result.message and "no stage was started" in result.message


def test_faulty_deploys_are_checked_for_real(fake_cluster: FakeCluster) -> None:
    """The checker of the fault tests sees a wrong result: a Job created twice is a problem."""
    result = deploy_pipeline(
        faulty_pipeline(),
        context(),
        target=KubeTarget(kubeconfig=str(fake_cluster.kubeconfig_path)),
        secrets=mlflow_secret_supply(),
        environ={},
    )
    assert check_deploy(fake_cluster, result).correct
    extra = render_plan(faulty_pipeline(), context("run-2")).for_stage("a").require("Job")
    fake_cluster.create(extra)
    assert any("Jobs per stage" in p for p in check_deploy(fake_cluster, result).problems)
