"""The questions the CLI asks git about the checkout around bodywork.yaml.

Shell: runs ``git`` as a subprocess (argv, no shell, a time limit); an answer git can't give is "".
"""

from __future__ import annotations

import subprocess
from pathlib import Path

GIT_TIMEOUT_SECONDS = 10


def _git(args: list[str], cwd: Path) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def read_remote_url(cwd: Path) -> str:
    return _git(["remote", "get-url", "origin"], cwd)


def read_head_commit(cwd: Path) -> str:
    return _git(["rev-parse", "HEAD"], cwd)


def read_head_ref(cwd: Path) -> str:
    return _git(["symbolic-ref", "-q", "HEAD"], cwd)


def read_config_dir(config_file: Path) -> str:
    """The config's directory relative to the repository root ("" at the root, or outside a repository):
    stages run from there, as in Bodywork."""
    directory = config_file.resolve().parent
    top = _git(["rev-parse", "--show-toplevel"], directory)
    if not top:
        return ""
    relative = directory.relative_to(Path(top).resolve()).as_posix()
    return "" if relative == "." else relative
