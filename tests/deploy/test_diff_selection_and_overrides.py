"""``diff`` where it meets other features, through ``main(argv)`` against the fake API server: a partial
selection (``--only``, ``--from-step``) diffs what a partial deploy would do, and the overrides
(``--image``, ``--resource``) are diffed as a deploy would apply them."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from bodywork_action.cli import main
from testing.action_runs import TWO_STAGE_YAML
from testing.builders import COMMIT, REPOSITORY_URL
from testing.fake_k8s.cluster import FakeCluster

ENVIRON = {"DB_PASSWORD": "db-password-canary-0003", "TLS_KEY": "tls-key-canary-0004"}
NEW_IMAGE = "python:3.12-slim"
DIGEST_IMAGE = "ghcr.io/owner/stage@sha256:" + "ab" * 32


def bodywork(command: str, config: Path, fake: FakeCluster, *more: str) -> tuple[int, str, str]:
    """``command`` on the two-stage project with the fake cluster, its secrets and an explicit commit."""
    out, err = io.StringIO(), io.StringIO()
    target = ["-f", str(config), "--kubeconfig", str(fake.kubeconfig_path), "--repo", REPOSITORY_URL]
    secrets = ["--commit", COMMIT, "--secret", "db-credentials=DB_PASSWORD,TLS_KEY"]
    code = main([command, *target, *secrets, *more], out=out, err=err, environ=ENVIRON)
    return code, out.getvalue(), err.getvalue()


def headers(diff_text: str) -> list[str]:
    return [line.removeprefix("=== ") for line in diff_text.splitlines() if line.startswith("=== ")]


@pytest.fixture
def deployed(tmp_path: Path, fake_cluster: FakeCluster) -> Path:
    """The two-stage project (train >> serve), deployed whole."""
    (tmp_path / "train.py").write_text("print('training')\n")
    (tmp_path / "serve.py").write_text("print('serving')\n")
    config = tmp_path / "bodywork.yaml"
    config.write_text(TWO_STAGE_YAML)
    code, out, err = bodywork("deploy", config, fake_cluster)
    assert code == 0, out + err
    return config


def test_only_diffs_the_selected_stages(deployed: Path, fake_cluster: FakeCluster) -> None:
    deployed.write_text(deployed.read_text().replace("cpu_request: 0.25", "cpu_request: 1"))  # both stages

    code, whole, _ = bodywork("diff", deployed, fake_cluster)
    assert code == 0 and whole.splitlines()[-1].endswith("0 created, 2 changed, 0 deleted, 2 unchanged")

    code, out, err = bodywork("diff", deployed, fake_cluster, "--only", "serve", "--exit-code")

    assert code == 1, out + err
    assert headers(out) == [
        "Secret/db-credentials: unchanged",  # secrets are written for the whole pipeline, as a deploy does
        "Deployment/serve (stage serve): changed, a deploy restarts its pods",
        "Service/serve (stage serve): unchanged",
    ]
    assert "note: partial run (--only serve): what a deploy of only these stages would change; " in out
    assert "left as they are: train" in out


def test_a_partial_diff_never_shows_a_left_out_stage_as_deleted(
    deployed: Path, fake_cluster: FakeCluster
) -> None:
    deployed.write_text(deployed.read_text().replace("serve", "api"))  # the service stage renamed

    _, whole, _ = bodywork("diff", deployed, fake_cluster)
    _, from_step_2, _ = bodywork("diff", deployed, fake_cluster, "--from-step", "2")
    _, only_train, _ = bodywork("diff", deployed, fake_cluster, "--only", "train")

    # A whole deploy prunes the old stage; a partial one leaves it for the next whole run (as deploy).
    assert "Deployment/serve (stage serve): deleted" in headers(whole)
    assert [h for h in headers(from_step_2) if "serve" in h] == []
    assert from_step_2.splitlines()[-1].endswith("2 created, 0 changed, 0 deleted, 1 unchanged")
    assert [h for h in headers(only_train) if "serve" in h or "api" in h] == []
    assert only_train.splitlines()[-1].endswith("0 deleted, 2 unchanged")


def test_a_stage_the_selection_does_not_know_is_exit_2_with_the_closest_name(
    deployed: Path, fake_cluster: FakeCluster
) -> None:
    code, out, err = bodywork("diff", deployed, fake_cluster, "--only", "serv")

    assert (code, out) == (2, "")
    assert err == "error: --only: 'serv' is not a stage of the DAG 'train >> serve'; did you mean 'serve'?\n"


def test_image_and_resource_overrides_are_diffed_as_a_deploy_would_apply_them(
    deployed: Path, fake_cluster: FakeCluster
) -> None:
    code, out, err = bodywork(
        "diff", deployed, fake_cluster, "--image", DIGEST_IMAGE, "--resource", "train:nvidia.com/gpu=1"
    )

    assert code == 0, out + err
    job, deployment = headers(out)[1:3]
    deployed_job = fake_cluster.list("Job", "two-stage")[0]["metadata"]["name"]
    assert re.fullmatch(
        rf"Job/train-\w+ \(stage train\): changed, would run again \(compared with Job/{deployed_job}\)", job
    )
    assert deployment == "Deployment/serve (stage serve): changed, a deploy restarts its pods"
    assert out.count(f"+        image: {DIGEST_IMAGE}") == 2  # the Job's and the Deployment's container
    assert out.count("+            nvidia.com/gpu: '1'") == 2  # the Job's requests and limits
    for value in ENVIRON.values():
        assert value not in out + err


def test_a_service_rolled_back_to_what_the_config_says_diffs_unchanged(
    deployed: Path, fake_cluster: FakeCluster
) -> None:
    fake_cluster.script(
        "Deployment", {"app.kubernetes.io/name": "serve"}, {"behavior": "crashloop", "image": NEW_IMAGE}
    )
    code, _, err = bodywork("deploy", deployed, fake_cluster, "--image", NEW_IMAGE)
    assert code == 1, err
    rolled_back = fake_cluster.get("Deployment", "serve", "two-stage")
    assert (
        rolled_back is not None and "bodywork.dev/rolled-back-from" in rolled_back["metadata"]["annotations"]
    )

    code, out, err = bodywork("diff", deployed, fake_cluster)

    assert code == 0, err
    # The rollback's note is not configuration: serve is as bodywork.yaml says (train's newest Job ran
    # in the new image, so it would run again).
    assert "Deployment/serve (stage serve): unchanged, a deploy restarts its pods" in headers(out)
    assert "rolled-back-from" not in out


def test_a_pull_secret_missing_from_the_namespace_is_a_note_as_the_deploy_warns(
    deployed: Path, fake_cluster: FakeCluster
) -> None:
    code, out, err = bodywork("diff", deployed, fake_cluster, "--image-pull-secret", "ghcr-pull")

    assert code == 0, err
    assert (
        "note: image pull secret ghcr-pull not found in namespace two-stage: pods pulling from a private "
        "registry will sit in ImagePullBackOff until it exists\n"
    ) in out
    pull_secret_added = "+      imagePullSecrets:\n+      - name: ghcr-pull\n"
    assert out.count(pull_secret_added) == 2  # the Job's pod template and the Deployment's


def test_a_batch_stage_turned_service_shows_its_jobs_deleted_not_as_history(
    deployed: Path, fake_cluster: FakeCluster
) -> None:
    batch = "    batch:\n      max_completion_time_seconds: 60\n      retries: 0\n"
    service = "    service:\n      max_startup_time_seconds: 60\n      replicas: 1\n      port: 9000\n"
    deployed.write_text(deployed.read_text().replace(batch, service + "      ingress: false\n"))
    (job,) = [j["metadata"]["name"] for j in fake_cluster.list("Job", "two-stage")]

    code, out, err = bodywork("diff", deployed, fake_cluster)

    assert code == 0, err
    assert f"Job/{job} (stage train): deleted, the stage changed kind" in headers(out)
    assert "Deployment/train (stage train): created" in headers(out)
    assert "older Job(s)" not in out  # not history: the deploy removes it with the stage's old kind
    assert out.splitlines()[-1].endswith(": 2 created, 0 changed, 1 deleted, 3 unchanged")
