"""A Bodywork 2.x ``bodywork.yaml`` (schema version "1.0", or "0.1") → the same file at version "1.1".

Pure: text in, text and notes out. The file is parsed with a round-trip YAML library (ruamel.yaml) only
to find where each field stands; the edits are then made to the original text at those places, so every
other byte (comments, order, quoting, indentation, blank lines, line endings) stays as written.

What changed between the formats, from bodywork-core's history (``src/bodywork/config.py`` and
``constants.py``, v2.0.0 … v2.1.7 → v3.0.0):

- ``BODYWORK_CONFIG_VERSION`` "1.0" → "1.1" (commit 0807291, 3.0.0rc4): ``version: "1.1"``;
- the top-level ``project:`` section was renamed ``pipeline:`` (same commit; its fields kept their
  names: ``name``, ``docker_image``, ``DAG``, ``usage_stats``, ``run_on_failure``);
- ``pipeline.namespace`` (7708ab2) and ``pipeline.secrets_group`` (bb89aed) were added, both optional:
  2.x took the namespace from the command line (``bodywork deployment create --namespace``), 3.0 from
  the file, by default the pipeline's name. A person has to say which namespace was meant: a note;
- ``executable_module_path`` may also name a notebook (``.ipynb``, 75431cb): nothing to change.

Nothing was removed and nothing became required; ``stages`` and ``logging`` are the same. "0.1" appears
in bodywork-core only as a version-mismatch fixture with the 1.0 layout, and is migrated as 1.0.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bodywork_action.config import validate_config
from bodywork_action.errors import InputError, Severity
from bodywork_action.model import SCHEMA_VERSION

MIGRATABLE_VERSIONS = ("1.0", "0.1")

# A scalar as written: double-quoted, single-quoted, or plain (up to white space, a comment or the end
# of a flow collection), after an optional tag.
_TAG = re.compile(r"!\S*\s+")
_SCALAR = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^']|'')*'|[^\s,\]}#]+(?:[ \t]+[^\s,\]}#]+)*")
_LINE_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")  # what YAML counts as a line break


class MigrationError(InputError):
    """The file can't be migrated (not YAML, not a mapping, no version or another one)."""


@dataclass(frozen=True)
class MigrationNote:
    """Something a person still has to decide or do, at a line of the migrated file (0: the file)."""

    line: int
    message: str


@dataclass(frozen=True)
class Migration:
    from_version: str  # as written in the input, unquoted
    text: str  # the migrated text; the input itself when from_version is already SCHEMA_VERSION
    notes: tuple[MigrationNote, ...]

    @property
    def changed(self) -> bool:
        return self.from_version != SCHEMA_VERSION


@dataclass(frozen=True)
class _Edit:
    start: int
    end: int
    replacement: str


def _line_starts(text: str) -> list[int]:
    return [0, *(match.end() for match in _LINE_BREAK.finditer(text))]


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] == '"':
        return token[1:-1]
    if len(token) >= 2 and token[0] == token[-1] == "'":
        return token[1:-1].replace("''", "'")
    return token


def _parse(text: str) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    loader = YAML(typ="rt", pure=True)
    loader.allow_duplicate_keys = True  # validation reports them afterwards, located
    try:
        return loader.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise MigrationError(f"cannot be read as YAML: {where}{exc.problem or exc.context}") from None
    except YAMLError as exc:
        raise MigrationError(f"cannot be read as YAML: {exc}") from None
    except RecursionError:
        raise MigrationError("cannot be read as YAML: nested too deeply") from None


def _position(mapping: Any, key: str, *, value: bool) -> tuple[int, int]:
    """0-based (line, column) of ``key`` in a round-trip mapping, or of its value."""
    line, column = mapping.lc.value(key) if value else mapping.lc.key(key)
    return int(line), int(column)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, int | float):
        return f"the number {value} (quote it)"
    return f"a {type(value).__name__}" if value is not None else "nothing"


def migrate_text(text: str) -> Migration:
    """``text`` of a version "1.0"/"0.1" bodywork.yaml → the same file at version "1.1", and notes.

    A file already at "1.1" comes back unchanged. ``MigrationError`` for anything else."""
    # The validator reads hostile files within limits (size, nodes, depth, aliases) and says what is
    # wrong with the document as a whole; only a file it can read is handed to the round-trip parser.
    unreadable = [
        p
        for p in validate_config(text.encode("utf-8", "surrogateescape")).problems
        if p.path == "" and p.severity is Severity.ERROR
    ]
    if unreadable:
        first = unreadable[0]
        raise MigrationError(f"line {first.line}: {first.message}" if first.line else first.message)
    document = _parse(text)
    if not isinstance(document, Mapping):
        raise MigrationError("is not a bodywork.yaml: expected a mapping with version, project, stages")
    if "version" not in document:
        raise MigrationError(
            "has no version: cannot tell which format it is in; Bodywork 2.x files say "
            f'version: "1.0", files this tool reads say version: "{SCHEMA_VERSION}"'
        )
    starts = _line_starts(text)

    def offset(position: tuple[int, int]) -> int:
        line, column = position
        return starts[line] + column if line < len(starts) else len(text)

    version_at = _position(document, "version", value=True)
    begin = offset(version_at)
    if tag := _TAG.match(text, begin):
        begin = tag.end()
    token = _SCALAR.match(text, begin)
    written = _unquote(token.group()) if token else ""
    loaded = document["version"]
    found = str(loaded) if isinstance(loaded, str | float) and not isinstance(loaded, bool) else None
    if found == SCHEMA_VERSION and isinstance(loaded, str):
        return Migration(SCHEMA_VERSION, text, ())
    if found not in MIGRATABLE_VERSIONS or token is None or written != found:
        wanted = " or ".join(f'"{v}"' for v in MIGRATABLE_VERSIONS)
        raise MigrationError(
            f"says version {_show(loaded)} (line {version_at[0] + 1}): `migrate` upgrades Bodywork 2.x "
            f'files (version {wanted}) to version "{SCHEMA_VERSION}"'
        )
    quote = "'" if token.group().startswith("'") else '"'
    edits = [_Edit(begin, token.end(), f"{quote}{SCHEMA_VERSION}{quote}")]
    notes: list[MigrationNote] = []
    section = _rename_project(text, document, offset, edits, notes)
    if isinstance(section, Mapping) and "namespace" not in section:
        name = section.get("name")
        default = f" ({name!s})" if isinstance(name, str) else ""
        notes.append(
            MigrationNote(
                _position(document, "project", value=False)[0] + 1,
                "Bodywork 2.x deployed into the namespace named on its command line (`bodywork deployment "
                "create --namespace`); this file now deploys into pipeline.namespace, by default the "
                f"pipeline's name{default}: add `namespace: NAME` under pipeline: if it ran elsewhere",
            )
        )
    migrated = text
    for edit in sorted(edits, key=lambda e: e.start, reverse=True):
        migrated = migrated[: edit.start] + edit.replacement + migrated[edit.end :]
    return Migration(found, migrated, tuple(notes))


def _rename_project(
    text: str,
    document: Any,
    offset: Callable[[tuple[int, int]], int],
    edits: list[_Edit],
    notes: list[MigrationNote],
) -> Any:
    """Add the edit renaming the top-level ``project:`` key to ``pipeline:``; return the section."""
    if "project" not in document:
        return None
    key_at = _position(document, "project", value=False)
    if "pipeline" in document:
        notes.append(
            MigrationNote(
                key_at[0] + 1,
                "the file has both project: and pipeline: (line "
                f"{_position(document, 'pipeline', value=False)[0] + 1}); version {SCHEMA_VERSION} has only "
                "pipeline: merge project: into it by hand",
            )
        )
        return None
    begin = offset(key_at)
    key = re.compile(r"(?P<q>[\"']?)project(?P=q)").match(text, begin)
    if key is None:
        notes.append(MigrationNote(key_at[0] + 1, "rename the key project: to pipeline: by hand"))
        return document["project"]
    quote = key.group("q")
    edits.append(_Edit(begin, key.end(), f"{quote}pipeline{quote}"))
    return document["project"]
