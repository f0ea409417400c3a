"""Wide-and-long pipelines on the real control plane, stages ready after 5 s (issue 15): wall ÷ critical
path beside its goal, and where the time beyond the critical path goes. No assertions.

    python bench/bench_controlplane.py [--runs 5] [--scale 20x10] [--ready-seconds 5]

The control plane is the test tier's (tests/controlplane): etcd, kube-apiserver, the real
controller manager and scheduler, and kwok's simulated nodes, built from Go modules on first use
(testing/cluster). kwok is started with stages that make this benchmark's pods take ``--ready-seconds``:
a Job's pod runs at once and succeeds after them, a Deployment's pod becomes ready after them
(testing/cluster/behaviours.timed_pipeline_stages). Every run is a deploy process of its own
(``bench/bench_deploy.py --child``: a fresh interpreter calling ``deploy_pipeline``) with a pipeline
of its own; every 5th stage is a service, as in bench_deploy.

The critical path is steps × ready seconds. What a run takes beyond it is split, per stage, with a
watch this benchmark keeps on the run's Pods, Jobs and Deployments (its own clock, the same machine):

- create → pod: the stage started (the tool creates its Job or Deployment) → its pod exists (the Job
  or ReplicaSet controller made it);
- pod → running: the scheduler bound it and kwok started it;
- ready → pod done: the stage's time was up → kwok marked its pod Succeeded (a Job's) or Ready;
- pod done → done seen: → its Job is Complete or its Deployment available, as this benchmark's watch
  saw it (the Job controller syncs a Job at most once a second after its pods change:
  ``SyncJobBatchPeriod`` in Kubernetes' pkg/controller/job);
- detection: that → the tool reported the stage finished (the tool's own watch and verdict).

On 2 cores the five control-plane processes share the CPU with the tool; their CPU is printed beside
the tool's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402
from benchlib import CPU_PER_STAGE_GOAL_MS, WALL_RATIO_GOAL, at_most  # noqa: E402

NAME_LABEL = "app.kubernetes.io/name"


def pipeline_name(run: int) -> str:
    return f"cpbench-{run}"


class Observer:
    """Watches one namespace's Pods, Jobs and Deployments; records when each stage's object was first
    seen in each state (time.time(), comparable with the deploy process's report)."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.seen: dict[str, dict[str, float]] = {"pod": {}, "running": {}, "pod_done": {}, "done": {}}
        self._watches: list[Any] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> Observer:
        from kubernetes import client

        core, apps, batch = (
            client.CoreV1Api(self.api_client),
            client.AppsV1Api(self.api_client),
            client.BatchV1Api(self.api_client),
        )
        for lister, judge in (
            (core.list_namespaced_pod, self._pod),
            (batch.list_namespaced_job, self._job),
            (apps.list_namespaced_deployment, self._deployment),
        ):
            thread = threading.Thread(target=self._follow, args=(lister, judge), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for watch in self._watches:
            watch.stop()
        for thread in self._threads:
            thread.join(10)

    def _follow(self, lister: Callable[..., Any], judge: Callable[[dict[str, Any]], None]) -> None:
        from kubernetes import watch

        stream = watch.Watch()
        self._watches.append(stream)
        try:
            for event in stream.stream(lister, self.namespace, timeout_seconds=3600):
                judge(event["raw_object"])
        except Exception:  # stop() closes the stream under the reader: the run is over
            pass

    def _mark(self, state: str, obj: dict[str, Any]) -> None:
        stage = ((obj.get("metadata") or {}).get("labels") or {}).get(NAME_LABEL)
        if stage:
            self.seen[state].setdefault(stage, time.time())

    def _pod(self, pod: dict[str, Any]) -> None:
        self._mark("pod", pod)
        status = pod.get("status") or {}
        if status.get("phase") in ("Running", "Succeeded"):
            self._mark("running", pod)
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
        )
        owners = {o.get("kind") for o in (pod.get("metadata") or {}).get("ownerReferences") or []}
        if status.get("phase") == "Succeeded" or (ready and "Job" not in owners):
            self._mark("pod_done", pod)  # a Job's pod succeeded, a Deployment's pod is ready

    def _job(self, job: dict[str, Any]) -> None:
        conditions = (job.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Complete" and c.get("status") == "True" for c in conditions):
            self._mark("done", job)

    def _deployment(self, deployment: dict[str, Any]) -> None:
        spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
        wanted = spec.get("replicas", 1)
        current = status.get("observedGeneration", 0) >= (deployment["metadata"].get("generation") or 0)
        if (
            current
            and status.get("updatedReplicas", 0) >= wanted
            and status.get("availableReplicas", 0) >= wanted
        ):
            self._mark("done", deployment)


def step_of(stage: str) -> int:
    """bench_deploy names stage j of step i ``s{i}w{j}``."""
    return int(stage[1:].split("w", 1)[0])


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def one_run(control_plane: Any, scale: str, ready: float, run: int, timeout: float) -> dict[str, Any]:
    from bodywork_action.kube.client import KubeTarget
    from bodywork_action.kube.inventory import delete_pipeline
    from bodywork_action.model import Pipeline

    name = pipeline_name(run)
    observer = Observer(control_plane.api_client(), name).start()
    cluster_cpu = benchlib.processes_cpu_seconds(control_plane.pids().values())
    argv = [sys.executable, str(ROOT / "bench" / "bench_deploy.py"), "--child", scale]
    argv += ["--kubeconfig", str(control_plane.kubeconfig_path), "--run", str(run), "--name", name]
    try:
        proc = benchlib.run_process(argv, cwd=str(ROOT), timeout=timeout)
    finally:
        cluster_cpu = benchlib.processes_cpu_seconds(control_plane.pids().values()) - cluster_cpu
        time.sleep(0.5)  # let the observer's watches deliver what they already have
        observer.stop()
        target = KubeTarget(kubeconfig=str(control_plane.kubeconfig_path))
        delete_pipeline(Pipeline(name, "", "", (), {}), target=target, environ={})
    out = proc.report
    if not out:
        return {"error": f"deploy process exited {proc.returncode} without a report: {proc.stderr[-800:]}"}
    if not out["succeeded"]:
        return {"error": f"deployment failed: {out['summary']}"}
    started, noticed, seen = out["started_at"], out["noticed_at"], observer.seen
    stages = sorted(started)

    def per_stage(later: dict[str, float], earlier: dict[str, float], minus: float = 0.0) -> float | None:
        return _median(
            [(later[s] - earlier[s] - minus) * 1000 for s in stages if s in later and s in earlier]
        )

    critical_path = out["steps"] * ready
    # What the cluster took for each step, from the tool's creates to the last verdict it published
    # (this benchmark's watch): the least any tool could take. The rest of the wall is the tool's own.
    steps: dict[int, list[str]] = {}
    for stage in stages:
        steps.setdefault(step_of(stage), []).append(stage)
    cluster_floor = sum(
        max(seen["done"][s] for s in names) - min(started[s] for s in names)
        for names in steps.values()
        if all(s in seen["done"] for s in names)
    )
    return {
        "wall": out["wall"],
        "critical_path": critical_path,
        "ratio": out["wall"] / critical_path,
        "process_wall": proc.wall,
        "cluster_floor": cluster_floor,
        "tool_share_s": out["wall"] - cluster_floor,
        "stage_overhead_ms": per_stage(noticed, started, ready),
        "create_to_pod_ms": per_stage(seen["pod"], started),
        "pod_to_running_ms": per_stage(seen["running"], seen["pod"]),
        "ready_to_pod_done_ms": per_stage(seen["pod_done"], seen["running"], ready),
        "pod_done_to_done_ms": per_stage(seen["done"], seen["pod_done"]),
        "detection_ms": per_stage(noticed, seen["done"]),
        "observed": {state: len(times) for state, times in seen.items()},
        "stages": out["stages"],
        "tool_cpu": proc.cpu,
        "cpu_per_stage_ms": proc.cpu / out["stages"] * 1000,
        "deploy_cpu_per_stage_ms": out["deploy_cpu"] / out["stages"] * 1000,
        "cluster_cpu": cluster_cpu,
        "rss_mb": proc.max_rss_mb,
        "peak_threads": out["peak_threads"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="20x10", help="STEPSxWIDTH (default 20x10)")
    parser.add_argument("--ready-seconds", type=float, default=5.0, help="a stage's pods take this long")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per deploy process")
    benchlib.runs_argument(parser)
    args = parser.parse_args(argv)
    steps, width = (int(x) for x in args.scale.split("x"))

    from testing.cluster.binaries import ensure_binaries
    from testing.cluster.launcher import start_control_plane

    bench = benchlib.Bench("bench_controlplane")
    bench.note(
        "the real control plane (etcd, kube-apiserver, controller manager, scheduler, kwok nodes) and "
        "one deploy process per run share this machine's CPU"
    )
    bin_dir = ensure_binaries(progress=lambda line: print(f"  build: {line}", flush=True))
    timed = {pipeline_name(run): args.ready_seconds for run in range(args.runs)}
    key = f"cp{args.scale}"
    with start_control_plane(bin_dir, timed_pipelines=timed) as control_plane:
        print(
            f"{args.scale} ({steps * width} stages, every 5th a service) on the real control plane "
            f"(started in {control_plane.startup_seconds:.1f} s), stages ready after "
            f"{args.ready_seconds:g} s, {args.runs} runs",
            flush=True,
        )
        results = benchlib.collect_runs(
            bench,
            key,
            args.runs,
            lambda run: one_run(control_plane, args.scale, args.ready_seconds, run, args.timeout),
            lambda res: (
                f"wall {res['wall']:.1f} s for a critical path of {res['critical_path']:.0f} s, tool CPU "
                f"{res['tool_cpu']:.2f} s, control plane CPU {res['cluster_cpu']:.1f} s, "
                f"observed {res['observed']}"
            ),
        )

    def col(name: str) -> list[float]:
        return [r[name] for r in results if r[name] is not None]

    bench.figure(
        f"{key}.wall_ratio", col("ratio"), "", at_most(WALL_RATIO_GOAL), f"{key}: wall ÷ critical path"
    )
    bench.figure(
        f"{key}.wall_to_cluster_floor",
        [r["wall"] / r["cluster_floor"] for r in results if r["cluster_floor"]],
        "",
        label=f"{key}: wall ÷ what the cluster took (steps' creates → last done)",
    )
    bench.figure(
        f"{key}.tool_share_s",
        col("tool_share_s"),
        "s",
        label=f"{key}: wall − what the cluster took (the tool's own)",
        digits=2,
    )
    bench.figure(f"{key}.wall_s", col("wall"), "s", label=f"{key}: wall of the deploy call", digits=1)
    bench.figure(
        f"{key}.process_overhead_s",
        [r["process_wall"] - r["critical_path"] for r in results],
        "s",
        label=f"{key}: process wall − critical path",
        digits=2,
    )
    bench.figure(
        f"{key}.stage_overhead_ms",
        col("stage_overhead_ms"),
        "ms",
        label=f"{key}: a stage beyond its {args.ready_seconds:g} s",
        digits=0,
    )
    for part, text in (
        ("create_to_pod_ms", "create → pod exists (Job/ReplicaSet controller)"),
        ("pod_to_running_ms", "pod → running (scheduler, kwok)"),
        ("ready_to_pod_done_ms", "ready → pod succeeded or ready (kwok)"),
        ("pod_done_to_done_ms", "pod → Job Complete / Deployment available (controllers)"),
        ("detection_ms", "done seen → tool reports it (the tool)"),
    ):
        bench.figure(f"{key}.{part}", col(part), "ms", label=f"{key}:   {text}", digits=0)
    bench.figure(
        f"{key}.cpu_per_stage_ms",
        col("cpu_per_stage_ms"),
        "ms",
        at_most(CPU_PER_STAGE_GOAL_MS),
        f"{key}: tool CPU per stage (whole process)",
        digits=1,
    )
    bench.figure(
        f"{key}.cluster_cpu_s", col("cluster_cpu"), "s", label=f"{key}: control plane CPU per run", digits=1
    )
    bench.figure(f"{key}.rss_mb", col("rss_mb"), "MB", label=f"{key}: tool peak RSS", digits=0)
    bench.figure(f"{key}.peak_threads", col("peak_threads"), "", label=f"{key}: tool peak threads", digits=0)
    bench.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
