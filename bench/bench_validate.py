"""Validation speed (issue 15, goal 5): whole processes, as users run them; figures beside goals.

    python bench/bench_validate.py [--stages 1000,10000] [--runs 5]

Each figure is the median (and range) over ``--runs`` separate processes of
``python -m bodywork_action validate -f FILE`` on a generated bodywork.yaml, wall and CPU (user + system,
from wait4) of the whole process: interpreter start, imports, schema load and validation. Goals: 1,000
stages ≤ 0.5 s wall and ≤ 0.3 s CPU on a quiet machine; 10,000 stages linear (≤ 10 × the 1,000-stage
figure). ``bodywork-action --help`` (≤ 0.4 s) and ``python -c pass`` (the interpreter's floor) are
measured the same way. The last line is ``RESULT {json}`` (see bench/benchlib.py).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import benchlib  # bench/ is on sys.path: this file's folder
from benchlib import at_most

ROOT = Path(__file__).resolve().parents[1]
VALIDATE_WALL_GOAL_S = 0.5  # 1,000 stages, whole process
VALIDATE_CPU_GOAL_S = 0.3
HELP_GOAL_S = 0.4


def generate(stage_count: int) -> bytes:
    lines = [
        'version: "1.1"',
        "pipeline:",
        "  name: big-pipeline",
        "  docker_image: python:3.11-slim",
    ]
    names = [f"stage_{i}" for i in range(stage_count)]
    steps = [",".join(names[i : i + 10]) for i in range(0, stage_count, 10)]
    lines.append(f"  DAG: {' >> '.join(steps)}")
    lines.append("stages:")
    for i, name in enumerate(names):
        lines += [
            f"  {name}:",
            f"    executable_module_path: stages/{name}.py",
            "    cpu_request: 0.5",
            "    memory_request_mb: 100",
            "    requirements: [numpy>=1.26, pandas]",
            "    secrets: {API_TOKEN: api-credentials}",
        ]
        if i % 5 == 0:
            lines += [
                "    service:",
                "      max_startup_time_seconds: 60",
                "      replicas: 2",
                f"      port: {5000 + i % 1000}",
                "      ingress: false",
            ]
        else:
            lines += ["    batch:", "      max_completion_time_seconds: 600", "      retries: 2"]
    lines += ["logging:", "  log_level: INFO"]
    return ("\n".join(lines) + "\n").encode()


def measure(argv: list[str], runs: int) -> list[benchlib.ProcessRun]:
    out = []
    for _ in range(runs):
        proc = benchlib.run_process(argv, cwd=str(ROOT), timeout=300)
        if proc.returncode != 0:
            raise SystemExit(
                f"{' '.join(argv)} exited {proc.returncode}: {proc.stdout[-500:]}{proc.stderr[-500:]}"
            )
        out.append(proc)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default="1000,10000", help="comma-separated stage counts")
    benchlib.runs_argument(parser)
    args = parser.parse_args()
    bench = benchlib.Bench("bench_validate")
    counts = [int(c) for c in args.stages.split(",") if c]
    walls: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        for count in counts:
            path = Path(tmp, f"bodywork-{count}.yaml")
            raw = generate(count)
            path.write_bytes(raw)
            print(
                f"{count}-stage bodywork.yaml: {len(raw) / 1024:.0f} KiB, {args.runs} processes", flush=True
            )
            runs = measure([sys.executable, "-m", "bodywork_action", "validate", "-f", str(path)], args.runs)
            wall_goal = at_most(VALIDATE_WALL_GOAL_S * count / 1000)
            cpu_goal = at_most(VALIDATE_CPU_GOAL_S * count / 1000)
            entry = bench.figure(
                f"validate_{count}.wall_s",
                [r.wall for r in runs],
                "s",
                wall_goal,
                f"validate {count} stages: wall",
            )
            bench.figure(
                f"validate_{count}.cpu_s",
                [r.cpu for r in runs],
                "s",
                cpu_goal,
                f"validate {count} stages: CPU",
            )
            bench.figure(
                f"validate_{count}.rss_mb",
                [r.max_rss_mb for r in runs],
                "MB",
                label=f"validate {count} stages: peak RSS",
                digits=1,
            )
            if entry:
                walls[count] = entry["median"]
    if 1000 in walls and 10000 in walls:
        bench.figure(
            "validate_10000_over_1000",
            [walls[10000] / walls[1000]],
            "",
            at_most(10.0),
            "wall 10,000 ÷ wall 1,000 stages (linear: <= 10)",
            digits=2,
        )
    help_runs = measure([sys.executable, "-m", "bodywork_action", "--help"], args.runs)
    bench.figure(
        "help.wall_s", [r.wall for r in help_runs], "s", at_most(HELP_GOAL_S), "bodywork-action --help: wall"
    )
    floor = measure([sys.executable, "-c", "pass"], args.runs)
    bench.figure("python_floor.wall_s", [r.wall for r in floor], "s", label="python -c pass: wall (floor)")
    bench.figure("python_floor.cpu_s", [r.cpu for r in floor], "s", label="python -c pass: CPU (floor)")
    bench.finish()


if __name__ == "__main__":
    main()
