"""mlflow_server.py against the stock ``mlflow server`` (issue 15, goal 6): figures beside goals.

    python bench/bench_mlflow.py [--backends sqlite,postgresql] [--runs 5] [--seconds 3] [--clients 8]

For each backend (SQLite; PostgreSQL from Debian's binaries, a throwaway cluster on 127.0.0.1), both
servers are started side by side on fresh stores: the stock ``python -m mlflow server`` with its
defaults, and ``python mlflow_server.py`` with its defaults. Each run (``--runs``, alternating the two
servers) is separate client processes using MLflow's own ``MlflowClient``, as users do:

- one client: ``log_metric`` calls/s, ``log_batch`` calls/s (100 metrics a call), ``search_runs``
  calls/s (an experiment of 50 runs with 5 metrics, 5 params and 3 tags each; a filter, an order,
  50 results) — ``--seconds`` each;
- ``--clients`` clients at once (separate processes, started together): the same calls, summed.

Printed per backend: each server's median (and range) and the ratio of medians with its goal (one
client ≥ 1.5× stock; 8 clients ≥ 2× stock), plus start-up to /health and memory (PSS of the process
tree). Beside each ratio, without a goal: each server's own CPU per call (its process tree's CPU in
the call's window ÷ the calls made) and each client's. The clients run on the same cores as the
server, so their CPU bounds the calls/s ratio: with every core busy it tends to (stock's server CPU +
a client's) ÷ (ours + a client's), however fast our server gets. The machine's load is printed before
and after; the last line is ``RESULT {json}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import benchlib  # bench/ is on sys.path: this file's folder
from benchlib import at_least

ROOT = Path(__file__).resolve().parents[1]
CALLS = ("log_metric", "log_batch", "search_runs")
CLIENT_GAP_SECONDS = 0.5  # between one call's window and the next
ONE_CLIENT_GOAL = 1.5
MANY_CLIENTS_GOAL = 2.0

CLIENT = r"""
import json, sys, time
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

url, seconds, start_at, search_experiment = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
gap = float(sys.argv[5])
client = MlflowClient(url)
experiment = client.create_experiment(f"bench-{time.time_ns()}")
run = client.create_run(experiment).info.run_id
for step in range(5):  # warm-up: connection, first queries
    client.log_metric(run, "warm", step, step=step)
client.search_runs([search_experiment], max_results=1)
out = {}
for index, call in enumerate(("log_metric", "log_batch", "search_runs")):
    begin = start_at + index * (seconds + gap)
    while time.time() < begin:
        time.sleep(min(0.05, begin - time.time()))
    calls, started, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - started < seconds:
        if call == "log_metric":
            client.log_metric(run, "m", float(calls), step=calls)
        elif call == "log_batch":
            now = int(time.time() * 1000)
            client.log_batch(run, metrics=[Metric(f"b{i}", float(i), now, calls) for i in range(100)])
        else:
            client.search_runs([search_experiment], filter_string="metrics.m1 >= 0",
                               order_by=["metrics.m1 DESC"], max_results=50)
        calls += 1
    out[call] = calls / (time.perf_counter() - started)
    out[call + "_cpu_ms"] = (time.process_time() - cpu) / calls * 1000
print("BENCHRUN " + json.dumps(out), flush=True)
"""

SETUP = r"""
import sys, time
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
client = MlflowClient(sys.argv[1])
experiment = client.create_experiment(f"search-{time.time_ns()}")
for i in range(50):
    run = client.create_run(experiment).info.run_id
    now = int(time.time() * 1000)
    client.log_batch(
        run,
        metrics=[Metric(f"m{k}", float(i * k), now, 0) for k in range(5)],
        params=[Param(f"p{k}", str(k)) for k in range(5)],
        tags=[RunTag(f"t{k}", "x") for k in range(3)],
    )
print("BENCHRUN " + '{"experiment": "%s"}' % experiment, flush=True)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env() -> dict[str, str]:
    prefixes = ("MLFLOW_", "AWS_", "SENTRY_", "BODYWORK_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes) and k != "PYTHONPATH"}
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


def pss_mb(pid: int) -> float:
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
    return total / 1024


class Server:
    """One server process tree in its own session (so it can be stopped whole)."""

    def __init__(self, label: str, argv: list[str], workdir: Path, env: dict[str, str], port: int) -> None:
        self.label, self.workdir, self.port = label, workdir, port
        self.url = f"http://127.0.0.1:{port}"
        self.log = open(workdir / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            argv,
            cwd=workdir,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_healthy(self, timeout: float = 300) -> float:
        while time.perf_counter() - self.started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.label} exited: {(self.workdir / 'server.log').read_text()[-2000:]}"
                )
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/health", timeout=5) as response,
            ):
                if response.status == 200:
                    return time.perf_counter() - self.started
            time.sleep(0.1)
        raise RuntimeError(f"{self.label} did not become healthy in {timeout}s")

    def stop(self) -> None:
        tree = process_tree(self.proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in tree[1:]):
            time.sleep(0.2)
        for p in [*tree[1:], self.proc.pid]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


class Postgres:
    """A throwaway PostgreSQL cluster (Debian's binaries, run as the postgres user), default settings."""

    def __init__(self) -> None:
        candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
        candidates = [c for c in candidates if (c / "postgres").exists()]
        if not candidates or shutil.which("runuser") is None:
            raise RuntimeError("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin")
        self.bin = candidates[-1]
        self.base = Path(tempfile.mkdtemp(prefix="bench-mlflow-pg-"))
        shutil.chown(self.base, "postgres")
        self.data = self.base / "data"
        self.port = free_port()
        auth = ("--auth-local=trust", "--auth-host=trust")
        self._as_postgres(self.bin / "initdb", "-D", self.data, "-U", "postgres", *auth, "--no-sync")
        options = f"-h 127.0.0.1 -p {self.port} -k {self.base}"
        log = self.base / "server.log"
        self._as_postgres(
            self.bin / "pg_ctl", "-D", self.data, "-l", log, "-w", "-t", "60", "-o", options, "start"
        )

    def _as_postgres(self, *cmd: object) -> str:
        argv = ["runuser", "-u", "postgres", "--", *(str(c) for c in cmd)]
        return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120).stdout

    def create_database(self, name: str) -> str:
        psql = (self.bin / "psql", "-h", self.base, "-p", self.port, "-U", "postgres", "-At", "-c")
        self._as_postgres(*psql, f"CREATE DATABASE {name}")
        # the driver named for both servers: stock MLflow's SQLAlchemy 2.1 would pick psycopg 3
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._as_postgres(self.bin / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


def start(label: str, workdir: Path, backend_uri: str) -> Server:
    workdir.mkdir(parents=True)
    port = free_port()
    env = clean_env()
    if label == "ours":
        argv = [sys.executable, str(ROOT / "mlflow_server.py"), "--host", "127.0.0.1", "--port", str(port)]
    else:  # the stock server with its defaults
        argv = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    env["MLFLOW_BACKEND_STORE_URI"] = backend_uri  # both read it; never on the command line
    return Server(label, argv, workdir, env, port)


def client_env() -> dict[str, str]:
    env = clean_env()
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")  # the clients' own telemetry
    return env


@dataclass(frozen=True)
class Measured:
    """One group of clients: each client's report, and the server's CPU in each call's window."""

    clients: list[dict[str, float]]
    server_cpu_s: dict[str, float]
    seconds: float

    def calls_per_second(self, call: str) -> float:
        return sum(client[call] for client in self.clients)

    def server_cpu_ms_per_call(self, call: str) -> float:
        calls = self.calls_per_second(call) * self.seconds
        return self.server_cpu_s[call] / calls * 1000 if calls else 0.0

    def client_cpu_ms_per_call(self, call: str) -> float:
        return statistics.mean(client[f"{call}_cpu_ms"] for client in self.clients)


def sleep_until(moment: float) -> None:
    while (left := moment - time.time()) > 0:
        time.sleep(min(left, 0.05))


def run_clients(url: str, experiment: str, clients: int, seconds: float, server_pids: list[int]) -> Measured:
    """`clients` client processes at once; each measures the three calls in step with the others,
    while the server's CPU is read at the start and end of each call's window."""
    start_at = time.time() + 6 + 1.5 * clients  # time for every client to import MLflow and warm up
    procs = []
    server_cpu: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(clients):
            out = open(Path(tmp, f"{i}.out"), "w+")  # noqa: SIM115 - closed below
            argv = [sys.executable, "-c", CLIENT, url, str(seconds), str(start_at), experiment]
            argv.append(str(CLIENT_GAP_SECONDS))
            procs.append(
                (subprocess.Popen(argv, env=client_env(), stdout=out, stderr=subprocess.STDOUT), out)
            )
        for index, call in enumerate(CALLS):
            begin = start_at + index * (seconds + CLIENT_GAP_SECONDS)
            sleep_until(begin)
            before = benchlib.processes_cpu_seconds(server_pids)
            sleep_until(begin + seconds)
            server_cpu[call] = benchlib.processes_cpu_seconds(server_pids) - before
        results = []
        for proc, out in procs:
            proc.wait(timeout=600)
            out.seek(0)
            text = out.read()
            out.close()
            lines = [line for line in text.splitlines() if line.startswith(benchlib.RUN_MARK)]
            if proc.returncode != 0 or not lines:
                raise RuntimeError(f"client failed ({proc.returncode}): {text[-1500:]}")
            results.append(json.loads(lines[-1][len(benchlib.RUN_MARK) :]))
    return Measured(results, server_cpu, seconds)


def setup_search_experiment(url: str) -> str:
    proc = benchlib.run_process([sys.executable, "-c", SETUP, url], env=client_env(), timeout=300)
    if not proc.report:
        raise RuntimeError(f"setup failed: {proc.stdout[-1000:]}{proc.stderr[-1000:]}")
    return proc.report["experiment"]


def bench_backend(bench: benchlib.Bench, backend: str, args: argparse.Namespace, base: Path) -> None:
    postgres = Postgres() if backend == "postgresql" else None
    labels = ("stock", "ours")
    servers: dict[str, Server] = {}
    figures: dict[str, dict[str, list[float]]] = {label: {} for label in labels}
    try:
        for label in labels:
            if postgres is not None:
                uri = postgres.create_database(f"bench_{label}")
            else:
                uri = f"sqlite:///{base / backend / label / 'mlflow.db'}"
            servers[label] = start(label, base / backend / label, uri)
            # one at a time: started together, they shared the cores and both timed the slower one
            figures[label]["startup_s"] = [servers[label].wait_healthy()]
        time.sleep(3)  # late children (the stock job runner) settle
        experiments = {label: setup_search_experiment(servers[label].url) for label in labels}
        for run in range(args.runs):
            measured = {}
            for label in labels if run % 2 == 0 else labels[::-1]:
                url = servers[label].url
                tree = process_tree(servers[label].proc.pid)
                try:
                    one = run_clients(url, experiments[label], 1, args.seconds, tree)
                    many = run_clients(url, experiments[label], args.clients, args.seconds, tree)
                except (RuntimeError, subprocess.SubprocessError) as error:  # this run only
                    print(
                        f"  {backend} run {run + 1}/{args.runs} {label}: FAILED: {str(error)[-600:]}",
                        flush=True,
                    )
                    bench.extra.setdefault("errors", {}).setdefault(backend, []).append(str(error)[-1500:])
                    break
                measured[label] = (one, many)
            if len(measured) < len(labels):
                continue  # ratios only from runs where both servers were measured
            for label, (one, many) in measured.items():
                for clients, group in ((1, one), (args.clients, many)):
                    for call in CALLS:
                        for suffix, value in (
                            ("", group.calls_per_second(call)),
                            (".server_cpu_ms", group.server_cpu_ms_per_call(call)),
                            (".client_cpu_ms", group.client_cpu_ms_per_call(call)),
                        ):
                            figures[label].setdefault(f"{clients}.{call}{suffix}", []).append(value)
                print(
                    f"  {backend} run {run + 1}/{args.runs} {label}: "
                    + ", ".join(f"{c} {one.calls_per_second(c):.1f}/s" for c in CALLS)
                    + f"; {args.clients} clients: "
                    + ", ".join(f"{c} {many.calls_per_second(c):.1f}/s" for c in CALLS)
                    + f"; {benchlib.load_text()}",
                    flush=True,
                )
        for label in labels:
            figures[label]["pss_mb"] = [pss_mb(servers[label].proc.pid)]
            figures[label]["processes"] = [len(process_tree(servers[label].proc.pid))]
    finally:
        for server in servers.values():
            server.stop()
        if postgres is not None:
            postgres.stop()
    workers = {
        "sqlite": "gunicorn, 4 workers x 8 threads (SQLite in WAL)",
        "postgresql": "gunicorn, 4 workers x 8 threads",
    }.get(backend, "")
    print(f"{backend}: stock mlflow server (defaults) vs mlflow_server.py ({workers})", flush=True)
    for key in [f"1.{c}" for c in CALLS] + [f"{args.clients}.{c}" for c in CALLS]:
        clients = key.split(".")[0]
        for label in labels:
            bench.figure(
                f"{backend}.{label}.{key}",
                figures[label].get(key, []),
                "calls/s",
                label=f"{backend} {label} {clients} client(s) {key.split('.', 1)[1]}",
                digits=1,
            )
        ratios = [
            o / s
            for o, s in zip(figures["ours"].get(key, []), figures["stock"].get(key, []), strict=True)
            if s
        ]
        goal = at_least(ONE_CLIENT_GOAL if clients == "1" else MANY_CLIENTS_GOAL)
        bench.figure(
            f"{backend}.ratio.{key}",
            ratios,
            "x",
            goal,
            f"{backend} ratio {clients} client(s) {key.split('.', 1)[1]}",
            digits=2,
        )
        # Why a ratio is what it is: the server's own CPU per call, and the clients' (which share the
        # machine's cores with the server, so they bound what a faster server can show).
        for label in labels:
            bench.figure(
                f"{backend}.{label}.{key}.server_cpu_ms",
                figures[label].get(f"{key}.server_cpu_ms", []),
                "ms",
                label=f"{backend} {label} server CPU per call",
                digits=1,
            )
        bench.figure(
            f"{backend}.server_cpu_ratio.{key}",
            [
                s / o
                for s, o in zip(
                    figures["stock"].get(f"{key}.server_cpu_ms", []),
                    figures["ours"].get(f"{key}.server_cpu_ms", []),
                    strict=True,
                )
                if o
            ],
            "x",
            label=f"{backend} server CPU per call, stock ÷ ours",
            digits=2,
        )
        bench.figure(
            f"{backend}.clients.{key}.client_cpu_ms",
            [cpu for label in labels for cpu in figures[label].get(f"{key}.client_cpu_ms", [])],
            "ms",
            label=f"{backend} each client's CPU per call",
            digits=1,
        )
    for key, unit in (("startup_s", "s"), ("pss_mb", "MB"), ("processes", "")):
        for label in labels:
            bench.figure(
                f"{backend}.{label}.{key}",
                figures[label].get(key, []),
                unit,
                label=f"{backend} {label} {key}",
                digits=1,
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per call type per run")
    parser.add_argument("--clients", type=int, default=8)
    benchlib.runs_argument(parser)
    args = parser.parse_args()
    bench = benchlib.Bench("bench_mlflow")
    bench.note(
        "ratio = mlflow_server.py ÷ stock, per run (the two servers alternate); goals on the median ratio"
    )
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-") as tmp:
        for backend in [b for b in args.backends.split(",") if b]:
            try:
                bench_backend(bench, backend, args, Path(tmp))
            except (RuntimeError, subprocess.SubprocessError, OSError) as error:
                bench.note(f"{backend}: not measured: {error}")
                bench.extra.setdefault("errors", {})[backend] = str(error)[:2000]
    bench.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
