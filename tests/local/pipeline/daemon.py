"""A stage that daemonises: ``python daemon.py NAME DAEMON_PORT [--exit CODE] [--serve] [--stubborn]``.

Double-forks (fork, ``setsid``, fork) a daemon that listens on 127.0.0.1:DAEMON_PORT and keeps the
stage's stdout open, records its pid (event ``daemon``), and waits until killed. The stage's own process
then exits with CODE (default 0), or with ``--serve`` answers ``GET /health`` on
$BODYWORK_SERVICE_PORT until stopped. ``--stubborn``: the stage's process and the daemon ignore SIGTERM
(saying so), so only SIGKILL ends them.
"""

import os
import signal
import socket
import sys
import time

from health import serve_health
from stage_record import record

name, daemon_port, flags = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
stubborn = "--stubborn" in flags


def ignore_sigterm(signum: int, frame: object) -> None:
    print(f"{name} (pid {os.getpid()}) ignores SIGTERM", flush=True)


record(name, event="start", sid=os.getsid(0))
ready_read, ready_write = os.pipe()
middle = os.fork()
if middle == 0:
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    os.close(ready_read)
    if stubborn:
        signal.signal(signal.SIGTERM, ignore_sigterm)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", daemon_port))
    listener.listen()
    record(name, event="daemon", daemon_pid=os.getpid(), sid=os.getsid(0))
    os.write(ready_write, b"up")
    os.close(ready_write)
    while True:
        time.sleep(3600)
os.close(ready_write)
os.waitpid(middle, 0)
os.read(ready_read, 2)  # the daemon listens
print(f"{name}: daemon is up", flush=True)
if stubborn:
    signal.signal(signal.SIGTERM, ignore_sigterm)
if "--exit" in flags:
    sys.exit(int(flags[flags.index("--exit") + 1]))
if "--serve" not in flags:
    sys.exit(0)

print(f"{name}: listening", flush=True)
serve_health(int(os.environ["BODYWORK_SERVICE_PORT"]))
