"""``bodywork-action diff`` through ``main(argv)`` against the fake API server, after a CLI deploy."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import jsonschema
import pytest

from bodywork_action.cli import main
from bodywork_action.result_document import read_schema
from testing.action_runs import TWO_STAGE_YAML
from testing.builders import COMMIT, REPOSITORY_URL
from testing.fake_k8s.cluster import FakeCluster

SECRET_ENV = {"DB_PASSWORD": "db-password-canary-0001", "TLS_KEY": "tls-key-canary-0002"}


def run(*argv: str, environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err, environ=environ or {})
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "train.py").write_text("print('training')\n")
    (root / "serve.py").write_text("print('serving')\n")
    config = root / "bodywork.yaml"
    config.write_text(TWO_STAGE_YAML)
    return config


def cluster_args(config: Path, fake: FakeCluster) -> list[str]:
    return [
        "-f",
        str(config),
        "--kubeconfig",
        str(fake.kubeconfig_path),
        "--repo",
        REPOSITORY_URL,
        "--commit",
        COMMIT,
    ]


SECRET_ARGS = ["--secret", "db-credentials=DB_PASSWORD,TLS_KEY"]


def deploy(config: Path, fake: FakeCluster) -> None:
    code, out, err = run("deploy", *cluster_args(config, fake), *SECRET_ARGS, environ=SECRET_ENV)
    assert code == 0, out + err


def test_after_a_deploy_the_diff_is_empty_and_exit_code_stays_0(
    project: Path, fake_cluster: FakeCluster
) -> None:
    deploy(project, fake_cluster)

    code, out, err = run(
        "diff", *cluster_args(project, fake_cluster), *SECRET_ARGS, "--exit-code", environ=SECRET_ENV
    )

    assert (code, err) == (0, ""), out + err
    assert out.splitlines()[-1] == "two-stage in two-stage: 0 created, 0 changed, 0 deleted, 4 unchanged"
    assert "\n--- " not in out and "\n+++ " not in out


def test_a_changed_cpu_request_is_the_one_change_and_exit_code_says_so(
    project: Path, fake_cluster: FakeCluster
) -> None:
    deploy(project, fake_cluster)
    text = project.read_text()
    project.write_text(
        text.replace(
            "cpu_request: 0.25\n    memory_request_mb: 100\n    service",
            "cpu_request: 1\n    memory_request_mb: 100\n    service",
        )
    )

    plain = run("diff", *cluster_args(project, fake_cluster), *SECRET_ARGS, environ=SECRET_ENV)
    strict = run(
        "diff", *cluster_args(project, fake_cluster), *SECRET_ARGS, "--exit-code", environ=SECRET_ENV
    )

    assert plain[0] == 0 and strict[0] == 1, plain[1] + plain[2]
    out = plain[1]
    assert [line for line in out.splitlines() if line.startswith(("+", "-"))] == [
        "--- live/Deployment/serve",
        "+++ deploy/Deployment/serve",
        "-            cpu: 250m",
        "+            cpu: '1'",
    ]
    assert "=== Deployment/serve (stage serve): changed, a deploy restarts its pods" in out.splitlines()
    assert out.splitlines()[-1] == "two-stage in two-stage: 0 created, 1 changed, 0 deleted, 3 unchanged"


def test_a_changed_secret_value_shows_the_key_as_changed_and_no_value(
    project: Path, fake_cluster: FakeCluster
) -> None:
    deploy(project, fake_cluster)
    rotated = {**SECRET_ENV, "TLS_KEY": "tls-key-rotated-canary-0003"}

    code, out, err = run("diff", *cluster_args(project, fake_cluster), *SECRET_ARGS, environ=rotated)

    assert (code, err) == (0, "")
    # The whole output, with only the server's port and the per-deployment Job names made generic.
    generic = re.sub(r"train-[0-9a-f]{10}", "train-ID", out.replace(fake_cluster.url, "SERVER"))
    assert generic == (
        "diff of two-stage against cluster SERVER, namespace two-stage\n"
        "\n"
        "=== Secret/db-credentials: changed\n"
        "    key DB_PASSWORD: unchanged\n"
        "    key TLS_KEY: changed\n"
        "\n"
        "=== Job/train-ID (stage train): unchanged, would run again (compared with Job/train-ID)\n"
        "\n"
        "=== Deployment/serve (stage serve): unchanged, a deploy restarts its pods\n"
        "\n"
        "=== Service/serve (stage serve): unchanged\n"
        "\n"
        "two-stage in two-stage: 0 created, 1 changed, 0 deleted, 3 unchanged\n"
    )
    for value in [*SECRET_ENV.values(), *rotated.values()]:
        assert value not in out


def test_json_is_one_document_of_the_result_schema_listing_every_object(
    project: Path, fake_cluster: FakeCluster
) -> None:
    code, out, err = run(
        "diff",
        *cluster_args(project, fake_cluster),
        *SECRET_ARGS,
        "--format",
        "json",
        "--exit-code",
        environ=SECRET_ENV,
    )

    assert code == 1, out + err
    document = json.loads(out)  # the whole of stdout; the rest, if anything, on stderr
    jsonschema.validate(document, read_schema())
    assert (document["command"], document["status"], document["exit_code"]) == ("diff", "changed", 1)
    assert (document["namespace"], document["pipeline"], document["changes"]) == ("two-stage", "two-stage", 5)
    listed = document["diff"]
    assert [(o["kind"], o["state"]) for o in listed] == [
        ("Namespace", "created"),
        ("Secret", "created"),
        ("Job", "created"),
        ("Deployment", "created"),
        ("Service", "created"),
    ]
    assert listed[1]["keys"] == {"DB_PASSWORD": "added", "TLS_KEY": "added"}
    assert listed[2]["previous"] == "" and listed[3]["diff"].startswith(
        "--- /dev/null\n+++ deploy/Deployment/serve\n"
    )
    assert SECRET_ENV["DB_PASSWORD"] not in out and fake_cluster.get("Namespace", "two-stage", None) is None


def test_json_of_a_diff_that_could_not_be_made_is_an_error_document(project: Path) -> None:
    code, out, err = run(
        "diff",
        "-f",
        str(project),
        "--repo",
        REPOSITORY_URL,
        "--commit",
        COMMIT,
        "--only",
        "nope",
        "--format=json",
    )

    document = json.loads(out)
    jsonschema.validate(document, read_schema())
    assert (code, document["command"], document["status"], document["exit_code"]) == (2, "diff", "error", 2)
    assert document["error"] == "--only: 'nope' is not a stage of the DAG 'train >> serve'"
    assert err == f"error: {document['error']}\n"


def test_an_invalid_config_exits_2_with_its_problems(project: Path, fake_cluster: FakeCluster) -> None:
    project.write_text(TWO_STAGE_YAML.replace("retries: 0", "retries: none"))

    code, out, err = run("diff", *cluster_args(project, fake_cluster))

    assert code == 2 and out == ""
    assert "stages.train.batch.retries" in err and "Traceback" not in err


def test_an_unreachable_cluster_is_one_line_and_exit_2(project: Path, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {token: t}}]\n"
    )

    code, out, err = run(
        "diff",
        "-f",
        str(project),
        "--kubeconfig",
        str(kubeconfig),
        "--repo",
        REPOSITORY_URL,
        "--commit",
        COMMIT,
    )

    assert code == 2 and out == "", err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
