"""The fake API server in a process of its own, for bench_deploy (so its CPU is not the tool's).

    python bench/fake_server.py --kubeconfig KC --report OUT.json [--ready-seconds 1.0]

Every Job and Deployment carrying ``app.kubernetes.io/name`` (or ``--stage-label``) is scripted to be
done ``--ready-seconds`` after its pods are created. The kubeconfig is written once the server
listens. On SIGTERM it writes OUT.json: when each stage became done (``time.time()``, by the stage
label), the requests it answered (by verb and resource), and its own CPU seconds; then it exits.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import resource
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bodywork_action.cli import PROGRAM_GC_THRESHOLDS
from testing.fake_k8s.cluster import FakeCluster

STAGE_LABEL = "app.kubernetes.io/name"


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


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--report", required=True)
    parser.add_argument("--ready-seconds", type=float, default=1.0)
    parser.add_argument("--history-size", type=int, default=100_000)
    parser.add_argument("--stage-label", default=STAGE_LABEL, help="label naming each object's stage")
    args = parser.parse_args()
    # The fake holds every object and up to --history-size events: at CPython's default thresholds its
    # collector re-scans them all the time. It collects as seldom as the tool's program does.
    gc.set_threshold(*PROGRAM_GC_THRESHOLDS)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    fake = FakeCluster(
        time_scale=1.0, bookmark_interval=5.0, history_size=args.history_size, kubeconfig_path=args.kubeconfig
    )
    scenario = {"start_seconds": 0, "run_seconds": args.ready_seconds, "ready_seconds": args.ready_seconds}
    fake.script("Job", f"{args.stage_label}!=none", dict(scenario))
    fake.script("Deployment", f"{args.stage_label}!=none", dict(scenario))
    done_at: dict[str, float] = {}

    def on_store_event(event: Any) -> None:
        kind = event.resource.kind
        if kind not in ("Job", "Deployment") or event.type == "DELETED":
            return
        stage = (event.obj["metadata"].get("labels") or {}).get(args.stage_label, "")
        if stage and stage not in done_at and is_done(kind, event.obj):
            done_at[stage] = time.time()

    fake.store.listeners.append(on_store_event)
    with fake:
        stop.wait()
        records = list(fake.requests)
        errors = [repr(e) for e in fake.internal_errors]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    by = collections.Counter(f"{r.verb} {r.resource or r.path}" for r in records)
    Path(args.report).write_text(
        json.dumps(
            {
                "done_at": done_at,
                "requests": dict(by),
                "statuses": dict(collections.Counter(str(r.status) for r in records)),
                "cpu": usage.ru_utime + usage.ru_stime,
                "max_rss_mb": usage.ru_maxrss / 1024,
                "internal_errors": errors[:5],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
