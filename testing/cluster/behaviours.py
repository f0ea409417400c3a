"""Script how kwok fakes a pod's lifecycle, by label (see stages.yaml for the stages themselves).

Pod commands NEVER run on this tier: kwok only writes pod status. These helpers return the label,
annotations and (for "unschedulable") nodeSelector to put on a pod or pod template.

    template = {"metadata": {"labels": {"app": "x"}}, "spec": {...}}
    apply_behaviour(template, "fail", exit_code=3)   # mutates and returns the template dict
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml

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


# The pipeline a Bodywork pod belongs to, as the deploy labels it (bodywork_action/render.py).
PART_OF_LABEL = "app.kubernetes.io/part-of"


def timed_pipeline_stages(stages_text: str, timed_pipelines: Mapping[str, float]) -> str:
    """``stages_text`` (stages.yaml) with the pods of ``timed_pipelines`` (pipeline label -> seconds)
    taking that long: a Job's pod runs at once and succeeds after the seconds, a Deployment's pod
    becomes Running+Ready after them. Other pods keep the stages as written.

    kwok reads its stages once, at start: a benchmark names its pipelines when it starts the cluster.
    """
    if not timed_pipelines:
        return stages_text
    documents = [d for d in yaml.safe_load_all(stages_text) if d]
    by_name = {d["metadata"]["name"]: d for d in documents}
    ready, complete = by_name["bodywork-pod-ready"], by_name["bodywork-pod-complete-job"]
    part_of = f'.metadata.labels["{PART_OF_LABEL}"]'
    owner = ".metadata.ownerReferences.[].kind"
    derived = []
    for pipeline, seconds in sorted(timed_pipelines.items()):
        delay = {"durationMilliseconds": round(seconds * 1000)}
        variants = [
            (ready, "job-running", {"key": owner, "operator": "In", "values": ["Job"]}, None),
            (ready, "service-ready", {"key": owner, "operator": "NotIn", "values": ["Job"]}, delay),
            (complete, "job-complete", None, delay),
        ]
        for base, suffix, extra, wait in variants:
            stage = copy.deepcopy(base)
            stage["metadata"]["name"] = f"timed-{pipeline}-{suffix}"
            expressions = stage["spec"]["selector"]["matchExpressions"]
            expressions.append({"key": part_of, "operator": "In", "values": [pipeline]})
            if extra is not None:
                expressions.append(extra)
            stage["spec"].pop("delay", None)
            if wait is not None:
                stage["spec"]["delay"] = wait
            derived.append(stage)
    for stage in (ready, complete):  # the stages as written leave the timed pipelines alone
        stage["spec"]["selector"]["matchExpressions"].append(
            {"key": part_of, "operator": "NotIn", "values": sorted(timed_pipelines)}
        )
    return yaml.safe_dump_all([*documents, *derived], sort_keys=False)
