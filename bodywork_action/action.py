"""The GitHub Action's flow: inputs → the same commands as the CLI → outputs, summary and exit code.

``run_action(environ)`` is the action's one error boundary (``entrypoint.py`` only calls it). Order
matters for secrets: every secret value and every kubeconfig credential is masked before anything
else is printed. Every output is always written, empty when it does not apply.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bodywork_action import config, report, secret_groups, summary
from bodywork_action.errors import (
    EXIT_INTERRUPTED,
    EXIT_INVALID_INPUT,
    EXIT_OK,
    BodyworkActionError,
    ConfigProblem,
    InputError,
)
from bodywork_action.executor import Progress, ProgressKind
from bodywork_action.github import workflow as gha
from bodywork_action.model import DEFAULT_GIT_SYNC_IMAGE, DeployContext, Pipeline, StageKind
from bodywork_action.results import DeploymentResult

COMMANDS = ("deploy", "validate", "plan", "dry-run", "delete")
OUTPUT_NAMES = ("status", "namespace", "stages", "service-urls", "service-url", "mlflow-url", "summary")


@dataclass
class _Run:
    """What the step has learnt so far; the outputs are built from it whatever happens."""

    log: gha.ActionLog
    github: gha.GitHubContext
    outputs: dict[str, str] = field(default_factory=lambda: dict.fromkeys(OUTPUT_NAMES, ""))
    summary: str = ""


def run_action(environ: Mapping[str, str], *, stdout: TextIO | None = None) -> int:
    github = gha.read_github_context(environ)
    run = _Run(gha.ActionLog(stdout or sys.stdout, debug=github.debug), github)
    try:
        code = _run(environ, run)
    except BodyworkActionError as exc:
        run.outputs["status"] = run.outputs["status"] or "error"
        message = run.log.redactor.redact(str(exc))
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
        code = 3
    _finish(run)
    return code


def _finish(run: _Run) -> None:
    if run.github.output_path:
        gha.write_outputs(run.github.output_path, run.outputs, redactor=run.log.redactor)
    if run.github.summary_path and run.summary:
        gha.append_summary(run.github.summary_path, run.summary)


def _markdown_quote(text: str) -> str:
    return "\n".join(f"> {line}" for line in summary.escape_markdown(text).splitlines())


def _run(environ: Mapping[str, str], run: _Run) -> int:
    log, github = run.log, run.github

    # 1. Mask first: secret values and kubeconfig credentials, before any other line.
    spec = gha.parse_secrets_input(gha.read_input(environ, "secrets"))
    requests = [secret_groups.SecretRequest(name, keys) for name, keys in spec.secrets.items()]
    for key in spec.env_vars:
        if environ.get(key):
            log.mask(environ[key])
    kubeconfig_yaml = ""
    kubeconfig_input = gha.read_input(environ, "kubeconfig")
    if kubeconfig_input:
        kubeconfig_yaml = gha.parse_kubeconfig_input(kubeconfig_input)
        for credential in gha.find_kubeconfig_credentials(kubeconfig_yaml):
            log.mask(credential)

    command = gha.read_choice_input(environ, "command", COMMANDS, default="deploy")
    strict = gha.read_bool_input(environ, "strict", default=False)
    workspace = Path(github.workspace or ".")
    config_input = gha.read_input(environ, "config", default="bodywork.yaml")
    config_path = workspace / config_input

    # 2. Validate: annotations point at the file as the repository names it.
    outcome = config.read_config(config_path, strict=strict, check_files=True)
    problems = [_relative(p, workspace) for p in outcome.problems]
    if outcome.pipeline is None:
        log.annotate_problems(problems)
        log.info(report.format_problems_text(config_input, problems))
        run.outputs["status"] = "invalid"
        run.outputs["summary"] = summary.render_one_line_invalid_config(problems, config_path=config_input)
        run.summary = summary.render_invalid_config_summary(
            problems, config_path=config_input, redactor=log.redactor
        )
        return EXIT_INVALID_INPUT
    if problems:
        log.annotate_problems(problems)
    pipeline = outcome.pipeline
    namespace = gha.read_input(environ, "namespace") or pipeline.target_namespace
    run.outputs["namespace"] = namespace
    if command == "validate":
        run.outputs["status"] = "valid"
        run.outputs["summary"] = f"{config_input} is valid"
        log.info(report.format_problems_text(config_input, problems))
        return EXIT_OK

    context = _deploy_context(environ, github, namespace=namespace)
    if command == "plan":
        from bodywork_action import render

        with log.group(f"plan of {pipeline.name}"):
            log.info(report.format_plan(pipeline, namespace=namespace))
            log.info(
                render.format_manifests_yaml(
                    render.render_objects(pipeline, context, config_dir=_config_dir(config_input))
                )
            )
        run.outputs["status"] = "planned"
        run.outputs["summary"] = f"{pipeline.name}: plan of {len(pipeline.dag_stages)} stages in {namespace}"
        return EXIT_OK

    from bodywork_action.kube import deploy
    from bodywork_action.kube.client import KubeTarget

    private_kubeconfig = (
        gha.write_private_kubeconfig(kubeconfig_yaml, environ)
        if kubeconfig_yaml
        else contextlib.nullcontext()
    )  # no kubeconfig input: in-cluster configuration
    with private_kubeconfig as path:
        target = KubeTarget(kubeconfig=str(path) if path else "", context=gha.read_input(environ, "context"))
        if command == "delete":
            deleted = deploy.delete_pipeline(pipeline, target=target, namespace=namespace, environ=environ)
            lines = [f"deleted {name}" for name in deleted.deleted]
            if deleted.namespace_deleted:
                lines.append(f"deleted namespace {deleted.namespace}")
            if deleted.message:
                lines.append(deleted.message)
            for line in lines:
                log.info(line)
            run.outputs["status"] = "deleted"
            run.outputs["summary"] = f"{pipeline.name}: deleted {len(deleted.deleted)} objects in {namespace}"
            run.summary = (
                f"## Bodywork delete: {pipeline.name}\n\n" + "\n".join(f"- {line}" for line in lines) + "\n"
            )
            return EXIT_OK

        supply = secret_groups.build_secret_supply(
            requests, environ, group=gha.read_input(environ, "secrets-group") or pipeline.secrets_group
        )
        from bodywork_action import options

        smoke_tests = options.parse_smoke_tests(gha.read_multiline_input(environ, "smoke-test"), pipeline)
        mlflow_stage = _mlflow_stage(pipeline, gha.read_input(environ, "mlflow-stage"))
        # timeout-minutes: past it the executor stops waiting, as on Ctrl+C, and reports what ran.
        cancel = threading.Event()
        timeout_minutes = gha.read_int_input(environ, "timeout-minutes", default=60, minimum=1)
        deadline = threading.Timer(timeout_minutes * 60, cancel.set)
        deadline.daemon = True
        deadline.start()
        try:
            result = deploy.deploy_pipeline(
                pipeline,
                context,
                target=target,
                secrets=supply,
                dry_run=command == "dry-run",
                smoke_tests=smoke_tests,
                report=_progress_reporter(log),
                cancel=cancel,
                config_dir=_config_dir(config_input),
                environ=environ,
            )
        finally:
            deadline.cancel()
    _set_result_outputs(run, result, mlflow_stage=mlflow_stage)
    run.summary = summary.render_summary(
        result,
        redactor=log.redactor,
        links=summary.SummaryLinks(
            repository=github.repository,
            repository_url=github.repository_url,
            commit_url=github.commit_url,
            run_url=github.run_url,
        ),
        pipeline=pipeline,
    )
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
    return result.exit_code


def _relative(problem: ConfigProblem, workspace: Path) -> ConfigProblem:
    from dataclasses import replace

    try:
        return replace(problem, file=Path(problem.file).resolve().relative_to(workspace.resolve()).as_posix())
    except ValueError:
        return problem


def _config_dir(config_input: str) -> str:
    parent = Path(config_input).parent.as_posix()
    return "" if parent in (".", "") else parent


def _deploy_context(
    environ: Mapping[str, str], github: gha.GitHubContext, *, namespace: str
) -> DeployContext:
    repository_url = gha.read_input(environ, "repository-url") or github.repository_url
    commit = gha.read_input(environ, "commit") or github.sha
    if not repository_url:
        raise InputError("input 'repository-url' is empty and GITHUB_REPOSITORY is not set")
    if not commit:
        raise InputError("input 'commit' is empty and GITHUB_SHA is not set")
    run_id = github.run_id or "local"
    return DeployContext(
        repository_url=repository_url,
        commit=commit,
        ref=github.ref,
        run_url=github.run_url,
        actor=github.actor,
        deployment_id=f"{run_id}-{github.run_attempt or '1'}",
        namespace=namespace,
        ingress_class=gha.read_input(environ, "ingress-class"),
        git_sync_image=DEFAULT_GIT_SYNC_IMAGE,
        git_credentials_secret=gha.read_input(environ, "git-credentials-secret"),
        restart_token=f"{run_id}-{github.run_attempt or '1'}",
    )


def _mlflow_stage(pipeline: Pipeline, requested: str) -> str:
    services = [s for s in pipeline.dag_stages if s.kind is StageKind.SERVICE]
    if requested:
        if requested not in {s.name for s in services}:
            raise InputError(f"input 'mlflow-stage': {requested!r} is not a service stage of the DAG")
        return requested
    for stage in services:
        if any(req.lower().replace("_", "-").startswith("mlflow") for req in stage.requirements):
            return stage.name
    return ""


def _progress_reporter(log: gha.ActionLog) -> Callable[[Progress], None]:
    lock = threading.Lock()

    def on_progress(progress: Progress) -> None:
        line = report.format_progress(progress)
        with lock:
            # One foldable group per DAG step: started and finished are separate executor events.
            if progress.kind is ProgressKind.STEP_STARTED:
                log.info(gha.format_command("group", line or ""))
            elif line:
                log.info(line)
            if progress.kind is ProgressKind.STEP_FINISHED:
                log.info(gha.format_command("endgroup"))

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
