"""Test tooling is a package, not tests: what test modules share lives in ``testing/``.

No module under tests/ imports from a conftest.py or from another module under tests/ (a conftest's
fixtures reach its folder through pytest, and a helper two folders need belongs in testing/); nothing
in testing/ or bench/ imports from tests/. Imports inside functions and in the source text of child
processes (a string that parses as Python) count too.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TOOLING = ("testing", "bench")

# Modules that still import from a conftest or another test module: none. Should one be needed for a
# while, list it here as (file, module); a pair that no longer occurs fails the test too.
NOT_YET_MOVED: set[tuple[str, str]] = set()


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, *, is_package: bool = False) -> Iterator[str]:
    """Every module ``source`` imports (``from a import b`` yields ``a`` and ``a.b``), relative imports
    resolved against ``module``; the same for each string constant that parses as Python with an import."""
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "import" in node.value:
            try:
                yield from imported_modules(textwrap.dedent(node.value), module, is_package=is_package)
            except SyntaxError:
                continue


def is_test_code(name: str) -> bool:
    return name == "tests" or name.startswith("tests.") or name == "conftest" or name.endswith(".conftest")


def python_files(root: Path) -> list[Path]:
    folders = ("tests", *TOOLING)
    paths = (path for folder in folders for path in sorted((root / folder).rglob("*.py")))
    return [path for path in paths if "third_party" not in path.parts]


def forbidden_imports(root: Path) -> set[tuple[str, str]]:
    """(file, imported module) for every import of a conftest or of tests/ by a module under tests/,
    and of tests/ by a module under testing/ or bench/."""
    found: set[tuple[str, str]] = set()
    for path in python_files(root):
        name = module_name(path, root)
        imported = set(imported_modules(path.read_text(), name, is_package=path.name == "__init__.py"))
        for target in sorted(imported):
            if is_test_code(target) and target != name:
                found.add((path.relative_to(root).as_posix(), target))
    # "from tests.x import y" yields tests.x and tests.x.y: keep the module, not each name in it
    return {(file, target) for file, target in found if (file, target.rpartition(".")[0]) not in found}


def test_no_test_module_imports_a_conftest_or_another_test_module_and_tooling_never_imports_tests() -> None:
    found = forbidden_imports(REPO_ROOT)
    new = sorted(found - NOT_YET_MOVED)
    assert not new, "move what these import into testing/:\n" + "\n".join(f"{f}: {m}" for f, m in new)
    moved = sorted(NOT_YET_MOVED - found)
    assert not moved, "no longer imported; remove from NOT_YET_MOVED:\n" + "\n".join(map(str, moved))


def test_the_check_finds_each_kind_of_forbidden_import(tmp_path: Path) -> None:
    # PKG, CONF and DOT stand for tests, conftest and a relative import's dot: this file's own source
    # must import neither.
    files = {
        "tests/__init__.py": "",
        "tests/deploy/__init__.py": "",
        "tests/deploy/conftest.py": "import pytest\nfrom testing.builders import batch\n",
        "tests/deploy/test_a.py": "from PKG.deploy.CONF import Deployer\n",
        "tests/deploy/test_b.py": "from DOTCONF import deploy\n",
        "tests/deploy/test_c.py": "import PKG.test_render\n",
        "tests/deploy/test_d.py": "def f():\n    from PKG.deploy import test_a\n",
        "tests/deploy/test_e.py": 'CHILD = """\n    from PKG.local.CONF import batch\n"""\n',
        "tests/deploy/test_f.py": "from CONF import x\n",
        "tests/test_ok.py": "from testing.builders import batch\nimport testing.local_runs\nimport pytest\n",
        "testing/__init__.py": "",
        "testing/helper.py": "from PKG.deploy.CONF import Deployer\n",
        "bench/bench_x.py": "import PKG\n",
    }
    for relative, text in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(spell_out(text))
    assert forbidden_imports(tmp_path) == {
        ("tests/deploy/test_a.py", "tests.deploy.conftest"),
        ("tests/deploy/test_b.py", "tests.deploy.conftest"),
        ("tests/deploy/test_c.py", "tests.test_render"),
        ("tests/deploy/test_d.py", "tests.deploy"),
        ("tests/deploy/test_e.py", "tests.local.conftest"),
        ("tests/deploy/test_f.py", "conftest"),
        ("testing/helper.py", "tests.deploy.conftest"),
        ("bench/bench_x.py", "tests"),
    }


def spell_out(text: str) -> str:
    return text.replace("PKG", "tests").replace("CONF", "conftest").replace("DOT", ".")


def test_the_check_reads_the_whole_suite_and_the_tooling() -> None:
    """It cannot pass by reading nothing."""
    read = {path.relative_to(REPO_ROOT).as_posix() for path in python_files(REPO_ROOT)}
    assert {
        "tests/test_test_layout.py",
        "tests/deploy/conftest.py",
        "tests/local/test_local_interrupt.py",
        "testing/builders.py",
        "bench/bench_image.py",
    } <= read
    assert len(read) > 100
    interrupt = REPO_ROOT / "tests/local/test_local_interrupt.py"
    assert "testing.local_runs" in set(
        imported_modules(interrupt.read_text(), "tests.local.test_local_interrupt")
    )
