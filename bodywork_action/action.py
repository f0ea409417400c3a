"""The GitHub Action's flow: inputs → the same engine as the CLI → outputs, summary and exit code.

``run_action(environ)`` is the action's one error boundary (``entrypoint.py`` only calls it). Order
matters for secrets: every secret value and every kubeconfig credential is masked before anything
else is printed. Then bodywork.yaml is validated (annotations point at the file as the repository
names it) and one small function per command does the rest. Every output is always written, empty
when it does not apply.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bodywork_action import config, report, summary
from bodywork_action.deadline import Deadline
from bodywork_action.errors import (
    EXIT_BUG,
    EXIT_INTERRUPTED,
    EXIT_INVALID_INPUT,
    EXIT_OK,
    BodyworkActionError,
    ConfigProblem,
    InputError,
    MissingSecrets,
    format_problems_text,
)
from bodywork_action.executor import Progress, ProgressKind
from bodywork_action.github.inputs import (
    ActionInputs,
    GitHubContext,
    read_action_inputs,
    read_github_context,
    read_input,
)
from bodywork_action.github.workflow import ActionLog, append_summary, format_command, write_outputs
from bodywork_action.model import DeployContext, Pipeline
from bodywork_action.overrides import apply_overrides
from bodywork_action.results import DeploymentResult
from bodywork_action.secret_groups import parse_secrets_input

if TYPE_CHECKING:  # pragma: no cover
    from bodywork_action.kube.client import KubeTarget
    from bodywork_action.selection import StageSelection

OUTPUT_NAMES = (
    "status",
    "namespace",
    "stages",
    "service-urls",
    "service-url",
    "mlflow-url",
    "summary",
    "changes",
)


@dataclass
class _Run:
    """What the step has learnt so far; the outputs are built from it whatever happens."""

    log: ActionLog
    github: GitHubContext
    outputs: dict[str, str] = field(default_factory=lambda: dict.fromkeys(OUTPUT_NAMES, ""))
    summary: str = ""


@dataclass(frozen=True)
class _Validated:
    """An action run past validation: what every command but ``validate`` starts from."""

    inputs: ActionInputs
    pipeline: Pipeline
    namespace: str
    kubeconfig_yaml: str  # "" → in-cluster configuration


def run_action(environ: Mapping[str, str], *, stdout: TextIO | None = None) -> int:
    github = read_github_context(environ)
    run = _Run(ActionLog(stdout or sys.stdout, debug=github.debug), github)
    try:
        code = _run(environ, run)
    except BodyworkActionError as exc:
        run.outputs["status"] = run.outputs["status"] or "error"
        text = exc.for_action() if isinstance(exc, MissingSecrets) else str(exc)
        message = run.log.redactor.redact(text)
        run.outputs["summary"] = " ".join(message.split())
        run.log.annotate("error", message, title="bodywork deploy")
        run.summary = run.summary or f"## Bodywork deploy: error\n\n{_markdown_quote(message)}\n"
        code = exc.exit_code
    except KeyboardInterrupt:
        run.outputs["status"] = "cancelled"
        code = EXIT_INTERRUPTED
    except Exception as exc:  # the boundary: a bug still ends in one line, with every output written
        run.outputs["status"] = "error"
        run.log.annotate(
            "error",
            f"internal error (a bug in bodywork-action): {type(exc).__name__}; "
            "re-run with debug logging for details and please report it",
            title="bodywork deploy",
        )
        if github.debug:
            import traceback

            run.log.debug("".join(traceback.format_exception(exc)))
        code = EXIT_BUG
    _finish(run)
    return code


def _finish(run: _Run) -> None:
    if run.github.output_path:
        write_outputs(run.github.output_path, run.outputs, redactor=run.log.redactor)
    if run.github.summary_path and run.summary:
        append_summary(run.github.summary_path, run.summary)


def _markdown_quote(text: str) -> str:
    return "\n".join(f"> {line}" for line in summary.escape_markdown(text).splitlines())


def _run(environ: Mapping[str, str], run: _Run) -> int:
    from bodywork_action.kube.kubeconfig import redact_client_logs

    # The kubernetes client logs (a failing credential plugin's stderr, say) through `logging`.
    redact_client_logs(lambda text: run.log.redactor.redact(text))
    kubeconfig_yaml = _mask_secrets(environ, run.log)  # first: no other input is even checked before
    inputs = read_action_inputs(environ)
    workspace = Path(run.github.workspace or ".")
    pipeline = _validate(inputs, workspace, run)
    if pipeline is None:
        return EXIT_INVALID_INPUT
    # The inputs image and resources, as planned, deployed and shown in the summary.
    pipeline = apply_overrides(pipeline, image=inputs.image, resources=inputs.resources)
    namespace = inputs.namespace or pipeline.target_namespace
    run.outputs["namespace"] = namespace
    validated = _Validated(inputs, pipeline, namespace, kubeconfig_yaml)
    if inputs.command == "validate":
        run.outputs["status"] = "valid"
        run.outputs["summary"] = f"{inputs.config} is valid"
        return EXIT_OK
    if inputs.command == "plan":
        return _plan(validated, run)
    if inputs.command == "delete":
        return _delete(validated, environ, run)
    if inputs.command == "diff":
        return _diff(validated, environ, run)
    return _deploy(validated, environ, run, dry_run=inputs.command == "dry-run")


def _mask_secrets(environ: Mapping[str, str], log: ActionLog) -> str:
    """Mask every secret value and kubeconfig credential before any other line; the kubeconfig's YAML.

    Reads only the ``secrets`` and ``kubeconfig`` inputs: an error in any other input may quote it,
    and by then every value that could be quoted is masked.
    """
    from bodywork_action.kube.kubeconfig import (
        find_kubeconfig_credentials,
        parse_kubeconfig_input,
        read_kubeconfig_files,
    )

    for request in parse_secrets_input(read_input(environ, "secrets")):
        for key in request.keys:
            if environ.get(key):
                log.mask(environ[key])
    kubeconfig_text = read_input(environ, "kubeconfig")
    if not kubeconfig_text:
        # No input: the client reads KUBECONFIG (as get-gke-credentials leaves it); mask that one.
        for text in read_kubeconfig_files(_visible_kubeconfig_paths(environ)).values():
            for credential in find_kubeconfig_credentials(text):
                log.mask(credential)
        return ""
    kubeconfig_yaml = parse_kubeconfig_input(kubeconfig_text)
    for credential in find_kubeconfig_credentials(kubeconfig_yaml):
        log.mask(credential)
    return kubeconfig_yaml


def _validate(inputs: ActionInputs, workspace: Path, run: _Run) -> Pipeline | None:
    """Validate bodywork.yaml; annotations and messages name it as the repository does."""
    log = run.log
    config_path = config.resolve_inside(workspace, inputs.config)  # never a file outside the workspace
    outcome = config.read_config(config_path, strict=inputs.strict, check_files=True)
    problems = [_relative(p, workspace) for p in outcome.problems]
    if problems:
        log.annotate_problems(problems)
    if outcome.pipeline is None:
        log.info(format_problems_text(inputs.config, problems))
        run.outputs["status"] = "invalid"
        run.outputs["summary"] = summary.render_one_line_invalid_config(problems, config_path=inputs.config)
        run.summary = summary.render_invalid_config_summary(
            problems, config_path=inputs.config, redactor=log.redactor
        )
        return None
    if inputs.command == "validate":
        log.info(format_problems_text(inputs.config, problems))
    return outcome.pipeline


def _plan(validated: _Validated, run: _Run) -> int:
    from bodywork_action import render
    from bodywork_action.plan import render_plan

    pipeline, namespace = validated.pipeline, validated.namespace
    selection = _selection(validated)
    plan = render_plan(
        pipeline,
        _deploy_context(validated, run.github),
        config_dir=_config_dir(validated.inputs.config),
        selection=selection,
    )
    with run.log.group(f"plan of {pipeline.name}"):
        run.log.info(report.format_plan(pipeline, namespace=namespace, selection=selection))
        run.log.info(render.format_manifests_yaml(plan.selected_objects()))
    run.outputs["status"] = "planned"
    partial = f", partial run ({selection.description})" if selection.partial else ""
    run.outputs["summary"] = (
        f"{pipeline.name}: plan of {len(pipeline.dag_stages)} stages in {namespace}{partial}"
    )
    return EXIT_OK


def _selection(validated: _Validated) -> StageSelection:
    """Inputs stages / from-step, checked against the pipeline: the stages a partial run touches."""
    from bodywork_action.selection import ACTION_NAMES, select_stages

    inputs = validated.inputs
    return select_stages(
        validated.pipeline, only=inputs.stages, from_step=inputs.from_step, names=ACTION_NAMES
    )


def _diff(validated: _Validated, environ: Mapping[str, str], run: _Run) -> int:
    """What a deploy would change, into the log and the job summary (for a pull request's reviewers);
    exit 0 either way: a diff with changes is not a failure."""
    from bodywork_action import diffing, secret_groups
    from bodywork_action.kube.diff import diff_pipeline

    inputs, pipeline, log = validated.inputs, validated.pipeline, run.log
    supply = secret_groups.build_secret_supply(
        inputs.secrets, [environ], group=inputs.secrets_group, surface=secret_groups.Surface.ACTION
    )
    selection = _selection(validated)  # stages / from-step: what a partial deploy would change
    with _kube_target(validated, environ) as target:
        diff = diff_pipeline(
            pipeline,
            _deploy_context(validated, run.github),
            target=target,
            secrets=supply,
            config_dir=_config_dir(inputs.config),
            environ=environ,
            timeout_seconds=inputs.timeout_minutes * 60,
            selection=selection,
        )
    with log.group(f"diff of {pipeline.name}: {diff.changes} change(s)"), log.untrusted_text():
        log.info(diffing.format_diff_text(diff))  # the YAML holds the user's args: no workflow commands
    if diff.changes:
        run.outputs["status"] = "changed"
    else:
        run.outputs["status"] = "unchanged"
    run.outputs["changes"] = str(diff.changes)
    run.outputs["summary"] = diff.one_line()
    run.summary = diffing.render_diff_summary(diff)
    return EXIT_OK


def _delete(validated: _Validated, environ: Mapping[str, str], run: _Run) -> int:
    from bodywork_action.kube.inventory import delete_pipeline

    pipeline, namespace = validated.pipeline, validated.namespace
    with _kube_target(validated, environ) as target:
        deleted = delete_pipeline(
            pipeline,
            target=target,
            namespace=namespace,
            environ=environ,
            lock_timeout_seconds=validated.inputs.lock_timeout_seconds,
            run_url=run.github.run_url,
            report=run.log.info,
            timeout_seconds=validated.inputs.timeout_minutes * 60,
        )
    lines = report.format_delete_lines(deleted)
    for line in lines:
        run.log.info(line)
    run.outputs["status"] = "deleted"
    run.outputs["summary"] = f"{pipeline.name}: deleted {len(deleted.deleted)} objects in {namespace}"
    run.summary = f"## Bodywork delete: {pipeline.name}\n\n" + "\n".join(f"- {line}" for line in lines) + "\n"
    return EXIT_OK


def _deploy(validated: _Validated, environ: Mapping[str, str], run: _Run, *, dry_run: bool) -> int:
    from bodywork_action import options, secret_groups
    from bodywork_action.kube.deploy import deploy_pipeline

    inputs, pipeline, log = validated.inputs, validated.pipeline, run.log
    context = _deploy_context(validated, run.github)
    supply = secret_groups.build_secret_supply(
        inputs.secrets, [environ], group=inputs.secrets_group, surface=secret_groups.Surface.ACTION
    )
    smoke_tests = options.parse_smoke_tests(inputs.smoke_test, pipeline)
    selection = _selection(validated)
    mlflow_stage, why = options.choose_mlflow_stage(pipeline, inputs.mlflow_stage)
    if why:
        log.info(f"mlflow-url: {f'stage {mlflow_stage}, ' if mlflow_stage else 'not set: '}{why}")
    # timeout-minutes: past it the executor stops waiting, as on Ctrl+C, and reports what ran; the
    # runner cancelling the job (SIGINT, then SIGTERM to the container) stops it the same way.
    cancel = threading.Event()
    deadline = Deadline(inputs.timeout_minutes * 60, f"timeout-minutes ({inputs.timeout_minutes})")
    with (
        deadline.running(cancel.set),
        _kube_target(validated, environ) as target,
        _stop_on_signals(cancel, log),
    ):
        result = deploy_pipeline(
            pipeline,
            context,
            target=target,
            secrets=supply,
            dry_run=dry_run,
            selection=selection,
            smoke_tests=smoke_tests,
            report=_progress_reporter(log, environ),
            cancel=cancel,
            config_dir=_config_dir(inputs.config),
            environ=environ,
            timeout_seconds=inputs.timeout_minutes * 60,
            lock_timeout_seconds=inputs.lock_timeout_seconds,
            atomic=inputs.atomic,
        )
    result = deadline.apply(result)
    _set_result_outputs(run, result, mlflow_stage=mlflow_stage)
    run.summary = summary.render_summary(
        result,
        redactor=log.redactor,
        links=summary.SummaryLinks(
            repository=run.github.repository,
            repository_url=run.github.repository_url,
            commit_url=run.github.commit_url,
            run_url=run.github.run_url,
        ),
        pipeline=pipeline,
    )
    _log_result(result, log)
    return result.exit_code


@contextlib.contextmanager
def _stop_on_signals(cancel: threading.Event, log: ActionLog) -> Iterator[None]:
    """SIGINT and SIGTERM (a cancelled job) set ``cancel``: running Jobs are deleted, the result and
    every output are still written, and the pipeline's lock is freed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, _frame: object) -> None:
        log.info(f"received {signal.Signals(signum).name}: stopping the wait, leaving the cluster consistent")
        cancel.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _log_result(result: DeploymentResult, log: ActionLog) -> None:
    outcome, *notes = report.format_result_lines(result)
    if result.succeeded:
        log.info(outcome)
    else:  # the annotation is itself a log line: the outcome is printed once
        what = "dry run" if result.dry_run else "deploy"
        log.annotate("error", outcome, title=f"bodywork {what} {result.status.value}")
    for note in notes:
        log.info(note)
    details = report.format_failure_details(result)
    if details:
        with log.group("why it failed"), log.untrusted_text():
            log.info(details)


@contextlib.contextmanager
def _kube_target(validated: _Validated, environ: Mapping[str, str]) -> Iterator[KubeTarget]:
    """The cluster to talk to: the kubeconfig input in a private file for the block's duration, or
    (no kubeconfig input) KUBECONFIG, ~/.kube/config or the in-cluster configuration, as kubectl.

    Before anything connects: a credential plugin that cannot run here is an error saying what works
    instead, and no secret value or kubeconfig is left in the environment a plugin would inherit."""
    from bodywork_action.kube.client import KubeTarget
    from bodywork_action.kube.kubeconfig import (
        check_kubeconfigs,
        keep_from_plugins,
        read_kubeconfig_files,
        write_private_kubeconfig,
    )

    visible = "" if validated.kubeconfig_yaml else _visible_kubeconfig_paths(environ)
    files = (
        {"from the kubeconfig input": validated.kubeconfig_yaml}
        if validated.kubeconfig_yaml
        else read_kubeconfig_files(visible)
    )
    check_kubeconfigs(files, context=validated.inputs.context)
    secret_keys = [key for request in validated.inputs.secrets for key in request.keys]
    keep_from_plugins([*secret_keys, "INPUT_KUBECONFIG"])
    if not validated.kubeconfig_yaml:
        yield KubeTarget(kubeconfig=visible, context=validated.inputs.context)
        return
    with write_private_kubeconfig(validated.kubeconfig_yaml, environ) as path:
        yield KubeTarget(kubeconfig=str(path), context=validated.inputs.context)


def _visible_kubeconfig_paths(environ: Mapping[str, str]) -> str:
    """KUBECONFIG as this process can read it. In a container action the runner passes the host's
    path, but mounts the host's workspace at GITHUB_WORKSPACE: a kubeconfig an earlier step wrote
    into the workspace (google-github-actions/get-gke-credentials does) is found there by name."""
    listed = [part for part in environ.get("KUBECONFIG", "").split(os.pathsep) if part]
    if not listed:
        return ""
    workspace = environ.get("GITHUB_WORKSPACE", "")
    visible = []
    for part in listed:
        if Path(part).is_file():
            visible.append(part)
        elif workspace and (Path(workspace) / Path(part).name).is_file():
            visible.append(str(Path(workspace) / Path(part).name))
    if not visible:
        raise InputError(
            f"KUBECONFIG names {', '.join(listed)}, which this step cannot see (a container action sees "
            "only the workspace); write the kubeconfig into the workspace, or pass it as the kubeconfig input"
        )
    return os.pathsep.join(visible)


def _relative(problem: ConfigProblem, workspace: Path) -> ConfigProblem:
    try:
        return replace(problem, file=Path(problem.file).resolve().relative_to(workspace.resolve()).as_posix())
    except ValueError:
        return problem


def _config_dir(config_input: str) -> str:
    parent = Path(config_input).parent.as_posix()
    return "" if parent in (".", "") else parent


def _deploy_context(validated: _Validated, github: GitHubContext) -> DeployContext:
    from bodywork_action.context import build_deploy_context, build_deployment_id

    inputs = validated.inputs
    repository_url = inputs.repository_url or github.repository_url
    commit = inputs.commit or github.sha
    if not repository_url:
        raise InputError("input 'repository-url' is empty and GITHUB_REPOSITORY is not set")
    if not commit:
        raise InputError("input 'commit' is empty and GITHUB_SHA is not set")
    return build_deploy_context(
        repository_url=repository_url,
        commit=commit,
        ref=github.ref,
        run_url=github.run_url,
        actor=github.actor,
        deployment_id=build_deployment_id(
            run_id=github.run_id or "local",
            run_attempt=github.run_attempt,
            entropy=secrets.token_hex(3),
            now_seconds=time.time(),
        ),
        namespace=validated.namespace,
        ingress_class=inputs.ingress_class,
        git_credentials_secret=inputs.git_credentials_secret,
        image=inputs.image,
        image_pull_secrets=inputs.image_pull_secrets,
        resource_overrides=inputs.resources,
    )


def _progress_reporter(log: ActionLog, environ: Mapping[str, str]) -> Callable[[Progress], None]:
    from bodywork_action.progress_view import ProgressView, use_colour

    lock = threading.Lock()
    # A log, not a terminal: one timestamped line per change (colour only with FORCE_COLOR).
    view = ProgressView(colour=use_colour(environ, isatty=False))

    def on_progress(progress: Progress) -> None:
        if progress.kind is ProgressKind.DEBUG:
            log.debug(progress.detail)  # written only with RUNNER_DEBUG / ACTIONS_STEP_DEBUG
            return
        line = view.format_line(progress)
        with lock:
            # One foldable group per DAG step: started and finished are separate executor events.
            if progress.kind is ProgressKind.STEP_STARTED:
                log.info(format_command("group", line or ""))
            elif progress.kind is ProgressKind.WARNING:  # on the run's page too, not only in the log
                log.annotate("warning", progress.detail.removeprefix("warning: "), title="bodywork deploy")
            elif line:
                log.info(line)
            if progress.kind is ProgressKind.STEP_FINISHED:
                log.info(format_command("endgroup"))

    return on_progress


def _set_result_outputs(run: _Run, result: DeploymentResult, *, mlflow_stage: str) -> None:
    urls = result.service_urls
    run.outputs.update(
        {
            "status": result.status.value,
            "namespace": result.namespace,
            "stages": json.dumps([stage.to_json() for stage in result.stages], separators=(",", ":")),
            "service-urls": json.dumps(urls, separators=(",", ":")),
            "service-url": next(iter(urls.values()), ""),
            "mlflow-url": urls.get(mlflow_stage, "") if mlflow_stage else "",
            "summary": summary.render_one_line_summary(result, redactor=run.log.redactor),
        }
    )
