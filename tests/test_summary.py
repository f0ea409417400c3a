"""The job summary: whole-document snapshots, secret redaction, escaping and the 1 MiB budget.

Snapshots live in tests/snapshots/*.md and are compared whole. Regenerate them only on purpose:
``UPDATE_SNAPSHOTS=1 python -m pytest tests/test_summary.py``, then review the diff.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from bodywork_action.errors import ConfigProblem, Severity
from bodywork_action.model import StageKind, StageName
from bodywork_action.redact import Redactor
from bodywork_action.results import (
    DeploymentResult,
    DeploymentStatus,
    EventRecord,
    StageResult,
    StageStatus,
)
from bodywork_action.summary import (
    SummaryLinks,
    escape_mermaid_label,
    format_code_block,
    format_code_span,
    format_duration,
    render_failure_details,
    render_invalid_config_summary,
    render_one_line_invalid_config,
    render_one_line_summary,
    render_summary,
)

SNAPSHOTS = Path(__file__).parent / "snapshots"
T0 = 1_700_000_000.0
SHA = "3f786850e387550fdab836ed7e6dc881de23001b"
LINKS = SummaryLinks(
    repository="acme/churn-model",
    repository_url="https://github.com/acme/churn-model",
    commit_url=f"https://github.com/acme/churn-model/commit/{SHA}",
    run_url="https://github.com/acme/churn-model/actions/runs/42/attempts/1",
)
CANARY_PASSWORD = "canary-pg-password-91b2"
CANARY_AWS_SECRET = "canaryAWSsecretKEY/0123+abcdEXAMPLE"
CANARIES = (CANARY_PASSWORD, CANARY_AWS_SECRET)
REDACTOR = Redactor(CANARIES)


def assert_matches_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {path}; create it with UPDATE_SNAPSHOTS=1 and review it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs; UPDATE_SNAPSHOTS=1 regenerates it"


def _stage(name: str, kind: StageKind, **changes: object) -> StageResult:
    return StageResult(stage=StageName(name), kind=kind).evolve(**changes)


STEPS = ((StageName("prepare-data"),), (StageName("train"), StageName("mlflow")), (StageName("serve"),))


def success_result() -> DeploymentResult:
    stages = (
        _stage("prepare-data", StageKind.BATCH, status=StageStatus.SUCCEEDED, attempts=1, started_at=T0,
               finished_at=T0 + 41.2),
        _stage("train", StageKind.BATCH, status=StageStatus.SUCCEEDED, attempts=2, started_at=T0 + 42,
               finished_at=T0 + 230),
        _stage("mlflow", StageKind.SERVICE, status=StageStatus.SUCCEEDED, attempts=1, started_at=T0 + 42,
               finished_at=T0 + 80, url="http://mlflow.churn-model.svc.cluster.local:5000"),
        _stage("serve", StageKind.SERVICE, status=StageStatus.SUCCEEDED, attempts=1, started_at=T0 + 231,
               finished_at=T0 + 262.5, url="http://serve.churn-model.svc.cluster.local:8000"),
    )  # fmt: skip
    return DeploymentResult(
        pipeline="churn-model",
        namespace="churn-model",
        steps=STEPS,
        stages=stages,
        status=DeploymentStatus.SUCCEEDED,
        started_at=T0 - 3,
        finished_at=T0 + 263,
        commit=SHA,
        target="cluster https://127.0.0.1:6443",
    )


def failure_result() -> DeploymentResult:
    encoded_secret = base64.b64encode(CANARY_AWS_SECRET.encode()).decode()
    train_logs = {
        "pod/train-7f9c-abcde/stage": (
            *(f"epoch {i}: loss=0.{90 - i}" for i in range(60)),
            f"connecting to postgresql://mlflow:{CANARY_PASSWORD}@db:5432/mlflow",
            f"boto3 credentials: {encoded_secret}",
            "```",  # a fence in a log must not close our code block
            "::error::a workflow command printed by user code",
            "Traceback (most recent call last):",
            "KeyError: 'target'",
        )
    }
    stages = (
        _stage("prepare-data", StageKind.BATCH, status=StageStatus.SUCCEEDED, attempts=1, started_at=T0,
               finished_at=T0 + 41.2),
        _stage(
            "train", StageKind.BATCH, status=StageStatus.FAILED, attempts=3, started_at=T0 + 42,
            finished_at=T0 + 130, reason="BackoffLimitExceeded",
            message=f"Job has reached the specified backoff limit (password {CANARY_PASSWORD})",
            events=(
                EventRecord("BackOff", "Back-off restarting failed container", "Pod/train-7f9c", count=3),
                EventRecord("BackoffLimitExceeded", "Job reached the specified backoff limit", "Job/train"),
            ),
            logs=train_logs,
        ),
        _stage(
            "mlflow", StageKind.SERVICE, status=StageStatus.FAILED, attempts=1, started_at=T0 + 42,
            finished_at=T0 + 100, reason="CrashLoopBackOff", rolled_back=True,
            message="container exited with code 1 | restarting; rolled back to the previous revision, "
            "whose pods kept serving throughout",
            logs={"pod/mlflow-5d8-x1/stage": (f"Invalid URI postgresql://u:{CANARY_PASSWORD}@db",)},
        ),
        _stage("serve", StageKind.SERVICE, status=StageStatus.SKIPPED),
        _stage("notify", StageKind.BATCH, status=StageStatus.SUCCEEDED, attempts=1, started_at=T0 + 131,
               finished_at=T0 + 140, run_on_failure=True),
    )  # fmt: skip
    return DeploymentResult(
        pipeline="churn-model",
        namespace="churn-model",
        steps=STEPS,
        stages=stages,
        status=DeploymentStatus.FAILED,
        started_at=T0 - 3,
        finished_at=T0 + 141,
        commit=SHA,
        target="cluster https://127.0.0.1:6443",
        message="step 2 failed: train (BackoffLimitExceeded), mlflow (CrashLoopBackOff)",
    )


INVALID_PROBLEMS = (
    ConfigProblem(
        "bodywork.yaml", 3, 7, "pipeline.DAG", "stage 'trian' is not defined; did you mean 'train'?"
    ),
    ConfigProblem(
        "bodywork.yaml", 12, 5, "stages.train.batch.retries", 'expected an integer ≥ 0, found "two"'
    ),
    ConfigProblem("bodywork.yaml", 20, 3, "stages.serve.service.port", "expected 1..65535 | got 0"),
    ConfigProblem("bodywork.yaml", 1, 1, "", "unknown key `projct`", Severity.WARNING),
)


def assert_no_canary(text: str) -> None:
    for canary in CANARIES:
        assert canary not in text
        assert base64.b64encode(canary.encode()).decode() not in text


# ------------------------------------------------------------------------------------------ snapshots


def test_success_summary_snapshot() -> None:
    assert_matches_snapshot(
        "summary_success.md", render_summary(success_result(), redactor=REDACTOR, links=LINKS)
    )


def test_failure_summary_snapshot_with_secrets_redacted() -> None:
    text = render_summary(failure_result(), redactor=REDACTOR, links=LINKS)
    assert_no_canary(text)
    assert "postgresql://mlflow:***@db:5432/mlflow" in text
    assert_matches_snapshot("summary_failure.md", text)


def test_invalid_config_summary_snapshot() -> None:
    text = render_invalid_config_summary(INVALID_PROBLEMS, config_path="bodywork.yaml", redactor=REDACTOR)
    assert_matches_snapshot("summary_invalid_config.md", text)


# ------------------------------------------------------------------------------------------- content


def test_failure_summary_explains_each_failed_stage_in_a_collapsed_section() -> None:
    text = render_summary(failure_result(), redactor=REDACTOR, links=LINKS)
    assert text.count("<details>") == 2
    assert "<summary>❌ <code>train</code>: BackoffLimitExceeded</summary>" in text
    assert "KeyError: 'target'" in text
    assert "epoch 59" in text and "epoch 0:" not in text  # only the tail of the log
    assert "rolled back" in text


def test_log_fence_cannot_be_closed_by_backticks_in_the_log() -> None:
    text = render_summary(failure_result(), redactor=REDACTOR, links=LINKS)
    assert "````text\n" in text  # the log contains ``` so the fence is four backticks


def test_mermaid_dag_links_every_stage_of_a_step_to_the_next_and_colours_by_status() -> None:
    text = render_summary(failure_result(), redactor=REDACTOR, links=LINKS)
    mermaid = text.split("```mermaid\n", 1)[1].split("\n```", 1)[0]
    assert mermaid.startswith("flowchart LR")
    assert '  s2_1["train"]:::failed' in mermaid
    assert '  s3_1["serve"]:::skipped' in mermaid
    assert {"  s1_1 --> s2_1", "  s1_1 --> s2_2", "  s2_1 --> s3_1", "  s2_2 --> s3_1"} <= set(
        mermaid.split("\n")
    )
    assert "  s2_1 -.-> f1" in mermaid
    for status in ("succeeded", "failed", "skipped"):
        assert f"  classDef {status} " in mermaid
    assert "classDef running" not in mermaid  # only the classes in use


def test_commit_is_linked_and_table_has_every_stage() -> None:
    text = render_summary(success_result(), redactor=REDACTOR, links=LINKS)
    assert f"[`3f78685`](https://github.com/acme/churn-model/commit/{SHA})" in text
    table = [line for line in text.splitlines() if line.startswith("| `")]
    assert [line.split("|")[1].strip() for line in table] == [
        "`prepare-data`",
        "`train`",
        "`mlflow`",
        "`serve`",
    ]


def test_summary_over_budget_trims_logs_first_and_says_so() -> None:
    result = failure_result()
    log_lines = 50
    big_logs = {"pod/train/stage": tuple(f"line {i} " + "x" * 300 for i in range(log_lines))}
    train = result.stage("train").evolve(logs=big_logs)
    result = DeploymentResult(**{**result.__dict__, "stages": (result.stages[0], train, *result.stages[2:])})
    full = render_summary(result, redactor=REDACTOR)
    budget = len(full.encode()) - 5000
    trimmed = render_summary(result, redactor=REDACTOR, max_bytes=budget)
    assert len(trimmed.encode()) <= budget
    assert "Logs were trimmed to the last" in trimmed
    assert f"line {log_lines - 1} " in trimmed  # the newest lines are kept
    assert "<summary>❌ <code>train</code>" in trimmed  # the explanation itself survives


def test_summary_that_cannot_fit_is_cut_with_a_warning() -> None:
    text = render_summary(failure_result(), redactor=REDACTOR, max_bytes=600)
    assert len(text.encode()) <= 600
    assert "Summary cut at GitHub's 1 MiB limit" in text


def test_one_line_summaries() -> None:
    line = render_one_line_summary(failure_result(), redactor=REDACTOR)
    assert "\n" not in line
    assert line.startswith("churn-model: failed in 144.0s (1/4 stages succeeded")
    assert render_one_line_invalid_config(INVALID_PROBLEMS, config_path="bodywork.yaml") == (
        "bodywork.yaml: invalid (3 errors); nothing was deployed"
    )


def test_hostile_stage_names_are_escaped_everywhere() -> None:
    name = StageName('x"]; click x call evil()`|<b>')
    stage = _stage(name, StageKind.BATCH, status=StageStatus.FAILED, reason="<script>", message="a|b")
    result = DeploymentResult(
        pipeline="p", namespace="ns", steps=((name,),), stages=(stage,), status=DeploymentStatus.FAILED,
        started_at=T0, finished_at=T0 + 1,
    )  # fmt: skip
    text = render_summary(result, redactor=REDACTOR)
    mermaid = text.split("```mermaid\n", 1)[1].split("\n```", 1)[0]
    label = re.search(r'\["(.*)"\]', mermaid)
    assert label is not None
    assert not set('"[]`<>|') & set(label.group(1))
    assert f"| {format_code_span(name)} | batch |" in text  # in a code span, <b> shows as text
    assert text.count("<b>") == 1  # ... and nowhere else: the details summary HTML-escapes it
    assert "<script>" not in text
    assert "&lt;script&gt;" in text


# ------------------------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("seconds", "shown"), [(None, "–"), (0.04, "0.0s"), (59.94, "59.9s"), (61, "1m 01s"), (3725, "1h 02m")]
)
def test_format_duration(seconds: float | None, shown: str) -> None:
    assert format_duration(seconds) == shown


def test_code_span_survives_backticks_and_pipes() -> None:
    assert format_code_span("plain") == "`plain`"
    assert format_code_span("a`b") == "``a`b``"
    assert format_code_span("`x`") == "`` `x` ``"
    assert format_code_span("a|b") == "`a\\|b`"


def test_code_block_fence_is_longer_than_any_fence_inside() -> None:
    assert format_code_block("x") == "```text\nx\n```"
    assert format_code_block("`````\n") == "``````text\n`````\n``````"


def test_mermaid_label_escapes_everything_unusual() -> None:
    assert escape_mermaid_label("train_v2-a.b c") == "train_v2-a.b c"
    assert escape_mermaid_label('a"b') == "a#34;b"
    assert escape_mermaid_label("<x>") == "#60;x#62;"


def test_routine_normal_events_are_folded_behind_the_warnings_and_empty_logs_dropped() -> None:
    stage = StageResult(
        stage="train",
        kind=StageKind.BATCH,
        status=StageStatus.FAILED,
        reason="BackoffLimitExceeded",
        events=(
            EventRecord("Scheduled", "assigned to node-1", "Pod/train-1", type="Normal"),
            EventRecord("Pulled", "image present", "Pod/train-1", type="Normal"),
            EventRecord("BackoffLimitExceeded", "Job has reached the specified backoff limit", "Job/train"),
        ),
        logs={"train-1/git-sync": (), "train-1/stage": ("boom",)},
    )
    details = render_failure_details(stage, tail_lines=10, max_events=10, redactor=Redactor())
    rows = [line for line in details.splitlines() if line.startswith("| ")]
    assert rows[1:] == [
        "| Warning | BackoffLimitExceeded | Job/train | 1 | Job has reached the specified backoff limit |"
    ]
    assert "_2 routine Normal events not shown (Scheduled, Pulled)._" in details
    assert "git-sync" not in details and "`train-1/stage`" in details


def test_the_api_server_address_is_not_published_but_a_local_target_is() -> None:
    cluster = replace(success_result(), target="cluster https://10.1.2.3:6443")
    assert "10.1.2.3" not in render_summary(cluster, redactor=Redactor(), links=SummaryLinks())
    local = replace(success_result(), target="local")
    assert "| Target | local |" in render_summary(local, redactor=Redactor(), links=SummaryLinks())


def test_an_atomic_deploy_lists_what_it_rolled_back_and_says_loudly_what_it_could_not() -> None:
    base = failure_result()
    left = f"Deployment/serve left at this deploy's revision ({CANARY_PASSWORD})"
    stages = tuple(
        replace(s, rollback_removed=True)
        if s.stage == "mlflow"
        else replace(s, status=StageStatus.SUCCEEDED, rollback_error=left)
        if s.stage == "serve"
        else s
        for s in base.stages
    )
    result = replace(base, stages=stages, atomic=True)
    document = render_summary(result, redactor=Redactor([CANARY_PASSWORD]))
    assert "- Rolled back \\(atomic\\): mlflow \\(removed: new in this deploy\\)\n" in document
    caution = "> [!CAUTION]\n> NOT rolled back \\(atomic rollback failed\\): serve: Deployment/serve left at"
    assert caution in document
    assert "- Batch stages that ran are not undone: prepare-data, train\n" in document
    assert CANARY_PASSWORD not in document
    assert "ATOMIC ROLLBACK INCOMPLETE" in result.one_line()
    assert "atomic" not in render_summary(base, redactor=Redactor()).lower()
