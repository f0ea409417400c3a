"""python -m testing.cluster {build | up --kubeconfig PATH [--nodes N] [--keep]}"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from testing.cluster.binaries import BuildFailed, BuildUnavailable, ensure_binaries
from testing.cluster.launcher import ControlPlaneError, start_control_plane


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testing.cluster", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build the binaries into the cache (no-op when current)")
    up = sub.add_parser("up", help="start a control plane and keep it running until Ctrl-C / SIGTERM")
    up.add_argument("--kubeconfig", required=True, type=Path, help="where to write the admin kubeconfig")
    up.add_argument("--nodes", type=int, default=2, help="number of kwok fake nodes (default 2)")
    up.add_argument("--keep", action="store_true", help="keep the temp dir (logs, etcd data) on exit")
    args = parser.parse_args(argv)

    try:
        bin_dir = ensure_binaries(progress=_say)
    except (BuildUnavailable, BuildFailed) as exc:
        _say(f"error: {exc}")
        return 2
    if args.cmd == "build":
        print(bin_dir)
        return 0

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        cp = start_control_plane(
            bin_dir, kubeconfig_path=args.kubeconfig, nodes=args.nodes, keep_workdir=args.keep, progress=_say
        )
    except ControlPlaneError as exc:
        _say(f"error: {exc}")
        return 1
    try:
        _say(f"kubeconfig: {cp.kubeconfig_path}")
        _say(f"server:     {cp.server_url}")
        _say(f"state dir:  {cp.workdir} (component logs: *.log)")
        _say(f"pids:       {cp.pids()}")
        _say("Ctrl-C (or SIGTERM) stops every component and removes the state dir.")
        while not stop.wait(1.0):
            dead = [n for n, c in cp.components.items() if c.proc is not None and c.proc.poll() is not None]
            if dead:
                for name in dead:
                    comp = cp.components[name]
                    _say(f"error: {name} exited; last log lines:\n{comp.log_tail()}")
                return 1
        return 0
    finally:
        _say("stopping control plane")
        cp.stop()


if __name__ == "__main__":
    sys.exit(main())
