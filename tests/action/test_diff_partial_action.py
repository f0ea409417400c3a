"""``command: diff`` with the ``stages`` input, through entrypoint.py against the fake cluster: the job
summary shows what a partial deploy would change, and never the API server's address."""

from __future__ import annotations

from pathlib import Path

from testing.action_runs import Runner
from testing.fake_k8s.cluster import FakeCluster

SECRETS = {"secrets": "db-credentials: DB_PASSWORD, TLS_KEY"}
ENV = {"DB_PASSWORD": "diff-password-canary-0005", "TLS_KEY": "diff-key-canary-0006"}


def test_a_diff_of_some_stages_summarises_only_theirs_without_the_api_server_url(
    run_action: Runner, two_stage_workspace: Path, fake_cluster: FakeCluster
) -> None:
    inputs = {"kubeconfig": Path(fake_cluster.kubeconfig_path).read_text(), **SECRETS}
    assert run_action(two_stage_workspace, inputs, ENV).returncode == 0
    config = two_stage_workspace / "bodywork.yaml"
    config.write_text(config.read_text().replace("cpu_request: 0.25", "cpu_request: 1"))  # both stages

    run = run_action(two_stage_workspace, {**inputs, "command": "diff", "stages": "serve"}, ENV)

    assert run.returncode == 0, run.stdout + run.stderr
    assert (run.outputs["status"], run.outputs["changes"]) == ("changed", "1")
    assert (
        "<summary>Deployment/serve (stage serve): changed, a deploy restarts its pods</summary>"
        in run.summary
    )
    assert "Job/" not in run.summary, "train is left out: a partial deploy would not run it"
    note = "partial run \\(stages serve\\): what a deploy of only these stages would change"
    assert f"> {note}; left as they are: train\n" in run.summary
    assert fake_cluster.url not in run.summary and "127.0.0.1" not in run.summary
