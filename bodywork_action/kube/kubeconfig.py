"""Kubeconfigs handed to the tool as text: decoding, the credentials inside them, a private file.

Shell (it writes one file). The action's ``kubeconfig`` input may hold YAML or base64-encoded YAML;
every credential in it is found here so that it can be masked before anything prints, and it is
written to a 0600 file outside the workspace that is removed when the step ends.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from bodywork_action.errors import InputError

# Kubeconfig fields whose values are credentials (users[].user.*); each is masked before anything prints.
KUBECONFIG_CREDENTIAL_KEYS = ("token", "client-key-data", "client-certificate-data", "password")
# Auth-provider config keys holding credentials (oidc, gcp, azure providers).
AUTH_PROVIDER_CREDENTIAL_KEYS = ("id-token", "refresh-token", "access-token", "client-secret")


def parse_kubeconfig_input(text: str) -> str:
    """The kubeconfig as YAML text, whether the input held YAML or base64-encoded YAML.

    Error messages never quote the input: it is full of credentials.
    """
    stripped = text.strip()
    if not stripped:
        raise InputError("input 'kubeconfig' is empty")
    if _looks_like_kubeconfig(stripped):
        return stripped + "\n"
    try:
        decoded = base64.b64decode("".join(stripped.split()), validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InputError(
            "input 'kubeconfig' is neither a kubeconfig in YAML nor base64-encoded YAML "
            "(expected keys apiVersion, clusters, users, contexts)"
        ) from None
    if not _looks_like_kubeconfig(decoded):
        raise InputError(
            "input 'kubeconfig' was base64 but did not decode to a kubeconfig "
            "(expected keys apiVersion, clusters, users, contexts)"
        )
    return decoded.strip() + "\n"


def _load_kubeconfig_document(text: str) -> dict[str, Any] | None:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return document if isinstance(document, dict) else None


def _looks_like_kubeconfig(text: str) -> bool:
    document = _load_kubeconfig_document(text)
    return document is not None and ("clusters" in document or document.get("kind") == "Config")


def find_kubeconfig_credentials(kubeconfig_yaml: str) -> list[str]:
    """Every credential value in the kubeconfig, plus decoded forms of base64 key/cert data."""
    document = _load_kubeconfig_document(kubeconfig_yaml) or {}
    found: list[str] = []
    for entry in document.get("users") or []:
        user = entry.get("user") if isinstance(entry, dict) else None
        if not isinstance(user, dict):
            continue
        for key in KUBECONFIG_CREDENTIAL_KEYS:
            value = user.get(key)
            if isinstance(value, str) and value:
                found.append(value)
                if key.endswith("-data"):
                    found.extend(_decoded_base64(value))
        provider = user.get("auth-provider")
        config = provider.get("config") if isinstance(provider, dict) else None
        if isinstance(config, dict):
            found.extend(
                str(value) for key, value in config.items() if key in AUTH_PROVIDER_CREDENTIAL_KEYS and value
            )
    return list(dict.fromkeys(found))


def _decoded_base64(value: str) -> list[str]:
    try:
        return [base64.b64decode(value, validate=True).decode("utf-8")]
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return []


def choose_private_temp_parent(environ: Mapping[str, str]) -> str | None:
    """``RUNNER_TEMP`` if it exists here and is outside the workspace; else None (the system default).

    Inside a container action ``RUNNER_TEMP`` names a host path that is not mounted, so the container's
    own ``/tmp`` is used — outside the workspace and gone with the container.
    """
    runner_temp = environ.get("RUNNER_TEMP", "").strip()
    workspace = environ.get("GITHUB_WORKSPACE", "").strip()
    if not runner_temp or not os.path.isdir(runner_temp):
        return None
    if workspace:
        resolved_temp = Path(runner_temp).resolve()
        resolved_workspace = Path(workspace).resolve()
        if resolved_temp == resolved_workspace or resolved_workspace in resolved_temp.parents:
            return None
    return runner_temp


@contextlib.contextmanager
def write_private_kubeconfig(kubeconfig_yaml: str, environ: Mapping[str, str]) -> Iterator[Path]:
    """Write the kubeconfig to a fresh 0600 file in a 0700 directory outside the workspace; yield its path.

    The file and its directory are removed when the block exits, however it exits.
    """
    directory = tempfile.mkdtemp(prefix="bodywork-kube-", dir=choose_private_temp_parent(environ))
    path = Path(directory) / "config"
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as kubeconfig_file:
            kubeconfig_file.write(kubeconfig_yaml)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(OSError):
            os.rmdir(directory)
