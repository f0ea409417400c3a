"""Standalone: python -m testing.fake_k8s --kubeconfig PATH [--https] [--scenario FILE]."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .cluster import FakeCluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testing.fake_k8s", description=__doc__)
    parser.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig once serving")
    parser.add_argument("--https", action="store_true", help="serve TLS with a generated certificate")
    parser.add_argument("--scenario", help="YAML/JSON scenario file (see testing/fake_k8s/README.md)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=None, help="bearer token (default: random)")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiplier for simulated delays")
    args = parser.parse_args(argv)
    cluster = FakeCluster(
        https=args.https, token=args.token, time_scale=args.time_scale, port=args.port, kubeconfig_path=None
    )
    if args.scenario:
        cluster.load_scenario_file(args.scenario)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    cluster.start()
    cluster.write_kubeconfig(args.kubeconfig)  # written last: its presence means "ready"
    print(f"fake kube-apiserver serving at {cluster.url}; kubeconfig: {args.kubeconfig}", flush=True)
    try:
        stop.wait()
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
