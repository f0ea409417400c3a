"""GitHub I/O: inputs, workflow commands, outputs, the summary file, the secrets and kubeconfig inputs."""

from __future__ import annotations

import base64
import io
import os
import re
import stat
from pathlib import Path

import pytest
import yaml

from bodywork_action.errors import ConfigProblem, InputError, Severity
from bodywork_action.github import workflow as gha
from bodywork_action.redact import SecretValue

CANARY_TOKEN = "canary-token-7f3a9c1e5b"
CANARY_KEY_PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIcanaryKEYline1abcdef\nMIIcanaryKEYline2ghijkl\n"
    "-----END RSA PRIVATE KEY-----\n"
)


def parse_output_file(text: str) -> dict[str, str]:
    """Read a GITHUB_OUTPUT file the way the runner does (heredoc entries only)."""
    outputs: dict[str, str] = {}
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line:
            index += 1
            continue
        name, _, delimiter = line.partition("<<")
        assert delimiter, f"not a heredoc entry: {line!r}"
        end = lines.index(delimiter, index + 1)
        outputs[name] = "\n".join(lines[index + 1 : end])
        index = end + 1
    return outputs


# ---------------------------------------------------------------------------------------------- inputs


def test_input_is_read_with_hyphens_kept_as_the_runner_sets_it() -> None:
    environ = {"INPUT_SECRETS-GROUP": " prod "}
    assert gha.read_input(environ, "secrets-group") == "prod"


def test_input_is_also_read_from_the_underscore_form() -> None:
    assert gha.read_input({"INPUT_SECRETS_GROUP": "prod"}, "secrets-group") == "prod"


def test_hyphenated_form_wins_over_underscore_form() -> None:
    environ = {"INPUT_SMOKE-TEST": "server=/health", "INPUT_SMOKE_TEST": "other=/x"}
    assert gha.read_input(environ, "smoke-test") == "server=/health"


def test_empty_input_falls_back_to_default_and_required_input_is_reported_by_name() -> None:
    assert gha.read_input({"INPUT_CONFIG": ""}, "config", default="bodywork.yaml") == "bodywork.yaml"
    with pytest.raises(InputError, match="input 'kubeconfig' is required"):
        gha.read_input({}, "kubeconfig", required=True)


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("TRUE", True), ("False", False), ("", True)])
def test_boolean_input_accepts_the_toolkit_spellings(raw: str, expected: bool) -> None:
    assert gha.read_bool_input({"INPUT_STRICT": raw}, "strict", default=True) is expected


@pytest.mark.parametrize("raw", ["yes", "1", "tRuE", "on"])
def test_boolean_input_rejects_other_spellings_naming_the_input(raw: str) -> None:
    with pytest.raises(InputError, match=rf"input 'strict' must be true or false, found '{raw}'"):
        gha.read_bool_input({"INPUT_STRICT": raw}, "strict", default=False)


def test_int_input_is_parsed_and_bad_values_are_reported() -> None:
    assert gha.read_int_input({"INPUT_TIMEOUT-MINUTES": "30"}, "timeout-minutes", default=10) == 30
    assert gha.read_int_input({}, "timeout-minutes", default=10) == 10
    with pytest.raises(InputError, match="input 'timeout-minutes' must be a whole number, found 'ten'"):
        gha.read_int_input({"INPUT_TIMEOUT-MINUTES": "ten"}, "timeout-minutes", default=10)
    with pytest.raises(InputError, match="input 'timeout-minutes' must be at least 1, found 0"):
        gha.read_int_input({"INPUT_TIMEOUT-MINUTES": "0"}, "timeout-minutes", default=10, minimum=1)


def test_choice_input_rejects_unknown_values_listing_the_choices() -> None:
    choices = ("deploy", "validate", "plan", "dry-run", "delete")
    assert gha.read_choice_input({"INPUT_COMMAND": "plan"}, "command", choices, default="deploy") == "plan"
    assert gha.read_choice_input({}, "command", choices, default="deploy") == "deploy"
    with pytest.raises(InputError, match=r"input 'command' must be one of deploy, validate.*'deplyo'"):
        gha.read_choice_input({"INPUT_COMMAND": "deplyo"}, "command", choices, default="deploy")


def test_multiline_input_drops_blank_lines() -> None:
    assert gha.read_multiline_input({"INPUT_SMOKE-TEST": "a=/x\n\n  b=/y  \n"}, "smoke-test") == (
        "a=/x",
        "b=/y",
    )


def test_github_context_builds_links_from_the_default_variables() -> None:
    context = gha.read_github_context(
        {
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": "acme/ml",
            "GITHUB_SHA": "0123456789abcdef",
            "GITHUB_RUN_ID": "42",
            "GITHUB_RUN_ATTEMPT": "2",
            "RUNNER_DEBUG": "1",
        }
    )
    assert context.repository_url == "https://github.com/acme/ml"
    assert context.commit_url == "https://github.com/acme/ml/commit/0123456789abcdef"
    assert context.run_url == "https://github.com/acme/ml/actions/runs/42/attempts/2"
    assert context.debug is True
    empty = gha.read_github_context({})
    assert (empty.repository_url, empty.commit_url, empty.run_url, empty.debug) == ("", "", "", False)


# ------------------------------------------------------------------------------------ workflow commands


def test_annotation_escapes_message_and_properties() -> None:
    line = gha.format_command("error", "50% done\r\nnext", file="dir,a:b.yaml", line=3, col=5, title="t,1")
    assert line == "::error file=dir%2Ca%3Ab.yaml,line=3,col=5,title=t%2C1::50%25 done%0D%0Anext"


def test_command_without_properties() -> None:
    assert gha.format_command("endgroup") == "::endgroup::"
    assert gha.format_command("warning", "x", file="", line=None) == "::warning::x"


def test_mask_registers_each_line_of_a_multiline_value() -> None:
    assert gha.format_mask_commands("one-line") == ["::add-mask::one-line"]
    assert gha.format_mask_commands(CANARY_KEY_PEM) == [
        "::add-mask::-----BEGIN RSA PRIVATE KEY-----",
        "::add-mask::MIIcanaryKEYline1abcdef",
        "::add-mask::MIIcanaryKEYline2ghijkl",
        "::add-mask::-----END RSA PRIVATE KEY-----",
    ]
    assert gha.format_mask_commands("   ") == []


def test_masked_value_is_redacted_from_later_log_lines() -> None:
    stream = io.StringIO()
    log = gha.ActionLog(stream)
    log.mask(SecretValue(CANARY_TOKEN))
    log.info(f"using token {CANARY_TOKEN}")
    log.annotate("error", f"refused {CANARY_TOKEN}", title=CANARY_TOKEN)
    lines = stream.getvalue().splitlines()
    assert lines[0] == f"::add-mask::{CANARY_TOKEN}"
    assert all(CANARY_TOKEN not in line for line in lines[1:])
    assert lines[1] == "using token ***"


def test_debug_lines_appear_only_under_runner_debug() -> None:
    quiet, loud = io.StringIO(), io.StringIO()
    gha.ActionLog(quiet, debug=False).debug("details")
    gha.ActionLog(loud, debug=True).debug("details")
    assert quiet.getvalue() == ""
    assert loud.getvalue() == "::debug::details\n"


def test_group_is_closed_even_when_the_body_raises() -> None:
    stream = io.StringIO()
    log = gha.ActionLog(stream)
    with pytest.raises(RuntimeError), log.group("step 1: train, evaluate"):
        log.info("inside")
        raise RuntimeError("boom")
    assert stream.getvalue() == "::group::step 1: train, evaluate\ninside\n::endgroup::\n"


def test_untrusted_text_is_wrapped_in_stop_commands_with_a_random_token() -> None:
    stream = io.StringIO()
    log = gha.ActionLog(stream)
    with log.untrusted_text():
        log.info("::error::not a real annotation")
    first, middle, last = stream.getvalue().splitlines()
    token = first.removeprefix("::stop-commands::")
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert middle == "::error::not a real annotation"
    assert last == f"::{token}::"


def _problem(index: int, severity: Severity = Severity.ERROR) -> ConfigProblem:
    return ConfigProblem("bodywork.yaml", index, 3, f"stages.s{index}", "bad value", severity)


def test_at_most_ten_annotations_per_kind_then_a_count_line() -> None:
    stream = io.StringIO()
    problems = [_problem(i) for i in range(1, 14)] + [_problem(i, Severity.WARNING) for i in range(20, 22)]
    gha.ActionLog(stream).annotate_problems(problems)
    lines = stream.getvalue().splitlines()
    errors = [line for line in lines if line.startswith("::error ")]
    warnings = [line for line in lines if line.startswith("::warning ")]
    assert len(errors) == 10 and len(warnings) == 2
    assert errors[0] == "::error file=bodywork.yaml,line=1,col=3::stages.s1: bad value"
    assert lines[-1].startswith("3 more problems not annotated")


def test_annotations_of_keys_with_invisible_characters_stay_one_inert_line() -> None:
    stream = io.StringIO()
    key = "evil\u2028\x1b[31m"
    problem = ConfigProblem(
        "bodywork.yaml", 4, 1, f'stages["{key}"]', f"unknown key {key!r}", Severity.WARNING
    )
    gha.ActionLog(stream).annotate_problems([problem])
    (line,) = stream.getvalue().splitlines()
    assert line.startswith("::warning file=bodywork.yaml,line=4,col=1::")
    assert "\x1b" not in line and "\u2028" not in line
    assert "evil\\u2028\\x1b[31m" in line


def test_ten_problems_need_no_count_line() -> None:
    stream = io.StringIO()
    gha.ActionLog(stream).annotate_problems([_problem(i) for i in range(1, 11)])
    assert all(line.startswith("::error ") for line in stream.getvalue().splitlines())


# -------------------------------------------------------------------------------- outputs and summary


def test_outputs_round_trip_with_multiline_values(tmp_path: Path) -> None:
    path = tmp_path / "output"
    path.write_text("earlier=1\n")  # written by an earlier step; must survive
    outputs = {"status": "succeeded", "stages": '[\n  {"stage": "train"}\n]', "service-url": ""}
    gha.write_outputs(path, outputs)
    text = path.read_text()
    assert text.startswith("earlier=1\n")
    assert parse_output_file(text.removeprefix("earlier=1\n")) == outputs


def test_output_delimiter_never_occurs_in_the_value(tmp_path: Path) -> None:
    path = tmp_path / "output"
    hostile = "ghadelimiter_\nline\nghadelimiter_0000"
    gha.write_outputs(path, {"summary": hostile})
    assert parse_output_file(path.read_text()) == {"summary": hostile}


def test_outputs_are_redacted_when_a_redactor_is_given(tmp_path: Path) -> None:
    from bodywork_action.redact import Redactor

    path = tmp_path / "output"
    gha.write_outputs(path, {"summary": f"failed: {CANARY_TOKEN}"}, redactor=Redactor([CANARY_TOKEN]))
    assert CANARY_TOKEN not in path.read_text()


def test_bad_output_name_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid output name"):
        gha.format_output_entry("bad name", "x")


def test_summary_is_appended(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    assert gha.append_summary(path, "# one\n") == len("# one\n")
    gha.append_summary(path, "two\n")
    assert path.read_text() == "# one\ntwo\n"


def test_summary_over_one_mib_is_cut_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    path.write_text("x" * 1000)
    written = gha.append_summary(path, "é" * gha.SUMMARY_MAX_BYTES)
    text = path.read_text(encoding="utf-8")
    assert path.stat().st_size <= gha.SUMMARY_MAX_BYTES
    assert written == path.stat().st_size - 1000
    assert "This summary was cut here" in text


# ------------------------------------------------------------------------------------- secrets input

MLFLOW_SECRETS = """
mlflow-config: MLFLOW_BACKEND_STORE_URI, MLFLOW_DEFAULT_ARTIFACT_ROOT
# optional: only when artifacts go to S3
aws-credentials: [AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION]
"""


def test_secrets_input_parses_one_secret_per_line() -> None:
    spec = gha.parse_secrets_input(MLFLOW_SECRETS)
    assert dict(spec.secrets) == {
        "mlflow-config": ("MLFLOW_BACKEND_STORE_URI", "MLFLOW_DEFAULT_ARTIFACT_ROOT"),
        "aws-credentials": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"),
    }
    assert spec.env_vars[0] == "MLFLOW_BACKEND_STORE_URI"


def test_secrets_input_accepts_yaml_block_lists() -> None:
    spec = gha.parse_secrets_input("db:\n  - USER\n  - PASSWORD\n")
    assert dict(spec.secrets) == {"db": ("USER", "PASSWORD")}


def test_secrets_input_agrees_with_yaml_for_the_documented_forms() -> None:
    parsed = yaml.safe_load(MLFLOW_SECRETS)
    spec = gha.parse_secrets_input(MLFLOW_SECRETS)
    assert spec.secrets["mlflow-config"] == tuple(k.strip() for k in parsed["mlflow-config"].split(","))
    assert spec.secrets["aws-credentials"] == tuple(parsed["aws-credentials"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Bad_Name: KEY", "'Bad_Name' is not a valid Kubernetes secret name"),
        ("db: KEY, 1BAD", "'1BAD' is not an environment variable name"),
        ("db: KEY\ndb: OTHER", "secret 'db' is listed twice"),
        ("db: KEY, KEY", "key 'KEY' is listed twice"),
        ("db:", "secret 'db' lists no keys"),
        ("just text", "expected 'secret-name: KEY1, KEY2'"),
        ("- KEY", "must follow a 'secret-name:' line"),
        ("db: A,,B", "empty key"),
    ],
)
def test_secrets_input_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        gha.parse_secrets_input(text)


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
    assert "empty: AWS_ACCESS_KEY_ID" in annotation  # GitHub's "" for an undefined secret is not a value
    for where in (annotation, outputs["summary"], step_summary.replace("\\_", "_")):
        assert "AWS_ACCESS_KEY_ID" in where  # empty
        assert "AWS_SECRET_ACCESS_KEY" in where and "AWS_DEFAULT_REGION" in where  # unset
        assert "MLFLOW_BACKEND_STORE_URI" not in where  # supplied
    canaries = ("canary-pw", "canary-root", "second canary line")
    leaks = [line for line in log.splitlines() if any(c in line for c in canaries)]
    assert leaks and all(line.startswith("::add-mask::") for line in leaks)
    for text in (output_path.read_text(), step_summary):
        assert not any(c in text for c in canaries)


# --------------------------------------------------------------------------------------- kubeconfig

KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "kind", "cluster": {"server": "https://127.0.0.1:6443"}}],
    "contexts": [{"name": "kind", "context": {"cluster": "kind", "user": "admin"}}],
    "current-context": "kind",
    "users": [
        {"name": "admin", "user": {"token": CANARY_TOKEN}},
        {
            "name": "cert-user",
            "user": {
                "client-key-data": base64.b64encode(CANARY_KEY_PEM.encode()).decode(),
                "client-certificate-data": base64.b64encode(
                    b"-----BEGIN CERTIFICATE-----\nMIIcert\n"
                ).decode(),
            },
        },
        {"name": "basic", "user": {"username": "bob", "password": "canary-password-55"}},
        {
            "name": "oidc",
            "user": {"auth-provider": {"name": "oidc", "config": {"id-token": "canary-id-tok"}}},
        },
    ],
}
KUBECONFIG_YAML = yaml.safe_dump(KUBECONFIG)


def test_plain_and_base64_kubeconfig_give_the_same_yaml() -> None:
    plain = gha.parse_kubeconfig_input(KUBECONFIG_YAML)
    encoded = base64.b64encode(KUBECONFIG_YAML.encode()).decode()
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))  # `base64` wraps lines
    assert yaml.safe_load(plain) == KUBECONFIG
    assert gha.parse_kubeconfig_input(wrapped) == plain


@pytest.mark.parametrize("text", ["", "not a kubeconfig at all", base64.b64encode(b"just: yaml").decode()])
def test_bad_kubeconfig_is_reported_without_quoting_it(text: str) -> None:
    with pytest.raises(InputError, match="input 'kubeconfig'") as raised:
        gha.parse_kubeconfig_input(text)
    assert not text or text not in str(raised.value)


def test_every_kubeconfig_credential_is_found_for_masking() -> None:
    credentials = gha.find_kubeconfig_credentials(KUBECONFIG_YAML)
    assert CANARY_TOKEN in credentials
    assert CANARY_KEY_PEM in credentials  # the decoded key as well as its base64
    assert KUBECONFIG["users"][1]["user"]["client-key-data"] in credentials
    assert "canary-password-55" in credentials
    assert "canary-id-tok" in credentials
    assert "bob" not in credentials  # a user name is not a credential


def test_kubeconfig_file_is_private_outside_the_workspace_and_removed(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    runner_temp = tmp_path / "runner-temp"
    workspace.mkdir()
    runner_temp.mkdir()
    environ = {"GITHUB_WORKSPACE": str(workspace), "RUNNER_TEMP": str(runner_temp)}
    with gha.write_private_kubeconfig(KUBECONFIG_YAML, environ) as path:
        assert path.read_text() == KUBECONFIG_YAML
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert runner_temp in path.parents
    assert not path.exists() and not path.parent.exists()
    assert list(workspace.iterdir()) == []


def test_kubeconfig_file_is_removed_when_the_block_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), gha.write_private_kubeconfig("x: 1\n", {}) as path:
        raise RuntimeError("deploy failed")
    assert not path.exists()


@pytest.mark.parametrize("where", ["missing", "inside-workspace"])
def test_unusable_runner_temp_falls_back_to_the_system_temp(tmp_path: Path, where: str) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    runner_temp = workspace / "_temp" if where == "inside-workspace" else tmp_path / "absent"
    if where == "inside-workspace":
        runner_temp.mkdir()
    environ = {"GITHUB_WORKSPACE": str(workspace), "RUNNER_TEMP": str(runner_temp)}
    assert gha.choose_private_temp_parent(environ) is None
    with gha.write_private_kubeconfig("x: 1\n", environ) as path:
        assert workspace not in path.parents
        assert os.path.commonpath([path, workspace]) != str(workspace)
