"""Builds the ``DeployContext`` (repository, commit, ref, run) from arguments, the environment and git.

Shell code: it may ask git. Precedence for each value: the explicit argument, then GitHub's
variables (GITHUB_SERVER_URL/GITHUB_REPOSITORY, GITHUB_SHA, GITHUB_REF, the run URL), then the local
git checkout. A commit that can't be determined is an input error: stages must run an exact commit.
"""

from __future__ import annotations

import argparse
import secrets
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from bodywork_action.errors import InputError
from bodywork_action.model import DEFAULT_GIT_SYNC_IMAGE, DeployContext


def _git(args: list[str], cwd: Path) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _github_repository_url(environ: Mapping[str, str]) -> str:
    repository = environ.get("GITHUB_REPOSITORY", "")
    if not repository:
        return ""
    server = environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    return f"{server}/{repository}"


def _run_url(environ: Mapping[str, str]) -> str:
    run_id = environ.get("GITHUB_RUN_ID", "")
    base = _github_repository_url(environ)
    return f"{base}/actions/runs/{run_id}" if run_id and base else ""


def build_context(
    args: argparse.Namespace, environ: Mapping[str, str], *, cwd: Path | None = None
) -> DeployContext:
    cwd = cwd or Path(getattr(args, "file", "bodywork.yaml")).resolve().parent
    repository_url = (
        getattr(args, "repo", None)
        or _github_repository_url(environ)
        or _git(["remote", "get-url", "origin"], cwd)
    )
    commit = (
        getattr(args, "commit", None) or environ.get("GITHUB_SHA", "") or _git(["rev-parse", "HEAD"], cwd)
    )
    if not repository_url:
        raise InputError("cannot tell which repository the stages should fetch: pass --repo URL")
    if not commit:
        raise InputError("cannot tell which commit to deploy: pass --commit SHA")
    ref = (
        getattr(args, "ref", "") or environ.get("GITHUB_REF", "") or _git(["symbolic-ref", "-q", "HEAD"], cwd)
    )
    run_attempt = environ.get("GITHUB_RUN_ATTEMPT", "")
    run_id = environ.get("GITHUB_RUN_ID", "")
    # Unique per deployment: Job names derive from it, so a re-run never trips on an immutable Job.
    deployment_id = f"{run_id}-{run_attempt}" if run_id else f"{int(time.time())}-{secrets.token_hex(2)}"
    return DeployContext(
        repository_url=repository_url,
        commit=commit,
        ref=ref,
        run_url=_run_url(environ),
        actor=environ.get("GITHUB_ACTOR", ""),
        deployment_id=deployment_id,
        namespace=getattr(args, "namespace", None) or "",
        ingress_class=getattr(args, "ingress_class", "") or "",
        git_sync_image=getattr(args, "git_sync_image", "") or DEFAULT_GIT_SYNC_IMAGE,
        git_credentials_secret=getattr(args, "git_credentials_secret", "") or "",
        restart_token=deployment_id,
    )
