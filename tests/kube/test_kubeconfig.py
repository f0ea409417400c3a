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


# --- cloud clusters: credential plugins ---------------------------------------------------------------


def cloud_kubeconfig(user: dict[str, object], *, current: str = "eks") -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
            "users": [
                {"name": "cloud-user", "user": user},
                {"name": "plain", "user": {"token": "t0k3n-abc"}},
            ],
            "contexts": [
                {"name": "eks", "context": {"cluster": "c", "user": "cloud-user"}},
                {"name": "plain", "context": {"cluster": "c", "user": "plain"}},
            ],
            "current-context": current,
        }
    )


EKS_USER = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws", "args": ["eks"]}}
GKE_USER = {
    "exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "gke-gcloud-auth-plugin"}
}
AKS_USER = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "kubelogin"}}
GCP_PROVIDER = {"auth-provider": {"name": "gcp", "config": {"access-token": "ya29.canary"}}}


@pytest.mark.parametrize(
    ("user", "plugin", "recipe"),
    [
        (EKS_USER, "'aws'", "aws eks get-token"),
        (GKE_USER, "'gke-gcloud-auth-plugin'", "gcloud auth print-access-token"),
        (AKS_USER, "'kubelogin'", "az account get-access-token"),
        (GCP_PROVIDER, "auth-provider 'gcp'", "gcloud auth print-access-token"),
    ],
)
def test_a_cloud_plugin_that_cannot_run_here_is_named_with_the_recipe_that_works(
    user: dict[str, object], plugin: str, recipe: str
) -> None:
    plugins = kubeconfig.find_credential_plugins(cloud_kubeconfig(user))
    with pytest.raises(InputError) as caught:
        kubeconfig.check_credential_plugins(plugins, which=lambda command: None)
    message = str(caught.value)
    assert plugin in message and recipe in message and "Nothing was applied" in message
    assert "canary" not in message


def test_an_installed_exec_plugin_is_allowed() -> None:
    plugins = kubeconfig.find_credential_plugins(cloud_kubeconfig(EKS_USER))
    assert plugins == [kubeconfig.CredentialPlugin("cloud-user", "exec", "aws")]
    kubeconfig.check_credential_plugins(plugins, which=lambda command: f"/usr/bin/{command}")


def test_only_the_chosen_context_s_user_matters() -> None:
    text = cloud_kubeconfig(EKS_USER, current="plain")
    assert kubeconfig.find_credential_plugins(text) == []
    assert kubeconfig.find_credential_plugins(text, context="eks")[0].name == "aws"


def test_the_real_which_finds_no_such_plugin_here() -> None:
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "no-such-plugin-7f3a"}}
    with pytest.raises(InputError, match="'no-such-plugin-7f3a', which is not installed here"):
        kubeconfig.check_kubeconfigs({"kc": cloud_kubeconfig(user)})


def test_client_log_records_are_redacted_before_any_handler(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    kubeconfig.redact_client_logs(lambda text: text.replace(CANARY_TOKEN, "***"))
    try:
        logging.getLogger().error("exec: process returned 1. token %s", CANARY_TOKEN)
    finally:
        logging.getLogger().filters.clear()
    assert CANARY_TOKEN not in caplog.text and "token ***" in caplog.text


def test_secret_variables_are_removed_from_what_a_plugin_would_inherit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BW_CANARY_SECRET", CANARY_TOKEN)
    monkeypatch.setenv("INPUT_KUBECONFIG", "apiVersion: v1")
    kubeconfig.keep_from_plugins(["BW_CANARY_SECRET", "INPUT_KUBECONFIG"])
    assert "BW_CANARY_SECRET" not in os.environ and "INPUT_KUBECONFIG" not in os.environ


def test_kubeconfig_files_of_a_path_list_are_read_and_missing_ones_skipped(tmp_path: Path) -> None:
    first = tmp_path / "a"
    first.write_text("one")
    source = os.pathsep.join([str(first), str(tmp_path / "missing"), ""])
    assert kubeconfig.read_kubeconfig_files(source) == {str(first): "one"}


def test_a_garbage_kubeconfig_is_located_and_never_quoted() -> None:
    with pytest.raises(InputError) as caught:
        kubeconfig.check_kubeconfigs(
            {"/tmp/kc": f"apiVersion: v1\nusers: [\n  - token: {CANARY_TOKEN}\n  - {{\n"}
        )
    message = str(caught.value)
    assert message.startswith("kubeconfig /tmp/kc is not valid YAML: ") and "at line " in message
    assert CANARY_TOKEN not in message


def test_an_unknown_context_lists_the_ones_there_are() -> None:
    with pytest.raises(
        InputError, match=r"context 'prod' is not in the kubeconfig; its contexts: eks, plain"
    ):
        kubeconfig.check_kubeconfigs({"kc": cloud_kubeconfig(EKS_USER, current="plain")}, context="prod")


def test_with_several_files_only_the_effective_context_s_user_is_checked() -> None:
    missing = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "no-such-plugin-7f3a"}}
    plain_first = cloud_kubeconfig(missing, current="plain")
    plugin_second = cloud_kubeconfig(EKS_USER, current="eks")
    # kubectl: the first file's current-context wins, and its user is a token: nothing to refuse.
    kubeconfig.check_kubeconfigs({"a": plain_first, "b": plugin_second})
    with pytest.raises(InputError, match="'no-such-plugin-7f3a'"):  # a's "eks" context comes first
        kubeconfig.check_kubeconfigs({"a": plain_first, "b": plugin_second}, context="eks")


def test_a_context_whose_user_lives_in_another_file_is_checked() -> None:
    contexts_only = yaml.safe_dump(
        {
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "cloud-user"}}],
            "current-context": "x",
        }
    )
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "no-such-plugin-7f3a"}}
    with pytest.raises(InputError, match="'no-such-plugin-7f3a'"):
        kubeconfig.check_kubeconfigs({"a": contexts_only, "b": cloud_kubeconfig(user, current="")})


@pytest.mark.parametrize(
    "text",
    ["contexts: 5\n", "users: 5\n", "contexts: [{name: x, context: oops}]\n", "users: [oops]\n", "- a\n"],
)
def test_a_kubeconfig_of_the_wrong_shape_is_an_input_error_not_a_crash(text: str) -> None:
    with pytest.raises(InputError, match="kubeconfig kc"):
        kubeconfig.check_kubeconfigs({"kc": text})
    assert isinstance(kubeconfig.find_kubeconfig_credentials(text), list)


def test_an_exec_plugin_s_env_values_are_masked_too() -> None:
    user = {"exec": {"command": "aws", "env": [{"name": "AWS_PROFILE", "value": "prod-canary-7f3a"}]}}
    assert "prod-canary-7f3a" in kubeconfig.find_kubeconfig_credentials(cloud_kubeconfig(user))
