"""Hostile bodywork.yaml (issue 14): files that are not files, alias bombs, deep nesting, tags, huge
numbers and control characters each end in located problems (exit 2), never a hang, a crash or exit 3."""

from __future__ import annotations

import io
import os
import resource
import threading
from pathlib import Path

import pytest

from bodywork_action.cli import main
from bodywork_action.config import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    ConfigUnreadable,
    read_config,
    read_config_bytes,
    resolve_inside,
    validate_config,
)
from bodywork_action.errors import ConfigProblem, InputError, Severity
from testing.config_documents import VALID, edit, line_of

HOSTILE = Path(__file__).parent / "data" / "hostile"


def validate_file(path: Path) -> tuple[int, list[str]]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["validate", "-f", str(path)], out=out, err=err, environ={})
    assert err.getvalue() == ""
    return code, out.getvalue().splitlines()


def errors_of(raw: bytes) -> list[ConfigProblem]:
    return [p for p in validate_config(raw).problems if p.severity is Severity.ERROR]


# --- what is read at all ----------------------------------------------------------------------------


def finishes(function: object, seconds: float = 60) -> object:
    """Runs ``function`` in a thread: a hang guard (a FIFO blocked forever before), not a timing."""
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(function()), daemon=True)  # type: ignore[operator]
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "still blocked"
    return result[0]


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "bodywork.yaml"
    os.mkfifo(fifo)
    outcome = finishes(lambda: read_config(fifo))
    (problem,) = outcome.problems  # type: ignore[attr-defined]
    assert problem.message == f"cannot read {fifo}: it is a FIFO (named pipe), not a regular file"


def test_a_device_is_refused_without_reading_it() -> None:
    (problem,) = read_config(Path("/dev/zero")).problems
    assert problem.message == "cannot read /dev/zero: it is a character device, not a regular file"


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (problem,) = read_config(tmp_path).problems
    assert problem.message == f"cannot read {tmp_path}: it is a directory, not a regular file"


def test_a_file_over_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "bodywork.yaml"
    with big.open("wb") as handle:  # sparse: nothing is written, and nothing may be read
        handle.truncate(MAX_FILE_BYTES + 1)
    (problem,) = read_config(big).problems
    assert f"bodywork.yaml may be at most {MAX_FILE_BYTES:,} bytes" in problem.message
    with pytest.raises(ConfigUnreadable, match="at most 10 bytes"):
        read_config_bytes(big, limit=10)


def test_bytes_over_the_size_cap_are_refused() -> None:
    (problem,) = validate_config(b"#" * (MAX_FILE_BYTES + 1)).problems
    assert "at most" in problem.message and (problem.line, problem.column) == (1, 1)


def test_a_file_problem_has_no_invented_position(tmp_path: Path) -> None:
    (problem,) = read_config(tmp_path / "nope.yaml").problems
    assert (problem.line, problem.column, problem.path) == (0, 0, "")
    assert problem.message == f"no config file found at {tmp_path / 'nope.yaml'}"


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_the_cli_exits_2_with_one_line_for_what_is_not_a_file(tmp_path: Path, kind: str) -> None:
    path = {"device": Path("/dev/zero"), "directory": tmp_path}.get(kind, tmp_path / "fifo.yaml")
    if kind == "fifo":
        os.mkfifo(path)
    code, lines = finishes(lambda: validate_file(path))  # type: ignore[misc]
    assert code == 2
    assert len(lines) == 2 and "not a regular file" in lines[0] and lines[1] == f"1 error in {path}"


# --- resolve_inside: the action's `config` input ----------------------------------------------------


def test_resolve_inside_accepts_paths_in_the_workspace(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "bodywork.yaml").write_text(VALID)
    (tmp_path / "link.yaml").symlink_to(tmp_path / "deploy" / "bodywork.yaml")
    root = tmp_path.resolve()
    assert resolve_inside(tmp_path, "deploy/bodywork.yaml") == root / "deploy" / "bodywork.yaml"
    assert resolve_inside(tmp_path, "deploy/../link.yaml") == root / "deploy" / "bodywork.yaml"
    assert (
        resolve_inside(tmp_path, str(root / "deploy" / "bodywork.yaml")) == root / "deploy" / "bodywork.yaml"
    )
    assert resolve_inside(tmp_path, "not-there-yet.yaml") == root / "not-there-yet.yaml"


@pytest.mark.parametrize("config", ["../outside.yaml", "/etc/passwd", "escape.yaml", "dir-link/secret.yaml"])
def test_resolve_inside_refuses_what_leads_out_and_never_says_where(tmp_path: Path, config: str) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yaml").write_text("password: hunter2\n")
    (workspace / "escape.yaml").symlink_to(outside / "secret.yaml")
    (workspace / "dir-link").symlink_to(outside)
    with pytest.raises(InputError) as caught:
        resolve_inside(workspace, config)
    message = str(caught.value)
    assert message.startswith(f"{config!r} is outside the workspace")
    assert "hunter2" not in message and str(outside) not in message


@pytest.mark.parametrize("config", ["a\x00b.yaml", "loop.yaml"])
def test_resolve_inside_turns_unresolvable_paths_into_input_errors(tmp_path: Path, config: str) -> None:
    (tmp_path / "loop.yaml").symlink_to(tmp_path / "loop.yaml")
    with pytest.raises(InputError, match=r"^cannot resolve .* in the workspace: "):
        resolve_inside(tmp_path, config)


# --- aliases, nesting, size -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["billion_laughs_list.yaml", "billion_laughs_map.yaml", "merge_bomb.yaml"])
def test_alias_bombs_fail_at_once_with_one_located_error(name: str) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code, lines = validate_file(HOSTILE / name)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert code == 2
    assert len(lines) == 2 and "aliases expand the document past" in lines[0], lines
    assert lines[0].startswith(f"{HOSTILE / name}:3:")
    assert grown_mib < 200  # bounded memory: unbounded, this grew past 1.5 GB


def test_a_recursive_alias_is_located_and_the_rest_still_validated() -> None:
    errors = errors_of((HOSTILE / "recursive_alias.yaml").read_bytes())
    (recursive,) = [p for p in errors if "recursive alias" in p.message]
    assert (recursive.path, recursive.line) == ("pipeline.again", 3)
    assert {p.path for p in errors if "is missing" in p.message} == {"logging", "stages"}


def test_aliases_and_merges_a_real_file_uses_are_read_like_pyyaml_reads_them() -> None:
    text = edit(
        "stages:\n",
        "x-defaults: &batch\n  max_completion_time_seconds: 60\n  retries: 1\nstages:\n",
    )
    text = edit(
        "    batch:\n      max_completion_time_seconds: 600\n      retries: 2\n",
        "    batch:\n      <<: *batch\n      retries: 2\n",
        text,
    )
    outcome = validate_config(text.encode())
    assert [p.path for p in outcome.problems] == ["x-defaults"]  # an unknown key: a warning
    train = outcome.pipeline.stages["train"].batch  # type: ignore[union-attr]
    assert (train.max_completion_time_seconds, train.retries) == (60, 2)  # type: ignore[union-attr]


def test_a_problem_in_a_merged_value_points_at_its_definition() -> None:
    text = edit("stages:\n", "x-defaults: &batch {max_completion_time_seconds: -5, retries: 1}\nstages:\n")
    text = edit(
        "    batch:\n      max_completion_time_seconds: 600\n      retries: 2\n",
        "    batch:\n      <<: *batch\n",
        text,
    )
    problem = next(p for p in errors_of(text.encode()) if "must be ≥ 0" in p.message)
    assert problem.path == "stages.train.batch.max_completion_time_seconds"
    assert problem.line == line_of(text, "x-defaults")


def test_a_long_chain_of_merges_is_one_located_error() -> None:
    chain = "a0: &a0 {x: 1}\n" + "".join(f"a{i}: &a{i} {{<<: *a{i - 1}}}\n" for i in range(1, 3_000))
    (problem,) = errors_of(chain.encode())
    assert problem.message == f"merges ('<<') nested more than {MAX_DEPTH} levels deep"
    within = "a0: &a0 {x: 1}\n" + "".join(f"a{i}: &a{i} {{<<: *a{i - 1}}}\n" for i in range(1, 50))
    assert not any("merges" in p.message for p in errors_of(within.encode()))


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,  # crashed libyaml's composer (a segfault, not an exception)
        b"{a: " * 50_000 + b"1" + b"}" * 50_000,
        b"".join(b" " * i + b"- \n" for i in range(2_000)),
        b"a: " + b"[" * (MAX_DEPTH + 5) + b"]" * (MAX_DEPTH + 5) + b"\n",
    ],
    ids=["flow-lists", "flow-maps", "block-lists", "just-past-the-limit"],
)
def test_deep_nesting_is_one_located_error(raw: bytes) -> None:
    (problem,) = [p for p in errors_of(raw) if "nested" in p.message]
    assert problem.message == f"nested more than {MAX_DEPTH} levels deep"
    assert problem.line >= 1 and problem.column >= 1


def test_nesting_within_the_limit_is_fine() -> None:
    text = edit("    cpu_request: 1\n", "    cpu_request: 1\n    x-deep: " + "[" * 50 + "]" * 50 + "\n")
    assert validate_config(text.encode()).pipeline is not None


# --- tags and numbers -------------------------------------------------------------------------------


def test_every_tag_that_cant_be_read_is_a_located_error() -> None:
    raw = (HOSTILE / "tags.yaml").read_bytes()
    text = raw.decode()
    found = {(p.path, p.line, p.message) for p in errors_of(raw)}
    unsupported = "is not supported: bodywork.yaml holds plain strings, numbers, booleans, lists and mappings"
    assert found == {
        ("pipeline.name", line_of(text, "!!int"), '"abc" is not a valid whole number (!!int)'),
        (
            "pipeline.docker_image",
            line_of(text, "!!python"),
            f"the tag !!python/object/apply:os.system {unsupported}",
        ),
        ("pipeline.DAG", line_of(text, "!!timestamp"), '"2020-13-45" is not a valid date (!!timestamp)'),
        ("pipeline.usage_stats", line_of(text, "!!bool"), '"maybe" is not a valid boolean (!!bool)'),
        ("pipeline.namespace", line_of(text, "!custom"), f"the tag !custom {unsupported}"),
        ("stages.train.cpu_request", line_of(text, "!!float"), '"lots" is not a valid number (!!float)'),
        ("stages.train.memory_request_mb", line_of(text, "!!binary"), f"the tag !!binary {unsupported}"),
        ("stages.train.batch", line_of(text, "!!set"), f"the tag !!set {unsupported}"),
    }


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("!!int 5", None),
        ('!!str "5"', "found the string"),
        ("!!int 0x10", None),
        ("2020-13-45", '"2020-13-45" is not a valid date'),
        ("2024-01-31", "found the date 2024-01-31 (quote it to make it a string)"),
        (".inf", '".inf" is not a finite number'),
        ("1.0e+400", '"1.0e+400" is not a finite number'),
        ("9" * 5000, "the number 99999999999999999999… (5000 characters) is too large"),
        ("9223372036854775808", "the number 9223372036854775808 is too large (at most 9223372036854775807)"),
        ("0x" + "f" * 40, "is too large"),
    ],
)
def test_tagged_and_out_of_range_numbers(value: str, fragment: str | None) -> None:
    text = edit("memory_request_mb: 200", f"memory_request_mb: {value}")
    errors = errors_of(text.encode())
    if fragment is None:
        assert errors == []
    else:
        (problem,) = errors
        assert problem.path == "stages.train.memory_request_mb" and fragment in problem.message
        assert problem.line == line_of(text, "memory_request_mb: " + value[:10])


def test_huge_numbers_file_exits_2_with_both_located() -> None:
    code, lines = validate_file(HOSTILE / "huge_numbers.yaml")
    assert code == 2
    assert [line.split(": ")[1] for line in lines[:-1]] == [
        "stages.train.memory_request_mb",
        "stages.train.batch.retries",
    ]
    assert all(len(line) < 300 for line in lines)  # the 5,000 digits are not echoed


@pytest.mark.parametrize("key", ["!!int abc", "!!float x", "9" * 100, "!!binary aGk="])
def test_keys_that_cant_be_read_are_located_errors(key: str) -> None:
    text = edit("    cpu_request: 1\n", f"    cpu_request: 1\n    {key}: 1\n")
    (problem,) = errors_of(text.encode())
    assert problem.line == line_of(text, key[:20]) and problem.column == 5


def test_a_list_as_a_key_is_a_located_error() -> None:
    (problem,) = errors_of(VALID.encode() + b"? [a, b]\n: 1\n")
    assert problem.message == "a key must be a plain value, not a list or a mapping"


# --- control characters -----------------------------------------------------------------------------


def test_names_with_control_characters_are_rejected_and_shown_escaped() -> None:
    code, lines = validate_file(HOSTILE / "control_characters.yaml")
    assert code == 2
    paths = {line.split(": ")[1] for line in lines[:-1]}
    assert paths == {
        "pipeline.name",
        'stages["train\\n::error::injected"]',
        'stages["train\\n::error::injected"].executable_module_path',
        'stages["train\\n::error::injected"].secrets["TOKEN\\n"]',
    }
    assert all(line.isprintable() and "::error::" not in line.split(": ")[0] for line in lines)


@pytest.mark.parametrize(
    "old, new, path",
    [
        ("  prepare:\n", '  "prep\\rare":\n', 'stages["prep\\rare"]'),
        ("  prepare:\n", '  "prep\\u2028are":\n', 'stages["prep\\u2028are"]'),
        ("name: demo", 'name: "demo\\n"', "pipeline.name"),
        ("DAG: prepare >> train,serve", 'DAG: "prepare >> train,serve\\t"', "pipeline.DAG"),
        ("docker_image: python:3.11-slim", 'docker_image: "python:3.11-slim\\n"', "pipeline.docker_image"),
    ],
)
def test_each_name_with_an_invisible_character_is_an_error(old: str, new: str, path: str) -> None:
    errors = errors_of(edit(old, new).encode())
    assert any(p.path == path and "contains the invisible character" in p.message for p in errors), errors


def test_long_unreadable_keys_and_tags_are_shown_shortened() -> None:
    raw = ("? " + "9" * 5000 + "\n: 1\nx: !" + "a" * 500 + " b\n").encode()
    lines = [p.format() for p in errors_of(raw) if "too large" in p.message or "not supported" in p.message]
    assert len(lines) == 2 and all(len(line) < 300 for line in lines), lines
