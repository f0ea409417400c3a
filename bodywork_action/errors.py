"""The exception hierarchy: every error the tool reports on purpose, each with its exit code.

Exit codes: 0 success, 1 a deployment that failed, 2 invalid input (config, arguments, kubeconfig,
secrets). Problems found while validating are data (``ConfigProblem``), not exceptions: validation
collects all of them and raises ``ConfigInvalid`` once, at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

EXIT_OK = 0
EXIT_DEPLOYMENT_FAILED = 1
EXIT_INVALID_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_BUG = 3  # an internal error: a bug in bodywork-action, reported as one line


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config file, located at the offending key or value."""

    file: str
    line: int  # 1-based
    column: int  # 1-based
    path: str  # field path, e.g. "stages.train.batch.retries"; "" for the document itself
    message: str
    severity: Severity = Severity.ERROR

    @property
    def location(self) -> str:
        """``file:line:col``, or just the file for a problem with the file itself (line 0)."""
        return f"{self.file}:{self.line}:{self.column}" if self.line else self.file

    def format(self) -> str:
        where = visible(self.location)
        label = "" if self.severity is Severity.ERROR else "warning: "
        return f"{where}: {label}{visible(self.path) or '<document>'}: {visible(self.message)}"

    def to_json(self) -> dict[str, object]:
        """As every JSON document shows a problem (``validate --format json``, result.schema.json)."""
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
            "severity": self.severity.value,
        }


def format_problems_text(file: str, problems: Sequence[ConfigProblem]) -> str:
    """One line per problem, then the verdict (here, not in report.py: ``validate`` stays light)."""
    lines = [problem.format() for problem in problems]
    errors = sum(1 for p in problems if p.severity is Severity.ERROR)
    warnings = len(problems) - errors
    summary = f"{errors} error{'s' if errors != 1 else ''} in {file}" if errors else f"{file} is valid"
    if warnings:
        summary += f" ({warnings} warning{'s' if warnings != 1 else ''})"
    return "\n".join([*lines, summary])


def visible(text: str) -> str:
    """Escape characters a terminal would not show as themselves.

    Keys and values come from the user's file; a raw control character (``\\x1e``, ``\\u2028``...)
    would split or garble the one-line-per-problem output that editors and CI parse.
    """
    if text.isprintable():
        return text
    # repr() of one character is its escape (\\t, \\x1e, \\u2028), the form messages show with !r.
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class BodyworkActionError(Exception):
    """Base of every error the tool reports on purpose."""

    exit_code = EXIT_INVALID_INPUT


class InputError(BodyworkActionError):
    """Bad arguments, kubeconfig, secret spec or config file."""

    exit_code = EXIT_INVALID_INPUT


class ConfigInvalid(InputError):
    """``bodywork.yaml`` has errors; holds every problem found (warnings included)."""

    def __init__(self, file: str, problems: Sequence[ConfigProblem]) -> None:
        self.file = file
        self.problems = tuple(problems)
        errors = [p for p in self.problems if p.severity is Severity.ERROR]
        noun = "error" if len(errors) == 1 else "errors"
        super().__init__(f"{len(errors)} {noun} in {file}")


@dataclass(frozen=True)
class SecretKeyRef:
    secret: str
    key: str


class MissingSecrets(InputError):
    """Secret keys that stages need and that exist nowhere; raised before anything is created.

    The message tells a CLI user how to supply them; ``for_action()`` says it in the action's terms.
    """

    def __init__(self, namespace: str, missing: Sequence[SecretKeyRef]) -> None:
        self.namespace = namespace
        self.missing = tuple(missing)
        super().__init__(
            f"{self._found()}; supply them with --secret NAME=KEY1,KEY2 (values from the environment) "
            "or create them first. Nothing was created."
        )

    def _found(self) -> str:
        listed = ", ".join(f"{m.secret}/{m.key}" for m in self.missing)
        return (
            f"{len(self.missing)} secret key(s) needed by the pipeline are missing in namespace "
            f"{self.namespace!r}: {listed}"
        )

    def for_action(self) -> str:
        by_secret: dict[str, list[str]] = {}
        for ref in self.missing:
            by_secret.setdefault(ref.secret, []).append(ref.key)
        lines = "; ".join(f"{name}: {', '.join(keys)}" for name, keys in by_secret.items())
        return (
            f"{self._found()}; add them to the step's `secrets` input ({lines}) with each value in the "
            "step's env, or create them in the namespace first. Nothing was created."
        )


class ClusterError(BodyworkActionError):
    """The Kubernetes API refused a request or could not be reached."""

    exit_code = EXIT_DEPLOYMENT_FAILED

    def __init__(
        self,
        message: str,
        *,
        verb: str = "",
        resource: str = "",
        name: str = "",
        namespace: str = "",
        status: int | None = None,
        reason: str = "",
    ) -> None:
        self.verb = verb
        self.resource = resource
        self.name = name
        self.namespace = namespace
        self.status = status
        self.reason = reason
        super().__init__(message)


class ClusterUnreachable(ClusterError):
    exit_code = EXIT_INVALID_INPUT


class ClusterAuthError(ClusterError):
    """401 or 403: names the verb and resource that was refused."""

    exit_code = EXIT_INVALID_INPUT


class ClusterConflict(ClusterError):
    pass
