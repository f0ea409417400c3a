"""The action's metadata, workflows, examples and Dockerfile pass the linters CI runs (all offline).

Each linter runs as a subprocess, exactly as a developer would run it. A test is skipped only when its
tool is not installed (they come with the ``[test]`` extra); a finding fails the test with the output.
Also checks what no linter knows: every input documented with a default, every declared output
listed, third-party actions pinned by full commit SHA.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ACTION = ROOT / "action.yml"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
EXAMPLES = sorted((ROOT / "examples" / "workflows").glob("*.yml"))
YAML_FILES = [ACTION, *WORKFLOWS, *EXAMPLES, ROOT / ".yamllint.yaml", ROOT / "examples" / "rbac.yaml"]

EXPECTED_INPUTS = {
    "kubeconfig", "context", "config", "command", "secrets", "secrets-group", "namespace",
    "repository-url", "commit", "git-credentials-secret", "ingress-class", "smoke-test", "mlflow-stage",
    "image", "image-pull-secrets", "resources",
    "strict", "timeout-minutes", "lock-timeout-seconds", "atomic", "from-step", "stages",
}  # fmt: skip
EXPECTED_OUTPUTS = {
    "status", "namespace", "stages", "service-urls", "service-url", "mlflow-url", "summary", "changes",
}  # fmt: skip
_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")


def run_tool(name: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    executable = shutil.which(name)
    if executable is None:
        pytest.skip(f"{name} is not installed (pip install '.[test]' provides it)")
    environ = {key: value for key, value in os.environ.items() if key not in ("GH_TOKEN", "GITHUB_TOKEN")}
    return subprocess.run(
        [executable, *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=environ,  # no token: zizmor's online audits stay off even if --offline were dropped
        check=False,
        timeout=120,
    )


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def test_there_are_workflows_and_examples_to_lint() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "e2e.yml", "release.yml"}
    assert len(EXAMPLES) >= 3


def test_action_metadata_matches_github_schema() -> None:
    assert_clean(run_tool("check-jsonschema", "--builtin-schema", "vendor.github-actions", ACTION))


@pytest.mark.parametrize("workflow", WORKFLOWS + EXAMPLES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_workflow_matches_github_schema(workflow: Path) -> None:
    assert_clean(run_tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows", workflow))


def test_zizmor_finds_nothing() -> None:
    result = run_tool("zizmor", "--offline", ".github/workflows", "examples/workflows", "action.yml")
    assert_clean(result)
    assert "No findings to report" in result.stdout + result.stderr


def test_hadolint_passes_the_dockerfile() -> None:
    assert_clean(run_tool("hadolint", "Dockerfile"))


def test_yamllint_passes() -> None:
    assert_clean(run_tool("yamllint", "--strict", "-c", ".yamllint.yaml", *YAML_FILES))


BAD_WORKFLOW = """name: bad
on: push
jobs:
  build:
    runs-on: ubuntu-24.04
    steps:
      - uses: someone/some-action@v1
      - run: echo "${{ github.event.head_commit.message }}"
"""


def test_the_linters_do_fail_on_bad_input(tmp_path: Path) -> None:
    """Guards the checks above against passing vacuously (wrong arguments, nothing collected)."""
    workflow = tmp_path / "bad.yml"
    workflow.write_text(BAD_WORKFLOW)
    assert run_tool("zizmor", "--offline", workflow).returncode != 0
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python\nRUN cd /tmp && pip install requests\n")
    assert run_tool("hadolint", dockerfile).returncode != 0
    action = tmp_path / "action.yml"
    action.write_text("name: x\ndescription: y\nruns:\n  using: dockr\n  image: Dockerfile\n")
    assert run_tool("check-jsonschema", "--builtin-schema", "vendor.github-actions", action).returncode != 0


# ----------------------------------------------------------------------- what the linters don't check


def _load(path: Path) -> dict[str, object]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def test_action_declares_every_input_with_a_description_and_a_default() -> None:
    inputs = _load(ACTION)["inputs"]
    assert isinstance(inputs, dict)
    assert set(inputs) == EXPECTED_INPUTS
    for name, spec in inputs.items():
        assert re.fullmatch(r"[a-z][a-z0-9-]*", name), f"input {name} is not kebab-case"
        assert spec.get("description"), f"input {name} has no description"
        assert "default" in spec and isinstance(spec["default"], str), f"input {name} has no string default"
    assert inputs["config"]["default"] == "bodywork.yaml"
    assert inputs["command"]["default"] == "deploy"


def test_action_declares_every_output_with_a_description() -> None:
    outputs = _load(ACTION)["outputs"]
    assert isinstance(outputs, dict)
    assert set(outputs) == EXPECTED_OUTPUTS
    assert all(spec.get("description") for spec in outputs.values())


def test_action_runs_the_local_dockerfile() -> None:
    runs = _load(ACTION)["runs"]
    assert runs == {"using": "docker", "image": "Dockerfile"}


def _uses_references(path: Path) -> list[str]:
    references = []
    for job in (_load(path).get("jobs") or {}).values():
        for step in job.get("steps") or []:
            if "uses" in step:
                references.append(step["uses"])
    return references


@pytest.mark.parametrize("workflow", WORKFLOWS + EXAMPLES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_third_party_actions_are_pinned_by_full_commit_sha(workflow: Path) -> None:
    for reference in _uses_references(workflow):
        if reference.startswith("./") or reference.startswith("bodywork-ml/deploy-action@"):
            continue  # this action itself: the local checkout, or the documented major tag in examples
        _, _, ref = reference.partition("@")
        assert _FULL_SHA.match(ref), f"{workflow.name}: {reference} is not pinned by commit SHA"


@pytest.mark.parametrize("workflow", EXAMPLES, ids=lambda p: p.name)
def test_examples_have_least_permissions_and_a_concurrency_group(workflow: Path) -> None:
    """Nothing granted at the top; a job reads the repository at most, and only one that runs no
    action at all may write to pull requests (the preview comment). Every job running this action is
    in a concurrency group (the workflow's or its own) that cancels nothing unless the job only
    deploys; a job that may deploy names the deploy's URL as its environment's."""
    document = _load(workflow)
    assert document["permissions"] == {}
    for name, job in document["jobs"].items():
        steps = job.get("steps") or []
        uses_actions = any("uses" in step for step in steps)
        allowed = {"contents": "read"} if uses_actions else {"pull-requests": "write"}
        assert job["permissions"] in ({}, allowed), f"{name}: {job['permissions']}"
        ours = [step for step in steps if str(step.get("uses", "")).startswith("bodywork-ml/deploy-action@")]
        if not ours:
            continue
        concurrency = job.get("concurrency") or document.get("concurrency")
        assert isinstance(concurrency, dict) and concurrency["group"], name
        commands = {str((step.get("with") or {}).get("command", "deploy")) for step in ours}
        if commands != {"deploy"}:
            assert concurrency["cancel-in-progress"] is False, f"{name} ({commands}) may be cancelled"
        if commands != {"delete"}:
            assert job["environment"]["url"] == "${{ steps.deploy.outputs.service-url }}", name


def test_entrypoint_is_thin_and_imports_nothing_at_import_time() -> None:
    code = (
        "import sys, runpy; sys.argv = ['entrypoint.py'];"
        "ns = runpy.run_path('entrypoint.py', run_name='not_main');"
        "assert 'bodywork_action.action' not in sys.modules;"
        "print(sorted(k for k in ns if not k.startswith('_')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert_clean(result)
    assert result.stdout.strip() == "['annotations', 'main', 'os']"


def test_the_status_output_lists_exactly_the_values_the_action_sets() -> None:
    import ast
    import re

    from bodywork_action.results import DeploymentStatus

    source = (ROOT / "bodywork_action" / "action.py").read_text()
    set_literally = {
        node.value.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        and any(
            isinstance(t, ast.Subscript) and ast.unparse(t) == "run.outputs['status']" for t in node.targets
        )
    }
    set_literally |= set(re.findall(r'run\.outputs\["status"\] or "(\w+)"', source))
    documented = yaml.safe_load((ROOT / "action.yml").read_text())["outputs"]["status"]["description"]
    words = set(re.findall(r"\b[a-z]+\b", documented.split("-", 1)[1]))
    expected = set_literally | {status.value for status in DeploymentStatus}
    assert set_literally >= {"valid", "invalid", "planned", "deleted", "error", "cancelled"}
    assert expected <= words, f"action.yml does not mention {sorted(expected - words)}"
    candidates = {
        "succeeded",
        "failed",
        "cancelled",
        "valid",
        "invalid",
        "planned",
        "deleted",
        "error",
        "skipped",
        "changed",
        "unchanged",
    }
    assert words & candidates == expected, (
        f"action.yml mentions values never set: {sorted(words & candidates - expected)}"
    )
