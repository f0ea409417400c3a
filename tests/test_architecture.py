"""The functional core stays pure, and the CLI's start-up imports nothing heavy.

Each check imports modules in a fresh interpreter and looks at ``sys.modules``: this is what keeps
``bodywork-action --help`` fast and the core testable without a cluster.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CORE_MODULES = [
    "bodywork_action.model",
    "bodywork_action.errors",
    "bodywork_action.dag",
    "bodywork_action.config",
    "bodywork_action.report",
    "bodywork_action.results",
    "bodywork_action.executor",
    "bodywork_action.redact",
    "bodywork_action.render",
    "bodywork_action.summary",
    "bodywork_action.verdicts",
    "bodywork_action.secret_groups",
]
IO_MODULES = {"kubernetes", "requests", "urllib3", "subprocess", "socket", "http.client"}
HEAVY_AT_STARTUP = {"kubernetes", "requests", "urllib3", "jsonschema", "yaml", "mlflow"}


def imported_by(statement: str) -> set[str]:
    program = f"import sys; {statement}; import json; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def baseline() -> set[str]:
    return imported_by("pass")


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_does_no_io(module: str) -> None:
    pytest.importorskip(module)
    added = imported_by(f"import {module}") - baseline()
    assert not (added & IO_MODULES), f"{module} pulls in {sorted(added & IO_MODULES)}"


def test_cli_start_up_imports_nothing_heavy() -> None:
    added = imported_by("import bodywork_action.cli; bodywork_action.cli.build_parser()") - baseline()
    top_level = {name.split(".")[0] for name in added}
    assert not (top_level & HEAVY_AT_STARTUP), sorted(top_level & HEAVY_AT_STARTUP)


def test_only_cluster_module_imports_kubernetes() -> None:
    from pathlib import Path

    package = Path(__file__).parent.parent / "bodywork_action"
    importers = sorted(
        path.name
        for path in package.glob("*.py")
        if any(
            line.strip().startswith(("import kubernetes", "from kubernetes"))
            for line in path.read_text().splitlines()
        )
    )
    assert importers in ([], ["cluster.py"]), importers
