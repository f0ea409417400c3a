"""Which secrets a run supplies, with which keys; which keys its stages need; which are missing.

Core, and the one home of these rules. Every surface asks the same question in its own spelling —
the CLI's ``--secret NAME=KEY1,KEY2``, the action's ``secrets`` input (``name: KEY1, KEY2`` lines) —
and both parse into ``SecretRequest`` under one set of rules, the ones bodywork.yaml itself uses: a
secret name is a DNS-1123 subdomain, a key is a Kubernetes secret key (letters, digits, ``-_.``).
Values come from environ *mappings* the shell passes in (never from a YAML string, so multi-line values
such as PEM keys survive) into one ``SecretSupply``, used alike by cluster deploys and local runs.

Bodywork 3.0 compatibility: a stage's env var name is the secret key; secrets stored with
``bodywork create secret`` live in namespace ``bodywork-deployment-jobs`` as ``{group}-{name}``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from bodywork_action import render
from bodywork_action.errors import InputError, SecretKeyRef
from bodywork_action.model import Pipeline, Stage
from bodywork_action.redact import Redactor, SecretValue

BODYWORK_SECRETS_NAMESPACE = "bodywork-deployment-jobs"  # where Bodywork 3.0 stored its secrets
SECRET_OPTION_EXAMPLE = "--secret aws-credentials=AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY"
SECRET_NAME_MAX_LENGTH = 253
# The same rules as bodywork.yaml's stage ``secrets`` (bodywork.schema.json).
_SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_BODYWORK_NAME_RUNS = re.compile(r"[^a-zA-Z0-9.]+")

Manifest = dict[str, Any]


class Surface(str, Enum):
    """Where the user supplies values: each gets advice in its own syntax."""

    ACTION = "action"  # the action's `secrets` input, values in the step's `env:`
    CLI = "cli"  # `deploy --secret`, values exported in the shell
    LOCAL = "local"  # `run --local --secret`, values exported or in --env-file


@dataclass(frozen=True)
class SecretRequest:
    """Create (or update) secret ``name`` holding ``keys``, each value read from the env var of that name."""

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
    """The secret values this run was given, by secret; ``group`` labels what a deploy creates."""

    group: str = ""
    secrets: tuple[SuppliedSecret, ...] = ()

    def get(self, name: str) -> SuppliedSecret | None:
        return next((secret for secret in self.secrets if secret.name == name), None)

    def value_of(self, ref: SecretKeyRef) -> SecretValue | None:
        supplied = self.get(ref.secret)
        return None if supplied is None else supplied.values.get(ref.key)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(s.name for s in self.secrets)

    @property
    def supplied_keys(self) -> frozenset[str]:
        """Every env var name that holds a secret value in this run."""
        return frozenset(key for s in self.secrets for key in s.values)

    def all_values(self) -> tuple[str, ...]:
        """Every value, for a redactor; never print these."""
        return tuple(v.reveal() for s in self.secrets for v in s.values.values())

    def redactor(self) -> Redactor:
        return Redactor(self.all_values())


@dataclass(frozen=True)
class SecretPlan:
    """Where each needed secret comes from, decided before anything is created."""

    create: tuple[str, ...] = ()  # supplied now: create or update in the target namespace
    copy_from_store: tuple[str, ...] = ()  # copy {group}-{name} from bodywork-deployment-jobs
    missing: tuple[SecretKeyRef, ...] = ()
    store_names: Mapping[str, str] = field(default_factory=dict)  # secret -> its name in the store


# ------------------------------------------------------------------------------ the two spellings


def check_secret_request(name: str, keys: Sequence[str]) -> list[str]:
    """Every problem with one request, as phrases (the caller says where it came from)."""
    problems = []
    if not _SECRET_NAME.match(name) or len(name) > SECRET_NAME_MAX_LENGTH:
        problems.append(
            f"{name!r} is not a valid Kubernetes secret name (lower-case letters, digits, '-' and '.')"
        )
    if not keys:
        problems.append(f"secret {name!r} lists no keys")
    bad = [key for key in keys if not _SECRET_KEY.match(key)]
    if bad:
        problems.append(f"invalid key(s) {', '.join(map(repr, bad))} (letters, digits, '-', '_' and '.')")
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        problems.append(f"key(s) {', '.join(map(repr, repeated))} listed twice for secret {name!r}")
    return problems


def parse_secret_option(text: str) -> SecretRequest:
    """The CLI's ``--secret NAME=KEY1,KEY2``; raises InputError naming what is wrong."""
    name, sep, keys_text = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise InputError(f"--secret {text!r}: expected NAME=KEY1,KEY2, e.g. {SECRET_OPTION_EXAMPLE}")
    keys = [key.strip() for key in keys_text.split(",")] if keys_text.strip() else []
    if any(not key for key in keys):
        raise InputError(f"--secret {text!r}: list the keys after '=', separated by commas")
    problems = check_secret_request(name, keys)
    if problems:
        raise InputError(f"--secret {text!r}: " + "; ".join(problems))
    return SecretRequest(name, tuple(keys))


def parse_secret_options(texts: Iterable[str]) -> tuple[SecretRequest, ...]:
    """Every ``--secret``; the same name given twice has its keys merged (a repeated flag adds keys)."""
    merged: dict[str, dict[str, None]] = {}
    for text in texts:
        request = parse_secret_option(text)
        merged.setdefault(request.name, {}).update(dict.fromkeys(request.keys))
    return tuple(SecretRequest(name, tuple(keys)) for name, keys in merged.items())


def parse_secrets_input(text: str) -> tuple[SecretRequest, ...]:
    """The action's ``secrets`` input: ``secret-name: KEY1, KEY2`` lines (also ``[KEY1, KEY2]`` or
    ``- KEY`` items under the name). Only names are written in the workflow; values come from the step's
    ``env:``, so nothing secret ever sits in YAML. Every problem is reported at once, by line."""
    secrets: dict[str, list[str]] = {}
    lines: dict[str, int] = {}
    problems: list[str] = []
    current: str | None = None
    for number, raw_line in enumerate(text.splitlines(), start=1):
        stripped = raw_line.split("#", 1)[0].strip()
        if not stripped:
            continue
        if stripped.startswith("- ") or stripped == "-":
            if current is None:
                problems.append(f"line {number}: a '- KEY' item must follow a 'secret-name:' line")
                continue
            secrets[current].append(stripped[1:].strip())
            continue
        name, colon, rest = stripped.partition(":")
        name = name.strip()
        if not colon:
            problems.append(f"line {number}: expected 'secret-name: KEY1, KEY2', found {stripped!r}")
            current = None
            continue
        if name in secrets:
            problems.append(f"line {number}: secret {name!r} is listed twice")
            current = None
            continue
        rest = rest.strip()
        if rest.startswith("[") and rest.endswith("]"):
            rest = rest[1:-1]
        keys = [key.strip() for key in rest.split(",")] if rest.strip() else []
        if any(not key for key in keys):
            problems.append(f"line {number}: empty key in {rest!r}")
            keys = [key for key in keys if key]
        secrets[name], lines[name], current = keys, number, name
    for name, keys in secrets.items():
        problems += [f"line {lines[name]}: {problem}" for problem in check_secret_request(name, keys)]
    if problems:
        raise InputError("input 'secrets' is invalid:\n  " + "\n  ".join(problems))
    return tuple(SecretRequest(name, tuple(keys)) for name, keys in secrets.items())


# ---------------------------------------------------------------------------------------- values


def build_secret_supply(
    requests: Iterable[SecretRequest],
    sources: Sequence[Mapping[str, str]],
    *,
    group: str = "",
    surface: Surface = Surface.CLI,
) -> SecretSupply:
    """Read each requested key from the first source that has it (the environment first).

    A key found nowhere, or found empty, is an error listing every such key and never a value: GitHub
    Actions turns an undefined repository secret into an empty string, and an empty password is never
    what was meant.
    """
    secrets: list[SuppliedSecret] = []
    unset: list[str] = []
    empty: list[str] = []
    for request in requests:
        values: dict[str, SecretValue] = {}
        for key in request.keys:
            value = next((source[key] for source in sources if key in source), None)
            if value is None:
                unset.append(f"{request.name}/{key}")
            elif value == "":
                empty.append(f"{request.name}/{key}")
            else:
                values[key] = SecretValue(value)
        secrets.append(SuppliedSecret(request.name, values))
    if unset or empty:
        parts = ([f"not set: {', '.join(unset)}"] if unset else []) + (
            [f"empty: {', '.join(empty)}"] if empty else []
        )
        example = (unset or empty)[0].split("/", 1)[1]
        advice = _supply_advice(surface, example)
        raise InputError(f"secret values are missing ({'; '.join(parts)}). {advice}")
    return SecretSupply(group=group, secrets=tuple(secrets))


def _supply_advice(surface: Surface, key: str) -> str:
    if surface is Surface.ACTION:
        return (
            f"Each value is read from the step's environment variable of the same name: map it in the "
            f"step's env ({key}: ${{{{ secrets.{github_secret_name(key)} }}}}). GitHub passes an empty "
            "string for a repository secret that is not defined."
        )
    if surface is Surface.LOCAL:
        return (
            f"Export each one (export {key}=...) or put {key}=... lines in the --env-file. "
            "Nothing was started."
        )
    return f"Each value is read from the environment variable of the same name: export {key}=... first."


def github_secret_name(key: str) -> str:
    """A repository-secret name that could hold ``key``'s value: GitHub allows letters, digits and
    underscores, not a leading digit nor the ``GITHUB_`` prefix (``tls.key`` → ``TLS_KEY``)."""
    name = re.sub(r"\W", "_", key, flags=re.ASCII).upper()
    if name[:1].isdigit() or name.startswith("GITHUB_"):
        name = f"SECRET_{name}"
    return name


def find_unsupplied_keys(stages: Iterable[Stage], supply: SecretSupply) -> list[tuple[str, SecretKeyRef]]:
    """(stage name, ref) for each secret key a stage names that this run was not given."""
    return [
        (stage.name, SecretKeyRef(env.secret, env.env_var))
        for stage in stages
        for env in stage.secrets
        if supply.value_of(SecretKeyRef(env.secret, env.env_var)) is None
    ]


# ------------------------------------------------------------------------ what a deploy needs


def secrets_group(supply: SecretSupply, pipeline: Pipeline) -> str:
    """The group of a deploy: the one asked for, the pipeline's, or (as Bodywork) the pipeline's name.
    It labels the secrets a deploy writes and prefixes the names looked up in Bodywork's store."""
    return supply.group or pipeline.secrets_group or pipeline.name


def build_needed_keys(pipeline: Pipeline) -> tuple[SecretKeyRef, ...]:
    """Every (secret, key) that a stage of the DAG or the run_on_failure stage reads, sorted, once each."""
    stages = list(pipeline.dag_stages)
    if pipeline.failure_stage is not None and pipeline.failure_stage not in stages:
        stages.append(pipeline.failure_stage)
    refs = {SecretKeyRef(env.secret, env.env_var) for stage in stages for env in stage.secrets}
    return tuple(sorted(refs, key=lambda r: (r.secret, r.key)))


def build_store_secret_name(group: str, name: str) -> str:
    """Bodywork's ``make_valid_k8s_name(f"{group}-{name}")``: its secret store's naming."""
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


def build_secret_manifests(
    plan: SecretPlan,
    supply: SecretSupply,
    *,
    existing: Mapping[str, Mapping[str, Any]],
    store: Mapping[str, Mapping[str, Any]],
    namespace: str,
    group: str,
    pipeline_label: str,
) -> tuple[Manifest, ...]:
    """The Secrets a deploy writes, each rendered once from everything that goes into it.

    A secret copied from Bodywork's store keeps the store's keys under the ones supplied now; a secret
    that already exists keeps the keys not supplied now (as Bodywork's update did). A secret this run
    creates is ours (``delete`` may remove it); someone else's keeps its labels and gains ours.
    """
    manifests: list[Manifest] = []
    names = [*plan.copy_from_store, *(s.name for s in supply.secrets if s.name not in plan.copy_from_store)]
    for name in names:
        current = existing.get(name) or {}
        kept_data = dict(current.get("data") or {})
        if name in plan.copy_from_store:
            kept_data.update(store[plan.store_names[name]].get("data") or {})
        supplied = supply.get(name)
        values = {key: value.reveal() for key, value in (supplied.values.items() if supplied else ())}
        manifests.append(
            render.render_secret(
                name,
                values,
                kept_data={key: value for key, value in kept_data.items() if key not in values},
                namespace=namespace,
                group=group,
                owner=None if name in existing else pipeline_label,
                existing_labels=(current.get("metadata") or {}).get("labels") or {},
            )
        )
    return tuple(manifests)
