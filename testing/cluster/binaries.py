"""Locate (and if needed build) the control-plane binaries via testing/cluster/build.sh."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_SCRIPT = HERE / "build.sh"
COMPONENTS = ("etcd", "kwok", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


class BuildUnavailable(RuntimeError):
    """The binaries are not built and cannot be built on this machine (e.g. no Go toolchain)."""


class BuildFailed(RuntimeError):
    """build.sh ran and failed."""


def find_go() -> str | None:
    explicit = os.environ.get("GO")
    if explicit:
        return explicit if Path(explicit).exists() else None
    return shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)


def cached_bin_dir() -> Path | None:
    """The binary directory if every component is already built, else None (never builds)."""
    proc = subprocess.run(["bash", str(BUILD_SCRIPT), "--print"], capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        return Path(proc.stdout.strip().splitlines()[-1])
    return None


def ensure_binaries(progress: Callable[[str], None] | None = None) -> Path:
    """Return the directory holding the five binaries, building them first if needed.

    `progress` receives each line build.sh prints (the first build takes 10-30 minutes on 2 cores).
    Raises BuildUnavailable when there is no Go toolchain, BuildFailed when the build fails.
    """
    override = os.environ.get("BODYWORK_CLUSTER_BIN")
    if override:
        missing = [c for c in COMPONENTS if not (Path(override) / c).exists()]
        if missing:
            raise BuildUnavailable(f"BODYWORK_CLUSTER_BIN={override} lacks {', '.join(missing)}")
        return Path(override)
    found = cached_bin_dir()
    if found is not None:
        return found
    go = find_go()
    if go is None:
        raise BuildUnavailable(
            "control-plane binaries are not built and no Go toolchain (>= 1.26) was found "
            "(looked for $GO, `go` on PATH and /usr/local/go/bin/go); run testing/cluster/build.sh"
        )
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    env = dict(os.environ, GO=go)
    tail: list[str] = []
    # A context manager closes the pipe: a ResourceWarning here is an error under pytest's settings.
    with subprocess.Popen(
        ["bash", str(BUILD_SCRIPT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail = [*tail[-39:], line]
            say(line)
        rc = proc.wait()
    if rc == 3:
        raise BuildUnavailable("\n".join(tail[-5:]))
    if rc != 0:
        raise BuildFailed(f"testing/cluster/build.sh failed (exit {rc}); last output:\n" + "\n".join(tail))
    return Path(tail[-1])


NODE_COMPONENTS = ("kubelet", "bridge", "host-local", "loopback", "git-sync", "pause")


def ensure_node_binaries(progress: Callable[[str], None] | None = None) -> Path:
    """The real node's binaries (kubelet, CNI plugins, git-sync, pause), built by build.sh if needed.

    Raises BuildUnavailable without a Go toolchain, BuildFailed when the build fails.
    """
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--real-node", "--print"], capture_output=True, text=True, check=False
    )
    if proc.returncode == 0:
        return Path(proc.stdout.strip().splitlines()[-1])
    go = find_go()
    if go is None:
        raise BuildUnavailable("real-node binaries are not built and no Go toolchain (>= 1.26) was found")
    say = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    tail: list[str] = []
    with subprocess.Popen(
        ["bash", str(BUILD_SCRIPT), "--real-node"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, GO=go),
    ) as run:
        assert run.stdout is not None
        for line in run.stdout:
            tail = [*tail[-39:], line.rstrip("\n")]
            say(tail[-1])
        rc = run.wait()
    if rc == 3:
        raise BuildUnavailable("\n".join(tail[-5:]))
    if rc != 0:
        raise BuildFailed(
            f"testing/cluster/build.sh --real-node failed (exit {rc}); last output:\n" + "\n".join(tail)
        )
    return Path(tail[-1])
