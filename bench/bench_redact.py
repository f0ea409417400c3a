"""Redaction cost (issue 14, secrets): CPU per MiB of log, before and after the encoded forms.

    python bench/bench_redact.py [--runs 5] [--values 10]

Each figure is the median (and range) over ``--runs`` separate processes; each process builds a redactor
for ``--values`` secret values and redacts 1 MiB of log lines (line by line, as ``run --local`` and the
summary do), and reports the CPU time (``time.process_time``, the best of 3 passes: the machine is
shared). Figures: ``before``, the forms and pattern the redactor had before (the value, its lines,
base64 with shifted fragments; one flat alternation, longest first); ``after``, ``Redactor`` as it is
(plus URL-encoded, hex, base64url, unpadded and JSON-escaped forms, compiled as a trie); ``after-flat``,
today's forms compiled the old way, to show what the trie buys. Goal: ``after`` ≤ ``before`` × 1.5.
The last line is ``RESULT {json}`` (see bench/benchlib.py).
"""

from __future__ import annotations

import argparse
import base64
import random
import re
import string
import sys
import time
from pathlib import Path

import benchlib  # bench/ is on sys.path: this file's folder
from benchlib import at_most

ROOT = Path(__file__).resolve().parents[1]
MIB = 1 << 20
MODES = ("before", "after", "after-flat")


def _values(count: int) -> list[str]:
    rng = random.Random(14)
    fixed = ["postgresql://mlflow:p@ss w/rd@db/mlflow", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]
    alphabet = string.ascii_letters + string.digits + "-_/+"
    return (fixed + ["".join(rng.choices(alphabet, k=24)) for _ in range(count)])[:count]


def _log_lines() -> list[str]:
    rng = random.Random(1)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(2000)]
    lines: list[str] = []
    size = 0
    while size < MIB:
        text = " ".join(rng.choices(words, k=12))
        line = f"2026-12-02 19:48:{size % 60:02d} INFO {text} id={rng.getrandbits(64):x}"
        lines.append(line)
        size += len(line) + 1
    return lines


def _flat(forms: set[str]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(f) for f in sorted(forms, key=lambda f: (-len(f), f))))


def _old_forms(value: str) -> set[str]:
    from bodywork_action.redact import _base64_fragments

    forms = {value, *(line.strip() for line in value.splitlines() if len(line.strip()) >= 4)}
    raw = value.encode()
    forms.add(base64.b64encode(raw).decode())
    for shift in (0, 1, 2):
        forms |= _base64_fragments(raw, shift)
    return forms


def child(mode: str, count: int) -> None:
    sys.path.insert(0, str(ROOT))
    from bodywork_action.redact import Redactor, build_secret_forms

    values = _values(count)
    if mode == "after":
        redactor = Redactor(values)
        redact = redactor.redact
        forms = len(redactor)
    else:
        build = _old_forms if mode == "before" else build_secret_forms
        all_forms: set[str] = set()
        for value in values:
            all_forms |= build(value)
        pattern = _flat(all_forms)
        forms = len(all_forms)

        def redact(text: str) -> str:
            return pattern.sub("***", text)

    lines = _log_lines()
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for line in lines:
            redact(line)
        best = min(best, time.process_time() - started)
    benchlib.emit_run({"ms_per_mib": best * 1000, "forms": forms})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    benchlib.runs_argument(parser)
    parser.add_argument("--values", type=int, default=10)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.values)
        return
    bench = benchlib.Bench("redact")
    results: dict[str, list[float]] = {}
    for mode in MODES:
        runs = [
            benchlib.run_process([sys.executable, __file__, "--child", mode, "--values", str(args.values)])
            for _ in range(max(1, args.runs))
        ]
        failed = [r for r in runs if r.returncode != 0]
        if failed:
            bench.note(f"{mode}: {len(failed)} run(s) failed: {failed[0].stderr.strip()[-300:]}")
        results[mode] = [r.report["ms_per_mib"] for r in runs if r.report]
        forms = next((r.report["forms"] for r in runs if r.report), 0)
        bench.note(f"{mode}: {forms} forms for {args.values} values")
    before = sorted(results["before"])[len(results["before"]) // 2] if results["before"] else 0.0
    for mode in MODES:
        goal = at_most(round(before * 1.5, 1)) if mode == "after" and before else None
        bench.figure(
            mode, results[mode], unit="ms/MiB", goal=goal, label=f"{mode}: CPU per MiB of log", digits=1
        )
    bench.finish()


if __name__ == "__main__":
    main()
