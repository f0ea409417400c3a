"""github/inputs.py: every action input read once, with @actions/core's conventions."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bodywork_action.errors import InputError
from bodywork_action.github import inputs
from bodywork_action.redact import SecretValue
from bodywork_action.secret_groups import SecretRequest


def test_input_is_read_with_hyphens_kept_as_the_runner_sets_it() -> None:
    environ = {"INPUT_SECRETS-GROUP": " prod "}
    assert inputs.read_input(environ, "secrets-group") == "prod"


def test_input_is_also_read_from_the_underscore_form() -> None:
    assert inputs.read_input({"INPUT_SECRETS_GROUP": "prod"}, "secrets-group") == "prod"


def test_hyphenated_form_wins_over_underscore_form() -> None:
    environ = {"INPUT_SMOKE-TEST": "server=/health", "INPUT_SMOKE_TEST": "other=/x"}
    assert inputs.read_input(environ, "smoke-test") == "server=/health"


def test_empty_input_falls_back_to_its_default() -> None:
    assert inputs.read_input({"INPUT_CONFIG": ""}, "config", default="bodywork.yaml") == "bodywork.yaml"


def test_every_input_is_read_once_into_typed_values() -> None:
    environ = {
        "INPUT_COMMAND": "dry-run",
        "INPUT_SECRETS": "db: USER, PASSWORD",
        "INPUT_SMOKE-TEST": "server=/health\n\n  other=/x ",
        "INPUT_STRICT": "true",
        "INPUT_TIMEOUT-MINUTES": "15",
        "INPUT_KUBECONFIG": "apiVersion: v1",
    }
    read = inputs.read_action_inputs(environ)
    assert read.command == "dry-run"
    assert read.secrets == (SecretRequest("db", ("USER", "PASSWORD")),)
    assert read.smoke_test == ("server=/health", "other=/x")
    assert read.strict is True and read.timeout_minutes == 15
    assert read.config == "bodywork.yaml" and read.namespace == ""
    assert "apiVersion" not in repr(read)  # the kubeconfig is held as a secret


def test_no_inputs_at_all_means_every_default_of_action_yml() -> None:
    defaults = yaml.safe_load((Path(__file__).parents[2] / "action.yml").read_text())["inputs"]
    read = inputs.read_action_inputs({})
    for name, spec in defaults.items():
        value = getattr(read, name.replace("-", "_"))
        shown = value.reveal() if isinstance(value, SecretValue) else value
        if isinstance(shown, bool):
            shown = str(shown).lower()
        elif isinstance(shown, tuple):
            shown = "\n".join(map(str, shown))
        elif shown is None:  # not given (from-step, stages): the empty default
            shown = ""
        assert str(shown) == str(spec.get("default", "")), name


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("TRUE", True), ("False", False), ("", True)])
def test_boolean_input_accepts_the_toolkit_spellings(raw: str, expected: bool) -> None:
    assert inputs.read_bool_input({"INPUT_STRICT": raw}, "strict", default=True) is expected


@pytest.mark.parametrize("raw", ["yes", "1", "tRuE", "on"])
def test_boolean_input_rejects_other_spellings_naming_the_input(raw: str) -> None:
    with pytest.raises(InputError, match=rf"input 'strict' must be true or false, found '{raw}'"):
        inputs.read_bool_input({"INPUT_STRICT": raw}, "strict", default=False)


def test_int_input_is_parsed_and_bad_values_are_reported() -> None:
    assert inputs.read_int_input({"INPUT_TIMEOUT-MINUTES": "30"}, "timeout-minutes", default=10) == 30
    assert inputs.read_int_input({}, "timeout-minutes", default=10) == 10
    with pytest.raises(InputError, match="input 'timeout-minutes' must be a whole number, found 'ten'"):
        inputs.read_int_input({"INPUT_TIMEOUT-MINUTES": "ten"}, "timeout-minutes", default=10)
    with pytest.raises(InputError, match="input 'timeout-minutes' must be at least 1, found 0"):
        inputs.read_int_input({"INPUT_TIMEOUT-MINUTES": "0"}, "timeout-minutes", default=10, minimum=1)


def test_choice_input_rejects_unknown_values_listing_the_choices() -> None:
    choices = ("deploy", "validate", "plan", "dry-run", "delete")
    assert inputs.read_choice_input({"INPUT_COMMAND": "plan"}, "command", choices, default="deploy") == "plan"
    assert inputs.read_choice_input({}, "command", choices, default="deploy") == "deploy"
    with pytest.raises(InputError, match=r"input 'command' must be one of deploy, validate.*'deplyo'"):
        inputs.read_choice_input({"INPUT_COMMAND": "deplyo"}, "command", choices, default="deploy")


def test_multiline_input_drops_blank_lines() -> None:
    assert inputs.read_multiline_input({"INPUT_SMOKE-TEST": "a=/x\n\n  b=/y  \n"}, "smoke-test") == (
        "a=/x",
        "b=/y",
    )


def test_github_context_builds_links_from_the_default_variables() -> None:
    context = inputs.read_github_context(
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
    empty = inputs.read_github_context({})
    assert (empty.repository_url, empty.commit_url, empty.run_url, empty.debug) == ("", "", "", False)


def test_a_partial_run_is_read_from_stages_or_from_step() -> None:
    read = inputs.read_action_inputs({"INPUT_STAGES": " train, serve ", "INPUT_FROM-STEP": "2"})
    assert (read.stages, read.from_step) == (("train", "serve"), 2)
    assert inputs.read_action_inputs({"INPUT_STAGES": " , "}).stages == (), "asked, but for nothing"
    with pytest.raises(InputError, match="input 'from-step' must be at least 1, found 0"):
        inputs.read_action_inputs({"INPUT_FROM-STEP": "0"})
