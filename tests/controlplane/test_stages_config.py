"""Fast consistency checks of the kwok stage configuration (no control plane needed)."""

from __future__ import annotations

import pytest
import yaml

from testing.cluster.behaviours import (
    BEHAVIOURS,
    LABEL,
    PART_OF_LABEL,
    UNSCHEDULABLE_NODE_LABEL,
    apply_behaviour,
    timed_pipeline_stages,
)
from testing.cluster.launcher import STAGES_FILE


def _stages() -> list[dict]:
    return [d for d in yaml.safe_load_all(STAGES_FILE.read_text()) if d]


def test_every_scripted_behaviour_has_a_stage_selecting_its_label() -> None:
    selected: set[str] = set()
    for stage in _stages():
        assert stage["kind"] == "Stage"
        for expr in stage["spec"]["selector"].get("matchExpressions", []):
            if expr["key"] == f'.metadata.labels["{LABEL}"]' and expr["operator"] == "In":
                selected.update(expr["values"])
    # "unschedulable" needs no stage: the real scheduler handles it through a nodeSelector.
    assert selected == set(BEHAVIOURS) - {"unschedulable"}


def test_stage_names_are_unique_and_nodes_and_deletion_are_covered() -> None:
    names = [s["metadata"]["name"] for s in _stages()]
    assert len(names) == len(set(names))
    assert {"node-initialize", "node-heartbeat-with-lease", "pod-delete"} <= set(names)


def test_apply_behaviour_sets_label_annotation_and_node_selector() -> None:
    template = apply_behaviour({"metadata": {"labels": {"app": "a"}}}, "fail", exit_code=7)
    assert template["metadata"]["labels"] == {"app": "a", LABEL: "fail"}
    assert template["metadata"]["annotations"] == {"stage.bodywork.test/exit-code": "7"}
    assert "spec" not in template
    stuck = apply_behaviour({}, "unschedulable")
    assert stuck["spec"]["nodeSelector"] == {UNSCHEDULABLE_NODE_LABEL: "true"}
    with pytest.raises(ValueError, match="unknown behaviour"):
        apply_behaviour({}, "explode")


def test_timed_pipelines_get_their_own_delays_and_the_stages_as_written_leave_them_alone() -> None:
    assert timed_pipeline_stages(STAGES_FILE.read_text(), {}) == STAGES_FILE.read_text()
    stages = {
        s["metadata"]["name"]: s
        for s in yaml.safe_load_all(
            timed_pipeline_stages(STAGES_FILE.read_text(), {"slow": 5, "slower": 7.5})
        )
    }
    part_of = f'.metadata.labels["{PART_OF_LABEL}"]'

    def selects(stage: dict, operator: str) -> list[str]:
        expressions = stage["spec"]["selector"]["matchExpressions"]
        return [
            v for e in expressions if e["key"] == part_of and e["operator"] == operator for v in e["values"]
        ]

    for written in ("bodywork-pod-ready", "bodywork-pod-complete-job"):
        assert selects(stages[written], "NotIn") == ["slow", "slower"]
    for pipeline, milliseconds in (("slow", 5000), ("slower", 7500)):
        running, ready, complete = (
            stages[f"timed-{pipeline}-{suffix}"]
            for suffix in ("job-running", "service-ready", "job-complete")
        )
        assert all(
            selects(s, "In") == [pipeline] and not selects(s, "NotIn") for s in (running, ready, complete)
        )
        assert "delay" not in running["spec"]  # a Job's pod runs at once...
        assert complete["spec"]["delay"] == {"durationMilliseconds": milliseconds}  # ...and succeeds later
        assert ready["spec"]["delay"] == {
            "durationMilliseconds": milliseconds
        }  # a service's pod: ready later
    other = [n for n in stages if n not in ("bodywork-pod-ready", "bodywork-pod-complete-job")]
    assert all(not selects(stages[n], "NotIn") for n in other)  # nothing else was touched
