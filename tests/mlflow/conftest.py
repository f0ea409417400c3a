"""Fixtures for the MLflow example's tests; the servers and helpers live in testing/mlflow_servers.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.mlflow_servers import (
    Moto,
    Postgres,
    SentryReceiver,
    Server,
    clean_env,
    free_port,
    http,
    postgres_bin_dir,
    start_server,
)


@pytest.fixture(scope="module")
def server_factory(tmp_path_factory) -> Iterator:
    """Start servers for one module; every one of them is stopped when the module ends."""
    servers: list[Server] = []

    def factory(env: dict[str, str], args: list[str] | None = None, name: str = "server") -> Server:
        server = start_server(tmp_path_factory.mktemp(name), env, args)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()
        server.kill_leftovers()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster (initdb + pg_ctl as the postgres user) on 127.0.0.1."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None or shutil.which("runuser") is None:
        pytest.fail("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin (.ci/run installs them)")
    base = Path(tempfile.mkdtemp(prefix="mlflow-pg-"))
    shutil.chown(base, "postgres")
    data = base / "data"
    port = free_port()

    def as_postgres(*cmd: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True, timeout=60)

    as_postgres(
        str(bin_dir / "initdb"),
        *("-D", str(data), "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"),
    )
    as_postgres(
        str(bin_dir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(base / "server.log"),
        "-w",
        "-t",
        "30",
        "-o",
        f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
        "start",
    )
    try:
        yield Postgres(port=port, socket_dir=base, bin_dir=bin_dir)
    finally:
        as_postgres(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[Moto]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=clean_env(),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if http("GET", f"{url}/moto-api/", timeout=2)[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("moto server did not start")
        time.sleep(0.1)
    try:
        yield Moto(url=url, proc=proc)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def sentry_receiver() -> Iterator[SentryReceiver]:
    receiver = SentryReceiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.httpd.shutdown()
        receiver.httpd.server_close()
