"""The action's inputs and the workflow run's variables, each read once into a typed value.

``read_action_inputs(environ)`` reads every input declared in action.yml (``INPUT_<NAME>``, hyphens
kept, as the runner sets them), checks each one and raises ``InputError`` naming the input; nothing
else in the action reads an ``INPUT_`` variable. It never reads ``os.environ`` itself: the caller
passes the mapping. Conventions follow ``@actions/core``: strict booleans, an empty value means the
input's default, multi-line inputs are trimmed lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bodywork_action.errors import InputError
from bodywork_action.model import ResourceOverride
from bodywork_action.options import DEFAULT_LOCK_TIMEOUT_SECONDS
from bodywork_action.overrides import check_image, parse_image_pull_secrets, parse_resource_override
from bodywork_action.redact import SecretValue
from bodywork_action.secret_groups import SecretRequest, parse_secrets_input
from bodywork_action.selection import parse_only

COMMANDS = ("deploy", "validate", "plan", "dry-run", "diff", "delete")
DEFAULT_TIMEOUT_MINUTES = 60
# @actions/core's getBooleanInput accepts exactly these spellings and throws on anything else.
TRUE_SPELLINGS = ("true", "True", "TRUE")
FALSE_SPELLINGS = ("false", "False", "FALSE")


@dataclass(frozen=True)
class ActionInputs:
    """Every input of action.yml, checked; ``kubeconfig`` is held so that ``repr`` never shows it."""

    command: str = "deploy"
    config: str = "bodywork.yaml"
    kubeconfig: SecretValue = field(default_factory=lambda: SecretValue(""))
    context: str = ""
    secrets: tuple[SecretRequest, ...] = ()
    secrets_group: str = ""
    namespace: str = ""
    repository_url: str = ""
    commit: str = ""
    image: str = ""  # replaces pipeline.docker_image for this deploy
    image_pull_secrets: tuple[str, ...] = ()
    resources: tuple[ResourceOverride, ...] = ()  # one "stage: name=quantity" per line
    git_credentials_secret: str = ""
    ingress_class: str = ""
    smoke_test: tuple[str, ...] = ()  # one "stage=/path" per line
    mlflow_stage: str = ""
    from_step: int | None = None  # a partial run from this step (1-based); None: the whole DAG
    stages: tuple[str, ...] | None = None  # a partial run of only these stages; None: not asked
    strict: bool = False
    timeout_minutes: int = DEFAULT_TIMEOUT_MINUTES
    lock_timeout_seconds: int = DEFAULT_LOCK_TIMEOUT_SECONDS
    atomic: bool = False  # a failed deploy puts back every service it changed (the CLI's --atomic)


def read_action_inputs(environ: Mapping[str, str]) -> ActionInputs:
    def text(name: str, default: str = "") -> str:
        return read_input(environ, name, default=default)

    return ActionInputs(
        command=read_choice_input(environ, "command", COMMANDS, default="deploy"),
        config=text("config", "bodywork.yaml"),
        kubeconfig=SecretValue(text("kubeconfig")),
        context=text("context"),
        secrets=parse_secrets_input(text("secrets")),
        secrets_group=text("secrets-group"),
        namespace=text("namespace"),
        repository_url=text("repository-url"),
        commit=text("commit"),
        image=check_image(text("image"), source="input 'image'"),
        image_pull_secrets=parse_image_pull_secrets(
            [text("image-pull-secrets")], source="input 'image-pull-secrets'"
        ),
        resources=tuple(
            parse_resource_override(line, source="input 'resources'")
            for line in read_multiline_input(environ, "resources")
        ),
        git_credentials_secret=text("git-credentials-secret"),
        ingress_class=text("ingress-class"),
        smoke_test=read_multiline_input(environ, "smoke-test"),
        mlflow_stage=text("mlflow-stage"),
        from_step=read_int_input(environ, "from-step", default=0, minimum=1) or None,
        stages=parse_only([text("stages")]) if text("stages") else None,
        strict=read_bool_input(environ, "strict", default=False),
        timeout_minutes=read_int_input(
            environ, "timeout-minutes", default=DEFAULT_TIMEOUT_MINUTES, minimum=1
        ),
        lock_timeout_seconds=read_int_input(
            environ, "lock-timeout-seconds", default=DEFAULT_LOCK_TIMEOUT_SECONDS, minimum=0
        ),
        atomic=read_bool_input(environ, "atomic", default=False),
    )


def input_env_names(name: str) -> tuple[str, ...]:
    """Environment variables that may carry input ``name``: GitHub's (hyphens kept), then underscores."""
    github_form = "INPUT_" + name.replace(" ", "_").upper()
    underscore_form = github_form.replace("-", "_")
    return (github_form,) if underscore_form == github_form else (github_form, underscore_form)


def read_input(environ: Mapping[str, str], name: str, *, default: str = "") -> str:
    """The trimmed input value; ``default`` when absent or empty (the runner sets empty for unset inputs)."""
    for env_name in input_env_names(name):
        value = environ.get(env_name, "").strip()
        if value:
            return value
    return default


def read_multiline_input(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Non-empty, trimmed lines of a multi-line input (like @actions/core's getMultilineInput)."""
    return tuple(line.strip() for line in read_input(environ, name).splitlines() if line.strip())


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
    """The default variables of a workflow run (all empty outside GitHub)."""

    server_url: str = ""
    repository: str = ""  # owner/name
    sha: str = ""
    ref: str = ""
    run_id: str = ""
    run_attempt: str = ""
    actor: str = ""
    workspace: str = ""
    output_path: str = ""  # GITHUB_OUTPUT
    summary_path: str = ""  # GITHUB_STEP_SUMMARY
    runner_temp: str = ""
    debug: bool = False  # RUNNER_DEBUG=1 or ACTIONS_STEP_DEBUG=true: step debug logging is on

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
        debug=get("RUNNER_DEBUG") == "1" or get("ACTIONS_STEP_DEBUG").lower() == "true",
    )
