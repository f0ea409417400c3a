"""The action's image: built from the unmodified Dockerfile, and run exactly as GitHub's runner runs it.

``python -m testing.image build`` builds it (starting the engine and any stand-in base image it needs)
and prints the image tag as its last line; ``python -m testing.image lock`` regenerates the hashed
requirement locks from pyproject.toml. Tests and bench/ use :func:`build_image` and
:func:`run_container_action`.

How the runner runs a container action (actions/runner, ContainerActionHandler + DockerCommandManager),
and what :func:`run_container_action` does the same way:

- ``docker build -t <label>:<guid> -f <action dir>/Dockerfile <action dir>`` (here with
  ``--network host``: the test engine has no bridge);
- ``docker run --rm --workdir /github/workspace`` with bind mounts of the runner's ``_github_home``,
  ``_github_workflow``, ``_runner_file_commands`` and the workspace at ``/github/home``,
  ``/github/workflow``, ``/github/file_commands`` and ``/github/workspace`` (all owned by the runner's
  user, uid 1001 on hosted runners), and the engine's socket at ``/var/run/docker.sock``;
- every input as ``INPUT_<NAME>`` (upper-cased, spaces to underscores, dashes kept), with action.yml's
  defaults for inputs the step doesn't set; ``HOME=/github/home``; the ``GITHUB_*``, ``RUNNER_*`` and
  ``CI`` variables, host paths under the mounts translated to container paths (RUNNER_TEMP is not
  mounted, so it stays a host path, as on GitHub);
- values are passed as ``-e NAME`` with the value in the docker client's environment, so no value
  appears on a command line;
- the network: GitHub's per-job bridge; here ``--network host``, so the container reaches a cluster on
  the host's loopback (the only network the tests may use).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from testing.images import STAND_IN_LABEL, Engine, docker_client, ensure_python_base_image

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
ACTION_YML = REPO_ROOT / "action.yml"
IMAGE_TAG = "bodywork-deploy-action:test"
RUNNER_UID = 1001
SHA = "0123456789abcdef0123456789abcdef01234567"


# -- the Dockerfile's base images -----------------------------------------------------------------------


def dockerfile_bases(dockerfile: Path = DOCKERFILE) -> list[str]:
    """The images the Dockerfile's FROM lines name (ARG defaults resolved, build stages left out)."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    bases: list[str] = []
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        instruction = words[0].upper()
        if instruction == "ARG" and len(words) > 1 and "=" in words[1] and not bases:
            name, _, default = words[1].partition("=")
            args[name] = default.strip("\"'")
        elif instruction == "FROM":
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), ""), words[1])
            if image not in stages and image not in bases:
                bases.append(image)
            if len(words) >= 4 and words[2].upper() == "AS":
                stages.add(words[3])
    return bases


def ensure_bases(engine: Engine, dockerfile: Path = DOCKERFILE) -> list[str]:
    """Make every base image the Dockerfile needs present: a real one is kept, else a stand-in is made."""
    for base in dockerfile_bases(dockerfile):
        present = engine.docker("image", "inspect", base, check=False).returncode == 0
        if present and engine.image_label(base, STAND_IN_LABEL) is None:
            continue  # a real (pulled) image
        if not base.startswith("python:"):
            raise RuntimeError(f"no stand-in recipe for base image {base!r} (only python:*)")
        ensure_python_base_image(base, engine)
    return dockerfile_bases(dockerfile)


@dataclass(frozen=True)
class Build:
    tag: str
    seconds: float
    log: str


def build_image(
    engine: Engine, tag: str = IMAGE_TAG, *, context: Path = REPO_ROOT, no_cache: bool = False
) -> Build:
    """``docker build`` of the unmodified Dockerfile, as the runner runs it (plus ``--network host``)."""
    ensure_bases(engine, context / "Dockerfile")
    command = ["build", "--network", "host", "-t", tag, "-f", str(context / "Dockerfile")]
    if no_cache:
        command.append("--no-cache")
    started = time.monotonic()
    completed = engine.docker(*command, str(context), check=False, timeout=1800)
    seconds = time.monotonic() - started
    log = completed.stdout + completed.stderr
    if completed.returncode != 0:
        raise RuntimeError(f"docker build failed ({completed.returncode}):\n{log[-5000:]}")
    return Build(tag, seconds, log)


def image_size(engine: Engine, image: str) -> int:
    return int(engine.docker("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())


# -- running it as the runner does ----------------------------------------------------------------------


def action_defaults() -> dict[str, str]:
    """action.yml's inputs with their defaults (an input without one gets the empty string)."""
    inputs = yaml.safe_load(ACTION_YML.read_text())["inputs"]
    return {name: str(spec.get("default", "")) for name, spec in inputs.items()}


def input_variable(name: str) -> str:
    return "INPUT_" + name.replace(" ", "_").upper()


@dataclass(frozen=True)
class ContainerRun:
    """What one run of the container left: exit code, streams, and the files the runner reads back."""

    returncode: int
    stdout: str
    stderr: str
    outputs_text: str
    summary: str
    seconds: float
    host_files: tuple[Path, ...] = field(default=())

    @property
    def outputs(self) -> dict[str, str]:
        from testing.github_files import parse_output_file  # one parser of GITHUB_OUTPUT for every tier

        return parse_output_file(self.outputs_text)

    def annotations(self, kind: str = "error") -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith(f"::{kind} ")]


class RunnerDirs:
    """The runner's host directories for one job: ``_temp`` with home, workflow and file commands."""

    def __init__(self, root: Path) -> None:
        self.temp = root / "_temp"
        self.home = self.temp / "_github_home"
        self.workflow = self.temp / "_github_workflow"
        self.file_commands = self.temp / "_runner_file_commands"
        for directory in (self.temp, self.home, self.workflow, self.file_commands):
            directory.mkdir(parents=True, exist_ok=True)
            os.chown(directory, RUNNER_UID, RUNNER_UID)
        event = self.workflow / "event.json"
        event.write_text('{"ref": "refs/heads/main", "repository": {"full_name": "owner/repo"}}\n')
        os.chown(event, RUNNER_UID, RUNNER_UID)

    def command_file(self, kind: str) -> tuple[Path, str]:
        """A fresh file-command file (``set_output_<guid>`` …), owned by the runner's user."""
        name = f"{kind}_{uuid.uuid4()}"
        path = self.file_commands / name
        path.touch()
        os.chown(path, RUNNER_UID, RUNNER_UID)
        return path, f"/github/file_commands/{name}"


def chown_tree(root: Path, uid: int = RUNNER_UID) -> None:
    """The checkout belongs to the runner's user, as actions/checkout leaves it."""
    for path in (root, *root.rglob("*")):
        os.chown(path, uid, uid, follow_symlinks=False)


def github_environment(workspace: str = "/github/workspace", **overrides: str) -> dict[str, str]:
    """The GITHUB_*/RUNNER_*/CI variables of a push to main on a hosted Linux runner."""
    environ = {
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_ACTION": "__self",
        "GITHUB_ACTION_PATH": "",
        "GITHUB_ACTION_REPOSITORY": "",
        "GITHUB_ACTOR": "octocat",
        "GITHUB_API_URL": "https://api.github.com",
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_EVENT_PATH": "/github/workflow/event.json",
        "GITHUB_GRAPHQL_URL": "https://api.github.com/graphql",
        "GITHUB_JOB": "deploy",
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_REF_NAME": "main",
        "GITHUB_REF_TYPE": "branch",
        "GITHUB_REPOSITORY": "owner/repo",
        "GITHUB_REPOSITORY_OWNER": "owner",
        "GITHUB_RETENTION_DAYS": "90",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_RUN_NUMBER": "7",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_SHA": SHA,
        "GITHUB_WORKFLOW": "Deploy",
        "GITHUB_WORKSPACE": workspace,
        "RUNNER_ARCH": "X64",
        "RUNNER_ENVIRONMENT": "github-hosted",
        "RUNNER_NAME": "GitHub Actions 2",
        "RUNNER_OS": "Linux",
        "RUNNER_TEMP": "/home/runner/work/_temp",
        "RUNNER_TOOL_CACHE": "/opt/hostedtoolcache",
    }
    environ.update(overrides)
    return environ


@dataclass(frozen=True)
class PreparedRun:
    """A ``docker run`` as the runner would issue it: argv, the client's environment, the host files."""

    argv: list[str]
    env: dict[str, str]
    output: Path
    summary: Path
    host_files: tuple[Path, ...]

    def finish(self, completed: subprocess.CompletedProcess[str], seconds: float) -> ContainerRun:
        return ContainerRun(
            returncode=completed.returncode,
            stdout=completed.stdout,
            stderr=completed.stderr,
            outputs_text=self.output.read_text(),
            summary=self.summary.read_text(),
            seconds=seconds,
            host_files=self.host_files,
        )


def prepare_container_action(
    engine: Engine,
    image: str,
    workspace: Path,
    dirs: RunnerDirs,
    inputs: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    github: Mapping[str, str] | None = None,
) -> PreparedRun:
    """The ``docker run`` for one step ``uses: ./`` with ``with: inputs`` and ``env: env``."""
    output_host, output_path = dirs.command_file("set_output")
    summary_host, summary_path = dirs.command_file("step_summary")
    env_host, env_path = dirs.command_file("set_env")
    path_host, path_path = dirs.command_file("add_path")
    state_host, state_path = dirs.command_file("save_state")
    variables: dict[str, str] = dict(env or {})
    step_inputs = {**action_defaults(), **(inputs or {})}
    variables.update({input_variable(name): value for name, value in step_inputs.items()})
    variables["HOME"] = "/github/home"
    variables.update(github_environment(**(github or {})))
    variables.update(
        GITHUB_OUTPUT=output_path,
        GITHUB_STEP_SUMMARY=summary_path,
        GITHUB_ENV=env_path,
        GITHUB_PATH=path_path,
        GITHUB_STATE=state_path,
    )
    socket = engine.host.removeprefix("unix://")
    argv = [
        docker_client(),
        "run",
        "--rm",
        "--name",
        uuid.uuid4().hex,
        "--label",
        "bodywork-action-test",
        "--workdir",
        "/github/workspace",
        "--network",
        "host",
        *(arg for name in sorted(variables) for arg in ("-e", name)),
        "-v",
        f"{socket}:/var/run/docker.sock",
        "-v",
        f"{dirs.home}:/github/home",
        "-v",
        f"{dirs.workflow}:/github/workflow",
        "-v",
        f"{dirs.file_commands}:/github/file_commands",
        "-v",
        f"{workspace}:/github/workspace",
        image,
    ]
    files = (output_host, summary_host, env_host, path_host, state_host)
    return PreparedRun(argv, {**engine.env, **variables}, output_host, summary_host, files)


def run_container_action(
    engine: Engine,
    image: str,
    workspace: Path,
    dirs: RunnerDirs,
    inputs: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    github: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> ContainerRun:
    """One step ``uses: ./`` with ``with: inputs`` and ``env: env``, run as the runner runs it."""
    prepared = prepare_container_action(engine, image, workspace, dirs, inputs, env, github=github)
    started = time.monotonic()
    completed = subprocess.run(
        prepared.argv, env=prepared.env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return prepared.finish(completed, time.monotonic() - started)


def docker_run(engine: Engine, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A plain ``docker run --rm --network host`` (for the CLI from the image)."""
    return engine.docker("run", "--rm", "--network", "host", *args, check=False, timeout=timeout)


def lock(python: str = "python3") -> Sequence[Path]:
    """Regenerate requirements/action.txt (from pyproject.toml) and requirements/build.txt, hashed."""
    common = ["--quiet", "--generate-hashes", "--strip-extras", "--no-emit-index-url", "--no-emit-find-links"]
    outputs = []
    for source, target, extra in (
        ("pyproject.toml", "requirements/action.txt", []),
        ("requirements/build.in", "requirements/build.txt", ["--allow-unsafe"]),
    ):
        subprocess.run(
            [python, "-m", "piptools", "compile", *common, *extra, "--output-file", target, source],
            cwd=REPO_ROOT,
            check=True,
        )
        outputs.append(REPO_ROOT / target)
    return outputs


def checkout(root: Path, files: dict[str, str] | None = None) -> Path:
    """A workspace owned by the runner's user, holding the repository's MLflow example (or ``files``)."""
    root.mkdir(parents=True)
    if files is None:
        for name in ("bodywork.yaml", "mlflow_server.py"):
            shutil.copy(REPO_ROOT / name, root / name)
    else:
        for name, text in files.items():
            (root / name).write_text(text)
    chown_tree(root)
    return root
