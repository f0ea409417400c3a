"""Property-based: no input makes validation crash; every problem carries a field path and a line."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bodywork_action.cli import main
from bodywork_action.config import validate_config
from bodywork_action.errors import Severity

DATA = Path(__file__).parent / "data"
VALID_DOCUMENTS = [
    yaml.safe_load((DATA / "bodywork_project" / "bodywork.yaml").read_text()),
    yaml.safe_load((DATA / "seed" / "bodywork.yaml").read_text()),
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=12),
    st.sampled_from(["yes", "no", "1.1", "stage_1", ">>", "a >> b,c", "", "~", "python:3.11"]),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*prefix, index))
    return found


def _parent(document: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        document = document[part]
    return document


@st.composite
def mutated_documents(draw: st.DrawFn) -> str:
    document = yaml.safe_load(yaml.safe_dump(draw(st.sampled_from(VALID_DOCUMENTS))))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = [p for p in _paths(document) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(document, path)
        action = draw(st.sampled_from(["delete", "retype", "rename", "scalar"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "retype" or action == "scalar":
            parent[path[-1]] = draw(values if action == "retype" else scalars)
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=10))] = parent.pop(path[-1])
    return yaml.safe_dump(document, sort_keys=False)


def _check(raw: bytes) -> None:
    outcome = validate_config(raw)
    if outcome.pipeline is None:
        assert outcome.errors, "an invalid file must say why"
    for problem in outcome.problems:
        assert problem.line >= 1 and problem.column >= 1
        assert problem.message
        if problem.severity is Severity.ERROR and problem.path == "":
            # Document-level problems only: the file as a whole (syntax, encoding, not a mapping).
            assert outcome.pipeline is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_documents())
def test_mutated_documents_never_crash_and_every_problem_is_located(text: str) -> None:
    _check(text.encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(raw: bytes) -> None:
    _check(raw)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated_documents())
def test_cli_exit_code_is_0_or_2_for_any_document(tmp_path_factory: Any, text: str) -> None:
    path = tmp_path_factory.mktemp("cfg") / "bodywork.yaml"
    path.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    code = main(["validate", "-f", str(path)], out=out, err=err, environ={})
    assert code in (0, 2)
    assert "Traceback" not in out.getvalue() + err.getvalue()
    assert err.getvalue() == ""
    if code == 2:
        for line in out.getvalue().splitlines()[:-1]:
            location, _, rest = line.partition(": ")
            assert location.startswith(str(path) + ":") and location.count(":") >= 2, line
            assert rest, line
