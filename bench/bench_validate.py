"""Validation and start-up speed (issue 2). Prints figures and their ratio to the targets; asserts nothing.

    python bench/bench_validate.py [--stages 1000] [--repeat 5]

Targets: validating a 1,000-stage bodywork.yaml in under 0.5 s; `bodywork-action --help` starting in
under 0.4 s. Each figure is the best of --repeat runs (the least disturbed by a shared machine), with
the median beside it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

VALIDATE_TARGET_SECONDS = 0.5
HELP_TARGET_SECONDS = 0.4


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


def time_validation(raw: bytes, repeat: int) -> list[float]:
    from bodywork_action.config import validate_config

    validate_config(b'version: "1.1"\n')  # warm the schema cache, as any real run pays once
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        outcome = validate_config(raw)
        timings.append(time.perf_counter() - start)
        assert outcome.pipeline is not None, [p.format() for p in outcome.errors[:3]]
    return timings


def time_cold_validation(raw_path: str, repeat: int) -> list[float]:
    """A whole process validating the file: interpreter start, imports, schema load and validation."""
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "bodywork_action", "validate", "-f", raw_path],
            check=True,
            capture_output=True,
        )
        timings.append(time.perf_counter() - start)
    return timings


def time_help(repeat: int) -> list[float]:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bodywork_action", "--help"], check=True, capture_output=True)
        timings.append(time.perf_counter() - start)
    return timings


def report(label: str, timings: list[float], target: float | None) -> None:
    best, median = min(timings), statistics.median(timings)
    ratio = f"  ratio to target {best / target:.2f} ({'OK' if best <= target else 'OVER'})" if target else ""
    print(f"{label:<44} best {best * 1000:8.1f} ms  median {median * 1000:8.1f} ms{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    raw = generate(args.stages)
    import tempfile

    with tempfile.NamedTemporaryFile("wb", suffix=".yaml", delete=False) as handle:
        handle.write(raw)
    print(f"{args.stages}-stage bodywork.yaml: {len(raw) / 1024:.0f} KiB")
    report(
        f"validate {args.stages} stages (in process)",
        time_validation(raw, args.repeat),
        VALIDATE_TARGET_SECONDS,
    )
    report(
        f"validate {args.stages} stages (whole process)", time_cold_validation(handle.name, args.repeat), None
    )
    report("bodywork-action --help (whole process)", time_help(args.repeat), HELP_TARGET_SECONDS)
    python_only = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        python_only.append(time.perf_counter() - start)
    report("python -c pass (interpreter floor)", python_only, None)


if __name__ == "__main__":
    main()
