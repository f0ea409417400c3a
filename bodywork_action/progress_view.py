"""What a deploy shows while it runs: one line per change in a CI log, a live view on a terminal.

Pure formatting (``use_colour``, ``use_live_view``, ``ProgressView.line_for``) and one small writer
(``ProgressView.show``). In a CI log (not a TTY, or ``GITHUB_ACTIONS``), and on a ``TERM=dumb``
terminal, every change is one plain line with the time of day. On a terminal, each running stage has
one line, redrawn in place (ANSI: cursor to the start of the block, clear to the end of the screen,
then the block, all in one write so it does not flicker; lines cut to the terminal's width so none
wraps and breaks the count); everything else, a stage's final line included, is printed above the
block and stays in the scrollback.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TextIO

from bodywork_action import report
from bodywork_action.executor import Progress, ProgressKind
from bodywork_action.results import StageStatus

TICK_SECONDS = 1.0  # how often a terminal's live lines refresh their elapsed time (a local redraw only)


class Tone(str, Enum):
    PLAIN = ""
    GOOD = "32"  # green
    BAD = "31"  # red
    WARNING = "33"  # yellow


def use_colour(environ: Mapping[str, str], *, isatty: bool) -> bool:
    """Colour on a terminal; never with NO_COLOR (any non-empty value, no-color.org), which wins over
    FORCE_COLOR (any non-empty value but "0"), which forces it into a pipe or a CI log."""
    if environ.get("NO_COLOR"):
        return False
    force = environ.get("FORCE_COLOR", "")
    if force and force != "0":
        return True
    return isatty and environ.get("TERM") != "dumb"


def use_live_view(environ: Mapping[str, str], *, isatty: bool) -> bool:
    """Redraw in place only on a real terminal: a CI log or a dumb terminal gets plain lines."""
    return isatty and environ.get("TERM") != "dumb" and environ.get("GITHUB_ACTIONS") != "true"


def paint(text: str, tone: Tone, *, colour: bool) -> str:
    return f"\x1b[{tone.value}m{text}\x1b[0m" if colour and tone is not Tone.PLAIN else text


def format_elapsed(seconds: float) -> str:
    whole = max(int(seconds), 0)
    return f"{whole}s" if whole < 60 else f"{whole // 60}m{whole % 60:02d}s"


_STATUS_TONES = {StageStatus.SUCCEEDED: Tone.GOOD, StageStatus.FAILED: Tone.BAD}


@dataclass(frozen=True)
class _Running:
    text: str  # the stage's phase, without its elapsed time
    tone: Tone


class ProgressView:
    """Shows ``Progress`` events on ``stream``; ``show`` may be called from several stage threads."""

    def __init__(
        self,
        stream: TextIO | None = None,  # None: only formatting (``format_line``), the caller writes
        *,
        live: bool = False,
        colour: bool = False,
        debug: bool = False,
        clock: Callable[[], float] = time.time,
        columns: Callable[[], int] = lambda: shutil.get_terminal_size().columns,
    ) -> None:
        self._stream = stream
        self.live = live
        self.colour = colour
        self.debug = debug
        self._clock = clock
        self._columns = columns
        self._started: dict[str, float] = {}  # stage → when it started
        self._running: dict[str, _Running] = {}  # the live block, one line per running stage
        self._drawn = 0  # live lines currently on the screen, below the cursor's line
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    @classmethod
    def for_stream(cls, stream: TextIO, environ: Mapping[str, str], *, debug: bool = False) -> ProgressView:
        isatty = stream.isatty()
        return cls(
            stream,
            live=use_live_view(environ, isatty=isatty),
            colour=use_colour(environ, isatty=isatty),
            debug=debug,
        )

    # --- pure formatting ------------------------------------------------------------------------
    def _elapsed(self, stage: str) -> str:
        started = self._started.get(stage)
        return "" if started is None else format_elapsed(self._clock() - started)

    def line_for(self, progress: Progress) -> tuple[str, Tone] | None:
        """The line for ``progress`` (without time of day) and its tone, or None: nothing to show.

        Keeps when each stage started, for its elapsed time."""
        kind, stage = progress.kind, progress.stages[0] if progress.stages else ""
        if kind in (ProgressKind.STAGE_STARTED, ProgressKind.FAILURE_STAGE_STARTED):
            self._started[stage] = self._clock()
        if kind is ProgressKind.STAGE_STARTED:
            return None
        if kind is ProgressKind.STAGE_PHASE and progress.phase is not None:
            phase, elapsed = progress.phase, self._elapsed(stage)
            text = f"   {stage}: {phase.describe()}" + (f" [{elapsed}]" if elapsed else "")
            return text, Tone.WARNING if phase.warning else Tone.PLAIN
        if kind is ProgressKind.SMOKE_TEST:
            return f"   {stage}: {progress.detail}", Tone.GOOD if progress.ok else Tone.BAD
        if kind is ProgressKind.DEBUG:
            return (f"debug: {progress.detail}", Tone.PLAIN) if self.debug else None
        if kind is ProgressKind.ROLLED_BACK and progress.result is not None:
            note = progress.result.message.rpartition("; ")[2]  # what the rollback did, not why
            return f"-- {stage}: rolled back ({note})", Tone.WARNING
        if kind is ProgressKind.STAGE_FINISHED and progress.result is not None:
            tone = _STATUS_TONES.get(progress.result.status, Tone.WARNING)
            return report.format_stage_line(progress.result), tone
        line = report.format_progress(progress)
        if line is None:
            return None
        return line, Tone.WARNING if kind in (ProgressKind.WAITING, ProgressKind.WARNING) else Tone.PLAIN

    def format_line(self, progress: Progress) -> str | None:
        """The plain log's line for ``progress``: time of day, text, colour if on; or None."""
        shown = self.line_for(progress)
        if shown is None:
            return None
        stamped = f"{time.strftime('%H:%M:%S', time.localtime(self._clock()))} {shown[0]}"
        return paint(stamped, shown[1], colour=self.colour)

    def _live_line(self, stage: str, running: _Running, width: int) -> str:
        text = f"{running.text} {self._elapsed(stage)}".rstrip()
        cut = text if len(text) < width else text[: max(width - 2, 1)] + "…"
        return paint(cut, running.tone, colour=self.colour)

    # --- the writer -------------------------------------------------------------------------------
    def show(self, progress: Progress) -> None:
        with self._lock:
            if not self.live:
                line = self.format_line(progress)
                if line is not None:
                    self._write(line + "\n")
                return
            shown = self.line_for(progress)
            stage = progress.stages[0] if progress.stages else ""
            lines: list[str] = []
            if progress.kind is ProgressKind.STAGE_STARTED:
                self._running[stage] = _Running(f"   {stage}: starting", Tone.PLAIN)
            elif progress.kind is ProgressKind.STAGE_PHASE:
                phase = progress.phase
                if phase is None or stage not in self._running:
                    return  # a stage already finished (e.g. a rollback's own wait): its final line stands
                tone = Tone.WARNING if phase.warning else Tone.PLAIN
                self._running[stage] = _Running(f"   {stage}: {phase.describe()}", tone)
            elif shown is not None:
                if progress.kind is ProgressKind.STAGE_FINISHED:
                    self._running.pop(stage, None)
                lines.append(paint(shown[0], shown[1], colour=self.colour))
                if progress.kind is ProgressKind.FAILURE_STAGE_STARTED:
                    self._running[stage] = _Running(f"   {stage}: starting", Tone.PLAIN)
            self._redraw(lines)

    def tick(self) -> None:
        """Redraw the live block (its elapsed times); nothing in a plain log."""
        with self._lock:
            if self.live and self._running:
                self._redraw([])

    def _redraw(self, above: list[str]) -> None:
        width = max(self._columns(), 10)
        up = f"\x1b[{self._drawn}A\r\x1b[J" if self._drawn else ""  # up, column 1, clear below
        block = [self._live_line(stage, running, width) for stage, running in self._running.items()]
        self._write(up + "".join(f"{line}\n" for line in [*above, *block]))
        self._drawn = len(block)

    def _write(self, text: str) -> None:
        if text and self._stream is not None:
            self._stream.write(text)
            self._stream.flush()

    def start(self) -> ProgressView:
        """On a terminal, refresh the live lines' elapsed time every second until ``close``."""
        if self.live and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick_until_closed, name="progress-view", daemon=True)
            self._ticker.start()
        return self

    def _tick_until_closed(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            self.tick()

    def close(self) -> None:
        """Stop refreshing; the lines last drawn stay where they are, in the scrollback."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(TICK_SECONDS * 2)
        with self._lock:
            self._drawn = 0
