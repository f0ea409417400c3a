"""Kubeconfigs handed to the tool: decoding, the credentials inside them, credential plugins, a private file.

Shell (it reads kubeconfig files and writes one). The action's ``kubeconfig`` input may hold YAML or
base64-encoded YAML; every credential in it (or in the files ``KUBECONFIG`` names) is found here so
that it can be masked before anything prints, and the input is written to a 0600 file outside the
workspace that is removed when the step ends.

Cloud clusters: ``aws eks update-kubeconfig``, ``gcloud container clusters get-credentials`` and
``az aks get-credentials`` write users that run a credential plugin (``exec:``) or name an
``auth-provider:``. A plugin that is not installed where the tool runs (the action's image has none)
would only show up as a confusing 401; ``check_credential_plugins`` says so up front and gives the
recipe that works: a token-based kubeconfig made in an earlier workflow step.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bodywork_action.errors import InputError

# Kubeconfig fields whose values are credentials (users[].user.*); each is masked before anything prints.
KUBECONFIG_CREDENTIAL_KEYS = ("token", "client-key-data", "client-certificate-data", "password")
# Auth-provider config keys holding credentials (oidc, gcp, azure providers).
AUTH_PROVIDER_CREDENTIAL_KEYS = ("id-token", "refresh-token", "access-token", "client-secret")
# What works instead of each cloud's credential plugin: a token made in an earlier step.
TOKEN_RECIPES = {
    "aws": "a token from `aws eks get-token --cluster-name NAME` (see README: EKS)",
    "gke-gcloud-auth-plugin": "a token from `gcloud auth print-access-token` (see README: GKE)",
    "kubelogin": "a token from `az account get-access-token` (see README: AKS)",
    "gcp": "a token from `gcloud auth print-access-token` (see README: GKE)",
    "azure": "a token from `az account get-access-token` (see README: AKS)",
    "oidc": "a token-based kubeconfig (a service account token, see README: cloud clusters)",
}
GENERIC_RECIPE = "a token-based kubeconfig (a service account token, see README: cloud clusters)"


@dataclass(frozen=True)
class CredentialPlugin:
    """A kubeconfig user that gets its credentials from a program rather than from the file."""

    user: str
    kind: str  # "exec" or "auth-provider"
    name: str  # the exec command (as written) or the auth-provider's name


def find_credential_plugins(kubeconfig_yaml: str, *, context: str = "") -> list[CredentialPlugin]:
    """The plugin of the user that ``context`` (default: the current context) uses, if any."""
    document = _load_kubeconfig_document(kubeconfig_yaml) or {}
    return _plugins_of(_merge([document]), context=context)


@dataclass(frozen=True)
class _Merged:
    current_context: str
    contexts: Mapping[str, Mapping[str, Any]]  # name -> its `context` mapping
    users: Mapping[str, Mapping[str, Any]]  # name -> its `user` mapping


def _merge(documents: list[Mapping[str, Any]]) -> _Merged:
    """Several kubeconfig files as kubectl merges them (KUBECONFIG=a:b): the first file that sets a
    value, or defines a named context or user, wins."""
    current = next((str(d["current-context"]) for d in documents if d.get("current-context")), "")
    contexts: dict[str, Mapping[str, Any]] = {}
    users: dict[str, Mapping[str, Any]] = {}
    for document in documents:
        for entry in _entries(document, "contexts"):
            body = entry.get("context")
            contexts.setdefault(str(entry.get("name")), body if isinstance(body, dict) else {})
        for entry in _entries(document, "users"):
            body = entry.get("user")
            users.setdefault(str(entry.get("name")), body if isinstance(body, dict) else {})
    return _Merged(current, contexts, users)


def _plugins_of(merged: _Merged, *, context: str) -> list[CredentialPlugin]:
    chosen = merged.contexts.get(context or merged.current_context)
    if chosen is None:
        return []
    user_name = str(chosen.get("user") or "")
    user = merged.users.get(user_name) or {}
    plugins = []
    exec_config = user.get("exec")
    if isinstance(exec_config, dict) and exec_config.get("command"):
        plugins.append(CredentialPlugin(user_name, "exec", str(exec_config["command"])))
    provider = user.get("auth-provider")
    if isinstance(provider, dict) and provider.get("name"):
        plugins.append(CredentialPlugin(user_name, "auth-provider", str(provider["name"])))
    return plugins


def check_credential_plugins(
    plugins: list[CredentialPlugin], *, which: Callable[[str], str | None] = shutil.which
) -> None:
    """Raise InputError for a plugin that cannot run here, naming it and the recipe that works.

    An ``exec`` plugin runs if its command is installed; an ``auth-provider`` (the old in-client
    plugins for gcp, azure and oidc) is refused: current clients dropped gcp and azure, and an oidc
    refresh would need the provider's client secret inside the job.
    """
    for plugin in plugins:
        base = Path(plugin.name).name
        if plugin.kind == "exec" and which(plugin.name) is not None:
            continue
        recipe = TOKEN_RECIPES.get(base, GENERIC_RECIPE)
        if plugin.kind == "exec":
            problem = f"runs the credential plugin {plugin.name!r}, which is not installed here"
        else:
            problem = f"uses the auth-provider {plugin.name!r}, which this tool does not run"
        raise InputError(
            f"the kubeconfig's user {plugin.user!r} {problem}; use {recipe} instead. Nothing was applied."
        )


def read_kubeconfig_files(source: str) -> dict[str, str]:
    """Path → text of each existing kubeconfig file in ``source`` (a KUBECONFIG-style path list)."""
    texts = {}
    for part in source.split(os.pathsep):
        path = Path(part).expanduser() if part else None
        if path is not None and path.is_file():
            texts[part] = path.read_text(encoding="utf-8", errors="replace")
    return texts


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
    for entry in _entries(document, "users"):
        user = entry.get("user")
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
        exec_config = user.get("exec")
        if isinstance(exec_config, dict):  # a plugin's env may carry a token or a client secret
            found.extend(
                str(item.get("value"))
                for item in exec_config.get("env") or []
                if isinstance(item, dict) and isinstance(item.get("value"), str) and item.get("value")
            )
    return list(dict.fromkeys(found))


def _entries(document: Mapping[str, Any], field: str) -> list[dict[str, Any]]:
    """The named list (clusters, users, contexts) of a kubeconfig, ignoring entries of a wrong shape;
    a list that is not a list counts as empty (``check_kubeconfigs`` reports it)."""
    entries = document.get(field)
    return [entry for entry in entries if isinstance(entry, dict)] if isinstance(entries, list) else []


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


def check_kubeconfigs(files: Mapping[str, str], *, context: str = "") -> None:
    """Everything about the kubeconfig(s) to be loaded that can be told before connecting, as one
    clear InputError: a file that is not YAML (where, never what it holds), a file or field of the
    wrong shape (which, never its value), a context that is not in them (and the ones that are), a
    credential plugin that cannot run here. ``files``: name → text, in KUBECONFIG's order."""
    documents: list[Mapping[str, Any]] = []
    for name, text in files.items():
        try:
            document = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise InputError(f"kubeconfig {name} is not valid YAML: {exc.problem}{where}") from None
        except yaml.YAMLError:
            raise InputError(f"kubeconfig {name} is not valid YAML") from None
        if document is None:
            continue  # an empty file: kubectl skips it too
        if not isinstance(document, dict):
            raise InputError(
                f"kubeconfig {name} is not a kubeconfig (expected a mapping with clusters, users, contexts)"
            )
        for field, body in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            entries = document.get(field)
            if entries is None:
                continue
            if not isinstance(entries, list) or not all(
                isinstance(e, dict) and isinstance(e.get(body, {}), dict) for e in entries
            ):
                raise InputError(
                    f"kubeconfig {name}: '{field}' must be a list of entries, each with a name and a "
                    f"'{body}' mapping"
                )
        documents.append(document)
    merged = _merge(documents)
    if context and documents and context not in merged.contexts:
        known = ", ".join(sorted(merged.contexts)) or "none"
        raise InputError(f"context {context!r} is not in the kubeconfig; its contexts: {known}")
    check_credential_plugins(_plugins_of(merged, context=context))


class _RedactingFilter(logging.Filter):
    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self._redact(record.getMessage()), None
        return True


def redact_client_logs(redact: Callable[[str], str]) -> None:
    """The kubernetes client logs a failing credential plugin's stderr with ``logging.error``: run
    every record of the root logger (where it logs) through ``redact`` before any handler sees it."""
    root = logging.getLogger()
    root.filters = [f for f in root.filters if not isinstance(f, _RedactingFilter)]
    root.addFilter(_RedactingFilter(redact))


def keep_from_plugins(names: list[str]) -> None:
    """Remove ``names`` (secret values already read, the kubeconfig input) from this process's
    environment: a credential plugin inherits it, and needs none of them."""
    for name in names:
        os.environ.pop(name, None)
