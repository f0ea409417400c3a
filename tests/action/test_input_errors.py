"""Bad action inputs through entrypoint.py: one clear message in the action's own terms, exit 2."""

from __future__ import annotations

from pathlib import Path

from testing.action_runs import Runner
from testing.fake_k8s.cluster import FakeCluster


def test_missing_secrets_are_explained_with_the_secrets_input_not_cli_flags(
    run_action: Runner, workspace: Path, fake_cluster: FakeCluster
) -> None:
    run = run_action(workspace, {"kubeconfig": Path(fake_cluster.kubeconfig_path).read_text()})

    assert run.returncode == 2, run.stdout + run.stderr
    (annotation,) = run.annotations()
    assert "add them to the step's `secrets` input (" in annotation
    assert "mlflow-config: MLFLOW_BACKEND_STORE_URI, MLFLOW_DEFAULT_ARTIFACT_ROOT" in annotation
    assert "--secret" not in annotation
    assert fake_cluster.list("Secret", "bodywork-mlflow") == []


def test_a_config_outside_the_workspace_is_refused_without_reading_it(
    run_action: Runner, workspace: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text("secret-looking-content-7f3a: 1\n")
    (workspace / "link.yaml").symlink_to(outside)
    for config in ("../elsewhere.yaml", str(outside), "link.yaml"):
        run = run_action(workspace, {"command": "validate", "config": config})
        assert run.returncode == 2, config
        assert "outside the workspace" in run.stdout
        assert "secret-looking-content" not in run.stdout + run.stderr + run.summary
