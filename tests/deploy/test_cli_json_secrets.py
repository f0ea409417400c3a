"""No secret value in anything ``--format json`` prints, on stdout (the document) or stderr (progress,
the table, why a stage failed), for deploy, diff, status and logs, through ``main(argv)`` against the
fake API server, with a failing stage that prints the values it was given."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

from bodywork_action.cli import main
from testing.action_runs import TWO_STAGE_YAML
from testing.builders import COMMIT, REPOSITORY_URL
from testing.fake_k8s.cluster import FakeCluster

ENVIRON = {"DB_PASSWORD": "json-password-canary-0007", "TLS_KEY": "json-key-canary-0008"}


def run(fake: FakeCluster, config: Path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    cluster = ["-f", str(config), "--kubeconfig", str(fake.kubeconfig_path)]
    code = main([*argv, *cluster], out=out, err=err, environ=ENVIRON)
    return code, out.getvalue(), err.getvalue()


def test_a_failing_stage_that_prints_its_secrets_leaks_none_through_json_commands(
    tmp_path: Path, fake_cluster: FakeCluster
) -> None:
    config = tmp_path / "bodywork.yaml"
    config.write_text(TWO_STAGE_YAML)
    leaked = [
        f"connecting with {ENVIRON['DB_PASSWORD']}",
        f"key={base64.b64encode(ENVIRON['TLS_KEY'].encode()).decode()}",
    ]
    fake_cluster.script(
        "Job", {"app.kubernetes.io/name": "train"}, {"behavior": "fail", "logs": leaked, "exit_code": 3}
    )
    context = ["--repo", REPOSITORY_URL, "--commit", COMMIT]
    secret = ["--secret", "db-credentials=DB_PASSWORD,TLS_KEY"]

    code, document, progress = run(fake_cluster, config, "deploy", *context, *secret, "--format", "json")
    shown = [document, progress]
    shown += run(fake_cluster, config, "diff", *context, *secret, "--format", "json")[1:]
    shown += run(fake_cluster, config, "status", "--format", "json")[1:]
    logs = run(fake_cluster, config, "logs", "train")[1]

    assert (code, json.loads(document)["status"]) == (1, "failed")
    assert "connecting with" in progress and "connecting with" in logs  # the lines are shown...
    for text in [*shown, logs]:
        for value in ENVIRON.values():
            assert value not in text  # ... without the values, in any encoding the redactor knows
            assert base64.b64encode(value.encode()).decode() not in text
