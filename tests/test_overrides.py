"""Deploy-time overrides: the image, image pull secrets and extra resources (GPUs) per stage.

Pure: parsing the CLI's and the action's text, merging into the pipeline, rendering the pod, and
bodywork.yaml's ``extra_resources`` key with each problem at its line and column.
"""

from __future__ import annotations

import json
import os
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from bodywork_action import overrides, render
from bodywork_action.config import validate_config
from bodywork_action.errors import InputError
from bodywork_action.model import DEFAULT_GIT_SYNC_IMAGE, Pipeline, ResourceOverride, StageName
from bodywork_action.plan import render_plan
from testing.builders import batch, context, pipeline, service

DIGEST_IMAGE = "ghcr.io/owner/repo@sha256:" + "ab" * 32
GPU = "nvidia.com/gpu"


def gpu_pipeline() -> Pipeline:
    return pipeline(
        "train >> serve",
        batch("train", extra_resources=((GPU, "1"),)),
        service("serve"),
    )


def override(text: str) -> ResourceOverride:
    return overrides.parse_resource_override(text, source="--resource")


# --- parsing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train:nvidia.com/gpu=1", ResourceOverride(StageName("train"), GPU, "1")),
        ("train: nvidia.com/gpu=2", ResourceOverride(StageName("train"), GPU, "2")),
        ("  serve : memory = 2Gi ", ResourceOverride(StageName("serve"), "memory", "2Gi")),
        ("a:b:cpu=500m", ResourceOverride(StageName("a:b"), "cpu", "500m")),  # the last ':' splits
        ("s:ephemeral-storage=1e3", ResourceOverride(StageName("s"), "ephemeral-storage", "1e3")),
    ],
)
def test_a_resource_override_is_stage_name_and_quantity(text: str, expected: ResourceOverride) -> None:
    assert override(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train=1", "'train=1' must be STAGE:NAME=QUANTITY"),
        ("train:nvidia.com/gpu", "must be STAGE:NAME=QUANTITY"),
        (":nvidia.com/gpu=1", "must be STAGE:NAME=QUANTITY"),
        ("train:gpu=1", "'gpu' is not a resource a stage can request"),
        ("train:kubernetes.io/gpu=1", "in Kubernetes' own kubernetes.io domain"),
        (
            "train:nvidia.com/gpu=0.5",
            "nvidia.com/gpu is an extended resource: Kubernetes counts it in whole units",
        ),
        ("train:nvidia.com/gpu=-1", "'-1' is not a Kubernetes quantity"),
        ("train:memory=2GB", "'2GB' is not a Kubernetes quantity"),
        ("train:bad name!=1", "'bad name!' is not a valid resource name"),
    ],
)
def test_a_bad_resource_override_is_one_message_naming_the_flag(text: str, message: str) -> None:
    with pytest.raises(InputError) as raised:
        override(text)
    assert str(raised.value).startswith("--resource: ")
    assert message in str(raised.value)
    assert raised.value.exit_code == 2


@pytest.mark.parametrize(
    "quantity", ["1", "0", "500m", "2Gi", "1.5", ".5", "1e3", "1E-2", "128974848", "129M", "10u", "1Ei"]
)
def test_the_kubernetes_quantity_grammar_is_accepted(quantity: str) -> None:
    assert overrides.parse_quantity(quantity) is not None


@pytest.mark.parametrize("quantity", ["", "-1", "+-1", "1.2.3", "2GB", "1ki", "Gi", "1 Gi", "e3", "0x10"])
def test_what_is_not_a_quantity_is_refused(quantity: str) -> None:
    assert overrides.parse_quantity(quantity) is None


def test_quantities_are_read_as_their_amount() -> None:
    assert overrides.parse_quantity("2Gi") == 2 * 1024**3
    assert overrides.parse_quantity("500m") == overrides.parse_quantity("0.5")
    assert overrides.parse_quantity("1k") == overrides.parse_quantity("1e3") == 1000


def test_image_pull_secrets_from_flags_commas_and_lines_keep_order_without_duplicates() -> None:
    names = overrides.parse_image_pull_secrets(["regcred", "ghcr, quay\n regcred\n\n"], source="x")
    assert names == ("regcred", "ghcr", "quay")


@pytest.mark.parametrize("name", ["Regcred", "reg_cred", "-regcred", "a" * 254, "reg cred"])
def test_an_image_pull_secret_must_be_a_dns_1123_subdomain(name: str) -> None:
    with pytest.raises(
        InputError, match=r"^input 'image-pull-secrets': .* is not a valid Kubernetes secret name"
    ):
        overrides.parse_image_pull_secrets([name], source="input 'image-pull-secrets'")


@pytest.mark.parametrize("image", ["UPPER:case", "a b", "ghcr.io/o/r@sha256:short", "repo:", ":tag"])
def test_an_invalid_image_reference_is_one_message(image: str) -> None:
    with pytest.raises(InputError, match=r"^--image: .* is not a valid image reference"):
        overrides.check_image(image, source="--image")


@pytest.mark.parametrize("image", [DIGEST_IMAGE, "python:3.11-slim", "localhost:5000/team/img:v1", ""])
def test_valid_image_references_pass(image: str) -> None:
    assert overrides.check_image(f" {image} ", source="--image") == image


# --- applying and rendering -------------------------------------------------------------------------


def test_overrides_replace_the_image_and_win_over_the_files_extra_resources() -> None:
    original = gpu_pipeline()
    changed = overrides.apply_overrides(
        original,
        image=DIGEST_IMAGE,
        resources=[override("train:nvidia.com/gpu=4"), override("serve:memory=2Gi")],
    )
    assert changed.docker_image == DIGEST_IMAGE
    assert changed.stages[StageName("train")].extra_resources == ((GPU, "4"),)
    assert changed.stages[StageName("serve")].extra_resources == (("memory", "2Gi"),)
    assert original.stages[StageName("train")].extra_resources == ((GPU, "1"),)


def test_an_override_for_an_unknown_stage_says_which_stage_was_meant() -> None:
    with pytest.raises(InputError) as raised:
        overrides.apply_overrides(gpu_pipeline(), resources=[override("trian:nvidia.com/gpu=1")])
    assert str(raised.value) == (
        "resource override trian:nvidia.com/gpu=1: stage 'trian' is not defined in bodywork.yaml; "
        "did you mean 'train'?"
    )
    assert raised.value.exit_code == 2


def test_a_gpu_goes_into_requests_and_limits_and_cpu_memory_into_requests_only() -> None:
    deploy = context(resource_overrides=(override("serve:nvidia.com/gpu=2"), override("serve:memory=2Gi")))
    plan = render_plan(gpu_pipeline(), deploy)
    job = plan.for_stage(StageName("train")).require("Job")
    deployment = plan.for_stage(StageName("serve")).require("Deployment")
    job_resources = job["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert job_resources == {
        "requests": {"cpu": "250m", "memory": "100M", GPU: "1"},
        "limits": {GPU: "1"},
    }
    serve_resources = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert serve_resources == {
        "requests": {"cpu": "250m", "memory": "2Gi", GPU: "2"},
        "limits": {GPU: "2"},
    }


def test_a_stage_without_extra_resources_renders_no_limits() -> None:
    job = render.render_job(batch("plain"), pipeline("plain", batch("plain")), context())
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "250m", "memory": "100M"}
    }
    assert "imagePullSecrets" not in job["spec"]["template"]["spec"]


def test_the_image_and_pull_secrets_are_on_every_pod_template() -> None:
    deploy = context(image=DIGEST_IMAGE, image_pull_secrets=("regcred", "ghcr"))
    plan = render_plan(gpu_pipeline(), deploy)
    templates = [
        plan.for_stage(StageName("train")).require("Job")["spec"]["template"]["spec"],
        plan.for_stage(StageName("serve")).require("Deployment")["spec"]["template"]["spec"],
    ]
    for pod in templates:
        assert pod["imagePullSecrets"] == [{"name": "regcred"}, {"name": "ghcr"}]
        stage_container = next(c for c in pod["containers"] if c["name"] == render.STAGE_CONTAINER)
        assert stage_container["image"] == DIGEST_IMAGE
        assert pod["initContainers"][0]["image"] == DEFAULT_GIT_SYNC_IMAGE  # the clone is not the stage
    assert plan.pipeline.docker_image == DIGEST_IMAGE  # what the plan table and the summary show


# --- bodywork.yaml's extra_resources ----------------------------------------------------------------

HEADER = """\
version: "1.1"
pipeline:
  name: gpu-demo
  docker_image: python:3.11-slim
  DAG: train
stages:
  train:
    executable_module_path: train.py
    cpu_request: 0.5
    memory_request_mb: 100
    batch: {max_completion_time_seconds: 60, retries: 0}
"""
FOOTER = """\
logging:
  log_level: INFO
"""


def config_with(resources_yaml: str) -> bytes:
    return (HEADER + "    extra_resources:\n" + resources_yaml + FOOTER).encode()


def test_extra_resources_in_bodywork_yaml_reach_the_stage_as_quantity_text() -> None:
    outcome = validate_config(
        config_with("      nvidia.com/gpu: 1\n      ephemeral-storage: 2Gi\n"), strict=True
    )
    assert outcome.pipeline is not None, outcome.problems
    assert outcome.problems == ()
    stage = outcome.pipeline.stages[StageName("train")]
    assert stage.extra_resources == (("ephemeral-storage", "2Gi"), (GPU, "1"))


@pytest.mark.parametrize(
    ("entry", "line", "column", "message"),
    [
        ("nvidia.com/gpu: 0.5", 13, 23, "expected a string or a whole number, found the number 0.5"),
        (
            'amd.com/gpu: "1.5"',
            13,
            20,
            "amd.com/gpu is an extended resource: Kubernetes counts it in whole units",
        ),
        ("example.com/fpga: lots", 13, 25, "'lots' is not a Kubernetes quantity for example.com/fpga"),
        ("cpu: 2", 13, 7, "'cpu' is set with the stage's cpu_request, not in extra_resources"),
        ("memory: 1Gi", 13, 7, "'memory' is set with the stage's memory_request_mb"),
        ("kubernetes.io/foo: 1", 13, 7, "in Kubernetes' own kubernetes.io domain"),
        ('"bad name!": 1', 13, 7, "'bad name!' is not a valid resource name"),
        ("widgets: 1", 13, 7, "'widgets' is not a resource a stage can request"),
        ("nvidia.com/gpu: -1", 13, 23, "must be ≥ 0, found -1"),
        ("nvidia.com/gpu: true", 13, 23, "expected a string or a whole number, found the boolean true"),
    ],
)
def test_a_bad_extra_resource_is_reported_at_its_line_and_column(
    entry: str, line: int, column: int, message: str
) -> None:
    outcome = validate_config(config_with(f"      {entry}\n"))
    assert outcome.pipeline is None
    [problem] = outcome.errors
    assert (problem.line, problem.column) == (line, column), problem
    assert problem.path.startswith("stages.train.extra_resources")
    assert message in problem.message


def test_the_shipped_schema_and_the_checks_use_the_same_patterns() -> None:
    text = resources.files("bodywork_action").joinpath("bodywork.schema.json").read_text("utf-8")
    extra = json.loads(text)["$defs"]["stage"]["properties"]["extra_resources"]
    assert extra["propertyNames"]["pattern"] == overrides.RESOURCE_NAME_PATTERN
    assert extra["additionalProperties"]["pattern"] == overrides.QUANTITY_PATTERN


def test_bodywork_3_0_itself_accepts_a_file_with_extra_resources(tmp_path: Path) -> None:
    """Bodywork 3.0 validates with unknown keys allowed: the extension key is accepted there, unused.
    Needs a virtual environment with bodywork==3.0.12 (BODYWORK_30_VENV, as bench/bench_deploy.py)."""
    venv = os.environ.get("BODYWORK_30_VENV", "")
    bodywork = Path(venv, "bin", "bodywork")
    if not venv or not bodywork.exists():
        pytest.skip("no Bodywork 3.0.12 virtual environment (set BODYWORK_30_VENV)")
    (tmp_path / "bodywork.yaml").write_bytes(
        config_with("      nvidia.com/gpu: 1\n      ephemeral-storage: 2Gi\n")
    )
    (tmp_path / "train.py").write_text("")
    closed = "http://127.0.0.1:9"  # its usage-statistics ping, if any, goes nowhere
    checked = subprocess.run(
        [str(bodywork), "validate"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "http_proxy": closed, "HTTP_PROXY": closed, "https_proxy": closed},
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "bodywork.yaml is a valid Bodywork config file" in checked.stdout
