"""The object store: validation, defaulting, resourceVersions, the watch history and cascade deletion.

Every object kept in the store is treated as immutable: a write stores a fresh dict, so readers and
the watch history can share references safely.  Public getters return deep copies unless asked not
to (``copy=False``, for readers that only serialise or read, such as the HTTP list and watch).

Scale: the history is a ring indexed by resourceVersion (every write bumps the version by exactly
one), each watch registers a `Watcher` that is handed only the events of its own resource kind and
namespace and is woken alone, and owned objects are indexed by their owner's uid, so the simulated
controllers never scan a whole namespace.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .json_data import deep_copy
from .patch import PatchError, apply_patch
from .resources import BY_KEY, Resource, resolve
from .selectors import SelectorError, field_selector, label_selector

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _same(obj: dict) -> dict:
    return obj


_NOW_ISO: tuple[int, str] = (-1, "")


def now_iso() -> str:
    """The current second, as the API server writes timestamps (formatted once per second: a thousand
    stages ask for it tens of thousands of times)."""
    global _NOW_ISO
    second = int(time.time())
    if _NOW_ISO[0] != second:
        _NOW_ISO = (second, datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return _NOW_ISO[1]


class ApiError(Exception):
    """An error the apiserver would answer with a Status object."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def status(self) -> dict:
        out = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            out["details"] = self.details
        return out


def not_found(res: Resource, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{res.qualified} "{name}" not found',
        {"name": name, "group": res.group, "kind": res.plural},
    )


def invalid(res: Resource, name: str, causes: list[tuple[str, str]]) -> ApiError:
    text = "; ".join(f"{f}: {m}" for f, m in causes)
    return ApiError(
        422,
        "Invalid",
        f'{res.qualified_kind} "{name}" is invalid: {text}',
        {
            "name": name,
            "group": res.group,
            "kind": res.kind,
            "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes],
        },
    )


def conflict(res: Resource, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {res.qualified} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        {"name": name, "group": res.group, "kind": res.plural},
    )


class Expired(Exception):
    """A watch asked to resume from a resourceVersion older than the retained history."""

    def __init__(self, rv: int, oldest: int):
        super().__init__(f"too old resource version: {rv} ({oldest + 1})")
        self.rv, self.oldest = rv, oldest


@dataclass(frozen=True)
class WatchEvent:
    rv: int
    resource: Resource
    type: str  # ADDED / MODIFIED / DELETED
    obj: dict
    old: dict | None


class History:
    """The last `maxlen` watch events, indexed by resourceVersion (consecutive: one per write)."""

    def __init__(self, events=(), maxlen: int = 1000):
        self.maxlen = maxlen
        self._events: list[WatchEvent] = []
        self._start = 0  # index of the oldest retained event in _events
        for event in events:
            self.append(event)

    def append(self, event: WatchEvent) -> None:
        self._events.append(event)
        if len(self._events) - self._start > self.maxlen:
            self._start += 1
            if self._start > max(self.maxlen, 64):  # amortised compaction
                del self._events[: self._start]
                self._start = 0

    def __len__(self) -> int:
        return len(self._events) - self._start

    def __iter__(self):
        return iter(self._events[self._start :])

    def __getitem__(self, index: int) -> WatchEvent:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._events[self._start + index]

    def since(self, rv: int) -> list[WatchEvent]:
        """Every retained event with a resourceVersion above `rv`, oldest first."""
        if not len(self):
            return []
        first = self._events[self._start].rv
        offset = max(0, rv + 1 - first)
        return self._events[self._start + offset :]


class Watcher:
    """One watch's mailbox: the store appends the events that may concern it and wakes it alone."""

    def __init__(self, res: Resource, ns: str | None, matches: Callable[[dict | None], bool]):
        self.res, self.ns, self.matches = res, ns or None, matches
        self.events: deque[WatchEvent] = deque()
        self.cond = threading.Condition(threading.Lock())
        self.closed = False

    def offer(self, event: WatchEvent) -> None:
        if self.ns is not None and event.obj["metadata"].get("namespace") != self.ns:
            return
        if not (self.matches(event.obj) or self.matches(event.old)):
            return
        with self.cond:
            self.events.append(event)
            self.cond.notify()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify()

    def take(self, timeout: float) -> list[WatchEvent]:
        """The events queued so far, waiting up to `timeout` seconds for the first one."""
        with self.cond:
            if not self.events and not self.closed and timeout > 0:
                self.cond.wait(timeout)
            out = list(self.events)
            self.events.clear()
            return out


def template_hash(template: dict) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    n = int(digest[:16], 16)
    out = ""
    for _ in range(10):
        n, r = divmod(n, len(alphabet))
        out += alphabet[r]
    return out


def _spec_part(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Store:
    def __init__(self, history_size: int = 1000, seed: int | None = None):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = 0
        self.history = History(maxlen=history_size)
        self.objects: dict[tuple[str, str], dict[tuple[str, str], dict]] = {}
        self.listeners: list[Callable[[WatchEvent], None]] = []
        self.watchers: dict[tuple[str, str], set[Watcher]] = {}
        # owner uid -> {(resource key, namespace, name)}: the controllers' and cascades' index
        self._owner_index: dict[str, set[tuple[tuple[str, str], str, str]]] = {}
        self.waiters = 0  # threads in cond.wait (wait_for): writes notify only when someone waits
        self.closed = False
        self.rng = random.Random(seed)
        self._next_ip = 10
        self._next_node_port = 30000
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(resolve("namespaces"), None, {"metadata": {"name": ns}})

    # ------------------------------------------------------------------ history
    @property
    def history_size(self) -> int:
        return self.history.maxlen

    @history_size.setter
    def history_size(self, size: int) -> None:
        with self.lock:
            self.history = History(self.history, maxlen=size)

    def oldest_resumable_rv(self) -> int:
        """A watch may resume from this resourceVersion or any later one."""
        with self.lock:
            if len(self.history) < self.history.maxlen or not len(self.history):
                return 0
            return self.history[0].rv - 1

    def _emit(self, res: Resource, type_: str, obj: dict, old: dict | None, rv: int) -> None:
        event = WatchEvent(rv, res, type_, obj, old)
        self.history.append(event)
        for watcher in self.watchers.get(res.key, ()):
            watcher.offer(event)
        for listener in list(self.listeners):
            listener(event)
        if self.waiters:
            self.cond.notify_all()

    def watch(
        self, res: Resource, ns: str | None, matches: Callable[[dict | None], bool], since: int | None
    ) -> tuple[Watcher, list[dict], int]:
        """Register a watch atomically with its starting point.

        `since` None: (watcher, the current matching objects, current rv) — a fresh watch.
        `since` an rv: the retained events after it are queued first; raises `Expired` when `since` is
        older than the retained history.
        """
        with self.lock:
            if since is not None and since < self.oldest_resumable_rv():
                raise Expired(since, self.oldest_resumable_rv())
            watcher = Watcher(res, ns, matches)
            initial: list[dict] = []
            if since is None:
                initial = [o for o in self._scan(res, ns) if matches(o)]
            else:
                for event in self.history.since(since):
                    if event.resource is res:
                        watcher.offer(event)
            self.watchers.setdefault(res.key, set()).add(watcher)
            return watcher, initial, self.rv

    def unwatch(self, watcher: Watcher) -> None:
        with self.lock:
            self.watchers.get(watcher.res.key, set()).discard(watcher)

    def wait(self, timeout: float) -> None:
        """Wait on `cond` (the caller holds the lock) until a write or `timeout`."""
        self.waiters += 1
        try:
            self.cond.wait(timeout)
        finally:
            self.waiters -= 1

    def close(self) -> None:
        with self.lock:
            self.closed = True
            for watchers in self.watchers.values():
                for watcher in watchers:
                    watcher.close()
            self.cond.notify_all()

    # ------------------------------------------------------------------ reads
    def _bucket(self, res: Resource) -> dict[tuple[str, str], dict]:
        return self.objects.setdefault(res.key, {})

    def _key(self, res: Resource, ns: str | None, name: str) -> tuple[str, str]:
        return (ns or "" if res.namespaced else "", name)

    def get(self, res: Resource, ns: str | None, name: str) -> dict:
        with self.lock:
            obj = self._bucket(res).get(self._key(res, ns, name))
            if obj is None:
                raise not_found(res, name)
            return deep_copy(obj)

    def peek(self, res: Resource, ns: str | None, name: str) -> dict | None:
        """The stored object itself (never to be modified), or None: for read-only checks."""
        with self.lock:
            return self._bucket(res).get(self._key(res, ns, name))

    def find(self, res: Resource, ns: str | None, name: str) -> dict | None:
        with self.lock:
            obj = self._bucket(res).get(self._key(res, ns, name))
            return deep_copy(obj) if obj is not None else None

    def _scan(self, res: Resource, ns: str | None) -> list[dict]:
        """The stored (shared, never to be modified) objects of a kind, in (namespace, name) order."""
        bucket = self._bucket(res)
        return [bucket[k] for k in sorted(bucket) if not ns or k[0] == ns]

    def list(
        self,
        res: Resource,
        ns: str | None = None,
        labels: str | None = None,
        fields: str | None = None,
        copy: bool = True,
    ) -> tuple[list[dict], int]:
        """Matching objects and the current rv; `copy=False` returns the stored objects themselves
        (the caller must not modify them: the HTTP front end only serialises them)."""
        try:
            lmatch, fmatch = label_selector(labels), field_selector(fields)
        except SelectorError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from exc
        clone = deep_copy if copy else _same
        with self.lock:
            items = [
                clone(o)
                for o in self._scan(res, ns)
                if lmatch(o["metadata"].get("labels") or {}) and fmatch(o)
            ]
            return items, self.rv

    def owned(self, res: Resource, ns: str | None, uid: str, copy: bool = True) -> list[dict]:
        """Objects of one kind whose ownerReferences name `uid` (from the index: no scan)."""
        clone = deep_copy if copy else _same
        with self.lock:
            bucket = self._bucket(res)
            out = []
            for key, ons, name in sorted(self._owner_index.get(uid, ())):
                if key != res.key or (ns is not None and ons != ns):
                    continue
                obj = bucket.get(self._key(res, ons, name))
                if obj is not None:
                    out.append(clone(obj))
            return out

    def owned_by(self, uid: str, ns: str | None = None) -> list[tuple[Resource, dict]]:
        with self.lock:
            out = []
            for key, ons, name in sorted(self._owner_index.get(uid, ())):
                if ns is not None and ons != ns:
                    continue
                res = BY_KEY[key]
                obj = self._bucket(res).get(self._key(res, ons, name))
                if obj is not None:
                    out.append((res, deep_copy(obj)))
            return out

    def _index_owners(self, res: Resource, obj: dict, add: bool) -> None:
        meta = obj["metadata"]
        entry = (res.key, meta.get("namespace") or "", meta["name"])
        for ref in meta.get("ownerReferences") or []:
            uid = ref.get("uid") if isinstance(ref, dict) else None
            if not uid:
                continue
            if add:
                self._owner_index.setdefault(uid, set()).add(entry)
            else:
                owned = self._owner_index.get(uid)
                if owned is not None:
                    owned.discard(entry)
                    if not owned:
                        del self._owner_index[uid]

    # ------------------------------------------------------------------ writes
    def create(
        self, res: Resource, ns: str | None, body: dict, dry_run: bool = False, _owned: bool = False
    ) -> dict:
        """Store a new object. `_owned` (the controllers): `body` is the caller's to give away, and the
        stored object itself is returned (to be read only), saving two deep copies."""
        obj = (body if _owned else deep_copy(body)) if isinstance(body, dict) else None
        if obj is None:
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        self._check_namespace(res, ns, meta)
        with self.lock:
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + "".join(
                    self.rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5)
                )
            name = meta.get("name") or ""
            self._validate_name(res, name)
            if res.namespaced and self.find(resolve("namespaces"), None, ns or "") is None:
                raise ApiError(
                    404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"}
                )
            if self._key(res, ns, name) in self._bucket(res):
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{res.qualified} "{name}" already exists',
                    {"name": name, "group": res.group, "kind": res.plural},
                )
            obj["apiVersion"], obj["kind"] = res.api_version, res.kind
            for transient in ("resourceVersion", "deletionTimestamp", "managedFields"):
                meta.pop(transient, None)
            meta["uid"] = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            meta["creationTimestamp"] = now_iso()
            if res.has_generation:
                meta["generation"] = 1
            if res.namespaced:
                meta["namespace"] = ns
            self._default(res, obj, None)
            self._validate(res, obj, None)
            if dry_run:
                meta["resourceVersion"] = str(self.rv)
                return obj
            return self._store(res, obj, None, copy_result=not _owned)

    def update(
        self,
        res: Resource,
        ns: str | None,
        name: str,
        body: dict,
        subresource: str | None = None,
        dry_run: bool = False,
        check_rv: bool = True,
        _owned: bool = False,
    ) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        with self.lock:
            old = self._bucket(res).get(self._key(res, ns, name))
            if old is None:
                raise not_found(res, name)
            new = body if _owned else deep_copy(body)  # _owned: a private copy made by the caller
            meta = new.setdefault("metadata", {})
            if meta.get("name", name) != name:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"the name of the object ({meta.get('name')}) does not match the name on the "
                    f"URL ({name})",
                )
            self._check_namespace(res, ns, meta)
            if (
                check_rv
                and meta.get("resourceVersion")
                and meta["resourceVersion"] != old["metadata"]["resourceVersion"]
            ):
                raise conflict(res, name)
            if subresource == "status":
                if _owned:  # share the unchanged parts with the stored object: both are immutable
                    merged = dict(old)
                    merged["metadata"] = deep_copy(old["metadata"])
                else:
                    merged = deep_copy(old)
                merged["status"] = new.get("status", {})
                new = merged
            else:
                keep = ("uid", "creationTimestamp", "generation", "namespace", "name", "deletionTimestamp")
                for k in keep:
                    if k in old["metadata"]:
                        meta[k] = old["metadata"][k]
                if "status" in res.subresources:
                    if "status" in old:
                        new["status"] = deep_copy(old["status"])
                    else:
                        new.pop("status", None)
            new["apiVersion"], new["kind"] = res.api_version, res.kind
            if res.has_generation and _spec_part(new) != _spec_part(old) and subresource != "status":
                new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
            self._default(res, new, old)
            self._validate(res, new, old)
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            if new == old:
                return deep_copy(old)  # no-op writes do not bump the resourceVersion
            if dry_run:
                return new
            return self._store(res, new, old, copy_result=not _owned)

    def patch(
        self,
        res: Resource,
        ns: str | None,
        name: str,
        content_type: str,
        body: Any,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict:
        with self.lock:
            old = self._bucket(res).get(self._key(res, ns, name))
            if old is None:
                raise not_found(res, name)
            try:
                patched = apply_patch(content_type, deep_copy(old), body)
            except LookupError:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types "
                    f"include: application/json-patch+json, application/merge-patch+json, "
                    f"application/strategic-merge-patch+json (not {content_type})",
                ) from None
            except PatchError as exc:
                raise ApiError(422 if "test" in str(exc) else 400, "BadRequest", str(exc)) from exc
            want_rv = (patched.get("metadata") or {}).get("resourceVersion")
            if want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            return self.update(res, ns, name, patched, subresource, dry_run, check_rv=False)

    def mutate(
        self,
        res: Resource,
        ns: str | None,
        name: str,
        fn: Callable[[dict], Any],
        subresource: str | None = "status",
    ) -> dict | None:
        """Internal write for controllers: `fn` edits a copy in place; no-op edits write nothing.
        Returns the stored object itself (to be read only)."""
        with self.lock:
            current = self._bucket(res).get(self._key(res, ns, name))
            if current is None:
                return None
            if subresource == "status":
                # Only the status (and metadata) of a status write is kept: the rest is shared with
                # the stored object, which `fn` may read but must not edit.
                obj = dict(current)
                obj["metadata"] = deep_copy(current["metadata"])
                obj["status"] = deep_copy(current.get("status") or {})
            else:
                obj = deep_copy(current)
            fn(obj)
            return self.update(res, ns, name, obj, subresource, check_rv=False, _owned=True)

    def delete(
        self,
        res: Resource,
        ns: str | None,
        name: str,
        propagation: str | None = None,
        dry_run: bool = False,
        precondition_uid: str | None = None,
        precondition_rv: str | None = None,
    ) -> dict:
        with self.lock:
            old = self._bucket(res).get(self._key(res, ns, name))
            if old is None:
                raise not_found(res, name)
            if precondition_uid and precondition_uid != old["metadata"]["uid"]:
                raise conflict(res, name)
            if precondition_rv and precondition_rv != old["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            if propagation not in (None, "Orphan", "Background", "Foreground"):
                raise ApiError(422, "Invalid", f"propagationPolicy {propagation!r} is not supported")
            if dry_run:
                return deep_copy(old)
            if res.kind == "Namespace":
                for key, bucket in list(self.objects.items()):
                    for ons, oname in [k for k in bucket if k[0] == name]:
                        self._remove(BY_KEY[key], ons, oname)
                gone = deep_copy(old)
                gone["metadata"]["deletionTimestamp"] = now_iso()
                gone["status"] = {"phase": "Terminating"}
                self._remove(res, None, name)
                return gone
            # batch/v1 Jobs orphan their pods unless told otherwise, as a real apiserver does
            if propagation is None:
                propagation = "Orphan" if res.kind == "Job" else "Background"
            removed = self._remove(res, ns, name)
            uid = old["metadata"]["uid"]
            for dep_res, dep in self.owned_by(uid, ns):
                if propagation == "Orphan":

                    def strip(o, uid=uid):
                        o["metadata"]["ownerReferences"] = [
                            r for r in o["metadata"]["ownerReferences"] if r.get("uid") != uid
                        ]

                    self.mutate(dep_res, ns, dep["metadata"]["name"], strip, subresource=None)
                else:
                    with contextlib.suppress(ApiError):
                        self.delete(dep_res, ns, dep["metadata"]["name"], "Background")
            return removed

    def _remove(self, res: Resource, ns: str | None, name: str) -> dict:
        old = self._bucket(res).pop(self._key(res, ns, name))
        self._index_owners(res, old, False)
        self.rv += 1
        gone = deep_copy(old)
        gone["metadata"]["resourceVersion"] = str(self.rv)
        gone["metadata"].setdefault("deletionTimestamp", now_iso())
        self._emit(res, "DELETED", gone, old, self.rv)
        return deep_copy(gone)

    def _store(self, res: Resource, obj: dict, old: dict | None, copy_result: bool = True) -> dict:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        ns = obj["metadata"].get("namespace")
        if old is not None:
            self._index_owners(res, old, False)
        self._bucket(res)[self._key(res, ns, obj["metadata"]["name"])] = obj
        self._index_owners(res, obj, True)
        self._emit(res, "ADDED" if old is None else "MODIFIED", obj, old, self.rv)
        return deep_copy(obj) if copy_result else obj

    # ------------------------------------------------------------------ validation and defaulting
    def _check_namespace(self, res: Resource, ns: str | None, meta: dict) -> None:
        if res.namespaced and meta.get("namespace") and meta["namespace"] != ns:
            raise ApiError(
                400,
                "BadRequest",
                "the namespace of the provided object does not match the namespace sent on the request",
            )

    def _validate_name(self, res: Resource, name: str) -> None:
        if not name:
            raise invalid(res, name, [("metadata.name", "Required value: name or generateName is required")])
        if res.kind == "Namespace":
            pattern, limit, what = DNS1123_LABEL, 63, "a lowercase RFC 1123 label"
        elif res.kind == "Service":
            pattern, limit, what = DNS1035_LABEL, 63, "a DNS-1035 label"
        else:
            pattern, limit, what = DNS1123_SUBDOMAIN, 253, "a lowercase RFC 1123 subdomain"
        if res.kind == "Job":
            limit = 63
        if len(name) > limit or not pattern.match(name):
            raise invalid(
                res,
                name,
                [("metadata.name", f'Invalid value: "{name}": must be {what} of at most {limit} characters')],
            )

    def _default(self, res: Resource, obj: dict, old: dict | None) -> None:
        kind = res.kind
        meta = obj["metadata"]
        if kind == "Namespace":
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj.setdefault("status", {}).setdefault("phase", "Active")
        elif kind == "Secret":
            obj.setdefault("type", "Opaque")
            string_data = obj.pop("stringData", None) or {}
            data = obj.setdefault("data", {}) or {}
            obj["data"] = data
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
        elif kind == "Service":
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            spec.setdefault("sessionAffinity", "None")
            if old is not None and not spec.get("clusterIP"):
                spec["clusterIP"] = old["spec"].get("clusterIP")
                spec["clusterIPs"] = old["spec"].get("clusterIPs")
            if not spec.get("clusterIP"):
                self._next_ip += 1
                ip = f"10.96.{self._next_ip // 250}.{self._next_ip % 250 + 1}"
                spec["clusterIP"] = ip
            spec.setdefault("clusterIPs", [spec["clusterIP"]] if spec["clusterIP"] != "None" else ["None"])
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
            old_ports = {p.get("port"): p for p in ((old or {}).get("spec") or {}).get("ports") or []}
            for port in spec.get("ports") or []:
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
                if spec["type"] in ("NodePort", "LoadBalancer") and not port.get("nodePort"):
                    if old_ports.get(port.get("port"), {}).get("nodePort"):
                        port["nodePort"] = old_ports[port.get("port")]["nodePort"]
                    else:
                        self._next_node_port += 1
                        port["nodePort"] = self._next_node_port
            obj.setdefault("status", {"loadBalancer": {}})
        elif kind in ("Deployment", "ReplicaSet"):
            spec = obj.setdefault("spec", {})
            spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            if kind == "Deployment":
                spec.setdefault("progressDeadlineSeconds", 600)
                strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
                if strategy.get("type", "RollingUpdate") == "RollingUpdate":
                    strategy.setdefault("type", "RollingUpdate")
                    strategy.setdefault("rollingUpdate", {}).setdefault("maxUnavailable", "25%")
                    strategy["rollingUpdate"].setdefault("maxSurge", "25%")
            self._default_template(spec.setdefault("template", {}), "Always")
            obj.setdefault("status", {})
        elif kind == "Job":
            spec = obj.setdefault("spec", {})
            for k, v in (
                ("backoffLimit", 6),
                ("completions", 1),
                ("parallelism", 1),
                ("completionMode", "NonIndexed"),
                ("suspend", False),
                ("manualSelector", False),
                ("podReplacementPolicy", "TerminatingOrFailed"),
            ):
                spec.setdefault(k, v)
            template = spec.setdefault("template", {})
            self._default_template(template, "Always")
            uid = meta["uid"]
            labels = template.setdefault("metadata", {}).setdefault("labels", {})
            for k, v in (
                ("batch.kubernetes.io/controller-uid", uid),
                ("batch.kubernetes.io/job-name", meta["name"]),
                ("controller-uid", uid),
                ("job-name", meta["name"]),
            ):
                labels.setdefault(k, v)
            spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
            obj.setdefault("status", {})
        elif kind == "Pod":
            self._default_pod_spec(obj.setdefault("spec", {}), "Always")
            obj.setdefault("status", {"phase": "Pending"})
        elif kind == "Ingress":
            obj.setdefault("spec", {})
            obj.setdefault("status", {"loadBalancer": {}})
        elif kind == "ServiceAccount":
            pass

    def _default_template(self, template: dict, restart: str) -> None:
        template.setdefault("metadata", {})
        self._default_pod_spec(template.setdefault("spec", {}), restart)

    def _default_pod_spec(self, spec: dict, restart: str) -> None:
        spec.setdefault("restartPolicy", restart)
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("securityContext", {})
        for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            if not isinstance(c, dict):
                continue
            image = str(c.get("image", ""))
            tagged = ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
            c.setdefault("imagePullPolicy", "IfNotPresent" if tagged or "@" in image else "Always")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
            for p in c.get("ports") or []:
                if isinstance(p, dict):
                    p.setdefault("protocol", "TCP")

    def _validate(self, res: Resource, obj: dict, old: dict | None) -> None:
        name = obj["metadata"]["name"]
        errs: list[tuple[str, str]] = []
        kind = res.kind
        spec = obj.get("spec") or {}
        if kind in ("Deployment", "ReplicaSet", "Job"):
            template = spec.get("template") or {}
            errs += self._validate_pod_spec(template.get("spec") or {}, "spec.template.spec")
            if kind == "Job":
                rp = template.get("spec", {}).get("restartPolicy")
                if rp not in ("Never", "OnFailure"):
                    errs.append(
                        (
                            "spec.template.spec.restartPolicy",
                            f'Unsupported value: "{rp}": supported values: "OnFailure", "Never"',
                        )
                    )
            else:
                selector = spec.get("selector")
                if not selector:
                    errs.append(("spec.selector", "Required value"))
                else:
                    from .selectors import match_labels_selector

                    labels = (template.get("metadata") or {}).get("labels") or {}
                    if not match_labels_selector(selector)(labels):
                        errs.append(
                            (
                                "spec.template.metadata.labels",
                                f"Invalid value: {json.dumps(labels)}: `selector` does not match "
                                "template `labels`",
                            )
                        )
                if not isinstance(spec.get("replicas"), int) or spec["replicas"] < 0:
                    errs.append(("spec.replicas", "Invalid value: must be greater than or equal to 0"))
            if old is not None:
                if kind == "Job" and spec.get("template") != old["spec"].get("template"):
                    errs.append(("spec.template", "Invalid value: field is immutable"))
                if spec.get("selector") != old["spec"].get("selector"):
                    errs.append(("spec.selector", "Invalid value: field is immutable"))
        elif kind == "Pod":
            errs += self._validate_pod_spec(spec, "spec")
        elif kind == "Service":
            for i, p in enumerate(spec.get("ports") or []):
                if not isinstance(p.get("port"), int) or not 0 < p["port"] < 65536:
                    errs.append((f"spec.ports[{i}].port", "Invalid value: must be between 1 and 65535"))
            if old is not None and spec.get("clusterIP") != old["spec"].get("clusterIP"):
                errs.append(
                    ("spec.clusterIP", f'Invalid value: "{spec.get("clusterIP")}": field is immutable')
                )
        elif kind == "Secret":
            for k, v in (obj.get("data") or {}).items():
                try:
                    base64.b64decode(str(v), validate=True)
                except (binascii.Error, ValueError):
                    errs.append((f"data[{k}]", "Invalid value: illegal base64 data"))
            if old is not None and old.get("immutable") and obj.get("data") != old.get("data"):
                errs.append(("data", "Forbidden: field is immutable when `immutable` is set"))
        elif kind == "Event" and not obj.get("involvedObject"):
            errs.append(("involvedObject", "Required value"))
        if errs:
            raise invalid(res, name, errs)

    def _validate_pod_spec(self, spec: dict, path: str) -> list[tuple[str, str]]:
        errs = []
        containers = spec.get("containers")
        if not containers:
            errs.append((f"{path}.containers", "Required value"))
        seen = set()
        for field in ("initContainers", "containers"):
            for i, c in enumerate(spec.get(field) or []):
                cname = c.get("name") if isinstance(c, dict) else None
                if not cname or not DNS1123_LABEL.match(str(cname)):
                    errs.append(
                        (f"{path}.{field}[{i}].name", f'Invalid value: "{cname}": must be a DNS-1123 label')
                    )
                elif cname in seen:
                    errs.append((f"{path}.{field}[{i}].name", f'Duplicate value: "{cname}"'))
                seen.add(cname)
                if isinstance(c, dict) and not c.get("image"):
                    errs.append((f"{path}.{field}[{i}].image", "Required value"))
        return errs
