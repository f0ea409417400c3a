"""``run --local`` and ``stop --local`` through the real command line: flags, smoke-test forms, edge cases."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from bodywork_action import cli
from bodywork_action.options import parse_smoke_tests
from testing.local_runs import Project, batch, build_pipeline, free_port, is_gone, read_records, service


def test_local_flags_parse_with_their_defaults() -> None:
    parser = cli.build_parser()

    defaults = parser.parse_args(["run", "--local"])
    assert (defaults.reuse_env, defaults.env_file, defaults.detach, defaults.commit) == (
        False,
        None,
        False,
        "",
    )
    parsed = parser.parse_args(
        ["run", "--local", "--reuse-env", "--env-file", "x.env", "--detach", "--commit", "HEAD~1"]
    )
    assert (parsed.reuse_env, parsed.env_file, parsed.detach, parsed.commit) == (
        True,
        Path("x.env"),
        True,
        "HEAD~1",
    )


def run_cli(*argv: str, environ: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err, environ=environ)
    return code, out.getvalue(), err.getvalue()


def test_run_local_from_the_command_line_reuses_this_env_detaches_and_stop_local_stops_it(
    project: Project,
) -> None:
    port = free_port()
    config = project.config_file
    config.write_text(config.read_text().replace("port: 8765", f"port: {port}"))

    code, out, err = run_cli(
        "run",
        "--local",
        "-f",
        str(config),
        "--reuse-env",
        "--detach",
        "--smoke-test",
        "/health",
        environ=project.environ,
    )

    assert code == 0, out + err
    (serve_log,) = (project.state_dir / "runs").glob("*/serve.log")
    assert "GET /health" in serve_log.read_text()  # the smoke test reached the detached service
    assert {r["prefix"] for r in read_records(project.out_dir, "prepare")} == {sys.prefix}  # no venv
    recorded = json.loads((project.state_dir / "services.json").read_text())["services"]
    assert [(s["stage"], s["port"]) for s in recorded] == [("serve", port)]

    code, out, err = run_cli("stop", "--local", "-f", str(config), environ=project.environ)

    assert code == 0, out + err
    assert f"stopped serve (pid {recorded[0]['pid']}" in out
    assert is_gone(recorded[0]["pid"])


def test_run_local_with_an_unreadable_env_file_exits_2_naming_it(project: Project) -> None:
    missing = project.root / "no-such.env"

    code, out, err = run_cli(
        "run",
        "--local",
        "-f",
        str(project.config_file),
        "--reuse-env",
        "--detach",  # should the file be ignored, the run must still end rather than serve until Ctrl+C
        "--env-file",
        str(missing),
        environ=project.environ,
    )

    assert code == 2, out + err
    assert f"cannot read --env-file {missing}" in err
    assert "Traceback" not in err
    assert read_records(project.out_dir, "prepare") == []  # nothing ran


def test_a_bare_smoke_test_path_applies_to_every_service_and_stage_equals_path_to_one() -> None:
    pipeline = build_pipeline(
        "prep >> a,b",
        batch("prep", "work.py"),
        service("a", "serve.py", port=1),
        service("b", "serve.py", port=2),
    )

    assert parse_smoke_tests(["/health"], pipeline) == {"a": "/health", "b": "/health"}
    assert parse_smoke_tests(["/health", "b=/ready"], pipeline) == {"a": "/health", "b": "/ready"}


def test_stop_local_with_nothing_recorded_says_so_and_succeeds(tmp_path: Path) -> None:
    code, out, _ = run_cli("stop", "--local", "-f", str(tmp_path / "bodywork.yaml"), environ={})

    assert code == 0
    assert "no detached local services recorded" in out


def test_stop_local_with_an_unreadable_record_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / ".bodywork").mkdir()
    (tmp_path / ".bodywork" / "services.json").write_text("{not json")

    code, _, err = run_cli("stop", "--local", "-f", str(tmp_path / "bodywork.yaml"), environ={})

    assert code == 2
    assert "services.json" in err
    assert "Traceback" not in err


def test_a_recorded_service_that_already_stopped_is_reported_and_forgotten(tmp_path: Path) -> None:
    (tmp_path / ".bodywork").mkdir()
    gone_pid = 2**22 + 17  # above the default pid_max: no such process
    (tmp_path / ".bodywork" / "services.json").write_text(
        f'{{"services": [{{"stage": "serve", "pid": {gone_pid}, "pgid": {gone_pid}, "url": ""}}]}}'
    )

    code, out, _ = run_cli("stop", "--local", "-f", str(tmp_path / "bodywork.yaml"), environ={})

    assert code == 0
    assert f"serve (pid {gone_pid}) had already stopped" in out
    assert not (tmp_path / ".bodywork" / "services.json").exists()
