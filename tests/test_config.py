"""bodywork.yaml validation: every rule, its message, its field path and its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bodywork_action.config import load_pipeline, read_config, validate_config
from bodywork_action.errors import ConfigInvalid, Severity
from bodywork_action.model import StageKind
from testing.config_documents import VALID, edit, line_of, only_error

DATA = Path(__file__).parent / "data"
BODYWORK_PROJECT = DATA / "bodywork_project"
REPO_ROOT = Path(__file__).parent.parent

# --- accepted files ---------------------------------------------------------------------------------


def test_valid_file_gives_a_typed_pipeline() -> None:
    outcome = validate_config(VALID.encode())
    assert outcome.problems == ()
    pipeline = outcome.pipeline
    assert pipeline is not None
    assert pipeline.steps == (("prepare",), ("train", "serve"))
    assert pipeline.target_namespace == "demo"
    train = pipeline.stages["train"]
    assert train.kind is StageKind.BATCH and train.batch is not None
    assert (train.batch.retries, train.batch.max_completion_time_seconds) == (2, 600)
    assert train.cpu_request == 1.0 and isinstance(train.cpu_request, float)
    serve = pipeline.stages["serve"]
    assert serve.service is not None and (serve.service.port, serve.service.replicas) == (8000, 2)


def test_pipeline_values_are_immutable() -> None:
    pipeline = load_pipeline(BODYWORK_PROJECT / "bodywork.yaml")
    with pytest.raises(AttributeError):
        pipeline.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        pipeline.stages["x"] = pipeline.stages["stage_1"]  # type: ignore[index]


def test_bodyworks_own_test_project_is_accepted_with_its_values() -> None:
    outcome = read_config(BODYWORK_PROJECT / "bodywork.yaml", check_files=True)
    assert outcome.errors == () and outcome.warnings == ()
    pipeline = outcome.pipeline
    assert pipeline is not None
    assert len(pipeline.stages) == 7
    assert pipeline.steps == (("stage_1",), ("stage_2", "stage_3"), ("stage_4",))
    stage_1 = pipeline.stages["stage_1"]
    assert stage_1.batch is not None and stage_1.batch.max_completion_time_seconds == 60
    assert stage_1.batch.retries == 4
    assert [(s.secret, s.env_var) for s in stage_1.secrets] == [
        ("foobar-secret", "FOO"),
        ("foobar-secret", "BAR"),
    ]
    stage_3 = pipeline.stages["stage_3"]
    assert stage_3.service is not None
    assert (stage_3.service.max_startup_time_seconds, stage_3.service.replicas) == (60, 2)
    assert (stage_3.service.port, stage_3.service.ingress) == (5000, True)
    assert stage_3.args == ("Hello World", "1")
    assert stage_3.k8s_name == "stage-3"
    assert pipeline.stages["stage_jupyter"].is_notebook
    assert pipeline.run_on_failure == "on_fail_stage"


def test_bodyworks_batch_only_file_is_accepted() -> None:
    assert read_config(BODYWORK_PROJECT / "bodywork_batch_stage.yaml", check_files=True).errors == ()


def test_seed_article_mlflow_file_is_accepted() -> None:
    pipeline = load_pipeline(DATA / "seed" / "bodywork.yaml")
    server = pipeline.stages["server"]
    assert server.service is not None and server.service.port == 5000
    assert {s.secret for s in server.secrets} == {"mlflow-config", "aws-credentials"}


def test_shipped_example_validates_with_check_files() -> None:
    outcome = read_config(REPO_ROOT / "bodywork.yaml", check_files=True, strict=True)
    assert outcome.problems == (), [p.format() for p in outcome.problems]


@pytest.mark.parametrize("word, expected", [("yes", True), ("no", False), ("on", True), ("off", False)])
def test_yaml_1_1_booleans_are_accepted(word: str, expected: bool) -> None:
    pipeline = validate_config(edit("ingress: false", f"ingress: {word}").encode()).pipeline
    assert pipeline is not None
    assert pipeline.stages["serve"].service.ingress is expected  # type: ignore[union-attr]


def test_stages_outside_the_dag_are_valid_and_not_deployed() -> None:
    text = edit("DAG: prepare >> train,serve", "DAG: prepare >> serve")
    pipeline = validate_config(text.encode()).pipeline
    assert pipeline is not None
    assert "train" in pipeline.stages
    assert [s.name for s in pipeline.dag_stages] == ["prepare", "serve"]


def test_a_utf8_byte_order_mark_is_accepted() -> None:
    assert validate_config(b"\xef\xbb\xbf" + VALID.encode()).pipeline is not None


# --- documents that are not a config ----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, fragment",
    [
        (b"", "the file is empty"),
        (b" ", "the file is empty"),
        (b"# only a comment\n", "the file is empty"),
        (b"- a\n- b\n", "found a list"),
        (b"just text\n", 'found the string "just text"'),
        (b"42\n", "found the number 42"),
        (b"a: 1\n---\nb: 2\n", "several YAML documents"),
    ],
)
def test_non_config_documents_get_one_clear_error(raw: bytes, fragment: str) -> None:
    problems = validate_config(raw).problems
    assert len(problems) == 1 and fragment in problems[0].message
    assert problems[0].severity is Severity.ERROR


def test_non_utf8_bytes_are_reported_with_their_position() -> None:
    problem = validate_config(b'version: "1.1"\nname: caf\xe9\n').problems[0]
    assert "not valid UTF-8" in problem.message and "0xe9" in problem.message
    assert (problem.line, problem.column) == (2, 10)


def test_invalid_yaml_syntax_is_reported_with_its_line() -> None:
    text = edit("  DAG: prepare >> train,serve", "  DAG: [prepare")
    problem = only_error(text)
    assert problem.message.startswith("invalid YAML:")
    assert (problem.line, problem.column) == (line_of(text, "DAG: [prepare"), 8)  # where the '[' opens


def test_bodyworks_ini_format_is_rejected_cleanly() -> None:
    problem = only_error((BODYWORK_PROJECT / "bodywork.ini").read_text())
    assert problem.message.startswith("invalid YAML:")


def test_missing_file_is_one_problem_not_an_exception(tmp_path: Path) -> None:
    outcome = read_config(tmp_path / "nope.yaml")
    assert outcome.pipeline is None
    assert "no config file found" in outcome.problems[0].message


def test_a_directory_is_not_a_config(tmp_path: Path) -> None:
    outcome = read_config(tmp_path)
    assert outcome.pipeline is None and "cannot read" in outcome.problems[0].message


def test_load_pipeline_raises_config_invalid_with_every_error(tmp_path: Path) -> None:
    path = tmp_path / "bodywork.yaml"
    path.write_text(edit("log_level: INFO", "log_level: LOUD", edit("retries: 1", "retries: -1")))
    with pytest.raises(ConfigInvalid) as caught:
        load_pipeline(path)
    assert str(caught.value) == f"2 errors in {path}"
    assert {p.path for p in caught.value.problems} == {"logging.log_level", "stages.prepare.batch.retries"}


# --- version ----------------------------------------------------------------------------------------


def test_unquoted_version_number_asks_for_quotes() -> None:
    problem = only_error(edit('version: "1.1"', "version: 1.1"))
    assert (problem.path, problem.line, problem.column) == ("version", 1, 10)
    assert 'expected the string "1.1"' in problem.message and "quote it" in problem.message


@pytest.mark.parametrize("version", ['"1.0"', '"2.0"', '"1.0.0"', '"not the version"'])
def test_wrong_version_names_found_and_expected(version: str) -> None:
    problem = only_error(edit('version: "1.1"', f"version: {version}"))
    assert problem.path == "version"
    assert version in problem.message and 'version "1.1"' in problem.message


def test_missing_sections_are_all_listed() -> None:
    raw = (BODYWORK_PROJECT / "bodywork_missing_sections.yaml").read_bytes()
    outcome = validate_config(raw)
    assert sorted(p.path for p in outcome.errors) == ["logging", "pipeline", "stages", "version"]
    assert all("is missing" in p.message for p in outcome.errors)
    assert {p.path for p in outcome.warnings} == {"foo", "la"}


# --- every error at once, each located --------------------------------------------------------------


def test_errors_in_every_section_are_reported_together() -> None:
    # Bodywork 3.0 reports only the bad stage's errors here (spec §1.7.1) or crashes (§1.7.2).
    text = VALID
    text = edit("name: demo", "name: Demo_Pipeline", text)
    text = edit("port: 8000", "port: 0", text)
    text = edit("log_level: INFO", "log_level: LOUD", text)
    text = edit("DAG: prepare >> train,serve", "DAG: prepare >> train,serve >> missing", text)
    errors = validate_config(text.encode()).errors
    assert [(p.path, p.line) for p in errors] == [
        ("pipeline.name", line_of(text, "Demo_Pipeline")),
        ("pipeline.DAG", line_of(text, "DAG:")),
        ("stages.serve.service.port", line_of(text, "port: 0")),
        ("logging.log_level", line_of(text, "LOUD")),
    ]


def test_problem_format_is_file_line_col_path_message() -> None:
    problem = only_error(edit("retries: 2", 'retries: "two"'), file="conf/bodywork.yaml")
    line = line_of(edit("retries: 2", 'retries: "two"'), '"two"')
    assert problem.format() == (
        f"conf/bodywork.yaml:{line}:16: stages.train.batch.retries: "
        'expected a whole number, found the string "two"'
    )


@pytest.mark.parametrize(
    "old, new, path, fragment",
    [
        ("retries: 2", "retries: true", "stages.train.batch.retries", "found the boolean true"),
        ("retries: 2", "retries: 1.5", "stages.train.batch.retries", "found the number 1.5"),
        ("retries: 2", "retries: -1", "stages.train.batch.retries", "must be ≥ 0, found -1"),
        ("cpu_request: 1\n", "cpu_request: yes\n", "stages.train.cpu_request", "found the boolean true"),
        ("cpu_request: 1\n", "cpu_request: -0.5\n", "stages.train.cpu_request", "must be ≥ 0"),
        (
            "memory_request_mb: 200",
            "memory_request_mb: 1.5",
            "stages.train.memory_request_mb",
            "whole number",
        ),
        ("replicas: 2", "replicas: -1", "stages.serve.service.replicas", "must be ≥ 0"),
        ("port: 8000", "port: 0", "stages.serve.service.port", "between 1 and 65535, found 0"),
        ("port: 8000", "port: 65536", "stages.serve.service.port", "between 1 and 65535, found 65536"),
        ("port: 8000", 'port: "8000"', "stages.serve.service.port", 'found the string "8000"'),
        ("ingress: false", 'ingress: "no"', "stages.serve.service.ingress", "expected true or false"),
        ("log_level: INFO", "log_level: info", "logging.log_level", "is not one of: DEBUG, INFO"),
        ("executable_module_path: train.py", "executable_module_path: train.sh", "", ".py or .ipynb"),
        ("name: demo", "name: Demo", "pipeline.name", "lower-case letters"),
        ("name: demo", "name: demo.pipeline", "pipeline.name", "lower-case letters"),
        ("name: demo", f"name: {'a' * 64}", "pipeline.name", "longer than 63 characters"),
        (
            "docker_image: python:3.11-slim",
            "docker_image: Python 3",
            "pipeline.docker_image",
            "image reference",
        ),
    ],
)
def test_field_errors_name_path_and_line(old: str, new: str, path: str, fragment: str) -> None:
    text = edit(old, new)
    problem = only_error(text)
    if path:
        assert problem.path == path
    assert fragment in problem.message, problem.message
    assert problem.line == line_of(text, new.strip().split("\n")[0])


def test_namespace_must_be_a_dns_label() -> None:
    text = edit("  DAG:", "  namespace: ML_Team\n  DAG:")
    problem = only_error(text)
    assert (problem.path, problem.line) == ("pipeline.namespace", line_of(text, "ML_Team"))


@pytest.mark.parametrize(
    "image",
    [
        "python:3.11-slim",
        "bodyworkml/bodywork-core:3.0",
        "ghcr.io/org/team/image:v1.2.3",
        "localhost:5000/img",
        "registry.example.com:443/a/b@sha256:" + "a" * 64,
        "python",
    ],
)
def test_images_from_any_registry_are_valid(image: str) -> None:
    assert validate_config(edit("python:3.11-slim", image).encode()).pipeline is not None


def test_missing_required_field_points_at_its_parent_key() -> None:
    text = edit("      retries: 2\n", "")
    problem = only_error(text)
    assert problem.path == "stages.train.batch.retries"
    assert problem.message == "required field 'retries' is missing"
    assert problem.line == line_of(text, "batch:") + 4 or problem.line >= line_of(text, "train:")


def test_null_stage_is_an_error_not_a_crash() -> None:
    text = edit("  serve:\n", "  broken: null\n  serve:\n")
    problem = only_error(text)
    assert (problem.path, problem.line) == ("stages.broken", line_of(text, "broken: null"))
    assert problem.message == "expected a mapping, found null"


def test_batch_with_no_value_is_an_error_not_a_crash() -> None:
    text = VALID.replace(
        "    batch:\n      max_completion_time_seconds: 60\n      retries: 1\n", "    batch:\n"
    )
    problem = only_error(text)
    assert problem.path == "stages.prepare.batch" and "found null" in problem.message


@pytest.mark.parametrize("section", ["pipeline", "logging"])
def test_non_mapping_section_is_an_error_not_a_crash(section: str) -> None:
    lines = VALID.splitlines()
    start = lines.index(f"{section}:")
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith(" ")), len(lines))
    text = "\n".join([*lines[:start], f"{section}: foo", *lines[end:]]) + "\n"
    errors = validate_config(text.encode()).errors
    assert any(p.path == section and "found the string" in p.message for p in errors)


def test_stages_not_a_mapping_reports_dag_references_too() -> None:
    raw = (BODYWORK_PROJECT / "bodywork_bad_stages_section.yaml").read_bytes()
    errors = validate_config(raw).errors
    assert ("stages", 6) in {(p.path, p.line) for p in errors}
    assert sum("is not defined in stages" in p.message for p in errors) == 3


def test_stage_with_both_batch_and_service() -> None:
    text = edit("    service:\n", "    batch: {max_completion_time_seconds: 1, retries: 0}\n    service:\n")
    problem = only_error(text)
    assert problem.path == "stages.serve" and "found both" in problem.message
    assert problem.line == line_of(text, "  serve:")


def test_stage_with_neither_batch_nor_service() -> None:
    text = VALID.replace("    batch:\n      max_completion_time_seconds: 60\n      retries: 1\n", "")
    problem = only_error(text)
    assert problem.path == "stages.prepare" and "found neither" in problem.message


# --- unknown and duplicate keys ---------------------------------------------------------------------


def test_unknown_key_suggests_nearest_as_a_warning() -> None:
    text = edit("    cpu_request: 1\n", "    cpu_request: 1\n    secret:\n      A: b\n")
    outcome = validate_config(text.encode())
    assert outcome.pipeline is not None
    (warning,) = outcome.warnings
    assert warning.path == "stages.train.secret"
    assert "did you mean 'secrets'?" in warning.message
    assert warning.line == line_of(text, "secret:")


def test_unknown_key_is_an_error_with_strict() -> None:
    text = edit("  log_level: INFO", "  log_level: INFO\n  log_levl: DEBUG")
    problem = only_error(text, strict=True)
    assert problem.path == "logging.log_levl" and "did you mean 'log_level'?" in problem.message


@pytest.mark.parametrize("key", ["\x1e", "\u2028", "\x85", "a\tb"])
def test_keys_with_control_characters_stay_on_one_escaped_line(key: str) -> None:
    # Found by the property test: a raw U+001E in a key split the problem's line in two.
    text = VALID + f'"{key.encode("unicode_escape").decode()}": 1\n'
    (warning,) = validate_config(text.encode()).warnings
    line = warning.format()
    assert len(line.splitlines()) == 1 and line.isprintable()
    assert line.startswith("bodywork.yaml:")
    assert key.encode("unicode_escape").decode().lower() in line.lower()


@pytest.mark.parametrize(
    "yaml_key, path",
    [
        ('"a.b"', 'stages.train["a.b"]'),
        ('"a b"', 'stages.train["a b"]'),
        ("'\\x7f'", 'stages.train["\\\\x7f"]'),  # single-quoted YAML: four characters, backslash escaped
        ('"\\x7f"', 'stages.train["\\x7f"]'),  # a YAML escape: the one invisible character DEL
        ("'q\"uote'", 'stages.train["q\\"uote"]'),
        ('"x\u202eevil"', 'stages.train["x\\u202eevil"]'),  # right-to-left override, shown escaped
    ],
)
def test_keys_that_are_not_plain_get_an_unambiguous_quoted_path(yaml_key: str, path: str) -> None:
    text = edit("    cpu_request: 1\n", f"    cpu_request: 1\n    {yaml_key}: 1\n")
    (warning,) = validate_config(text.encode()).warnings
    assert warning.path == path
    assert warning.format().isprintable()


def test_duplicate_stage_key_is_a_warning_naming_it() -> None:
    duplicate = (
        "  prepare:\n    executable_module_path: again.py\n    cpu_request: 1\n    memory_request_mb: 1\n"
        "    batch: {max_completion_time_seconds: 1, retries: 0}\n"
    )
    text = edit("logging:\n", duplicate + "logging:\n")
    outcome = validate_config(text.encode())
    (warning,) = [p for p in outcome.problems if "appears twice" in p.message]
    assert warning.path == "stages.prepare" and warning.severity is Severity.WARNING
    assert warning.line == line_of(text, "again.py") - 1
    assert "the last one wins" in warning.message
    assert only_error(text, strict=True).path == "stages.prepare"
    pipeline = outcome.pipeline
    assert pipeline is not None and pipeline.stages["prepare"].executable_module_path == "again.py"


# --- DAG and cross-checks ---------------------------------------------------------------------------


def test_dag_stage_not_defined_suggests_nearest() -> None:
    problem = only_error(edit("DAG: prepare >> train,serve", "DAG: prepare >> trian,serve"))
    assert problem.path == "pipeline.DAG"
    assert problem.message == "stage 'trian' is not defined in stages; did you mean 'train'?"


def test_stage_listed_twice_in_the_dag() -> None:
    problem = only_error(edit("DAG: prepare >> train,serve", "DAG: prepare >> train,serve >> prepare"))
    assert problem.message == "stage 'prepare' appears more than once (steps 1 and 3)"


@pytest.mark.parametrize(
    "dag, step",
    [("prepare >> train,>> serve", "step 2"), ("prepare >> ,train", "step 2"), ("'>> prepare'", "step 1")],
)
def test_empty_dag_step_is_named(dag: str, step: str) -> None:
    errors = validate_config(edit("DAG: prepare >> train,serve", f"DAG: {dag}").encode()).errors
    messages = [p.message for p in errors if p.path == "pipeline.DAG"]
    assert any(m.startswith(step) and "empty stage name" in m for m in messages), messages


def test_empty_dag_is_an_error() -> None:
    problem = only_error(edit("DAG: prepare >> train,serve", 'DAG: ""'))
    assert problem.path == "pipeline.DAG" and "the DAG is empty" in problem.message


def test_colliding_kubernetes_names_name_both_stages() -> None:
    text = edit(
        "  serve:\n",
        "  Train:\n    executable_module_path: t.py\n    cpu_request: 1\n"
        "    memory_request_mb: 1\n    batch: {max_completion_time_seconds: 1, retries: 0}\n  serve:\n",
    )
    problem = only_error(text)
    assert problem.path == "stages.Train"
    assert problem.message == (
        'stages "train" and "Train" both become the Kubernetes name \'train\'; rename one'
    )


def test_underscore_and_dash_stage_names_collide() -> None:
    text = VALID.replace("train", "train_model").replace(
        "  serve:\n",
        "  train-model:\n    executable_module_path: t.py\n    cpu_request: 1\n"
        "    memory_request_mb: 1\n    batch: {max_completion_time_seconds: 1, retries: 0}\n  serve:\n",
    )
    problem = only_error(text)
    assert "train_model" in problem.message and "train-model" in problem.message


def test_run_on_failure_must_exist() -> None:
    problem = only_error(edit("  DAG:", "  run_on_failure: cleanup\n  DAG:"))
    assert problem.path == "pipeline.run_on_failure" and "'cleanup' is not defined" in problem.message


def test_run_on_failure_must_be_a_batch_stage() -> None:
    problem = only_error(edit("  DAG:", "  run_on_failure: serve\n  DAG:"))
    assert problem.message == "stage 'serve' must be a batch stage to run on failure"


def test_secret_names_must_be_kubernetes_names() -> None:
    text = edit("    cpu_request: 1\n", "    cpu_request: 1\n    secrets:\n      TOKEN: My_Secret\n")
    problem = only_error(text)
    assert (
        problem.path == "stages.train.secrets.TOKEN"
        and "not a valid Kubernetes secret name" in problem.message
    )
    assert problem.line == line_of(text, "My_Secret")


def test_secret_variable_names_are_checked() -> None:
    text = edit("    cpu_request: 1\n", "    cpu_request: 1\n    secrets:\n      BAD KEY: creds\n")
    problem = only_error(text)
    assert problem.path == 'stages.train.secrets["BAD KEY"]' and "variable name" in problem.message


def test_secret_may_not_override_variables_the_tool_sets() -> None:
    text = edit("    cpu_request: 1\n", "    cpu_request: 1\n    secrets:\n      GIT_COMMIT_HASH: creds\n")
    problem = only_error(text)
    assert problem.path == "stages.train.secrets.GIT_COMMIT_HASH"
    assert problem.message == "GIT_COMMIT_HASH is set by bodywork-action itself and can't come from a secret"


def test_args_must_be_strings() -> None:
    text = edit("    cpu_request: 1\n", "    cpu_request: 1\n    args: [a, 2]\n")
    problem = only_error(text)
    assert problem.path == "stages.train.args[1]" and "found the number 2" in problem.message


# --- --check-files ----------------------------------------------------------------------------------


def test_check_files_resolves_relative_to_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "bodywork.yaml").write_text(VALID)
    for name in ("prepare.py", "train.py"):
        (project / name).write_text("print('hi')\n")
    monkeypatch.chdir(tmp_path)  # the working directory holds none of the modules
    outcome = read_config(Path("project/bodywork.yaml"), check_files=True)
    (problem,) = outcome.errors
    assert problem.path == "stages.serve.executable_module_path"
    assert '"serve.py" does not exist' in problem.message
    assert read_config(Path("project/bodywork.yaml")).errors == ()
