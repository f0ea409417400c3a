"""github/workflow.py: workflow commands, masks, annotations, outputs and the summary file."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bodywork_action.github import workflow
from testing.github_files import parse_output_file, unescape_command_data

CANARY_TOKEN = "canary-token-7f3a9c1e5b"
CANARY_KEY_PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIcanaryKEYline1abcdef\nMIIcanaryKEYline2ghijkl\n"
    "-----END RSA PRIVATE KEY-----\n"
)


# -------------------------------------------------------------------------------- outputs and summary


def test_outputs_round_trip_with_multiline_values(tmp_path: Path) -> None:
    path = tmp_path / "output"
    path.write_text("earlier=1\n")  # written by an earlier step; must survive
    outputs = {"status": "succeeded", "stages": '[\n  {"stage": "train"}\n]', "service-url": ""}
    workflow.write_outputs(path, outputs)
    text = path.read_text()
    assert text.startswith("earlier=1\n")
    assert parse_output_file(text.removeprefix("earlier=1\n")) == outputs


def test_output_delimiter_never_occurs_in_the_value(tmp_path: Path) -> None:
    path = tmp_path / "output"
    hostile = "ghadelimiter_\nline\nghadelimiter_0000"
    workflow.write_outputs(path, {"summary": hostile})
    assert parse_output_file(path.read_text()) == {"summary": hostile}


def test_outputs_are_redacted_when_a_redactor_is_given(tmp_path: Path) -> None:
    from bodywork_action.redact import Redactor

    path = tmp_path / "output"
    workflow.write_outputs(path, {"summary": f"failed: {CANARY_TOKEN}"}, redactor=Redactor([CANARY_TOKEN]))
    assert CANARY_TOKEN not in path.read_text()


def test_bad_output_name_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid output name"):
        workflow.format_output_entry("bad name", "x")


def test_summary_is_appended(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    assert workflow.append_summary(path, "# one\n") == len("# one\n")
    workflow.append_summary(path, "two\n")
    assert path.read_text() == "# one\ntwo\n"


def test_summary_over_one_mib_is_cut_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    path.write_text("x" * 1000)
    written = workflow.append_summary(path, "é" * workflow.SUMMARY_MAX_BYTES)
    text = path.read_text(encoding="utf-8")
    assert path.stat().st_size <= workflow.SUMMARY_MAX_BYTES
    assert written == path.stat().st_size - 1000
    assert "This summary was cut here" in text


MLFLOW_SECRETS = """
mlflow-config: MLFLOW_BACKEND_STORE_URI, MLFLOW_DEFAULT_ARTIFACT_ROOT
# optional: only when artifacts go to S3
aws-credentials: [AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION]
"""


ONE_STAGE_YAML = """\
version: "1.1"
pipeline:
  name: one-stage
  docker_image: python:3.11-slim
  DAG: train
stages:
  train:
    executable_module_path: train.py
    cpu_request: 0.25
    memory_request_mb: 100
    batch:
      max_completion_time_seconds: 60
      retries: 0
logging:
  log_level: INFO
"""


def test_the_action_names_unset_and_empty_secret_variables_but_never_a_value(tmp_path: Path) -> None:
    # The path the action really takes: the ``secrets`` input → secret_groups.build_secret_supply.
    from bodywork_action import action

    workspace = tmp_path / "repo"
    workspace.mkdir()
    (workspace / "bodywork.yaml").write_text(ONE_STAGE_YAML)
    (workspace / "train.py").write_text("print('training')\n")
    output_path, summary_path = tmp_path / "output", tmp_path / "summary"
    multiline_value = "s3://bucket/canary-root\nsecond canary line"
    environ = {
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_OUTPUT": str(output_path),
        "GITHUB_STEP_SUMMARY": str(summary_path),
        "GITHUB_REPOSITORY": "owner/repo",
        "GITHUB_SHA": "0" * 40,
        "INPUT_SECRETS": MLFLOW_SECRETS,
        "MLFLOW_BACKEND_STORE_URI": "postgresql://u:canary-pw@db/mlflow",
        "MLFLOW_DEFAULT_ARTIFACT_ROOT": multiline_value,
        "AWS_ACCESS_KEY_ID": "",  # an undefined repository secret arrives as ""
    }
    stdout = io.StringIO()

    assert action.run_action(environ, stdout=stdout) == 2

    log = stdout.getvalue()
    outputs = parse_output_file(output_path.read_text())
    step_summary = summary_path.read_text()
    (annotation,) = [line for line in log.splitlines() if line.startswith("::error")]
    # GitHub passes "" for an undefined secret: that is not a value.
    assert "empty: aws-credentials/AWS_ACCESS_KEY_ID" in annotation
    for where in (annotation, outputs["summary"], step_summary.replace("\\_", "_")):
        assert "AWS_ACCESS_KEY_ID" in where  # empty
        assert "AWS_SECRET_ACCESS_KEY" in where and "AWS_DEFAULT_REGION" in where  # unset
        assert "MLFLOW_BACKEND_STORE_URI" not in where  # supplied
    canaries = ("canary-pw", "canary-root", "second canary line")
    leaks = [line for line in log.splitlines() if any(c in line for c in canaries)]
    assert leaks and all(line.startswith("::add-mask::") for line in leaks)
    for text in (output_path.read_text(), step_summary):
        assert not any(c in text for c in canaries)


# ----------------------------------------------------------------------------------------------- masks


@pytest.mark.parametrize(
    "value",
    [
        "canary%0Apassword",  # would register "canary\npassword" if sent raw
        "canary%25literal",  # would register "canary%literal"
        "%0D%0A%25%250A-canary",
        "canary-line-one\r%0Acanary-line-two",  # a CR splits the value: each line is masked
        "first%0A-line\nsecond%25-line\r\nthird%0D-line",
    ],
)
def test_add_mask_values_are_registered_exactly_as_the_runner_unescapes_them(value: str) -> None:
    commands = workflow.format_mask_commands(value)

    assert all(line.startswith("::add-mask::") and "\n" not in line and "\r" not in line for line in commands)
    registered = {unescape_command_data(line.removeprefix("::add-mask::")) for line in commands}
    expected = {line for line in value.splitlines() if line.strip()}
    assert registered == expected
    # And through ActionLog: the redactor knows the raw value, the log holds only escaped mask lines.
    stream = io.StringIO()
    log = workflow.ActionLog(stream)
    log.mask(value)
    log.info(f"printing {value}")
    printed = stream.getvalue().splitlines()
    assert printed[: len(commands)] == commands
    assert all(line not in printed[-1] for line in expected)
