"""kube/kubeconfig.py: the kubeconfig input decoded, its credentials found, written privately."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
import yaml

from bodywork_action.errors import InputError
from bodywork_action.kube import kubeconfig

CANARY_TOKEN = "canary-token-7f3a9c1e5b"
CANARY_KEY_PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIcanaryKEYline1abcdef\nMIIcanaryKEYline2ghijkl\n"
    "-----END RSA PRIVATE KEY-----\n"
)

KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "kind", "cluster": {"server": "https://127.0.0.1:6443"}}],
    "contexts": [{"name": "kind", "context": {"cluster": "kind", "user": "admin"}}],
    "current-context": "kind",
    "users": [
        {"name": "admin", "user": {"token": CANARY_TOKEN}},
        {
            "name": "cert-user",
            "user": {
                "client-key-data": base64.b64encode(CANARY_KEY_PEM.encode()).decode(),
                "client-certificate-data": base64.b64encode(
                    b"-----BEGIN CERTIFICATE-----\nMIIcert\n"
                ).decode(),
            },
        },
        {"name": "basic", "user": {"username": "bob", "password": "canary-password-55"}},
        {
            "name": "oidc",
            "user": {"auth-provider": {"name": "oidc", "config": {"id-token": "canary-id-tok"}}},
        },
    ],
}
KUBECONFIG_YAML = yaml.safe_dump(KUBECONFIG)


def test_plain_and_base64_kubeconfig_give_the_same_yaml() -> None:
    plain = kubeconfig.parse_kubeconfig_input(KUBECONFIG_YAML)
    encoded = base64.b64encode(KUBECONFIG_YAML.encode()).decode()
    wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))  # `base64` wraps lines
    assert yaml.safe_load(plain) == KUBECONFIG
    assert kubeconfig.parse_kubeconfig_input(wrapped) == plain


@pytest.mark.parametrize("text", ["", "not a kubeconfig at all", base64.b64encode(b"just: yaml").decode()])
def test_bad_kubeconfig_is_reported_without_quoting_it(text: str) -> None:
    with pytest.raises(InputError, match="input 'kubeconfig'") as raised:
        kubeconfig.parse_kubeconfig_input(text)
    assert not text or text not in str(raised.value)


def test_every_kubeconfig_credential_is_found_for_masking() -> None:
    credentials = kubeconfig.find_kubeconfig_credentials(KUBECONFIG_YAML)
    assert CANARY_TOKEN in credentials
    assert CANARY_KEY_PEM in credentials  # the decoded key as well as its base64
    assert KUBECONFIG["users"][1]["user"]["client-key-data"] in credentials
    assert "canary-password-55" in credentials
    assert "canary-id-tok" in credentials
    assert "bob" not in credentials  # a user name is not a credential


def test_kubeconfig_file_is_private_outside_the_workspace_and_removed(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    runner_temp = tmp_path / "runner-temp"
    workspace.mkdir()
    runner_temp.mkdir()
    environ = {"GITHUB_WORKSPACE": str(workspace), "RUNNER_TEMP": str(runner_temp)}
    with kubeconfig.write_private_kubeconfig(KUBECONFIG_YAML, environ) as path:
        assert path.read_text() == KUBECONFIG_YAML
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert runner_temp in path.parents
    assert not path.exists() and not path.parent.exists()
    assert list(workspace.iterdir()) == []


def test_kubeconfig_file_is_removed_when_the_block_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), kubeconfig.write_private_kubeconfig("x: 1\n", {}) as path:
        raise RuntimeError("deploy failed")
    assert not path.exists()


@pytest.mark.parametrize("where", ["missing", "inside-workspace"])
def test_unusable_runner_temp_falls_back_to_the_system_temp(tmp_path: Path, where: str) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    runner_temp = workspace / "_temp" if where == "inside-workspace" else tmp_path / "absent"
    if where == "inside-workspace":
        runner_temp.mkdir()
    environ = {"GITHUB_WORKSPACE": str(workspace), "RUNNER_TEMP": str(runner_temp)}
    assert kubeconfig.choose_private_temp_parent(environ) is None
    with kubeconfig.write_private_kubeconfig("x: 1\n", environ) as path:
        assert workspace not in path.parents
        assert os.path.commonpath([path, workspace]) != str(workspace)
