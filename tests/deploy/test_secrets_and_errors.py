"""Missing secrets (nothing created), Bodywork's secret store, 401 and an unreachable cluster."""

from __future__ import annotations

import base64
import socket
from pathlib import Path

import pytest
import yaml

from bodywork_action.errors import (
    ClusterAuthError,
    ClusterUnreachable,
    InputError,
    MissingSecrets,
    SecretKeyRef,
)
from bodywork_action.kube.client import KubeTarget
from bodywork_action.kube.deploy import deploy_pipeline
from bodywork_action.secret_groups import SecretRequest, build_secret_supply
from testing.builders import batch, context, pipeline, service
from testing.deploy_runs import Deployer
from testing.fake_k8s.cluster import FakeCluster

NEEDS_SECRETS = pipeline(
    "train >> serve",
    batch("train", secrets=(("db", "USER"), ("db", "PASSWORD"), ("aws", "KEY_ID"))),
    service("serve"),
)


def test_missing_secret_keys_are_all_listed_and_nothing_is_created(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    supply = build_secret_supply([SecretRequest("db", ("USER",))], [{"USER": "ml"}])
    with pytest.raises(MissingSecrets) as caught:
        deploy(NEEDS_SECRETS, secrets=supply)

    assert caught.value.missing == (SecretKeyRef("aws", "KEY_ID"), SecretKeyRef("db", "PASSWORD"))
    assert "Nothing was created" in str(caught.value)
    assert [r for r in fake_cluster.requests if r.verb in ("create", "update", "patch", "delete")] == []


def test_secrets_are_taken_from_the_namespace_and_from_bodywork_stores_group(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    fake_cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
    fake_cluster.create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bodywork-deployment-jobs"}}
    )
    encoded = base64.b64encode(b"AKIA").decode()
    fake_cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "prod-aws",
                "namespace": "bodywork-deployment-jobs",
                "labels": {"group": "prod"},
            },
            "data": {"KEY_ID": encoded},
        }
    )
    fake_cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", "namespace": "demo"},
            "stringData": {"USER": "ml", "PASSWORD": "old"},
        }
    )
    supply = build_secret_supply(
        [SecretRequest("db", ("PASSWORD",))], [{"PASSWORD": "new-password"}], group="prod"
    )

    result = deploy(NEEDS_SECRETS, secrets=supply)

    assert result.succeeded, result.one_line()
    copied = fake_cluster.get("Secret", "aws", "demo")
    assert copied is not None and copied["data"]["KEY_ID"] == encoded
    db = fake_cluster.get("Secret", "db", "demo")
    assert db is not None
    assert base64.b64decode(db["data"]["PASSWORD"]).decode() == "new-password"
    assert base64.b64decode(db["data"]["USER"]).decode() == "ml", "keys not supplied now are kept"
    assert "new-password" not in repr(result)


def test_rejected_credentials_name_the_refused_verb_and_resource(
    fake_cluster: FakeCluster, tmp_path: Path
) -> None:
    config = fake_cluster.kubeconfig()
    config["users"][0]["user"]["token"] = "wrong-token"
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))

    with pytest.raises(ClusterAuthError) as caught:
        deploy_pipeline(NEEDS_SECRETS, context(), target=KubeTarget(kubeconfig=str(path)), environ={})

    assert caught.value.status == 401
    assert "get namespaces 'demo'" in str(caught.value)
    assert caught.value.exit_code == 2


def test_unreachable_cluster_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port on 127.0.0.1 that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "u"}}],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))

    with pytest.raises(ClusterUnreachable) as caught:
        deploy_pipeline(NEEDS_SECRETS, context(), target=KubeTarget(kubeconfig=str(path)), environ={})

    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "Traceback" not in str(caught.value)


@pytest.mark.parametrize(
    ("content", "context_name", "fragment"),
    [
        (None, "", "does not exist"),
        ("not: [a kubeconfig", "", "kubeconfig"),
        (None, "missing", "does not exist"),
    ],
    ids=["no-file", "not-yaml", "missing-file-with-context"],
)
def test_bad_kubeconfig_is_an_input_error(
    tmp_path: Path, content: str | None, context_name: str, fragment: str
) -> None:
    path = tmp_path / "kubeconfig"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=fragment):
        deploy_pipeline(
            NEEDS_SECRETS,
            context(),
            target=KubeTarget(kubeconfig=str(path), context=context_name),
            environ={},
        )


def test_unknown_context_is_an_input_error(fake_cluster: FakeCluster) -> None:
    target = KubeTarget(kubeconfig=str(fake_cluster.kubeconfig_path), context="nope")
    with pytest.raises(InputError, match="nope"):
        deploy_pipeline(NEEDS_SECRETS, context(), target=target, environ={})


def test_values_kept_from_existing_secrets_are_redacted_from_failure_logs(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    from testing.fake_k8s import Scenario

    kept = "kept-canary-value-7f3a"
    fake_cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
    fake_cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", "namespace": "demo"},
            "stringData": {"USER": "ml", "PASSWORD": kept},
        }
    )
    fake_cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "aws", "namespace": "demo"},
            "stringData": {"KEY_ID": "AKIACANARY7F3A"},
        }
    )
    fake_cluster.script(
        "Job",
        {"app.kubernetes.io/name": "train"},
        Scenario(behavior="fail", logs=[f"cannot log in with {kept}"]),
    )

    result = deploy(NEEDS_SECRETS)  # nothing supplied now: every key comes from the namespace

    train = result.stage("train")
    assert train.logs, "the failed stage's logs were collected"
    logged = "\n".join(line for lines in train.logs.values() for line in lines)
    assert "cannot log in with ***" in logged and kept not in logged and kept not in repr(result)
