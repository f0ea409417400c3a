"""diffing.py, pure: normalisation, comparison, Secret keys, the formats and the summary's size limit."""

from __future__ import annotations

import base64
import json
from typing import Any

from bodywork_action import diffing, render
from bodywork_action.diffing import KeyState, ObjectDiff, ObjectState, PipelineDiff
from bodywork_action.model import Pipeline
from bodywork_action.plan import render_plan
from bodywork_action.redact import Redactor
from bodywork_action.result_document import diff_document, format_document
from testing.builders import batch, context, four_stage_pipeline, pipeline, service


def as_json(diff: PipelineDiff) -> str:
    """The ``diff --format json`` document of ``diff``."""
    return format_document(diff_document(diff, exit_code=0))


def server_stored(manifest: dict[str, Any], *, uid: str, version: str) -> dict[str, Any]:
    """``manifest`` as an API server returns it: server metadata, status, a Job's own labels."""
    stored = json.loads(json.dumps(manifest))
    stored["metadata"].update(
        uid=uid, resourceVersion=version, generation=3, creationTimestamp="2026-01-01T00:00:00Z"
    )
    stored["metadata"]["managedFields"] = [{"manager": "kube-controller-manager"}]
    stored["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = version
    stored["status"] = {"observedGeneration": 3}
    if manifest["kind"] == "Job":
        stored["spec"]["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        labels = stored["spec"]["template"]["metadata"]["labels"]
        labels.update({"batch.kubernetes.io/controller-uid": uid, "job-name": manifest["metadata"]["name"]})
    return stored


def planned(deployment_id: str, p: Pipeline | None = None, **fields: Any) -> list[dict[str, Any]]:
    return render_plan(p or four_stage_pipeline(), context(deployment_id, **fields)).stage_objects()


def test_two_deploys_of_the_same_commit_and_config_normalise_equal() -> None:
    first = planned("run-1", run_url="https://ci/1", actor="a")
    second = planned("run-2", run_url="https://ci/2", actor="b")

    for old, new in zip(first, second, strict=True):
        live = server_stored(old, uid="uid-old", version="17")
        admitted = server_stored(new, uid="uid-new", version="18")
        assert old != new or old["kind"] == "Service"  # the per-deploy stamps really differ
        assert diffing.normalise(live) == diffing.normalise(admitted), old["kind"]


def test_normalise_keeps_what_the_config_decides() -> None:
    (job,) = planned("run-1", pipeline("train", batch("train", retries=2)))
    normalised = diffing.normalise(server_stored(job, uid="u", version="1"))

    assert normalised["spec"]["backoffLimit"] == 2
    assert "name" not in normalised["metadata"] and "status" not in normalised
    assert (
        normalised["metadata"]["labels"][render.LABEL_COMMIT]
        == job["metadata"]["labels"][render.LABEL_COMMIT]
    )
    assert render.ANNOTATION_DEPLOYMENT_ID not in normalised["spec"]["template"]["metadata"]["annotations"]
    assert "selector" not in normalised["spec"]


def test_compare_object_states_and_the_diff_of_one_changed_field() -> None:
    deployment = planned("run-1")[2]
    assert deployment["kind"] == "Deployment"
    live = server_stored(deployment, uid="u", version="5")
    wanted = json.loads(json.dumps(deployment))
    wanted["spec"]["replicas"] = 3

    created = diffing.compare_object(deployment, None)
    unchanged = diffing.compare_object(server_stored(deployment, uid="u", version="6"), live)
    changed = diffing.compare_object(wanted, live)

    assert created.state is ObjectState.CREATED and created.diff.startswith(
        "--- /dev/null\n+++ deploy/Deployment/c\n"
    )
    assert unchanged.state is ObjectState.UNCHANGED and unchanged.notes == ("a deploy restarts its pods",)
    assert changed.state is ObjectState.CHANGED
    assert [line for line in changed.diff.splitlines() if line[:1] in "+-"][2:] == [
        "-  replicas: 1",
        "+  replicas: 3",
    ]


def test_a_job_is_compared_with_the_newest_job_of_its_stage() -> None:
    p = pipeline("train", batch("train"))
    jobs = [
        server_stored(planned(run, p)[0], uid=run, version=version)
        for run, version in (("run-1", "10"), ("run-3", "30"), ("run-2", "20"))
    ]
    (rendered,) = planned("run-4", p)

    newest = diffing.newest_job_of_stage(jobs, "train")
    compared = diffing.compare_job(rendered, newest)

    assert newest is not None and newest["metadata"]["uid"] == "run-3"
    assert diffing.newest_job_of_stage(jobs, "other") is None
    assert compared.state is ObjectState.UNCHANGED
    assert compared.previous == newest["metadata"]["name"]
    assert compared.notes == (f"would run again (compared with Job/{compared.previous})",)
    assert diffing.compare_job(rendered, None).state is ObjectState.CREATED


def encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_secret_keys_are_compared_by_value_and_no_value_reaches_any_output() -> None:
    live = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "demo", "uid": "u", "resourceVersion": "4"},
        "type": "Opaque",
        "data": {
            "KEPT": encoded("kept-value-1"),
            "ROTATED": encoded("old-value-22"),
            "GONE": encoded("gone-value-3"),
        },
    }
    desired = render.render_secret(
        "creds",
        {"ROTATED": "new-value-333", "NEW": "new-key-value-4"},
        kept_data={"KEPT": encoded("kept-value-1")},
        namespace="demo",
        group="g",
    )
    desired["metadata"]["labels"] = {}  # only the values differ

    secret = diffing.compare_secret(desired, live)

    assert secret.state is ObjectState.CHANGED
    assert dict(secret.keys) == {
        "GONE": KeyState.REMOVED,
        "KEPT": KeyState.UNCHANGED,
        "NEW": KeyState.ADDED,
        "ROTATED": KeyState.CHANGED,
    }
    diff = PipelineDiff("demo", "demo", "cluster x", (secret,))
    shown = diffing.format_diff_text(diff) + as_json(diff) + diffing.render_diff_summary(diff)
    for value in ("kept-value-1", "old-value-22", "gone-value-3", "new-value-333", "new-key-value-4"):
        assert value not in shown and encoded(value) not in shown


def test_pruned_services_are_deleted_and_old_jobs_are_only_noted() -> None:
    live = [server_stored(o, uid="u", version="1") for o in planned("run-1", pipeline("s", service("s")))]

    deleted, old_jobs = diffing.diff_pruned([("Deployment", "s"), ("Service", "s"), ("Job", "t-1")], live)

    assert [(obj.title, obj.state) for obj in deleted] == [
        ("Deployment/s", ObjectState.DELETED),
        ("Service/s", ObjectState.DELETED),
    ]
    assert deleted[1].diff.startswith("--- live/Service/s\n+++ /dev/null\n")
    assert old_jobs == ["Job/t-1"]


def test_the_text_format_has_a_header_per_object_and_the_counts_last() -> None:
    diff = PipelineDiff(
        "demo",
        "demo",
        "cluster https://k",
        (
            ObjectDiff(
                "Deployment",
                "c",
                ObjectState.CHANGED,
                "--- live/Deployment/c\n+++ deploy/Deployment/c\n",
                stage="c",
            ),
            ObjectDiff("Service", "c", ObjectState.UNCHANGED, "", stage="c"),
        ),
        old_jobs=("Job/a-1",),
    )

    assert diffing.format_diff_text(diff) == (
        "diff of demo against cluster https://k, namespace demo\n"
        "\n"
        "=== Deployment/c (stage c): changed\n"
        "--- live/Deployment/c\n"
        "+++ deploy/Deployment/c\n"
        "\n"
        "=== Service/c (stage c): unchanged\n"
        "\n"
        "a deploy also removes 1 older Job(s) beyond the 3 kept per stage: Job/a-1\n"
        "\n"
        "demo in demo: 0 created, 1 changed, 0 deleted, 1 unchanged"
    )
    assert json.loads(as_json(diff))["diff"][0] == {
        "kind": "Deployment",
        "name": "c",
        "state": "changed",
        "stage": "c",
        "notes": [],
        "diff": "--- live/Deployment/c\n+++ deploy/Deployment/c\n",
    }
    assert diff.changes == 1


def test_the_summary_puts_counts_first_and_shortens_diffs_to_fit_the_limit() -> None:
    long_diff = "".join(f"+line {n} {'x' * 60}\n" for n in range(2000))
    diff = PipelineDiff(
        "demo",
        "demo",
        "cluster https://k",
        tuple(ObjectDiff("Deployment", f"d{n}", ObjectState.CHANGED, long_diff) for n in range(5)),
    )

    whole = diffing.render_diff_summary(diff)
    fitted = diffing.render_diff_summary(diff, max_bytes=100_000)

    assert whole.splitlines()[2].startswith("**0 created · 5 changed · 0 deleted · 0 unchanged**")
    assert len(whole.encode()) > 100_000 >= len(fitted.encode())
    assert fitted.count("<details>") == fitted.count("</details>") == 5
    assert "more lines in the step log" in fitted and "Diffs were shortened to" in fitted


def test_redact_diff_reaches_every_text() -> None:
    diff = PipelineDiff(
        "demo",
        "demo",
        "cluster",
        (
            ObjectDiff(
                "Job", "a-1", ObjectState.CHANGED, "+  - --token=hunter2-secret\n", notes=("hunter2-secret",)
            ),
        ),
        notes=("about hunter2-secret",),
    )

    redacted = diffing.redact_diff(diff, Redactor(["hunter2-secret"]))

    assert "hunter2-secret" not in repr(redacted)
    assert redacted.objects[0].diff == "+  - --token=***\n"
