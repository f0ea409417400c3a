"""Benchmark: mlflow_server.py against the stock ``mlflow server`` (its defaults), same backend.

For each server, started in turn on 127.0.0.1 with a fresh SQLite database:

* start-up: seconds from launch to the first 200 from ``/health``;
* memory: PSS summed over the process tree (``/proc/<pid>/smaps_rollup``), after warm-up;
* throughput: ``log_metric`` calls/s (one client, keep-alive session) and ``log_batch`` metrics/s
  (1000 metrics a call), measured for ``--seconds`` each, alternating servers per round.

The client is MLflow's own ``MlflowClient`` in a subprocess, so both servers see identical traffic.
Run: ``python bench/bench_mlflow.py [--seconds 8] [--rounds 2]``. Targets: throughput >= stock,
start-up <= 0.6 x stock, memory <= 0.3 x stock.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CLIENT = r"""
import json, sys, time
from mlflow import MlflowClient
from mlflow.entities import Metric

url, seconds = sys.argv[1], float(sys.argv[2])
client = MlflowClient(url)
experiment = client.create_experiment(f"bench-{time.time_ns()}")
run = client.create_run(experiment).info.run_id
for step in range(20):  # warm-up
    client.log_metric(run, "warm", step, step=step)

calls, started = 0, time.perf_counter()
while time.perf_counter() - started < seconds:
    client.log_metric(run, "m", float(calls), step=calls)
    calls += 1
metric_rate = calls / (time.perf_counter() - started)

batches, started = 0, time.perf_counter()
while time.perf_counter() - started < seconds:
    now = int(time.time() * 1000)
    client.log_batch(run, metrics=[Metric(f"b{i}", float(i), now, batches) for i in range(1000)])
    batches += 1
batch_rate = batches * 1000 / (time.perf_counter() - started)
print(json.dumps({"log_metric_per_s": metric_rate, "log_batch_metrics_per_s": batch_rate}))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env() -> dict[str, str]:
    prefixes = ("MLFLOW_", "AWS_", "SENTRY_", "BODYWORK_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    return env


def process_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [pid], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            tree.append(child)
            todo.append(child)
    return tree


def pss_mb(pid: int) -> tuple[float, int]:
    """(PSS in MB summed over the tree, number of processes)."""
    total, count = 0, 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    count += 1
                    break
        except OSError:
            continue
    return total / 1024, count


class Server:
    def __init__(self, label: str, argv: list[str], workdir: Path, port: int) -> None:
        self.label, self.port, self.workdir = label, port, workdir
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(workdir / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            argv,
            cwd=workdir,
            env=clean_env(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def wait_healthy(self, timeout: float = 180) -> float:
        while time.perf_counter() - self.started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited: {(self.workdir / 'server.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.label} did not become healthy")

    def stop(self) -> None:
        tree = process_tree(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in tree[1:]):
            time.sleep(0.1)
        for p in tree[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        self.log.close()


def start(label: str, base: Path) -> Server:
    workdir = base / label
    workdir.mkdir(parents=True)
    port = free_port()
    backend = f"sqlite:///{workdir / 'mlflow.db'}"
    if label == "mlflow_server.py":
        argv = [sys.executable, str(ROOT / "mlflow_server.py"), "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--backend-store-uri", backend]
    else:  # the stock server with its defaults, the same backend
        argv = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--backend-store-uri", backend]
    return Server(label, argv, workdir, port)


def measure_client(url: str, seconds: float) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", CLIENT, url, str(seconds)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=seconds * 4 + 120,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per throughput measurement")
    parser.add_argument("--rounds", type=int, default=2, help="alternating throughput rounds")
    parser.add_argument("--startups", type=int, default=3, help="start-ups of each server (median)")
    args = parser.parse_args()
    labels = ["stock mlflow server", "mlflow_server.py"]
    results: dict[str, dict] = {label: {"throughput": []} for label in labels}

    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as tmp:
        base = Path(tmp)
        for attempt in range(args.startups):  # start-up alone, alternating, so neither slows the other
            for label in labels:
                server = start(label, base / f"startup-{attempt}")
                try:
                    results[label].setdefault("startups_s", []).append(server.wait_healthy())
                finally:
                    server.stop()
        servers = {}
        try:
            for label in labels:
                server = start(label, base)
                server.wait_healthy()
                servers[label] = server
            time.sleep(3)  # let late children (the stock job runner) settle
            for _ in range(args.rounds):
                for label in labels:
                    results[label]["throughput"].append(measure_client(servers[label].url, args.seconds))
            for label in labels:
                results[label]["pss_mb"], results[label]["processes"] = pss_mb(servers[label].proc.pid)
        finally:
            for server in servers.values():
                server.stop()
        for label in labels:
            results[label]["startup_s"] = statistics.median(results[label]["startups_s"])

    def best(label: str, key: str) -> float:
        return max(r[key] for r in results[label]["throughput"])

    stock, ours = labels
    print(f"{'':28}{'stock mlflow server':>22}{'mlflow_server.py':>20}{'ratio':>9}  target")
    rows = [
        ("start-up to /health (s)", "startup_s", lambda label: results[label]["startup_s"], "<= 0.6"),
        ("memory, PSS of tree (MB)", "pss_mb", lambda label: results[label]["pss_mb"], "<= 0.3"),
        ("log_metric (calls/s)", "m", lambda label: best(label, "log_metric_per_s"), ">= 1.0"),
        ("log_batch (metrics/s)", "b", lambda label: best(label, "log_batch_metrics_per_s"), ">= 1.0"),
    ]
    for title, _, value, target in rows:
        s, o = value(stock), value(ours)
        print(f"{title:28}{s:>22.1f}{o:>20.1f}{o / s:>9.2f}  {target}")
    print(f"{'processes':28}{results[stock]['processes']:>22}{results[ours]['processes']:>20}")
    print(json.dumps(results, indent=2), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
