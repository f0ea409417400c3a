"""The inputs image, image-pull-secrets and resources: read once, checked, named in every message."""

from __future__ import annotations

import pytest

from bodywork_action.errors import InputError
from bodywork_action.github.inputs import read_action_inputs
from bodywork_action.model import ResourceOverride, StageName

DIGEST_IMAGE = "ghcr.io/owner/trainer@sha256:" + "ab" * 32


def test_the_override_inputs_are_read_into_typed_values() -> None:
    inputs = read_action_inputs(
        {
            "INPUT_IMAGE": f" {DIGEST_IMAGE} ",
            "INPUT_IMAGE-PULL-SECRETS": "ghcr-pull, regcred\nquay.internal\n",
            "INPUT_RESOURCES": "train: nvidia.com/gpu=1\n\n  serve: memory=2Gi  \n",
        }
    )
    assert inputs.image == DIGEST_IMAGE
    assert inputs.image_pull_secrets == ("ghcr-pull", "regcred", "quay.internal")
    assert inputs.resources == (
        ResourceOverride(StageName("train"), "nvidia.com/gpu", "1"),
        ResourceOverride(StageName("serve"), "memory", "2Gi"),
    )


def test_absent_override_inputs_change_nothing() -> None:
    inputs = read_action_inputs({"INPUT_IMAGE": "", "INPUT_RESOURCES": "", "INPUT_IMAGE-PULL-SECRETS": ""})
    assert (inputs.image, inputs.image_pull_secrets, inputs.resources) == ("", (), ())


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("IMAGE", "UPPER:case", "input 'image': 'UPPER:case' is not a valid image reference"),
        ("IMAGE", "a b", "input 'image': 'a b' is not a valid image reference"),
        (
            "IMAGE-PULL-SECRETS",
            "ok, Not_OK",
            "input 'image-pull-secrets': 'Not_OK' is not a valid Kubernetes",
        ),
        (
            "RESOURCES",
            "train nvidia.com/gpu=1",
            "input 'resources': 'train nvidia.com/gpu=1' must be STAGE:NAME",
        ),
        (
            "RESOURCES",
            "train: nvidia.com/gpu=1.5",
            "input 'resources': nvidia.com/gpu is an extended resource",
        ),
    ],
)
def test_a_bad_override_input_is_an_input_error_naming_it(name: str, value: str, message: str) -> None:
    with pytest.raises(InputError) as raised:
        read_action_inputs({f"INPUT_{name}": value})
    assert str(raised.value).startswith(message)
    assert raised.value.exit_code == 2
