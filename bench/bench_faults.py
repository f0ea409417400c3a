"""Deploys through a failing API server (issue 14): success counts per fault rate, and outages.

    python bench/bench_faults.py [--runs 5] [--deploys 10] [--rates 0.10,0.25] [--outage 30] [--code DIR]

Each run is its own process (see bench/benchlib.py): it starts a fake API server (testing/fake_k8s)
in-process, and deploys the 4-stage DAG ``a >> b,c >> d`` (a reads a secret) ``--deploys`` times at
each fault rate, each deploy against a fresh fake. A fault rate ``r`` fails ``r`` of all resource
requests, a quarter each 429 (Retry-After: 0), 500, 503 and dropped connections; every watch
stream is cut after 20 events. A deploy counts as correct only if it succeeded with every stage
succeeded, one Job per batch stage (and exactly two successful Job creates), the right Deployments,
Services and Ingress, and the secret holding exactly the supplied values (testing/fault_deploys.py).

Outage: one deploy where every request is dropped for ``--outage`` seconds from the moment stage b's
Job exists (b finishes 10 s into the outage); figures: did the deploy succeed (1/0), and its wall
time (the outage plus the back-off until the first request gets through, plus the rest of the DAG).

``--code DIR`` imports ``bodywork_action`` from DIR (e.g. a ``git worktree`` of an older commit) to
measure the engine before a change; the fake and the checks always come from this checkout.
Figures: median and range over ``--runs`` processes, the goal beside each, and a last line
``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402
from benchlib import at_least  # noqa: E402


def child(args: argparse.Namespace) -> None:
    if args.code:
        sys.path.insert(0, args.code)  # the engine under test, ahead of this checkout
    from bodywork_action.executor import Progress, ProgressKind
    from bodywork_action.kube.client import KubeTarget
    from bodywork_action.kube.deploy import deploy_pipeline
    from testing.builders import context, mlflow_secret_supply
    from testing.fake_k8s.cluster import FakeCluster
    from testing.fault_deploys import check_deploy, faulty_pipeline, set_fault_rate

    def one(rate: float, seed: int) -> bool:
        fake = FakeCluster(time_scale=0.05, bookmark_interval=0.2)
        fake.start()
        try:
            set_fault_rate(fake, rate, seed=seed)
            try:
                result = deploy_pipeline(
                    faulty_pipeline(),
                    context("run-1"),
                    target=KubeTarget(kubeconfig=str(fake.kubeconfig_path)),
                    secrets=mlflow_secret_supply(),
                    environ={},
                )
            except Exception as exc:  # the engine before the change raised on faults
                print(f"  rate {rate} seed {seed}: {type(exc).__name__}: {str(exc)[:120]}", file=sys.stderr)
                return False
            fake.faults.reset()
            return check_deploy(fake, result).correct
        finally:
            fake.stop()

    report: dict[str, float] = {}
    seed_base = int(time.time() * 1000) % 1_000_000
    for rate in [float(r) for r in args.rates.split(",")] if args.deploys else []:
        report[f"ok_{rate:g}"] = sum(one(rate, seed_base + i) for i in range(args.deploys))
    if args.outage > 0:
        fake = FakeCluster(time_scale=0.05, bookmark_interval=0.2)
        fake.start()
        try:
            # b's Job exists when the outage begins, and finishes 10 s into it (seen once it is over).
            fake.script("Job", {"app.kubernetes.io/name": "b"}, {"run_seconds": 10 / 0.05})

            def begin() -> None:
                fake.wait_for(lambda: fake.list("Job", "demo", labels="app.kubernetes.io/name=b"), timeout=60)
                fake.faults.rate_drop = 1.0
                timer = threading.Timer(args.outage, fake.faults.reset)
                timer.daemon = True
                timer.start()

            def on_progress(progress: Progress) -> None:
                if progress.kind is ProgressKind.STAGE_STARTED and progress.stages == ("b",):
                    threading.Thread(target=begin, daemon=True).start()

            started = time.perf_counter()
            try:
                result = deploy_pipeline(
                    faulty_pipeline(),
                    context("run-1"),
                    target=KubeTarget(kubeconfig=str(fake.kubeconfig_path)),
                    secrets=mlflow_secret_supply(),
                    environ={},
                    report=on_progress,
                )
                report["outage_ok"] = float(check_deploy(fake, result).correct)
            except Exception as exc:
                print(f"  outage: {type(exc).__name__}: {str(exc)[:160]}", file=sys.stderr)
                report["outage_ok"] = 0.0
            report["outage_wall"] = time.perf_counter() - started
        finally:
            fake.stop()
    benchlib.emit_run(report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=benchlib.MIN_RUNS)
    parser.add_argument("--deploys", type=int, default=10, help="deploys per fault rate, per run")
    parser.add_argument("--rates", default="0.10,0.25")
    parser.add_argument("--outage", type=float, default=30.0, help="seconds; 0 skips the outage")
    parser.add_argument("--code", default="", help="import bodywork_action from this directory")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    bench = benchlib.Bench("bench_faults")
    argv = [sys.executable, __file__, "--child", "--deploys", str(args.deploys), "--rates", args.rates]
    argv += ["--outage", str(args.outage)] + (["--code", args.code] if args.code else [])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    runs = []
    for _ in range(max(args.runs, benchlib.MIN_RUNS)):
        run = benchlib.run_process(argv, env=env, cwd=str(ROOT), timeout=1800)
        if run.returncode != 0 or not run.report:
            print(f"  a run failed (exit {run.returncode}): {run.stderr[-400:]}", flush=True)
            continue
        if run.stderr.strip():
            print(run.stderr.rstrip(), flush=True)
        runs.append(run.report)
    for rate in args.rates.split(",") if args.deploys else []:
        key = f"ok_{float(rate):g}"
        bench.figure(
            key,
            [r[key] for r in runs],
            unit=f"of {args.deploys}",
            goal=at_least(args.deploys),
            label=f"correct deploys at {float(rate):.0%} faults",
            digits=1,
        )
    if args.outage > 0:
        bench.figure(
            "outage_ok",
            [r["outage_ok"] for r in runs],
            goal=at_least(1),
            label=f"deploy through a {args.outage:g}-s outage succeeded (1/0)",
            digits=1,
        )
        bench.figure(
            "outage_wall", [r["outage_wall"] for r in runs], unit="s", label="its wall time", digits=1
        )
    bench.extra["code"] = args.code or "this checkout"
    bench.finish()


if __name__ == "__main__":
    main()
