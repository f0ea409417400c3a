"""``--commit``: stages run from that commit, checked out into a temporary worktree removed afterwards."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bodywork_action.config import load_pipeline
from bodywork_action.local.runner import LocalRunInvalid
from bodywork_action.results import DeploymentStatus
from testing.local_runs import PIPELINE_DIR, Project, read_records


def _git(root: Path, *args: str) -> str:
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    done = subprocess.run(["git", *identity, *args], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _write_single_stage_config(root: Path, label: str) -> None:
    """The test pipeline cut down to its first stage, which records ``label`` in its arguments."""
    (root / "bodywork.yaml").write_text(
        (PIPELINE_DIR / "bodywork.yaml")
        .read_text()
        .replace("DAG: prepare >> left,right >> serve", "DAG: prepare")
        .replace('args: ["prepare"]', f'args: ["prepare", "0", "{label}"]')
    )


def test_a_commit_runs_from_a_temporary_worktree_with_its_own_config(project: Project) -> None:
    _git(project.root, "init", "-q")
    _write_single_stage_config(project.root, "committed")
    _git(project.root, "add", ".")
    _git(project.root, "commit", "-q", "-m", "one")
    committed = _git(project.root, "rev-parse", "HEAD")
    _write_single_stage_config(project.root, "working-tree")  # an uncommitted change
    working_tree_pipeline = load_pipeline(project.config_file)

    run = project.run(working_tree_pipeline, commit=committed)

    assert run.result.status is DeploymentStatus.SUCCEEDED, run.output
    assert run.result.commit == committed[:7]
    (start, _end) = read_records(project.out_dir, "prepare")
    assert start["env"]["GIT_COMMIT_HASH"] == committed[:7]
    assert start["argv"] == ["prepare", "0", "committed"]
    assert working_tree_pipeline.stages["prepare"].args == ("prepare", "0", "working-tree")
    assert _git(project.root, "worktree", "list").count("\n") == 0  # only the main worktree is left


def test_an_unknown_commit_is_a_clear_error(project: Project) -> None:
    _git(project.root, "init", "-q")
    _git(project.root, "add", ".")
    _git(project.root, "commit", "-q", "-m", "one")

    with pytest.raises(LocalRunInvalid, match="--commit 'no-such-ref': no such commit"):
        project.run(load_pipeline(project.config_file), commit="no-such-ref")
