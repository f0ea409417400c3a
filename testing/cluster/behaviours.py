"""Script how kwok fakes a pod's lifecycle, by label (see stages.yaml for the stages themselves).

Pod commands NEVER run on this tier: kwok only writes pod status. These helpers return the label,
annotations and (for "unschedulable") nodeSelector to put on a pod or pod template.

    template = {"metadata": {"labels": {"app": "x"}}, "spec": {...}}
    apply_behaviour(template, "fail", exit_code=3)   # mutates and returns the template dict
"""

from __future__ import annotations

from typing import Any

LABEL = "stage.bodywork.test/behaviour"
EXIT_CODE_ANNOTATION = "stage.bodywork.test/exit-code"
UNSCHEDULABLE_NODE_LABEL = "stage.bodywork.test/unschedulable"

#: behaviour -> what happens (documentation, also used for validation)
BEHAVIOURS = {
    "succeed": "Running+Ready, then Succeeded (exit 0); the default for Job pods even without the label",
    "fail": "Running+Ready, then Failed with exit code `exit_code` (restartPolicy Never pods)",
    "crashloop": "Running, never Ready, CrashLoopBackOff with a growing restartCount",
    "image-pull-error": "stays Pending with ErrImagePull then ImagePullBackOff",
    "unschedulable": "nodeSelector no node matches: the real scheduler leaves it Pending/Unschedulable",
}


def behaviour_fields(behaviour: str, exit_code: int = 1) -> dict[str, Any]:
    """The metadata/spec fields selecting `behaviour`: {"labels", "annotations", "node_selector"}."""
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {behaviour!r}; choose from {sorted(BEHAVIOURS)}")
    annotations = {}
    if behaviour in ("fail", "crashloop"):
        annotations[EXIT_CODE_ANNOTATION] = str(exit_code)
    node_selector = {UNSCHEDULABLE_NODE_LABEL: "true"} if behaviour == "unschedulable" else {}
    return {"labels": {LABEL: behaviour}, "annotations": annotations, "node_selector": node_selector}


def apply_behaviour(pod_or_template: dict[str, Any], behaviour: str, exit_code: int = 1) -> dict[str, Any]:
    """Add the behaviour's label/annotations/nodeSelector to a Pod or pod-template dict (in place)."""
    fields = behaviour_fields(behaviour, exit_code)
    meta = pod_or_template.setdefault("metadata", {})
    meta.setdefault("labels", {}).update(fields["labels"])
    if fields["annotations"]:
        meta.setdefault("annotations", {}).update(fields["annotations"])
    if fields["node_selector"]:
        pod_or_template.setdefault("spec", {}).setdefault("nodeSelector", {}).update(fields["node_selector"])
    return pod_or_template
