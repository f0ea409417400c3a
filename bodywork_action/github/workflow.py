"""GitHub Actions workflow commands, outputs and the step summary file: the step's side of the runner.

Shell: writes the step log (plain lines, ``::command::`` lines, groups, masks), the ``GITHUB_OUTPUT``
file and the ``GITHUB_STEP_SUMMARY`` file; every text goes through the redactor. The only module that
formats workflow commands. Conventions follow the runner and ``@actions/core``: ``name<<delimiter``
outputs, ``%``/CR/LF escaping of command data (the runner unescapes it), at most 10 annotations of a
kind per step, summaries of at most 1 MiB.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets as random_tokens
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from bodywork_action.errors import ConfigProblem, Severity, visible
from bodywork_action.redact import Redactor, SecretValue

# GitHub rejects a step summary over 1 MiB (the upload fails with an annotation).
SUMMARY_MAX_BYTES = 1024 * 1024
# "GitHub Actions are limited to 10 warning annotations and 10 error annotations per step".
MAX_ANNOTATIONS_PER_KIND = 10

_OUTPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


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
        lines = [value.strip()] if value.strip() else []
    # The runner unescapes command data (%25, %0D, %0A) before registering the mask: escape it the
    # same way, or a value holding "%0A" would be masked as something else.
    return [f"::add-mask::{escape_data(line)}" for line in dict.fromkeys(lines)]


def format_problem_annotations(
    problems: Sequence[ConfigProblem], *, redact: Callable[[str], str] = str
) -> tuple[list[str], int]:
    """``::error``/``::warning`` lines for bodywork.yaml problems, at most 10 of each kind (what GitHub
    shows per step), and how many were left out."""
    lines: list[str] = []
    left_out = 0
    for severity in (Severity.ERROR, Severity.WARNING):
        of_kind = [p for p in problems if p.severity is severity]
        for problem in of_kind[:MAX_ANNOTATIONS_PER_KIND]:
            where = f"{problem.path}: " if problem.path else ""
            lines.append(
                format_command(
                    severity.value,
                    # Redacted before escaping (an escaped secret would no longer match), then made
                    # visible so a raw U+2028 or ESC from a key stays inert.
                    visible(redact(f"{where}{problem.message}")),
                    file=problem.file,
                    line=problem.line or None,
                    col=problem.column or None,
                    title=f"bodywork.yaml {severity.value}",
                )
            )
        left_out += max(0, len(of_kind) - MAX_ANNOTATIONS_PER_KIND)
    return lines, left_out


def format_left_out(left_out: int) -> str:
    noun = "problem" if left_out == 1 else "problems"
    return (
        f"{left_out} more {noun} not annotated (GitHub shows at most {MAX_ANNOTATIONS_PER_KIND} per kind "
        "and step); the text report lists them all."
    )


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

    def annotate_problems(self, problems: Sequence[ConfigProblem]) -> None:
        """One annotation per problem, at most 10 errors and 10 warnings, then one line counting the rest."""
        lines, left_out = format_problem_annotations(problems, redact=self.redactor.redact)
        for line in lines:
            self._write(line)
        if left_out:
            self.info(format_left_out(left_out))

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
