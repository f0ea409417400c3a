"""CRUD, selectors, conflicts, validation, patches, dryRun and cascades through the official client."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest
from kubernetes.client import ApiException

from testing.k8s_objects import deployment, job, service


def test_version_and_discovery(k8s, fake):
    info = k8s.version.get_code()
    assert info.git_version.startswith("v1.")
    assert info.build_date
    from kubernetes import client

    groups = {g.name for g in client.ApisApi(k8s.client).get_api_versions().groups}
    assert client.CoreApi(k8s.client).get_api_versions().versions == ["v1"]
    assert {"apps", "batch", "networking.k8s.io", "coordination.k8s.io"} <= groups
    core = {r["name"]: r for r in _get(fake, "/api/v1")["resources"]}
    assert core["namespaces"]["namespaced"] is False
    assert "ns" in core["namespaces"]["shortNames"]
    assert "pods/log" in core and "services/proxy" in core
    apps = {r["name"] for r in _get(fake, "/apis/apps/v1")["resources"]}
    assert {"deployments", "deployments/status", "replicasets"} <= apps


def _get(fake, path: str, token: str | None = None) -> dict:
    import ssl

    ctx = ssl.create_default_context(cafile=str(fake.ca_path))
    req = urllib.request.Request(fake.url + path, headers={"Authorization": f"Bearer {token or fake.token}"})
    with urllib.request.urlopen(req, context=ctx) as resp:
        return json.load(resp)


def test_token_is_required(fake):
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(fake, "/api/v1/namespaces", token="wrong")
    assert err.value.code == 401
    err.value.close()
    assert fake.requests[-1].status == 401


def test_namespace_crud_and_metadata(k8s, fake):
    ns = k8s.core.create_namespace({"metadata": {"name": "team-a"}})
    assert ns.metadata.uid and ns.metadata.creation_timestamp and int(ns.metadata.resource_version) > 0
    assert ns.status.phase == "Active"
    names = [n.metadata.name for n in k8s.core.list_namespace().items]
    assert "team-a" in names and "default" in names
    assert k8s.core.read_namespace("team-a").metadata.uid == ns.metadata.uid
    # the namespace's default ServiceAccount appears, as the SA controller would make it
    fake.wait_for(lambda: fake.get("ServiceAccount", "default", "team-a"))
    with pytest.raises(ApiException) as err:
        k8s.core.create_namespace({"metadata": {"name": "team-a"}})
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "AlreadyExists"


def test_create_get_list_delete_each_kind(k8s):
    ns = "default"
    k8s.core.create_namespaced_secret(ns, {"metadata": {"name": "s1"}, "stringData": {"pw": "hunter2"}})
    secret = k8s.core.read_namespaced_secret("s1", ns)
    assert base64.b64decode(secret.data["pw"]) == b"hunter2" and secret.type == "Opaque"
    k8s.core.create_namespaced_service_account(ns, {"metadata": {"name": "deployer"}})
    k8s.core.create_namespaced_service(ns, service("web"))
    svc = k8s.core.read_namespaced_service("web", ns)
    assert svc.spec.cluster_ip.startswith("10.96.") and svc.spec.ports[0].protocol == "TCP"
    k8s.net.create_namespaced_ingress(
        ns, {"metadata": {"name": "web"}, "spec": {"rules": [{"host": "x.test"}]}}
    )
    k8s.coord.create_namespaced_lease(ns, {"metadata": {"name": "lock"}, "spec": {"holderIdentity": "me"}})
    k8s.batch.create_namespaced_job(ns, job("j"))
    k8s.apps.create_namespaced_deployment(ns, deployment("d"))
    assert k8s.batch.read_namespaced_job("j", ns).spec.backoff_limit == 6
    assert k8s.coord.read_namespaced_lease("lock", ns).spec.holder_identity == "me"
    assert [i.metadata.name for i in k8s.net.list_namespaced_ingress(ns).items] == ["web"]
    assert [i.metadata.name for i in k8s.apps.list_deployment_for_all_namespaces().items] == ["d"]
    # each delete answers with the shape the client declares for it
    assert k8s.core.delete_namespaced_service("web", ns).metadata.name == "web"
    assert k8s.core.delete_namespaced_service_account("deployer", ns).metadata.name == "deployer"
    assert k8s.core.delete_namespaced_secret("s1", ns)["status"] == "Success"
    assert k8s.net.delete_namespaced_ingress("web", ns)["status"] == "Success"
    assert k8s.coord.delete_namespaced_lease("lock", ns)["status"] == "Success"
    assert k8s.batch.delete_namespaced_job("j", ns)["details"]["name"] == "j"
    assert k8s.apps.delete_namespaced_deployment("d", ns)["status"] == "Success"
    for read in (
        lambda: k8s.core.read_namespaced_secret("s1", ns),
        lambda: k8s.batch.read_namespaced_job("j", ns),
        lambda: k8s.core.read_namespaced_service("web", ns),
    ):
        with pytest.raises(ApiException) as err:
            read()
        assert err.value.status == 404


def test_create_in_missing_namespace_and_bad_names(k8s):
    with pytest.raises(ApiException) as err:
        k8s.core.create_namespaced_secret("nope", {"metadata": {"name": "s"}})
    assert err.value.status == 404
    for bad in ("Upper", "under_score", "-dash", "a" * 254):
        with pytest.raises(ApiException) as err:
            k8s.core.create_namespaced_secret("default", {"metadata": {"name": bad}})
        assert err.value.status == 422, bad
    with pytest.raises(ApiException) as err:
        k8s.core.create_namespaced_service("default", service("9starts-with-digit"))
    assert err.value.status == 422
    with pytest.raises(ApiException) as err:
        k8s.core.create_namespace({"metadata": {"name": "dots.are.not.labels"}})
    assert err.value.status == 422
    created = k8s.core.create_namespaced_secret("default", {"metadata": {"generateName": "gen-"}})
    assert created.metadata.name.startswith("gen-") and len(created.metadata.name) == 9


def test_validation_errors(k8s):
    bad_job = job("j")
    bad_job["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    with pytest.raises(ApiException) as err:
        k8s.batch.create_namespaced_job("default", bad_job)
    assert err.value.status == 422 and "restartPolicy" in err.value.body
    bad_deploy = deployment("d")
    bad_deploy["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(ApiException) as err:
        k8s.apps.create_namespaced_deployment("default", bad_deploy)
    assert err.value.status == 422 and "selector" in err.value.body
    with pytest.raises(ApiException) as err:
        k8s.core.create_namespaced_secret(
            "other-ns-in-url", {"metadata": {"name": "s", "namespace": "default"}}
        )
    assert err.value.status == 400


def test_label_and_field_selectors(k8s):
    for name, labels in (
        ("a", {"tier": "web", "env": "prod"}),
        ("b", {"tier": "db", "env": "prod"}),
        ("c", {"tier": "web"}),
    ):
        k8s.core.create_namespaced_secret("default", {"metadata": {"name": name, "labels": labels}})

    def names(**kw):
        return sorted(s.metadata.name for s in k8s.core.list_namespaced_secret("default", **kw).items)

    assert names(label_selector="tier=web") == ["a", "c"]
    assert names(label_selector="tier==web,env=prod") == ["a"]
    assert names(label_selector="tier!=web") == ["b"]
    assert names(label_selector="env") == ["a", "b"]
    assert names(label_selector="!env") == ["c"]
    assert names(label_selector="tier in (db,cache)") == ["b"]
    assert names(label_selector="tier notin (db)") == ["a", "c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b", label_selector="tier=web") == ["a", "c"]
    with pytest.raises(ApiException) as err:
        k8s.core.list_namespaced_secret("default", label_selector="a=(b")
    assert err.value.status == 400


def test_list_pagination(k8s):
    for i in range(5):
        k8s.core.create_namespaced_secret("default", {"metadata": {"name": f"s{i}"}})
    first = k8s.core.list_namespaced_secret("default", limit=2)
    assert len(first.items) == 2 and first.metadata._continue
    seen = [s.metadata.name for s in first.items]
    token = first.metadata._continue
    while token:
        page = k8s.core.list_namespaced_secret("default", limit=2, _continue=token)
        seen += [s.metadata.name for s in page.items]
        token = page.metadata._continue
    assert seen == [f"s{i}" for i in range(5)]


def test_update_conflicts_and_generation(k8s, fake):
    d = k8s.apps.create_namespaced_deployment("default", deployment("d"))
    assert d.metadata.generation == 1
    # wait until the controllers stop writing (revision annotation, status) before read-modify-write
    fake.wait_for(
        lambda: (
            fake.get("Deployment", "d")["status"].get("availableReplicas") == 1
            and fake.get("Deployment", "d")["metadata"].get("annotations")
        )
    )
    body = k8s.client.sanitize_for_serialization(k8s.apps.read_namespaced_deployment("d", "default"))
    body["spec"]["replicas"] = 3
    updated = k8s.apps.replace_namespaced_deployment("d", "default", body)
    assert updated.metadata.generation == 2
    assert int(updated.metadata.resource_version) > int(d.metadata.resource_version)
    # the same body again carries a stale resourceVersion now
    with pytest.raises(ApiException) as err:
        k8s.apps.replace_namespaced_deployment("d", "default", body)
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "Conflict"
    # metadata-only changes do not bump generation
    labelled = k8s.apps.patch_namespaced_deployment("d", "default", {"metadata": {"labels": {"x": "y"}}})
    assert labelled.metadata.generation == 2
    # a status update leaves spec and generation alone; a spec update leaves status alone
    st = k8s.apps.patch_namespaced_deployment_status(
        "d", "default", {"status": {"replicas": 42}, "spec": {"replicas": 9}}
    )
    assert st.status.replicas == 42 and st.spec.replicas == 3


def test_immutable_fields_are_rejected(k8s):
    k8s.batch.create_namespaced_job("default", job("j"))
    with pytest.raises(ApiException) as err:
        k8s.batch.patch_namespaced_job(
            "j",
            "default",
            {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "busybox:2"}]}}}},
        )
    assert err.value.status == 422 and "spec.template" in err.value.body and "immutable" in err.value.body
    # changing mutable job fields is fine
    assert (
        k8s.batch.patch_namespaced_job(
            "j", "default", {"spec": {"activeDeadlineSeconds": 100}}
        ).spec.active_deadline_seconds
        == 100
    )
    svc = k8s.core.create_namespaced_service("default", service("web"))
    with pytest.raises(ApiException) as err:
        k8s.core.patch_namespaced_service("web", "default", {"spec": {"clusterIP": "10.96.99.99"}})
    assert err.value.status == 422 and "clusterIP" in err.value.body
    # a replace that omits clusterIP keeps the allocated one, as a real apiserver does
    replaced = k8s.core.replace_namespaced_service("web", "default", service("web"))
    assert replaced.spec.cluster_ip == svc.spec.cluster_ip


def test_strategic_merge_patch_merges_lists_by_key(k8s):
    d = deployment("d")
    c = d["spec"]["template"]["spec"]["containers"][0]
    c.update(
        command=["serve"],
        env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        volumeMounts=[{"name": "v", "mountPath": "/data"}],
    )
    d["spec"]["template"]["spec"]["volumes"] = [{"name": "v", "emptyDir": {}}]
    d["spec"]["template"]["spec"]["initContainers"] = [{"name": "init", "image": "busybox:1"}]
    k8s.apps.create_namespaced_deployment("default", d)
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "app:2",
                            "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
                            "ports": [{"containerPort": 9000}],
                            "volumeMounts": [{"mountPath": "/data", "readOnly": True}],
                        },
                        {"name": "sidecar", "image": "proxy:1"},
                    ],
                    "volumes": [{"name": "extra", "emptyDir": {}}],
                }
            }
        }
    }
    out = k8s.apps.patch_namespaced_deployment("d", "default", patch)  # dict body: strategic merge
    spec = out.spec.template.spec
    app = next(x for x in spec.containers if x.name == "app")
    assert app.image == "app:2" and app.command == ["serve"]
    assert [(e.name, e.value) for e in app.env] == [("A", "1"), ("B", "20"), ("C", "3")]
    assert sorted(p.container_port for p in app.ports) == [8000, 9000]
    assert app.volume_mounts[0].read_only is True and app.volume_mounts[0].name == "v"
    assert [x.name for x in spec.containers] == ["app", "sidecar"]
    assert [v.name for v in spec.volumes] == ["v", "extra"]
    assert [x.name for x in spec.init_containers] == ["init"]
    # $patch: delete removes one element by key
    out = k8s.apps.patch_namespaced_deployment(
        "d",
        "default",
        {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}},
    )
    assert [x.name for x in out.spec.template.spec.containers] == ["app"]


def test_service_ports_merge_by_port(k8s):
    k8s.core.create_namespaced_service("default", service("web"))
    out = k8s.core.patch_namespaced_service(
        "web", "default", {"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}}
    )
    assert [(p.port, p.name, p.target_port) for p in out.spec.ports] == [
        (80, "http", 8000),
        (443, "https", 443),
    ]


def test_json_patch_and_merge_patch(k8s, fake):
    k8s.core.create_namespaced_secret("default", {"metadata": {"name": "s", "labels": {"a": "1", "b": "2"}}})
    out = k8s.core.patch_namespaced_secret(
        "s",
        "default",
        [
            {"op": "add", "path": "/metadata/labels/c", "value": "3"},
            {"op": "remove", "path": "/metadata/labels/a"},
        ],
    )  # list body: JSON patch
    assert out.metadata.labels == {"b": "2", "c": "3"}
    with pytest.raises(ApiException) as err:
        k8s.core.patch_namespaced_secret(
            "s", "default", [{"op": "test", "path": "/metadata/labels/b", "value": "nope"}]
        )
    assert err.value.status in (400, 422)
    # merge patch: lists are replaced wholesale and null deletes
    k8s.apps.create_namespaced_deployment("default", deployment("d"))
    body = json.dumps(
        {
            "metadata": {"labels": {"app": None}},
            "spec": {"template": {"spec": {"containers": [{"name": "other", "image": "x:1"}]}}},
        }
    ).encode()
    resp = _raw(
        fake, "PATCH", "/apis/apps/v1/namespaces/default/deployments/d", body, "application/merge-patch+json"
    )
    assert "app" not in resp["metadata"]["labels"]
    assert [c["name"] for c in resp["spec"]["template"]["spec"]["containers"]] == ["other"]
    with pytest.raises(urllib.error.HTTPError) as err:
        _raw(
            fake,
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/d",
            b"{}",
            "application/apply-patch+yaml",
        )
    assert err.value.code == 415
    err.value.close()


def _raw(fake, method: str, path: str, body: bytes, ctype: str) -> dict:
    import ssl

    ctx = ssl.create_default_context(cafile=str(fake.ca_path))
    req = urllib.request.Request(
        fake.url + path,
        data=body,
        method=method,
        headers={"Authorization": f"Bearer {fake.token}", "Content-Type": ctype},
    )
    with urllib.request.urlopen(req, context=ctx) as resp:
        return json.load(resp)


def test_patch_with_stale_resource_version_conflicts(k8s):
    s = k8s.core.create_namespaced_secret("default", {"metadata": {"name": "s"}})
    k8s.core.patch_namespaced_secret("s", "default", {"metadata": {"labels": {"x": "1"}}})
    with pytest.raises(ApiException) as err:
        k8s.core.patch_namespaced_secret(
            "s",
            "default",
            {"metadata": {"resourceVersion": s.metadata.resource_version, "labels": {"x": "2"}}},
        )
    assert err.value.status == 409


def test_dry_run_stores_nothing(k8s, fake):
    out = k8s.core.create_namespaced_secret("default", {"metadata": {"name": "s"}}, dry_run="All")
    assert out.metadata.name == "s" and out.metadata.uid
    assert fake.get("Secret", "s") is None
    with pytest.raises(ApiException) as err:
        k8s.core.create_namespaced_secret("default", {"metadata": {"name": "BAD"}}, dry_run="All")
    assert err.value.status == 422
    k8s.core.create_namespaced_secret("default", {"metadata": {"name": "s", "labels": {"a": "1"}}})
    rv = fake.get("Secret", "s")["metadata"]["resourceVersion"]
    k8s.core.patch_namespaced_secret("s", "default", {"metadata": {"labels": {"a": "2"}}}, dry_run="All")
    k8s.core.delete_namespaced_secret("s", "default", dry_run="All")
    stored = fake.get("Secret", "s")
    assert stored["metadata"]["labels"] == {"a": "1"} and stored["metadata"]["resourceVersion"] == rv


def test_cascade_delete_deployment_removes_replicasets_and_pods(k8s, fake):
    k8s.apps.create_namespaced_deployment("default", deployment("d", replicas=2))
    fake.wait_for(lambda: len(fake.list("Pod", "default")) == 2)
    assert len(fake.list("ReplicaSet", "default")) == 1
    k8s.apps.delete_namespaced_deployment("d", "default")
    fake.wait_for(lambda: not fake.list("Pod", "default") and not fake.list("ReplicaSet", "default"))


def test_job_delete_orphans_pods_by_default_but_background_cascades(k8s, fake):
    k8s.batch.create_namespaced_job("default", job("j1"))
    k8s.batch.create_namespaced_job("default", job("j2"))
    fake.wait_for(lambda: len(fake.list("Pod", "default")) == 2)
    k8s.batch.delete_namespaced_job("j1", "default")  # no propagationPolicy: batch/v1 orphans
    orphan = fake.list("Pod", "default", labels="job-name=j1")
    assert len(orphan) == 1 and not orphan[0]["metadata"].get("ownerReferences")
    k8s.batch.delete_namespaced_job("j2", "default", propagation_policy="Foreground")
    assert fake.list("Pod", "default", labels="job-name=j2") == []
    assert fake.requests.filter(verb="delete", resource="jobs")[-1].status == 200


def test_namespace_deletion_removes_its_objects(k8s, fake):
    k8s.core.create_namespace({"metadata": {"name": "tmp"}})
    k8s.core.create_namespaced_secret("tmp", {"metadata": {"name": "s"}})
    k8s.apps.create_namespaced_deployment("tmp", deployment("d", ns="tmp"))
    fake.wait_for(lambda: fake.list("Pod", "tmp"))
    gone = k8s.core.delete_namespace("tmp")
    assert gone["status"]["phase"] == "Terminating"
    for kind in ("Secret", "Deployment", "ReplicaSet", "Pod", "ServiceAccount"):
        assert fake.list(kind, "tmp") == [], kind
    with pytest.raises(ApiException) as err:
        k8s.core.read_namespace("tmp")
    assert err.value.status == 404


def test_pods_are_read_only_for_clients(k8s):
    with pytest.raises(ApiException) as err:
        k8s.core.create_namespaced_pod(
            "default", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}}
        )
    assert err.value.status == 405


def test_request_recording(k8s, fake):
    fake.requests.clear()
    k8s.core.create_namespaced_secret("default", {"metadata": {"name": "s"}})
    k8s.core.read_namespaced_secret("s", "default")
    k8s.core.list_namespaced_secret("default")
    with pytest.raises(ApiException):
        k8s.core.read_namespaced_secret("missing", "default")
    got = [(r.verb, r.resource, r.namespace, r.name, r.status) for r in fake.requests]
    assert got == [
        ("create", "secrets", "default", None, 201),
        ("get", "secrets", "default", "s", 200),
        ("list", "secrets", "default", None, 200),
        ("get", "secrets", "default", "missing", 404),
    ]
    assert fake.requests.count(verb="get") == 2
