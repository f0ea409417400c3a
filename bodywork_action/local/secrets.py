"""Secrets for local runs: ``--env-file`` text, and each stage's environment.

Pure: values come in as mappings (the shell reads the environment and the file), nothing is read here;
which secrets and keys a run supplies is ``secret_groups.SecretSupply``, as for a cluster deploy.
A stage gets exactly the keys its ``secrets`` section names (Bodywork: key = env var name, value = the
secret's name), and no other supplied secret value: every supplied key is removed from the inherited
environment first, then the stage's own keys are added back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from bodywork_action.errors import InputError, SecretKeyRef
from bodywork_action.model import Stage
from bodywork_action.secret_groups import SecretSupply

_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
    supply: SecretSupply,
    extra: Mapping[str, str],
) -> dict[str, str]:
    """The child's environment: ``inherited`` minus every supplied secret key, plus ``extra``, plus the
    stage's own secret keys (those last, as in the cluster where a secretKeyRef wins)."""
    secret_keys = supply.supplied_keys
    environ = {k: v for k, v in inherited.items() if k not in secret_keys}
    environ.update(extra)
    for env in stage.secrets:
        value = supply.value_of(SecretKeyRef(env.secret, env.env_var))
        if value is not None:
            environ[env.env_var] = value.reveal()
    return environ
