"""The ``bodywork-action`` command line: argument parsing, dispatch, and the one error boundary.

``main(argv) -> int`` never raises: known errors print one line and return their exit code (0 ok,
1 a deployment failed, 2 invalid input); anything else is reported as a bug with exit code 3 (the
traceback only with ``--debug``). Command modules are imported when their command runs, so ``--help``
stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from bodywork_action import __version__
from bodywork_action.errors import (
    EXIT_BUG,
    EXIT_INTERRUPTED,
    EXIT_INVALID_INPUT,
    EXIT_OK,
    BodyworkActionError,
    ConfigInvalid,
    ConfigProblem,
    InputError,
    format_problems_text,
)

if TYPE_CHECKING:  # pragma: no cover
    from bodywork_action.deadline import Deadline
    from bodywork_action.kube.client import KubeTarget
    from bodywork_action.model import DeployContext, Pipeline
    from bodywork_action.results import DeploymentResult
    from bodywork_action.selection import StageSelection


Command = Callable[[argparse.Namespace, "Streams"], int]


class Streams:
    """Where a command writes; tests pass StringIO objects and an environ mapping.

    With ``--format json`` the command's lines go to stderr (``out`` is stderr too) and ``emit`` writes
    the one JSON document to ``document``, the real stdout, so ``| jq`` reads nothing else."""

    def __init__(
        self, out: TextIO, err: TextIO, environ: Mapping[str, str], *, document: TextIO | None = None
    ) -> None:
        self.out = out
        self.err = err
        self.environ = environ
        self.document = document or out

    def emit(self, document: Mapping[str, object]) -> None:
        from bodywork_action.result_document import format_document

        print(format_document(document), file=self.document, flush=True)

    def print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def error(self, text: str) -> None:
        print(text, file=self.err, flush=True)


# --- commands ---------------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace, io: Streams) -> int:
    from bodywork_action import config

    outcome = config.read_config(Path(args.file), strict=args.strict, check_files=args.check_files)
    if args.format == "github":
        from bodywork_action.github.workflow import format_left_out, format_problem_annotations

        lines, left_out = format_problem_annotations(outcome.problems)
        io.print("\n".join([*lines, *([format_left_out(left_out)] if left_out else [])]))
        io.print(format_problems_text(outcome.file, outcome.problems).splitlines()[-1])
    elif args.format == "json":
        from bodywork_action.result_document import validate_document

        io.emit(validate_document(outcome.file, outcome.problems, pipeline=outcome.pipeline))
    else:
        io.print(format_problems_text(outcome.file, outcome.problems))
    return EXIT_OK if outcome.pipeline is not None else EXIT_INVALID_INPUT


def cmd_plan(args: argparse.Namespace, io: Streams) -> int:
    from bodywork_action import config, render, report
    from bodywork_action.plan import render_plan

    pipeline = _with_overrides(
        args, config.load_pipeline(Path(args.file), strict=args.strict, check_files=args.check_files)
    )
    selection = _selection(args, pipeline)
    if args.format == "json":
        from bodywork_action.result_document import plan_document

        io.emit(plan_document(pipeline, namespace=args.namespace or "", selection=selection))
        return EXIT_OK
    if args.output == "table":
        io.print(report.format_plan(pipeline, namespace=args.namespace or "", selection=selection))
        return EXIT_OK
    plan = render_plan(
        pipeline, _deploy_context(args, io.environ), config_dir=_config_dir(args), selection=selection
    )
    io.print(render.format_manifests_yaml(plan.selected_objects()))
    return EXIT_OK


def _print_result(result: DeploymentResult, io: Streams) -> None:
    from bodywork_action import report

    io.print()
    io.print(report.format_result_table(result))
    details = report.format_failure_details(result)
    if details:
        io.print()
        io.print(details)


def _report_result(
    args: argparse.Namespace, io: Streams, result: DeploymentResult, deadline: Deadline
) -> int:
    """The result table (and why stages failed), then with --format json the document; the exit code."""
    _print_result(result, io)
    if args.format == "json":
        from bodywork_action.result_document import deployment_document

        io.emit(deployment_document(args.command, result, timed_out=deadline.timed_out.is_set()))
    return result.exit_code


def _deadline(args: argparse.Namespace) -> Deadline:
    from bodywork_action.deadline import Deadline
    from bodywork_action.options import describe_duration

    timeout: float | None = args.timeout
    return Deadline(timeout, f"--timeout {describe_duration(timeout)}" if timeout else "")


def _kube_target(args: argparse.Namespace, io: Streams, *, secret_keys: Sequence[str] = ()) -> KubeTarget:
    """The cluster, checked before anything connects: a credential plugin that cannot run here is an
    error saying what works instead; secret values are kept from any plugin that does run."""
    from bodywork_action.kube.client import KubeTarget, resolve_kubeconfig_source
    from bodywork_action.kube.kubeconfig import (
        check_kubeconfigs,
        keep_from_plugins,
        read_kubeconfig_files,
        redact_client_logs,
    )
    from bodywork_action.redact import Redactor

    target = KubeTarget(kubeconfig=args.kubeconfig or "", context=args.context or "")
    source = resolve_kubeconfig_source(target, io.environ, home=io.environ.get("HOME", str(Path.home())))
    check_kubeconfigs(read_kubeconfig_files(source), context=target.context)
    values = [io.environ[key] for key in secret_keys if io.environ.get(key)]
    redact_client_logs(Redactor(values).redact)
    if io.environ is os.environ:
        keep_from_plugins(list(secret_keys))
    return target


def _deploy_context(args: argparse.Namespace, environ: Mapping[str, str]) -> DeployContext:
    """Flags first, then GitHub's variables (the CLI inside a workflow), then the git checkout."""
    import secrets
    import time

    from bodywork_action.context import build_deploy_context, build_deployment_id
    from bodywork_action.github.inputs import read_github_context
    from bodywork_action.local import git

    github = read_github_context(environ)
    cwd = Path(args.file).resolve().parent
    repository_url = args.repo or github.repository_url or git.read_remote_url(cwd)
    commit = args.commit or github.sha or git.read_head_commit(cwd)
    if not repository_url:
        raise InputError("cannot tell which repository the stages should fetch: pass --repo URL")
    if not commit:
        raise InputError("cannot tell which commit to deploy: pass --commit SHA")
    # The checkout's branch describes its own commit only: not one named with --repo/--commit.
    explicit = bool(args.repo or args.commit)
    ref = args.ref or (github.ref if github.sha else "") or ("" if explicit else git.read_head_ref(cwd))
    return build_deploy_context(
        repository_url=repository_url,
        commit=commit,
        ref=ref,
        run_url=github.run_url,
        actor=github.actor,
        deployment_id=build_deployment_id(
            run_id=github.run_id,
            run_attempt=github.run_attempt,
            entropy=secrets.token_hex(3),
            now_seconds=time.time(),
        ),
        namespace=args.namespace or "",
        ingress_class=args.ingress_class,
        git_credentials_secret=args.git_credentials_secret,
        **_override_fields(args),
    )


def _override_fields(args: argparse.Namespace) -> dict[str, Any]:
    """--image, --image-pull-secret and --resource, checked: the DeployContext's override fields."""
    from bodywork_action import overrides

    return {
        "image": overrides.check_image(args.image or "", source="--image"),
        "image_pull_secrets": overrides.parse_image_pull_secrets(
            args.image_pull_secret or [], source="--image-pull-secret"
        ),
        "resource_overrides": tuple(
            overrides.parse_resource_override(text, source="--resource") for text in args.resource or []
        ),
    }


def _with_overrides(args: argparse.Namespace, pipeline: Pipeline) -> Pipeline:
    """The pipeline as --image and --resource change it (shown by plan and deploy as deployed)."""
    from bodywork_action import overrides

    fields = _override_fields(args)
    return overrides.apply_overrides(pipeline, image=fields["image"], resources=fields["resource_overrides"])


def _selection(args: argparse.Namespace, pipeline: Pipeline) -> StageSelection:
    """--only / --from-step, checked against the pipeline: the stages a partial run touches."""
    from bodywork_action.selection import parse_only, select_stages

    only = None if args.only is None else parse_only(args.only)
    return select_stages(pipeline, only=only, from_step=args.from_step)


def _config_dir(args: argparse.Namespace) -> str:
    from bodywork_action.local import git

    return git.read_config_dir(Path(args.file))


def cmd_deploy(args: argparse.Namespace, io: Streams) -> int:
    import signal
    import threading

    from bodywork_action import config, options, secret_groups
    from bodywork_action.kube.deploy import deploy_pipeline
    from bodywork_action.progress_view import ProgressView

    pipeline = _with_overrides(
        args, config.load_pipeline(Path(args.file), strict=args.strict, check_files=args.check_files)
    )
    context = _deploy_context(args, io.environ)
    supply = secret_groups.build_secret_supply(
        secret_groups.parse_secret_options(args.secret or []),
        [io.environ],
        group=args.secrets_group or "",
        surface=secret_groups.Surface.CLI,
    )
    smoke_tests = options.parse_smoke_tests(args.smoke_test or [], pipeline)
    selection = _selection(args, pipeline)
    cancel = threading.Event()
    deadline = _deadline(args)  # past --timeout the wait stops as on Ctrl+C; the result then fails

    def on_signal(signum: int, _frame: object) -> None:
        io.error(f"received {signal.Signals(signum).name}: stopping the wait, leaving the cluster consistent")
        cancel.set()

    # A live view on a terminal, one timestamped line per change in a pipe or CI log (progress_view).
    view = ProgressView.for_stream(io.out, io.environ, debug=args.debug).start()
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        io.print(
            f"deploying {pipeline.name} at {context.short_commit} ({'dry run' if args.dry_run else 'live'})"
        )
        with deadline.running(cancel.set):
            result = deploy_pipeline(
                pipeline,
                context,
                target=_kube_target(args, io, secret_keys=sorted(supply.supplied_keys)),
                secrets=supply,
                dry_run=args.dry_run,
                selection=selection,
                smoke_tests=smoke_tests,
                report=view.show,
                cancel=cancel,
                config_dir=_config_dir(args),
                environ=io.environ,
                timeout_seconds=args.timeout,
                lock_timeout_seconds=args.lock_timeout,
                atomic=args.atomic,
            )
    finally:
        view.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return _report_result(args, io, deadline.apply(result), deadline)


def cmd_diff(args: argparse.Namespace, io: Streams) -> int:
    """What a deploy would change, object by object; exit 1 with --exit-code when something would."""
    from bodywork_action import config, diffing, secret_groups
    from bodywork_action.errors import EXIT_DEPLOYMENT_FAILED
    from bodywork_action.kube.diff import diff_pipeline

    pipeline = config.load_pipeline(Path(args.file), strict=args.strict, check_files=args.check_files)
    supply = secret_groups.build_secret_supply(
        secret_groups.parse_secret_options(args.secret or []),
        [io.environ],
        group=args.secrets_group or "",
        surface=secret_groups.Surface.CLI,
    )
    selection = _selection(args, pipeline)  # a bad --only is exit 2 before anything connects
    diff = diff_pipeline(
        pipeline,
        _deploy_context(args, io.environ),
        target=_kube_target(args, io, secret_keys=sorted(supply.supplied_keys)),
        secrets=supply,
        config_dir=_config_dir(args),
        environ=io.environ,
        selection=selection,
    )
    code = EXIT_DEPLOYMENT_FAILED if args.exit_code and diff.changes else EXIT_OK
    if args.format == "json":
        from bodywork_action.result_document import diff_document

        io.emit(diff_document(diff, exit_code=code))
    else:
        io.print(diffing.format_diff_text(diff))
    return code


def cmd_status(args: argparse.Namespace, io: Streams) -> int:
    from bodywork_action import config, report
    from bodywork_action.kube.inventory import read_status
    from bodywork_action.result_document import status_document

    pipeline = config.load_pipeline(Path(args.file))
    state = read_status(
        pipeline, target=_kube_target(args, io), namespace=args.namespace or "", environ=io.environ
    )
    if args.format == "json":
        io.emit(status_document(state))
    else:
        io.print(report.format_pipeline_state(state))
    return EXIT_OK


def cmd_logs(args: argparse.Namespace, io: Streams) -> int:
    from bodywork_action import config
    from bodywork_action.kube.logs import LogOptions, show_logs
    from bodywork_action.stage_logs import parse_since, select_stages

    pipeline = config.load_pipeline(Path(args.file))
    options = LogOptions(
        stage=select_stages(pipeline, args.stage)[0].name if args.stage else "",  # unknown: exit 2 first
        container=args.container,
        follow=args.follow,
        previous=args.previous,
        since_seconds=parse_since(args.since) if args.since else None,
    )
    show_logs(
        pipeline,
        options,
        target=_kube_target(args, io),
        namespace=args.namespace or "",
        environ=io.environ,
        out=io.print,
        note=io.error,
    )
    return EXIT_OK


def cmd_delete(args: argparse.Namespace, io: Streams) -> int:
    from bodywork_action import config, report
    from bodywork_action.github.inputs import read_github_context
    from bodywork_action.kube.inventory import delete_pipeline

    pipeline = config.load_pipeline(Path(args.file))
    outcome = delete_pipeline(
        pipeline,
        target=_kube_target(args, io),
        namespace=args.namespace or "",
        dry_run=args.dry_run,
        environ=io.environ,
        lock_timeout_seconds=args.lock_timeout,
        run_url=read_github_context(io.environ).run_url,
        report=lambda line: io.print(f"== {line}"),
    )
    for line in report.format_delete_lines(outcome):
        io.print(line)
    if args.format == "json":
        from bodywork_action.result_document import delete_document

        io.emit(delete_document(outcome))
    return EXIT_OK


def cmd_run(args: argparse.Namespace, io: Streams) -> int:
    from bodywork_action import config, options, secret_groups
    from bodywork_action.local.runner import run_local

    if not args.local:
        raise InputError("`run` runs the pipeline on this machine: add --local (use `deploy` for a cluster)")
    config_file = Path(args.file)
    pipeline = config.load_pipeline(config_file, strict=args.strict)
    _selection(args, pipeline)  # a bad selection fails here, before any worktree or venv is made
    deadline = _deadline(args)  # until every stage finished or is serving; serving has no limit
    result = run_local(
        pipeline,
        config_file,
        secrets=secret_groups.parse_secret_options(args.secret or []),
        env_file=args.env_file,
        reuse_env=args.reuse_env,
        smoke_tests=options.parse_smoke_tests(args.smoke_test or [], pipeline),
        ports=options.parse_port_overrides(args.port or [], pipeline),
        detach=args.detach,
        commit=args.commit,
        select=lambda loaded: _selection(args, loaded),  # the pipeline of --commit, once checked out
        out=io.out,
        environ=io.environ,
        deadline=deadline,
    )
    return _report_result(args, io, result, deadline)


def cmd_stop(args: argparse.Namespace, io: Streams) -> int:
    from bodywork_action.local.runner import stop_local

    if not args.local:
        raise InputError("`stop` stops services of `run --local --detach`: add --local")
    return stop_local(Path(args.file).resolve().parent, out=io.out)


def cmd_migrate(args: argparse.Namespace, io: Streams) -> int:
    """Upgrade a Bodywork 2.x file: the diff on stdout (or the file rewritten with --write), then what
    still needs a person on stderr; exit 0 only when the result is a valid version 1.1 file."""
    import difflib

    from bodywork_action import config
    from bodywork_action.migrate import MigrationError, migrate_text
    from bodywork_action.model import SCHEMA_VERSION

    path = Path(args.file)
    shown = str(path)
    try:
        text = config.read_config_bytes(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"cannot migrate {shown}: not UTF-8 text (byte {exc.start})") from None
    try:
        migration = migrate_text(text)
    except MigrationError as exc:
        raise MigrationError(f"cannot migrate {shown}: {exc}") from None
    if not migration.changed:
        io.error(
            f'{shown} is already version "{SCHEMA_VERSION}": nothing to migrate (check it with `validate`)'
        )
        return EXIT_OK
    if args.write:
        _replace_file(path, migration.text.encode("utf-8"))
        io.error(f'{shown}: version "{migration.from_version}" → "{SCHEMA_VERSION}", written')
    else:
        diff = difflib.unified_diff(
            text.splitlines(keepends=True),
            migration.text.splitlines(keepends=True),
            fromfile=f"a/{shown}",
            tofile=f"b/{shown}",
        )
        io.out.write("".join(line if line.endswith("\n") else line + "\n" for line in diff))
        io.out.flush()
    outcome = config.validate_config(migration.text.encode("utf-8"), file=shown)
    if migration.notes or outcome.problems:
        io.error("still needs a person:")
    for note in migration.notes:
        io.error(f"{shown}:{note.line}: note: {note.message}")
    io.error(format_problems_text(shown, outcome.problems))
    if not args.write:
        io.error("(a preview: rerun with --write to change the file)")
    return EXIT_OK if outcome.pipeline is not None else EXIT_INVALID_INPUT


def _replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` over ``path`` atomically (a temporary file beside it, then a rename), keeping the
    file's permissions; a symbolic link keeps pointing at the rewritten file."""
    import stat
    import tempfile

    target = Path(os.path.realpath(path))
    mode = stat.S_IMODE(os.stat(target).st_mode)
    fd, staging = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".migrate")
    try:
        with open(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(staging, mode)
        os.replace(staging, target)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


# --- parser -----------------------------------------------------------------------------------------


def _add_config_arguments(
    parser: argparse.ArgumentParser, *, strict: bool = True, check_files: bool = True
) -> None:
    """``--file``, and the validation flags where they change what the command does."""
    parser.add_argument(
        "--file",
        "-f",
        default="bodywork.yaml",
        metavar="PATH",
        help="the bodywork.yaml to read (default: %(default)s)",
    )
    if strict:
        parser.add_argument(
            "--strict", action="store_true", help="treat warnings (unknown keys, duplicate keys) as errors"
        )
    if check_files:
        parser.add_argument(
            "--check-files",
            action="store_true",
            help="check that every stage's executable_module_path exists, relative to the config's directory",
        )


def _add_context_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--namespace", metavar="NS", help="deploy into NS instead of the pipeline's namespace"
    )
    parser.add_argument(
        "--repo", metavar="URL", help="repository the stages fetch (default: git remote origin)"
    )
    parser.add_argument("--commit", metavar="SHA", help="commit the stages run (default: git HEAD)")
    parser.add_argument("--ref", metavar="REF", default="", help="ref shown in labels and the summary")
    parser.add_argument("--ingress-class", metavar="NAME", default="", help="ingressClassName for Ingresses")
    parser.add_argument(
        "--git-credentials-secret",
        metavar="NAME",
        default="",
        help="Kubernetes secret with a deploy key (key 'ssh') or a token ('username', 'password') "
        "for a private repository",
    )
    parser.add_argument(
        "--image",
        metavar="REF",
        default="",
        help="run every stage in this image instead of pipeline.docker_image (e.g. ghcr.io/o/r@sha256:...)",
    )
    parser.add_argument(
        "--image-pull-secret",
        action="append",
        metavar="NAME",
        help="existing Kubernetes secret for a private registry, put on every pod (repeatable)",
    )
    parser.add_argument(
        "--resource",
        action="append",
        metavar="STAGE:NAME=QUANTITY",
        help="extra resource for a stage, e.g. train:nvidia.com/gpu=1 (requests and limits; cpu, memory "
        "and ephemeral-storage: requests only); wins over the stage's extra_resources (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bodywork-action",
        description="Validate, plan and deploy Bodywork pipelines (bodywork.yaml) to Kubernetes, "
        "or run them locally.",
        epilog="Exit codes: 0 success, 1 deployment failed, 2 invalid input, 3 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show tracebacks of internal errors; deploy also prints every API call and decision",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    validate = commands.add_parser(
        "validate",
        help="check bodywork.yaml and report every problem with its line",
        description="Check bodywork.yaml against the schema and the rules a schema can't express; "
        "report every problem at once as FILE:LINE:COL: FIELD: MESSAGE.",
    )
    _add_config_arguments(validate)
    validate.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default="text",
        help="text (default), json, or github (::error workflow commands, at most 10)",
    )
    validate.set_defaults(handler=cmd_validate)

    migrate = commands.add_parser(
        "migrate",
        help="upgrade a Bodywork 2.x bodywork.yaml (version 1.0) to version 1.1",
        description='Upgrade a Bodywork 2.x file (version "1.0" or "0.1") to version "1.1" '
        '(Bodywork 3.0\'s format: version "1.1", project: renamed pipeline:), keeping comments and '
        "layout. Prints a unified diff (or rewrites the file with --write), then validates the result "
        "and lists what still needs a person. Exit 0 when the result is valid, 2 otherwise.",
    )
    migrate.add_argument(
        "--file",
        "-f",
        default="bodywork.yaml",
        metavar="PATH",
        help="the bodywork.yaml to upgrade (default: %(default)s)",
    )
    migrate.add_argument(
        "--write",
        action="store_true",
        help="rewrite the file in place (atomically, keeping its permissions) instead of printing a diff",
    )
    migrate.set_defaults(handler=cmd_migrate)

    plan = commands.add_parser(
        "plan",
        help="show the steps and stages that would be deployed",
        description="Show the DAG's steps and stages as a table, or every Kubernetes object as YAML "
        "(secret values are never shown).",
    )
    _add_config_arguments(plan)
    plan.add_argument(
        "--output",
        "-o",
        choices=("table", "yaml"),
        default="table",
        help="table (default) or yaml (all objects)",
    )
    _add_context_arguments(plan)
    _add_format_argument(plan)
    _add_selection_arguments(plan)
    plan.set_defaults(handler=cmd_plan)

    deploy = commands.add_parser(
        "deploy",
        help="deploy the DAG to a Kubernetes cluster and wait for every stage",
        description="Create or update secrets, then apply the DAG step by step (batch stages as Jobs, "
        "service stages as Deployments + Services), waiting by watching; failed services roll back.",
    )
    _add_config_arguments(deploy)
    _add_cluster_arguments(deploy)
    _add_context_arguments(deploy)
    _add_secret_arguments(deploy)
    deploy.add_argument(
        "--dry-run", action="store_true", help="send every object with dryRun=All: validates, creates nothing"
    )
    deploy.add_argument(
        "--atomic",
        action="store_true",
        help="if any stage fails (or the deploy is stopped), roll every service stage and secret this deploy "
        "changed back to its previous revision and remove the ones it created (batch stages are not undone)",
    )
    _add_lock_argument(deploy)
    _add_timeout_argument(deploy, "the whole deployment")
    _add_format_argument(deploy)
    _add_selection_arguments(deploy)
    deploy.set_defaults(handler=cmd_deploy)

    diff = commands.add_parser(
        "diff",
        help="show what a deploy would change in the cluster, object by object",
        description="Render what `deploy` would apply, have the API server fill in its defaults "
        "(dryRun=All) and compare it with what is live: a unified diff per object, created, changed, "
        "unchanged or deleted (Jobs: against the stage's newest Job; Secrets: keys only, never values). "
        "Nothing is written. Exit 0, or with --exit-code 1 when a deploy would change something.",
    )
    _add_config_arguments(diff)
    _add_cluster_arguments(diff)
    _add_context_arguments(diff)
    diff.add_argument(
        "--secret",
        action="append",
        metavar="NAME=KEY1,KEY2",
        help="the secrets a deploy would write, each value read from the environment variable of the "
        "same name (repeatable)",
    )
    diff.add_argument(
        "--secrets-group",
        metavar="GROUP",
        help="group label of the secrets (default: pipeline.secrets_group)",
    )
    diff.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text (default), or json: one document on stdout (result.schema.json, see README), every "
        "object with its state and diff",
    )
    diff.add_argument(
        "--exit-code", action="store_true", help="exit 1 when a deploy would change something (as git diff)"
    )
    _add_selection_arguments(diff, diff=True)
    diff.set_defaults(handler=cmd_diff)

    status = commands.add_parser(
        "status",
        help="show what is deployed for this pipeline, per stage",
        description="Read what this pipeline has in its namespace (Jobs, Deployments, Services, Ingresses "
        "labelled as its own) and give each stage's verdict: running, succeeded or failed and why.",
    )
    _add_config_arguments(status, strict=False, check_files=False)
    _add_cluster_arguments(status)
    status.add_argument("--namespace", metavar="NS", help="look in NS instead of the pipeline's namespace")
    status.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text (default): a table; json: one document, for scripts",
    )
    status.set_defaults(handler=cmd_status)

    delete = commands.add_parser(
        "delete",
        help="remove what this pipeline created (its namespace only if this tool created it)",
        description="Delete every object labelled as this pipeline's (Jobs, Deployments, Services, "
        "Ingresses, the Secrets it created); the namespace too, but only if this tool created it for this "
        "pipeline and nothing else is left in it.",
    )
    _add_config_arguments(delete, strict=False, check_files=False)
    _add_cluster_arguments(delete)
    delete.add_argument(
        "--namespace", metavar="NS", help="delete from NS instead of the pipeline's namespace"
    )
    delete.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    _add_lock_argument(delete)
    _add_format_argument(delete)
    delete.set_defaults(handler=cmd_delete)

    logs = commands.add_parser(
        "logs",
        help="show the deployed stages' logs (redacted), or follow them",
        description="Print the logs of a deployed stage, or of every stage: a batch stage's newest attempt "
        "(its newest Job's newest pod), every pod of a service (each line prefixed with the pod's short "
        "name). Secret values of the pipeline's Secrets are redacted. A stage with nothing to show yet "
        "says so (exit 0); an unknown stage is exit 2.",
    )
    logs.add_argument("stage", nargs="?", default="", metavar="STAGE", help="one stage (default: all)")
    _add_config_arguments(logs, strict=False, check_files=False)
    _add_cluster_arguments(logs)
    logs.add_argument("--namespace", metavar="NS", help="look in NS instead of the pipeline's namespace")
    logs.add_argument(
        "--follow", action="store_true", help="stream new lines until the containers stop (Ctrl+C ends)"
    )
    logs.add_argument(
        "--previous", "-p", action="store_true", help="the previous instance of a restarted container"
    )
    logs.add_argument("--since", metavar="DURATION", help="only lines newer than DURATION (30s, 10m, 1h)")
    logs.add_argument(
        "--container",
        "-c",
        choices=("stage", "git-sync"),
        default="",
        help="stage (default): the stage's own; git-sync: the init container that fetched the commit "
        "(shown anyway when it failed and the stage never started)",
    )
    logs.set_defaults(handler=cmd_logs)

    run = commands.add_parser(
        "run",
        help="run the whole DAG on this machine (--local), no cluster needed",
        description="Run each stage as a local process (per-stage virtual environments cached by their "
        "requirements); services stay up until Ctrl+C, or with --detach until `stop --local`.",
    )
    _add_config_arguments(run, check_files=False)  # a local run checks every module path anyway
    run.add_argument("--local", action="store_true", required=True, help="run on this machine (required)")
    _add_secret_arguments(run, with_group=False)
    run.add_argument(
        "--reuse-env", action="store_true", help="run every stage in this Python environment (no venvs)"
    )
    run.add_argument("--env-file", type=Path, metavar="PATH", help="KEY=VALUE file with secret values")
    run.add_argument(
        "--detach", action="store_true", help="leave services running (stop them with `stop --local`)"
    )
    run.add_argument(
        "--commit", default="", metavar="SHA", help="run this commit (in a temporary git worktree)"
    )
    run.add_argument(
        "--port",
        action="append",
        metavar="STAGE=PORT",
        help="serve STAGE on PORT here instead of its service.port (repeatable); without it, services "
        "sharing a port (fine on Kubernetes) are moved to free ports, shown in a table",
    )
    _add_timeout_argument(run, "starting the DAG (until every batch stage finished and every service is up)")
    _add_format_argument(run)
    _add_selection_arguments(run)
    run.set_defaults(handler=cmd_run)

    stop = commands.add_parser(
        "stop",
        help="stop services left running by `run --local --detach`",
        description="Stop every service (and whatever it started) that `run --local --detach` left "
        "running for this project: SIGTERM, then SIGKILL after the grace period.",
    )
    stop.add_argument("--local", action="store_true", required=True, help="stop local services (required)")
    stop.add_argument(
        "--file", "-f", default="bodywork.yaml", metavar="PATH", help="the project's bodywork.yaml"
    )
    stop.set_defaults(handler=cmd_stop)
    return parser


def _step_number(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a step number (1 is the first), found {text!r}") from None


def _add_selection_arguments(parser: argparse.ArgumentParser, *, diff: bool = False) -> None:
    """A partial run: the other stages are shown as skipped and left as they are (never pruned).
    ``diff``: what such a deploy would change."""
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument(
        "--only",
        action="append",
        metavar="STAGE[,STAGE...]",
        help="what a deploy of only these stages would change (repeatable); the others are left out"
        if diff
        else "run only these stages of the DAG, in its order (repeatable); the others are left as they are",
    )
    chosen.add_argument(
        "--from-step",
        type=_step_number,
        metavar="N",
        help="what a deploy from step N would change (1 is the first); earlier steps are left out"
        if diff
        else "rerun the DAG from step N (1 is the first, as `== step 1` shows); earlier steps are left as "
        "they are",
    )


def _add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)",
    )
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context (default: the current one)")


def _lock_timeout(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, found {text!r}") from None
    if not seconds >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, found {text!r}")
    return seconds


def _add_lock_argument(parser: argparse.ArgumentParser) -> None:
    from bodywork_action.options import DEFAULT_LOCK_TIMEOUT_SECONDS

    parser.add_argument(
        "--lock-timeout",
        type=_lock_timeout,
        default=float(DEFAULT_LOCK_TIMEOUT_SECONDS),
        metavar="SECONDS",
        help="one deploy or delete of a pipeline at a time (a Lease in its namespace): how long to wait "
        "for another run holding it before failing with its name (default: %(default).0f)",
    )


def _duration(text: str) -> float:
    from bodywork_action.options import parse_duration

    try:
        return parse_duration(text, option="--timeout")
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--timeout {text!r}: ")) from None


def _add_timeout_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--timeout",
        type=_duration,
        metavar="DURATION",
        help=f"upper bound on {what}: 90s, 15m, 1h or seconds; past it, the stages still running are "
        "stopped and the result is failed, saying so (exit 1). Default: none",
    )


def _add_format_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text (default), or json: one document on stdout (result.schema.json, see README), "
        "everything else on stderr",
    )


def _add_secret_arguments(parser: argparse.ArgumentParser, *, with_group: bool = True) -> None:
    what = (
        "create or update Kubernetes secret NAME with these keys"
        if with_group
        else "supply secret NAME's keys to the stages that name them"
    )
    parser.add_argument(
        "--secret",
        action="append",
        metavar="NAME=KEY1,KEY2",
        help=f"{what}, each value read from the environment variable of the same name (repeatable)",
    )
    if with_group:
        parser.add_argument(
            "--secrets-group",
            metavar="GROUP",
            help="group label for created secrets (default: pipeline.secrets_group)",
        )
    parser.add_argument(
        "--smoke-test",
        action="append",
        metavar="STAGE=/PATH",
        help="after rollout, GET PATH on the service; non-2xx fails the stage "
        "(repeatable; /PATH alone: every service)",
    )


# --- the program ------------------------------------------------------------------------------------

# CPython collects its youngest objects every 700 new containers, and every tenth of those collections
# goes through everything younger than the oldest generation again. A deploy keeps tens of thousands of
# objects alive (the client's ~800 modules, the watches' caches), so at the default that was 1.0 s of
# a 1,000-stage deploy's ~7 s of CPU and about 0.1 s of the imports (bench_deploy). Every 10,000 it is
# 0.3 s; what a collection finds here is rare (few cycles), so memory stays the same.
PROGRAM_GC_THRESHOLDS = (10_000, 10, 10)


def program() -> NoReturn:
    """The ``bodywork-action`` program (the console script, ``python -m bodywork_action``): a
    short-lived process's settings, then ``main``, then ``end_process``. Tests call ``main`` and leave
    their own process's settings alone."""
    set_program_gc_thresholds()
    end_process(main())


def set_program_gc_thresholds() -> None:
    import gc

    gc.set_threshold(*PROGRAM_GC_THRESHOLDS)


def end_process(code: int) -> NoReturn:
    """Exit with ``code``, skipping the interpreter's teardown once the run is over.

    Freeing every module and object one by one took 0.1–0.19 s at the end of a deploy process
    (bench_deploy cli4), about a fifth of its overhead; the OS frees the memory at once. Output is
    flushed and the atexit handlers run first (the kubernetes client deletes its temporary
    certificate files in one, logging flushes its handlers in another). Ordinary ``sys.exit`` is
    kept when it still has something to do: a non-daemon thread it would wait for, or output that
    cannot be flushed (a closed pipe: Python reports that itself)."""
    import atexit
    import contextlib
    import threading

    def flush_output() -> None:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()

    others = [t for t in threading.enumerate() if t is not threading.current_thread()]
    if threading.current_thread() is not threading.main_thread() or any(not t.daemon for t in others):
        sys.exit(code)
    try:
        flush_output()
    except (OSError, ValueError):
        sys.exit(code)
    atexit._run_exitfuncs()
    with contextlib.suppress(OSError, ValueError):  # the handlers ran: nothing is left to fall back to
        flush_output()
    os._exit(code)


# --- the error boundary -----------------------------------------------------------------------------


def main(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    io = Streams(out or sys.stdout, err or sys.stderr, os.environ if environ is None else environ)
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    json_command = _json_document_command(argv)
    try:
        args = _parse_arguments(parser, argv, io, json_command=json_command)
    except SystemExit as exc:  # --help, --version, or a usage error (argparse printed it)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_INVALID_INPUT
    if json_command:  # stdout carries only the document: every line the command prints goes to stderr
        io = Streams(io.err, io.err, io.environ, document=io.out)

    def failed(code: int, status: str, error: str, problems: Sequence[ConfigProblem] = ()) -> int:
        if json_command:
            from bodywork_action.result_document import error_document

            io.emit(
                error_document(json_command, status=status, exit_code=code, error=error, problems=problems)
            )
        return code

    try:
        handler: Command = args.handler
        return handler(args, io)
    except ConfigInvalid as exc:
        text = format_problems_text(exc.file, exc.problems)
        io.error(text)
        return failed(exc.exit_code, "invalid", text.splitlines()[-1], exc.problems)
    except BodyworkActionError as exc:
        io.error(f"error: {exc}")
        return failed(exc.exit_code, "error", str(exc))
    except KeyboardInterrupt:
        io.error("interrupted")
        return failed(EXIT_INTERRUPTED, "cancelled", "interrupted")
    except Exception as exc:  # the boundary: a bug must still end in one readable line
        if args.debug:
            import traceback

            io.error("".join(traceback.format_exception(exc)))
        message = (
            f"internal error (a bug in bodywork-action {__version__}): {type(exc).__name__}; "
            "rerun with --debug for the traceback and please report it"
        )
        io.error(message)
        return failed(EXIT_BUG, "error", message)


# Commands whose --format json prints the one document of result.schema.json.
JSON_DOCUMENT_COMMANDS = ("deploy", "plan", "diff", "delete", "status", "run", "validate")


def _json_document_command(argv: Sequence[str]) -> str:
    """The command, if it is one of JSON_DOCUMENT_COMMANDS and ``--format json`` was asked for, else ""."""
    command = next((arg for arg in argv if not arg.startswith("-")), "")
    pairs = zip(argv, [*argv[1:], ""], strict=True)
    wants_json = any(
        arg == "--format=json" or (arg, following) == ("--format", "json") for arg, following in pairs
    )
    return command if wants_json and command in JSON_DOCUMENT_COMMANDS else ""


def _parse_arguments(
    parser: argparse.ArgumentParser, argv: Sequence[str], io: Streams, *, json_command: str
) -> argparse.Namespace:
    """argparse's result; with --format json a usage error (exit 2) is also a JSON document on stdout."""
    if not json_command:
        return parser.parse_args(argv)
    import contextlib
    from io import StringIO

    from bodywork_action.result_document import error_document

    usage = StringIO()
    try:
        with contextlib.redirect_stderr(usage):
            return parser.parse_args(argv)
    except SystemExit as exc:
        io.err.write(usage.getvalue())
        io.err.flush()
        if exc.code not in (0, None):
            complaint = (usage.getvalue().strip().splitlines() or ["invalid arguments"])[-1]
            error = complaint.split(": error: ", 1)[-1]
            io.emit(error_document(json_command, status="error", exit_code=EXIT_INVALID_INPUT, error=error))
        raise


if __name__ == "__main__":  # python -m bodywork_action.cli, as well as python -m bodywork_action
    sys.exit(program())
