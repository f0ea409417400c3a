"""``bodywork-action migrate``: Bodywork 2.x files (version "1.0"/"0.1") → version "1.1", comments and
layout kept, the result validated, what still needs a person reported; through ``main(argv)``."""

from __future__ import annotations

import io
import os
import shutil
import stat
from pathlib import Path

import pytest

from bodywork_action.cli import main
from bodywork_action.config import validate_config
from bodywork_action.migrate import MigrationError, migrate_text

DATA = Path(__file__).parent / "data" / "migrate"
FIXTURES = sorted(DATA.glob("*.yaml"))
VALID_AFTER = ["crlf.yaml", "four_space_0_1.yaml", "ml_pipeline.yaml"]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err, environ={})
    return code, out.getvalue(), err.getvalue()


def copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / "bodywork.yaml"
    shutil.copyfile(DATA / name, target)
    return target


def changed_lines(before: bytes, after: bytes) -> list[tuple[bytes, bytes]]:
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    assert len(old) == len(new), "a migration changes lines, never adds or removes them"
    return [(a, b) for a, b in zip(old, new, strict=True) if a != b]


# --- the pure migration ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", VALID_AFTER)
def test_real_2x_files_become_valid_1_1_files(name: str) -> None:
    before = (DATA / name).read_bytes()
    migration = migrate_text(before.decode())
    outcome = validate_config(migration.text.encode(), file=name)
    assert outcome.pipeline is not None, outcome.problems
    assert migration.changed and migration.from_version in ("1.0", "0.1")


def test_only_the_version_and_the_section_name_change_everything_else_byte_for_byte() -> None:
    before = (DATA / "ml_pipeline.yaml").read_bytes()
    after = migrate_text(before.decode()).text.encode()
    assert changed_lines(before, after) == [
        (b'version: "1.0"   # schema version\n', b'version: "1.1"   # schema version\n'),
        (b"project:\n", b"pipeline:\n"),
    ]


def test_quoting_indentation_and_line_endings_are_kept() -> None:
    quoted = migrate_text((DATA / "four_space_0_1.yaml").read_text())
    assert quoted.text.splitlines()[0] == "version: '1.1'"
    assert "\n'pipeline':\n    name: 'hello-world'\n" in quoted.text
    crlf = (DATA / "crlf.yaml").read_bytes()
    migrated = migrate_text(crlf.decode()).text.encode()
    assert migrated.count(b"\r\n") == crlf.count(b"\r\n") and migrated.startswith(b'version: "1.1"\r\n')


def test_an_unquoted_version_becomes_the_string_and_a_flow_document_keeps_its_style() -> None:
    migration = migrate_text("{version: 1.0, project: {name: a, docker_image: b, DAG: c}}\n")
    assert migration.text == '{version: "1.1", pipeline: {name: a, docker_image: b, DAG: c}}\n'


def test_a_namespace_given_on_bodywork_2x_command_line_is_a_note_at_the_section() -> None:
    notes = migrate_text((DATA / "ml_pipeline.yaml").read_text()).notes
    assert [(n.line, "namespace" in n.message) for n in notes] == [(6, True)]
    assert "bodywork-ml-pipeline-project" in notes[0].message
    assert migrate_text((DATA / "four_space_0_1.yaml").read_text()).notes == ()  # it names one


def test_both_project_and_pipeline_is_left_for_a_person() -> None:
    text = 'version: "1.0"\nproject:\n  name: a\npipeline:\n  name: b\n'
    migration = migrate_text(text)
    assert migration.text == text.replace('"1.0"', '"1.1"')
    assert [n.line for n in migration.notes] == [2]
    assert "both project: and pipeline: (line 4)" in migration.notes[0].message


def test_a_1_1_file_comes_back_unchanged() -> None:
    text = (DATA / "ml_pipeline.yaml").read_text().replace('"1.0"', '"1.1"')
    migration = migrate_text(text)
    assert not migration.changed and migration.text == text


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('version: "2.0"\nproject: {}\n', 'version "2.0" (line 1)'),
        ("version: true\n", "version true (a boolean)"),
        (
            "version: 1.1\n",
            "version the number 1.1 (quote it)",
        ),  # a number, not the string: not a 1.1 file either
        ("project:\n  name: a\n", "has no version"),
        ("- a list\n", "expected a mapping"),
        ("version: [\n", "line 2: invalid YAML"),
        ("a: 1\n---\nb: 2\n", "line 3: the file holds several YAML documents"),
        ("a: &a [1]\nb: [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n", "has no version"),
    ],
)
def test_what_cannot_be_migrated_says_why(text: str, says: str) -> None:
    with pytest.raises(MigrationError, match=r".") as raised:
        migrate_text(text)
    assert says in str(raised.value)


# --- the command ----------------------------------------------------------------------------------


def test_migrate_prints_a_unified_diff_and_changes_nothing(tmp_path: Path) -> None:
    path = copy(tmp_path, "ml_pipeline.yaml")
    before = path.read_bytes()
    code, out, err = run("migrate", "--file", str(path))
    assert code == 0
    assert path.read_bytes() == before
    lines = out.splitlines()
    assert lines[:2] == [f"--- a/{path}", f"+++ b/{path}"]
    assert [line for line in lines if line[:1] in "+-" and line[:3] not in ("---", "+++")] == [
        '-version: "1.0"   # schema version',
        '+version: "1.1"   # schema version',
        "-project:",
        "+pipeline:",
    ]
    assert f"{path}:6: note:" in err and f"{path} is valid" in err and "--write" in err


def test_migrate_write_rewrites_the_file_atomically_keeping_comments_and_mode(tmp_path: Path) -> None:
    path = copy(tmp_path, "ml_pipeline.yaml")
    path.chmod(0o640)
    before = path.read_bytes()
    inode = path.stat().st_ino
    code, out, err = run("migrate", "--file", str(path), "--write")
    assert code == 0 and out == ""
    after = path.read_bytes()
    assert len(changed_lines(before, after)) == 2
    assert after.count(b"#") == before.count(b"#")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.stat().st_ino != inode  # replaced, not rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bodywork.yaml"]  # no staging file left
    assert f'{path}: version "1.0" → "1.1", written' in err
    assert run("validate", "--file", str(path))[0] == 0
    code, out, err = run("migrate", "--file", str(path))  # a second run: nothing to do
    assert (code, out) == (0, "") and 'already version "1.1"' in err


def test_migrate_write_through_a_symlink_rewrites_its_target(tmp_path: Path) -> None:
    target = copy(tmp_path, "four_space_0_1.yaml")
    link = tmp_path / "link.yaml"
    link.symlink_to(target.name)
    assert run("migrate", "-f", str(link), "--write")[0] == 0
    assert link.is_symlink() and target.read_text().startswith("version: '1.1'")


def test_a_file_that_still_needs_a_person_gets_its_notes_and_problems_with_lines(tmp_path: Path) -> None:
    path = copy(tmp_path, "needs_a_person.yaml")
    code, out, err = run("migrate", "-f", str(path), "--write")
    assert (code, out) == (2, "")
    assert path.read_text().startswith('# A 2.x file with more wrong than its version.\nversion: "1.1"\n')
    assert "still needs a person:" in err
    assert f"{path}:3: note: Bodywork 2.x deployed into the namespace" in err
    for located in (
        f"{path}:4:9: pipeline.name:",
        f"{path}:6:8: pipeline.DAG: stage 'serve' is not defined",
        f'{path}:11:9: stages.prepare.requirements[0]: "joblib=1.1.0"',
        f"{path}:14:5: stages.prepare.batch.retries: required field 'retries' is missing",
    ):
        assert located in err
    assert f"4 errors in {path}" in err
    assert "did you mean 'pipeline'" not in err  # the section was renamed: not one of the problems


def test_a_1_1_file_is_reported_as_current_without_a_diff(tmp_path: Path) -> None:
    path = tmp_path / "bodywork.yaml"
    path.write_text((DATA / "ml_pipeline.yaml").read_text().replace('"1.0"', '"1.1"'))
    code, out, err = run("migrate", "-f", str(path), "--write")
    assert (code, out) == (0, "")
    assert 'is already version "1.1": nothing to migrate' in err


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('version: "3.0"\nproject: {}\n', 'says version "3.0" (line 1)'),
        ("project:\n  name: a\n", "has no version"),
        ("version: [\n", "invalid YAML"),
    ],
)
def test_unknown_versions_and_unreadable_files_exit_2_with_one_line(
    tmp_path: Path, text: str, says: str
) -> None:
    path = tmp_path / "bodywork.yaml"
    path.write_text(text)
    code, out, err = run("migrate", "-f", str(path), "--write")
    assert (code, out) == (2, "")
    assert err.startswith(f"error: cannot migrate {path}: ") and says in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert path.read_text() == text


def test_missing_binary_and_special_files_exit_2_without_a_traceback(tmp_path: Path) -> None:
    code, _, err = run("migrate", "-f", str(tmp_path / "nope.yaml"))
    assert code == 2 and "no config file found" in err
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b'version: "1.0"\nproject: \xff\n')
    code, _, err = run("migrate", "-f", str(binary))
    assert code == 2 and "not UTF-8" in err
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    code, _, err = run("migrate", "-f", str(fifo))
    assert code == 2 and "not a regular file" in err


def test_deeply_nested_yaml_is_one_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "bodywork.yaml"
    path.write_text('version: "1.0"\nproject: ' + "[" * 5000 + "]" * 5000 + "\n")
    code, _, err = run("migrate", "-f", str(path))
    assert code == 2 and err == f"error: cannot migrate {path}: line 2: nested more than 64 levels deep\n"


def test_the_validate_message_for_a_2x_file_names_migrate() -> None:
    outcome = validate_config((DATA / "ml_pipeline.yaml").read_bytes())
    assert [p.path for p in outcome.problems] == ["version"]
    assert "bodywork-action migrate" in outcome.problems[0].message


def test_migrate_help_describes_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("migrate", "--help")[0] == 0  # argparse prints help to sys.stdout
    out = capsys.readouterr().out
    assert "--file" in out and "--write" in out and "unified diff" in out
    options = out.split("options:")[1].splitlines()[1:]
    assert all(len(line.split(None, 1)) > 1 or line.startswith("      ") for line in options if line.strip())
