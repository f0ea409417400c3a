"""FakeCluster: the object tests, benchmarks and the standalone server hold."""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .controllers import Controllers, Scenario, is_ready
from .pod_logs import PodLogs
from .recording import Faults, RequestLog
from .resources import resolve
from .scheduler import Scheduler
from .selectors import match_labels_selector
from .server import FakeHTTPServer
from .store import ApiError, Store
from .tls import make_cert

ProxyAnswer = tuple  # (status, body) or (status, body, headers)
ProxyHandler = Callable[[str, str, dict, bytes], ProxyAnswer]


class FakeCluster:
    """A fake Kubernetes API server with simulated controllers, on 127.0.0.1.

    Use as a context manager (or call start()/stop()).  Attributes once started:
    url, token, kubeconfig_path, ca_path (https only), store, controllers, requests, faults.
    """

    def __init__(
        self,
        *,
        https: bool = False,
        token: str | None = None,
        time_scale: float = 1.0,
        history_size: int = 1000,
        bookmark_interval: float = 1.0,
        port: int = 0,
        seed: int | None = 0,
        kubeconfig_path: str | Path | None = None,
        namespace: str = "default",
    ):
        self.https = https
        self.token = token or secrets.token_hex(16)
        self.time_scale = time_scale
        self.bookmark_interval = bookmark_interval
        self.namespace = namespace
        self.internal_errors: list[BaseException] = []
        self.requests = RequestLog()
        self.faults = Faults()
        self.store = Store(history_size=history_size, seed=seed)
        self.scheduler = Scheduler(self.internal_errors.append)
        self.controllers = Controllers(self)
        self.pod_logs = PodLogs(self.store, self.controllers)
        self._proxy_scripts: dict[tuple[str, str], Any] = {}
        self._port = port
        self._workdir = Path(tempfile.mkdtemp(prefix="fake-k8s-"))
        self.kubeconfig_path = Path(kubeconfig_path) if kubeconfig_path else self._workdir / "kubeconfig"
        self.ca_path: Path | None = None
        self._server: FakeHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeCluster:
        ctx = None
        if self.https:
            crt, key = make_cert(self._workdir)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(crt, key)
            self.ca_path = crt
        self._server = FakeHTTPServer(self, self._port, ctx)
        port = self._server.server_address[1]
        self.url = f"{'https' if self.https else 'http'}://127.0.0.1:{port}"
        self.scheduler.start()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-k8s-http",
            daemon=True,
        )
        self._thread.start()
        self.write_kubeconfig(self.kubeconfig_path)
        return self

    def stop(self) -> None:
        self.store.close()
        self.scheduler.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_all()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> FakeCluster:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def kubeconfig(self) -> dict:
        cluster: dict[str, Any] = {"server": self.url}
        if self.ca_path is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self.ca_path.read_bytes()).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": "fake", "cluster": cluster}],
            "users": [{"name": "fake", "user": {"token": self.token}}],
            "contexts": [
                {"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": self.namespace}}
            ],
            "current-context": "fake",
        }

    def write_kubeconfig(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(yaml.safe_dump(self.kubeconfig(), sort_keys=False))
        tmp.chmod(0o600)
        tmp.replace(path)
        return path

    # ------------------------------------------------------------------ scripting
    def script(
        self, kind: str, name_or_selector: str | dict, scenario: Scenario | dict, namespace: str | None = None
    ) -> None:
        """Script the pods of Jobs/Deployments matched by name, label dict or selector string.

        The latest matching script wins; it is read when each pod is created.
        """
        if isinstance(scenario, dict):
            scenario = Scenario.from_dict(scenario)
        self.controllers.script(kind, name_or_selector, scenario, namespace)

    def script_service(self, namespace: str, name: str, answer: ProxyAnswer | ProxyHandler | None) -> None:
        """Script what the service proxy answers for a Service.

        `answer` is (status, body[, headers]) for every path, or a callable
        (method, path, query, body) -> (status, body[, headers]); None restores the default.
        """
        with self.store.lock:
            if answer is None:
                self._proxy_scripts.pop((namespace, name), None)
            else:
                self._proxy_scripts[(namespace, name)] = answer

    def load_scenario_file(self, path: str | Path) -> None:
        """Load a YAML/JSON scenario file (see README): scripts, services, faults, settings."""
        data = yaml.safe_load(Path(path).read_text()) or {}
        for key in ("time_scale", "bookmark_interval"):
            if key in data:
                setattr(self, key, float(data[key]))
        if "history_size" in data:
            self.store.history_size = int(data["history_size"])
        for entry in data.get("scripts") or []:
            entry = dict(entry)
            kind = entry.pop("kind")
            target = entry.pop("name", None) or entry.pop("selector", None)
            if target is None:
                raise ValueError(f"scenario entry for {kind} needs `name` or `selector`")
            namespace = entry.pop("namespace", None)
            self.script(kind, target, Scenario.from_dict(entry), namespace)
        for entry in data.get("services") or []:
            self.script_service(
                entry.get("namespace", "default"),
                entry["name"],
                (int(entry.get("status", 200)), str(entry.get("body", "OK"))),
            )
        for key, value in (data.get("faults") or {}).items():
            if not hasattr(self.faults, key) or key.startswith("_") or key == "match":
                raise ValueError(f"unknown fault setting {key!r}")
            setattr(self.faults, key, value)
        for obj in data.get("objects") or []:
            res = resolve(obj["kind"])
            ns = (obj.get("metadata") or {}).get("namespace") or ("default" if res.namespaced else None)
            self.store.create(res, ns, obj)

    # ------------------------------------------------------------------ state access
    def get(self, kind: str, name: str, namespace: str | None = "default") -> dict | None:
        """The stored object (a copy), or None."""
        return self.store.find(resolve(kind), namespace, name)

    def list(self, kind: str, namespace: str | None = None, labels: str | None = None) -> list[dict]:
        return self.store.list(resolve(kind), namespace, labels)[0]

    def create(self, obj: dict, namespace: str | None = None) -> dict:
        """Create an object directly in the store (no HTTP, no recording)."""
        res = resolve(obj["kind"])
        ns = (
            namespace
            or (obj.get("metadata") or {}).get("namespace")
            or ("default" if res.namespaced else None)
        )
        return self.store.create(res, ns, obj)

    def set_status(self, kind: str, name: str, status: dict, namespace: str | None = "default") -> dict:
        """Merge `status` into an object's status (emits MODIFIED), e.g. to force a Job outcome."""
        res = resolve(kind)
        return self.store.patch(
            res, namespace, name, "application/merge-patch+json", {"status": status}, subresource="status"
        )

    def events(
        self, namespace: str | None = None, involved: str | None = None, reason: str | None = None
    ) -> list[dict]:
        out = self.list("Event", namespace)
        if involved:
            out = [e for e in out if e["involvedObject"]["name"] == involved]
        if reason:
            out = [e for e in out if e.get("reason") == reason]
        return out

    def append_log(
        self, ns: str, pod: str, container: str, line: str, *, written_at: float | None = None
    ) -> None:
        """Write ``line`` to the current instance of ``container`` (now, or at epoch ``written_at``);
        a client following that log gets it at once."""
        self.pod_logs.append(ns, pod, container, line, written_at)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, message: str = "") -> Any:
        """Block until predicate() is truthy; re-checked on every store write.  Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        with self.store.cond:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(message or f"condition not met within {timeout}s")
                self.store.wait(min(remaining, 0.25))

    # ------------------------------------------------------------------ hooks used by the HTTP server
    def pod_log(self, ns: str, name: str, query: dict) -> str:
        return self.pod_logs.text(ns, name, query)

    def proxy(
        self, method: str, ns: str, name: str, port: str | None, path: str, query: dict, body: bytes
    ) -> tuple[int, dict, bytes]:
        svc = self.store.find(resolve("services"), ns, name)
        if svc is None:
            err = ApiError(
                404, "NotFound", f'services "{name}" not found', {"name": name, "kind": "services"}
            )
            return 404, {"Content-Type": "application/json"}, json.dumps(err.status()).encode()
        with self.store.lock:
            scripted = self._proxy_scripts.get((ns, name))
        if scripted is not None:
            answer = scripted(method, path, query, body) if callable(scripted) else scripted
            status, payload, headers = ((*tuple(answer), {}))[:3]
            data = payload if isinstance(payload, bytes) else str(payload).encode()
            return int(status), dict(headers), data
        selector = (svc.get("spec") or {}).get("selector") or {}
        match = match_labels_selector({"matchLabels": selector})
        ready = selector and any(
            is_ready(p) and match(p["metadata"].get("labels") or {}) for p in self.list("Pod", ns)
        )
        if not ready:
            err = ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
            return 503, {"Content-Type": "application/json"}, json.dumps(err.status()).encode()
        if "health" in path or path in ("", "/"):
            return 200, {}, b"OK"
        echo = {"service": name, "namespace": ns, "method": method, "path": path}
        return 200, {"Content-Type": "application/json"}, json.dumps(echo).encode()
