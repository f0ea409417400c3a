"""The layer contract of the package, checked: entry points → shell → core → values, no cycles.

- **values** (``errors``, ``model``, ``results``): plain data and exceptions; they import only each other.
- **core** (the other top-level modules): pure functions over values — no cluster, no processes, no
  sockets; they import only core and values. ``render.py`` is where a stage becomes a Job.
- **shell**, one folder per outside world, none importing another: ``kube/`` (the cluster; only
  ``kube/client.py`` imports ``kubernetes``), ``github/`` (the runner's inputs, commands and files),
  ``local/`` (processes, virtual environments, git).
- **entry points** (``cli``, ``action``, ``__main__``): wire the shell to the core; nothing imports them.

Imports are read statically (every ``import`` statement, function-level ones included), and the core's
purity is also checked at run time by importing each core module in a fresh interpreter.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bodywork_action"
VALUES = {"errors", "model", "results"}
ENTRY_POINTS = {"cli", "action", "__main__"}
SHELL_FOLDERS = {"kube", "github", "local"}
IO_MODULES = {"kubernetes", "requests", "urllib3", "subprocess", "socket", "http.client"}
HEAVY_AT_STARTUP = {"kubernetes", "requests", "urllib3", "jsonschema", "yaml", "ruamel", "mlflow"}


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE).with_suffix("")
    parts = [p for p in relative.parts if p != "__init__"]
    return ".".join(parts) or "__init__"


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer_of(name: str) -> str:
    top = name.split(".")[0]
    if top in SHELL_FOLDERS:
        return f"shell:{top}"
    if top in ENTRY_POINTS:
        return "entry"
    if top in VALUES:
        return "values"
    return "core"


@cache
def imports_of(name: str) -> frozenset[str]:
    """Package modules that ``name`` imports (``from bodywork_action.kube import deploy`` counts as
    ``kube.deploy``), and third-party top-level names prefixed with ``ext:``."""
    tree = ast.parse(modules()[name].read_text())
    found: set[str] = set()
    known = modules()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("bodywork_action."):
                    found.add(alias.name.removeprefix("bodywork_action."))
                else:
                    found.add("ext:" + alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "bodywork_action" or node.module.startswith("bodywork_action."):
                base = node.module.removeprefix("bodywork_action").lstrip(".")
                for alias in node.names:
                    candidate = f"{base}.{alias.name}" if base else alias.name
                    found.add(candidate if candidate in known else base or "__init__")
            else:
                found.add("ext:" + node.module)
    found.discard(name)
    return frozenset(found)


def package_imports(name: str) -> set[str]:
    return {i for i in imports_of(name) if not i.startswith("ext:") and i != "__init__"}


ALLOWED = {
    "values": {"values"},
    "core": {"values", "core"},
    "entry": {"values", "core", "shell:kube", "shell:github", "shell:local", "entry"},
}


def test_every_module_has_a_layer_and_the_folders_are_the_shell() -> None:
    names = set(modules())
    assert {"kube.client", "kube.deploy", "kube.inventory", "github.inputs", "local.runner"} <= names
    assert {layer_of(n) for n in names} == {
        "values",
        "core",
        "entry",
        "shell:kube",
        "shell:github",
        "shell:local",
    }


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_imports_only_what_its_layer_may(name: str) -> None:
    layer = layer_of(name)
    allowed = ALLOWED.get(layer, {"values", "core", layer})  # a shell folder: itself, the core, values
    wrong = sorted(i for i in package_imports(name) if layer_of(i) not in allowed)
    assert not wrong, f"{name} ({layer}) imports {wrong}"


def test_nothing_imports_an_entry_point() -> None:
    importers = sorted(
        name for name in modules() if layer_of(name) != "entry" and package_imports(name) & ENTRY_POINTS
    )
    assert not importers, importers


def test_the_package_has_no_import_cycles() -> None:
    graph = {name: package_imports(name) for name in modules()}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        assert name not in visiting, "cycle: " + " -> ".join([*visiting[visiting.index(name) :], name])
        visiting.append(name)
        for child in sorted(graph.get(name, ())):
            visit(child)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_only_the_cluster_door_imports_kubernetes() -> None:
    importers = sorted(
        name for name in modules() if any(i.startswith("ext:kubernetes") for i in imports_of(name))
    )
    assert importers == ["kube.client"], importers


def test_a_stage_becomes_a_job_in_one_hop_from_the_plan() -> None:
    assert "render" in package_imports("plan")
    assert "def render_job(" in modules()["render"].read_text()


def test_the_contract_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    """Guards the checks above against passing vacuously."""
    assert layer_of("render") == "core" and layer_of("kube.deploy") == "shell:kube"
    assert "kube.client" in package_imports("kube.deploy")
    assert "ext:subprocess" in imports_of("local.git")
    assert layer_of("kube.client") not in ALLOWED["core"]


# --- run-time checks: what importing really pulls in ------------------------------------------------


def imported_by(statement: str) -> set[str]:
    program = f"import sys; {statement}; import json; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def baseline() -> set[str]:
    return imported_by("pass")


@pytest.mark.parametrize("module", sorted(n for n in modules() if layer_of(n) in ("core", "values")))
def test_core_module_does_no_io(module: str) -> None:
    added = imported_by(f"import bodywork_action.{module}") - baseline()
    assert not (added & IO_MODULES), f"{module} pulls in {sorted(added & IO_MODULES)}"


def test_cli_start_up_imports_nothing_heavy() -> None:
    added = imported_by("import bodywork_action.cli; bodywork_action.cli.build_parser()") - baseline()
    top_level = {name.split(".")[0] for name in added}
    assert not (top_level & HEAVY_AT_STARTUP), sorted(top_level & HEAVY_AT_STARTUP)


def test_connecting_imports_only_the_parts_of_kubernetes_it_uses(tmp_path: Path) -> None:
    """kube/client.py skips the package's ``__init__`` (dynamic client, streams, leader election,
    informer, utils: start-up CPU nobody here uses); a plain ``import kubernetes`` would pull them in.
    The kubeconfig loader's auth-provider modules (and ``requests``, which they bring) wait for a use."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\nusers: [{name: u, user: {token: t}}]\n"
    )
    unused = {"kubernetes.dynamic", "kubernetes.stream", "kubernetes.leaderelection", "kubernetes.watch"}
    connect = (
        "from bodywork_action.kube.client import KubeTarget, connect_cluster; "
        f"connect_cluster(KubeTarget(kubeconfig={str(kubeconfig)!r}), environ={{}})"
    )
    auth = {"google.auth.transport.requests", "requests_oauthlib", "oauthlib.oauth2", "requests"}
    added = imported_by(connect) - baseline()
    assert {"kubernetes.client", "kubernetes.config"} <= added
    assert not (added & (unused | auth)), sorted(added & (unused | auth))
    assert unused | auth <= imported_by("import kubernetes")  # the control: the whole package brings them
