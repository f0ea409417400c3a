"""Secrets for local runs: ``--secret NAME=KEY1,KEY2``, ``--env-file`` text, and each stage's environment.

Pure: values come in as mappings (the shell reads the environment and the file), nothing is read here.
A stage gets exactly the keys its ``secrets`` section names (Bodywork: key = env var name, value = the
secret's name), and no other supplied secret value: every supplied key is removed from the inherited
environment first, then the stage's own keys are added back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from bodywork_action.errors import InputError, MissingSecrets, SecretKeyRef
from bodywork_action.model import Stage
from bodywork_action.redact import Redactor, SecretValue

_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class SecretStore:
    """The secret values a local run was given, by (secret name, key); ``repr`` never shows a value."""

    values: Mapping[SecretKeyRef, SecretValue]
    specs: Mapping[str, tuple[str, ...]]  # secret name -> keys, as the user gave them

    @property
    def supplied_keys(self) -> frozenset[str]:
        """Every env var name holding a secret value in this run (removed from every child's environment)."""
        return frozenset(ref.key for ref in self.values)

    def redactor(self) -> Redactor:
        return Redactor(self.values.values())


class LocalSecretsMissing(MissingSecrets):
    """Keys named with ``--secret`` that have no value in the environment or the env file."""

    def __init__(self, missing: Sequence[SecretKeyRef]) -> None:
        super().__init__("local", missing)
        listed = ", ".join(f"{m.secret}/{m.key}" for m in self.missing)
        self.args = (
            f"{len(self.missing)} secret key(s) given with --secret have no value: {listed}; export "
            "them or put KEY=VALUE lines in the --env-file. Nothing was started.",
        )


def parse_env_file(text: str, *, file: str) -> dict[str, str]:
    """``KEY=VALUE`` lines (``export`` prefix, ``#`` comments and matching quotes allowed) → a dict.

    Errors name the file and line, never the value on it.
    """
    values: dict[str, str] = {}
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _ENV_KEY.match(key):
            raise InputError(f"{file}:{number}: expected KEY=VALUE with KEY an environment variable name")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def build_secret_store(
    specs: Mapping[str, Sequence[str]], sources: Sequence[Mapping[str, str]]
) -> SecretStore:
    """Look each (secret, key) up in ``sources`` in order (first hit wins); raise if a key has no value."""
    values: dict[SecretKeyRef, SecretValue] = {}
    missing: list[SecretKeyRef] = []
    for secret, keys in specs.items():
        for key in keys:
            ref = SecretKeyRef(secret, key)
            found = next((source[key] for source in sources if key in source), None)
            if found is None:
                missing.append(ref)
            else:
                values[ref] = SecretValue(found)
    if missing:
        raise LocalSecretsMissing(missing)
    return SecretStore(values=values, specs={name: tuple(keys) for name, keys in specs.items()})


def find_unsupplied_secrets(stages: Iterable[Stage], store: SecretStore) -> list[tuple[str, SecretKeyRef]]:
    """(stage name, ref) for each secret key a stage names that this run was not given."""
    return [
        (stage.name, SecretKeyRef(env.secret, env.env_var))
        for stage in stages
        for env in stage.secrets
        if SecretKeyRef(env.secret, env.env_var) not in store.values
    ]


def format_unsupplied_warning(unsupplied: Sequence[tuple[str, SecretKeyRef]]) -> str:
    by_secret: dict[str, list[str]] = {}
    for _, ref in unsupplied:
        by_secret.setdefault(ref.secret, [])
        if ref.key not in by_secret[ref.secret]:
            by_secret[ref.secret].append(ref.key)
    stages = ", ".join(dict.fromkeys(stage for stage, _ in unsupplied))
    flags = " ".join(f"--secret {name}={','.join(keys)}" for name, keys in by_secret.items())
    return (
        f"warning: stage(s) {stages} name secret keys this run was not given; they run without them "
        f"(to supply them: {flags}, values from the environment or --env-file)"
    )


def build_stage_environ(
    inherited: Mapping[str, str],
    *,
    stage: Stage,
    store: SecretStore,
    extra: Mapping[str, str],
) -> dict[str, str]:
    """The child's environment: ``inherited`` minus every supplied secret key, plus ``extra``, plus the
    stage's own secret keys (those last, as in the cluster where a secretKeyRef wins)."""
    secret_keys = store.supplied_keys
    environ = {k: v for k, v in inherited.items() if k not in secret_keys}
    environ.update(extra)
    for env in stage.secrets:
        value = store.values.get(SecretKeyRef(env.secret, env.env_var))
        if value is not None:
            environ[env.env_var] = value.reveal()
    return environ
