"""A workflow's steps as GitHub hands them to an action or a shell: ``with:`` and ``env:`` with every
``${{ … }}`` replaced from a context (``github.event…``, ``env.…``, ``secrets.…``, ``steps.…``).

Only plain dotted lookups are evaluated; an expression with operators or functions raises, so a test
can never pass on an expression it did not really evaluate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_LOOKUP = re.compile(r"[A-Za-z_][\w-]*(?:\.[\w-]+)*")


def load_workflow(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), path
    return document


def find_step(workflow: Mapping[str, Any], job: str, step_id: str = "", name: str = "") -> dict[str, Any]:
    """The step of ``job`` with this id (or name)."""
    for step in workflow["jobs"][job]["steps"]:
        if (step_id and step.get("id") == step_id) or (name and step.get("name") == name):
            return dict(step)
    raise KeyError(f"job {job} has no step {step_id or name!r}")


def evaluate(text: str, context: Mapping[str, Any]) -> str:
    """``text`` with each ``${{ a.b.c }}`` replaced by ``context["a"]["b"]["c"]`` (KeyError if absent)."""

    def lookup(match: re.Match[str]) -> str:
        expression = match.group(1)
        if not _LOOKUP.fullmatch(expression):
            raise ValueError(f"not a plain lookup, not evaluated here: {expression!r}")
        value: Any = context
        for part in expression.split("."):
            value = value[part]
        return str(value)

    return _EXPRESSION.sub(lookup, text)


def step_inputs(step: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, str]:
    """The step's ``with:``, evaluated: what the action gets as INPUT_* variables."""
    return {name: evaluate(str(value), context) for name, value in (step.get("with") or {}).items()}


def step_env(step: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, str]:
    return {name: evaluate(str(value), context) for name, value in (step.get("env") or {}).items()}
