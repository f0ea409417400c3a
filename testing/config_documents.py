"""bodywork.yaml documents and helpers the validation tests share: a valid file to edit, and where a
fragment sits in it."""

from __future__ import annotations

import textwrap

from bodywork_action.config import validate_config
from bodywork_action.errors import ConfigProblem, Severity

VALID = textwrap.dedent(
    """\
    version: "1.1"
    pipeline:
      name: demo
      docker_image: python:3.11-slim
      DAG: prepare >> train,serve
    stages:
      prepare:
        executable_module_path: prepare.py
        cpu_request: 0.5
        memory_request_mb: 100
        batch:
          max_completion_time_seconds: 60
          retries: 1
      train:
        executable_module_path: train.py
        cpu_request: 1
        memory_request_mb: 200
        batch:
          max_completion_time_seconds: 600
          retries: 2
      serve:
        executable_module_path: serve.py
        cpu_request: 0.25
        memory_request_mb: 100
        service:
          max_startup_time_seconds: 60
          replicas: 2
          port: 8000
          ingress: false
    logging:
      log_level: INFO
    """
)


def problems_of(text: str, **kwargs: object) -> list[ConfigProblem]:
    return list(validate_config(text.encode(), **kwargs).problems)  # type: ignore[arg-type]


def only_error(text: str, **kwargs: object) -> ConfigProblem:
    errors = [p for p in problems_of(text, **kwargs) if p.severity is Severity.ERROR]
    assert len(errors) == 1, [p.format() for p in errors]
    return errors[0]


def edit(old: str, new: str, text: str = VALID) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def line_of(text: str, fragment: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), start=1) if fragment in line)
