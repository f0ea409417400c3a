"""The only module that talks to Kubernetes: connect, read, write, delete, watch, logs, service proxy.

Shell. It imports the ``kubernetes`` client lazily (inside functions), so ``bodywork-action --help``
never pays for it, and hands back plain dicts exactly as the API server sent them — never the
client's model objects. Requests go through the real client's configuration, auth and TLS
(``ApiClient.param_serialize`` + ``call_api``) with JSON bodies, which keeps every kind generic.

Errors are translated here, once: 401/403 → ``ClusterAuthError`` naming the refused verb and resource,
a cluster that never answered at all → ``ClusterUnreachable`` (exit 2: the kubeconfig is probably
wrong), one that answered and then went away for longer than the deploy may wait → ``ClusterOutage``
(exit 1: the deploy failed), anything else → ``ClusterError`` (409 → ``ClusterConflict``).
The API's own text is used only when the body is a ``Status``, and cut short (kopf's rule: a body
that is not a Status may hold anything, secrets included).

Retries (``decide_retry``) and watch reconnects (``decide_watch_reconnect``) are pure functions of
(what went wrong, attempt, time left, jitter); the loops here only carry the decisions out. Waiting
for an API server that stopped answering is bounded by the deploy's remaining time (``Cluster.deadline``),
not by a count. A create is not idempotent: after a 5xx or a lost connection it is read back by name,
and an object that is ours (``is_ours``) counts as created.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import quote

import orjson  # decoding watch events and responses was the deploy's largest CPU cost (bench_deploy)

from bodywork_action.errors import (
    EXIT_DEPLOYMENT_FAILED,
    ClusterAuthError,
    ClusterConflict,
    ClusterError,
    ClusterUnreachable,
    InputError,
)
from bodywork_action.kube.client_imports import (
    auth_modules_imported_on_first_use,
    enter_kubernetes_package_bare,
)

Obj = dict[str, Any]

STATUS_TEXT_MAX_CHARS = 300  # API error text quoted in our messages, at most
REQUEST_TIMEOUT_SECONDS = (10.0, 60.0)  # (connect, read) for ordinary requests
# The server ends a watch after this long; we then resume from the last resourceVersion seen.
WATCH_SERVER_TIMEOUT_SECONDS = 240
WATCH_READ_MARGIN_SECONDS = 30  # a silent stream is dead if nothing came this long after the timeout
# A deployment holds one watch stream per kind (kube/watch_hub.py) and at most 16 stage writes at once
# (kube/deploy.py STAGE_WORKERS); the rest is headroom for reads, logs and the lock's renewals.
CONNECTION_POOL_SIZE = 32
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
LEASE = Kind("Lease", "coordination.k8s.io/v1", "leases")
KINDS: Mapping[str, Kind] = {
    k.kind: k for k in (NAMESPACE, SECRET, POD, EVENT, SERVICE, JOB, DEPLOYMENT, REPLICA_SET, INGRESS, LEASE)
}


def kind_of(manifest: Mapping[str, Any]) -> Kind:
    return KINDS[str(manifest["kind"])]


# ------------------------------------------------------------------------------------ retry policy


class Failure(str, Enum):
    UNREACHABLE = "unreachable"  # no response at all (refused, reset, timed out)
    THROTTLED = "throttled"  # 429: the server did not process the request
    UNAVAILABLE = "unavailable"  # 502 / 503 / 504: the server (or what fronts it) is away for now
    SERVER = "server"  # any other 5xx: a server error that may or may not go away
    OTHER = "other"  # any other status: retrying won't change it


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay_seconds: float = 0.0


# Failures that mean "the API server is away for now": retried for as long as the deploy may still
# wait (its remaining time), once the cluster has answered at least once. A cluster that never
# answered gets UNREACHED_MAX_ATTEMPTS quick tries: its address is probably wrong.
WAIT_OUT = frozenset({Failure.UNREACHABLE, Failure.THROTTLED, Failure.UNAVAILABLE})
UNREACHED_MAX_ATTEMPTS = 3
SERVER_MAX_ATTEMPTS = 6  # a 500 that persists is a server bug, not an outage
RETRY_BASE_DELAY_SECONDS = 0.2
RETRY_MAX_DELAY_SECONDS = 10.0


def classify_failure(status: int | None) -> Failure:
    if status is None or status == 0:
        return Failure.UNREACHABLE
    if status == 429:
        return Failure.THROTTLED
    if status in (502, 503, 504):
        return Failure.UNAVAILABLE
    if status >= 500:
        return Failure.SERVER
    return Failure.OTHER


def backoff_seconds(attempt: int, jitter: float) -> float:
    """Exponential back-off after failed ``attempt`` (1-based), capped, with "equal jitter":
    between half and all of the step, so that many clients (or stages) do not retry in lock-step."""
    step = min(RETRY_BASE_DELAY_SECONDS * 2.0 ** min(attempt - 1, 30), RETRY_MAX_DELAY_SECONDS)
    return step * (0.5 + 0.5 * min(max(jitter, 0.0), 1.0))


def decide_retry(
    failure: Failure,
    attempt: int,
    *,
    idempotent: bool,
    retry_after_seconds: float | None = None,
    remaining_seconds: float = math.inf,
    reached: bool = True,
    jitter: float = 1.0,
) -> RetryDecision:
    """Retry after failed ``attempt`` (1-based)? 429 never reached the handler, so it is retried for
    every verb; 5xx and lost connections only when repeating is safe (``idempotent``: reads, PUT
    with a resourceVersion, DELETE, a connection refused before anything was sent, or a create
    whose caller reads it back). The API server being away (no answer, 429, 502/503/504) is waited
    out while ``remaining_seconds`` allows; a cluster that never answered (``reached`` False) gets
    a few quick attempts only. ``Retry-After`` is honoured (capped), never shortened by jitter."""
    if failure is Failure.OTHER:
        return RetryDecision(False)
    if failure in (Failure.SERVER, Failure.UNAVAILABLE, Failure.UNREACHABLE) and not idempotent:
        return RetryDecision(False)
    if not reached and failure is Failure.UNREACHABLE and attempt >= UNREACHED_MAX_ATTEMPTS:
        return RetryDecision(False)
    if failure is Failure.SERVER and attempt >= SERVER_MAX_ATTEMPTS:
        return RetryDecision(False)
    delay = backoff_seconds(attempt, jitter)
    if retry_after_seconds is not None:
        delay = min(max(retry_after_seconds, 0.0), RETRY_MAX_DELAY_SECONDS)
    if delay >= remaining_seconds:
        return RetryDecision(False)
    return RetryDecision(True, delay)


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


WATCH_MAX_DELAY_SECONDS = 5.0


def decide_watch_reconnect(
    end: WatchEnd, attempt: int, *, remaining_seconds: float = math.inf, jitter: float = 1.0
) -> WatchDecision:
    """What to do after a watch stream ended; ``attempt`` counts consecutive failures (1-based).

    A dropped or refused-for-now stream is re-opened with back-off for as long as the deploy has
    time left (``remaining_seconds``), however many times that takes."""
    if end is WatchEnd.CLOSED:
        return WatchDecision(WatchAction.RESUME)
    if end is WatchEnd.GONE:
        return WatchDecision(WatchAction.RELIST)
    if end is WatchEnd.REFUSED or remaining_seconds <= 0:
        return WatchDecision(WatchAction.GIVE_UP)
    delay = min(backoff_seconds(attempt, jitter), WATCH_MAX_DELAY_SECONDS, remaining_seconds)
    return WatchDecision(WatchAction.RESUME, delay)


class ClusterOutage(ClusterError):
    """The API server answered earlier and then stopped answering for longer than the deploy may
    wait: the deploy failed (exit 1); what was applied is reported."""

    exit_code = EXIT_DEPLOYMENT_FAILED


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
    enter_kubernetes_package_bare()
    with auth_modules_imported_on_first_use():
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
    check_credentials_at_most_every(CREDENTIAL_CHECK_INTERVAL_SECONDS, configuration)
    return Cluster(client.ApiClient(configuration), server=str(configuration.host))


# The client runs its credential hook before every request: the kubeconfig loader's checks whether
# an exec plugin's token expired and then copies every setting again, re-reading the proxy variables
# from the whole environment: 0.15 ms of CPU per request here (38 variables; a runner has more), a
# tenth of a create's. Tokens are renewed 5 minutes (kubeconfig) or 1 minute (in-cluster) before they
# expire, so checking once a second renews them just as surely.
CREDENTIAL_CHECK_INTERVAL_SECONDS = 1.0


def check_credentials_at_most_every(
    seconds: float, configuration: Any, *, clock: Callable[[], float] = time.monotonic
) -> None:
    """Run ``configuration``'s credential hook (if it has one) at most once per ``seconds``; the first
    request runs it, and a run that raised is tried again on the next request."""
    inner: Any = configuration.refresh_api_key_hook
    if inner is None:
        return
    lock = threading.Lock()
    last_run = -math.inf

    def throttled(configuration: Any) -> None:
        nonlocal inner, last_run
        with lock:
            if clock() - last_run < seconds:
                return
            try:
                inner(configuration)
            finally:
                # the kubeconfig loader's hook installs itself again each time it runs: stay in front
                installed = configuration.refresh_api_key_hook
                if installed is not throttled and installed is not None:
                    inner = installed
                configuration.refresh_api_key_hook = throttled
            last_run = clock()

    configuration.refresh_api_key_hook = throttled


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


@dataclass(frozen=True)
class ApiCall:
    """One request as it went (for debug lines): method and path only, never a body, header or query."""

    verb: str  # get, list, watch, create, replace, patch, delete, proxy to, read log of
    method: str
    path: str
    status: int | None  # None: no HTTP answer at all
    milliseconds: float
    attempt: int
    error: str = ""  # the exception's type when there was no answer
    retry_in_seconds: float | None = None  # set when the request is repeated after this long

    def describe(self) -> str:
        """``watch GET /api/v1/namespaces/demo/pods 200 12 ms`` (+ the attempt, + when it is retried)."""
        answer = str(self.status) if self.status is not None else f"no answer ({self.error})"
        text = f"{self.verb} {self.method} {self.path} {answer} {self.milliseconds:.0f} ms"
        if self.attempt > 1:
            text += f" (attempt {self.attempt})"
        if self.retry_in_seconds is not None:
            text += f"; retrying in {self.retry_in_seconds:.1f}s"
        return text


# Progress while the API server is away: the first line once it has been away this long, then one
# line every OUTAGE_REPORT_EVERY_SECONDS (with 10 % of requests failing, single failures stay quiet).
OUTAGE_REPORT_AFTER_SECONDS = 3.0
OUTAGE_REPORT_EVERY_SECONDS = 10.0
# After cancel (Ctrl+C, the action's timeout) requests are still retried this long, so the clean-up
# (deleting a running Job) gets through a blip, but never for the rest of an outage.
CANCEL_RETRY_GRACE_SECONDS = 5.0


class Cluster:
    """Plain-dict access to one API server. Thread-safe: stages of a step share it.

    ``deadline`` (a ``time.monotonic()`` value, None: none) bounds how long any request waits for
    an API server that is away; ``cancel`` ends that wait early; ``on_wait`` receives a progress
    line while it waits."""

    def __init__(
        self,
        api_client: Any,
        *,
        server: str,
        sleep: Sleep | None = None,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
        on_wait: Callable[[str], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api_client
        self.server = server
        self._sleep: Sleep = sleep or threading.Event().wait
        self.requests = RequestCounter()
        self.deadline = deadline
        self.cancel = cancel
        self.on_wait = on_wait
        self._monotonic = monotonic
        self._random = random.Random()
        self._state_lock = threading.Lock()
        self.reached = False  # set by the first HTTP answer of any kind
        self._away_since: float | None = None
        self._away_reported: float | None = None
        self._cancelled_at: float | None = None
        self.retries = 0  # requests repeated after a failure (for tests and the benchmark)
        self.on_request: Callable[[ApiCall], None] | None = None  # every request, for debug lines
        self.read_backs = 0  # creates resolved by reading the object back

    def close(self) -> None:
        self._api.close()

    # --- time and waiting -------------------------------------------------------------------
    def remaining_seconds(self) -> float:
        """How long a request may still wait for the API server (inf without a deadline)."""
        now = self._monotonic()
        limit = math.inf if self.deadline is None else self.deadline - now
        if self.cancel is not None and self.cancel.is_set():
            with self._state_lock:
                if self._cancelled_at is None:
                    self._cancelled_at = now
                cancelled_at = self._cancelled_at
            limit = min(limit, cancelled_at + CANCEL_RETRY_GRACE_SECONDS - now)
        return limit

    def jitter(self) -> float:
        with self._state_lock:
            return self._random.random()

    def _answered(self) -> None:
        with self._state_lock:
            self.reached = True
            away, self._away_since, self._away_reported = self._away_since, None, None
        if (
            away is not None
            and self.on_wait is not None
            and self._monotonic() - away >= (OUTAGE_REPORT_AFTER_SECONDS)
        ):
            self.on_wait(
                f"the API server at {self.server} answers again after {self._monotonic() - away:.0f}s"
            )

    def _failed(self, failure: Failure, verb: str, resource: str) -> None:
        if failure not in WAIT_OUT or failure is Failure.THROTTLED:
            return
        now = self._monotonic()
        with self._state_lock:
            if self._away_since is None:
                self._away_since = now
            away = now - self._away_since
            due = away >= OUTAGE_REPORT_AFTER_SECONDS and (
                self._away_reported is None or now - self._away_reported >= OUTAGE_REPORT_EVERY_SECONDS
            )
            if due:
                self._away_reported = now
        if due and self.on_wait is not None:
            remaining = self.remaining_seconds()
            left = "" if math.isinf(remaining) else f"; waiting up to {max(remaining, 0):.0f}s more"
            self.on_wait(
                f"the API server at {self.server} has not answered for {away:.0f}s "
                f"(last: {verb} {resource}){left}"
            )

    def away_seconds(self) -> float:
        with self._state_lock:
            since = self._away_since
        return 0.0 if since is None else self._monotonic() - since

    def decide(
        self, failure: Failure, attempt: int, *, idempotent: bool, retry_after: float | None = None
    ) -> RetryDecision:
        """``decide_retry`` with this cluster's time left, reachability and a fresh jitter."""
        return decide_retry(
            failure,
            attempt,
            idempotent=idempotent,
            retry_after_seconds=retry_after,
            remaining_seconds=self.remaining_seconds(),
            reached=self.reached,
            jitter=self.jitter(),
        )

    def pause(self, seconds: float) -> None:
        self.retries += 1
        if self.cancel is not None:
            self.cancel.wait(seconds)
        else:
            self._sleep(seconds)

    def _gave_up(self, what: str, *, verb: str, kind: Kind, name: str, namespace: str) -> ClusterError:
        """The error for a request that could not get through: unreachable if the cluster never
        answered, an outage if it did."""
        where = f" in namespace {namespace!r}" if namespace and kind.namespaced else ""
        if not self.reached:
            return ClusterUnreachable(
                f"cannot reach the Kubernetes API server at {self.server} ({what}) "
                f"while trying to {verb} {kind.resource}{where}; "
                "is the cluster up and the kubeconfig's server address right?",
                verb=verb,
                resource=kind.resource,
                name=name,
                namespace=namespace,
            )
        cancelled = self.cancel is not None and self.cancel.is_set()
        why = "the run was stopped" if cancelled else "the time allowed ran out"
        return ClusterOutage(
            f"the API server at {self.server} stopped answering ({what}; away for "
            f"{self.away_seconds():.0f}s) and {why} while trying to {verb} {kind.resource}"
            + (f" {name!r}" if name else "")
            + where,
            verb=verb,
            resource=kind.resource,
            name=name,
            namespace=namespace,
        )

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
        timeout: tuple[float, float | None] = REQUEST_TIMEOUT_SECONDS,
        stream: bool = False,
        idempotent: bool | None = None,
    ) -> Any:
        """Send one request (retried per ``decide_retry``); the urllib3 response if ``stream``, else bytes."""
        import urllib3  # lazily

        if idempotent is None:
            idempotent = method in ("GET", "PUT", "DELETE")
        attempt = 0
        while True:
            attempt += 1
            self.requests.add(verb)
            headers = {"Accept": accept}
            if body is not None:
                headers["Content-Type"] = content_type
            sent_at = time.monotonic()
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
                self._failed(Failure.UNREACHABLE, verb, kind.resource)
                decision = self.decide(Failure.UNREACHABLE, attempt, idempotent=idempotent or not sent)
                self._tell(verb, method, path, None, sent_at, attempt, decision, error=type(exc).__name__)
                if decision.retry:
                    self.pause(decision.delay_seconds)
                    continue
                raise self._gave_up(
                    f"{type(exc).__name__}, {attempt} attempt(s)",
                    verb=verb,
                    kind=kind,
                    name=name,
                    namespace=namespace,
                ) from exc
            except Exception as exc:  # the client's ApiException(status=0) for TLS failures
                status = getattr(exc, "status", None)
                self._tell(verb, method, path, None, sent_at, attempt, None, error=type(exc).__name__)
                if status == 0:
                    raise ClusterUnreachable(
                        f"TLS failure talking to {self.server}: {_short(str(getattr(exc, 'reason', '')))}",
                        verb=verb,
                        resource=kind.resource,
                        namespace=namespace,
                    ) from exc
                raise
            status = int(response.status)
            failure = classify_failure(status)
            if failure not in (Failure.UNAVAILABLE, Failure.THROTTLED):
                self._answered()
            self.reached = True
            if 200 <= status < 300:
                self._tell(verb, method, path, status, sent_at, attempt, None)
                return response.response if stream else response.read()
            data = response.read()
            self._failed(failure, verb, kind.resource)
            decision = self.decide(
                failure,
                attempt,
                idempotent=idempotent,
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
            self._tell(verb, method, path, status, sent_at, attempt, decision)
            if decision.retry:
                self.pause(decision.delay_seconds)
                continue
            if failure in WAIT_OUT and (idempotent or failure is Failure.THROTTLED):
                raise self._gave_up(
                    f"{status}, {attempt} attempt(s)", verb=verb, kind=kind, name=name, namespace=namespace
                )
            raise build_cluster_error(
                status, data, verb=verb, kind=kind, name=name, namespace=namespace, server=self.server
            )

    def _tell(
        self,
        verb: str,
        method: str,
        path: str,
        status: int | None,
        sent_at: float,
        attempt: int,
        decision: RetryDecision | None,
        *,
        error: str = "",
    ) -> None:
        if self.on_request is None:
            return
        retry_in = decision.delay_seconds if decision is not None and decision.retry else None
        milliseconds = (time.monotonic() - sent_at) * 1000
        self.on_request(ApiCall(verb, method, path, status, milliseconds, attempt, error, retry_in))

    def _json(self, method: str, path: str, **kwargs: Any) -> Obj:
        data = self._send(method, path, **kwargs)
        try:
            decoded = orjson.loads(data) if data else {}
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

    def create_object(
        self,
        manifest: Mapping[str, Any],
        *,
        dry_run: bool = False,
        is_ours: Callable[[Obj], bool] | None = None,
    ) -> Obj:
        """POST ``manifest``. A create is not idempotent: after a 5xx or a lost connection (the
        server may have stored it before the answer was lost) the object is read back by name. With
        ``is_ours``, an object found that it accepts counts as created; one it rejects is a
        ``ClusterConflict`` naming the owner. Without ``is_ours`` (or for ``generateName``), any
        object found is a ``ClusterConflict`` for the caller to resolve. Not found: created again,
        with back-off, while the deploy has time. A 409 on a repeated create is read back the same way."""
        kind, name, namespace = _identity(manifest)
        attempt = 0
        ambiguous = False  # an earlier attempt may have been stored
        while True:
            attempt += 1
            try:
                return self._json(
                    "POST",
                    kind.path(namespace),
                    verb="create",
                    kind=kind,
                    name=name,
                    namespace=namespace,
                    body=dict(manifest),
                    query=_dry_run(dry_run),
                    idempotent=False,
                )
            except ClusterAuthError:
                raise
            except ClusterConflict:
                if not ambiguous or is_ours is None:
                    raise
            except ClusterError as exc:
                if not name or dry_run or not (exc.status is None or exc.status >= 500):
                    raise
                if isinstance(exc, ClusterOutage) and self.remaining_seconds() <= 0:
                    raise
                ambiguous = True
            found = self.read_object(kind, name, namespace=namespace)
            self.read_backs += 1
            if found is not None:
                if is_ours is not None and is_ours(found):
                    return found
                raise ClusterConflict(
                    f"{kind.resource} {name!r}"
                    + (f" in namespace {namespace!r}" if namespace and kind.namespaced else "")
                    + " already exists and is not the one this deploy created"
                    + _owner_note(found),
                    verb="create",
                    resource=kind.resource,
                    name=name,
                    namespace=namespace,
                    status=409,
                    reason="AlreadyExists",
                )
            decision = self.decide(Failure.UNAVAILABLE, attempt, idempotent=True)
            if not decision.retry:
                raise self._gave_up(
                    f"create failed {attempt} time(s)",
                    verb="create",
                    kind=kind,
                    name=name,
                    namespace=namespace,
                )
            self.pause(decision.delay_seconds)

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
        data = self._get_pod_log(pod, namespace=namespace, query=query)
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        return text.splitlines()[-tail_lines:]

    def _get_pod_log(
        self,
        pod: str,
        *,
        namespace: str,
        query: Sequence[tuple[str, Any]],
        stream: bool = False,
        timeout: tuple[float, float | None] = REQUEST_TIMEOUT_SECONDS,
    ) -> Any:
        return self._send(
            "GET",
            POD.path(namespace, pod, "log"),
            verb="get logs of",
            kind=POD,
            name=pod,
            namespace=namespace,
            query=query,
            accept="*/*",
            timeout=timeout,
            stream=stream,
        )

    def open_pod_log(
        self,
        pod: str,
        *,
        namespace: str,
        container: str,
        follow: bool = False,
        previous: bool = False,
        since_seconds: int | None = None,
    ) -> PodLogStream:
        """A container's log as a stream of lines (``follow``: until the container stops, or ``close()``)."""
        query: list[tuple[str, Any]] = [("container", container)]
        if follow:
            query.append(("follow", "true"))
        if previous:
            query.append(("previous", "true"))
        if since_seconds is not None:
            query.append(("sinceSeconds", since_seconds))
        response = self._get_pod_log(
            pod,
            namespace=namespace,
            query=query,
            stream=True,
            # A followed service may print nothing for hours: no read timeout, close() ends it.
            timeout=(REQUEST_TIMEOUT_SECONDS[0], None) if follow else REQUEST_TIMEOUT_SECONDS,
        )
        return PodLogStream(response)

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


def _owner_note(found: Mapping[str, Any]) -> str:
    """Who made an object we did not: its managed-by, part-of and deployment id, as far as known."""
    meta = found.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    parts = [
        f"{key}={value}"
        for key, value in (
            ("managed-by", labels.get("app.kubernetes.io/managed-by")),
            ("part-of", labels.get("app.kubernetes.io/part-of")),
            ("deployment", annotations.get("bodywork.dev/deployment-id")),
            ("run", annotations.get("bodywork.dev/run-url")),
        )
        if value
    ]
    return f" (it has {', '.join(parts)})" if parts else " (it carries none of this tool's labels)"


def _dry_run(dry_run: bool) -> list[tuple[str, Any]]:
    return [("dryRun", "All")] if dry_run else []


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def build_label_selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


# ------------------------------------------------------------------------------------- pod logs


class PodLogStream:
    """The lines of one container's log as they arrive; ``close()`` may be called from any thread and
    ends the iteration (a followed stream otherwise ends when the container stops)."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(Exception):
            self._response.shutdown()  # unblocks a read in the reading thread
        with contextlib.suppress(Exception):
            self._response.close()

    def __iter__(self) -> Iterator[str]:
        import urllib3  # lazily

        buffer = b""
        try:
            for chunk in self._response.stream(amt=None, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    yield line.decode("utf-8", "replace").rstrip("\r")
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            if not self._closed.is_set():
                raise ClusterError(f"the log stream broke off ({type(exc).__name__})") from exc
        finally:
            self._response.close()  # never pool a connection whose stream we may not have read to the end
        if buffer and not self._closed.is_set():
            yield buffer.decode("utf-8", "replace")


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
            error: ClusterError | None = None
            try:
                if not listed:  # a list that failed is retried as a failed stream is re-opened
                    listing = self._cluster.read_objects(
                        self._kind,
                        namespace=self._namespace,
                        label_selector=self._label_selector,
                        field_selector=self._field_selector,
                    )
                    resource_version = listing.resource_version
                    listed = True
                    yield WatchEvent("LISTED", objects=listing.items)
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
            if end is WatchEnd.DROPPED and error is None:
                self._cluster._failed(Failure.UNREACHABLE, "watch", self._kind.resource)
            decision = decide_watch_reconnect(
                end,
                failures,
                remaining_seconds=self._cluster.remaining_seconds(),
                jitter=self._cluster.jitter(),
            )
            if decision.action is WatchAction.GIVE_UP:
                raise error or self._cluster._gave_up(
                    f"the watch kept dropping, {failures} times in a row",
                    verb="watch",
                    kind=self._kind,
                    name="",
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
        buffer = b""  # an event cut by a chunk's end, completed by the next chunk
        try:
            for chunk in response.stream(amt=None, decode_content=False):
                *lines, buffer = (buffer + chunk).split(b"\n")  # one pass, however many events it holds
                for line in lines:
                    if line and not line.isspace():
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
            event = orjson.loads(line)
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
