"""The MLflow example's test servers and helpers: the server under test, PostgreSQL, moto S3, a Sentry
receiver and the demo client (started by the tests, on 127.0.0.1, stopped after)."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


SERVER_SCRIPT = ROOT / "mlflow_server.py"


DEMO = ROOT / "examples" / "mlflow_demo.py"


SCORING_SERVICE = ROOT / "examples" / "scoring_service.py"


STARTUP_TIMEOUT = 120.0


# Variables of the developer's or CI's shell that would change what the server or a client does.
_STRIP_PREFIXES = ("MLFLOW_", "AWS_", "SENTRY_", "BODYWORK_")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIP_PREFIXES)}
    env.pop("PYTHONPATH", None)
    env.update({"PYTHONUNBUFFERED": "1", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"})
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 10):
    """(status, body) of one request; HTTP errors are returned, not raised."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Server:
    """``python mlflow_server.py`` started by a test."""

    proc: subprocess.Popen
    port: int
    log_path: Path
    workdir: Path
    tree: set[int] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.log()}")
            try:
                if http("GET", f"{self.url}/health", timeout=2)[0] == 200:
                    self.tree = descendants(self.proc.pid)
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not healthy after {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as Kubernetes sends; the exit code. Kills leftovers so no test leaks them."""
        self.tree |= descendants(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        deadline = time.monotonic() + 10
        while any(alive(p) for p in self.tree) and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.proc.returncode

    def leftovers(self) -> list[int]:
        return [p for p in self.tree if alive(p)]

    def kill_leftovers(self) -> None:
        for pid in self.leftovers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def start_server(workdir: Path, env: dict[str, str], args: list[str] | None = None) -> Server:
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT), "--host", "127.0.0.1", "--port", str(port), *(args or [])],
            cwd=workdir,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return Server(proc=proc, port=port, log_path=log_path, workdir=workdir)


def run_demo(tracking_uri: str, model_name: str, env: dict[str, str] | None = None, timeout: float = 180):
    """Run examples/mlflow_demo.py in a subprocess; its JSON summary."""
    result = subprocess.run(
        [sys.executable, str(DEMO), "--tracking-uri", tracking_uri, "--model-name", model_name],
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tempfile.gettempdir(),
    )
    assert result.returncode == 0, f"demo failed:\n{result.stdout}\n{result.stderr}"
    start = result.stdout.index("{\n")
    summary, _ = json.JSONDecoder().raw_decode(result.stdout[start:])
    return summary


@dataclass
class Postgres:
    """TCP connections need a password (scram-sha-256); ``psql`` here uses the socket (trust)."""

    port: int
    socket_dir: Path
    bin_dir: Path

    def psql(self, sql: str, db: str = "postgres") -> str:
        result = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                db,
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        return result.stdout.strip()

    def create_database(self, name: str, password: str) -> str:
        """A database owned by a user of the same name; its URI (TCP, with the password)."""
        self.psql(f"CREATE USER {name} PASSWORD '{password}'")
        self.psql(f"CREATE DATABASE {name} OWNER {name}")
        return f"postgresql://{name}:{password}@127.0.0.1:{self.port}/{name}"


def postgres_bin_dir() -> Path | None:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    candidates = [c for c in candidates if (c / "postgres").exists()]
    return candidates[-1] if candidates else None


@dataclass
class Moto:
    url: str
    proc: subprocess.Popen


class SentryReceiver:
    """A local stand-in for Sentry: records every envelope POSTed to /api/<project>/envelope/."""

    def __init__(self) -> None:
        self.envelopes: list[dict] = []
        self.raw: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                receiver.raw.append(body)
                receiver.envelopes.append(parse_envelope(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.port}/42"

    def events(self) -> list[dict]:
        return [item for env in self.envelopes for kind, item in env["items"] if kind == "event"]


def parse_envelope(body: bytes) -> dict:
    lines = body.split(b"\n")
    header = json.loads(lines[0])
    items, i = [], 1
    while i < len(lines) and lines[i].strip():
        item_header = json.loads(lines[i])
        payload = lines[i + 1] if i + 1 < len(lines) else b"{}"
        try:
            items.append((item_header.get("type"), json.loads(payload)))
        except ValueError:
            items.append((item_header.get("type"), {}))
        i += 2
    return {"header": header, "items": items}
