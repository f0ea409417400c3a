"""--image, --image-pull-secret and --resource through ``main(argv)``: every rendering command takes
them, plan shows them, and a bad value is one message with exit code 2 (no cluster needed)."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from bodywork_action.cli import build_parser, main

COMMIT = "0123456789abcdef0123456789abcdef01234567"
DIGEST_IMAGE = "ghcr.io/owner/trainer@sha256:" + "ab" * 32
PIPELINE = """\
version: "1.1"
pipeline:
  name: gpu-demo
  docker_image: python:3.11-slim
  DAG: train >> serve
stages:
  train:
    executable_module_path: train.py
    cpu_request: 0.5
    memory_request_mb: 100
    extra_resources:
      nvidia.com/gpu: 1
    batch: {max_completion_time_seconds: 60, retries: 0}
  serve:
    executable_module_path: serve.py
    cpu_request: 0.5
    memory_request_mb: 100
    service: {max_startup_time_seconds: 60, replicas: 1, port: 8000, ingress: false}
logging:
  log_level: INFO
"""
CONTEXT_FLAGS = ("--repo", "https://github.com/owner/repo", "--commit", COMMIT)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "bodywork.yaml"
    path.write_text(PIPELINE)
    return path


def run(*argv: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv], out=out, err=err, environ={})
    return code, out.getvalue(), err.getvalue()


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_that_renders_takes_the_override_flags() -> None:
    rendering = {name for name, sub in subcommands().items() if "--commit" in sub._option_string_actions}
    rendering -= {"run"}  # run --local runs on this machine: no image, no pods
    assert {"plan", "deploy"} <= rendering
    for name in rendering:
        options = subcommands()[name]._option_string_actions
        assert {"--image", "--image-pull-secret", "--resource"} <= set(options), name


def test_plan_shows_the_image_and_the_resources_as_deployed(config: Path) -> None:
    code, out, err = run(
        "plan", "-f", config, "--image", DIGEST_IMAGE, "--resource", "train:nvidia.com/gpu=2",
        "--resource", "serve: memory=2Gi",
    )  # fmt: skip
    assert code == 0, err
    assert f"image      {DIGEST_IMAGE}" in out
    train_row = next(line for line in out.splitlines() if line.startswith("1 "))
    serve_row = next(line for line in out.splitlines() if line.startswith("2 "))
    assert "0.5 cpu, 100 MB, nvidia.com/gpu=2" in train_row  # the flag wins over bodywork.yaml's 1
    assert "0.5 cpu, 2Gi  " in serve_row  # the override, in place of memory_request_mb's 100 MB


def test_plan_yaml_puts_pull_secrets_and_gpu_limits_on_the_pods(config: Path) -> None:
    code, out, err = run(
        "plan", "-f", config, "-o", "yaml", *CONTEXT_FLAGS, "--image", DIGEST_IMAGE,
        "--image-pull-secret", "ghcr-pull", "--image-pull-secret", "regcred,ghcr-pull",
    )  # fmt: skip
    assert code == 0, err
    assert out.count("imagePullSecrets:\n      - name: ghcr-pull\n      - name: regcred\n") == 2
    assert out.count(f"image: {DIGEST_IMAGE}") == 2
    assert "limits:\n            nvidia.com/gpu: '1'" in out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--image", "UPPER:case"), "error: --image: 'UPPER:case' is not a valid image reference"),
        (("--image", "a b"), "error: --image: 'a b' is not a valid image reference"),
        (("--image-pull-secret", "Reg_Cred"), "error: --image-pull-secret: 'Reg_Cred' is not a valid"),
        (("--resource", "train=1"), "error: --resource: 'train=1' must be STAGE:NAME=QUANTITY"),
        (("--resource", "train:nvidia.com/gpu=0.5"), "counts it in whole units"),
        (
            ("--resource", "trian:nvidia.com/gpu=1"),
            "error: resource override trian:nvidia.com/gpu=1: stage 'trian' is not defined in "
            "bodywork.yaml; did you mean 'train'?",
        ),
    ],
)
@pytest.mark.parametrize("output", ["table", "yaml"])
def test_a_bad_override_is_one_line_and_exit_2(
    config: Path, flags: tuple[str, ...], message: str, output: str
) -> None:
    code, out, err = run("plan", "-f", config, "-o", output, *CONTEXT_FLAGS, *flags)
    assert code == 2
    assert out == ""
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_deploy_checks_the_overrides_before_it_looks_for_a_cluster(config: Path, tmp_path: Path) -> None:
    code, _, err = run(
        "deploy", "-f", config, *CONTEXT_FLAGS, "--kubeconfig", tmp_path / "none", "--image", "UPPER:case"
    )
    assert code == 2
    assert err.startswith("error: --image: 'UPPER:case'")
