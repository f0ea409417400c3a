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
from typing import TextIO

from bodywork_action import __version__
from bodywork_action.errors import (
    EXIT_INTERRUPTED,
    EXIT_INVALID_INPUT,
    EXIT_OK,
    BodyworkActionError,
    ConfigInvalid,
)

EXIT_BUG = 3

Command = Callable[[argparse.Namespace, "Streams"], int]


class Streams:
    """Where a command writes; tests pass StringIO objects and an environ mapping."""

    def __init__(self, out: TextIO, err: TextIO, environ: Mapping[str, str]) -> None:
        self.out = out
        self.err = err
        self.environ = environ

    def print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def error(self, text: str) -> None:
        print(text, file=self.err, flush=True)


# --- commands ---------------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace, io: Streams) -> int:
    from bodywork_action import config, report

    outcome = config.read_config(Path(args.file), strict=args.strict, check_files=args.check_files)
    formatter = {
        "text": report.format_problems_text,
        "json": report.format_problems_json,
        "github": report.format_problems_github,
    }[args.format]
    io.print(formatter(outcome.file, outcome.problems))
    return EXIT_OK if outcome.pipeline is not None else EXIT_INVALID_INPUT


def cmd_plan(args: argparse.Namespace, io: Streams) -> int:
    from bodywork_action import config, report

    pipeline = config.load_pipeline(Path(args.file), strict=args.strict, check_files=args.check_files)
    if args.output == "table":
        io.print(report.format_plan(pipeline, namespace=args.namespace or ""))
        return EXIT_OK
    from bodywork_action import render
    from bodywork_action.context import build_context

    context = build_context(args, io.environ)
    io.print(render.format_manifests_yaml(render.render_objects(pipeline, context)))
    return EXIT_OK


# --- parser -----------------------------------------------------------------------------------------


def _add_config_arguments(parser: argparse.ArgumentParser, *, check_files_default: bool = False) -> None:
    parser.add_argument(
        "--file",
        "-f",
        default="bodywork.yaml",
        metavar="PATH",
        help="the bodywork.yaml to read (default: %(default)s)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="treat warnings (unknown keys, duplicate keys) as errors"
    )
    parser.add_argument(
        "--check-files",
        action="store_true",
        default=check_files_default,
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bodywork-action",
        description="Validate, plan and deploy Bodywork pipelines (bodywork.yaml) to Kubernetes, "
        "or run them locally.",
        epilog="Exit codes: 0 success, 1 deployment failed, 2 invalid input, 3 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
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
    plan.set_defaults(handler=cmd_plan)
    return parser


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
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (argparse printed it)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_INVALID_INPUT
    try:
        handler: Command = args.handler
        return handler(args, io)
    except ConfigInvalid as exc:
        from bodywork_action.report import format_problems_text

        io.error(format_problems_text(exc.file, exc.problems))
        return exc.exit_code
    except BodyworkActionError as exc:
        io.error(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        io.error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # the boundary: a bug must still end in one readable line
        if args.debug:
            import traceback

            io.error("".join(traceback.format_exception(exc)))
        io.error(
            f"internal error (a bug in bodywork-action {__version__}): {type(exc).__name__}; "
            "rerun with --debug for the traceback and please report it"
        )
        return EXIT_BUG
