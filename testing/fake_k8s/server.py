"""HTTP(S) front end: routing, auth, recording, faults, list/watch, logs and the service proxy."""

from __future__ import annotations

import base64
import contextlib
import json
import select
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from . import resources as R
from .recording import RequestRecord
from .selectors import SelectorError, field_selector, label_selector
from .store import ApiError, Expired, Resource

if TYPE_CHECKING:
    from .cluster import FakeCluster

_GROUP_PREFIXES = {(r.group, r.version) for r in R.RESOURCES}


class Route:
    """What a request path addresses."""

    def __init__(
        self,
        kind: str,
        res: Resource | None = None,
        ns: str | None = None,
        name: str | None = None,
        sub: str | None = None,
        rest: str = "",
        payload: Any = None,
    ):
        self.kind, self.res, self.ns, self.name, self.sub, self.rest = kind, res, ns, name, sub, rest
        self.payload = payload


def parse_route(path: str) -> Route:
    parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
    if path in ("/version", "/version/"):
        return Route("version")
    if parts in (["healthz"], ["readyz"], ["livez"]):
        return Route("health")
    if parts == ["api"]:
        return Route("api")
    if parts == ["apis"]:
        return Route("apis")
    if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    elif len(parts) == 2 and parts[0] == "apis" and parts[1] in R.group_versions():
        return Route("group", payload=parts[1])
    else:
        return Route("unknown")
    if (group, version) not in _GROUP_PREFIXES:
        return Route("unknown")
    if not rest:
        return Route("resourcelist", payload=(group, version))
    ns = None
    if (
        rest[0] == "namespaces"
        and group == ""
        and (len(rest) <= 2 or (len(rest) == 3 and rest[2] in ("status", "finalize")))
    ):
        res = R.BY_KEY[("", "namespaces")]
        return Route(
            "resource", res, None, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None
        )
    if rest[0] == "namespaces" and len(rest) >= 3:
        ns, rest = rest[1], rest[2:]
    res = R.BY_KEY.get((group, rest[0]))
    if res is None or res.version != version or (ns is not None and not res.namespaced):
        return Route("unknown")
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    tail = "/".join(rest[3:])
    if res.kind == "Service" and sub == "proxy":
        svc, _, port = (name or "").partition(":")
        return Route("proxy", res, ns, svc, "proxy", "/" + tail, payload=port or None)
    if sub is not None and (sub not in res.subresources or tail):
        return Route("unknown")
    return Route("resource", res, ns, name, sub)


def _first(query: dict[str, list[str]], key: str, default: str | None = None) -> str | None:
    values = query.get(key)
    return values[0] if values else default


def _verb(method: str, route: Route, query: dict) -> str:
    if route.kind == "proxy":
        return {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
            method, method.lower()
        )
    if route.kind != "resource":
        return method.lower()
    if method == "GET":
        if route.name is None:
            return "watch" if _first(query, "watch") in ("true", "1") else "list"
        return "get"
    if method == "DELETE":
        return "delete" if route.name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


class _Dropped(Exception):
    """Close the connection without (finishing) an answer."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: FakeHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()
        self.server.track(self.request, True)

    def finish(self) -> None:
        self.server.track(self.request, False)
        with contextlib.suppress(OSError):
            super().finish()

    def handle(self) -> None:
        try:
            super().handle()
        except (OSError, ssl.SSLError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # ------------------------------------------------------------------ plumbing
    @property
    def cluster(self) -> FakeCluster:
        return self.server.cluster

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self, code: int, body: bytes, ctype: str = "application/json", extra: dict | None = None
    ) -> None:
        self._status = code
        self._record()  # before answering: whatever a client has seen is already recorded
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, obj: Any, extra: dict | None = None) -> None:
        self._send(code, orjson.dumps(obj), extra=extra)

    def _error(self, err: ApiError, extra: dict | None = None) -> None:
        self._json(err.code, err.status(), extra)

    def _record(self) -> None:
        if self._recorded:
            return
        self._recorded = True
        route, query, method = self._route_info
        url = urlsplit(self.path)
        self.cluster.requests.append(
            RequestRecord(
                verb=_verb(method, route, query),
                method=method,
                path=url.path,
                query=url.query,
                group=route.res.group if route.res else None,
                resource=route.res.plural if route.res else None,
                subresource=route.sub,
                namespace=route.ns,
                name=route.name,
                status=self._status,
                fault=self._fault,
                user_agent=self.headers.get("User-Agent", ""),
                body=self._body,
            )
        )

    def _dispatch(self, method: str) -> None:
        self._status = 0
        self._recorded = False
        self._fault: str | None = None
        self._body = b""
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        route = parse_route(url.path)
        self._route_info = (route, query, method)
        try:
            body = self._body = self._read_body()
            if self.headers.get("Authorization") != f"Bearer {self.cluster.token}":
                self._error(ApiError(401, "Unauthorized", "Unauthorized"))
                return
            faults = self.cluster.faults
            if route.kind == "resource" and faults.applies(method, url.path):
                if faults.latency:
                    time.sleep(faults.latency)
                self._fault = fault = faults.pick()
                if fault == "drop":
                    raise _Dropped
                if fault == "429":
                    self._error(
                        ApiError(
                            429,
                            "TooManyRequests",
                            "Too many requests, please try again later.",
                            {"retryAfterSeconds": faults.retry_after},
                        ),
                        {"Retry-After": faults.retry_after},
                    )
                    return
                if fault in ("500", "503"):
                    code = int(fault)
                    reason = "InternalError" if code == 500 else "ServiceUnavailable"
                    self._error(ApiError(code, reason, f"injected fault: {reason}"))
                    return
            self._route(method, route, query, body)
        except ApiError as err:
            if self._recorded:  # an error after a watch stream started: nothing more can be sent
                self.close_connection = True
            else:
                self._error(err)
        except _Dropped:
            self.close_connection = True
        except (ConnectionError, ssl.SSLError, TimeoutError):
            self.close_connection = True
        except Exception as exc:  # a bug in the fake: answer 500 rather than hang the client
            self.cluster.internal_errors.append(exc)
            if not self._recorded:
                self._error(ApiError(500, "InternalError", f"fake apiserver bug: {exc!r}"))
        finally:
            self._record()

    # ------------------------------------------------------------------ routes
    def _route(self, method: str, route: Route, query: dict, body: bytes) -> None:
        if route.kind == "version":
            self._json(200, R.VERSION_INFO)
        elif route.kind == "health":
            self._send(200, b"ok", "text/plain")
        elif route.kind == "api":
            self._json(200, R.api_versions(f"127.0.0.1:{self.server.server_port}"))
        elif route.kind == "apis":
            self._json(200, R.api_group_list())
        elif route.kind == "group":
            self._json(200, R.api_group(route.payload))
        elif route.kind == "resourcelist":
            self._json(200, R.resource_list(*route.payload))
        elif route.kind == "proxy":
            code, headers, data = self.cluster.proxy(
                method, route.ns or "", route.name or "", route.payload, route.rest, query, body
            )
            self._send(code, data, headers.pop("Content-Type", "text/plain; charset=utf-8"), headers)
        elif route.kind == "resource":
            self._resource(method, route, query, body)
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _resource(self, method: str, route: Route, query: dict, body: bytes) -> None:
        res, ns, name, sub = route.res, route.ns, route.name, route.sub
        assert res is not None
        store = self.cluster.store
        dry_run = _first(query, "dryRun") == "All"
        payload: Any = None
        if body:
            try:
                payload = orjson.loads(body)
            except ValueError as exc:
                if method in ("POST", "PUT", "PATCH"):
                    raise ApiError(400, "BadRequest", f"invalid JSON body: {exc}") from exc
        if (isinstance(payload, dict) and payload.get("kind") == "DeleteOptions") or method == "DELETE":
            opts = payload if isinstance(payload, dict) else {}
            dry_run = dry_run or opts.get("dryRun") == ["All"]
        if res.namespaced and ns is None and method != "GET":
            raise ApiError(405, "MethodNotAllowed", "a namespace is required for this request")
        if method == "GET":
            if name is None:
                if _first(query, "watch") in ("true", "1"):
                    self._watch(res, ns, query)
                else:
                    self._list(res, ns, query)
            elif sub == "log" and _first(query, "follow") in ("true", "1"):
                self._follow_log(ns or "", name, query)
            elif sub == "log":
                text = self.cluster.pod_log(ns or "", name, query)
                self._send(200, text.encode(), "text/plain")
            else:
                self._json(200, store.get(res, ns, name))
            return
        if sub == "log" or (not res.client_writable and sub is None and method != "DELETE"):
            raise ApiError(
                405,
                "MethodNotAllowed",
                f"the fake apiserver does not let clients {method} {res.plural}; the simulated "
                "controllers own them",
            )
        if method == "POST" and name is None:
            self._json(201, store.create(res, ns, payload, dry_run=dry_run))
        elif method == "PUT" and name:
            self._json(200, store.update(res, ns, name, payload, sub, dry_run=dry_run))
        elif method == "PATCH" and name:
            ctype = self.headers.get("Content-Type", "")
            self._json(200, store.patch(res, ns, name, ctype, payload, sub, dry_run=dry_run))
        elif method == "DELETE" and name:
            opts = payload if isinstance(payload, dict) else {}
            propagation = opts.get("propagationPolicy") or _first(query, "propagationPolicy")
            if opts.get("orphanDependents") is True or _first(query, "orphanDependents") == "true":
                propagation = "Orphan"
            pre = opts.get("preconditions") or {}
            gone = store.delete(
                res,
                ns,
                name,
                propagation,
                dry_run=dry_run,
                precondition_uid=pre.get("uid"),
                precondition_rv=pre.get("resourceVersion"),
            )
            if res.delete_returns_object:
                self._json(200, gone)
            else:
                self._json(
                    200,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "details": {
                            "name": name,
                            "group": res.group,
                            "kind": res.plural,
                            "uid": gone["metadata"]["uid"],
                        },
                    },
                )
        elif method == "DELETE":
            items, _ = store.list(res, ns, _first(query, "labelSelector"), _first(query, "fieldSelector"))
            for item in items:
                with contextlib.suppress(ApiError):
                    store.delete(res, ns, item["metadata"]["name"], dry_run=dry_run)
            self._json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {self.path}")

    def _list(self, res: Resource, ns: str | None, query: dict) -> None:
        items, rv = self.cluster.store.list(
            res, ns, _first(query, "labelSelector"), _first(query, "fieldSelector"), copy=False
        )
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        limit = int(_first(query, "limit") or 0)
        start = 0
        token = _first(query, "continue")
        if token:
            try:
                start = int(json.loads(base64.b64decode(token))["start"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ApiError(400, "BadRequest", "invalid continue token") from exc
        if limit > 0 or start:
            end = start + limit if limit > 0 else len(items)
            if end < len(items):
                meta["continue"] = base64.b64encode(json.dumps({"start": end}).encode()).decode()
                meta["remainingItemCount"] = len(items) - end
            items = items[start:end]
        self._json(
            200, {"kind": f"{res.kind}List", "apiVersion": res.api_version, "metadata": meta, "items": items}
        )

    # ------------------------------------------------------------------ watch
    def _chunk(self, obj: dict) -> None:
        data = orjson.dumps(obj) + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _watch(self, res: Resource, ns: str | None, query: dict) -> None:
        store, faults = self.cluster.store, self.cluster.faults
        try:
            lmatch = label_selector(_first(query, "labelSelector"))
            fmatch = field_selector(_first(query, "fieldSelector"))
        except SelectorError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from exc

        def matches(obj: dict | None) -> bool:
            return (
                bool(obj)
                and (not ns or obj["metadata"].get("namespace") == ns)
                and lmatch(obj["metadata"].get("labels") or {})
                and fmatch(obj)
            )

        timeout = float(_first(query, "timeoutSeconds") or 1800)
        bookmarks = _first(query, "allowWatchBookmarks") == "true"
        rv_param = _first(query, "resourceVersion") or ""
        cut_after = faults.watch_cut_after if faults.applies("GET", self.path.split("?")[0]) else None
        if rv_param not in ("", "0") and not rv_param.isdigit():
            raise ApiError(400, "BadRequest", f"invalid resourceVersion {rv_param!r}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self._status = 200
        self._record()
        self.end_headers()
        sent = 0

        def send(obj: dict) -> None:
            nonlocal sent
            if cut_after is not None and faults.watch_cut_mid_event and sent + 1 >= cut_after:
                line = orjson.dumps(obj)
                half = line[: len(line) // 2]
                self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(half), half))
                raise _Dropped
            self._chunk(obj)
            sent += 1
            if cut_after is not None and sent >= cut_after:
                raise _Dropped

        try:
            watcher, initial, last = store.watch(
                res, ns, matches, None if rv_param in ("", "0") else int(rv_param)
            )
        except Expired as exc:
            self._chunk(self._gone(exc.rv, exc.oldest))
            self.wfile.write(b"0\r\n\r\n")
            return
        try:
            for obj in initial:
                send({"type": "ADDED", "object": obj})
            deadline = time.monotonic() + timeout
            interval = self.cluster.bookmark_interval
            next_bookmark = time.monotonic() + interval
            while True:
                now = time.monotonic()
                wake = min(deadline, next_bookmark) if bookmarks else deadline
                events = watcher.take(max(0.0, min(wake - now, 1.0)))
                if store.closed or watcher.closed or (not events and self._client_gone()):
                    raise _Dropped
                if faults.rate_drop >= 1.0 and faults.applies("GET", self.path.split("?")[0]):
                    raise _Dropped  # a server dropping every request has dropped its open streams too
                for ev in events:
                    last = max(last, ev.rv)
                    out = self._transform(ev, matches)
                    if out:
                        send(out)
                now = time.monotonic()
                if bookmarks and now >= next_bookmark:
                    with store.lock:  # everything up to the bookmark's version is sent first
                        pending, last = watcher.take(0), max(last, store.rv)
                    for ev in pending:
                        out = self._transform(ev, matches)
                        if out:
                            send(out)
                    send(
                        {
                            "type": "BOOKMARK",
                            "object": {
                                "kind": res.kind,
                                "apiVersion": res.api_version,
                                "metadata": {"resourceVersion": str(last)},
                            },
                        }
                    )
                    next_bookmark = now + interval
                if now >= deadline:
                    break
        finally:
            store.unwatch(watcher)
        self.wfile.write(b"0\r\n\r\n")

    def _follow_log(self, ns: str, name: str, query: dict) -> None:
        followed = self.cluster.pod_logs.open_follow(ns, name, query)  # errors before any byte is sent
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self._status = 200
        self._record()
        self.end_headers()

        def send(line: str) -> None:
            data = line.encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

        self.cluster.pod_logs.follow(
            followed, send, gone=lambda: self.cluster.store.closed or self._client_gone()
        )
        self.wfile.write(b"0\r\n\r\n")

    def _client_gone(self) -> bool:
        """True when the client closed its end of an idle watch (plain sockets only: a TLS socket
        cannot be peeked, so those streams end at their timeout as before)."""
        sock = self.request
        if isinstance(sock, ssl.SSLSocket):
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    @staticmethod
    def _gone(last: int, oldest: int) -> dict:
        return {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f"too old resource version: {last} ({oldest + 1})",
                "reason": "Expired",
                "code": 410,
            },
        }

    @staticmethod
    def _transform(ev, matches) -> dict | None:
        new_ok = matches(ev.obj)
        old_ok = matches(ev.old)
        if ev.type == "DELETED":
            return {"type": "DELETED", "object": ev.obj} if old_ok or new_ok else None
        if new_ok and old_ok:
            return {"type": "MODIFIED", "object": ev.obj}
        if new_ok:
            return {"type": "ADDED", "object": ev.obj}
        if old_ok:
            return {"type": "DELETED", "object": ev.obj}
        return None


class FakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # a real apiserver's backlog is the kernel's (SOMAXCONN); socketserver's default of 5 made
    # connection bursts (hundreds of stages starting at once) wait for SYN retries
    request_queue_size = socket.SOMAXCONN

    def __init__(self, cluster: FakeCluster, port: int, ssl_context: ssl.SSLContext | None):
        self.cluster = cluster
        self.ssl_context = ssl_context
        self._conns: set[socket.socket] = set()
        self._workers: set[threading.Thread] = set()
        self._conn_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), Handler)

    def get_request(self):
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def process_request(self, request, client_address) -> None:
        t = threading.Thread(target=self._serve_connection, args=(request, client_address), daemon=True)
        with self._conn_lock:
            self._workers.add(t)
        t.start()

    def _serve_connection(self, request, client_address) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._workers.discard(threading.current_thread())

    def track(self, sock: socket.socket, add: bool) -> None:
        with self._conn_lock:
            (self._conns.add if add else self._conns.discard)(sock)

    def handle_error(self, request, client_address) -> None:
        pass  # clients going away mid-request are normal

    def close_all(self, timeout: float = 5.0) -> None:
        with self._conn_lock:
            conns, threads = list(self._conns), list(self._workers)
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
