"""Messages about bodywork.yaml (issue 16): where a YAML error starts, requirements pip would reject,
Bodywork 2.x files, and the compiled schema check agreeing with jsonschema."""

from __future__ import annotations

import jsonschema
import pytest

from bodywork_action.config import _split_schema, compile_schema, validate_config
from bodywork_action.errors import ConfigProblem, Severity
from testing.config_documents import VALID, edit, line_of, only_error


def yaml_error(text: str) -> ConfigProblem:
    problem = only_error(text)
    assert problem.message.startswith("invalid YAML: ") and problem.path == ""
    return problem


# --- YAML syntax: named, and located where the problem starts ---------------------------------------


def test_a_tab_in_the_indentation_is_named_as_such() -> None:
    text = edit("    cpu_request: 1\n", "\tcpu_request: 1\n")
    problem = yaml_error(text)
    assert (
        problem.message == "invalid YAML: a tab character in the indentation: YAML indents with spaces only"
    )
    assert (problem.line, problem.column) == (line_of(text, "\tcpu_request"), 1)


def test_a_tab_after_spaces_is_named_too() -> None:
    text = edit("      retries: 2\n", "  \t    retries: 2\n")
    problem = yaml_error(text)
    assert "a tab character in the indentation" in problem.message
    assert (problem.line, problem.column) == (line_of(text, "\t    retries"), 3)


@pytest.mark.parametrize(
    "value, kind, closer",
    [("[prepare, train", "sequence", "a ',' or ']'"), ("{a: prepare", "mapping", "a ',' or '}'")],
)
def test_an_unclosed_bracket_is_reported_where_it_opens(value: str, kind: str, closer: str) -> None:
    text = edit("DAG: prepare >> train,serve", f"DAG: {value}")
    problem = yaml_error(text)
    assert (problem.line, problem.column) == (line_of(text, value), 8)
    assert problem.message.startswith(f"invalid YAML: the {kind} opened here is never closed: {closer}")
    assert f"by line {line_of(text, value) + 1}" in problem.message


def test_an_unclosed_quote_is_reported_where_it_opens() -> None:
    text = edit("DAG: prepare >> train,serve", 'DAG: "prepare >> train,serve')
    problem = yaml_error(text)
    assert (problem.line, problem.column) == (line_of(text, '"prepare'), 8)
    assert "the quoted string opened here is never closed" in problem.message


@pytest.mark.parametrize(
    "old, new", [("  name: demo\n", "  name:demo\n"), ("      retries: 2\n", "      retries:2\n")]
)
def test_a_missing_space_after_a_colon_is_reported_on_its_own_line(old: str, new: str) -> None:
    text = edit(old, new)
    problem = yaml_error(text)
    assert problem.line == line_of(text, new.strip())
    assert problem.column == new.index(":") + 1
    assert "a ':' with no space after it" in problem.message


def test_a_section_that_is_one_key_with_no_space_says_why() -> None:
    text = VALID.replace("logging:\n  log_level: INFO\n", "logging:\n  log_level:INFO\n")
    problem = only_error(text)
    assert problem.path == "logging"
    assert problem.message == (
        'expected a mapping, found the string "log_level:INFO" '
        "(a missing space after ':'? write 'key: value')"
    )


# --- requirements -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "requirement, fragment",
    [
        ("joblib=1.1.0", 'did you mean "joblib==1.1.0"?'),
        ("numpy>=", "is not a valid pip requirement"),
        ("scikit learn", "is not a valid pip requirement"),
        ("pandas; python_version >", "is not a valid pip requirement"),
        ("mlflow===", "is not a valid pip requirement"),
        ("numpy\\n", "contains the invisible character \\n"),
    ],
)
def test_requirements_pip_would_reject_are_located_errors(requirement: str, fragment: str) -> None:
    text = edit("    cpu_request: 1\n", f'    cpu_request: 1\n    requirements: [pandas, "{requirement}"]\n')
    problem = only_error(text)
    assert problem.path == "stages.train.requirements[1]"
    assert problem.line == line_of(text, "requirements:")
    assert fragment in problem.message, problem.message


@pytest.mark.parametrize(
    "requirement",
    [
        "numpy",
        "numpy>=1.26,<2",
        "scikit-learn ~= 1.4",
        "mlflow[extras]==3.17.2",
        "pandas; python_version >= '3.10'",
        "torch==2.*",
        "mypkg @ https://example.com/mypkg-1.0.tar.gz",
        "git+https://github.com/org/repo.git@v1#egg=repo",
        "./local/package",
        "wheels/thing-1.0-py3-none-any.whl",
    ],
)
def test_requirements_pip_accepts_pass(requirement: str) -> None:
    text = edit("    cpu_request: 1\n", f'    cpu_request: 1\n    requirements: ["{requirement}"]\n')
    assert validate_config(text.encode()).errors == ()


# --- Bodywork 2.x files -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ['"1.0"', '"0.1"', "1.0"])
def test_an_old_version_names_the_migrate_command(version: str) -> None:
    problem = only_error(edit('version: "1.1"', f"version: {version}"))
    assert problem.path == "version"
    assert "`bodywork-action migrate` upgrades this file to version 1.1" in problem.message


def test_an_unknown_version_does_not_suggest_migrate() -> None:
    assert "migrate" not in only_error(edit('version: "1.1"', 'version: "2.0"')).message


def test_project_in_a_1_1_file_suggests_pipeline() -> None:
    text = VALID.replace("pipeline:\n", "project:\n", 1)
    outcome = validate_config(text.encode())
    (error,) = outcome.errors
    assert error.path == "pipeline"
    assert error.message == "required field 'pipeline' is missing (the file has 'project': rename it)"
    (warning,) = outcome.warnings
    assert (warning.path, warning.line) == ("project", line_of(text, "project:"))
    assert "did you mean 'pipeline'?" in warning.message and "bodywork-action migrate" in warning.message
    assert validate_config(text.encode(), strict=True).errors[1].severity is Severity.ERROR


# --- the compiled schema check says what jsonschema says ---------------------------------------------


def _samples() -> list[object]:
    stage = {
        "executable_module_path": "a.py",
        "cpu_request": 0.5,
        "memory_request_mb": 1,
        "batch": {"max_completion_time_seconds": 1, "retries": 0},
    }
    variants: list[object] = [None, True, 1, 1.0, 1.5, "x", [], {}, [stage], stage]
    for key, value in [
        ("cpu_request", True),
        ("cpu_request", -0.1),
        ("memory_request_mb", 2.0),
        ("memory_request_mb", 2.5),
        ("executable_module_path", "a.py\n"),
        ("executable_module_path", "a.sh"),
        ("args", ["a", 1]),
        ("requirements", [""]),
        ("secrets", {"A B": "x"}),
        ("secrets", {"A": "Bad_Name"}),
        ("secrets", {"A": "x" * 254}),
        ("service", {"max_startup_time_seconds": 1, "replicas": 1, "port": 65536, "ingress": False}),
        ("service", {"max_startup_time_seconds": 1, "replicas": 1, "port": 80, "ingress": False}),
        ("unknown", 1),
    ]:
        variants.append({**stage, key: value})
    return variants


@pytest.mark.parametrize("sample", _samples())
def test_the_compiled_stage_check_agrees_with_jsonschema(sample: object) -> None:
    _, stage_schema = _split_schema()
    expected = jsonschema.Draft202012Validator(stage_schema).is_valid(sample)
    assert compile_schema(stage_schema)(sample) is expected
