"""The client's credential hook runs at most once a second (kube/client.py ``_at_most_every``), and an
exec plugin's expiring token is still renewed: the real client, its kubeconfig loader and a real plugin
process against the fake API server."""

from __future__ import annotations

import functools
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from bodywork_action.kube import client as client_module
from bodywork_action.kube.client import (
    CREDENTIAL_CHECK_INTERVAL_SECONDS,
    NAMESPACE,
    KubeTarget,
    check_credentials_at_most_every,
    connect_cluster,
)
from testing.fake_k8s.cluster import FakeCluster
from testing.fake_k8s.fixtures import fake_cluster  # noqa: F401

# An exec credential plugin: it counts its runs and hands out the token in a file, valid for one
# minute, which the loader treats as expiring (it renews 5 minutes ahead) at every check.
PLUGIN = textwrap.dedent(
    """
    import datetime, json, sys
    token_file, runs_file = sys.argv[1], sys.argv[2]
    with open(runs_file, "a") as runs:
        runs.write("run\\n")
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=1)
    print(json.dumps({
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {
            "token": open(token_file).read().strip(),
            "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }))
    """
)


def test_an_expiring_exec_token_is_renewed_but_not_before_every_request(
    fake_cluster: FakeCluster,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plugin, token_file, runs_file = tmp_path / "plugin.py", tmp_path / "token", tmp_path / "runs"
    plugin.write_text(PLUGIN)
    token_file.write_text(fake_cluster.token)
    config = fake_cluster.kubeconfig()
    config["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": sys.executable,
            "args": [str(plugin), str(token_file), str(runs_file)],
        }
    }
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    clock = Clock()  # the interval's clock, moved by the test (the requests keep real time)
    monkeypatch.setattr(
        client_module,
        "check_credentials_at_most_every",
        functools.partial(check_credentials_at_most_every, clock=clock),
    )

    def plugin_runs() -> int:
        return len(runs_file.read_text().splitlines())

    cluster = connect_cluster(KubeTarget(kubeconfig=str(kubeconfig)), environ={})
    try:
        for _ in range(30):
            cluster.read_object(NAMESPACE, "default")
        # the load, then the first request's check; without the limit every request runs it (31)
        assert plugin_runs() == 2

        # the cluster now wants a new token: a second later the next request renews and sends it
        fake_cluster.token = "rotated-token"
        token_file.write_text("rotated-token")
        clock.now += CREDENTIAL_CHECK_INTERVAL_SECONDS
        assert cluster.read_object(NAMESPACE, "default") is not None
        assert plugin_runs() == 3
    finally:
        cluster.close()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Configuration:
    """What the hook sees of the client's configuration."""

    def __init__(self) -> None:
        self.refresh_api_key_hook: Callable[[Configuration], None] | None = None


def test_the_hook_runs_first_then_once_per_interval_and_again_after_it_failed() -> None:
    clock, configuration = Clock(), Configuration()
    calls: list[float] = []
    failing = [True]

    def hook(configuration: Configuration) -> None:
        calls.append(clock.now)
        configuration.refresh_api_key_hook = hook  # as the kubeconfig loader's hook does
        if failing[0]:
            failing[0] = False
            raise RuntimeError("plugin failed")

    configuration.refresh_api_key_hook = hook
    check_credentials_at_most_every(1.0, configuration, clock=clock)

    def request() -> None:  # what the client does before each request
        assert configuration.refresh_api_key_hook is not None
        configuration.refresh_api_key_hook(configuration)

    with pytest.raises(RuntimeError):
        request()
    request()  # a failed run does not count: tried again at once
    clock.now += 0.5
    request()
    clock.now += 0.5
    request()
    assert calls == [100.0, 100.0, 101.0]


def test_a_configuration_without_a_hook_is_left_alone() -> None:
    configuration = Configuration()
    check_credentials_at_most_every(1.0, configuration)
    assert configuration.refresh_api_key_hook is None
