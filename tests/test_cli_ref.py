"""``bodywork.dev/ref``: the checkout's branch describes the commit it has checked out, and only that one.
With an explicit ``--repo``/``--commit`` the stages run something else, so the branch of the git
repository around bodywork.yaml is not recorded (issue 16); ``--ref`` still is."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from bodywork_action.cli import main
from bodywork_action.render import ANNOTATION_REF

PROJECT = Path(__file__).parent / "data" / "bodywork_project"
OTHER_COMMIT = "f" * 40


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The test project committed on branch ``feature-x`` of a git repository with an origin."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    shutil.copytree(PROJECT, tmp_path / "repo")
    root = tmp_path / "repo"

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)

    git("init", "-q", "-b", "feature-x")
    git("remote", "add", "origin", "https://github.com/acme/project")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "init")
    return root / "bodywork.yaml"


def refs_in_plan(config: Path, *flags: str) -> set[str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["plan", "-f", str(config), "-o", "yaml", *flags], out=out, err=err, environ={})
    assert code == 0, err.getvalue()
    objects = [o for o in yaml.safe_load_all(out.getvalue()) if o and o["kind"] != "Namespace"]
    return {o["metadata"]["annotations"].get(ANNOTATION_REF, "") for o in objects}  # none: not recorded


def test_the_checkouts_branch_is_recorded_for_its_own_commit(checkout: Path) -> None:
    assert refs_in_plan(checkout) == {"refs/heads/feature-x"}


@pytest.mark.parametrize(
    "flags",
    [
        ("--commit", OTHER_COMMIT),
        ("--repo", "https://github.com/acme/other"),
        ("--repo", "https://github.com/acme/other", "--commit", OTHER_COMMIT),
    ],
)
def test_an_explicit_repo_or_commit_does_not_borrow_the_checkouts_branch(
    checkout: Path, flags: tuple[str, ...]
) -> None:
    assert refs_in_plan(checkout, *flags) == {""}


def test_an_explicit_ref_is_recorded_as_given(checkout: Path) -> None:
    assert refs_in_plan(checkout, "--commit", OTHER_COMMIT, "--ref", "refs/tags/v1") == {"refs/tags/v1"}
