"""The CLI through ``main(argv)``: exit codes, output channels, and no tracebacks."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bodywork_action import __version__
from bodywork_action.cli import main

DATA = Path(__file__).parent / "data"
PROJECT = DATA / "bodywork_project" / "bodywork.yaml"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err, environ={})
    return code, out.getvalue(), err.getvalue()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bodywork.yaml"
    path.write_text(text)
    return path


BROKEN = (
    PROJECT.read_text().replace("retries: 4", "retries: four").replace("log_level: INFO", "log_level: LOUD")
)


def test_validate_accepts_bodyworks_test_project_with_check_files() -> None:
    code, out, _ = run("validate", "--file", str(PROJECT), "--check-files")
    assert code == 0
    assert out.strip() == f"{PROJECT} is valid"


def test_validate_reports_every_error_and_a_count_then_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN)
    code, out, _ = run("validate", "-f", str(path))
    assert code == 2
    lines = out.strip().splitlines()
    assert lines[-1] == f"2 errors in {path}"
    assert lines[0].startswith(f"{path}:") and "stages.stage_1.batch.retries" in lines[0]
    assert "logging.log_level" in lines[1]


def test_validate_json_format(tmp_path: Path) -> None:
    code, out, _ = run("validate", "-f", str(write(tmp_path, BROKEN)), "--format", "json")
    document = json.loads(out)
    assert code == 2 and document["valid"] is False and document["error_count"] == 2
    assert {p["path"] for p in document["problems"]} == {"stages.stage_1.batch.retries", "logging.log_level"}
    assert all(p["line"] > 0 and p["column"] > 0 for p in document["problems"])


def test_validate_github_format_caps_annotations_at_ten(tmp_path: Path) -> None:
    text = PROJECT.read_text()
    text = text.replace("memory_request_mb: 100", "memory_request_mb: -1")  # 7 stages
    text = text.replace("cpu_request: 0.5", "cpu_request: -0.5")  # 7 more
    text = text.replace("log_level: INFO", "log_level: X").replace("retries: 4", "retries: x")
    text = text.replace("port: 5000", "port: 0").replace("replicas: 2", "replicas: -2")
    code, out, _ = run("validate", "-f", str(write(tmp_path, text)), "--format", "github")
    assert code == 2
    annotations = [line for line in out.splitlines() if line.startswith("::error ")]
    assert len(annotations) == 10
    assert annotations[0].startswith(f"::error file={tmp_path / 'bodywork.yaml'},line=")
    assert ",col=" in annotations[0]
    rest = [line for line in out.splitlines() if "more problems not annotated" in line]
    assert len(rest) == 1
    total = int(out.strip().splitlines()[-1].split()[0])
    assert rest[0].startswith(f"{total - 10} more problems not annotated (GitHub shows at most 10")


def test_validate_strict_turns_warnings_into_errors(tmp_path: Path) -> None:
    path = write(tmp_path, PROJECT.read_text().replace("usage_stats: false", "usage_stat: false"))
    assert run("validate", "-f", str(path))[0] == 0
    code, out, _ = run("validate", "-f", str(path), "--strict")
    assert code == 2 and "did you mean 'usage_stats'?" in out


def test_missing_file_exits_2_with_one_line(tmp_path: Path) -> None:
    code, out, err = run("validate", "-f", str(tmp_path / "bodywerk.yaml"))
    assert code == 2 and "no config file found" in out and err == ""


def test_plan_prints_steps_and_stages() -> None:
    code, out, _ = run("plan", "-f", str(PROJECT))
    assert code == 0
    rows = {
        line.split()[1]: line for line in out.splitlines() if line[:1].isdigit() or line.startswith("on ")
    }
    assert rows["stage_1"].startswith("1 ") and "retries 4, limit 60s" in rows["stage_1"]
    assert "foobar-secret" in rows["stage_1"]
    assert rows["stage_3"].startswith("2 ") and "2 replicas, port 5000, ingress" in rows["stage_3"]
    assert "on failure" in out and "not in the DAG (not deployed): stage_5, stage_jupyter" in out


def test_plan_of_an_invalid_file_prints_the_problems_and_exits_2(tmp_path: Path) -> None:
    code, out, err = run("plan", "-f", str(write(tmp_path, BROKEN)))
    assert code == 2 and out == ""
    assert err.strip().splitlines()[-1] == f"2 errors in {tmp_path / 'bodywork.yaml'}"


def test_usage_error_exits_2() -> None:
    assert run("validate", "--format", "xml")[0] == 2
    assert run("no-such-command")[0] == 2


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"bodywork-action {__version__}"
    for command in ([], ["validate"], ["plan"]):
        assert main([*command, "--help"]) == 0
        assert "usage: bodywork-action" in capsys.readouterr().out


def test_console_script_runs_as_a_process(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bodywork_action", "validate", "-f", str(write(tmp_path, BROKEN))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "Traceback" not in done.stdout + done.stderr


# Each way the program starts as a process of its own; the GC thresholds are that process's, so each
# is read back from a child interpreter (tests calling main() keep pytest's own).
PROGRAM_STARTS = {
    "python -m bodywork_action": "import runpy; runpy.run_module('bodywork_action', run_name='__main__')",
    "the console script": (
        "import tomllib; from importlib import import_module; "
        "target = tomllib.load(open('pyproject.toml', 'rb'))['project']['scripts']['bodywork-action']; "
        "module, _, name = target.partition(':'); getattr(import_module(module), name)()"
    ),
    "entrypoint.py": (
        "import runpy, bodywork_action.action as action; action.run_action = lambda environ: 0; "
        "runpy.run_path('entrypoint.py', run_name='not_main')['main']()"
    ),
}


@pytest.mark.parametrize("start", PROGRAM_STARTS)
def test_every_program_start_collects_garbage_at_the_program_thresholds(start: str) -> None:
    from bodywork_action.cli import PROGRAM_GC_THRESHOLDS

    script = (
        "import atexit, gc, sys; sys.argv = ['bodywork-action', '--version'];"
        "atexit.register(lambda: print('thresholds', *gc.get_threshold()));" + PROGRAM_STARTS[start]
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "thresholds " + " ".join(map(str, PROGRAM_GC_THRESHOLDS))
    assert PROGRAM_GC_THRESHOLDS != (700, 10, 10)  # CPython's default: the check would prove nothing


def test_a_missing_file_is_reported_without_an_invented_position(tmp_path: Path) -> None:
    code, out, _ = run("validate", "-f", str(tmp_path / "nope.yaml"))
    assert code == 2
    first = out.splitlines()[0]
    assert first.startswith(f"{tmp_path / 'nope.yaml'}: ") and ":0:0" not in first and ":1:1" not in first


def test_deploy_refuses_a_cloud_kubeconfig_whose_plugin_is_not_installed(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: gke\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "contexts: [{name: gke, context: {cluster: c, user: u}}]\n"
        "users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1beta1, "
        "command: cloud-auth-plugin-not-here}}}]\n"
    )
    code, _, err = run(
        "deploy",
        "-f",
        str(PROJECT),
        "--kubeconfig",
        str(kubeconfig),
        "--repo",
        "https://x/y",
        "--commit",
        "a" * 40,
    )
    assert code == 2
    assert "'cloud-auth-plugin-not-here', which is not installed here" in err
    assert "token-based kubeconfig" in err and "Nothing was applied" in err


@pytest.mark.parametrize(
    "command", ["validate", "migrate", "plan", "deploy", "diff", "status", "delete", "logs", "run", "stop"]
)
def test_every_command_has_a_description_and_only_the_flags_that_mean_something(command: str) -> None:
    from bodywork_action.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._subparsers._group_actions if a.dest == "command").choices[command]  # type: ignore[union-attr]
    assert sub.description, f"`{command} --help` has no description"
    flags = {option for action in sub._actions for option in action.option_strings}
    assert all(action.help for action in sub._actions), f"`{command}` has an option without help"
    assert ("--check-files" in flags) == (command in ("validate", "plan", "deploy", "diff"))
    assert ("--strict" in flags) == (command in ("validate", "plan", "deploy", "diff", "run"))
