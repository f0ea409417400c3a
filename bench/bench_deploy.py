"""Deploy engine speed and scale on the fake API server (issue 15): figures beside goals, no assertions.

    python bench/bench_deploy.py [--runs 5] [--ready-seconds 1.0] [--scales 1x200,1x1000,100x10]
                                 [--scale-ready-seconds 1.0] [--cli-ready-seconds 5.0]
                                 [--skip-dag] [--skip-cli] [--skip-baseline]

Every run is two processes of their own: the fake API server (``bench/fake_server.py``, so its CPU is
never counted as the tool's) and the deploy (this file with ``--child``: a fresh interpreter that
imports the engine and calls ``deploy_pipeline``, as a user's process would). The fake scripts every
Job and Deployment to be done a fixed time after its pods are created. Per run and figure, median and
range over ``--runs`` runs (see bench/benchlib.py), the goal beside each, and a final ``RESULT {json}``.

Scenarios:

- the 4-stage DAG ``a >> b,c >> d`` (a, b batch; c, d service, d with an Ingress), stages ready after
  ``--ready-seconds``: wall ÷ critical path (the sum over steps of the scripted time), detection
  latency (fake marks the stage done → the engine reports it finished), requests per stage;
- the same DAG deployed by ``python -m bodywork_action deploy -f bodywork.yaml --format json`` as a user
  runs it (interpreter start, imports, validation, the deploy, the result), stages ready after
  ``--cli-ready-seconds``: the whole process's wall − critical path (goal ≤ 0.5 s) and its CPU;
- scale ``STEPSxWIDTH`` (every 5th stage a service, the rest batch), stages ready after
  ``--scale-ready-seconds``: wall, wall ÷ critical path, the tool's CPU per stage (the whole process, and
  the deploy call alone), the tool's peak RSS, peak threads, requests per stage, lists and watches per
  deployment, and the fake's CPU beside the tool's.

"Requests per stage" counts every request the tool sent except watch streams — creates, reads, updates,
deletes and lists — divided by the number of stages; lists and watches are also shown per deployment.

Baseline: Bodywork 3.0.12's own controller, when a virtual environment with it can be found
(``--bodywork-venv``, see bench/README.md); otherwise the reason is printed and the bench goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402
from benchlib import CPU_PER_STAGE_GOAL_MS, WALL_RATIO_GOAL, at_most  # noqa: E402

DETECTION_GOAL_MS = 100.0
REQUESTS_PER_STAGE_GOAL = 2.0
RSS_GOAL_MB = 150.0
PROCESS_OVERHEAD_GOAL_S = 0.5  # `bodywork-action deploy`, whole process, beyond the critical path
DAG4_STAGES_YAML = """\
stages:
  a: {executable_module_path: a.py, cpu_request: 0.25, memory_request_mb: 100,
      batch: {max_completion_time_seconds: 60, retries: 0}}
  b: {executable_module_path: b.py, cpu_request: 0.25, memory_request_mb: 100,
      batch: {max_completion_time_seconds: 60, retries: 0}}
  c: {executable_module_path: c.py, cpu_request: 0.25, memory_request_mb: 100,
      service: {max_startup_time_seconds: 60, replicas: 1, port: 8000, ingress: false}}
  d: {executable_module_path: d.py, cpu_request: 0.25, memory_request_mb: 100,
      service: {max_startup_time_seconds: 60, replicas: 1, port: 8000, ingress: true}}
logging:
  log_level: INFO
"""
CLI_BODYWORK_YAML = (
    """\
version: "1.1"
pipeline:
  name: bench
  docker_image: python:3.11-slim
  DAG: a >> b,c >> d
"""
    + DAG4_STAGES_YAML
)


# ---------------------------------------------------------------------------------------------- child
def stage_names(steps: int, width: int) -> list[list[str]]:
    return [[f"s{i}w{j}" for j in range(width)] for i in range(steps)]


def child(args: argparse.Namespace) -> int:
    """The deploy, in a process of its own; reports through benchlib.emit_run."""
    import_started = time.perf_counter()
    cpu_started = time.process_time()
    from bodywork_action.cli import set_program_gc_thresholds

    set_program_gc_thresholds()  # what the program does first: this process measures what ships
    from bodywork_action.executor import Progress, ProgressKind
    from bodywork_action.kube.client import KubeTarget
    from bodywork_action.kube.deploy import deploy_pipeline
    from bodywork_action.model import (
        BatchSettings,
        DeployContext,
        K8sName,
        Pipeline,
        ServiceSettings,
        Stage,
        StageName,
    )

    import_wall = time.perf_counter() - import_started
    import_cpu = time.process_time() - cpu_started

    def stage(name: str, settings: BatchSettings | ServiceSettings) -> Stage:
        return Stage(StageName(name), K8sName(name), f"{name}.py", 0.25, 100, settings)

    if args.child == "dag":
        stages = [
            stage("a", BatchSettings(60, 0)),
            stage("b", BatchSettings(60, 0)),
            stage("c", ServiceSettings(60, 1, 8000, False)),
            stage("d", ServiceSettings(60, 1, 8000, True)),
        ]
        layout = [["a"], ["b", "c"], ["d"]]
    else:
        steps, width = (int(x) for x in args.child.split("x"))
        layout = stage_names(steps, width)
        stages = []
        for k, name in enumerate(n for step in layout for n in step):
            if k % 5 == 4:
                stages.append(stage(name, ServiceSettings(600, 1, 8000, False)))
            else:
                stages.append(stage(name, BatchSettings(600, 0)))
    dag = " >> ".join(",".join(step) for step in layout)
    steps_t = tuple(tuple(StageName(n) for n in step) for step in layout)
    pipeline = Pipeline(args.name, "python:3.11-slim", dag, steps_t, {s.name: s for s in stages})

    started_at: dict[str, float] = {}
    noticed_at: dict[str, float] = {}

    def report(progress: Progress) -> None:
        if progress.kind in (ProgressKind.STAGE_STARTED, ProgressKind.STAGE_FINISHED):
            seen = started_at if progress.kind is ProgressKind.STAGE_STARTED else noticed_at
            for name in progress.stages:
                seen.setdefault(name, time.time())

    peak = {"threads": threading.active_count(), "fds": 0}
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.05):
            peak["threads"] = max(peak["threads"], threading.active_count())
            with contextlib.suppress(OSError):
                peak["fds"] = max(peak["fds"], len(os.listdir("/proc/self/fd")))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    context = DeployContext(
        repository_url="https://github.com/example/bench",
        commit="0" * 40,
        deployment_id=f"bench-{args.run}",
        restart_token=f"bench-{args.run}",
    )
    cpu0, started, called_at = time.process_time(), time.perf_counter(), time.time()
    result = deploy_pipeline(
        pipeline, context, target=KubeTarget(kubeconfig=args.kubeconfig), report=report, environ={}
    )
    wall, deploy_cpu = time.perf_counter() - started, time.process_time() - cpu0
    sampling.set()
    benchlib.emit_run(
        {
            "succeeded": bool(result.succeeded),
            "summary": result.one_line(),
            "wall": wall,
            "deploy_cpu": deploy_cpu,
            "import_wall": import_wall,
            "import_cpu": import_cpu,
            "called_at": called_at,
            "started_at": started_at,
            "noticed_at": noticed_at,
            "stages": len(stages),
            "steps": len(layout),
            "peak_threads": peak["threads"] - 1,  # without the sampler
            "peak_fds": peak["fds"],
        }
    )
    return 0 if result.succeeded else 1


# ---------------------------------------------------------------------------------------------- parent
def one_run(
    scenario: str,
    ready: float,
    run: int,
    timeout: float,
    deploy_argv: list[str] | None = None,
    stage_label: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A fake process and a deploy process; returns the figures of this run (or an error)."""
    import subprocess

    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        kubeconfig, report = Path(tmp, "kubeconfig"), Path(tmp, "fake.json")
        fake_argv = [sys.executable, str(ROOT / "bench" / "fake_server.py"), "--kubeconfig", str(kubeconfig)]
        fake_argv += ["--report", str(report), "--ready-seconds", str(ready)]
        if stage_label:
            fake_argv += ["--stage-label", stage_label]
        fake_log = open(Path(tmp, "fake.log"), "wb")  # noqa: SIM115 - closed below
        fake = subprocess.Popen(
            fake_argv, stdout=fake_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 60
            while not kubeconfig.exists():
                if fake.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "the fake API server did not start: " + Path(tmp, "fake.log").read_text()
                    )
                time.sleep(0.02)
            if deploy_argv is None:
                argv = [sys.executable, __file__, "--child", scenario, "--kubeconfig", str(kubeconfig)]
                argv += ["--run", str(run)]
            else:
                work = Path(tmp, "work")
                work.mkdir()
                slots = {"{kubeconfig}": str(kubeconfig), "{work}": str(work)}
                if any(arg in slots for arg in deploy_argv):
                    argv = [slots.get(arg, arg) for arg in deploy_argv]
                else:
                    argv = [*deploy_argv, str(kubeconfig), str(work)]
            proc = benchlib.run_process(argv, cwd=str(ROOT), timeout=timeout, env=env)
        finally:
            fake.send_signal(signal.SIGTERM)
            _, status, _usage = os.wait4(fake.pid, 0)
            fake.returncode = os.waitstatus_to_exitcode(status)
            fake_log.close()
        fake_report = json.loads(report.read_text()) if report.exists() else {}
    out = proc.report or _cli_report(proc)
    if not out:
        return {"error": f"deploy process exited {proc.returncode} without a report: {proc.stderr[-800:]}"}
    if not out["succeeded"]:
        return {"error": f"deployment failed: {out['summary']}"}
    requests = fake_report.get("requests", {})
    watches = sum(n for k, n in requests.items() if k.startswith("watch "))
    lists = sum(n for k, n in requests.items() if k.startswith("list "))
    resource_requests = sum(
        n
        for k, n in requests.items()
        if k.split(" ", 1)[0] in ("create", "get", "update", "patch", "delete", "list", "deletecollection")
        and "/version" not in k
    )
    detection = {
        s: (out["noticed_at"][s] - fake_report["done_at"][s]) * 1000
        for s in out["noticed_at"]
        if s in fake_report.get("done_at", {})
    }
    stages = out.get("stages", 4)
    out.setdefault("steps", 3)
    started_at, noticed_at = out.get("started_at") or {}, out.get("noticed_at") or {}
    # the deploy call split: connecting (the client's import, lease, namespace, lists, watches) until
    # the first stage starts, then the steps until the last stage is done
    called_at = out.get("called_at")
    to_first_stage = min(started_at.values()) - called_at if started_at and called_at else None
    steps_wall = max(noticed_at.values()) - min(started_at.values()) if started_at and noticed_at else None
    out.setdefault("import_cpu", 0.0)
    out.setdefault("peak_threads", 0)
    out.setdefault("peak_fds", 0)
    return {
        "wall": out["wall"],
        "critical_path": out["steps"] * ready,
        "ratio": out["wall"] / (out["steps"] * ready),
        "to_first_stage_s": to_first_stage,
        "steps_ratio": None if steps_wall is None else steps_wall / (out["steps"] * ready),
        "process_wall": proc.wall,
        "process_cpu": proc.cpu,
        "deploy_cpu": out["deploy_cpu"],
        "import_cpu": out["import_cpu"],
        "cpu_per_stage_ms": proc.cpu / stages * 1000,
        "deploy_cpu_per_stage_ms": out["deploy_cpu"] / stages * 1000,
        "rss_mb": proc.max_rss_mb,
        "peak_threads": out["peak_threads"],
        "peak_fds": out["peak_fds"],
        "requests_per_stage": resource_requests / stages,
        "lists": lists,
        "watches": watches,
        "by_request": requests,
        "detection_ms": list(detection.values()),
        "detection_by_stage": detection,
        "fake_cpu": fake_report.get("cpu"),
        "fake_errors": fake_report.get("internal_errors"),
        "statuses": fake_report.get("statuses"),
    }


def _cli_report(proc: benchlib.ProcessRun) -> dict[str, Any]:
    """The figures of a ``bodywork-action deploy --format json`` process: its result document."""
    try:
        document = json.loads(proc.stdout)
    except ValueError:
        return {}
    if not isinstance(document, dict) or "status" not in document:
        return {}
    return {
        "succeeded": document["status"] == "succeeded",
        "summary": f"{document['status']}: {document.get('message', '')}",
        "wall": proc.wall,  # the whole process: nothing narrower can be seen from outside
        "deploy_cpu": proc.cpu,
        "noticed_at": {},
        "stages": len(document.get("stages") or []),
        "steps": 3,
    }


def run_scenario(
    bench: benchlib.Bench,
    key: str,
    scenario: str,
    ready: float,
    runs: int,
    timeout: float,
    deploy_argv: list[str] | None = None,
) -> list[dict[str, Any]]:
    return benchlib.collect_runs(
        bench,
        key,
        runs,
        lambda run: one_run(scenario, ready, run, timeout, deploy_argv=deploy_argv),
        lambda res: (
            f"wall {res['wall']:.2f}s, tool CPU {res['process_cpu']:.2f}s, "
            f"fake CPU {res['fake_cpu'] or 0:.2f}s"
        ),
    )


def report_scale(bench: benchlib.Bench, key: str, results: list[dict[str, Any]]) -> None:
    col = lambda name: [r[name] for r in results]  # noqa: E731
    bench.figure(f"{key}.wall_s", col("wall"), "s", label=f"{key}: deploy wall")
    bench.figure(
        f"{key}.wall_ratio", col("ratio"), "", at_most(WALL_RATIO_GOAL), f"{key}: wall ÷ critical path"
    )
    bench.figure(
        f"{key}.cpu_per_stage_ms",
        col("cpu_per_stage_ms"),
        "ms",
        at_most(CPU_PER_STAGE_GOAL_MS),
        f"{key}: tool CPU per stage (whole process)",
    )
    bench.figure(
        f"{key}.deploy_cpu_per_stage_ms",
        col("deploy_cpu_per_stage_ms"),
        "ms",
        at_most(CPU_PER_STAGE_GOAL_MS),
        f"{key}: tool CPU per stage (deploy call only)",
    )
    bench.figure(
        f"{key}.rss_mb", col("rss_mb"), "MB", at_most(RSS_GOAL_MB), f"{key}: tool peak RSS", digits=1
    )
    bench.figure(f"{key}.peak_threads", col("peak_threads"), "", label=f"{key}: tool peak threads", digits=0)
    bench.figure(f"{key}.peak_fds", col("peak_fds"), "", label=f"{key}: tool peak open fds", digits=0)
    bench.figure(
        f"{key}.requests_per_stage",
        col("requests_per_stage"),
        "",
        at_most(REQUESTS_PER_STAGE_GOAL),
        f"{key}: requests per stage (lists included)",
        digits=2,
    )
    bench.figure(f"{key}.lists", col("lists"), "", label=f"{key}: lists per deployment", digits=0)
    bench.figure(
        f"{key}.watches", col("watches"), "", label=f"{key}: watch requests per deployment", digits=0
    )
    fake = [r["fake_cpu"] for r in results if r["fake_cpu"] is not None]
    bench.figure(f"{key}.fake_cpu_s", fake, "s", label=f"{key}: the fake's CPU", digits=2)
    ratios = [r["fake_cpu"] / r["process_cpu"] for r in results if r["fake_cpu"] is not None]
    bench.figure(
        f"{key}.fake_cpu_over_tool", ratios, "", at_most(1.0), f"{key}: fake CPU ÷ tool CPU", digits=2
    )
    detection = [statistics.median(r["detection_ms"]) for r in results if r["detection_ms"]]
    bench.figure(
        f"{key}.detection_ms", detection, "ms", label=f"{key}: detection latency (median per run)", digits=1
    )
    if results:
        print(
            f"    requests of the last run: {json.dumps(results[-1]['by_request'], sort_keys=True)}",
            flush=True,
        )


BODYWORK_30_YAML = (
    """\
version: "1.1"
pipeline:
  name: bench
  docker_image: bodyworkml/bodywork-core:3.0
  DAG: a >> b,c >> d
  usage_stats: false
"""
    + DAG4_STAGES_YAML
)

BASELINE_STUBS = (
    "Bodywork 3.0.12 runs its own run_workflow unchanged, with STUBS for what the fake cannot answer: "
    "git clone (a prepared folder is copied), the Docker Hub image check (True), and the RBAC calls "
    "(service account check/setup do nothing)"
)


def baseline(bench: benchlib.Bench, venv: str | None, ready: float, runs: int, timeout: float) -> None:
    """Bodywork 3.0.12's controller on the same fake and DAG, when a venv with it exists."""
    venv = venv or os.environ.get("BODYWORK_30_VENV")
    if not venv:
        bench.note(
            "baseline Bodywork 3.0.12 not run: no virtual environment given (--bodywork-venv or "
            "BODYWORK_30_VENV; install it with the pins of bodywork-3.0-spec.md section 11: "
            "PIP_CONSTRAINT with setuptools<66 and cython<3, then click<8.2)"
        )
        return
    python = Path(venv, "bin", "python")
    if not python.exists():
        bench.note(f"baseline Bodywork 3.0.12 not run: {python} does not exist")
        return
    bench.note(BASELINE_STUBS)
    print(
        f"baseline: Bodywork 3.0.12, 4-stage DAG, each stage ready after {ready:g}s, {runs} runs", flush=True
    )
    env = dict(os.environ)
    env.update({"HTTP_PROXY": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"})  # no usage ping
    with tempfile.TemporaryDirectory(prefix="bench-bodywork30-") as project:
        Path(project, "bodywork.yaml").write_text(BODYWORK_30_YAML)
        for name in "abcd":
            Path(project, f"{name}.py").write_text("")
        argv = [str(python), str(ROOT / "bench" / "bodywork30_runner.py"), project]
        results = benchlib.collect_runs(
            bench,
            "bodywork30",
            runs,
            lambda run: one_run("dag", ready, run, timeout, deploy_argv=argv, stage_label="stage", env=env),
            lambda res: f"wall {res['wall']:.2f}s",
        )
    col = lambda name: [r[name] for r in results]  # noqa: E731
    bench.figure("bodywork30.wall_ratio", col("ratio"), "", label="Bodywork 3.0.12: wall ÷ critical path")
    bench.figure(
        "bodywork30.process_overhead_s",
        [r["process_wall"] - r["critical_path"] for r in results],
        "s",
        label="Bodywork 3.0.12: process wall − critical path",
    )
    for stage in "abcd":
        values = [r["detection_by_stage"][stage] for r in results if stage in r["detection_by_stage"]]
        bench.figure(
            f"bodywork30.detection_ms.{stage}",
            values,
            "ms",
            label=f"Bodywork 3.0.12: detection latency {stage}",
            digits=1,
        )
    bench.figure(
        "bodywork30.requests_per_stage",
        col("requests_per_stage"),
        "",
        label="Bodywork 3.0.12: requests per stage",
        digits=2,
    )
    bench.figure("bodywork30.cpu_s", col("process_cpu"), "s", label="Bodywork 3.0.12: process CPU")
    if results:
        print(
            f"    requests of the last run: {json.dumps(results[-1]['by_request'], sort_keys=True)}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ready-seconds", type=float, default=1.0, help="4-stage DAG: stage ready after")
    parser.add_argument(
        "--scale-ready-seconds", type=float, default=1.0, help="scale runs: stage ready after"
    )
    parser.add_argument("--scales", default="1x200,1x1000,100x10", help="STEPSxWIDTH,... ('' for none)")
    parser.add_argument("--skip-dag", action="store_true")
    parser.add_argument(
        "--cli-ready-seconds", type=float, default=5.0, help="bodywork-action deploy: stage ready after"
    )
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--bodywork-venv", default=None)
    parser.add_argument("--timeout", type=float, default=900, help="seconds per deploy process")
    benchlib.runs_argument(parser)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    parser.add_argument("--run", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--name", default="bench", help=argparse.SUPPRESS)  # the child's pipeline
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    bench = benchlib.Bench("bench_deploy")
    bench.note(
        "the fake API server and the deploy run as two separate processes per run; "
        "the tool's CPU and RSS are the deploy process's"
    )
    if not args.skip_dag:
        print(
            f"4-stage DAG a >> b,c >> d, each stage ready after {args.ready_seconds:g}s, {args.runs} runs",
            flush=True,
        )
        results = run_scenario(bench, "dag4", "dag", args.ready_seconds, args.runs, args.timeout)
        col = lambda name: [r[name] for r in results]  # noqa: E731
        bench.figure(
            "dag4.wall_ratio",
            col("ratio"),
            "",
            at_most(WALL_RATIO_GOAL),
            "dag4: wall ÷ critical path (deploy call)",
        )
        bench.figure(
            "dag4.to_first_stage_s",
            [r["to_first_stage_s"] for r in results if r["to_first_stage_s"] is not None],
            "s",
            label="dag4: call → first stage starts (connect)",
        )
        bench.figure(
            "dag4.steps_ratio",
            [r["steps_ratio"] for r in results if r["steps_ratio"] is not None],
            "",
            at_most(WALL_RATIO_GOAL),
            "dag4: first stage start → last stage done ÷ critical path",
        )
        bench.figure(
            "dag4.process_overhead_s",
            [r["process_wall"] - r["critical_path"] for r in results],
            "s",
            label="dag4: process wall − critical path",
        )
        for stage in "abcd":
            values = [r["detection_by_stage"][stage] for r in results if stage in r["detection_by_stage"]]
            bench.figure(
                f"dag4.detection_ms.{stage}",
                values,
                "ms",
                at_most(DETECTION_GOAL_MS),
                f"dag4: detection latency {stage}",
                digits=1,
            )
        bench.figure(
            "dag4.requests_per_stage",
            col("requests_per_stage"),
            "",
            at_most(REQUESTS_PER_STAGE_GOAL),
            "dag4: requests per stage (lists included)",
            digits=2,
        )
        bench.figure("dag4.lists", col("lists"), "", label="dag4: lists per deployment", digits=0)
        bench.figure(
            "dag4.watches", col("watches"), "", label="dag4: watch requests per deployment", digits=0
        )
        bench.figure("dag4.import_cpu_s", col("import_cpu"), "s", label="dag4: engine import CPU")
        if results:
            print(
                f"    requests of the last run: {json.dumps(results[-1]['by_request'], sort_keys=True)}",
                flush=True,
            )
    if not args.skip_cli:
        print(
            f"bodywork-action deploy as a user runs it, 4-stage DAG, each stage ready after "
            f"{args.cli_ready_seconds:g}s, {args.runs} runs",
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix="bench-cli-") as project:
            config = Path(project, "bodywork.yaml")
            config.write_text(CLI_BODYWORK_YAML)
            argv = [sys.executable, "-m", "bodywork_action", "deploy", "-f", str(config)]
            argv += ["--kubeconfig", "{kubeconfig}", "--repo", "https://github.com/example/bench"]
            argv += ["--commit", "0" * 40, "--format", "json"]
            results = run_scenario(
                bench, "cli4", "dag", args.cli_ready_seconds, args.runs, args.timeout, deploy_argv=argv
            )
        bench.figure(
            "cli4.process_overhead_s",
            [r["process_wall"] - r["critical_path"] for r in results],
            "s",
            at_most(PROCESS_OVERHEAD_GOAL_S),
            "bodywork-action deploy: process wall − critical path",
        )
        bench.figure(
            "cli4.process_cpu_s",
            [r["process_cpu"] for r in results],
            "s",
            label="bodywork-action deploy: process CPU",
        )
    for scale in [s for s in args.scales.split(",") if s]:
        steps, width = (int(x) for x in scale.split("x"))
        print(
            f"scale {steps} step(s) x {width} stages ({steps * width} stages), ready after "
            f"{args.scale_ready_seconds:g}s, {args.runs} runs",
            flush=True,
        )
        results = run_scenario(bench, scale, scale, args.scale_ready_seconds, args.runs, args.timeout)
        report_scale(bench, scale, results)
    if not args.skip_baseline:
        baseline(bench, args.bodywork_venv, args.ready_seconds, args.runs, args.timeout)
    bench.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
