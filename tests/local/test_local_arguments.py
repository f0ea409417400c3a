"""What cli.py wires in: the local-only flags, ``--smoke-test`` forms, ``stop --local`` edge cases."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from bodywork_action.errors import InputError
from bodywork_action.local import add_local_arguments, parse_smoke_tests, stop_local
from tests.local.conftest import batch, build_pipeline, service


def test_local_flags_parse_with_their_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_local_arguments(parser)

    assert vars(parser.parse_args([])) == {
        "reuse_env": False,
        "env_file": None,
        "detach": False,
        "commit": "",
    }
    parsed = parser.parse_args(["--reuse-env", "--env-file", "x.env", "--detach", "--commit", "HEAD~1"])
    assert (parsed.reuse_env, parsed.env_file, parsed.detach, parsed.commit) == (
        True,
        Path("x.env"),
        True,
        "HEAD~1",
    )


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
    out = io.StringIO()

    assert stop_local(tmp_path, out=out) == 0

    assert "no detached local services recorded" in out.getvalue()


def test_stop_local_with_an_unreadable_record_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / ".bodywork").mkdir()
    (tmp_path / ".bodywork" / "services.json").write_text("{not json")

    with pytest.raises(InputError, match=r"services\.json"):
        stop_local(tmp_path, out=io.StringIO())


def test_a_recorded_service_that_already_stopped_is_reported_and_forgotten(tmp_path: Path) -> None:
    (tmp_path / ".bodywork").mkdir()
    gone_pid = 2**22 + 17  # above the default pid_max: no such process
    (tmp_path / ".bodywork" / "services.json").write_text(
        f'{{"services": [{{"stage": "serve", "pid": {gone_pid}, "pgid": {gone_pid}, "url": ""}}]}}'
    )
    out = io.StringIO()

    assert stop_local(tmp_path, out=out) == 0

    assert f"serve (pid {gone_pid}) had already stopped" in out.getvalue()
    assert not (tmp_path / ".bodywork" / "services.json").exists()
