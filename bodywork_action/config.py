"""``bodywork.yaml`` → a validated ``Pipeline``, or every problem found, each with its line and column.

Pure functions over bytes: ``read_config(path)`` is the one wrapper that reads a file. The steps:

1. read only a regular file of at most ``MAX_FILE_BYTES`` (never a FIFO, a device or a directory);
2. decode (UTF-8, strictly) and compose YAML nodes, within limits: at most ``MAX_NODES`` nodes,
   nesting at most ``MAX_DEPTH`` deep, and aliases that add at most as many nodes as the file holds
   (``MIN_ALIAS_BUDGET`` at least), so an alias bomb fails at once in bounded memory;
3. build plain data from the nodes; a tag or number that can't be read is a located problem;
4. check the data against the shipped JSON Schema (``bodywork.schema.json``): a predicate compiled
   from the schema passes valid parts fast, and only a part that fails is handed to ``jsonschema``,
   whose every error is translated into a ``ConfigProblem`` located at the offending key or value;
   positions are looked up only for problems, by walking the nodes;
5. check what a schema can't express (the DAG, names, requirements, ``run_on_failure``, files);
6. return a ``Pipeline`` if there are no errors, else every problem.

Unlike Bodywork 3.0 (spec §1.7), nothing stops at the first bad section, and no input raises anything
but ``ConfigInvalid``.
"""

from __future__ import annotations

import datetime
import difflib
import gc
import json
import math
import operator
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from itertools import accumulate, starmap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bodywork_action.dag import k8s_name, parse_dag
from bodywork_action.errors import ConfigInvalid, ConfigProblem, InputError, Severity, visible
from bodywork_action.model import (
    RESERVED_ENV_VARS,
    SCHEMA_VERSION,
    BatchSettings,
    Pipeline,
    SecretEnv,
    ServiceSettings,
    Stage,
    StageName,
)
from bodywork_action.overrides import (
    IMAGE_REFERENCE,
    QUANTITY_PATTERN,
    RESOURCE_NAME_PATTERN,
    quantity_problem,
    quantity_text,
    resource_name_problem,
    resource_problem,
)

if TYPE_CHECKING:  # pragma: no cover
    import jsonschema.protocols

CONFIG_FILENAME = "bodywork.yaml"

# Limits on hostile files. A 10,000-stage bodywork.yaml is 2.7 MB and ~250,000 nodes, 5 levels deep.
MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_NODES = 1_000_000
MAX_DEPTH = 64
MIN_ALIAS_BUDGET = 10_000
MAX_INTEGER = 2**63 - 1  # what Kubernetes (int64) and JSON consumers can hold
# libyaml composes nested collections recursively and overflows the C stack somewhere past 20,000
# levels (a crash, not an exception). Below this bound on the text's possible nesting it can't.
_SAFE_NESTING_BOUND = 2_000
_MIGRATABLE_VERSIONS = ("1.0", "0.1")  # what `bodywork-action migrate` upgrades

Path_ = tuple[str | int, ...]

# libyaml's loader when PyYAML was built with it (about 10x faster); its node marks carry the same
# line and column as the pure-Python loader's.
_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_YAML = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_YAML + t for t in ("str", "int", "float", "bool", "null"))
_TIMESTAMP, _MAP, _SEQ, _MERGE = (_YAML + t for t in ("timestamp", "map", "seq", "merge"))
_SCALAR_WORDS = {
    _INT: "whole number",
    _FLOAT: "number",
    _BOOL: "boolean",
    _NULL: "null",
    _TIMESTAMP: "date",
}


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


def _position(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


class _LimitExceeded(Exception):
    """The file is too large, too deep or expands too far to be read safely: one problem, no more."""

    def __init__(self, message: str, position: Position | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


# The safe loader's implicit resolvers by first character ('' for the empty scalar), wildcard ones added.
_IMPLICIT_RESOLVERS: dict[str, list[tuple[str, re.Pattern[str]]]] = {
    first: [*resolvers, *yaml.SafeLoader.yaml_implicit_resolvers.get(None, [])]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    if first is not None
}
assert not yaml.SafeLoader.yaml_path_resolvers, "the fast resolver assumes no path resolvers"


_ScalarNode, _SequenceNode, _MappingNode = yaml.ScalarNode, yaml.SequenceNode, yaml.MappingNode
_MAX_CACHED_TAGS = 10_000  # plain scalars whose resolved tag is remembered, per file


_Resolve = Callable[[type[yaml.Node], Any, Any], str]


def _counting_resolver() -> tuple[_Resolve, Callable[[], int]]:
    """``Resolver.resolve`` for a loader without path resolvers, in fewer steps (it runs per node),
    counting the nodes it is asked about; and how many it has counted so far."""
    count = 0
    # The same plain scalars recur (keys, 0.5, 100, false): a dict look-up instead of the regexes.
    plain_tags: dict[str, str] = {}

    def resolve(kind: type[yaml.Node], value: Any, implicit: Any) -> str:
        nonlocal count
        count += 1
        if count > MAX_NODES:
            raise _LimitExceeded(f"the file holds more than {MAX_NODES:,} YAML nodes")
        if kind is not _ScalarNode:
            return _SEQ if kind is _SequenceNode else _MAP
        if not implicit[0]:
            return _STR
        tag = plain_tags.get(value)
        if tag is None:
            tag = _STR
            for candidate, pattern in _IMPLICIT_RESOLVERS.get(value[:1], ()):
                if pattern.match(value):
                    tag = candidate
                    break
            if len(plain_tags) < _MAX_CACHED_TAGS:
                plain_tags[value] = tag
        return tag

    return resolve, lambda: count


class _Loader(_BaseLoader):  # type: ignore[misc,valid-type]
    """The safe loader, counting the nodes it composes (``node_count()``)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        # The C composer calls ``self.resolve`` for every node: a function kept on the instance is
        # called as it is (a method would first be bound, and count in an attribute, both slower).
        self.resolve, self.node_count = _counting_resolver()

    # No path resolvers, so nothing to track as the composer descends and ascends. It calls these
    # for every node: C functions that do nothing (``operator.is_(parent, index)``, ``tuple()``) cost
    # less than Python methods that do nothing.
    descend_resolver = staticmethod(operator.is_)
    ascend_resolver = staticmethod(tuple)


@dataclass
class Document:
    """Plain data built from YAML nodes; positions are found on demand by walking the nodes."""

    data: Any
    root: yaml.Node | None = None
    duplicate_keys: list[tuple[Path_, yaml.Node]] = field(default_factory=list)
    # Values that could not be read (a bad tag, a huge number, too deep): already reported, so no
    # other problem is reported at or below them.
    unreadable: set[Path_] = field(default_factory=set)
    # Problems found while building the data: (path, node whose position is reported, message).
    problems: list[tuple[Path_, yaml.Node, str]] = field(default_factory=list)
    budget: int = 2 * MAX_NODES  # nodes a walk may visit, aliases expanded (see build_document)
    _entries_cache: dict[int, dict[str, tuple[yaml.Node, yaml.Node]]] = field(default_factory=dict)

    def locate(self, path: Path_, *, prefer_key: bool = False) -> Position:
        """Where to point for ``path``: its value (or key), else the nearest located ancestor."""
        node = self.root
        if node is None:
            return Position(1, 1)
        key_node: yaml.Node | None = None
        for part in path:
            child: tuple[yaml.Node | None, yaml.Node] | None = None
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                child = self.entries(node).get(part)
            elif (
                isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value)
            ):
                child = (None, node.value[part])
            if child is None:
                break
            key_node, node = child
        return _position(key_node if prefer_key and key_node is not None else node)

    def entries(self, node: yaml.MappingNode) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """A mapping's entries by key text, merges (``<<``) applied, the last duplicate winning."""
        found = self._entries_cache.get(id(node))
        if found is None:
            found = self._entries_cache[id(node)] = _entries(
                node, _Builder(self, self.budget), (), report=False
            )
        return found

    def is_unreadable(self, path: Path_) -> bool:
        return bool(self.unreadable) and any(
            path[:depth] in self.unreadable for depth in range(len(path) + 1)
        )


@dataclass(frozen=True)
class ValidationOutcome:
    """What validation found: a pipeline when there are no errors, and every problem (warnings too)."""

    file: str
    pipeline: Pipeline | None
    problems: tuple[ConfigProblem, ...]

    @property
    def errors(self) -> tuple[ConfigProblem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[ConfigProblem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.WARNING)


def format_path(path: Path_) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.isprintable() and _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:  # dots, spaces, brackets, quotes or invisible characters would make the path ambiguous
            text += _quote_key(part)
    return text


def _quote_key(key: str) -> str:
    """``["a.b"]``: backslash and quote escaped, invisible characters escaped as Python's repr does."""
    escaped = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'["{visible(escaped)}"]'


_PLAIN_KEY = re.compile(r'[^\s.\[\]"\\]+')


class _Problems:
    """Collects problems for one file; positions come from the document."""

    def __init__(self, file: str, document: Document | None) -> None:
        self.file = file
        self.document = document
        self.items: list[ConfigProblem] = []

    def add(
        self,
        path: Path_,
        message: str,
        *,
        severity: Severity = Severity.ERROR,
        at_key: bool = False,
        position: Position | None = None,
    ) -> None:
        if position is None and self.document is not None:
            if self.document.is_unreadable(path):
                return  # what is there could not be read, and that has been said
            position = self.document.locate(path, prefer_key=at_key)
        if position is None:
            position = Position(1, 1)
        self.items.append(
            ConfigProblem(self.file, position.line, position.column, format_path(path), message, severity)
        )

    def sorted(self) -> tuple[ConfigProblem, ...]:
        # One jsonschema error per missing required key repeats the whole list: report each once.
        unique = dict.fromkeys(self.items)
        return tuple(sorted(unique, key=lambda p: (p.line, p.column, p.path, p.message)))


# --- 1. bytes → nodes → data ------------------------------------------------------------------------


def _decode(raw: bytes, problems: _Problems) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        problems.add(
            (),
            f"the file is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
            position=Position(line, column),
        )
        return None
    return text.removeprefix("\ufeff")


# Each byte of the text as what these checks look at, by ``bytes.translate`` (C speed). For block
# nesting: "x" for a space, "?" or "-"; "\n" for a possible line start: after "\n", after "\r" (a line
# break too, on its own) and after any byte of a character beyond ASCII (some are line breaks: NEL,
# LS, PS); "." for the rest. A line starting with this run of "x" could open that many collections.
_BLOCK_INDICATORS = bytes(
    ord("x") if byte in b" ?-" else ord("\n") if byte in b"\r\n" or byte > 127 else ord(".")
    for byte in range(256)
)
_DEEP_BLOCK_RUN = b"x" * (_SAFE_NESTING_BOUND // 4)
# For flow nesting: the brackets only, each a step of the depth.
_BRACKET_STEPS = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in _BRACKET_STEPS)


def _may_nest_deeply(text: str) -> bool:
    """Whether the text could nest past ``_SAFE_NESTING_BOUND``: a cheap over-estimate.

    A block collection starts on a new line, further indented, or after a "- " or "? " at the start
    of a line, so each level costs at least one character of a line's leading run of spaces and
    indicators (two levels for "- key:"); flow nesting is bounded by the brackets open at once, at
    most the highest running count of brackets opened less closed minus the lowest (brackets in
    strings and comments only over-count).
    """
    encoded = text.encode("utf-8")
    lines = encoded.translate(_BLOCK_INDICATORS)
    if lines.startswith(_DEEP_BLOCK_RUN) or b"\n" + _DEEP_BLOCK_RUN in lines:
        return True
    brackets = encoded.translate(None, _NOT_BRACKETS)
    if len(brackets) < _SAFE_NESTING_BOUND // 2:
        return False
    highest = max(accumulate(map(_BRACKET_STEPS.__getitem__, brackets), initial=0))
    lowest = min(accumulate(map(_BRACKET_STEPS.__getitem__, brackets), initial=0))
    return highest - lowest >= _SAFE_NESTING_BOUND // 2


def _check_nesting(text: str) -> None:
    """Walk the parser's events (no composing, no recursion) and stop at ``MAX_DEPTH``."""
    loader = _BaseLoader(text)
    try:
        depth = 0
        while loader.check_event():
            event = loader.get_event()  # type: ignore[no-untyped-call]
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    where = Position(mark.line + 1, mark.column + 1) if mark else None
                    raise _LimitExceeded(f"nested more than {MAX_DEPTH} levels deep", where)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    finally:
        loader.dispose()


def _compose(text: str, problems: _Problems) -> tuple[yaml.Node, int] | None:
    """The one document's root node and how many nodes the file composed to; else a problem."""
    try:
        if _may_nest_deeply(text):
            _check_nesting(text)
        loader = _Loader(text)
        try:
            nodes: list[yaml.Node] = []
            while len(nodes) < 2 and loader.check_node():
                nodes.append(loader.get_node())
            node_count = loader.node_count()
        finally:
            loader.dispose()
    except _LimitExceeded as exc:
        problems.add((), exc.message, position=exc.position or Position(1, 1))
        return None
    except yaml.MarkedYAMLError as exc:
        position, message = _describe_yaml_error(exc, text)
        problems.add((), f"invalid YAML: {message}", position=position)
        return None
    except yaml.reader.ReaderError as exc:
        character = chr(exc.character) if isinstance(exc.character, int) else str(exc.character)
        index = text.find(character)
        position = _text_position(text, index) if index >= 0 else Position(1, 1)
        problems.add(
            (), f"invalid YAML: the character {character!r} is not allowed in YAML", position=position
        )
        return None
    except yaml.YAMLError as exc:
        problems.add((), f"invalid YAML: {type(exc).__name__}", position=Position(1, 1))
        return None
    except RecursionError:  # the pure-Python composer (no libyaml) recurses per level
        problems.add((), f"nested more than {MAX_DEPTH} levels deep", position=Position(1, 1))
        return None
    if len(nodes) > 1:
        problems.add(
            (),
            "the file holds several YAML documents; bodywork.yaml must hold exactly one",
            position=_position(nodes[1]),
        )
        return None
    if not nodes:
        problems.add(
            (),
            "the file is empty: expected a mapping with version, pipeline, stages and logging",
            position=Position(1, 1),
        )
        return None
    return nodes[0], node_count


def _text_position(text: str, index: int) -> Position:
    before = text[:index]
    return Position(before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1)


def _mark_position(mark: yaml.Mark) -> Position:
    return Position(mark.line + 1, mark.column + 1)


_YAML_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")  # what YAML counts as a new line
# `key:value` on a line: a plain key, then a colon with no space after it.
_NO_SPACE_AFTER_COLON = re.compile(r"^[ ]*(?:-[ ]+)?[^\s#'\"\[\]{}:][^:#]*?(:)[^\s:]")


def _describe_yaml_error(exc: yaml.MarkedYAMLError, text: str) -> tuple[Position, str]:
    """Where a syntax error starts and what it is, in words a person can act on."""
    problem = exc.problem or ""
    context = exc.context or ""
    mark = exc.problem_mark or exc.context_mark
    lines = _YAML_LINE_BREAK.split(text)
    if mark is None:
        return Position(1, 1), " ".join(part for part in (context, problem) if part) or type(exc).__name__
    line_text = lines[mark.line] if mark.line < len(lines) else ""
    here = _mark_position(mark)
    if "tab" in problem or line_text[mark.column : mark.column + 1] == "\t":
        tab = line_text.find("\t")
        where = Position(mark.line + 1, tab + 1) if tab >= 0 else here
        return where, "a tab character in the indentation: YAML indents with spaces only"
    opened = exc.context_mark
    if opened is not None and exc.problem_mark is not None:
        closer = {"flow sequence": "]", "flow mapping": "}", "quoted scalar": "quote"}
        for kind, what in closer.items():
            if context.endswith(kind):
                start = _mark_position(opened)
                shown = f"the {what} that closes it" if what == "quote" else f"a ',' or '{what}'"
                return start, (
                    f"the {kind.replace('flow ', '').replace('scalar', 'string')} opened here is never "
                    f"closed: {shown} was expected by line {here.line}, column {here.column}"
                )
    if "mapping values are not allowed" in problem or "could not find expected ':'" in problem:
        for number in range(mark.line, max(mark.line - 3, -1), -1):
            candidate = lines[number] if number < len(lines) else ""
            if not candidate.strip() or candidate.lstrip().startswith("#"):
                continue
            found = _NO_SPACE_AFTER_COLON.match(candidate)
            if found and number < mark.line:
                return Position(number + 1, found.start(1) + 1), (
                    "a ':' with no space after it: a key and its value are written 'key: value'"
                )
            if number < mark.line:
                break
    return here, " ".join(part for part in (context, problem) if part)


class _Builder:
    """Turns composed nodes into plain data (keys as strings, as Bodywork applies ``str()``)."""

    def __init__(self, document: Document, budget: int) -> None:
        self.document = document
        self.budget = budget  # nodes that may be visited, aliases expanded
        self.visited = 0
        self.constructor = yaml.SafeLoader("")  # a constructor for scalars; never fed a stream
        self.active: set[int] = set()  # collections being converted: a node met again is a cycle
        self.merge_depth = 0  # merges within merges (each level recurses)

    def tick(self, count: int, node: yaml.Node) -> None:
        self.visited += count
        if self.visited > self.budget:
            raise _LimitExceeded(
                f"aliases expand the document past {self.budget:,} nodes: aliases may add at most as "
                f"many nodes as the file holds (at least {MIN_ALIAS_BUDGET:,})",
                _position(node),
            )

    def unreadable(self, path: Path_, node: yaml.Node, message: str) -> None:
        self.document.unreadable.add(path)
        self.document.problems.append((path, node, message))

    def convert(self, node: yaml.Node, path: Path_, depth: int) -> Any:
        self.tick(1, node)
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR:
                return node.value
            value, problem = self.scalar(node)
            if problem:
                self.unreadable(path, node, problem)
            return value
        if depth >= MAX_DEPTH:
            self.unreadable(path, node, f"nested more than {MAX_DEPTH} levels deep")
            return None
        expected = _MAP if isinstance(node, yaml.MappingNode) else _SEQ
        if node.tag != expected:
            self.unreadable(path, node, _unsupported_tag(node.tag))
            return None
        if id(node) in self.active:
            self.unreadable(path, node, "a recursive alias: this node contains itself")
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                items = _entries(node, self, path, report=True).items()
                return {key: self.child(value, path, key, depth) for key, (_, value) in items}
            return [self.child(item, path, index, depth) for index, item in enumerate(node.value)]
        finally:
            self.active.discard(id(node))

    def child(self, node: yaml.Node, path: Path_, part: str | int, depth: int) -> Any:
        """``convert`` for an entry of a collection. A scalar (most nodes) is read here, as ``convert``
        would read it, without building its path unless it has a problem."""
        if type(node) is not _ScalarNode:
            return self.convert(node, (*path, part), depth + 1)
        self.visited += 1
        if self.visited > self.budget:
            self.tick(0, node)
        if node.tag == _STR:
            return node.value
        value, problem = self.scalar(node)
        if problem:
            self.unreadable((*path, part), node, problem)
        return value

    def scalar(self, node: yaml.ScalarNode) -> tuple[Any, str | None]:
        """The scalar's value, or its text and why it can't be read (a tag or a number out of range)."""
        tag = node.tag
        word = _SCALAR_WORDS.get(tag)
        if word is None:
            return node.value, _unsupported_tag(tag)
        text = node.value
        if tag == _INT:
            if len(text) > 32:
                return text, _too_large(text)
            if text.isdigit() and (text[0] != "0" or text == "0"):  # plain decimal (YAML 1.1: 017 is octal)
                value = int(text)
                return (value, None) if value <= MAX_INTEGER else (text, _too_large(text))
        elif tag == _FLOAT and _PLAIN_DECIMAL.fullmatch(text):
            return float(text), None
        constructor = self.constructor.yaml_constructors[tag]
        try:
            value = constructor(self.constructor, node)
        except (yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError, OverflowError, IndexError):
            return node.value, f"{_quote(node.value)} is not a valid {word} ({_tag_text(tag)})"
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INTEGER:
            return node.value, _too_large(node.value)
        if isinstance(value, float) and not math.isfinite(value):
            return node.value, f"{_quote(node.value)} is not a finite number"
        return value, None

    def key(self, node: yaml.Node, path: Path_, *, report: bool) -> str:
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR:
                return str(node.value)
            value, problem = self.scalar(node)
            raw = str(node.value)
            text = _key_text(value, node) if problem is None else raw if len(raw) <= 60 else raw[:59] + "…"
            if problem and report:
                self.unreadable((*path, text), node, problem)
            return text
        text = "<a mapping>" if isinstance(node, yaml.MappingNode) else "<a list>"
        if report:
            self.unreadable((*path, text), node, "a key must be a plain value, not a list or a mapping")
        return text


def _entries(
    node: yaml.MappingNode, builder: _Builder, path: Path_, *, report: bool
) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """A mapping's entries by key text: merges (``<<: *defaults``) first, then the mapping's own keys,
    a later duplicate replacing an earlier one (YAML's rule, and PyYAML's)."""
    builder.tick(len(node.value), node)
    own: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    merged: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, value_node in node.value:
        if type(key_node) is _ScalarNode and key_node.tag == _STR:  # most keys: as builder.key takes them
            key = key_node.value
        elif isinstance(key_node, yaml.ScalarNode) and key_node.tag == _MERGE:
            merged.update(_merged_entries(value_node, builder, (*path, "<<"), report=report))
            continue
        else:
            key = builder.key(key_node, path, report=report)
        if report and key in own:
            builder.document.duplicate_keys.append(((*path, key), key_node))
        own[key] = (key_node, value_node)
    if not merged:
        return own
    merged.update(own)
    return merged


def _merged_entries(
    value: yaml.Node, builder: _Builder, path: Path_, *, report: bool
) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    if isinstance(value, yaml.MappingNode):
        sources = [value]
    elif isinstance(value, yaml.SequenceNode) and all(isinstance(v, yaml.MappingNode) for v in value.value):
        sources = list(value.value)
    else:
        if report:
            builder.unreadable(path, value, "a merge ('<<') takes a mapping or a list of mappings")
        return {}
    merged: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    if builder.merge_depth >= MAX_DEPTH:  # each level recurses: a long chain of merges must stop
        raise _LimitExceeded(f"merges ('<<') nested more than {MAX_DEPTH} levels deep", _position(value))
    for source in reversed(sources):  # the first mapping listed wins
        if id(source) in builder.active:
            if report:
                builder.unreadable(path, source, "a recursive alias: this node contains itself")
            continue
        builder.active.add(id(source))
        builder.merge_depth += 1
        try:
            merged.update(_entries(source, builder, path[:-1], report=False))
        finally:
            builder.active.discard(id(source))
            builder.merge_depth -= 1
    return merged


_PLAIN_DECIMAL = re.compile(r"-?[0-9]+\.[0-9]+")  # 0.5, -1.25: what float() reads as YAML does


def _unsupported_tag(tag: str) -> str:
    return (
        f"the tag {_tag_text(tag)} is not supported: bodywork.yaml holds plain strings, numbers, "
        "booleans, lists and mappings"
    )


def _tag_text(tag: str) -> str:
    shown = "!!" + tag.removeprefix(_YAML) if tag.startswith(_YAML) else tag
    return visible(shown if len(shown) <= 60 else shown[:59] + "…")


def _too_large(text: str) -> str:
    shown = text if len(text) <= 24 else f"{text[:20]}… ({len(text)} characters)"
    return f"the number {shown} is too large (at most {MAX_INTEGER})"


def build_document(root: yaml.Node, *, node_count: int = 0) -> Document:
    """Plain data from composed nodes. Aliases may add at most ``max(MIN_ALIAS_BUDGET, node_count)``
    nodes: past that ``_LimitExceeded`` is raised."""
    document = Document(data=None, root=root)
    budget = node_count + max(MIN_ALIAS_BUDGET, node_count)
    document.data = _Builder(document, budget).convert(root, (), 0)
    document.budget = budget
    return document


def _key_text(value: Any, node: yaml.ScalarNode) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):  # `yes:` as a key means the text the user typed, not True
        return str(node.value)
    return str(value)


# --- 2. the JSON Schema -----------------------------------------------------------------------------


@cache
def load_schema() -> dict[str, Any]:
    text = resources.files("bodywork_action").joinpath("bodywork.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _inline_refs(node: Any, definitions: dict[str, Any]) -> Any:
    """The schema with local ``$ref``s replaced by their targets (resolving a reference per stage
    dominated validation time)."""
    if isinstance(node, dict):
        reference = node.get("$ref", "")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            return _inline_refs(definitions[reference.removeprefix("#/$defs/")], definitions)
        return {key: _inline_refs(value, definitions) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(item, definitions) for item in node]
    return node


@cache
def _split_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    """The schema in two: the document with ``stages`` as a bare mapping, and one stage. Each stage
    is checked on its own, so one bad stage among 10,000 costs one small validation."""
    schema = load_schema()
    inlined: dict[str, Any] = _inline_refs(schema, schema.get("$defs", {}))
    stages = dict(inlined["properties"]["stages"])
    stage: dict[str, Any] = stages.pop("additionalProperties")
    top = {**inlined, "properties": {**inlined["properties"], "stages": stages}}
    return top, stage


Check = Callable[[Any], bool]


@cache
def _compiled_checks() -> tuple[Check, Check]:
    """Fast yes/no predicates for the two schemas; a schema keyword they don't know falls back to
    ``jsonschema`` itself. A 'no' is then explained by ``jsonschema``'s own errors."""
    top, stage = _split_schema()
    try:
        return compile_schema(top), compile_schema(stage)
    except _Uncompilable:
        top_validator, stage_validator = _validators()
        return top_validator.is_valid, stage_validator.is_valid


@cache
def _validators() -> tuple[jsonschema.protocols.Validator, jsonschema.protocols.Validator]:
    import jsonschema  # imported here, and only when something is invalid: a valid file never needs it

    top, stage = _split_schema()
    return jsonschema.Draft202012Validator(top), jsonschema.Draft202012Validator(stage)


class _Uncompilable(Exception):
    pass


_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "default", "examples"})


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:  # as jsonschema's draft 2020-12 type checker: 1.0 is an integer
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


_TYPE_CHECKS: dict[str, Check] = {
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "string": lambda value: isinstance(value, str),
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda value: isinstance(value, bool),
    "null": lambda value: value is None,
}


def _anything(value: Any) -> bool:
    return True


def compile_schema(schema: Any) -> Check:
    """A predicate that says whether ``jsonschema`` would find no error, for the keywords this
    project's schema uses; raises ``_Uncompilable`` on any other. Errors are never built here.

    It runs for every value of the file, so it makes few calls: the keywords about one kind of value
    (an object's, a string's, a number's) are checked by one function, which also checks the
    schema's ``type`` when that is the same single kind."""
    if schema is True or schema == {}:
        return _anything
    if not isinstance(schema, dict):
        raise _Uncompilable(repr(schema))
    rules = {keyword: argument for keyword, argument in schema.items() if keyword not in _ANNOTATIONS}
    kinds = rules.pop("type", None)
    checks: list[Check] = []
    type_checked = False
    for group_kinds, keywords, compile_group in _KEYWORD_GROUPS:
        group = {keyword: rules.pop(keyword) for keyword in keywords if keyword in rules}
        if group:
            typed = isinstance(kinds, str) and kinds in group_kinds
            type_checked = type_checked or typed
            checks.append(compile_group(group, kinds if typed else None))
    checks.extend(_compile_keyword(keyword, argument) for keyword, argument in rules.items())
    if kinds is not None and not type_checked:
        checks.insert(0, _type_check(kinds))
    return _all_of(checks)


def _all_of(checks: list[Check]) -> Check:
    if not checks:
        return _anything
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda value: first(value) and second(value)

    def check(value: Any) -> bool:  # a loop, not all(...): no generator per value
        for each in checks:  # noqa: SIM110
            if not each(value):
                return False
        return True

    return check


def _type_check(kinds: Any) -> Check:
    checks = [_TYPE_CHECKS[kind] for kind in ([kinds] if isinstance(kinds, str) else kinds)]
    if len(checks) == 1:
        return checks[0]

    def check(value: Any) -> bool:
        for each in checks:  # noqa: SIM110
            if each(value):
                return True
        return False

    return check


# Each group's function is given the group's keywords and, when the schema's type is that one kind,
# the kind: a value of another kind then fails; else the keywords pass values of other kinds.


def _compile_object(rules: dict[str, Any], kind: str | None) -> Check:
    required = frozenset(rules.get("required", ()))
    properties = {name: compile_schema(sub) for name, sub in rules.get("properties", {}).items()}
    additional = rules.get("additionalProperties", True)
    closed = additional is False
    known = frozenset(properties)
    extra = None if additional is True or closed else compile_schema(additional)
    names = compile_schema(rules["propertyNames"]) if "propertyNames" in rules else None
    fewest = int(rules.get("minProperties", 0))
    other_kinds_pass = kind is None
    each_value = bool(properties) or extra is not None

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return other_kinds_pass
        keys = value.keys()
        if (required and not keys >= required) or (closed and not keys <= known) or len(value) < fewest:
            return False
        if names is not None:
            for name in keys:
                if not names(name):
                    return False
        if each_value:
            for name, item in value.items():
                sub = properties.get(name, extra)
                if sub is not None and not sub(item):
                    return False
        return True

    return check


def _compile_array(rules: dict[str, Any], kind: str | None) -> Check:
    item_check = compile_schema(rules["items"])
    other_kinds_pass = kind is None

    def check(value: Any) -> bool:
        if not isinstance(value, list):
            return other_kinds_pass
        for item in value:  # noqa: SIM110
            if not item_check(item):
                return False
        return True

    return check


def _compile_string(rules: dict[str, Any], kind: str | None) -> Check:
    search = re.compile(rules["pattern"]).search if "pattern" in rules else None
    shortest = int(rules.get("minLength", 0))
    longest = int(rules["maxLength"]) if "maxLength" in rules else None
    other_kinds_pass = kind is None

    def check(value: Any) -> bool:
        if not isinstance(value, str):
            return other_kinds_pass
        if len(value) < shortest or (longest is not None and len(value) > longest):
            return False
        return search is None or search(value) is not None

    return check


def _compile_number(rules: dict[str, Any], kind: str | None) -> Check:
    lowest, highest = rules.get("minimum"), rules.get("maximum")
    if not all(bound is None or _is_number(bound) for bound in (lowest, highest)):
        raise _Uncompilable("minimum/maximum")
    is_kind = _is_integer if kind == "integer" else _is_number
    other_kinds_pass = kind is None

    def check(value: Any) -> bool:
        if not is_kind(value):
            return other_kinds_pass
        return (lowest is None or value >= lowest) and (highest is None or value <= highest)

    return check


_GroupCompiler = Callable[[dict[str, Any], str | None], Check]
# (the kinds of value the keywords are about, the keywords, what compiles them into one check)
_KEYWORD_GROUPS: tuple[tuple[tuple[str, ...], tuple[str, ...], _GroupCompiler], ...] = (
    (
        ("object",),
        ("required", "properties", "additionalProperties", "propertyNames", "minProperties"),
        _compile_object,
    ),
    (("array",), ("items",), _compile_array),
    (("string",), ("pattern", "minLength", "maxLength"), _compile_string),
    (("number", "integer"), ("minimum", "maximum"), _compile_number),
)


def _compile_keyword(keyword: str, argument: Any) -> Check:
    """A keyword of no group (any other is ``_Uncompilable``: ``prefixItems`` or
    ``patternProperties`` among them, which change what ``items`` and ``additionalProperties`` mean)."""
    if keyword == "enum" and all(isinstance(option, str) for option in argument):
        options = frozenset(argument)
        return lambda value: isinstance(value, str) and value in options
    if keyword == "const" and isinstance(argument, str):
        return lambda value: isinstance(value, str) and value == argument
    if keyword == "oneOf":
        alternatives = [compile_schema(sub) for sub in argument]

        def one_of(value: Any) -> bool:
            passed = 0
            for alternative in alternatives:
                if alternative(value):
                    passed += 1
            return passed == 1

        return one_of
    raise _Uncompilable(keyword)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {_quote(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, datetime.date):  # YAML reads 2024-01-31 as a date
        return f"the date {value.isoformat()} (quote it to make it a string)"
    return type(value).__name__


def _quote(value: str, limit: int = 60) -> str:
    shown = value if len(value) <= limit else value[: limit - 1] + "…"
    return json.dumps(shown, ensure_ascii=False)


_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}

_PATTERN_HINTS = {
    "name": "lower-case letters, digits and '-', starting and ending with a letter or digit",
    "namespace": "lower-case letters, digits and '-', starting and ending with a letter or digit",
    "secrets_group": "letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
    "executable_module_path": "a path ending in .py or .ipynb",
}

# Keys Bodywork 2.x (schema 1.0) used that 1.1 renamed: the unknown-key message names the new one.
_RENAMED_KEYS = {("project",): "pipeline"}


def suggest_close_match(word: str, options: Iterable[str]) -> str:
    """The hint "; did you mean 'x'?" naming the closest of ``options``, or an empty string."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _schema_problems(document: Document, problems: _Problems, *, strict: bool) -> None:
    top_ok, stage_ok = _compiled_checks()
    data = document.data
    if not top_ok(data):
        top_validator, _ = _validators()
        for error in top_validator.iter_errors(data):
            _translate(error, tuple(error.absolute_path), problems, strict=strict)
    stages = data.get("stages")
    if not isinstance(stages, dict):
        return
    for name, stage in stages.items():
        if stage_ok(stage):
            continue
        _, stage_validator = _validators()
        for error in stage_validator.iter_errors(stage):
            _translate(error, ("stages", name, *error.absolute_path), problems, strict=strict)


def _translate(error: Any, path: Path_, problems: _Problems, *, strict: bool) -> None:
    kind = error.validator
    value = error.instance
    last = path[-1] if path else ""
    if "propertyNames" in error.absolute_schema_path and path[-1:] == ("extra_resources",):
        problems.add((*path, value), resource_name_problem(str(value)), at_key=True)
    elif "propertyNames" in error.absolute_schema_path:  # the key itself is bad, not a value
        problems.add(
            (*path, value),
            f"{_quote(str(value))} is not a valid secret key / variable name "
            "(letters, digits, '-', '_' and '.')",
            at_key=True,
        )
    elif kind == "type":
        expected = error.validator_value
        words = (
            " or ".join(_TYPE_WORDS.get(t, str(t)) for t in expected)
            if isinstance(expected, list)
            else _TYPE_WORDS.get(expected, expected)
        )
        hint = _missing_space_hint(value) if expected == "object" else ""
        problems.add(path, f"expected {words}, found {_type_name(value)}{hint}")
    elif kind == "required":
        missing = [name for name in error.validator_value if not (isinstance(value, dict) and name in value)]
        for name in missing:
            renamed = [old[-1] for old, new in _RENAMED_KEYS.items() if new == name and old[:-1] == path]
            hint = (
                f" (the file has {renamed[0]!r}: rename it)"
                if renamed and isinstance(value, dict) and renamed[0] in value
                else ""
            )
            problems.add((*path, name), f"required field {name!r} is missing{hint}", at_key=True)
    elif kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        for key in sorted(set(value) - set(allowed)):
            where = "at the top level" if not path else f"in {format_path(path)}"
            renamed_to = _RENAMED_KEYS.get((*path, key))
            suggestion = (
                f"; did you mean {renamed_to!r}? (Bodywork 2.x's name; `bodywork-action migrate` upgrades "
                "the file)"
                if renamed_to
                else suggest_close_match(key, allowed)
            )
            message = f"unknown key {key!r} {where}{suggestion}"
            if not strict:
                message += " (ignored)"
            severity = Severity.ERROR if strict else Severity.WARNING
            problems.add((*path, key), message, severity=severity, at_key=True)
    elif kind == "oneOf" and not isinstance(value, dict):
        pass  # the type error for the same value says it all
    elif kind == "oneOf" and path[:1] == ("stages",):
        has = [k for k in ("batch", "service") if isinstance(value, dict) and k in value]
        found = "both" if len(has) == 2 else "neither"
        problems.add(path, f"a stage needs exactly one of 'batch' or 'service', found {found}", at_key=True)
    elif kind == "const" and path == ("version",):
        problems.add(path, _version_message(value))
    elif kind == "enum":
        options = ", ".join(str(v) for v in error.validator_value)
        problems.add(path, f"{_type_name(value)} is not one of: {options}")
    elif kind in ("minimum", "maximum"):
        bound = error.validator_value
        relation = "≥" if kind == "minimum" else "≤"
        if last == "port":
            problems.add(path, f"a port must be between 1 and 65535, found {value}")
        else:
            problems.add(path, f"must be {relation} {bound}, found {value}")
    elif kind == "pattern":
        if path[:1] == ("stages",) and len(path) == 4 and path[2] == "extra_resources":
            problems.add(path, resource_problem(str(last), value))
        elif path[:1] == ("stages",) and len(path) == 4 and path[2] == "secrets":
            problems.add(
                path,
                f"{_quote(value)} is not a valid Kubernetes secret name (lower-case letters, digits, "
                "'-' and '.', starting and ending with a letter or digit)",
            )
        else:
            hint = _PATTERN_HINTS.get(str(last), f"it must match {error.validator_value}")
            problems.add(path, f"{_quote(value)} is not valid: {hint}")
    elif kind == "maxLength":
        problems.add(path, f"{_quote(value)} is longer than {error.validator_value} characters")
    elif kind == "minLength":
        problems.add(path, "must not be empty")
    elif kind == "minProperties":
        problems.add(path, "no stages are defined")
    else:  # a rule added to the schema without a message of its own: still located and readable
        problems.add(path, error.message)


_KEY_AND_VALUE_WITHOUT_SPACE = re.compile(r"^[A-Za-z_][\w-]*:\S")


def _missing_space_hint(value: Any) -> str:
    """``name:demo`` under a key is one string to YAML: say why a mapping was not found."""
    if isinstance(value, str) and _KEY_AND_VALUE_WITHOUT_SPACE.match(value) and "://" not in value:
        return " (a missing space after ':'? write 'key: value')"
    return ""


def _version_message(found: Any) -> str:
    if isinstance(found, float | int) and not isinstance(found, bool) and str(found) == SCHEMA_VERSION:
        return f'expected the string "{SCHEMA_VERSION}", found the number {found}: quote it'
    shown = _quote(found) if isinstance(found, str) else _type_name(found)
    message = (
        f'schema version {shown} is not supported: this tool reads version "{SCHEMA_VERSION}" '
        "(Bodywork 3.0's format)"
    )
    if isinstance(found, str | float) and not isinstance(found, bool) and str(found) in _MIGRATABLE_VERSIONS:
        message += f"; `bodywork-action migrate` upgrades this file to version {SCHEMA_VERSION}"
    return message


# --- 3. checks a schema can't express ---------------------------------------------------------------


def _invisible(text: str) -> str:
    """The first character of ``text`` a terminal would not show as itself, escaped; '' if none."""
    if text.isprintable():
        return ""
    for character in text:
        if not character.isprintable():
            return visible(character)
    return ""


def _check_printable(
    problems: _Problems, path: Path_, value: Any, what: str, *, at_key: bool = False
) -> bool:
    """Names end up in object names, labels, log lines and workflow commands: no control characters
    (a JSON Schema ``$`` also matches before a final newline, so the patterns can't say this)."""
    if isinstance(value, str) and (bad := _invisible(value)):
        problems.add(path, f"{what} {_quote(value)} contains the invisible character {bad}", at_key=at_key)
        return False
    return True


_PIPELINE_NAMES = ("name", "namespace", "secrets_group", "docker_image", "DAG", "run_on_failure")


def _semantic_problems(data: dict[str, Any], problems: _Problems, *, base_dir: Path | None) -> None:
    pipeline: dict[str, Any] = data["pipeline"] if isinstance(data.get("pipeline"), dict) else {}
    stages: dict[str, Any] = data["stages"] if isinstance(data.get("stages"), dict) else {}

    for key in _PIPELINE_NAMES:
        _check_printable(problems, ("pipeline", key), pipeline.get(key), key)
    image = pipeline.get("docker_image")
    if isinstance(image, str) and image and image.isprintable() and not IMAGE_REFERENCE.fullmatch(image):
        problems.add(
            ("pipeline", "docker_image"),
            f"{_quote(image)} is not a valid image reference (e.g. python:3.11-slim, ghcr.io/org/img:tag)",
        )

    _stage_name_problems(stages, problems)
    for name, stage in stages.items():
        if isinstance(stage, dict):
            _stage_problems(name, stage, problems)

    dag = pipeline.get("DAG")
    if isinstance(dag, str) and dag.isprintable():
        steps, dag_problems = parse_dag(dag)
        for problem in dag_problems:
            problems.add(("pipeline", "DAG"), problem.message)
        for step in steps:
            for name in step:
                if name not in stages:
                    problems.add(
                        ("pipeline", "DAG"),
                        f"stage {name!r} is not defined in stages{suggest_close_match(name, stages)}",
                    )

    failure = pipeline.get("run_on_failure")
    if isinstance(failure, str) and failure and failure.isprintable():
        if failure not in stages:
            problems.add(
                ("pipeline", "run_on_failure"),
                f"stage {failure!r} is not defined in stages{suggest_close_match(failure, stages)}",
            )
        elif isinstance(stages[failure], dict) and "batch" not in stages[failure]:
            problems.add(
                ("pipeline", "run_on_failure"), f"stage {failure!r} must be a batch stage to run on failure"
            )

    if base_dir is not None:
        for name, stage in stages.items():
            module = stage.get("executable_module_path") if isinstance(stage, dict) else None
            if isinstance(module, str) and module and not (base_dir / module).is_file():
                problems.add(
                    ("stages", name, "executable_module_path"),
                    f"{_quote(module)} does not exist (relative to {base_dir.as_posix() or '.'})",
                )


def _stage_name_problems(stages: Mapping[str, Any], problems: _Problems) -> None:
    by_k8s_name: dict[str, str] = {}
    for name in stages:
        if not _check_printable(problems, ("stages", name), name, "stage name", at_key=True):
            continue
        derived = k8s_name(name)
        if not derived:
            problems.add(
                ("stages", name),
                f"stage name {_quote(name)} has no letters or digits to make a Kubernetes name from",
                at_key=True,
            )
            continue
        if derived in by_k8s_name:
            other = by_k8s_name[derived]
            problems.add(
                ("stages", name),
                f"stages {_quote(other)} and {_quote(name)} both become the Kubernetes name {derived!r}; "
                "rename one",
                at_key=True,
            )
        else:
            by_k8s_name[derived] = name


def _stage_problems(name: str, stage: dict[str, Any], problems: _Problems) -> None:
    path: Path_ = ("stages", name)
    module = stage.get("executable_module_path")
    _check_printable(problems, (*path, "executable_module_path"), module, "executable_module_path")
    secrets = stage.get("secrets")
    for variable, secret in secrets.items() if isinstance(secrets, dict) else ():
        where = (*path, "secrets", variable)
        if not _check_printable(problems, where, variable, "variable name", at_key=True):
            continue
        _check_printable(problems, where, secret, "secret name")
        if variable in RESERVED_ENV_VARS:
            problems.add(
                where,
                f"{variable} is set by bodywork-action itself and can't come from a secret",
                at_key=True,
            )
    resources = stage.get("extra_resources")
    for resource, quantity in resources.items() if isinstance(resources, dict) else ():
        # What the schema can't say (which names, whole units); only for entries it has passed.
        if not re.fullmatch(RESOURCE_NAME_PATTERN, resource) or not isinstance(quantity, str | int):
            continue
        if isinstance(quantity, bool) or not re.fullmatch(QUANTITY_PATTERN, quantity_text(quantity)):
            continue
        name_reason = resource_name_problem(resource, in_file=True)
        reason = name_reason or quantity_problem(resource, quantity_text(quantity))
        if reason:
            problems.add((*path, "extra_resources", resource), reason, at_key=bool(name_reason))
    requirements = stage.get("requirements")
    for index, requirement in enumerate(requirements if isinstance(requirements, list) else ()):
        if isinstance(requirement, str) and requirement:
            reason = _requirement_problem(requirement)
            if reason:
                problems.add((*path, "requirements", index), reason)


# What pip installs besides PEP 508 requirements: URLs (git+https://…), archives and local paths.
_PIP_LOCATION = re.compile(
    r"^(?:[a-z][a-z0-9+.-]*://|(?:git|hg|svn|bzr)\+|\.{0,2}/)|\.(?:whl|zip|tar\.gz|tgz)$"
)


# `name`, `name==1.2`, `name>=1.26,<2`: requirements PEP 508 surely accepts, without parsing them.
_SIMPLE_VERSION = r"[ ]*(?:==|!=|>=|<=|>|<)[ ]*[0-9]+(?:\.[0-9]+)*"
_SIMPLE_REQUIREMENT = re.compile(
    rf"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?(?:{_SIMPLE_VERSION}(?:[ ]*,{_SIMPLE_VERSION})*)?[ ]*"
)


@lru_cache(maxsize=4096)
def _requirement_problem(text: str) -> str:
    """Why pip would reject ``text`` as a requirement (PEP 508, via ``packaging``); '' if it won't."""
    if bad := _invisible(text):
        return f"{_quote(text)} contains the invisible character {bad}"
    if _SIMPLE_REQUIREMENT.fullmatch(text):
        return ""
    if _PIP_LOCATION.search(text.strip()):
        return ""
    from packaging.requirements import InvalidRequirement, Requirement  # only for what isn't simple

    try:
        Requirement(text)
    except InvalidRequirement as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "invalid"
        message = f"{_quote(text)} is not a valid pip requirement ({reason})"
        fixed = re.sub(r"(?<![=!<>~])=(?!=)", "==", text, count=1)
        if fixed != text:
            try:
                Requirement(fixed)
            except InvalidRequirement:
                return message
            return f"{message}; did you mean {_quote(fixed)}?"
        return message
    return ""


# --- 4. data → Pipeline -----------------------------------------------------------------------------


def _build_pipeline(data: dict[str, Any]) -> Pipeline:
    """Only called on data that passed every check, so every field has its type."""
    section = data["pipeline"]
    stages: dict[StageName, Stage] = {}
    for raw_name, raw in data["stages"].items():
        name = StageName(raw_name)
        settings: BatchSettings | ServiceSettings
        if "batch" in raw:
            settings = BatchSettings(
                max_completion_time_seconds=raw["batch"]["max_completion_time_seconds"],
                retries=raw["batch"]["retries"],
            )
        else:
            service = raw["service"]
            settings = ServiceSettings(
                max_startup_time_seconds=service["max_startup_time_seconds"],
                replicas=service["replicas"],
                port=service["port"],
                ingress=service["ingress"],
            )
        stages[name] = Stage(
            name=name,
            k8s_name=k8s_name(name),
            executable_module_path=raw["executable_module_path"],
            cpu_request=float(raw["cpu_request"]),
            memory_request_mb=raw["memory_request_mb"],
            settings=settings,
            args=tuple(raw.get("args") or ()),
            requirements=tuple(raw.get("requirements") or ()),
            secrets=tuple(starmap(SecretEnv, raw["secrets"].items())) if raw.get("secrets") else (),
            extra_resources=_extra_resources(raw["extra_resources"]) if raw.get("extra_resources") else (),
        )
    steps, _ = parse_dag(section["DAG"])
    return Pipeline(
        name=section["name"],
        docker_image=section["docker_image"],
        dag_text=section["DAG"],
        steps=steps,
        stages=stages,
        namespace=section.get("namespace") or "",
        secrets_group=section.get("secrets_group") or "",
        run_on_failure=StageName(section["run_on_failure"]) if section.get("run_on_failure") else None,
        usage_stats=section.get("usage_stats", True),
        log_level=data["logging"]["log_level"],
    )


def _extra_resources(resources: dict[str, str | int]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((name, quantity_text(quantity)) for name, quantity in resources.items()))


# --- the entry points -------------------------------------------------------------------------------


def validate_config(
    raw: bytes, *, file: str = CONFIG_FILENAME, strict: bool = False, base_dir: Path | None = None
) -> ValidationOutcome:
    """Validate ``raw`` bytes of a bodywork.yaml; ``base_dir`` set → also check that modules exist."""
    with _gc_paused():
        return _validate(raw, file=file, strict=strict, base_dir=base_dir)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while building: the nodes and data hold no cycles, and the
    collections triggered by ~25 allocations per stage made 10,000 stages 1.6x slower than linear."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _validate(raw: bytes, *, file: str, strict: bool, base_dir: Path | None) -> ValidationOutcome:
    problems = _Problems(file, None)
    if len(raw) > MAX_FILE_BYTES:
        problems.add((), _too_big_message(len(raw)), position=Position(1, 1))
        return ValidationOutcome(file, None, problems.sorted())
    text = _decode(raw, problems)
    composed = _compose(text, problems) if text is not None else None
    if composed is None:
        return ValidationOutcome(file, None, problems.sorted())
    root, node_count = composed
    try:
        document = build_document(root, node_count=node_count)
    except _LimitExceeded as exc:
        problems.add((), exc.message, position=exc.position or Position(1, 1))
        return ValidationOutcome(file, None, problems.sorted())
    except RecursionError:  # not reachable within MAX_DEPTH; a safety net, never a traceback
        problems.add((), f"nested more than {MAX_DEPTH} levels deep", position=_position(root))
        return ValidationOutcome(file, None, problems.sorted())
    problems.document = document
    for path, node, message in document.problems:
        problems.add(path, message, position=_position(node))
    for path, key_node in document.duplicate_keys:
        problems.add(
            path,
            f"key {path[-1]!r} appears twice in {format_path(path[:-1]) or 'the document'}; "
            "the last one wins",
            severity=Severity.ERROR if strict else Severity.WARNING,
            position=_position(key_node),
        )
    data = document.data
    if not isinstance(data, dict):
        if not document.is_unreadable(()):
            problems.add(
                (), f"expected a mapping with version, pipeline, stages and logging, found {_type_name(data)}"
            )
        return ValidationOutcome(file, None, problems.sorted())
    if "version" in data and data["version"] != SCHEMA_VERSION and not document.is_unreadable(("version",)):
        # Another schema version: its other fields mean other things, so checking them would mislead.
        problems.add(("version",), _version_message(data["version"]))
        return ValidationOutcome(file, None, problems.sorted())
    _schema_problems(document, problems, strict=strict)
    _semantic_problems(data, problems, base_dir=base_dir)
    found = problems.sorted()
    if any(p.severity is Severity.ERROR for p in found):
        return ValidationOutcome(file, None, found)
    return ValidationOutcome(file, _build_pipeline(data), found)


def _too_big_message(size: int, limit: int = MAX_FILE_BYTES) -> str:
    return f"the file is {size:,} bytes; bodywork.yaml may be at most {limit:,} bytes"


class ConfigUnreadable(InputError):
    """The config path is not a regular file that can be read (missing, a directory, a FIFO, a
    device, too large). The message names the path and never shows any of its content."""


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_config_bytes(path: Path, *, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes; else
    ``ConfigUnreadable``. Never blocks: a FIFO is opened without waiting for a writer, then refused."""
    shown = visible(str(path))
    flags = (
        os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    )
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise ConfigUnreadable(f"no config file found at {shown}") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL character in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigUnreadable(f"cannot read {shown}: {reason}") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _FILE_KINDS if test(info.st_mode)), "not a regular file")
            raise ConfigUnreadable(f"cannot read {shown}: it is {kind}, not a regular file")
        if info.st_size > limit:
            raise ConfigUnreadable(f"cannot read {shown}: {_too_big_message(info.st_size, limit)}")
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(descriptor, min(1 << 20, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:  # it grew while being read
                raise ConfigUnreadable(f"cannot read {shown}: {_too_big_message(total, limit)}")
        return b"".join(chunks)
    except OSError as exc:
        raise ConfigUnreadable(f"cannot read {shown}: {exc.strerror or type(exc).__name__}") from None
    finally:
        os.close(descriptor)


def resolve_inside(root: Path, relative: str | os.PathLike[str]) -> Path:
    """``root / relative`` with every symlink resolved, if it stays inside ``root``; else ``InputError``.

    For inputs such as the action's ``config``: an absolute path, ``..`` or a symlink that leads out of
    the workspace is refused, and the message never says where it leads."""
    shown = visible(os.fspath(relative))
    try:
        base = Path(root).resolve(strict=True)
        target = (base / relative).resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # missing root, a symlink loop, a NUL character
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise InputError(f"cannot resolve {shown!r} in the workspace: {reason}") from None
    if not target.is_relative_to(base):
        raise InputError(
            f"{shown!r} is outside the workspace: give a path inside the repository (symlinks that lead "
            "out of it are refused)"
        )
    return target


def read_config(path: Path, *, strict: bool = False, check_files: bool = False) -> ValidationOutcome:
    """Read and validate a bodywork.yaml file; a missing or unreadable file is a problem too, with no
    line or column (0, 0): there is no content to point into."""
    shown = str(path)
    try:
        raw = read_config_bytes(path)
    except ConfigUnreadable as exc:
        return ValidationOutcome(shown, None, (ConfigProblem(shown, 0, 0, "", str(exc)),))
    base_dir = path.parent if check_files else None
    return validate_config(raw, file=shown, strict=strict, base_dir=base_dir)


def load_pipeline(path: Path, *, strict: bool = False, check_files: bool = False) -> Pipeline:
    """The pipeline in ``path``; raises ``ConfigInvalid`` with every problem if there is any error."""
    outcome = read_config(path, strict=strict, check_files=check_files)
    if outcome.pipeline is None:
        raise ConfigInvalid(outcome.file, outcome.problems)
    return outcome.pipeline
