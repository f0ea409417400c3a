"""requirements/*.txt, the hashed locks the image installs, agree with pyproject.toml.

Regenerate them with ``python -m testing.image lock`` after changing [project] dependencies or
[build-system] requires; these tests say what is out of step. (That the locked set is complete and
consistent is proven by the image build itself: --require-hashes --no-deps, then ``pip check``.)
"""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ENTRY = re.compile(r"^([A-Za-z0-9._-]+)==([^\s\\]+)")


def read_lock(path: Path) -> dict[str, tuple[str, int, str]]:
    """name → (version, number of hashes, its '# via' text)."""
    entries: dict[str, tuple[str, int, str]] = {}
    blocks = re.split(r"\n(?=[A-Za-z0-9])", path.read_text())
    for block in blocks:
        match = ENTRY.match(block)
        if not match:
            assert not block.strip() or block.lstrip().startswith("#"), f"unexpected in {path}: {block!r}"
            continue
        via = " ".join(line.strip(" #") for line in block.splitlines() if line.strip().startswith("#"))
        entries[canonicalize_name(match.group(1))] = (match.group(2), block.count("--hash=sha256:"), via)
    return entries


ACTION = read_lock(ROOT / "requirements" / "action.txt")
BUILD = read_lock(ROOT / "requirements" / "build.txt")


def test_every_runtime_dependency_is_locked_at_a_version_pyproject_allows() -> None:
    for text in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in ACTION, f"{name} is in pyproject.toml but not in requirements/action.txt"
        version = ACTION[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements/action.txt pins {name}=={version}, outside pyproject's {requirement.specifier}"
        )


def test_the_lock_has_no_direct_dependency_pyproject_dropped() -> None:
    declared = {canonicalize_name(Requirement(t).name) for t in PYPROJECT["project"]["dependencies"]}
    direct = {name for name, (_, _, via) in ACTION.items() if "bodywork-action (pyproject.toml)" in via}
    assert direct == declared


def test_every_locked_package_carries_hashes() -> None:
    for lock in (ACTION, BUILD):
        assert lock
        assert [name for name, (_, hashes, _) in lock.items() if hashes == 0] == []


def test_the_build_lock_covers_build_system_requires_and_agrees_with_the_runtime_lock() -> None:
    requires = [Requirement(t) for t in PYPROJECT["build-system"]["requires"]]
    build_in = [
        Requirement(line)
        for line in (ROOT / "requirements" / "build.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert sorted(map(str, build_in)) == sorted(map(str, requires))
    for requirement in requires:
        version = BUILD[canonicalize_name(requirement.name)][0]
        assert requirement.specifier.contains(version)
    # The Dockerfile installs both files in one pip call: a package in both must be pinned alike.
    shared = set(ACTION) & set(BUILD)
    assert {name: ACTION[name][0] for name in shared} == {name: BUILD[name][0] for name in shared}


def test_the_dockerfile_installs_exactly_the_locks_with_hashes_required() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes --no-deps" in dockerfile
    assert "-r /src/requirements/action.txt -r /src/requirements/build.txt" in dockerfile
    # The package itself goes in without resolving anything.
    assert "--no-deps --no-build-isolation" in dockerfile
