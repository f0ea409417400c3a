"""A real node for the control-plane tier: containerd + runc + a kubelet, with bridge networking.

``RealNode(control_plane, node_bin).start()`` joins one kubelet node, named ``real-node``, to a
running :class:`~testing.cluster.launcher.ControlPlane`, and runs real containers from locally built
images (``node_images``). Everything it starts is its own: a private containerd (root, state, sockets,
runc root), a kubelet with a private root dir, cgroup root and ports, a bridge with a subnet no route on
the host uses, and a host server (git + package index) on the bridge's gateway address. ``stop()``
deletes the pods through the API (so the kubelet tears their sandboxes and networks down), stops the
kubelet and containerd by PID, kills what is left in its cgroups, unmounts, and deletes the bridge.

Networking, within the workplace's rules (traffic only to loopback or to namespaces the tests create):
pods live in network namespaces the CNI bridge plugin creates for them; the bridge carries a /24 that
nothing else on the host routes (checked at start), its gateway is the host end, and pods get **no
default route** (``isDefaultGateway: false``, ``ipMasq: false``), so a pod can reach only its subnet:
other pods and the gateway, where the host server listens. The apiserver reaches pods (service and pod
proxy, EndpointSlices) at their bridge addresses, which loopback pod IPs would not allow.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from testing.cluster.hostserve import HostServer, ensure_wheelhouse
from testing.cluster.launcher import (
    Component,
    ControlPlane,
    ControlPlaneError,
    _free_ports,
    spawn_component,
    wait_for_component,
)
from testing.cluster.node_images import NodeImages, import_archive

NODE_NAME = "real-node"
NODE_LABEL = ("bodywork.test/node", "real")
SUBNET_POOL = ipaddress.ip_network("10.213.0.0/16")  # /24s are picked from here, skipping routed ones
CGROUP_ROOT = Path("/sys/fs/cgroup")


class RealNodeError(ControlPlaneError):
    """The real node could not start (the message says which step, with the command and its output)."""


def _routed_networks() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(["ip", "-j", "-4", "route", "show", "table", "all"], capture_output=True, text=True)
    nets = []
    for route in json.loads(out.stdout or "[]"):
        dst = route.get("dst", "")
        if dst in ("default", ""):
            continue
        try:
            nets.append(ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False))
        except ValueError:
            continue
    return nets


def pick_subnet() -> ipaddress.IPv4Network:
    """A /24 of SUBNET_POOL that overlaps nothing the host routes (other sessions' bridges included)."""
    routed = _routed_networks()
    candidates = list(SUBNET_POOL.subnets(new_prefix=24))
    start = secrets.randbelow(len(candidates))
    for net in candidates[start:] + candidates[:start]:
        if not any(net.overlaps(r) for r in routed):
            return net
    raise RealNodeError(f"no free /24 in {SUBNET_POOL}: every one overlaps a route on this host")


def _v1_hierarchies() -> list[Path]:
    return [
        p for p in sorted(CGROUP_ROOT.iterdir()) if p.is_dir() and not p.is_symlink() and p.name != "unified"
    ]


class RealNode:
    def __init__(
        self,
        cp: ControlPlane,
        node_bin: Path,
        *,
        cache: Path,
        git_root: Path | None = None,
        progress: Callable[[str], None] | None = None,
        ready_timeout: float = 120.0,
    ) -> None:
        self.cp = cp
        self.node_bin = Path(node_bin)
        self.cache = Path(cache)
        self.progress = progress or (lambda _m: None)
        self.ready_timeout = ready_timeout
        self.id = secrets.token_hex(3)
        self.workdir = cp.workdir / "real-node"
        self.git_root = Path(git_root) if git_root else self.workdir / "git"
        self.bridge = f"bwrn{self.id}"
        self.cgroup_name = f"bodywork-rn-{self.id}"
        self.components: dict[str, Component] = {}
        self.host_server: HostServer | None = None
        self.subnet: ipaddress.IPv4Network | None = None
        self.gateway = ""
        self.timings: dict[str, float] = {}
        self._bridge_made = False
        self._netns: set[str] = set()
        self._stopped = False

    # ------------------------------------------------------------------ paths
    @property
    def socket(self) -> Path:
        return self.workdir / "containerd" / "containerd.sock"

    @property
    def ctr(self) -> list[str]:
        return ["ctr", "--address", str(self.socket)]

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> RealNode:
        atexit.register(self.stop)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        t0 = time.monotonic()
        if os.geteuid() != 0:
            raise RealNodeError("a real node needs root (containerd, runc, a bridge, cgroups)")
        missing = [t for t in ("containerd", "runc", "ctr", "ip", "git") if shutil.which(t) is None]
        if missing:
            raise RealNodeError(
                f"missing on this host: {', '.join(missing)} (apt-get install containerd runc git)"
            )
        w = self.workdir
        for d in ("containerd", "cni/net.d", "cni/ipam", "kubelet", "git"):
            (w / d).mkdir(parents=True, exist_ok=True)
        self.git_root.mkdir(parents=True, exist_ok=True)

        wheelhouse = ensure_wheelhouse(self.cache, self.progress)
        images = NodeImages(self.node_bin, self.cache / "images", self.progress)
        archives = [images.pause_archive(), images.git_sync_archive()]

        self._make_bridge()
        self.host_server = HostServer(self.gateway, self.git_root, wheelhouse)
        archives.append(images.python_archive(w, self.host_server.index_url))
        self._write_cni_conf()
        self._make_cgroups()

        self.progress("starting containerd")
        self._spawn("containerd", ["containerd", "--config", str(self._containerd_config())])
        self._wait("containerd", lambda: self._run_ok([*self.ctr, "version"]))
        t_images = time.monotonic()
        for archive in archives:
            import_archive(self.ctr, archive)
        self.timings["image_import_s"] = time.monotonic() - t_images

        self.progress("starting the kubelet")
        t_kubelet = time.monotonic()
        port, healthz = _free_ports(2)
        config = self._kubelet_config(port, healthz)
        self._spawn(
            "kubelet",
            [
                str(self.node_bin / "kubelet"),
                f"--config={config}",
                f"--kubeconfig={self.cp.kubeconfig_path}",
                f"--root-dir={w / 'kubelet'}",
                f"--cert-dir={w / 'kubelet-pki'}",
                f"--hostname-override={NODE_NAME}",
                # The kubelet refuses a loopback --node-ip; as a cloud controller would, the harness sets
                # the node's address (127.0.0.1) and lifts the "uninitialized" taint once it registers.
                "--cloud-provider=external",
                f"--node-labels={NODE_LABEL[0]}={NODE_LABEL[1]}",
                "--v=1",
            ],
        )
        self._wait("kubelet", lambda: self._exists(f"/api/v1/nodes/{NODE_NAME}"), what="registered")
        self._initialise_node()
        self._wait("kubelet", self._ready, what="Ready")
        self.timings["kubelet_to_ready_s"] = time.monotonic() - t_kubelet
        self.timings["node_start_s"] = time.monotonic() - t0
        self.progress(
            f"real node {NODE_NAME} Ready in {self.timings['kubelet_to_ready_s']:.1f}s after kubelet start"
        )

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        kubelet = self.components.get("kubelet")
        if kubelet and kubelet.proc and kubelet.proc.poll() is None:
            self._delete_pods()
        for name in ("kubelet", "containerd"):
            comp = self.components.get(name)
            if comp and comp.proc and comp.proc.poll() is None:
                if name == "containerd":
                    self._remove_leftover_containers()
                comp.proc.send_signal(signal.SIGTERM)
                try:
                    comp.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    comp.proc.kill()
                    comp.proc.wait(timeout=10)
        self._kill_cgroup_tasks()
        self._kill_shims()
        self._remove_netns()
        self._unmount_all()
        self._remove_cgroups()
        if self.host_server is not None:
            self.host_server.stop()
        if self._bridge_made:
            subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True, check=False)
        atexit.unregister(self.stop)

    # ------------------------------------------------------------------ network
    def _make_bridge(self) -> None:
        self.subnet = pick_subnet()
        self.gateway = str(self.subnet.network_address + 1)
        for cmd in (
            ["ip", "link", "add", self.bridge, "type", "bridge"],
            ["ip", "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge],
            ["ip", "link", "set", self.bridge, "up"],
        ):
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RealNodeError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
            self._bridge_made = True
        self.progress(
            f"bridge {self.bridge} {self.subnet} (gateway {self.gateway}; pods get no default route)"
        )

    def _write_cni_conf(self) -> None:
        conf = {
            "cniVersion": "1.0.0",
            "name": "bodywork-real-node",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": True,  # the host end carries the gateway address (the host server)
                    "isDefaultGateway": False,  # ... but pods get no default route: nothing leaves
                    "ipMasq": False,
                    "hairpinMode": True,  # a pod reaches itself through its Service
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": str(self.subnet), "gateway": self.gateway}]],
                        "dataDir": str(self.workdir / "cni" / "ipam"),
                    },
                },
                {"type": "loopback"},
            ],
        }
        (self.workdir / "cni" / "net.d" / "10-bodywork.conflist").write_text(json.dumps(conf, indent=2))

    # ------------------------------------------------------------------ cgroups (v1, as on this machine)
    def _make_cgroups(self) -> None:
        """The kubelet's cgroupRoot must exist in every hierarchy; cpuset needs cpus/mems copied."""
        for hier in _v1_hierarchies():
            path = hier / self.cgroup_name
            path.mkdir(exist_ok=True)
            for f in ("cpuset.cpus", "cpuset.mems"):
                if (hier / f).exists():
                    (path / f).write_text((hier / f).read_text())

    def _cgroup_dirs(self) -> list[Path]:
        dirs: list[Path] = []
        for hier in _v1_hierarchies():
            root = hier / self.cgroup_name
            if root.is_dir():
                dirs += sorted(
                    (Path(d) for d, _, _ in os.walk(root)), key=lambda p: len(p.parts), reverse=True
                )
        return dirs

    def _kill_cgroup_tasks(self) -> None:
        for _ in range(20):
            pids = set()
            for d in self._cgroup_dirs():
                try:
                    pids |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
                except OSError:
                    continue
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)

    def _remove_cgroups(self) -> None:
        for d in self._cgroup_dirs():
            with contextlib.suppress(OSError):
                d.rmdir()

    # ------------------------------------------------------------------ containerd
    def _containerd_config(self) -> Path:
        c = self.workdir / "containerd"
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        text = f"""version = 2
root = "{c / "root"}"
state = "{c / "state"}"
[grpc]
  address = "{self.socket}"
[ttrpc]
  address = "{self.socket}.ttrpc"
[debug]
  level = "warn"
[{cri}]
  sandbox_image = "{"registry.k8s.io/pause:3.10"}"
  # This machine's root lacks CAP_SYS_RESOURCE: runc can't lower oom_score_adj below the parent's.
  restrict_oom_score_adj = true
  enable_cdi = false
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{c / "runc"}"
[{cri}.cni]
  bin_dir = "{self.node_bin}"
  conf_dir = "{self.workdir / "cni" / "net.d"}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{c / "opt"}"
"""
        path = c / "config.toml"
        path.write_text(text)
        return path

    def _remove_leftover_containers(self) -> None:
        """Kill and delete any container still known to containerd (shims outlive their daemon), and
        remember the network namespaces of their sandboxes (the CNI never got to delete them)."""
        listed = subprocess.run(
            [*self.ctr, "-n", "k8s.io", "containers", "ls", "-q"], capture_output=True, text=True
        )
        for container in listed.stdout.split():
            info = subprocess.run(
                [*self.ctr, "-n", "k8s.io", "containers", "info", container], capture_output=True, text=True
            )
            with contextlib.suppress(ValueError, KeyError, TypeError):
                for ns in json.loads(info.stdout)["Spec"]["linux"]["namespaces"]:
                    if ns.get("type") == "network" and ns.get("path", "").startswith("/var/run/netns/"):
                        self._netns.add(ns["path"])
        tasks = subprocess.run(
            [*self.ctr, "-n", "k8s.io", "tasks", "ls", "-q"], capture_output=True, text=True
        )
        for task in tasks.stdout.split():
            subprocess.run(
                [*self.ctr, "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", task], capture_output=True
            )
        if tasks.stdout.split():
            time.sleep(0.5)
        for task in tasks.stdout.split():
            subprocess.run([*self.ctr, "-n", "k8s.io", "tasks", "delete", "-f", task], capture_output=True)

    def _remove_netns(self) -> None:
        for path in sorted(self._netns):
            subprocess.run(["ip", "netns", "delete", Path(path).name], capture_output=True, check=False)

    def _kill_shims(self) -> None:
        """Shims this containerd started: their command line names its (session-unique) socket."""
        address = str(self.socket)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline and cmdline[0].endswith(b"containerd-shim-runc-v2") and address.encode() in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(entry.name), signal.SIGKILL)

    def _unmount_all(self) -> None:
        prefix = str(self.workdir)
        for _ in range(3):
            mounts = []
            for line in Path("/proc/self/mountinfo").read_text().splitlines():
                point = line.split()[4].encode().decode("unicode_escape")
                if point == prefix or point.startswith(prefix + "/"):
                    mounts.append(point)
            if not mounts:
                return
            for point in sorted(set(mounts), key=len, reverse=True):
                subprocess.run(["umount", "-l", point], capture_output=True, check=False)

    # ------------------------------------------------------------------ kubelet
    def _kubelet_config(self, port: int, healthz: int) -> Path:
        pki = self.cp.workdir / "pki"
        endpoint = f"unix://{self.socket}"
        config: dict[str, Any] = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": "127.0.0.1",
            "port": port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz,
            # Signed by the tier's CA (IP SAN 127.0.0.1), so the apiserver verifies it for logs/exec.
            "tlsCertFile": str(pki / "serving.crt"),
            "tlsPrivateKeyFile": str(pki / "serving.key"),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(pki / "ca.crt")},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "containerRuntimeEndpoint": endpoint,
            "imageServiceEndpoint": endpoint,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.cgroup_name}",
            "failCgroupV1": False,  # this machine has cgroup v1 (hybrid) only
            "failSwapOn": False,
            "resolvConf": "",  # pods never get the host's resolver (nothing outside is reachable)
            "registerNode": True,
            "serializeImagePulls": False,
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {"memory.available": "0%", "nodefs.available": "0%", "imagefs.available": "0%"},
            "shutdownGracePeriod": "0s",
            "maxPods": 110,
        }
        path = self.workdir / "kubelet-config.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def _initialise_node(self) -> None:
        status = {
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": NODE_NAME},
                ]
            }
        }
        self.cp.api("PATCH", f"/api/v1/nodes/{NODE_NAME}/status", status, "application/merge-patch+json")
        node = self.cp.api("GET", f"/api/v1/nodes/{NODE_NAME}")
        taints = [
            t
            for t in node["spec"].get("taints", [])
            if t["key"] != "node.cloudprovider.kubernetes.io/uninitialized"
        ]
        self.cp.api(
            "PATCH",
            f"/api/v1/nodes/{NODE_NAME}",
            {"spec": {"taints": taints or None}},
            "application/merge-patch+json",
        )

    def _ready(self) -> bool:
        node = self.cp.api("GET", f"/api/v1/nodes/{NODE_NAME}")
        conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
        taints = node["spec"].get("taints") or []
        return conds.get("Ready") == "True" and not taints

    def _delete_pods(self) -> None:
        """Delete every pod on the node and wait until the kubelet has stopped their sandboxes."""
        try:
            # Cordoned first, so the ReplicaSets' replacements stay Pending instead of landing here again.
            patch = {"spec": {"unschedulable": True}}
            self.cp.api("PATCH", f"/api/v1/nodes/{NODE_NAME}", patch, "application/merge-patch+json")
            pods = self.cp.api("GET", f"/api/v1/pods?fieldSelector=spec.nodeName={NODE_NAME}")["items"]
            for pod in pods:
                ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
                self.cp.api("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}", {"gracePeriodSeconds": 0})
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                left = self.cp.api("GET", f"/api/v1/pods?fieldSelector=spec.nodeName={NODE_NAME}")["items"]
                running = subprocess.run(
                    [*self.ctr, "-n", "k8s.io", "tasks", "ls", "-q"], capture_output=True, text=True
                ).stdout.split()
                if not left and not running:
                    return
                time.sleep(0.5)
        except Exception as exc:
            self.progress(f"real node teardown: deleting pods failed ({exc}); killing what is left")

    # ------------------------------------------------------------------ helpers
    def _spawn(self, name: str, cmd: list[str]) -> Component:
        env = {
            k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
        }
        env["PATH"] = f"{self.node_bin}:{env.get('PATH', '/usr/bin:/bin')}"
        env["NO_PROXY"] = env["no_proxy"] = "*"
        comp = spawn_component(name, cmd, self.workdir, env)
        self.components[name] = comp
        return comp

    def _wait(self, name: str, check: Callable[[], bool], what: str = "ready") -> None:
        wait_for_component(
            self.components, name, check, what=what, timeout=self.ready_timeout, error=RealNodeError
        )

    @staticmethod
    def _run_ok(cmd: list[str]) -> bool:
        return subprocess.run(cmd, capture_output=True, check=False).returncode == 0

    def _exists(self, path: str) -> bool:
        self.cp.api("GET", path)
        return True

    def pids(self) -> dict[str, int]:
        return {n: c.proc.pid for n, c in self.components.items() if c.proc is not None}

    def memory_kib(self) -> dict[str, int]:
        """PSS per process of the node: kubelet, containerd, and the shims (summed)."""
        out: dict[str, int] = {}
        pids = dict(self.pids())
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmd = (entry / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if cmd and cmd[0].endswith(b"containerd-shim-runc-v2") and str(self.socket).encode() in cmd:
                    pids[f"shim-{entry.name}"] = int(entry.name)
        for name, pid in pids.items():
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        key = "shims" if name.startswith("shim-") else name
                        out[key] = out.get(key, 0) + int(line.split()[1])
            except OSError:
                continue
        return out

    # ------------------------------------------------------------------ test helpers
    def create_repo(self, name: str) -> Path:
        """An empty non-bare repository under the git root (served as <git_base>/<name>)."""
        path = self.git_root / name
        subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
        subprocess.run(["git", "-C", str(path), "config", "user.email", "test@bodywork.test"], check=True)
        subprocess.run(["git", "-C", str(path), "config", "user.name", "bodywork test"], check=True)
        return path

    @property
    def git_base(self) -> str:
        assert self.host_server is not None
        return self.host_server.git_base


def node_cache(node_bin: Path) -> Path:
    """Where images and the wheelhouse are cached: beside the cluster's versioned binary dirs."""
    return node_bin.parent.parent.parent / "realnode"


def prepare_node_artifacts(node_bin: Path, progress: Callable[[str], None] | None = None) -> dict[str, float]:
    """Build (once) the wheelhouse and the images the real node loads; returns seconds per step."""
    say = progress or (lambda _m: None)
    cache = node_cache(node_bin)
    images = NodeImages(node_bin, cache / "images", say)
    took: dict[str, float] = {}
    for name, step in (
        ("wheelhouse", lambda: ensure_wheelhouse(cache, say)),
        ("pause image", images.pause_archive),
        ("git-sync image", images.git_sync_archive),
        ("python stand-in", images.python_layout),
    ):
        t = time.monotonic()
        step()
        took[name] = time.monotonic() - t
        say(f"[node-build] {name}: ready ({took[name]:.0f}s)")
    return took


class RealTier:
    """A control plane plus its real node, started and stopped together."""

    def __init__(self, cp: ControlPlane, node: RealNode) -> None:
        self.cp, self.node = cp, node

    def stop(self) -> None:
        try:
            self.node.stop()
        finally:
            self.cp.stop()


def real_node_required() -> bool:
    """In CI (CI=true) or with BODYWORK_REALNODE_REQUIRED=1 a real node that can't start is a failure."""
    return os.environ.get("CI") == "true" or os.environ.get("BODYWORK_REALNODE_REQUIRED") == "1"


def start_real_tier(
    *,
    kubeconfig_path: Path | None = None,
    kwok_nodes: int = 0,
    git_root: Path | None = None,
    keep_workdir: bool = False,
    progress: Callable[[str], None] | None = None,
) -> RealTier:
    """Build what is missing, then start a control plane and join the real node to it.

    With ``kwok_nodes=0`` (the tests' choice) every pod lands on the real node. Raises BuildUnavailable
    or BuildFailed (from testing.cluster.binaries) when binaries can't be built, ControlPlaneError
    (RealNodeError for the node) when something does not start.
    """
    from testing.cluster.binaries import ensure_binaries, ensure_node_binaries
    from testing.cluster.launcher import start_control_plane

    bin_dir = ensure_binaries(progress=progress)
    node_bin = ensure_node_binaries(progress=progress)
    cache = node_cache(node_bin)
    cp = start_control_plane(
        bin_dir,
        kubeconfig_path=kubeconfig_path,
        nodes=kwok_nodes,
        keep_workdir=keep_workdir,
        progress=progress,
    )
    try:
        node = RealNode(cp, node_bin, cache=cache, git_root=git_root, progress=progress).start()
    except BaseException:
        cp.stop()
        raise
    return RealTier(cp, node)
