"""The image built from the unmodified Dockerfile: a clean build log, one copy of the package, nothing
left over from the build, a consistent locked set, and the CLI command the Dockerfile documents."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from testing.image import Build, docker_run, dockerfile_bases, image_size
from testing.images import Engine

ROOT = Path(__file__).resolve().parents[2]
VENV = "/opt/bodywork-action"
# Budget for what the image adds over its base (measured: 92 MB; it was 160 MB with kubernetes/aio).
ADDED_BYTES_BUDGET = 110 * 1024 * 1024


def in_image(engine: Engine, image: str, script: str) -> str:
    done = docker_run(engine, "--entrypoint", "sh", image, "-c", script)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_build_log_has_no_warning(built: Build) -> None:
    # The docker client's own notice about the legacy builder is not the Dockerfile's doing.
    lines = [line for line in built.log.splitlines() if "legacy builder is deprecated" not in line]
    noisy = [line for line in lines if re.search(r"warn|deprecat", line, re.IGNORECASE)]
    assert noisy == []


def test_one_copy_of_the_package_and_no_build_leftovers(engine: Engine, image: str) -> None:
    listing = in_image(
        engine,
        image,
        "find /opt \\( -name bodywork_action -o -name '*.egg-info' -o -name build \\) -type d | sort;"
        " ls -d /src 2>/dev/null || true",
    )
    copies = [line for line in listing.splitlines() if line.endswith("/bodywork_action")]
    assert len(copies) == 1 and copies[0].startswith(f"{VENV}/lib/"), listing
    assert [line for line in listing.splitlines() if line.endswith(".egg-info")] == []
    assert f"{VENV}/build" not in listing and "/src" not in listing.splitlines()
    tools = in_image(engine, image, f"ls {VENV}/lib/python3*/site-packages")
    assert not re.search(r"^(pip|setuptools|wheel)$", tools, re.MULTILINE), tools


def test_the_locked_set_is_consistent_and_byte_compiled(engine: Engine, image: str) -> None:
    in_image(engine, image, f"pip --python {VENV}/bin/python check")
    uncompiled = in_image(
        engine,
        image,
        f"cd {VENV}/lib/python3*/site-packages/bodywork_action && for f in $(find . -name '*.py'); do"
        " d=$(dirname $f)/__pycache__; b=$(basename $f .py); ls $d/$b.*.pyc >/dev/null 2>&1 || echo $f; done",
    )
    assert uncompiled.strip() == ""


def test_the_image_adds_less_than_its_budget_over_the_base(engine: Engine, image: str) -> None:
    base = dockerfile_bases()[-1]
    added = image_size(engine, image) - image_size(engine, base)
    assert 0 < added < ADDED_BYTES_BUDGET, f"{added / 2**20:.0f} MB over {base}"


def test_the_cli_command_the_dockerfile_documents_works(engine: Engine, image: str) -> None:
    documented = [
        line.strip("# ").strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("#") and "docker run" in line and "IMAGE" in line
    ]
    assert len(documented) == 1, documented
    words = shlex.split(documented[0])
    assert words[:2] == ["docker", "run"] and "--entrypoint" in words
    done = engine.docker(*[image if w == "IMAGE" else w for w in words[1:]], check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: bodywork-action")
    # It runs unprivileged, as the comment says.
    whoami = engine.docker(
        *[image if w == "IMAGE" else w for w in words[1:-1]], "--version", check=False, timeout=60
    )
    assert whoami.returncode == 0, whoami.stderr
    assert in_image(engine, image, "id -u bodywork").strip() == "10001"
