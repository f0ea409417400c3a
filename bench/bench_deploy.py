"""Deploy engine speed on the fake cluster (issue 4 "Speed"). Prints figures and targets; asserts nothing.

    python bench/bench_deploy.py [--ready-seconds 1.0] [--repeat 3]

The 4-stage DAG ``a >> b,c >> d`` (a, b batch; c, d service, d with an Ingress) is deployed to the fake
API server at real time (time_scale 1), every stage scripted to be done ``--ready-seconds`` after its
pods are created. Figures:

- wall time ÷ critical-path time (sum over steps of the slowest scripted stage) — target ≤ 1.05;
- detection latency per stage: from the moment the fake marks the Job Complete / the Deployment fully
  available to the moment the executor reports the stage finished — target ≤ 100 ms;
- API requests per stage, not counting the watches (their list + watch requests are shown apart) —
  target ≤ 4.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
from testing.fake_k8s.cluster import FakeCluster

WALL_RATIO_TARGET = 1.05
DETECTION_TARGET_SECONDS = 0.100
REQUESTS_PER_STAGE_TARGET = 4


def build_pipeline() -> Pipeline:
    def stage(name: str, settings: BatchSettings | ServiceSettings) -> Stage:
        return Stage(StageName(name), K8sName(name), f"{name}.py", 0.25, 100, settings)

    stages = [
        stage("a", BatchSettings(60, 0)),
        stage("b", BatchSettings(60, 0)),
        stage("c", ServiceSettings(60, 1, 8000, False)),
        stage("d", ServiceSettings(60, 1, 8000, True)),
    ]
    steps = ((StageName("a"),), (StageName("b"), StageName("c")), (StageName("d"),))
    return Pipeline("bench", "python:3.11-slim", "a >> b,c >> d", steps, {s.name: s for s in stages})


def is_done(kind: str, obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    if kind == "Job":
        return any(
            c.get("type") == "Complete" and c.get("status") == "True" for c in status.get("conditions") or []
        )
    wanted = (obj.get("spec") or {}).get("replicas", 1)
    return (
        status.get("observedGeneration", 0) >= obj["metadata"].get("generation", 0)
        and status.get("updatedReplicas", 0) == wanted
        and status.get("availableReplicas", 0) == wanted
        and status.get("replicas", 0) == wanted
    )


def run_once(ready_seconds: float, run: int) -> dict[str, Any]:
    with FakeCluster(time_scale=1.0, bookmark_interval=5.0) as fake:
        for kind, name in (("Job", "a"), ("Job", "b")):
            fake.script(
                kind, {"app.kubernetes.io/name": name}, {"start_seconds": 0, "run_seconds": ready_seconds}
            )
        for name in ("c", "d"):
            fake.script("Deployment", name, {"start_seconds": 0, "ready_seconds": ready_seconds})
        done_at: dict[str, float] = {}
        lock = threading.Lock()

        def on_store_event(event: Any) -> None:
            kind = event.resource.kind
            if kind not in ("Job", "Deployment") or event.type == "DELETED":
                return
            stage = (event.obj["metadata"].get("labels") or {}).get("app.kubernetes.io/name", "")
            with lock:
                if stage not in done_at and is_done(kind, event.obj):
                    done_at[stage] = time.time()

        fake.store.listeners.append(on_store_event)
        noticed_at: dict[str, float] = {}

        def report(progress: Progress) -> None:
            if progress.kind is ProgressKind.STAGE_FINISHED:
                noticed_at[progress.stages[0]] = time.time()

        context = DeployContext(
            repository_url="https://github.com/example/bench",
            commit="0" * 40,
            deployment_id=f"bench-{run}",
            restart_token=f"bench-{run}",
        )
        started = time.monotonic()
        result = deploy_pipeline(
            build_pipeline(),
            context,
            target=KubeTarget(kubeconfig=str(fake.kubeconfig_path)),
            report=report,
            environ={},
        )
        wall = time.monotonic() - started
        if not result.succeeded:
            raise SystemExit(f"benchmark deployment failed: {result.one_line()}")
        records = list(fake.requests)
    watch_requests = [r for r in records if r.verb in ("watch", "list")]
    other = [r for r in records if r.verb not in ("watch", "list")]
    return {
        "wall": wall,
        "critical_path": 3 * ready_seconds,
        "detection": {s: noticed_at[s] - done_at[s] for s in ("a", "b", "c", "d")},
        "requests": len(other),
        "watch_requests": len(watch_requests),
        "by_verb": {
            verb: sum(1 for r in other if r.verb == verb) for verb in sorted({r.verb for r in other})
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ready-seconds", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    runs = [run_once(args.ready_seconds, i) for i in range(args.repeat)]
    stages = 4
    ratios = [r["wall"] / r["critical_path"] for r in runs]
    best = min(range(len(runs)), key=lambda i: ratios[i])
    print(f"4-stage DAG a >> b,c >> d, each stage ready after {args.ready_seconds:.1f}s, {args.repeat} runs")
    print(
        f"wall / critical path: best {ratios[best]:.3f} (wall {runs[best]['wall']:.3f}s / "
        f"{runs[best]['critical_path']:.1f}s), median {statistics.median(ratios):.3f}"
        f"  (target <= {WALL_RATIO_TARGET})"
    )
    for stage in ("a", "b", "c", "d"):
        values = [r["detection"][stage] * 1000 for r in runs]
        print(
            f"detection latency {stage}: best {min(values):.1f} ms, median {statistics.median(values):.1f} ms"
            f"  (target <= {DETECTION_TARGET_SECONDS * 1000:.0f} ms)"
        )
    run = runs[best]
    print(
        f"API requests per stage (without watches): {run['requests'] / stages:.2f} "
        f"(target <= {REQUESTS_PER_STAGE_TARGET}); by verb {run['by_verb']}; "
        f"plus {run['watch_requests']} list/watch requests ({run['watch_requests'] / stages:.2f} per stage)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
