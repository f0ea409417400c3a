"""Start and stop a real Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok (fake nodes and pod lifecycles).

Everything listens on 127.0.0.1 only; fake nodes advertise 127.0.0.1 (kwok's own default is a
non-loopback address) so nothing the apiserver dials ever leaves loopback. Pod commands never run.
"""

from __future__ import annotations

import atexit
import base64
import datetime as dt
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from testing.cluster.behaviours import apply_behaviour, behaviour_fields, timed_pipeline_stages

HERE = Path(__file__).resolve().parent
STAGES_FILE = HERE / "stages.yaml"
SERVICE_CIDR = "10.0.0.0/24"
# Pod IPs that kwok hands out: loopback too, so no address in any object points off the machine.
POD_CIDR = "127.1.0.0/16"
NODE_LEASE_SECONDS = 40  # as a kubelet: renewed every 10 s, the node controller allows 50 s
NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
# Env vars stripped from the components' environment (loopback is never proxied, but be explicit).
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: SIGTERM the component if the Python process that started it dies (even by SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class ControlPlaneError(RuntimeError):
    """A component failed to start or become ready; the message carries its log's last lines."""


@dataclass
class Component:
    name: str
    cmd: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# --------------------------------------------------------------------------------------------- PKI
def _write_key(path: Path, key: Any) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


@dataclass
class Pki:
    directory: Path
    ca_cert: Path = field(init=False)
    serving_cert: Path = field(init=False)
    serving_key: Path = field(init=False)
    kubelet_client_cert: Path = field(init=False)
    kubelet_client_key: Path = field(init=False)
    sa_key: Path = field(init=False)
    sa_pub: Path = field(init=False)
    ca_key_path: Path = field(init=False)

    def generate(self) -> Pki:
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
        later = now + dt.timedelta(days=2)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bodywork-test-ca")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(later)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )

        def leaf(cn: str, orgs: Iterable[str], server: bool, client: bool) -> tuple[Any, x509.Certificate]:
            key = ec.generate_private_key(ec.SECP256R1())
            attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
            attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
            usages = []
            if server:
                usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
            if client:
                usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
            builder = (
                x509.CertificateBuilder()
                .subject_name(x509.Name(attrs))
                .issuer_name(ca_name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now)
                .not_valid_after(later)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            )
            if server:
                builder = builder.add_extension(
                    x509.SubjectAlternativeName(
                        [
                            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                            x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
                            x509.DNSName("localhost"),
                            x509.DNSName("kubernetes"),
                            x509.DNSName("kubernetes.default"),
                            x509.DNSName("kubernetes.default.svc"),
                            x509.DNSName("kubernetes.default.svc.cluster.local"),
                        ]
                    ),
                    critical=False,
                )
            return key, builder.sign(ca_key, hashes.SHA256())

        self.ca_cert, self.ca_key_path = d / "ca.crt", d / "ca.key"
        _write_cert(self.ca_cert, ca)
        _write_key(self.ca_key_path, ca_key)
        key, cert = leaf("127.0.0.1", [], server=True, client=False)
        self.serving_cert, self.serving_key = d / "serving.crt", d / "serving.key"
        _write_cert(self.serving_cert, cert)
        _write_key(self.serving_key, key)
        key, cert = leaf("kube-apiserver-kubelet-client", ["system:masters"], server=False, client=True)
        self.kubelet_client_cert, self.kubelet_client_key = d / "kubelet-client.crt", d / "kubelet-client.key"
        _write_cert(self.kubelet_client_cert, cert)
        _write_key(self.kubelet_client_key, key)
        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.sa_key, self.sa_pub = d / "sa.key", d / "sa.pub"
        _write_key(self.sa_key, sa)
        self.sa_pub.write_bytes(
            sa.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return self


def spawn_component(name: str, cmd: list[str], workdir: Path, env: dict[str, str]) -> Component:
    """Start one component in its own session, its output in ``workdir/<name>.log``; it gets SIGTERM
    if the Python process that started it dies."""
    comp = Component(name, cmd, workdir / f"{name}.log")
    with comp.log_path.open("wb") as log:
        comp.proc = subprocess.Popen(
            comp.cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent if os.name == "posix" else None,
        )
    return comp


def wait_for_component(
    components: dict[str, Component],
    name: str,
    check: Callable[[], bool],
    *,
    what: str = "ready",
    timeout: float = 120.0,
    error: type[Exception] | None = None,
) -> None:
    """Poll ``check`` until it is true; raise ``error`` (ControlPlaneError) with the log tail of any
    component that exits meanwhile, or of ``name`` when ``timeout`` passes."""
    error = error or ControlPlaneError
    comp = components[name]
    deadline = time.monotonic() + timeout
    while True:
        for other in components.values():
            if other.proc is not None and other.proc.poll() is not None:
                raise error(
                    f"{other.name} exited with code {other.proc.returncode} while waiting for "
                    f"{name} ({what}); command: {' '.join(other.cmd)}\n"
                    f"--- last lines of {other.log_path} ---\n{other.log_tail()}"
                )
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise error(
                f"{name} not {what} after {timeout:.0f}s\n"
                f"--- last lines of {comp.log_path} ---\n{comp.log_tail()}"
            )
        time.sleep(0.2)


# ------------------------------------------------------------------------------------ control plane
class ControlPlane:
    """One real control plane. Use as a context manager or call start()/stop().

    Attributes once started: server_url, kubeconfig_path, token, ca_path, etcd_url, workdir,
    components (name -> Component with .proc.pid and .log_path), nodes (fake node names).
    """

    def __init__(
        self,
        bin_dir: Path,
        *,
        kubeconfig_path: Path | None = None,
        nodes: int = 2,
        workdir: Path | None = None,
        keep_workdir: bool = False,
        progress: Callable[[str], None] | None = None,
        ready_timeout: float = 120.0,
        timed_pipelines: Mapping[str, float] | None = None,
    ) -> None:
        self.bin_dir = Path(bin_dir)
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="bodywork-cp-"))
        self.kubeconfig_path = Path(kubeconfig_path) if kubeconfig_path else self.workdir / "kubeconfig"
        self.node_names = [f"kwok-node-{i}" for i in range(nodes)]
        self.keep_workdir = keep_workdir
        self.progress = progress or (lambda _msg: None)
        self.ready_timeout = ready_timeout
        # pipeline label -> seconds its stages take (behaviours.timed_pipeline_stages; benchmarks)
        self.timed_pipelines = dict(timed_pipelines or {})
        self.components: dict[str, Component] = {}
        self.token = secrets.token_hex(24)
        self.pod_logs_path = self.workdir / "pod-logs.log"
        self.server_url = ""
        self.etcd_url = ""
        self.ca_path = Path()
        self.startup_seconds = 0.0
        self._ssl: ssl.SSLContext | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._started = False
        self._stopped = False

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        if self._started:  # ``with start_control_plane(...)``: a second etcd on the same data
            return self  # directory would wait for its lock forever
        atexit.register(self.stop)
        t0 = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        self._started = True
        self.progress(f"control plane ready in {self.startup_seconds:.1f}s at {self.server_url}")
        return self

    def _start(self) -> None:
        w = self.workdir
        w.mkdir(parents=True, exist_ok=True)
        for c in ("etcd", "kwok", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            if not (self.bin_dir / c).exists():
                raise ControlPlaneError(f"missing binary {self.bin_dir / c}")
        pki = Pki(w / "pki").generate()
        self.ca_path = pki.ca_cert
        self._ssl = ssl.create_default_context(cafile=str(pki.ca_cert))
        etcd_port, etcd_peer, api_port, kcm_port, sched_port, kwok_port = _free_ports(6)
        self.etcd_url = f"http://127.0.0.1:{etcd_port}"
        self.server_url = f"https://127.0.0.1:{api_port}"
        self.kwok_port = kwok_port

        tokens = {
            "admin": (self.token, "admin", "system:masters"),
            "kcm": (secrets.token_hex(24), "system:kube-controller-manager", ""),
            "scheduler": (secrets.token_hex(24), "system:kube-scheduler", ""),
            "kwok": (secrets.token_hex(24), "kwok-controller", "system:masters"),
        }
        token_file = w / "tokens.csv"
        token_file.write_text(
            "".join(f'{tok},{user},uid-{key},"{groups}"\n' for key, (tok, user, groups) in tokens.items())
        )
        token_file.chmod(0o600)
        kubeconfigs = {
            key: self._write_kubeconfig(w / f"{key}.kubeconfig", tok) for key, (tok, _, _) in tokens.items()
        }
        self.pod_logs_path.write_text("")
        kwok_config = w / "kwok.yaml"
        stages = timed_pipeline_stages(STAGES_FILE.read_text(), self.timed_pipelines)
        kwok_config.write_text(stages + "\n---\n" + yaml.safe_dump(self._cluster_logs()))

        self.progress("starting etcd")
        self._spawn(
            "etcd",
            [
                "--name=default",
                f"--data-dir={w / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        self._wait("etcd", lambda: self._http_ok(f"{self.etcd_url}/health", tls=False))

        self.progress("starting kube-apiserver")
        self._spawn(
            "kube-apiserver",
            [
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--etcd-servers={self.etcd_url}",
                f"--cert-dir={w / 'apiserver-certs'}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                f"--token-auth-file={token_file}",
                "--anonymous-auth=false",
                "--authorization-mode=RBAC",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--service-account-issuer={self.server_url}",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                "--endpoint-reconciler-type=none",
                f"--kubelet-client-certificate={pki.kubelet_client_cert}",
                f"--kubelet-client-key={pki.kubelet_client_key}",
                f"--kubelet-certificate-authority={pki.ca_cert}",
                "--kubelet-preferred-address-types=InternalIP",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
        )
        self._wait("kube-apiserver", lambda: self._http_ok(f"{self.server_url}/readyz"))

        self.progress("registering fake nodes (addresses 127.0.0.1)")
        for name in self.node_names:
            self.api("POST", "/api/v1/nodes", self._node_manifest(name))

        self.progress("starting kube-controller-manager, kube-scheduler, kwok")
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={kubeconfigs['kcm']}",
                "--bind-address=127.0.0.1",
                f"--secure-port={kcm_port}",
                f"--cert-dir={w / 'kcm-certs'}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                "--leader-elect=false",
                f"--root-ca-file={pki.ca_cert}",
                f"--service-account-private-key-file={pki.sa_key}",
                "--use-service-account-credentials=true",
                f"--cluster-signing-cert-file={pki.ca_cert}",
                f"--cluster-signing-key-file={pki.ca_key_path}",
                "--controllers=*,-nodeipam",
                "--profiling=false",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                f"--kubeconfig={kubeconfigs['scheduler']}",
                f"--authentication-kubeconfig={kubeconfigs['scheduler']}",
                f"--authorization-kubeconfig={kubeconfigs['scheduler']}",
                "--bind-address=127.0.0.1",
                f"--secure-port={sched_port}",
                f"--cert-dir={w / 'scheduler-certs'}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                "--leader-elect=false",
                "--profiling=false",
                "--v=1",
            ],
        )
        self._spawn(
            "kwok",
            [
                f"--kubeconfig={kubeconfigs['kwok']}",
                f"--config={kwok_config}",
                f"--manage-nodes-with-annotation-selector={NODE_ANNOTATION[0]}={NODE_ANNOTATION[1]}",
                "--node-ip=127.0.0.1",
                f"--node-port={kwok_port}",
                f"--server-address=127.0.0.1:{kwok_port}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--cidr={POD_CIDR}",
                # kwok renews each node's Lease; the heartbeat stage only refreshes node status every
                # ~10 min, so without leases the node controller marks the nodes NotReady ~50 s after
                # start, and every pod on them Ready=False.
                f"--node-lease-duration-seconds={NODE_LEASE_SECONDS}",
            ],
        )
        self._wait("kube-controller-manager", lambda: self._http_ok(f"https://127.0.0.1:{kcm_port}/healthz"))
        self._wait("kube-scheduler", lambda: self._http_ok(f"https://127.0.0.1:{sched_port}/healthz"))
        self._wait("kwok", lambda: self._http_ok(f"https://127.0.0.1:{kwok_port}/healthz"))
        self._wait("kwok", self._nodes_ready, what="fake nodes Ready")
        self._wait(
            "kube-controller-manager",
            lambda: self._exists("/api/v1/namespaces/default/serviceaccounts/default"),
            what="default ServiceAccount",
        )
        self._write_kubeconfig(self.kubeconfig_path, self.token)

    def stop(self) -> None:
        """Stop every process this object started (by PID) and remove its temp state."""
        if self._stopped:
            return
        self._stopped = True
        # Reverse start order: clients first, etcd last (an apiserver whose etcd is gone is slow to stop).
        for comp in reversed(list(self.components.values())):
            proc = comp.proc
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._own_workdir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        atexit.unregister(self.stop)

    # ------------------------------------------------------------------ processes
    def _spawn(self, name: str, args: list[str]) -> Component:
        env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        comp = spawn_component(name, [str(self.bin_dir / name), *args], self.workdir, env)
        self.components[name] = comp
        return comp

    def _wait(self, name: str, check: Callable[[], bool], what: str = "ready") -> None:
        wait_for_component(self.components, name, check, what=what, timeout=self.ready_timeout)

    # ------------------------------------------------------------------ HTTP helpers
    def _http_ok(self, url: str, tls: bool = True) -> bool:
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
        if tls:
            handlers = [urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self._ssl)]
            opener = urllib.request.build_opener(*handlers)
        else:
            opener = self._opener
        try:
            with opener.open(req, timeout=5) as resp:
                return resp.status == 200
        except urllib.error.HTTPError:
            return False

    def api(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        """Minimal authenticated JSON request to the apiserver (the launcher needs no client library)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.server_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type},
        )
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self._ssl)
        )
        with opener.open(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def _exists(self, path: str) -> bool:
        try:
            self.api("GET", path)
            return True
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return False
            raise

    def _nodes_ready(self) -> bool:
        for name in self.node_names:
            node = self.api("GET", f"/api/v1/nodes/{name}")
            conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
            if conds.get("Ready") != "True":
                return False
        return True

    # ------------------------------------------------------------------ manifests and files
    def _write_kubeconfig(self, path: Path, token: str) -> Path:
        ca = base64.b64encode(self.ca_path.read_bytes()).decode()
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "bodywork-test",
                    "cluster": {"server": self.server_url, "certificate-authority-data": ca},
                }
            ],
            "users": [{"name": "bodywork-test", "user": {"token": token}}],
            "contexts": [
                {"name": "bodywork-test", "context": {"cluster": "bodywork-test", "user": "bodywork-test"}}
            ],
            "current-context": "bodywork-test",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(cfg))
        path.chmod(0o600)
        return path

    def _node_manifest(self, name: str) -> dict[str, Any]:
        resources = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "500Gi"}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {NODE_ANNOTATION[0]: NODE_ANNOTATION[1], "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            # No taints: the deploy tool's pods must schedule onto these nodes.
            "spec": {},
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kwok_port}},
                "allocatable": resources,
                "capacity": resources,
            },
        }

    def _cluster_logs(self) -> dict[str, Any]:
        return {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterLogs",
            "metadata": {"name": "bodywork-all-pods"},
            "spec": {"logs": [{"logsFile": str(self.pod_logs_path), "follow": False}]},
        }

    # ------------------------------------------------------------------ test helpers
    behaviour_fields = staticmethod(behaviour_fields)
    apply_behaviour = staticmethod(apply_behaviour)

    def api_client(self) -> Any:
        """A fresh official-`kubernetes` ApiClient for this control plane (admin token)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig_path))

    def set_pod_logs(self, lines: Iterable[str], stream: str = "stdout") -> None:
        """Set the text that `kubectl logs` / read_namespaced_pod_log returns for EVERY pod.

        kwok serves container logs from one CRI-format file for the whole cluster (pod commands never
        run, so there is no real output); tests that need logs write it here first.
        """
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.pod_logs_path.write_text("".join(f"{stamp} {stream} F {line}\n" for line in lines))

    def etcd_revision(self) -> int:
        req = urllib.request.Request(
            f"{self.etcd_url}/v3/kv/range",
            data=json.dumps({"key": base64.b64encode(b"/").decode(), "limit": 1}).encode(),
            method="POST",
        )
        with self._opener.open(req, timeout=10) as resp:
            return int(json.loads(resp.read())["header"]["revision"])

    def compact_etcd(self) -> int:
        """Compact etcd up to its current revision (what the apiserver does every 5 minutes)."""
        rev = self.etcd_revision()
        req = urllib.request.Request(
            f"{self.etcd_url}/v3/kv/compaction",
            data=json.dumps({"revision": rev, "physical": True}).encode(),
            method="POST",
        )
        with self._opener.open(req, timeout=30) as resp:
            resp.read()
        return rev

    def pids(self) -> dict[str, int]:
        return {n: c.proc.pid for n, c in self.components.items() if c.proc is not None}

    def memory(self) -> dict[str, dict[str, int]]:
        """RSS and PSS in KiB per component (from /proc/<pid>/smaps_rollup)."""
        out: dict[str, dict[str, int]] = {}
        for name, pid in self.pids().items():
            vals: dict[str, int] = {}
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    key, _, rest = line.partition(":")
                    if key in ("Rss", "Pss"):
                        vals[key.lower()] = int(rest.split()[0])
            except OSError:
                continue
            out[name] = vals
        return out


def start_control_plane(bin_dir: Path, attempts: int = 3, **kwargs: Any) -> ControlPlane:
    """Start a ControlPlane, retrying with fresh ports if one was taken between probe and bind.

    Free ports are found by binding port 0 and releasing it; on a busy shared machine another process
    can grab one before the component binds it. Any other start failure is raised at once.
    """
    for attempt in range(1, attempts + 1):
        cp = ControlPlane(bin_dir, **kwargs)
        try:
            return cp.start()
        except ControlPlaneError as exc:
            if attempt == attempts or "address already in use" not in str(exc):
                raise
            if cp.progress:
                cp.progress(f"a port was taken by another process; retrying ({attempt}/{attempts})")
    raise AssertionError("unreachable")
