"""python -m testing.cluster {build [--real-node] | up --kubeconfig PATH [--nodes N] [--keep] [--real-node]
[--git-root DIR]}"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from testing.cluster.binaries import BuildFailed, BuildUnavailable, ensure_binaries, ensure_node_binaries
from testing.cluster.launcher import ControlPlaneError, start_control_plane


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testing.cluster", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    build = sub.add_parser("build", help="build the binaries into the cache (no-op when current)")
    build.add_argument(
        "--real-node", action="store_true", help="also the real node's binaries, images and wheelhouse"
    )
    up = sub.add_parser("up", help="start a control plane and keep it running until Ctrl-C / SIGTERM")
    up.add_argument("--kubeconfig", required=True, type=Path, help="where to write the admin kubeconfig")
    up.add_argument("--nodes", type=int, default=2, help="number of kwok fake nodes (default 2)")
    up.add_argument("--keep", action="store_true", help="keep the temp dir (logs, etcd data) on exit")
    up.add_argument(
        "--real-node",
        action="store_true",
        help="join a real kubelet node (containerd, bridge networking); --nodes then defaults to 0",
    )
    up.add_argument(
        "--git-root",
        type=Path,
        help="with --real-node: serve every git repository under DIR to pods; the URL prefix pods use "
        "is written to KUBECONFIG.git-base",
    )
    args = parser.parse_args(argv)
    if args.cmd == "up" and args.real_node:
        return _up_real(args)

    try:
        bin_dir = ensure_binaries(progress=_say)
    except (BuildUnavailable, BuildFailed) as exc:
        _say(f"error: {exc}")
        return 2
    if args.cmd == "build":
        if args.real_node:
            from testing.cluster.realnode import prepare_node_artifacts

            try:
                node_bin = ensure_node_binaries(progress=_say)
                prepare_node_artifacts(node_bin, progress=_say)
                print(node_bin)
            except (BuildUnavailable, BuildFailed, OSError, RuntimeError) as exc:
                _say(f"error: {exc}")
                return 2
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


def _up_real(args: argparse.Namespace) -> int:
    from testing.cluster.realnode import start_real_tier

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    nodes = args.nodes if "--nodes" in sys.argv else 0
    try:
        tier = start_real_tier(
            kubeconfig_path=args.kubeconfig,
            kwok_nodes=nodes,
            git_root=args.git_root,
            keep_workdir=args.keep,
            progress=_say,
        )
    except (BuildUnavailable, BuildFailed, ControlPlaneError, OSError, RuntimeError) as exc:
        _say(f"error: {exc}")
        return 1
    git_base_file = Path(f"{args.kubeconfig}.git-base")
    try:
        git_base_file.write_text(tier.node.git_base + "\n")
        _say(f"kubeconfig: {tier.cp.kubeconfig_path}")
        _say(f"server:     {tier.cp.server_url}")
        _say(f"real node:  real-node, pods on {tier.node.subnet} (bridge {tier.node.bridge})")
        _say(f"git:        {tier.node.git_root}/NAME is served to pods as {tier.node.git_base}/NAME")
        _say(f"            (that prefix is in {git_base_file})")
        _say(f"state dir:  {tier.cp.workdir}")
        _say("Ctrl-C (or SIGTERM) stops every component and removes the state dir.")
        while not stop.wait(1.0):
            comps = {**tier.cp.components, **tier.node.components}
            dead = [n for n, c in comps.items() if c.proc is not None and c.proc.poll() is not None]
            if dead:
                for name in dead:
                    _say(f"error: {name} exited; last log lines:\n{comps[name].log_tail()}")
                return 1
        return 0
    finally:
        _say("stopping the real node and the control plane")
        git_base_file.unlink(missing_ok=True)
        tier.stop()


if __name__ == "__main__":
    sys.exit(main())
