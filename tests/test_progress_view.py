"""progress_view.py: the colour decision, plain timestamped lines, and the live view through a fake TTY."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest

from bodywork_action.executor import Progress, ProgressKind
from bodywork_action.model import StageKind
from bodywork_action.progress_view import ProgressView, use_colour, use_live_view
from bodywork_action.results import StageResult, StageStatus
from bodywork_action.stage_phase import PodState, StagePhase

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
CURSOR_UP = re.compile(r"\x1b\[(\d+)A")
RED, GREEN, YELLOW = "\x1b[31m", "\x1b[32m", "\x1b[33m"


# --- colour: one function, the whole environment matrix ------------------------------------------


@pytest.mark.parametrize(
    ("environ", "isatty", "expected"),
    [
        ({}, True, True),
        ({}, False, False),
        ({"TERM": "dumb"}, True, False),
        ({"TERM": "xterm-256color"}, True, True),
        ({"NO_COLOR": "1"}, True, False),
        ({"NO_COLOR": "anything"}, True, False),
        ({"NO_COLOR": ""}, True, True),  # no-color.org: only a non-empty value counts
        ({"FORCE_COLOR": "1"}, False, True),
        ({"FORCE_COLOR": "true"}, False, True),
        ({"FORCE_COLOR": "0"}, False, False),
        ({"FORCE_COLOR": "0"}, True, True),  # "0" does not force; a terminal still gets colour
        ({"FORCE_COLOR": ""}, False, False),
        ({"FORCE_COLOR": "1", "TERM": "dumb"}, True, True),
        ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, True, False),  # NO_COLOR wins
        ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, False, False),
        ({"GITHUB_ACTIONS": "true"}, False, False),
        ({"GITHUB_ACTIONS": "true", "FORCE_COLOR": "1"}, False, True),
    ],
)
def test_colour_follows_the_terminal_no_color_and_force_color(
    environ: dict[str, str], isatty: bool, expected: bool
) -> None:
    assert use_colour(environ, isatty=isatty) is expected


@pytest.mark.parametrize(
    ("environ", "isatty", "expected"),
    [
        ({"TERM": "xterm"}, True, True),
        ({}, True, True),
        ({"TERM": "xterm"}, False, False),
        ({"TERM": "dumb"}, True, False),
        ({"TERM": "xterm", "GITHUB_ACTIONS": "true"}, True, False),
    ],
)
def test_the_live_view_only_on_a_real_terminal(environ: dict[str, str], isatty: bool, expected: bool) -> None:
    assert use_live_view(environ, isatty=isatty) is expected


# --- a run's events ---------------------------------------------------------------------------------


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def phase(stage: str, state: PodState, **fields: int) -> Progress:
    return Progress(ProgressKind.STAGE_PHASE, 1, (stage,), phase=StagePhase(state, **fields))


def finished(stage: str, status: StageStatus, kind: StageKind = StageKind.BATCH, **fields: Any) -> Progress:
    result = StageResult(
        stage=stage, kind=kind, status=status, started_at=1_000_000.0, finished_at=1_000_018.0, **fields
    )
    return Progress(ProgressKind.STAGE_FINISHED, 1, (stage,), result)


def run_events(view: ProgressView, clock: Clock) -> None:
    view.show(Progress(ProgressKind.STEP_STARTED, 1, ("train", "serve")))
    view.show(Progress(ProgressKind.STAGE_STARTED, 1, ("train",)))
    view.show(Progress(ProgressKind.STAGE_STARTED, 1, ("serve",)))
    view.show(phase("train", PodState.PULLING_IMAGE, attempt=1, attempts_allowed=2))
    view.show(phase("serve", PodState.PULLING_IMAGE, wanted=2))
    clock.now += 3
    view.show(phase("train", PodState.FAILED, attempt=1, attempts_allowed=2))
    view.show(phase("train", PodState.RUNNING, attempt=2, attempts_allowed=2))
    view.show(phase("serve", PodState.RUNNING, ready=1, wanted=2, restarts=1))
    view.show(Progress(ProgressKind.DEBUG, 0, (), detail="watch GET /api/v1/namespaces/demo/pods 200 3 ms"))
    clock.now += 15
    view.show(finished("train", StageStatus.SUCCEEDED, attempts=2))
    view.show(phase("serve", PodState.READY, ready=2, wanted=2))
    view.show(
        Progress(
            ProgressKind.SMOKE_TEST, 1, ("serve",), detail="smoke test GET /health -> 503 in 4 ms", ok=False
        )
    )
    view.show(finished("serve", StageStatus.FAILED, StageKind.SERVICE, reason="SmokeTestFailed"))


def test_a_ci_log_gets_one_timestamped_line_per_change_in_order_and_no_escape_codes() -> None:
    out, clock = io.StringIO(), Clock()
    view = ProgressView(out, clock=clock)

    run_events(view, clock)
    view.close()

    lines = out.getvalue().splitlines()
    assert not ANSI.search(out.getvalue())
    assert all(re.match(r"\d\d:\d\d:\d\d ", line) for line in lines), lines
    texts = [line[9:] for line in lines]
    assert texts == [
        "== step 1: train, serve",
        "   train: attempt 1 of 2: pulling image [0s]",
        "   serve: ready 0/2: pulling image [0s]",
        "   train: attempt 1 of 2: failed [3s]",
        "   train: attempt 2 of 2: running [3s]",
        "   serve: ready 1/2: running, 1 restart [3s]",
        "-- train: succeeded in 18.0s after 2 attempts",
        "   serve: ready 2/2 [18s]",
        "   serve: smoke test GET /health -> 503 in 4 ms",
        "-- serve: failed in 18.0s (SmokeTestFailed)",
    ], "debug lines only when asked for"


def test_debug_lines_when_asked_for() -> None:
    out, clock = io.StringIO(), Clock()
    run_events(ProgressView(out, clock=clock, debug=True), clock)
    assert " debug: watch GET /api/v1/namespaces/demo/pods 200 3 ms\n" in out.getvalue()


def test_colours_failed_red_succeeded_green_warnings_yellow() -> None:
    out, clock = io.StringIO(), Clock()
    run_events(ProgressView(out, colour=True, clock=clock), clock)
    lines = out.getvalue().splitlines()

    def line_with(text: str) -> str:
        return next(line for line in lines if text in line)

    assert line_with("-- train: succeeded").startswith(GREEN)
    assert line_with("-- serve: failed").startswith(RED)
    assert line_with("smoke test GET /health -> 503").startswith(RED)
    assert line_with("attempt 1 of 2: failed").startswith(YELLOW)
    assert line_with("1 restart").startswith(YELLOW)
    assert not ANSI.search(line_with("attempt 2 of 2: running"))
    assert all(line.endswith("\x1b[0m") for line in lines if ANSI.search(line))


# --- the live view ---------------------------------------------------------------------------------


def render_screen(output: str) -> list[str]:
    """What a terminal shows after ``output``: lines, with cursor-up + clear-below honoured."""
    screen: list[str] = []
    for chunk in re.split(r"(\x1b\[\d+A\r\x1b\[J)", output):
        moved = CURSOR_UP.match(chunk)
        if moved:
            del screen[len(screen) - int(moved.group(1)) :]
            continue
        screen.extend(ANSI.sub("", chunk).splitlines())
    return screen


def test_the_live_view_redraws_one_line_per_running_stage_and_leaves_the_final_lines() -> None:
    tty, clock = FakeTty(), Clock()
    view = ProgressView.for_stream(tty, {"TERM": "xterm-256color"})
    view._clock = clock  # the view's own timing, for stable elapsed times
    assert view.live and view.colour

    view.show(Progress(ProgressKind.STEP_STARTED, 1, ("train", "serve")))
    view.show(Progress(ProgressKind.STAGE_STARTED, 1, ("train",)))
    view.show(Progress(ProgressKind.STAGE_STARTED, 1, ("serve",)))
    view.show(phase("train", PodState.RUNNING, attempt=1, attempts_allowed=2))
    view.show(phase("serve", PodState.PULLING_IMAGE, wanted=2))
    clock.now += 7
    view.tick()
    assert render_screen(tty.getvalue()) == [
        "== step 1: train, serve",
        "   train: attempt 1 of 2: running 7s",
        "   serve: ready 0/2: pulling image 7s",
    ]

    view.show(finished("train", StageStatus.SUCCEEDED))
    assert render_screen(tty.getvalue()) == [
        "== step 1: train, serve",
        "-- train: succeeded in 18.0s",
        "   serve: ready 0/2: pulling image 7s",
    ]

    view.show(phase("serve", PodState.READY, ready=2, wanted=2))
    view.show(finished("serve", StageStatus.SUCCEEDED, StageKind.SERVICE))
    view.show(phase("serve", PodState.RUNNING, ready=1, wanted=2))  # e.g. a rollback's own wait: not redrawn
    view.close()

    assert render_screen(tty.getvalue()) == [
        "== step 1: train, serve",
        "-- train: succeeded in 18.0s",
        "-- serve: succeeded in 18.0s",
    ], "the final state stays in the scrollback, with nothing live left under it"
    assert GREEN + "-- serve: succeeded in 18.0s" in tty.getvalue()


def test_live_lines_are_cut_to_the_terminals_width_so_none_wraps() -> None:
    tty = FakeTty()
    view = ProgressView(tty, live=True, columns=lambda: 24)
    view.show(Progress(ProgressKind.STAGE_STARTED, 1, ("a-stage-with-a-long-name",)))
    view.show(phase("a-stage-with-a-long-name", PodState.PULLING_IMAGE, attempt=1, attempts_allowed=3))

    live = render_screen(tty.getvalue())
    assert live == ["   a-stage-with-a-long…"]
    assert all(len(line) < 24 for line in live)


def test_a_dumb_terminal_falls_back_to_plain_lines() -> None:
    tty = FakeTty()
    view = ProgressView.for_stream(tty, {"TERM": "dumb"})
    view.show(Progress(ProgressKind.STAGE_STARTED, 1, ("train",)))
    view.show(phase("train", PodState.RUNNING))

    assert not view.live and not view.colour
    assert not ANSI.search(tty.getvalue())
    assert tty.getvalue().endswith(" train: running [0s]\n")
