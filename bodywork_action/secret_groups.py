"""Which Kubernetes secrets a deployment creates, which keys its stages need, and which are missing.

Pure: ``--secret NAME=KEY1,KEY2`` is parsed here, values come from an environ *mapping* the shell
passes in (never from a YAML string, so multi-line values such as PEM keys survive), and the
"is every needed key somewhere?" decision is made over plain sets the shell read from the cluster.
Bodywork 3.0 compatibility (spec §4): a stage's env var name is the secret key; secrets stored with
``bodywork create secret`` live in namespace ``bodywork-deployment-jobs`` as ``{group}-{name}``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from bodywork_action.dag import is_dns1123_label
from bodywork_action.errors import InputError, SecretKeyRef
from bodywork_action.model import Pipeline
from bodywork_action.redact import SecretValue

BODYWORK_SECRETS_NAMESPACE = "bodywork-deployment-jobs"  # Bodywork 3.0's secret store (spec §4.1)
SECRET_SPEC_EXAMPLE = "--secret aws-credentials=AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY"
# Secret keys: alphanumerics, '-', '_' and '.' (Kubernetes' IsConfigMapKey), at most 253 characters.
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_BODYWORK_NAME_RUNS = re.compile(r"[^a-zA-Z0-9.]+")


@dataclass(frozen=True)
class SecretRequest:
    """One ``--secret NAME=KEY1,KEY2``: create secret NAME from the env vars KEY1, KEY2."""

    name: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class SuppliedSecret:
    name: str
    values: Mapping[str, SecretValue]

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(self.values)


@dataclass(frozen=True)
class SecretSupply:
    """The secrets to create or update in the target namespace, labelled with ``group``."""

    group: str = ""
    secrets: tuple[SuppliedSecret, ...] = ()

    def get(self, name: str) -> SuppliedSecret | None:
        for secret in self.secrets:
            if secret.name == name:
                return secret
        return None

    @property
    def names(self) -> frozenset[str]:
        return frozenset(s.name for s in self.secrets)

    def all_values(self) -> tuple[str, ...]:
        """Every value, for a redactor; never print these."""
        return tuple(v.reveal() for s in self.secrets for v in s.values.values())


@dataclass(frozen=True)
class SecretPlan:
    """Where each needed secret comes from, decided before anything is created."""

    create: tuple[str, ...] = ()  # supplied now: create or update in the target namespace
    copy_from_store: tuple[str, ...] = ()  # copy {group}-{name} from bodywork-deployment-jobs
    missing: tuple[SecretKeyRef, ...] = ()
    store_names: Mapping[str, str] = field(default_factory=dict)  # secret -> its name in the store


def parse_secret_request(text: str) -> SecretRequest:
    """``NAME=KEY1,KEY2`` → SecretRequest; raises InputError naming what is wrong."""
    name, sep, keys_text = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise InputError(f"--secret {text!r}: expected NAME=KEY1,KEY2, e.g. {SECRET_SPEC_EXAMPLE}")
    if not is_dns1123_label(name):
        raise InputError(
            f"--secret {text!r}: {name!r} is not a valid secret name (lower case letters, digits and '-', "
            "at most 63 characters)"
        )
    keys = tuple(k.strip() for k in keys_text.split(","))
    if not keys_text.strip() or any(not k for k in keys):
        raise InputError(f"--secret {text!r}: list the keys after '=', separated by commas")
    bad = [k for k in keys if not _SECRET_KEY.match(k)]
    if bad:
        raise InputError(
            f"--secret {text!r}: invalid key(s) {', '.join(map(repr, bad))} (letters, digits, -_.)"
        )
    return SecretRequest(name, tuple(dict.fromkeys(keys)))


def parse_secret_requests(texts: Iterable[str]) -> tuple[SecretRequest, ...]:
    """Parse every ``--secret``; the same name given twice has its keys merged."""
    merged: dict[str, dict[str, None]] = {}
    for text in texts:
        request = parse_secret_request(text)
        merged.setdefault(request.name, {}).update(dict.fromkeys(request.keys))
    return tuple(SecretRequest(name, tuple(keys)) for name, keys in merged.items())


def build_secret_supply(
    requests: Iterable[SecretRequest], environ: Mapping[str, str], *, group: str = ""
) -> SecretSupply:
    """Read each requested key's value from the env var of the same name.

    An unset *or empty* variable is an error: GitHub Actions turns an undefined repository secret
    into an empty string, and deploying an empty password is never what was meant.
    """
    secrets: list[SuppliedSecret] = []
    unset: list[str] = []
    empty: list[str] = []
    missing_keys: list[str] = []
    for request in requests:
        values: dict[str, SecretValue] = {}
        for key in request.keys:
            value = environ.get(key)
            if value is None:
                unset.append(f"{key} (for {request.name})")
                missing_keys.append(key)
            elif value == "":
                empty.append(f"{key} (for {request.name})")
                missing_keys.append(key)
            else:
                values[key] = SecretValue(value)
        secrets.append(SuppliedSecret(request.name, values))
    if unset or empty:
        parts = []
        if unset:
            parts.append("not set: " + ", ".join(unset))
        if empty:
            parts.append("empty: " + ", ".join(empty))
        example = missing_keys[0]
        raise InputError(
            "secret values are read from environment variables of the same name; "
            + "; ".join(parts)
            + f". In a workflow, map each in the step's env ({example}: "
            f"${{{{ secrets.{github_secret_name(example)} }}}}); "
            "GitHub passes an empty string for a secret that is not defined"
        )
    return SecretSupply(group=group, secrets=tuple(secrets))


def github_secret_name(key: str) -> str:
    """A repository-secret name that could hold ``key``'s value: GitHub allows letters, digits and
    underscores, not a leading digit nor the ``GITHUB_`` prefix (``tls.key`` → ``TLS_KEY``)."""
    name = re.sub(r"\W", "_", key, flags=re.ASCII).upper()
    if name[:1].isdigit() or name.startswith("GITHUB_"):
        name = f"SECRET_{name}"
    return name


def build_needed_keys(pipeline: Pipeline) -> tuple[SecretKeyRef, ...]:
    """Every (secret, key) that a stage of the DAG or the run_on_failure stage reads, sorted, once each."""
    stages = list(pipeline.dag_stages)
    if pipeline.failure_stage is not None and pipeline.failure_stage not in stages:
        stages.append(pipeline.failure_stage)
    refs = {SecretKeyRef(env.secret, env.env_var) for stage in stages for env in stage.secrets}
    return tuple(sorted(refs, key=lambda r: (r.secret, r.key)))


def build_store_secret_name(group: str, name: str) -> str:
    """Bodywork's ``make_valid_k8s_name(f"{group}-{name}")`` (spec §3.1, §4.1)."""
    return _BODYWORK_NAME_RUNS.sub("-", f"{group}-{name}".strip())


def check_missing_keys(
    needed: Iterable[SecretKeyRef], available: Mapping[str, Collection[str]]
) -> tuple[SecretKeyRef, ...]:
    return tuple(ref for ref in needed if ref.key not in available.get(ref.secret, ()))


def build_secret_plan(
    needed: Iterable[SecretKeyRef],
    supply: SecretSupply,
    *,
    in_namespace: Mapping[str, Collection[str]],
    in_store: Mapping[str, Collection[str]],
    group: str,
) -> SecretPlan:
    """Decide, per needed secret, whether it is supplied now, already present, or copied from the store.

    ``in_namespace`` / ``in_store`` map a secret name (the store's name for ``in_store``) to the keys
    it holds. A secret is copied from the store only if the store has a key found nowhere else; the
    copy is merged under the supplied values, so a key given now always wins.
    """
    needed = tuple(needed)
    by_secret: dict[str, set[str]] = {}
    for ref in needed:
        by_secret.setdefault(ref.secret, set()).add(ref.key)
    available: dict[str, set[str]] = {}
    copy: list[str] = []
    store_names: dict[str, str] = {}
    for secret, keys in by_secret.items():
        supplied = supply.get(secret)
        have = set(supplied.keys if supplied else ()) | set(in_namespace.get(secret, ()))
        store_name = build_store_secret_name(group, secret) if group else ""
        if keys - have and store_name and store_name in in_store:
            copy.append(secret)
            store_names[secret] = store_name
            have |= set(in_store[store_name])
        available[secret] = have
    return SecretPlan(
        create=tuple(s.name for s in supply.secrets),
        copy_from_store=tuple(copy),
        missing=check_missing_keys(needed, available),
        store_names=store_names,
    )
