"""The resource kinds the fake serves, and the discovery documents built from them."""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
READ_VERBS = ["get", "list", "watch"]


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ("status",)
    verbs: tuple[str, ...] = tuple(ALL_VERBS)
    # generation is bumped on spec changes for these kinds
    has_generation: bool = False
    # a client DELETE answers with the object (instead of a Status) for these kinds
    delete_returns_object: bool = False
    client_writable: bool = True
    singular: str = field(default="")

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`jobs.batch`, as used in apiserver error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)


RESOURCES: list[Resource] = [
    Resource(
        "",
        "v1",
        "namespaces",
        "Namespace",
        False,
        ("ns",),
        ("status", "finalize"),
        delete_returns_object=True,
        singular="namespace",
    ),
    Resource("", "v1", "secrets", "Secret", True, (), (), singular="secret"),
    Resource("", "v1", "configmaps", "ConfigMap", True, ("cm",), (), singular="configmap"),
    Resource(
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        True,
        ("sa",),
        (),
        delete_returns_object=True,
        singular="serviceaccount",
    ),
    Resource(
        "",
        "v1",
        "pods",
        "Pod",
        True,
        ("po",),
        ("status", "log"),
        has_generation=True,
        delete_returns_object=True,
        client_writable=False,
        singular="pod",
    ),
    Resource(
        "",
        "v1",
        "services",
        "Service",
        True,
        ("svc",),
        ("status", "proxy"),
        delete_returns_object=True,
        singular="service",
    ),
    Resource("", "v1", "events", "Event", True, ("ev",), (), singular="event"),
    Resource("batch", "v1", "jobs", "Job", True, (), ("status",), has_generation=True, singular="job"),
    Resource(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        True,
        ("deploy",),
        ("status",),
        has_generation=True,
        singular="deployment",
    ),
    Resource(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        True,
        ("rs",),
        ("status",),
        has_generation=True,
        singular="replicaset",
    ),
    Resource(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "Ingress",
        True,
        ("ing",),
        ("status",),
        has_generation=True,
        singular="ingress",
    ),
    Resource("coordination.k8s.io", "v1", "leases", "Lease", True, (), (), singular="lease"),
]

BY_KEY: dict[tuple[str, str], Resource] = {r.key: r for r in RESOURCES}
BY_KIND: dict[str, Resource] = {r.kind.lower(): r for r in RESOURCES}
for _r in RESOURCES:
    BY_KIND.setdefault(_r.plural, _r)
    for _s in _r.short_names:
        BY_KIND.setdefault(_s, _r)


def resolve(kind_or_plural: str) -> Resource:
    """Find a resource by kind ("Job"), plural ("jobs") or short name ("deploy")."""
    try:
        return BY_KIND[kind_or_plural.lower()]
    except KeyError:
        raise KeyError(f"the fake does not serve {kind_or_plural!r}") from None


def group_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for r in RESOURCES:
        if r.group:
            out[r.group] = r.version
    return out


def api_versions(server_address: str) -> dict:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def api_group(group: str) -> dict:
    version = group_versions()[group]
    gv = {"groupVersion": f"{group}/{version}", "version": version}
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": [gv], "preferredVersion": gv}


def api_group_list() -> dict:
    groups = [api_group(g) for g in group_versions()]
    for g in groups:
        del g["kind"], g["apiVersion"]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def resource_list(group: str, version: str) -> dict | None:
    items = []
    for r in RESOURCES:
        if r.group != group or r.version != version:
            continue
        verbs = list(r.verbs)
        items.append(
            {
                "name": r.plural,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": verbs,
                **({"shortNames": list(r.short_names)} if r.short_names else {}),
            }
        )
        for sub in r.subresources:
            sub_verbs = {"status": ["get", "patch", "update"], "log": ["get"], "finalize": ["update"]}.get(
                sub, ["create", "delete", "get", "patch", "update"]
            )
            sub_kind = {"log": "Pod", "proxy": "ServiceProxyOptions"}.get(sub, r.kind)
            items.append(
                {
                    "name": f"{r.plural}/{sub}",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": sub_kind,
                    "verbs": sub_verbs,
                }
            )
    if not items:
        return None
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": items}


VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-fake",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
