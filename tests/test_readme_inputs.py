"""README's inputs table and outputs paragraph say what action.yml declares: every input once, in the
same order, with the same default; every output, and the same status values. action.yml's ``stages``
output names every field of an entry."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bodywork_action.model import StageKind, StageName
from bodywork_action.results import StageResult

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())


def inputs_table() -> list[tuple[str, str]]:
    """(input, default as README shows it) for each row of the table under '### Inputs'."""
    section = README.split("### Inputs", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"^\| `([a-z-]+)` \| ([^|]*?) \|", section, flags=re.MULTILINE)


def test_every_input_is_in_the_readme_table_once_in_action_yml_order() -> None:
    assert [name for name, _ in inputs_table()] == list(ACTION["inputs"])


def test_a_literal_default_in_action_yml_is_the_default_the_readme_shows() -> None:
    shown = dict(inputs_table())
    literal = {name: spec["default"] for name, spec in ACTION["inputs"].items() if spec["default"]}
    # An empty default means a computed one (the pipeline's, GITHUB_SHA...), which README says in words.
    assert {name: shown[name] for name in literal} == {name: f"`{value}`" for name, value in literal.items()}


def test_the_readme_lists_every_output_and_the_same_status_values() -> None:
    paragraph = README.split("### Outputs", 1)[1].split("\n\n", 2)[1]
    for name in ACTION["outputs"]:
        assert f"`{name}`" in paragraph, f"README's outputs do not mention {name}"
    status_words = re.search(r"`status` \(([^)]*)\)", paragraph)
    assert status_words is not None
    in_readme = set(re.findall(r"`([a-z]+)`", status_words.group(1)))
    described = ACTION["outputs"]["status"]["description"].split("-", 1)[1]
    candidates = {"succeeded", "failed", "cancelled", "valid", "invalid", "planned", "changed"}
    candidates |= {"unchanged", "deleted", "error", "skipped", "deployed"}
    assert in_readme == set(re.findall(r"\b[a-z]+\b", described)) & candidates


def test_the_stages_output_names_every_field_of_an_entry() -> None:
    described = set(re.findall(r"\b[a-z_]+\b", ACTION["outputs"]["stages"]["description"].split(" - ", 1)[1]))
    assert set(StageResult(stage=StageName("s"), kind=StageKind.BATCH).to_json()) == described
