"""What every benchmark here shares: runs in separate processes, medians with ranges, goals, load.

A benchmark measures each figure over ``--runs`` (at least 5) separate processes, the way a user runs
the tool, and prints for each figure its median, its range (min–max) and the goal beside it, judged on
the median. The machine's load average is printed before and after, since these machines are shared,
and so is a calibration: the CPU time of a fixed piece of Python work, which moves by a fifth or more
from hour to hour here, and CPU figures with it.
The last line of a benchmark is ``RESULT {json}`` (one line, machine-readable) so scripts can compare
runs: ``{"bench": name, "load": [before, after], "calibration_cpu_ms": {before, after}, "figures":
{name: {median, min, max, n, unit, goal, met}}, ...}``.

Nothing here asserts: a benchmark reports, it never fails on a figure.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIN_RUNS = 5

# Issue 15's goals for the deploy engine, shared by bench_deploy (the fake) and bench_controlplane.
WALL_RATIO_GOAL = 1.05  # wall ÷ critical path
CPU_PER_STAGE_GOAL_MS = 5.0  # the tool's CPU per stage
RUN_MARK = "BENCHRUN "


def compile_package() -> None:
    """Write the package's bytecode before measuring, as pip and the action's image leave it: in a
    checkout whose ``.pyc`` files are stale (an edit, with PYTHONDONTWRITEBYTECODE set) every child
    process would otherwise compile the edited modules again, and the benchmark would time that."""
    import compileall

    compileall.compile_dir(Path(__file__).resolve().parents[1] / "bodywork_action", quiet=1)


def load() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages (runnable processes; this machine has os.cpu_count() cores)."""
    return os.getloadavg()


def load_text() -> str:
    one, five, fifteen = load()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


# A fixed piece of pure-Python work (dicts, strings, integers: what the tool and the server do most),
# timed in CPU seconds before and after every benchmark. On these shared machines the same code takes
# a fifth or more CPU more or less from one hour to the next (65.7 then 39.9 ms around one bench_mlflow
# run); figures in CPU time move with this one, so runs compare fairly only beside their calibrations.
CALIBRATION_ROUNDS = 5


def calibration_workload() -> int:
    table: dict[str, int] = {}
    for i in range(60_000):
        key = f"stage-{i % 997}-{i}"
        table[key] = len(key) + i * 7 % 13
    return sum(table.values()) + len(sorted(table)[:10])


def calibrate(rounds: int = CALIBRATION_ROUNDS) -> list[float]:
    """The fixed workload's CPU time in milliseconds, ``rounds`` times."""
    times = []
    for _ in range(rounds):
        start = time.process_time()
        calibration_workload()
        times.append((time.process_time() - start) * 1000)
    return times


def calibration_text(times: Sequence[float]) -> str:
    return (
        f"calibration: a fixed Python workload took {statistics.median(times):.1f} ms of CPU "
        f"(median of {len(times)}, range {min(times):.1f}–{max(times):.1f})"
    )


def processes_cpu_seconds(pids: Iterable[int]) -> float:
    """CPU seconds (user + system) these running processes have used so far; one that has exited
    counts nothing."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class ProcessRun:
    """One measured child process: its wall time, CPU time (user + system), peak RSS and its report."""

    wall: float
    cpu: float
    max_rss_mb: float
    returncode: int
    report: dict[str, Any]
    stdout: str
    stderr: str


def run_process(
    argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | None = None, timeout: float = 900
) -> ProcessRun:
    """Run one child to its end and measure it with wait4 (its own rusage, not its siblings').

    The child may print a line ``BENCHRUN {json}``; that object becomes ``report``. Output goes to
    temporary files, so a chatty child cannot block on a full pipe.
    """
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    report: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith(RUN_MARK):
            report = json.loads(line[len(RUN_MARK) :])
    return ProcessRun(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,
        returncode=proc.returncode,
        report=report,
        stdout=stdout,
        stderr=stderr,
    )


def emit_run(report: dict[str, Any]) -> None:
    """Called in a child: hand its figures to the parent (one line on stdout)."""
    print(RUN_MARK + json.dumps(report), flush=True)


@dataclass
class Goal:
    """``value <= limit`` (at_most) or ``value >= limit``; ``text`` is how it is printed."""

    limit: float
    at_most: bool = True

    def met(self, value: float) -> bool:
        return value <= self.limit if self.at_most else value >= self.limit

    def text(self, unit: str = "") -> str:
        return f"{'<=' if self.at_most else '>='} {self.limit:g}{(' ' + unit) if unit else ''}"


def at_most(limit: float) -> Goal:
    return Goal(limit, True)


def at_least(limit: float) -> Goal:
    return Goal(limit, False)


@dataclass
class Bench:
    """Collects figures, prints them as they come and the RESULT line at the end."""

    name: str
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        compile_package()
        self.load_before = load()
        self.calibration_before = calibrate()
        print(
            f"[{self.name}] {load_text()}; {calibration_text(self.calibration_before)} (before)", flush=True
        )

    def figure(
        self,
        key: str,
        values: Sequence[float],
        unit: str = "",
        goal: Goal | None = None,
        label: str | None = None,
        digits: int = 3,
    ) -> dict[str, Any] | None:
        values = [float(v) for v in values if v is not None]
        if not values:
            print(f"  {label or key:<52} no value")
            return None
        med, lo, hi = statistics.median(values), min(values), max(values)
        entry: dict[str, Any] = {
            "median": round(med, 6),
            "min": round(lo, 6),
            "max": round(hi, 6),
            "n": len(values),
            "unit": unit,
        }
        verdict = ""
        if goal is not None:
            entry["goal"] = goal.text(unit)
            entry["met"] = goal.met(med)
            verdict = f"  goal {goal.text(unit):<14} {'met' if entry['met'] else 'NOT MET'}"
        few = "" if len(values) >= MIN_RUNS else f"  (only {len(values)} runs)"
        print(
            f"  {label or key:<52} median {med:>10.{digits}f} {unit:<6} range {lo:.{digits}f}–{hi:.{digits}f}"
            f"{verdict}{few}",
            flush=True,
        )
        self.figures[key] = entry
        return entry

    def note(self, text: str) -> None:
        print(f"  note: {text}", flush=True)
        self.notes.append(text)

    def finish(self) -> None:
        after = load()
        calibration_after = calibrate()
        print(f"[{self.name}] {load_text()}; {calibration_text(calibration_after)} (after)", flush=True)
        payload = {
            "bench": self.name,
            "load": {
                "before": [round(x, 2) for x in self.load_before],
                "after": [round(x, 2) for x in after],
            },
            "calibration_cpu_ms": {
                "before": round(statistics.median(self.calibration_before), 2),
                "after": round(statistics.median(calibration_after), 2),
            },
            "cores": os.cpu_count(),
            "python": sys.version.split()[0],
            "figures": self.figures,
            "notes": self.notes,
            **self.extra,
        }
        print("RESULT " + json.dumps(payload, sort_keys=True), flush=True)


def collect_runs(
    bench: Bench,
    key: str,
    runs: int,
    run_once: Callable[[int], dict[str, Any]],
    describe: Callable[[dict[str, Any]], str],
) -> list[dict[str, Any]]:
    """``run_once(run)`` for each run, printing each as it ends (``describe`` it, then the load); a run
    that returns ``{"error": ...}`` is printed and kept in the RESULT line's ``errors``, not counted.
    Two failures before any success end the scenario: no figure will come of it."""
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    for run in range(runs):
        started = time.perf_counter()
        res = run_once(run)
        took = time.perf_counter() - started
        if "error" in res:
            errors.append(res["error"])
            print(f"  {key} run {run + 1}/{runs}: FAILED after {took:.1f}s: {res['error'][:400]}", flush=True)
            if len(errors) >= 2 and not results:
                break
            continue
        results.append(res)
        print(f"  {key} run {run + 1}/{runs}: {describe(res)}, {load_text()}", flush=True)
    if errors:
        bench.extra.setdefault("errors", {})[key] = errors
    return results


def runs_argument(parser: Any, default: int = MIN_RUNS) -> None:
    parser.add_argument(
        "--runs", type=int, default=default, help=f"separate processes per figure (default {default}, min 1)"
    )
