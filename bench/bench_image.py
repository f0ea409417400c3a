"""The action's image: size, build time, start-up and the container's overhead (issue 12). No assertions.

    python bench/bench_image.py [--runs 5] [--cold-runs 3] [--rev REV] [--skip-cold]

Builds the Dockerfile of the working tree (or of commit ``--rev``, exported to a temporary directory:
``--rev 23422c0`` measures the image before issue 12) on the test engine (testing/images.py starts it
and stops it after), then measures, each over separate runs, median and range, goal beside:

- image size over its base (the Dockerfile's last FROM);
- build cold (``--no-cache``: every layer, including the download of the locked wheels) and cached
  (nothing changed: what a job pays when the runner's Docker cache holds the layers; hosted runners start
  empty, so a job that uses the action from source pays the cold figure);
- a bare container start (``docker run --rm --entrypoint true``);
- container start → first API request: ``docker run`` of a deploy, as the runner runs it, until the fake
  API server (in this process, on loopback) receives its first request;
- ``validate`` wall time in the container, as the runner runs it;
- deploy of the MLflow example (fake API server, stages scripted ready at once): in the container, and
  with the CLI on the host (``bodywork-action deploy``), the difference being the container's overhead.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402
from benchlib import at_most  # noqa: E402

from testing.action_runs import MLFLOW_SECRET_ENV, MLFLOW_SECRETS_INPUT  # noqa: E402
from testing.fake_k8s.cluster import FakeCluster  # noqa: E402
from testing.image import (  # noqa: E402
    RunnerDirs,
    build_image,
    chown_tree,
    dockerfile_bases,
    image_size,
    prepare_container_action,
    run_container_action,
)
from testing.images import ensure_engine  # noqa: E402

TAG = "bodywork-deploy-action:bench"
SIZE_GOAL_MB = 100.0
COLD_GOAL_S = 120.0
CACHED_GOAL_S = 5.0
BARE_START_GOAL_S = 1.0
FIRST_REQUEST_GOAL_S = 2.0
VALIDATE_GOAL_S = 2.0
OVERHEAD_GOAL_S = 1.5
SHA = "0123456789abcdef0123456789abcdef01234567"


def context_for(rev: str | None, scratch: Path) -> Path:
    if rev is None:
        return ROOT
    target = scratch / "context"
    target.mkdir()
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def workspace(scratch: Path, name: str) -> Path:
    root = scratch / name
    root.mkdir()
    for file in ("bodywork.yaml", "mlflow_server.py"):
        shutil.copy(ROOT / file, root / file)
    chown_tree(root)
    return root


def first_request_seconds(engine, image: str, scratch: Path, n: int) -> tuple[list[float], list[float]]:
    """(start → first request, whole deploy) per run, the deploy as the runner runs the container."""
    firsts, walls = [], []
    for i in range(n):
        with FakeCluster(time_scale=0.01) as fake:
            inputs = {"kubeconfig": Path(fake.kubeconfig_path).read_text(), "secrets": MLFLOW_SECRETS_INPUT}
            dirs = RunnerDirs(scratch / f"first-{i}")
            prepared = prepare_container_action(
                engine, image, workspace(scratch, f"ws-first-{i}"), dirs, inputs, MLFLOW_SECRET_ENV
            )
            started = time.perf_counter()
            proc = subprocess.Popen(
                prepared.argv, env=prepared.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            first = None
            while proc.poll() is None:
                if first is None and len(list(fake.requests)):
                    first = time.perf_counter() - started
                time.sleep(0.001)
            walls.append(time.perf_counter() - started)
            if proc.returncode == 0 and first is not None:
                firsts.append(first)
    return firsts, walls


def host_cli_deploy_seconds(scratch: Path, n: int, context: Path) -> list[float]:
    """The same deploy with the CLI on the host, running the same code as the image (``context``)."""
    walls = []
    for i in range(n):
        with FakeCluster(time_scale=0.01) as fake:
            ws = workspace(scratch, f"ws-host-{i}")
            secrets = [
                arg
                for line in MLFLOW_SECRETS_INPUT.splitlines()
                for arg in ("--secret", line.replace(": ", "=").replace(", ", ","))
            ]
            argv = [
                sys.executable,
                "-c",
                "import sys; from bodywork_action.cli import main; sys.exit(main())",
                "deploy",
                "--file",
                str(ws / "bodywork.yaml"),
                "--kubeconfig",
                fake.kubeconfig_path,
                "--commit",
                SHA,
                "--repo",
                "https://github.com/owner/repo",
                *secrets,
            ]
            env = {**os.environ, **MLFLOW_SECRET_ENV, "PYTHONPATH": str(context)}
            started = time.perf_counter()
            done = subprocess.run(argv, env=env, cwd=ws, capture_output=True, text=True, timeout=300)
            if done.returncode == 0:
                walls.append(time.perf_counter() - started)
            else:
                print(f"  host deploy failed ({done.returncode}): {done.stderr[-500:]}", flush=True)
    return walls


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    benchlib.runs_argument(parser)
    parser.add_argument("--cold-runs", type=int, default=3, help="cold builds (each ~1.5 min; default 3)")
    parser.add_argument("--skip-cold", action="store_true")
    parser.add_argument("--rev", help="measure the image of this commit instead of the working tree")
    args = parser.parse_args()
    bench = benchlib.Bench("image" + (f"@{args.rev}" if args.rev else ""))
    with tempfile.TemporaryDirectory() as tmp, ensure_engine() as engine:
        scratch = Path(tmp)
        context = context_for(args.rev, scratch)
        base = dockerfile_bases(context / "Dockerfile")[-1]
        first_build = build_image(engine, TAG, context=context)
        added = (image_size(engine, TAG) - image_size(engine, base)) / 2**20
        bench.figure("size_over_base_mb", [added], "MB", at_most(SIZE_GOAL_MB), "image size over the base", 1)
        if not args.skip_cold:
            cold = [
                build_image(engine, TAG, context=context, no_cache=True).seconds
                for _ in range(args.cold_runs)
            ]
            bench.figure("build_cold_s", cold, "s", at_most(COLD_GOAL_S), "build, cold (--no-cache)", 1)
        cached = [build_image(engine, TAG, context=context).seconds for _ in range(args.runs)]
        bench.figure("build_cached_s", cached, "s", at_most(CACHED_GOAL_S), "build, cached", 2)
        bench.note(f"first build of this bench (cache as found): {first_build.seconds:.1f} s")

        bare = []
        for _ in range(args.runs):
            started = time.perf_counter()
            engine.docker("run", "--rm", "--network", "host", "--entrypoint", "true", TAG)
            bare.append(time.perf_counter() - started)
        bench.figure("bare_start_s", bare, "s", at_most(BARE_START_GOAL_S), "bare container start (true)", 3)

        firsts, container_deploys = first_request_seconds(engine, TAG, scratch, args.runs)
        bench.figure(
            "start_to_first_request_s",
            firsts,
            "s",
            at_most(FIRST_REQUEST_GOAL_S),
            "container start → first API request",
            3,
        )

        validates = []
        for i in range(args.runs):
            run = run_container_action(
                engine,
                TAG,
                workspace(scratch, f"ws-v-{i}"),
                RunnerDirs(scratch / f"v-{i}"),
                {"command": "validate"},
            )
            if run.returncode == 0:
                validates.append(run.seconds)
        bench.figure(
            "validate_container_s", validates, "s", at_most(VALIDATE_GOAL_S), "validate in the container", 3
        )

        host = host_cli_deploy_seconds(scratch, args.runs, context)
        bench.figure("deploy_container_s", container_deploys, "s", None, "deploy, in the container", 3)
        bench.figure("deploy_host_cli_s", host, "s", None, "deploy, CLI on the host", 3)
        if container_deploys and host:
            overhead = [c - statistics.median(host) for c in container_deploys]
            bench.figure(
                "container_overhead_s",
                overhead,
                "s",
                at_most(OVERHEAD_GOAL_S),
                "container overhead (deploy)",
                3,
            )
        engine.docker("image", "rm", "--force", TAG, check=False)
        # The cold builds left images nothing tags any more: don't let them fill the cache's disk.
        engine.docker("image", "prune", "--force", check=False)
    bench.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
