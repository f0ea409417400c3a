"""Deploy-time overrides that change no file: the stages' image, image pull secrets, and extra
resources per stage (GPUs and other extended resources).

Pure. The CLI (``--image``, ``--image-pull-secret``, ``--resource``) and the action (inputs ``image``,
``image-pull-secrets``, ``resources``) parse their text here and ``apply_overrides`` turns a validated
``Pipeline`` into the one that is planned and deployed: ``docker_image`` replaced, each stage's
``extra_resources`` merged (an override wins over bodywork.yaml's ``extra_resources`` for the same
resource). Image pull secrets go into the ``DeployContext``; ``render.py`` puts them on every pod.

Resources, as Kubernetes takes them:

- an extended resource (a name with a prefix that is not ``kubernetes.io``, e.g. ``nvidia.com/gpu``)
  goes into both requests and limits with the same value: Kubernetes refuses an extended resource
  without a limit, or with a request that differs from it, and counts it in whole units only;
- ``cpu``, ``memory`` and ``ephemeral-storage`` go into requests only (as ``cpu_request`` and
  ``memory_request_mb`` do), replacing the file's request. bodywork.yaml's own ``extra_resources``
  may not name ``cpu`` or ``memory``: those are ``cpu_request`` and ``memory_request_mb``.

Quantities follow the Kubernetes quantity grammar (``1``, ``500m``, ``2Gi``, ``1e3``), checked with a
regex here because the core may not import the ``kubernetes`` client's parser.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

from bodywork_action.errors import InputError
from bodywork_action.model import Pipeline, ResourceOverride, Stage, StageName

# A Docker/OCI image reference: [registry[:port]/]path[:tag][@digest] (distribution/reference grammar,
# simplified to what matters: lower-case path components, a tag of at most 128 characters).
IMAGE_REFERENCE = re.compile(
    r"(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)
IMAGE_EXAMPLES = "e.g. python:3.11-slim, ghcr.io/org/img:tag or ghcr.io/org/img@sha256:<64 hex digits>"

# The Kubernetes quantity grammar without a sign (a negative amount is never valid here):
# <number><suffix>, suffix one of the binary SI (Ki … Ei), decimal SI (n u m "" k M G T P E) or e<int>.
QUANTITY_PATTERN = r"^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
_QUANTITY = re.compile(QUANTITY_PATTERN)
_SUFFIX_FACTORS = {
    **{f"{unit}i": Decimal(1024) ** power for power, unit in enumerate("KMGTPE", start=1)},
    **{unit: Decimal(10) ** (3 * power) for power, unit in enumerate("kMGTPE", start=1)},
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
}
# A resource name: an optional DNS-1123 subdomain prefix and '/', then a name of at most 63 characters.
RESOURCE_NAME_PATTERN = (
    r"^(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_RESOURCE_NAME = re.compile(RESOURCE_NAME_PATTERN)
REQUEST_ONLY_RESOURCES = ("cpu", "memory", "ephemeral-storage")
FILE_FIELD_FOR = {"cpu": "cpu_request", "memory": "memory_request_mb"}
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$")
DNS1123_SUBDOMAIN_MAX = 253


# --- checks (each returns why a value is refused, or "") -------------------------------------------


def image_problem(image: str) -> str:
    if IMAGE_REFERENCE.fullmatch(image):
        return ""
    return f"{image!r} is not a valid image reference ({IMAGE_EXAMPLES})"


def is_extended_resource(name: str) -> bool:
    """Prefixed and outside Kubernetes' own ``kubernetes.io`` domains (Kubernetes' IsExtendedResourceName)."""
    prefix, slash, _ = name.partition("/")
    return bool(slash) and not (prefix == "kubernetes.io" or prefix.endswith(".kubernetes.io"))


def parse_quantity(text: str) -> Decimal | None:
    """The amount ``text`` stands for, or None if it is not a Kubernetes quantity."""
    if not _QUANTITY.fullmatch(text):
        return None
    number = re.match(r"[0-9.]+", text)
    assert number is not None  # the grammar starts with a number
    digits, suffix = number.group(), text[number.end() :]
    if suffix in _SUFFIX_FACTORS:  # before the exponent: "1E" is an exa, "1Ei" an exbi
        return Decimal(digits) * _SUFFIX_FACTORS[suffix]
    return Decimal(digits) * Decimal(10) ** int(suffix[1:])  # e<int> or E<int>


def resource_name_problem(name: str, *, in_file: bool = False) -> str:
    if not _RESOURCE_NAME.fullmatch(name):
        return (
            f"{name!r} is not a valid resource name (an extended resource such as nvidia.com/gpu, "
            f"or one of {', '.join(REQUEST_ONLY_RESOURCES)})"
        )
    if in_file and name in FILE_FIELD_FOR:
        return f"{name!r} is set with the stage's {FILE_FIELD_FOR[name]}, not in extra_resources"
    if name in REQUEST_ONLY_RESOURCES or is_extended_resource(name):
        return ""
    if "/" in name:
        return f"{name!r} is in Kubernetes' own kubernetes.io domain: not a resource a stage can request"
    return (
        f"{name!r} is not a resource a stage can request: use an extended resource with its vendor's "
        f"prefix (e.g. nvidia.com/gpu) or one of {', '.join(REQUEST_ONLY_RESOURCES)}"
    )


def quantity_problem(name: str, quantity: str) -> str:
    amount = parse_quantity(quantity)
    if amount is None:
        return (
            f"{quantity!r} is not a Kubernetes quantity for {name} "
            "(a non-negative number with an optional suffix, e.g. 1, 500m, 2Gi)"
        )
    if is_extended_resource(name) and amount != amount.to_integral_value():
        return f"{name} is an extended resource: Kubernetes counts it in whole units, found {quantity!r}"
    return ""


def resource_problem(name: str, quantity: str, *, in_file: bool = False) -> str:
    return resource_name_problem(name, in_file=in_file) or quantity_problem(name, quantity)


def quantity_text(value: str | int) -> str:
    """A quantity as bodywork.yaml may write it (``1`` or ``"500m"``) as Kubernetes takes it."""
    return value if isinstance(value, str) else str(value)


# --- parsing the CLI's and the action's text --------------------------------------------------------


def parse_resource_override(text: str, *, source: str) -> ResourceOverride:
    """``STAGE:NAME=QUANTITY`` (the CLI) or ``stage: name=quantity`` (a line of the action's input).

    Split at the last ':' before the '=': resource names and quantities hold no ':'."""
    left, equals, quantity = text.partition("=")
    stage, colon, name = left.rpartition(":")
    stage, name, quantity = stage.strip(), name.strip(), quantity.strip()
    if not (equals and colon and stage and name and quantity):
        raise InputError(
            f"{source}: {text.strip()!r} must be STAGE:NAME=QUANTITY, e.g. train: nvidia.com/gpu=1"
        )
    problem = resource_problem(name, quantity)
    if problem:
        raise InputError(f"{source}: {problem}")
    return ResourceOverride(StageName(stage), name, quantity)


def parse_image_pull_secrets(texts: Iterable[str], *, source: str) -> tuple[str, ...]:
    """Secret names from repeated flags or a comma- or newline-separated input; duplicates dropped."""
    names: list[str] = []
    for text in texts:
        for part in re.split(r"[,\n]", text):
            name = part.strip()
            if not name:
                continue
            if len(name) > DNS1123_SUBDOMAIN_MAX or not _DNS1123_SUBDOMAIN.fullmatch(name):
                raise InputError(
                    f"{source}: {name!r} is not a valid Kubernetes secret name (at most "
                    f"{DNS1123_SUBDOMAIN_MAX} lower-case letters, digits, '-' and '.', starting and ending "
                    "with a letter or digit)"
                )
            if name not in names:
                names.append(name)
    return tuple(names)


def check_image(image: str, *, source: str) -> str:
    """``image`` stripped, or InputError naming ``source``; "" means no override."""
    image = image.strip()
    if image:
        problem = image_problem(image)
        if problem:
            raise InputError(f"{source}: {problem}")
    return image


# --- applying them ----------------------------------------------------------------------------------


def check_override_stages(pipeline: Pipeline, resources: Iterable[ResourceOverride]) -> None:
    """Every override names a stage of the pipeline; else an InputError with the closest name."""
    for override in resources:
        if override.stage not in pipeline.stages:
            close = difflib.get_close_matches(override.stage, list(pipeline.stages), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f" (stages: {', '.join(pipeline.stages)})"
            raise InputError(
                f"resource override {override.stage}:{override.name}={override.quantity}: "
                f"stage {override.stage!r} is not defined in bodywork.yaml{hint}"
            )


def stage_resources(stage: Stage, resources: Iterable[ResourceOverride]) -> tuple[tuple[str, str], ...]:
    """The stage's extra_resources with the overrides for it merged in (they win)."""
    merged = dict(stage.extra_resources)
    merged.update((o.name, o.quantity) for o in resources if o.stage == stage.name)
    return tuple(sorted(merged.items()))


def apply_overrides(
    pipeline: Pipeline, *, image: str = "", resources: Sequence[ResourceOverride] = ()
) -> Pipeline:
    """The pipeline as this deploy runs it: ``image`` (if any) for every stage, and every stage's
    extra resources merged with ``resources``. What is planned, deployed and shown (the plan table,
    the job summary) is this pipeline."""
    check_override_stages(pipeline, resources)
    if not image and not resources:
        return pipeline
    stages: Mapping[StageName, Stage] = {
        name: dataclasses.replace(stage, extra_resources=stage_resources(stage, resources))
        for name, stage in pipeline.stages.items()
    }
    return dataclasses.replace(pipeline, docker_image=image or pipeline.docker_image, stages=stages)


def format_stage_resources(stage: Stage) -> str:
    """``0.5 cpu, 100 MB, nvidia.com/gpu=1`` for tables: an override of cpu or memory shown in place of
    the file's request it replaces, then the other extra resources."""
    extra = dict(stage.extra_resources)
    cpu = extra.pop("cpu", f"{stage.cpu_request:g}")
    memory = extra.pop("memory", f"{stage.memory_request_mb} MB")
    return ", ".join([f"{cpu} cpu", memory, *(f"{name}={quantity}" for name, quantity in extra.items())])
