"""``bodywork.yaml`` → a validated ``Pipeline``, or every problem found, each with its line and column.

Pure functions over bytes: ``load_pipeline(path)`` is the one wrapper that reads a file. The steps:

1. decode (UTF-8, strictly) and compose YAML nodes, keeping each node's position (PyYAML's marks);
2. build plain data from the nodes and an index from field path → position;
3. check the data against the shipped JSON Schema (``bodywork.schema.json``), translating each error
   into a ``ConfigProblem`` located at the offending key or value;
4. check what a schema can't express (the DAG, name collisions, ``run_on_failure``, images, files);
5. return a ``Pipeline`` if there are no errors, else raise ``ConfigInvalid`` holding all problems.

Unlike Bodywork 3.0 (spec §1.7), nothing stops at the first bad section, and no input raises anything
but ``ConfigInvalid``.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from bodywork_action.dag import k8s_name, parse_dag
from bodywork_action.errors import ConfigInvalid, ConfigProblem, Severity, visible
from bodywork_action.model import (
    SCHEMA_VERSION,
    BatchSettings,
    Pipeline,
    SecretEnv,
    ServiceSettings,
    Stage,
    StageName,
)
from bodywork_action.render import RESERVED_ENV_VARS

CONFIG_FILENAME = "bodywork.yaml"

# A Docker/OCI image reference: [registry[:port]/]path[:tag][@digest] (distribution/reference grammar,
# simplified to what matters: lower-case path components, a tag of at most 128 characters).
_IMAGE_REFERENCE = re.compile(
    r"^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)

Path_ = tuple[str | int, ...]

# libyaml's loader when PyYAML was built with it (about 10x faster); its node marks carry the same
# line and column as the pure-Python loader's.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class Document:
    """Plain data built from YAML nodes, with the position of every key and value."""

    data: Any
    key_positions: dict[Path_, Position] = field(default_factory=dict)
    value_positions: dict[Path_, Position] = field(default_factory=dict)
    duplicate_keys: list[tuple[Path_, Position]] = field(default_factory=list)

    def locate(self, path: Path_, *, prefer_key: bool = False) -> Position:
        """Where to point for ``path``: its value (or key), else the nearest located ancestor."""
        for depth in range(len(path), -1, -1):
            prefix = path[:depth]
            first, second = (
                (self.key_positions, self.value_positions)
                if prefer_key
                else (self.value_positions, self.key_positions)
            )
            if prefix in first:
                return first[prefix]
            if prefix in second:
                return second[prefix]
        return Position(1, 1)


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
        if position is None:
            position = self.document.locate(path, prefer_key=at_key) if self.document else Position(1, 1)
        self.items.append(
            ConfigProblem(self.file, position.line, position.column, format_path(path), message, severity)
        )

    def sorted(self) -> tuple[ConfigProblem, ...]:
        # One jsonschema error per missing required key repeats the whole list: report each once.
        unique = dict.fromkeys(self.items)
        return tuple(sorted(unique, key=lambda p: (p.line, p.column, p.path, p.message)))


# --- 1. bytes → nodes → data with positions ---------------------------------------------------------


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


def _compose(text: str, problems: _Problems) -> yaml.Node | None:
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1)
        detail = " ".join(part for part in (exc.context, exc.problem) if part)
        problems.add((), f"invalid YAML: {detail}", position=position)
        return None
    except yaml.YAMLError as exc:  # e.g. a reader error on control characters
        problems.add((), f"invalid YAML: {exc}")
        return None
    if len(nodes) > 1:
        second = nodes[1].start_mark
        problems.add(
            (),
            "the file holds several YAML documents; bodywork.yaml must hold exactly one",
            position=Position(second.line + 1, second.column + 1),
        )
        return None
    if not nodes:
        problems.add((), "the file is empty: expected a mapping with version, pipeline, stages and logging")
        return None
    return nodes[0]


def _position(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def build_document(root: yaml.Node) -> Document:
    """Plain data from composed nodes (keys as strings, as Bodywork applies ``str()``), with positions."""
    constructor = yaml.SafeLoader("")  # a constructor for scalars; never fed a stream
    document = Document(data=None)

    def convert(node: yaml.Node, path: Path_) -> Any:
        document.value_positions[path] = _position(node)
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key_value = convert_scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
                key = _key_text(key_value, key_node)
                child = (*path, key)
                if key in result:
                    document.duplicate_keys.append((child, _position(key_node)))
                document.key_positions[child] = _position(key_node)
                result[key] = convert(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [convert(item, (*path, index)) for index, item in enumerate(node.value)]
        return convert_scalar(node)

    def convert_scalar(node: yaml.Node) -> Any:
        try:
            return constructor.construct_object(node, deep=True)
        except yaml.YAMLError:
            return node.value  # e.g. an invalid timestamp: keep the text, the schema reports the type

    document.data = convert(root, ())
    return document


def _key_text(value: Any, node: yaml.Node) -> str:
    if value is None and isinstance(node, yaml.ScalarNode) and node.value in ("", "~", "null"):
        return "null"
    if isinstance(value, bool):  # `yes:` as a key means the text the user typed, not True
        return node.value
    return str(value) if value is not None else str(getattr(node, "value", ""))


# --- 2. the JSON Schema -----------------------------------------------------------------------------


@cache
def load_schema() -> dict[str, Any]:
    text = resources.files("bodywork_action").joinpath("bodywork.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _inline_refs(node: Any, definitions: dict[str, Any]) -> Any:
    """The schema with local ``$ref``s replaced by their targets: resolving a reference on every
    stage dominated validation time (3x slower on a 1,000-stage file)."""
    if isinstance(node, dict):
        reference = node.get("$ref", "")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            return _inline_refs(definitions[reference.removeprefix("#/$defs/")], definitions)
        return {key: _inline_refs(value, definitions) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(item, definitions) for item in node]
    return node


@cache
def _validator() -> Any:
    import jsonschema  # imported here: `--help` must not pay for it

    schema = load_schema()
    return jsonschema.Draft202012Validator(_inline_refs(schema, schema.get("$defs", {})))


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


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _schema_problems(document: Document, problems: _Problems, *, strict: bool) -> None:
    import jsonschema

    validator = _validator()
    errors: Iterator[jsonschema.ValidationError] = validator.iter_errors(document.data)
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        path: Path_ = tuple(error.absolute_path)
        _translate(error, path, document, problems, strict=strict)


def _translate(error: Any, path: Path_, document: Document, problems: _Problems, *, strict: bool) -> None:
    kind = error.validator
    value = error.instance
    last = path[-1] if path else ""
    if "propertyNames" in error.absolute_schema_path:  # the key itself is bad, not a value
        problems.add(
            (*path, value),
            f"{_quote(str(value))} is not a valid secret key / variable name "
            "(letters, digits, '-', '_' and '.')",
            at_key=True,
        )
    elif kind == "type":
        expected = error.validator_value
        words = (
            " or ".join(_TYPE_WORDS.get(t, t) for t in expected)
            if isinstance(expected, list)
            else _TYPE_WORDS.get(expected, expected)
        )
        problems.add(path, f"expected {words}, found {_type_name(value)}")
    elif kind == "required":
        missing = [name for name in error.validator_value if not (isinstance(value, dict) and name in value)]
        for name in missing:
            problems.add((*path, name), f"required field {name!r} is missing", at_key=True)
    elif kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        for key in sorted(set(value) - set(allowed)):
            where = "at the top level" if not path else f"in {format_path(path)}"
            message = f"unknown key {key!r} {where}{_suggest(key, allowed)}"
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
        allowed = ", ".join(str(v) for v in error.validator_value)
        problems.add(path, f"{_type_name(value)} is not one of: {allowed}")
    elif kind in ("minimum", "maximum"):
        bound = error.validator_value
        relation = "≥" if kind == "minimum" else "≤"
        if last == "port":
            problems.add(path, f"a port must be between 1 and 65535, found {value}")
        else:
            problems.add(path, f"must be {relation} {bound}, found {value}")
    elif kind == "pattern":
        if path[:1] == ("stages",) and len(path) == 4 and path[2] == "secrets":
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


def _version_message(found: Any) -> str:
    if isinstance(found, float | int) and not isinstance(found, bool) and str(found) == SCHEMA_VERSION:
        return f'expected the string "{SCHEMA_VERSION}", found the number {found}: quote it'
    shown = _quote(found) if isinstance(found, str) else _type_name(found)
    return (
        f'schema version {shown} is not supported: this tool reads version "{SCHEMA_VERSION}" '
        "(Bodywork 3.0's format)"
    )


# --- 3. checks a schema can't express ---------------------------------------------------------------


def _semantic_problems(data: dict[str, Any], problems: _Problems, *, base_dir: Path | None) -> None:
    pipeline = data.get("pipeline") if isinstance(data.get("pipeline"), dict) else {}
    stages = data.get("stages") if isinstance(data.get("stages"), dict) else {}

    image = pipeline.get("docker_image")
    if isinstance(image, str) and image and not _IMAGE_REFERENCE.match(image):
        problems.add(
            ("pipeline", "docker_image"),
            f"{_quote(image)} is not a valid image reference (e.g. python:3.11-slim, ghcr.io/org/img:tag)",
        )

    by_k8s_name: dict[str, str] = {}
    for name in stages:
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

    for name, stage in stages.items():
        secrets = stage.get("secrets") if isinstance(stage, dict) else None
        for variable in secrets if isinstance(secrets, dict) else ():
            if variable in RESERVED_ENV_VARS:
                problems.add(
                    ("stages", name, "secrets", variable),
                    f"{variable} is set by bodywork-action itself and can't come from a secret",
                    at_key=True,
                )

    dag = pipeline.get("DAG")
    if isinstance(dag, str):
        steps, dag_problems = parse_dag(dag)
        for problem in dag_problems:
            problems.add(("pipeline", "DAG"), problem.message)
        for step in steps:
            for name in step:
                if name not in stages:
                    problems.add(
                        ("pipeline", "DAG"),
                        f"stage {name!r} is not defined in stages{_suggest(name, stages)}",
                    )

    failure = pipeline.get("run_on_failure")
    if isinstance(failure, str) and failure:
        if failure not in stages:
            problems.add(
                ("pipeline", "run_on_failure"),
                f"stage {failure!r} is not defined in stages{_suggest(failure, stages)}",
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
            secrets=tuple(SecretEnv(env, secret) for env, secret in (raw.get("secrets") or {}).items()),
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


# --- the entry points -------------------------------------------------------------------------------


def validate_config(
    raw: bytes, *, file: str = CONFIG_FILENAME, strict: bool = False, base_dir: Path | None = None
) -> ValidationOutcome:
    """Validate ``raw`` bytes of a bodywork.yaml; ``base_dir`` set → also check that modules exist."""
    problems = _Problems(file, None)
    text = _decode(raw, problems)
    root = _compose(text, problems) if text is not None else None
    if root is None:
        return ValidationOutcome(file, None, problems.sorted())
    document = build_document(root)
    problems.document = document
    for path, position in document.duplicate_keys:
        problems.add(
            path,
            f"key {path[-1]!r} appears twice in {format_path(path[:-1]) or 'the document'}; "
            "the last one wins",
            severity=Severity.ERROR if strict else Severity.WARNING,
            position=position,
        )
    data = document.data
    if not isinstance(data, dict):
        problems.add(
            (), f"expected a mapping with version, pipeline, stages and logging, found {_type_name(data)}"
        )
        return ValidationOutcome(file, None, problems.sorted())
    if "version" in data and data["version"] != SCHEMA_VERSION:
        # Another schema version: its other fields mean other things, so checking them would mislead.
        problems.add(("version",), _version_message(data["version"]))
        return ValidationOutcome(file, None, problems.sorted())
    _schema_problems(document, problems, strict=strict)
    _semantic_problems(data, problems, base_dir=base_dir)
    found = problems.sorted()
    if any(p.severity is Severity.ERROR for p in found):
        return ValidationOutcome(file, None, found)
    return ValidationOutcome(file, _build_pipeline(data), found)


def read_config(path: Path, *, strict: bool = False, check_files: bool = False) -> ValidationOutcome:
    """Read and validate a bodywork.yaml file; a missing or unreadable file is a problem too."""
    shown = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        problem = ConfigProblem(shown, 1, 1, "", f"no config file found at {shown}")
        return ValidationOutcome(shown, None, (problem,))
    except OSError as exc:
        problem = ConfigProblem(shown, 1, 1, "", f"cannot read {shown}: {exc.strerror or exc}")
        return ValidationOutcome(shown, None, (problem,))
    base_dir = path.parent if check_files else None
    return validate_config(raw, file=shown, strict=strict, base_dir=base_dir)


def load_pipeline(path: Path, *, strict: bool = False, check_files: bool = False) -> Pipeline:
    """The pipeline in ``path``; raises ``ConfigInvalid`` with every problem if there is any error."""
    outcome = read_config(path, strict=strict, check_files=check_files)
    if outcome.pipeline is None:
        raise ConfigInvalid(outcome.file, outcome.problems)
    return outcome.pipeline
