"""GitHub Actions I/O: inputs from an environ mapping, workflow commands, outputs, the step summary,
the ``secrets`` input and the kubeconfig input.

The only module that knows GitHub's files and variables. It never reads ``os.environ`` itself: callers
pass the mapping (``run_action(os.environ)`` in production, a dict in tests). Conventions follow the
runner and ``@actions/core`` (github-actions-anchors.md §3): ``INPUT_<NAME>`` with hyphens kept, strict
booleans, ``name<<delimiter`` outputs, ``%``/CR/LF escaping, 10 annotations per step, 1 MiB summaries.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import secrets as random_tokens
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from bodywork_action.errors import ConfigProblem, InputError, Severity, visible
from bodywork_action.redact import Redactor, SecretValue

# GitHub rejects a step summary over 1 MiB (the upload fails with an annotation).
SUMMARY_MAX_BYTES = 1024 * 1024
# "GitHub Actions are limited to 10 warning annotations and 10 error annotations per step".
MAX_ANNOTATIONS_PER_KIND = 10
# @actions/core's getBooleanInput accepts exactly these spellings and throws on anything else.
TRUE_SPELLINGS = ("true", "True", "TRUE")
FALSE_SPELLINGS = ("false", "False", "FALSE")
# Kubeconfig fields whose values are credentials (users[].user.*); each is masked before anything prints.
KUBECONFIG_CREDENTIAL_KEYS = ("token", "client-key-data", "client-certificate-data", "password")
# Auth-provider config keys holding credentials (oidc, gcp, azure providers).
AUTH_PROVIDER_CREDENTIAL_KEYS = ("id-token", "refresh-token", "access-token", "client-secret")

_OUTPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Kubernetes Secret names are DNS-1123 subdomains.
_SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SECRET_NAME_MAX_LENGTH = 253


# ---------------------------------------------------------------------------------------------- inputs


def input_env_names(name: str) -> tuple[str, ...]:
    """Environment variables that may carry input ``name``: GitHub's (hyphens kept), then underscores."""
    github_form = "INPUT_" + name.replace(" ", "_").upper()
    underscore_form = github_form.replace("-", "_")
    return (github_form,) if underscore_form == github_form else (github_form, underscore_form)


def read_input(environ: Mapping[str, str], name: str, *, default: str = "", required: bool = False) -> str:
    """The trimmed input value; ``default`` when absent or empty (the runner sets empty for unset inputs)."""
    for env_name in input_env_names(name):
        value = environ.get(env_name, "").strip()
        if value:
            return value
    if required and not default:
        raise InputError(f"input '{name}' is required; set it under 'with:' in the workflow step")
    return default


def read_multiline_input(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Non-empty, trimmed lines of a multi-line input (like @actions/core's getMultilineInput)."""
    text = read_input(environ, name)
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def read_bool_input(environ: Mapping[str, str], name: str, *, default: bool) -> bool:
    value = read_input(environ, name)
    if not value:
        return default
    if value in TRUE_SPELLINGS:
        return True
    if value in FALSE_SPELLINGS:
        return False
    raise InputError(f"input '{name}' must be true or false, found {value!r}")


def read_int_input(environ: Mapping[str, str], name: str, *, default: int, minimum: int | None = None) -> int:
    value = read_input(environ, name)
    if not value:
        return default
    try:
        number = int(value, 10)
    except ValueError:
        raise InputError(f"input '{name}' must be a whole number, found {value!r}") from None
    if minimum is not None and number < minimum:
        raise InputError(f"input '{name}' must be at least {minimum}, found {number}")
    return number


def read_choice_input(environ: Mapping[str, str], name: str, choices: Sequence[str], *, default: str) -> str:
    value = read_input(environ, name)
    if not value:
        return default
    if value not in choices:
        raise InputError(f"input '{name}' must be one of {', '.join(choices)}; found {value!r}")
    return value


@dataclass(frozen=True)
class GitHubContext:
    """The default variables of a workflow run that the action uses (all empty outside GitHub)."""

    server_url: str
    repository: str  # owner/name
    sha: str
    ref: str
    run_id: str
    run_attempt: str
    actor: str
    workspace: str
    output_path: str  # GITHUB_OUTPUT
    summary_path: str  # GITHUB_STEP_SUMMARY
    runner_temp: str
    debug: bool  # RUNNER_DEBUG=1: step debug logging is on

    @property
    def repository_url(self) -> str:
        return f"{self.server_url}/{self.repository}" if self.server_url and self.repository else ""

    @property
    def commit_url(self) -> str:
        return f"{self.repository_url}/commit/{self.sha}" if self.repository_url and self.sha else ""

    @property
    def run_url(self) -> str:
        if not (self.repository_url and self.run_id):
            return ""
        attempt = f"/attempts/{self.run_attempt}" if self.run_attempt else ""
        return f"{self.repository_url}/actions/runs/{self.run_id}{attempt}"


def read_github_context(environ: Mapping[str, str]) -> GitHubContext:
    def get(name: str) -> str:
        return environ.get(name, "").strip()

    return GitHubContext(
        server_url=get("GITHUB_SERVER_URL").rstrip("/")
        or ("https://github.com" if get("GITHUB_REPOSITORY") else ""),
        repository=get("GITHUB_REPOSITORY"),
        sha=get("GITHUB_SHA"),
        ref=get("GITHUB_REF"),
        run_id=get("GITHUB_RUN_ID"),
        run_attempt=get("GITHUB_RUN_ATTEMPT"),
        actor=get("GITHUB_ACTOR"),
        workspace=get("GITHUB_WORKSPACE"),
        output_path=get("GITHUB_OUTPUT"),
        summary_path=get("GITHUB_STEP_SUMMARY"),
        runner_temp=get("RUNNER_TEMP"),
        debug=get("RUNNER_DEBUG") == "1",
    )


# ------------------------------------------------------------------------------------ workflow commands


def escape_data(text: str) -> str:
    """Escape a workflow command's message (@actions/core command.ts ``escapeData``)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value (``escapeProperty``: also ``:`` and ``,``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def format_command(command: str, message: str = "", **properties: str | int | None) -> str:
    """``::command key=value,…::message`` with everything escaped; ``None``/empty properties dropped."""
    props = ",".join(
        f"{key}={escape_property(str(value))}" for key, value in properties.items() if value not in (None, "")
    )
    head = f"::{command} {props}" if props else f"::{command}"
    return f"{head}::{escape_data(message)}"


def format_mask_commands(value: str) -> list[str]:
    """``::add-mask::`` lines for ``value``: the whole value and, if multi-line, each line on its own.

    A multi-line ``::add-mask::`` would be escaped into one line and never match the log, so every line
    is registered separately (as the runner expects).
    """
    lines = [line for line in value.splitlines() if line.strip()]
    if len(lines) <= 1:
        return [f"::add-mask::{value.strip()}"] if value.strip() else []
    return [f"::add-mask::{line}" for line in dict.fromkeys(lines)]


class ActionLog:
    """Writes the step's log: plain lines, workflow commands, groups; every text through the redactor."""

    def __init__(self, stream: TextIO, *, debug: bool = False, redactor: Redactor | None = None) -> None:
        self._stream = stream
        self._debug = debug
        self.redactor = redactor or Redactor()

    def _write(self, line: str) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()

    def mask(self, value: str | SecretValue) -> None:
        """Register ``value`` with GitHub's masker and with our redactor, before anything else prints it."""
        plain = value.reveal() if isinstance(value, SecretValue) else value
        for line in format_mask_commands(plain):
            self._write(line)
        self.redactor = self.redactor.with_values([plain])

    def info(self, message: str) -> None:
        self._write(self.redactor.redact(message))

    def debug(self, message: str) -> None:
        # The runner hides ::debug:: lines unless step debugging is on; we skip writing them too.
        if self._debug:
            self._write(format_command("debug", self.redactor.redact(message)))

    def annotate(
        self,
        level: str,
        message: str,
        *,
        file: str = "",
        line: int | None = None,
        col: int | None = None,
        title: str = "",
    ) -> None:
        if level not in ("error", "warning", "notice"):
            raise ValueError(f"unknown annotation level {level!r}")
        self._write(
            format_command(
                level,
                self.redactor.redact(message),
                title=self.redactor.redact(title),
                file=file,
                line=line,
                col=col,
            )
        )

    def annotate_problems(self, problems: Sequence[ConfigProblem], *, title: str = "") -> None:
        """One annotation per problem, at most 10 errors and 10 warnings, then one line counting the rest."""
        left_out = 0
        for severity, level in ((Severity.ERROR, "error"), (Severity.WARNING, "warning")):
            of_kind = [p for p in problems if p.severity is severity]
            for problem in of_kind[:MAX_ANNOTATIONS_PER_KIND]:
                where = f"{problem.path}: " if problem.path else ""
                self.annotate(
                    level,
                    # Redacted before escaping (an escaped secret would no longer match), then
                    # escaped so a raw U+2028 or ESC from a key stays inert.
                    visible(self.redactor.redact(f"{where}{problem.message}")),
                    file=problem.file,
                    line=problem.line,
                    col=problem.column,
                    title=title,
                )
            left_out += max(0, len(of_kind) - MAX_ANNOTATIONS_PER_KIND)
        if left_out:
            noun = "problem" if left_out == 1 else "problems"
            self.info(
                f"{left_out} more {noun} not annotated (GitHub shows at most {MAX_ANNOTATIONS_PER_KIND} "
                "per kind and step); the job summary lists them all."
            )

    @contextlib.contextmanager
    def group(self, title: str) -> Iterator[None]:
        """A foldable ``::group::`` in the log; always closed, even when the body raises."""
        self._write(format_command("group", self.redactor.redact(title)))
        try:
            yield
        finally:
            self._write("::endgroup::")

    @contextlib.contextmanager
    def untrusted_text(self) -> Iterator[None]:
        """Stop command processing while echoing text we don't control (pod logs may print ``::…::``)."""
        token = random_tokens.token_hex(16)
        self._write(f"::stop-commands::{token}")
        try:
            yield
        finally:
            self._write(f"::{token}::")


# -------------------------------------------------------------------------------- outputs and summary


def format_output_entry(name: str, value: str) -> str:
    """``name<<delimiter`` … ``delimiter`` with a random delimiter that occurs in neither name nor value."""
    if not _OUTPUT_NAME.match(name):
        raise ValueError(f"invalid output name {name!r}")
    while True:
        delimiter = f"ghadelimiter_{random_tokens.token_hex(16)}"
        if delimiter not in value and delimiter not in name:
            break
    return f"{name}<<{delimiter}\n{value}\n{delimiter}\n"


def write_outputs(
    path: str | os.PathLike[str], outputs: Mapping[str, str], *, redactor: Redactor | None = None
) -> None:
    """Append every output to the ``GITHUB_OUTPUT`` file (values redacted when a redactor is given)."""
    redact = redactor.redact if redactor is not None else (lambda text: text)
    text = "".join(format_output_entry(name, redact(value)) for name, value in outputs.items())
    with open(path, "a", encoding="utf-8", newline="\n") as output_file:
        output_file.write(text)


def fit_summary(markdown: str, *, room_bytes: int) -> str:
    """``markdown`` cut to ``room_bytes`` (UTF-8, on a character boundary) with a note saying so."""
    encoded = markdown.encode("utf-8")
    if len(encoded) <= room_bytes:
        return markdown
    note = (
        "\n\n> [!WARNING]\n> This summary was cut here: GitHub accepts at most 1 MiB of summary per step. "
        "The full details are in the step log.\n"
    )
    keep_bytes = max(0, room_bytes - len(note.encode("utf-8")))
    kept = encoded[:keep_bytes].decode("utf-8", errors="ignore")
    return kept + note if keep_bytes else ""


def append_summary(path: str | os.PathLike[str], markdown: str) -> int:
    """Append to the ``GITHUB_STEP_SUMMARY`` file, keeping the file within 1 MiB; returns bytes written."""
    summary_path = Path(path)
    existing_bytes = summary_path.stat().st_size if summary_path.exists() else 0
    text = fit_summary(markdown, room_bytes=SUMMARY_MAX_BYTES - existing_bytes)
    if not text:
        return 0
    with open(summary_path, "a", encoding="utf-8", newline="\n") as summary_file:
        summary_file.write(text)
    return len(text.encode("utf-8"))


# ------------------------------------------------------------------------------------- secrets input


@dataclass(frozen=True)
class SecretsSpec:
    """The parsed ``secrets`` input: Kubernetes secret name → the keys (= env var names) it holds."""

    secrets: Mapping[str, tuple[str, ...]]

    @property
    def env_vars(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(key for keys in self.secrets.values() for key in keys))


def parse_secrets_input(text: str) -> SecretsSpec:
    """Parse ``secret-name: KEY1, KEY2`` lines (also ``[KEY1, KEY2]`` or ``- KEY`` items) into a spec.

    Only names are written in the workflow; values come from the step's ``env:`` (the action reads
    them with ``secret_groups.build_secret_supply``), so nothing secret ever sits in YAML and
    multi-line values survive.
    """
    secrets: dict[str, list[str]] = {}
    problems: list[str] = []
    current: str | None = None
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        stripped = line.strip()
        if stripped.startswith("- ") or stripped == "-":
            if current is None:
                problems.append(f"line {number}: a '- KEY' item must follow a 'secret-name:' line")
                continue
            keys = [stripped[1:].strip()]
        else:
            name, colon, rest = stripped.partition(":")
            if not colon:
                problems.append(f"line {number}: expected 'secret-name: KEY1, KEY2', found {stripped!r}")
                current = None
                continue
            name = name.strip()
            if not _SECRET_NAME.match(name) or len(name) > _SECRET_NAME_MAX_LENGTH:
                problems.append(
                    f"line {number}: {name!r} is not a valid Kubernetes secret name "
                    "(lower-case letters, digits, '-' and '.')"
                )
                current = None
                continue
            if name in secrets:
                problems.append(f"line {number}: secret {name!r} is listed twice")
                current = None
                continue
            secrets[name] = []
            current = name
            rest = rest.strip()
            if rest.startswith("[") and rest.endswith("]"):
                rest = rest[1:-1]
            keys = [key.strip() for key in rest.split(",")] if rest else []
            if rest and any(not key for key in keys):
                problems.append(f"line {number}: empty key in {rest!r}")
                keys = [key for key in keys if key]
        for key in keys:
            if not _ENV_VAR_NAME.match(key):
                problems.append(
                    f"line {number}: {key!r} is not an environment variable name (letters, digits, '_')"
                )
            elif key in secrets[current]:
                problems.append(f"line {number}: key {key!r} is listed twice for secret {current!r}")
            else:
                secrets[current].append(key)
    for name, keys in secrets.items():
        if not keys:
            problems.append(f"secret {name!r} lists no keys")
    if problems:
        raise InputError("input 'secrets' is invalid:\n  " + "\n  ".join(problems))
    return SecretsSpec({name: tuple(keys) for name, keys in secrets.items()})


# --------------------------------------------------------------------------------------- kubeconfig


def parse_kubeconfig_input(text: str) -> str:
    """The kubeconfig as YAML text, whether the input held YAML or base64-encoded YAML.

    Error messages never quote the input: it is full of credentials.
    """
    stripped = text.strip()
    if not stripped:
        raise InputError("input 'kubeconfig' is empty")
    if _looks_like_kubeconfig(stripped):
        return stripped + "\n"
    try:
        decoded = base64.b64decode("".join(stripped.split()), validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InputError(
            "input 'kubeconfig' is neither a kubeconfig in YAML nor base64-encoded YAML "
            "(expected keys apiVersion, clusters, users, contexts)"
        ) from None
    if not _looks_like_kubeconfig(decoded):
        raise InputError(
            "input 'kubeconfig' was base64 but did not decode to a kubeconfig "
            "(expected keys apiVersion, clusters, users, contexts)"
        )
    return decoded.strip() + "\n"


def _load_kubeconfig_document(text: str) -> dict[str, Any] | None:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return document if isinstance(document, dict) else None


def _looks_like_kubeconfig(text: str) -> bool:
    document = _load_kubeconfig_document(text)
    return document is not None and ("clusters" in document or document.get("kind") == "Config")


def find_kubeconfig_credentials(kubeconfig_yaml: str) -> list[str]:
    """Every credential value in the kubeconfig, plus decoded forms of base64 key/cert data."""
    document = _load_kubeconfig_document(kubeconfig_yaml) or {}
    found: list[str] = []
    for entry in document.get("users") or []:
        user = entry.get("user") if isinstance(entry, dict) else None
        if not isinstance(user, dict):
            continue
        for key in KUBECONFIG_CREDENTIAL_KEYS:
            value = user.get(key)
            if isinstance(value, str) and value:
                found.append(value)
                if key.endswith("-data"):
                    found.extend(_decoded_base64(value))
        provider = user.get("auth-provider")
        config = provider.get("config") if isinstance(provider, dict) else None
        if isinstance(config, dict):
            found.extend(
                str(value) for key, value in config.items() if key in AUTH_PROVIDER_CREDENTIAL_KEYS and value
            )
    return list(dict.fromkeys(found))


def _decoded_base64(value: str) -> list[str]:
    try:
        return [base64.b64decode(value, validate=True).decode("utf-8")]
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return []


def choose_private_temp_parent(environ: Mapping[str, str]) -> str | None:
    """``RUNNER_TEMP`` if it exists here and is outside the workspace; else None (the system default).

    Inside a container action ``RUNNER_TEMP`` names a host path that is not mounted, so the container's
    own ``/tmp`` is used — outside the workspace and gone with the container.
    """
    runner_temp = environ.get("RUNNER_TEMP", "").strip()
    workspace = environ.get("GITHUB_WORKSPACE", "").strip()
    if not runner_temp or not os.path.isdir(runner_temp):
        return None
    if workspace:
        resolved_temp = Path(runner_temp).resolve()
        resolved_workspace = Path(workspace).resolve()
        if resolved_temp == resolved_workspace or resolved_workspace in resolved_temp.parents:
            return None
    return runner_temp


@contextlib.contextmanager
def write_private_kubeconfig(kubeconfig_yaml: str, environ: Mapping[str, str]) -> Iterator[Path]:
    """Write the kubeconfig to a fresh 0600 file in a 0700 directory outside the workspace; yield its path.

    The file and its directory are removed when the block exits, however it exits.
    """
    directory = tempfile.mkdtemp(prefix="bodywork-kube-", dir=choose_private_temp_parent(environ))
    path = Path(directory) / "config"
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as kubeconfig_file:
            kubeconfig_file.write(kubeconfig_yaml)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(OSError):
            os.rmdir(directory)
