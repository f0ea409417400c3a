"""The only module that talks to Kubernetes: connect, read, write, delete, watch, logs, service proxy.

Shell. It imports the ``kubernetes`` client lazily (inside functions), so ``bodywork-action --help``
never pays for it, and hands back plain dicts exactly as the API server sent them — never the
client's model objects. Requests go through the real client's configuration, auth and TLS
(``ApiClient.param_serialize`` + ``call_api``) with JSON bodies, which keeps every kind generic.

Errors are translated here, once: 401/403 → ``ClusterAuthError`` naming the refused verb and resource,
no connection → ``ClusterUnreachable``, anything else → ``ClusterError`` (409 → ``ClusterConflict``).
The API's own text is used only when the body is a ``Status``, and cut short (kopf's rule: a body
that is not a Status may hold anything, secrets included).

Retries (``decide_retry``) and watch reconnects (``decide_watch_reconnect``) are pure functions of
(what went wrong, attempt); the loops here only carry the decisions out.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import quote

from bodywork_action.errors import (
    ClusterAuthError,
    ClusterConflict,
    ClusterError,
    ClusterUnreachable,
    InputError,
)

Obj = dict[str, Any]

STATUS_TEXT_MAX_CHARS = 300  # API error text quoted in our messages, at most
REQUEST_TIMEOUT_SECONDS = (10.0, 60.0)  # (connect, read) for ordinary requests
# The server ends a watch after this long; we then resume from the last resourceVersion seen.
WATCH_SERVER_TIMEOUT_SECONDS = 240
WATCH_READ_MARGIN_SECONDS = 30  # a silent stream is dead if nothing came this long after the timeout
CONNECTION_POOL_SIZE = 32  # every running stage holds two watch streams at once
IN_CLUSTER_HOST_VARIABLE = "KUBERNETES_SERVICE_HOST"
DEFAULT_KUBECONFIG = "~/.kube/config"


# ------------------------------------------------------------------------------------------ kinds


@dataclass(frozen=True)
class Kind:
    kind: str
    api_version: str
    plural: str
    namespaced: bool = True

    @property
    def resource(self) -> str:
        """``jobs.batch``, as kubectl and the API server's messages name it."""
        group = self.api_version.rpartition("/")[0]
        return f"{self.plural}.{group}" if group else self.plural

    def path(self, namespace: str = "", name: str = "", subresource: str = "") -> str:
        base = f"/apis/{self.api_version}" if "/" in self.api_version else f"/api/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe=':')}"  # ':' joins service and port in proxy paths
        if subresource:
            base += f"/{subresource}"
        return base


NAMESPACE = Kind("Namespace", "v1", "namespaces", namespaced=False)
SECRET = Kind("Secret", "v1", "secrets")
POD = Kind("Pod", "v1", "pods")
EVENT = Kind("Event", "v1", "events")
SERVICE = Kind("Service", "v1", "services")
JOB = Kind("Job", "batch/v1", "jobs")
DEPLOYMENT = Kind("Deployment", "apps/v1", "deployments")
REPLICA_SET = Kind("ReplicaSet", "apps/v1", "replicasets")
INGRESS = Kind("Ingress", "networking.k8s.io/v1", "ingresses")
KINDS: Mapping[str, Kind] = {
    k.kind: k for k in (NAMESPACE, SECRET, POD, EVENT, SERVICE, JOB, DEPLOYMENT, REPLICA_SET, INGRESS)
}


def kind_of(manifest: Mapping[str, Any]) -> Kind:
    return KINDS[str(manifest["kind"])]


# ------------------------------------------------------------------------------------ retry policy


class Failure(str, Enum):
    UNREACHABLE = "unreachable"  # no response at all (refused, reset, timed out)
    THROTTLED = "throttled"  # 429: the server did not process the request
    SERVER = "server"  # 5xx
    OTHER = "other"  # any other status: retrying won't change it


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay_seconds: float = 0.0


MAX_ATTEMPTS = {Failure.UNREACHABLE: 3, Failure.THROTTLED: 6, Failure.SERVER: 4, Failure.OTHER: 1}
RETRY_BASE_DELAY_SECONDS = 0.2
RETRY_MAX_DELAY_SECONDS = 10.0


def classify_failure(status: int | None) -> Failure:
    if status is None or status == 0:
        return Failure.UNREACHABLE
    if status == 429:
        return Failure.THROTTLED
    if status >= 500:
        return Failure.SERVER
    return Failure.OTHER


def decide_retry(
    failure: Failure, attempt: int, *, idempotent: bool, retry_after_seconds: float | None = None
) -> RetryDecision:
    """Retry after failed ``attempt`` (1-based)? 429 never reached the handler, so it is retried for
    every verb; 5xx and lost connections only when repeating is safe (``idempotent``: the caller
    passes True for a connection that was refused before anything was sent)."""
    if failure is Failure.OTHER or attempt >= MAX_ATTEMPTS[failure]:
        return RetryDecision(False)
    if failure in (Failure.SERVER, Failure.UNREACHABLE) and not idempotent:
        return RetryDecision(False)
    delay = RETRY_BASE_DELAY_SECONDS * 2 ** (attempt - 1)
    if retry_after_seconds is not None:
        delay = retry_after_seconds
    return RetryDecision(True, min(max(delay, 0.0), RETRY_MAX_DELAY_SECONDS))


class WatchEnd(str, Enum):
    CLOSED = "closed"  # the server ended the stream (its timeoutSeconds): resume at once
    DROPPED = "dropped"  # the connection broke mid-stream or could not be made
    GONE = "gone"  # 410: our resourceVersion is too old, relist
    THROTTLED = "throttled"  # 429 / 5xx on the watch request
    REFUSED = "refused"  # 401, 403, 404 …: reconnecting won't help


class WatchAction(str, Enum):
    RESUME = "resume"
    RELIST = "relist"
    GIVE_UP = "give-up"


@dataclass(frozen=True)
class WatchDecision:
    action: WatchAction
    delay_seconds: float = 0.0


MAX_WATCH_RECONNECTS = 6  # consecutive failed reconnects before the cluster counts as unreachable


def decide_watch_reconnect(end: WatchEnd, attempt: int) -> WatchDecision:
    """What to do after a watch stream ended; ``attempt`` counts consecutive failures (1-based)."""
    if end is WatchEnd.CLOSED:
        return WatchDecision(WatchAction.RESUME)
    if end is WatchEnd.GONE:
        return WatchDecision(WatchAction.RELIST)
    if end is WatchEnd.REFUSED or attempt > MAX_WATCH_RECONNECTS:
        return WatchDecision(WatchAction.GIVE_UP)
    return WatchDecision(WatchAction.RESUME, min(RETRY_BASE_DELAY_SECONDS * 2 ** (attempt - 1), 5.0))


# ------------------------------------------------------------------------------------ errors


def build_cluster_error(
    status: int | None,
    body: bytes | str | None,
    *,
    verb: str,
    kind: Kind,
    name: str = "",
    namespace: str = "",
    server: str = "",
) -> ClusterError:
    """Our error for a failed request; the API's text only if the body is a Status, and shortened."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    api_message, reason = "", ""
    causes: set[str] = set()
    try:
        decoded = json.loads(text) if text else None
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and decoded.get("kind") == "Status":
        api_message = str(decoded.get("message") or "")[:STATUS_TEXT_MAX_CHARS]
        reason = str(decoded.get("reason") or "")
        status_details = decoded.get("details")
        listed = status_details.get("causes") if isinstance(status_details, dict) else None
        causes = (
            {str(c.get("reason")) for c in listed if isinstance(c, dict)}
            if isinstance(listed, list)
            else set()
        )
    target = kind.resource + (f" {name!r}" if name else "")
    where = f" in namespace {namespace!r}" if namespace and kind.namespaced else ""
    details = _ErrorDetails(verb=verb, resource=kind.resource, name=name, namespace=namespace, status=status)
    if status == 401:
        return ClusterAuthError(
            f"unauthorized (401): the cluster{_at(server)} rejected the credentials while trying to {verb} "
            f"{target}{where}; check the kubeconfig's user (token or certificate expired?)",
            reason=reason or "Unauthorized",
            **details,
        )
    if status == 403 and "NamespaceTerminating" in causes:
        # Not a permission problem: the namespace is being deleted and refuses new objects.
        return ClusterError(
            f"{f'namespace {namespace!r}' if namespace else 'the namespace'} is being deleted, so the "
            f"cluster refused to {verb} {target} in it; "
            "wait until it is gone, then deploy again",
            reason="NamespaceTerminating",
            **details,
        )
    if status == 403:
        return ClusterAuthError(
            f"forbidden (403): cannot {verb} {target}{where}"
            + (f": {api_message}" if api_message else "")
            + "; the kubeconfig's user needs RBAC permission for it",
            reason=reason or "Forbidden",
            **details,
        )
    suffix = f": {api_message}" if api_message else ""
    if status == 409:
        return ClusterConflict(f"conflict (409) on {verb} {target}{where}{suffix}", reason=reason, **details)
    return ClusterError(
        f"the API server{_at(server)} refused to {verb} {target}{where} ({status}){suffix}",
        reason=reason,
        **details,
    )


class _ErrorDetails(TypedDict):
    verb: str
    resource: str
    name: str
    namespace: str
    status: int | None


def _at(server: str) -> str:
    return f" at {server}" if server else ""


# ---------------------------------------------------------------------------------- connecting


@dataclass(frozen=True)
class KubeTarget:
    """Which cluster: kubeconfig path(s) and context, resolved like kubectl."""

    kubeconfig: str = ""  # explicit --kubeconfig; else $KUBECONFIG, ~/.kube/config, in-cluster
    context: str = ""


def resolve_kubeconfig_source(target: KubeTarget, environ: Mapping[str, str], *, home: str) -> str:
    """The kubeconfig path list to load, or "" for in-cluster configuration (kubectl's order)."""
    if target.kubeconfig:
        return target.kubeconfig
    if environ.get("KUBECONFIG"):
        return environ["KUBECONFIG"]
    default = DEFAULT_KUBECONFIG.replace("~", home, 1)
    if Path(default).is_file():
        return default
    if environ.get(IN_CLUSTER_HOST_VARIABLE):
        return ""
    raise InputError(
        "no kubeconfig found: pass --kubeconfig PATH, set KUBECONFIG, create ~/.kube/config, or run in a pod"
    )


def connect_cluster(target: KubeTarget, *, environ: Mapping[str, str] | None = None) -> Cluster:
    """Load the kubeconfig (or in-cluster config) and return a ``Cluster``; no request is made yet."""
    from kubernetes import client, config  # lazily: the CLI's --help must stay fast
    from kubernetes.config.config_exception import ConfigException

    environ = os.environ if environ is None else environ
    source = resolve_kubeconfig_source(target, environ, home=environ.get("HOME", str(Path.home())))
    configuration = client.Configuration()
    try:
        if source:
            missing = [p for p in source.split(os.pathsep) if p and not Path(p).expanduser().is_file()]
            if target.kubeconfig and missing:
                raise InputError(f"kubeconfig {missing[0]!r} does not exist")
            config.load_kube_config(  # type: ignore[no-untyped-call]  # the client ships no annotations
                config_file=source,
                context=target.context or None,
                client_configuration=configuration,
                persist_config=False,
            )
        else:
            if target.context:
                raise InputError("--context needs a kubeconfig; in-cluster configuration has no contexts")
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except (ConfigException, ValueError, TypeError, KeyError, OSError) as exc:
        where = source or "in-cluster configuration"
        raise InputError(f"cannot use kubeconfig {where}: {_short(str(exc))}") from exc
    except Exception as exc:  # YAML errors and the like: the file is not a kubeconfig
        if isinstance(exc, InputError):
            raise
        raise InputError(f"cannot read kubeconfig {source}: {type(exc).__name__}") from exc
    configuration.connection_pool_maxsize = CONNECTION_POOL_SIZE
    configuration.retries = False  # our retry policy decides, not urllib3's
    return Cluster(client.ApiClient(configuration), server=str(configuration.host))


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= STATUS_TEXT_MAX_CHARS else text[: STATUS_TEXT_MAX_CHARS - 1] + "…"


# ---------------------------------------------------------------------------------- the client


@dataclass(frozen=True)
class ObjectList:
    items: tuple[Obj, ...]
    resource_version: str


@dataclass
class RequestCounter:
    """How many API requests were sent, by verb (for the benchmark and the summary)."""

    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, verb: str) -> None:
        with self.lock:
            self.counts[verb] = self.counts.get(verb, 0) + 1


Sleep = Callable[[float], Any]


class Cluster:
    """Plain-dict access to one API server. Thread-safe: stages of a step share it."""

    def __init__(self, api_client: Any, *, server: str, sleep: Sleep | None = None) -> None:
        self._api = api_client
        self.server = server
        self._sleep: Sleep = sleep or threading.Event().wait
        self.requests = RequestCounter()

    def close(self) -> None:
        self._api.close()

    # --- the one request path ---------------------------------------------------------------
    def _send(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        kind: Kind,
        name: str = "",
        namespace: str = "",
        query: Sequence[tuple[str, Any]] = (),
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: tuple[float, float] = REQUEST_TIMEOUT_SECONDS,
        stream: bool = False,
    ) -> Any:
        """Send one request (retried per ``decide_retry``); the urllib3 response if ``stream``, else bytes."""
        import urllib3  # lazily

        idempotent = method in ("GET", "PUT", "DELETE")
        attempt = 0
        while True:
            attempt += 1
            self.requests.add(verb)
            headers = {"Accept": accept}
            if body is not None:
                headers["Content-Type"] = content_type
            try:
                _, url, headers, body_out, _ = self._api.param_serialize(
                    method=method,
                    resource_path=path,
                    query_params=list(query),
                    header_params=headers,
                    body=body,
                    auth_settings=["BearerToken"],
                )
                response = self._api.call_api(
                    method, url, header_params=headers, body=body_out, _request_timeout=timeout
                )
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                sent = not isinstance(exc, urllib3.exceptions.NewConnectionError)
                decision = decide_retry(Failure.UNREACHABLE, attempt, idempotent=idempotent or not sent)
                if decision.retry:
                    self._sleep(decision.delay_seconds)
                    continue
                raise ClusterUnreachable(
                    f"cannot reach the Kubernetes API server at {self.server} ({type(exc).__name__}) "
                    f"while trying to {verb} {kind.resource}"
                    + (f" in namespace {namespace!r}" if namespace and kind.namespaced else "")
                    + "; is the cluster up and the kubeconfig's server address right?",
                    verb=verb,
                    resource=kind.resource,
                    name=name,
                    namespace=namespace,
                ) from exc
            except Exception as exc:  # the client's ApiException(status=0) for TLS failures
                status = getattr(exc, "status", None)
                if status == 0:
                    raise ClusterUnreachable(
                        f"TLS failure talking to {self.server}: {_short(str(getattr(exc, 'reason', '')))}",
                        verb=verb,
                        resource=kind.resource,
                        namespace=namespace,
                    ) from exc
                raise
            status = int(response.status)
            if 200 <= status < 300:
                return response.response if stream else response.read()
            data = response.read()
            decision = decide_retry(
                classify_failure(status),
                attempt,
                idempotent=idempotent,
                retry_after_seconds=_retry_after(response.headers.get("Retry-After")),
            )
            if decision.retry:
                self._sleep(decision.delay_seconds)
                continue
            raise build_cluster_error(
                status, data, verb=verb, kind=kind, name=name, namespace=namespace, server=self.server
            )

    def _json(self, method: str, path: str, **kwargs: Any) -> Obj:
        data = self._send(method, path, **kwargs)
        try:
            decoded = json.loads(data) if data else {}
        except ValueError as exc:
            raise ClusterError(
                f"the API server answered {kwargs.get('verb')} with something that is not JSON"
            ) from exc
        return decoded if isinstance(decoded, dict) else {}

    # --- verbs --------------------------------------------------------------------------------
    def read_object(self, kind: Kind, name: str, *, namespace: str = "") -> Obj | None:
        """The object, or None if it does not exist."""
        try:
            return self._json(
                "GET", kind.path(namespace, name), verb="get", kind=kind, name=name, namespace=namespace
            )
        except ClusterError as exc:
            if exc.status == 404:
                return None
            raise

    def read_objects(
        self, kind: Kind, *, namespace: str = "", label_selector: str = "", field_selector: str = ""
    ) -> ObjectList:
        query = _selectors(label_selector, field_selector)
        try:
            listed = self._json(
                "GET", kind.path(namespace), verb="list", kind=kind, namespace=namespace, query=query
            )
        except ClusterError as exc:
            if exc.status == 404 and kind.namespaced:  # the namespace itself does not exist (yet)
                return ObjectList((), "")
            raise
        items = tuple(
            dict(item, kind=kind.kind, apiVersion=kind.api_version) for item in listed.get("items") or []
        )
        return ObjectList(items, str((listed.get("metadata") or {}).get("resourceVersion") or ""))

    def create_object(self, manifest: Mapping[str, Any], *, dry_run: bool = False) -> Obj:
        kind, name, namespace = _identity(manifest)
        return self._json(
            "POST",
            kind.path(namespace),
            verb="create",
            kind=kind,
            name=name,
            namespace=namespace,
            body=dict(manifest),
            query=_dry_run(dry_run),
        )

    def replace_object(self, manifest: Mapping[str, Any], *, dry_run: bool = False) -> Obj:
        """PUT: the whole object is replaced, so fields we no longer render really go away."""
        kind, name, namespace = _identity(manifest)
        return self._json(
            "PUT",
            kind.path(namespace, name),
            verb="update",
            kind=kind,
            name=name,
            namespace=namespace,
            body=dict(manifest),
            query=_dry_run(dry_run),
        )

    def patch_object(
        self,
        kind: Kind,
        name: str,
        patch: Any,
        *,
        namespace: str = "",
        patch_type: str = "application/merge-patch+json",
        dry_run: bool = False,
    ) -> Obj:
        return self._json(
            "PATCH",
            kind.path(namespace, name),
            verb="patch",
            kind=kind,
            name=name,
            namespace=namespace,
            body=patch,
            content_type=patch_type,
            query=_dry_run(dry_run),
        )

    def delete_object(
        self,
        kind: Kind,
        name: str,
        *,
        namespace: str = "",
        propagation: str = "Background",
        dry_run: bool = False,
    ) -> bool:
        """Delete; False if it was already gone. Background propagation removes a Job's pods too."""
        try:
            self._send(
                "DELETE",
                kind.path(namespace, name),
                verb="delete",
                kind=kind,
                name=name,
                namespace=namespace,
                query=[("propagationPolicy", propagation), *_dry_run(dry_run)],
            )
        except ClusterError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def read_pod_log(
        self, pod: str, *, namespace: str, container: str, tail_lines: int, previous: bool = False
    ) -> list[str]:
        query: list[tuple[str, Any]] = [("container", container), ("tailLines", tail_lines)]
        if previous:
            query.append(("previous", "true"))
        data = self._send(
            "GET",
            POD.path(namespace, pod, "log"),
            verb="get logs of",
            kind=POD,
            name=pod,
            namespace=namespace,
            query=query,
            accept="*/*",
        )
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        return text.splitlines()[-tail_lines:]

    def fetch_service_proxy(self, service: str, port: int, path: str, *, namespace: str) -> tuple[int, str]:
        """GET ``path`` of a Service through the API server's proxy: (status, start of the body)."""
        proxy_path = f"{SERVICE.path(namespace, f'{service}:{port}')}/proxy/{path.lstrip('/')}"
        try:
            data = self._send(
                "GET",
                proxy_path,
                verb="proxy to",
                kind=SERVICE,
                name=service,
                namespace=namespace,
                accept="*/*",
            )
        except ClusterAuthError:
            raise
        except ClusterError as exc:
            if exc.status is None:
                raise
            return exc.status, str(exc)
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        return 200, text[:STATUS_TEXT_MAX_CHARS]

    def watch_objects(
        self, kind: Kind, *, namespace: str = "", label_selector: str = "", field_selector: str = ""
    ) -> ObjectWatch:
        return ObjectWatch(
            self, kind, namespace=namespace, label_selector=label_selector, field_selector=field_selector
        )

    def _open_watch(
        self, kind: Kind, *, namespace: str, label_selector: str, field_selector: str, resource_version: str
    ) -> Any:
        query = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", WATCH_SERVER_TIMEOUT_SECONDS),
            *_selectors(label_selector, field_selector),
        ]
        return self._send(
            "GET",
            kind.path(namespace),
            verb="watch",
            kind=kind,
            namespace=namespace,
            query=query,
            timeout=(REQUEST_TIMEOUT_SECONDS[0], WATCH_SERVER_TIMEOUT_SECONDS + WATCH_READ_MARGIN_SECONDS),
            stream=True,
        )


def _identity(manifest: Mapping[str, Any]) -> tuple[Kind, str, str]:
    kind = kind_of(manifest)
    meta = manifest.get("metadata") or {}
    return kind, str(meta.get("name", "")), str(meta.get("namespace", "")) if kind.namespaced else ""


def _selectors(label_selector: str, field_selector: str) -> list[tuple[str, Any]]:
    query: list[tuple[str, Any]] = []
    if label_selector:
        query.append(("labelSelector", label_selector))
    if field_selector:
        query.append(("fieldSelector", field_selector))
    return query


def _dry_run(dry_run: bool) -> list[tuple[str, Any]]:
    return [("dryRun", "All")] if dry_run else []


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def build_label_selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


# ------------------------------------------------------------------------------------- watching


@dataclass(frozen=True)
class WatchEvent:
    """ADDED / MODIFIED / DELETED with ``object``; LISTED with every current object in ``objects``
    (after a relist too: a consumer replaces its cache with it)."""

    type: str
    object: Obj = field(default_factory=dict)
    objects: tuple[Obj, ...] = ()


class _Gone(Exception):
    pass


class _Dropped(Exception):
    pass


class ObjectWatch:
    """List, then watch from the list's resourceVersion; resume after a dropped stream from the newest
    resourceVersion seen; relist on 410 Gone (kopf's ``continuous_watch``). ``close()`` may be called
    from any thread and ends the iteration."""

    def __init__(
        self, cluster: Cluster, kind: Kind, *, namespace: str, label_selector: str, field_selector: str
    ) -> None:
        self._cluster = cluster
        self._kind = kind
        self._namespace = namespace
        self._label_selector = label_selector
        self._field_selector = field_selector
        self._closed = threading.Event()
        self._response: Any = None
        self._lock = threading.Lock()
        self.reconnects = 0  # streams re-opened after the first (for tests and the benchmark)
        self.relists = 0

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            response = self._response
        if response is not None:
            # shutdown() unblocks a read in the watching thread; either may find it already closed.
            with contextlib.suppress(Exception):
                response.shutdown()
            with contextlib.suppress(Exception):
                response.close()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __iter__(self) -> Iterator[WatchEvent]:
        resource_version = ""
        failures = 0
        listed = False
        while not self._closed.is_set():
            if not listed:
                listing = self._cluster.read_objects(
                    self._kind,
                    namespace=self._namespace,
                    label_selector=self._label_selector,
                    field_selector=self._field_selector,
                )
                resource_version = listing.resource_version
                listed = True
                yield WatchEvent("LISTED", objects=listing.items)
            error: ClusterError | None = None
            try:
                for event in self._stream(resource_version):
                    failures = 0
                    resource_version = str((event.object.get("metadata") or {}).get("resourceVersion") or "")
                    if event.type != "BOOKMARK":
                        yield event
                end = WatchEnd.CLOSED
            except _Gone:
                end = WatchEnd.GONE
            except _Dropped:
                end = WatchEnd.DROPPED
            except ClusterUnreachable as exc:
                end, error = WatchEnd.DROPPED, exc
            except ClusterError as exc:
                error = exc
                end = (
                    WatchEnd.THROTTLED
                    if classify_failure(exc.status) is not Failure.OTHER
                    else WatchEnd.REFUSED
                )
            if self._closed.is_set():
                return
            if end is not WatchEnd.CLOSED:
                failures += 1
            decision = decide_watch_reconnect(end, failures)
            if decision.action is WatchAction.GIVE_UP:
                raise error or ClusterUnreachable(
                    f"the watch on {self._kind.resource} kept dropping ({failures} times in a row)",
                    verb="watch",
                    resource=self._kind.resource,
                    namespace=self._namespace,
                )
            if decision.action is WatchAction.RELIST:
                listed = False
                self.relists += 1
            self.reconnects += 1
            if decision.delay_seconds and self._closed.wait(decision.delay_seconds):
                return

    def _stream(self, resource_version: str) -> Iterator[WatchEvent]:
        import urllib3  # lazily

        response = self._cluster._open_watch(
            self._kind,
            namespace=self._namespace,
            label_selector=self._label_selector,
            field_selector=self._field_selector,
            resource_version=resource_version,
        )
        with self._lock:
            self._response = response
        if self._closed.is_set():
            response.close()
            return
        buffer = b""
        try:
            for chunk in response.stream(amt=None, decode_content=False):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield self._parse(line)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            if self._closed.is_set():
                return
            raise _Dropped from exc
        finally:
            with self._lock:
                self._response = None
            response.close()  # never pool a connection whose stream we may not have read to the end
        if buffer.strip():
            yield self._parse(buffer)

    def _parse(self, line: bytes) -> WatchEvent:
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise _Dropped from exc  # a cut-off line: resume from the last complete event
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise _Gone
            raise build_cluster_error(
                obj.get("code"), json.dumps(obj), verb="watch", kind=self._kind, namespace=self._namespace
            )
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            obj = dict(obj, kind=self._kind.kind, apiVersion=self._kind.api_version)
        return WatchEvent(str(kind), obj)
