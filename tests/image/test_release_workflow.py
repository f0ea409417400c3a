""".github/workflows/release.yml's own shell steps, run here against the image the tests built.

The smoke test is the workflow's script as written (only the image tag differs); the base pin reads the
Dockerfile's ARG BASE exactly as the workflow's sed does, and must name the base the build uses.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from testing.image import dockerfile_bases
from testing.images import Engine

ROOT = Path(__file__).resolve().parents[2]
RELEASE = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
STEPS = {step["name"]: step for step in RELEASE["jobs"]["image"]["steps"]}
SMOKE = next(name for name in STEPS if name.startswith("Smoke test"))


def test_the_base_pin_reads_the_base_the_dockerfile_builds_on() -> None:
    script = STEPS["Pin the base image by digest"]["run"]
    sed = next(line.strip() for line in script.splitlines() if "sed -n" in line)
    command = sed.split("$(", 1)[1].rsplit(")", 1)[0]
    base = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, check=True)
    assert base.stdout.strip() == dockerfile_bases()[-1]


def test_the_smoke_test_passes_on_the_built_image(engine: Engine, image: str, workspace: Path) -> None:
    script = STEPS[SMOKE]["run"].replace("bodywork-deploy-action:smoke", image)
    assert image in script
    done = subprocess.run(
        ["bash", "-e", "-c", script],
        env={**engine.env, "GITHUB_WORKSPACE": str(workspace), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "bodywork.yaml is valid" in done.stdout
    assert "usage: bodywork-action" in done.stdout
