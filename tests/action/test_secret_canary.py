"""Secret canaries: known secret values appear nowhere a workflow run shows, except ``::add-mask::`` lines.

``::add-mask::`` is how GitHub learns what to hide, so each value must be announced there (before it
could ever be printed) and nowhere else: not in stdout, stderr, the outputs file or the job summary —
even when a failing stage prints a secret in its logs, raw or in any common encoding (URL, hex, base64,
base64url, JSON: ``testing/secret_encodings.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testing.action_runs import ActionRun, Runner
from testing.fake_k8s import Scenario
from testing.fake_k8s.cluster import FakeCluster
from testing.github_files import unescape_command_data
from testing.secret_encodings import secret_encodings

DB_PASSWORD = "canary-db-pw-7f3a9c2e51"
PEM_BODY = ("MIIEcanaryPEMlineONEq8w2e4r6t8y0u", "MIIEcanaryPEMlineTWOz1x3c5v7b9n1m")
TLS_KEY = "\n".join(("-----BEGIN PRIVATE KEY-----", *PEM_BODY, "-----END PRIVATE KEY-----"))
# A connection string every encoding changes ("@", "/", space, "+", "%", quotes, backslash, non-ASCII).
DB_URI = 'postgresql://mlflow:p@ss w/rd%+"q"\\É@db/canary-mlflow'
SECRETS = {"secrets": "db-credentials: DB_PASSWORD, TLS_KEY, DB_URI"}
SECRET_ENV = {"DB_PASSWORD": DB_PASSWORD, "TLS_KEY": TLS_KEY, "DB_URI": DB_URI}


def encoded_canaries() -> dict[str, str]:
    """Each distinct encoded form of the single-line values (those differing from the value itself)."""
    forms: dict[str, str] = {}
    for value in (DB_PASSWORD, DB_URI, *PEM_BODY):
        for name, text in secret_encodings(value).items():
            if text != value and text not in forms.values():
                forms[f"{name} #{len(forms)}"] = text
    return forms


MASK = "::add-mask::"


def canaries(fake: FakeCluster) -> list[str]:
    """Every value that must never be shown: the password, the PEM and each of its lines, the token."""
    assert len(fake.token) >= 16  # distinctive enough that a chance match is impossible
    return [DB_PASSWORD, DB_URI, TLS_KEY, *TLS_KEY.splitlines(), fake.token, *encoded_canaries().values()]


def assert_no_canary_leaks(run: ActionRun, fake: FakeCluster) -> None:
    mask_lines = [line for line in run.stdout.splitlines() if line.startswith(MASK)]
    other_stdout = "\n".join(line for line in run.stdout.splitlines() if not line.startswith(MASK))
    masked = {unescape_command_data(line.removeprefix(MASK)) for line in mask_lines}  # as the runner reads
    for value in canaries(fake):
        shown = {
            "stdout": other_stdout,
            "stderr": run.stderr,
            "outputs": run.outputs_text,
            "summary": run.summary,
        }
        for where, text in shown.items():
            assert value not in text, f"a secret value leaked into {where}"
    # Single-line values are masked whole; the multi-line one line by line (a mask cannot span lines).
    for value in (DB_PASSWORD, DB_URI, *TLS_KEY.splitlines(), fake.token):
        assert value in masked, "a secret value was not announced with ::add-mask::"
    # Masks come before anything else is printed.
    first_other = next(i for i, line in enumerate(run.stdout.splitlines()) if not line.startswith(MASK))
    assert first_other == len(mask_lines)


@pytest.mark.parametrize("fails", [False, True], ids=["success", "failure"])
def test_secret_values_appear_only_in_add_mask_lines(
    run_action: Runner, two_stage_workspace: Path, fake_cluster: FakeCluster, fails: bool
) -> None:
    if fails:
        fake_cluster.script(
            "Job",
            {"app.kubernetes.io/name": "train"},
            Scenario(
                behavior="fail",
                logs=[
                    f"connecting with password {DB_PASSWORD}",
                    f"key line: {PEM_BODY[0]}",
                    PEM_BODY[1],
                    f"Authorization: Bearer {fake_cluster.token}",
                    *(f"leaked as {name}: {text}" for name, text in encoded_canaries().items()),
                    "RuntimeError: cannot connect",
                ],
            ),
        )

    run = run_action(
        two_stage_workspace,
        {"kubeconfig": Path(fake_cluster.kubeconfig_path).read_text(), **SECRETS},
        SECRET_ENV,
    )

    assert run.returncode == (1 if fails else 0), run.stdout + run.stderr
    assert run.outputs["status"] == ("failed" if fails else "succeeded")
    if fails:
        # The log was shown (redacted), so the test really exercised the leak path.
        assert "RuntimeError: cannot connect" in run.summary
        assert "connecting with password" in run.summary and "connecting with password" in run.stdout
        for name in encoded_canaries():  # every encoded line was shown, redacted
            assert f"leaked as {name}: ***" in run.stdout and f"leaked as {name}: ***" in run.summary
    assert_no_canary_leaks(run, fake_cluster)
    # The values did reach the cluster: redaction hides them from people, not from the pipeline.
    secret = fake_cluster.get("Secret", "db-credentials", "two-stage")
    assert secret is not None and set(secret["data"]) == {"DB_PASSWORD", "TLS_KEY", "DB_URI"}


def test_secret_values_stay_hidden_when_the_input_is_invalid(
    run_action: Runner, two_stage_workspace: Path, fake_cluster: FakeCluster
) -> None:
    # An unset variable and a bad choice input: the error path must not echo the values either.
    run = run_action(
        two_stage_workspace,
        {"kubeconfig": Path(fake_cluster.kubeconfig_path).read_text(), **SECRETS, "command": DB_PASSWORD},
        SECRET_ENV,
    )

    assert run.returncode == 2, run.stdout + run.stderr
    assert_no_canary_leaks(run, fake_cluster)


@pytest.mark.parametrize(
    "debug_env",
    [{"RUNNER_DEBUG": "1"}, {"ACTIONS_STEP_DEBUG": "true"}, {}],
    ids=["RUNNER_DEBUG", "ACTIONS_STEP_DEBUG", "no-debug"],
)
def test_debug_lines_show_api_calls_and_decisions_without_a_secret_value(
    run_action: Runner, two_stage_workspace: Path, fake_cluster: FakeCluster, debug_env: dict[str, str]
) -> None:
    fake_cluster.script(
        "Job",
        {"app.kubernetes.io/name": "train"},
        Scenario(behavior="fail", logs=[f"connecting with password {DB_PASSWORD}", "RuntimeError: no"]),
    )

    run = run_action(
        two_stage_workspace,
        {"kubeconfig": Path(fake_cluster.kubeconfig_path).read_text(), **SECRETS},
        {**SECRET_ENV, **debug_env},
    )

    assert run.returncode == 1, run.stdout + run.stderr
    debug = [
        line.removeprefix("::debug::") for line in run.stdout.splitlines() if line.startswith("::debug::")
    ]
    if not debug_env:
        assert debug == []
        return
    # Every API call (the Secret's create too: its path and status, never its body) and the decisions.
    assert any(line.startswith("API create POST /api/v1/namespaces/two-stage/secrets 201 ") for line in debug)
    assert any(line.startswith("API watch GET /api/v1/namespaces/two-stage/pods 200 ") for line in debug)
    assert any(line.startswith("train: verdict failed (") for line in debug)
    assert_no_canary_leaks(run, fake_cluster)
