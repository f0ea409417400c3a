"""Deploying to the real control plane (testing/cluster): kwok behaviours per stage, unique pipeline names."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from bodywork_action import render
from testing.cluster.behaviours import apply_behaviour


def unique_name() -> str:
    return f"cp-{uuid.uuid4().hex[:8]}"


class Behaviours:
    """Which kwok behaviour each stage's pods get; applied to the pod template as it is rendered.

    The engine renders and applies its own objects; wrapping the two render functions is the one
    seam where a test can label the pod template without changing what the engine does with it.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.by_stage: dict[str, tuple[str, int]] = {}
        for function in ("render_job", "render_deployment"):
            monkeypatch.setattr(render, function, self._wrap(getattr(render, function)))

    def set(self, stage: str, behaviour: str, exit_code: int = 1) -> None:
        self.by_stage[stage] = (behaviour, exit_code)

    def clear(self) -> None:
        self.by_stage.clear()

    def _wrap(self, function: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        def rendered(stage: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
            manifest = function(stage, *args, **kwargs)
            if stage.name in self.by_stage:
                behaviour, exit_code = self.by_stage[stage.name]
                apply_behaviour(manifest["spec"]["template"], behaviour, exit_code=exit_code)
            return manifest

        return rendered
