"""Per-stage virtual environments for local runs, cached by a hash of the interpreter and the requirements.

Shell module (processes, files). The cache follows pre-commit's ``repository.py``: an environment is
built in place under a per-key lock, a marker file written to a staging name and renamed into place
says it is complete, and a directory without the marker (a crash, a Ctrl+C) is removed and rebuilt.
The directory itself is not built elsewhere and renamed: a venv is not relocatable (its console
scripts' shebangs name its own path), so a renamed one would break ``jupyter`` and friends.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bodywork_action.errors import EXIT_DEPLOYMENT_FAILED, BodyworkActionError

MARKER_NAME = ".bodywork-env.json"
ENV_FORMAT_VERSION = 1  # bump to invalidate every cached environment after a layout change
NOTEBOOK_REQUIREMENTS = ("nbconvert", "ipykernel")  # `.ipynb` stages run with `python -m nbconvert --execute`
PIP_TAIL_LINES = 20  # pip output quoted in the error when an install fails

# pip lines worth showing while an install runs; the full output goes to the log file.
_PROGRESS_PREFIXES = ("Collecting", "Downloading", "Installing collected", "Successfully", "ERROR")


class EnvBuildFailed(BodyworkActionError):
    """pip (or venv) failed for a stage's requirements; nothing of the pipeline was started."""

    exit_code = EXIT_DEPLOYMENT_FAILED


@dataclass(frozen=True)
class StageEnv:
    python: Path  # the interpreter stages run with
    key: str  # cache key ("" for --reuse-env)
    path: Path | None  # the venv directory (None for --reuse-env)
    built: bool  # True when this call built it, False on a cache hit or --reuse-env

    @property
    def bin_dir(self) -> Path | None:
        return None if self.path is None else self.python.parent


def build_env_requirements(requirements: Sequence[str], *, notebook: bool) -> tuple[str, ...]:
    wanted = [r.strip() for r in requirements if r.strip()]
    if notebook:
        wanted += NOTEBOOK_REQUIREMENTS
    return tuple(sorted(dict.fromkeys(wanted)))


def build_env_key(python_identity: str, requirements: Sequence[str]) -> str:
    """A stable name for an environment: same interpreter + same requirement set → same key."""
    payload = json.dumps(
        {"format": ENV_FORMAT_VERSION, "python": python_identity, "requirements": sorted(set(requirements))},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def read_python_identity() -> str:
    """The running interpreter, as far as a venv built from it depends on it."""
    return f"{sys.implementation.name}-{sys.version}-{os.path.realpath(sys.base_prefix)}"


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    if environ.get("BODYWORK_ACTION_CACHE_DIR"):
        return Path(environ["BODYWORK_ACTION_CACHE_DIR"]) / "venvs"
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bodywork-action" / "venvs"


def _venv_python(env_dir: Path) -> Path:
    return env_dir / "bin" / "python"


def _is_complete(env_dir: Path) -> bool:
    # The marker says the install finished; the interpreter check catches a removed base Python.
    python = _venv_python(env_dir)
    return (env_dir / MARKER_NAME).is_file() and python.exists() and python.resolve().exists()


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """An exclusive lock across processes and threads (two parallel stages may share an environment)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def _clean_path_on_failure(path: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:  # Ctrl+C too: a half-built environment must not survive
        shutil.rmtree(path, ignore_errors=True)
        raise


def _write_marker(env_dir: Path, requirements: Sequence[str]) -> None:
    staging = env_dir / f"{MARKER_NAME}.staging"
    staging.write_text(
        json.dumps({"python": sys.version, "requirements": list(requirements), "created_at": time.time()})
    )
    os.replace(staging, env_dir / MARKER_NAME)  # atomic: the marker is either absent or complete


def ensure_stage_env(
    requirements: Sequence[str],
    *,
    cache_dir: Path,
    log_file: Path,
    progress: Callable[[str], None],
    environ: Mapping[str, str] | None = None,
) -> StageEnv:
    """The cached environment for ``requirements``, built first if needed (pip output → ``log_file``)."""
    key = build_env_key(read_python_identity(), requirements)
    env_dir = cache_dir / key
    with _locked(cache_dir / f"{key}.lock"):
        if _is_complete(env_dir):
            progress(f"environment {key}: cached ({len(requirements)} requirement(s))")
            return StageEnv(python=_venv_python(env_dir), key=key, path=env_dir, built=False)
        if env_dir.exists():
            progress(f"environment {key}: removing an incomplete build")
            shutil.rmtree(env_dir)
        progress(f"environment {key}: building ({len(requirements)} requirement(s), log {log_file})")
        with _clean_path_on_failure(env_dir):
            _create_venv(
                env_dir,
                requirements,
                log_file=log_file,
                progress=progress,
                environ=os.environ if environ is None else environ,
            )
            _write_marker(env_dir, requirements)
        progress(f"environment {key}: ready")
    return StageEnv(python=_venv_python(env_dir), key=key, path=env_dir, built=True)


def _create_venv(
    env_dir: Path,
    requirements: Sequence[str],
    *,
    log_file: Path,
    progress: Callable[[str], None],
    environ: Mapping[str, str],
) -> None:
    # Without its own pip a venv takes ~0.3 s instead of ~6 s; the running pip installs into it
    # (``pip --python``, pip >= 22.3). Without a usable pip here, fall back to ensurepip.
    own_pip = importlib.util.find_spec("pip") is not None
    venv_cmd = [sys.executable, "-m", "venv", *(["--without-pip"] if own_pip else []), str(env_dir)]
    _run_logged(venv_cmd, log_file=log_file, progress=progress, what="python -m venv", environ=environ)
    if not requirements:
        return
    python = _venv_python(env_dir)
    pip = [sys.executable, "-m", "pip", "--python", str(python)] if own_pip else [str(python), "-m", "pip"]
    install = [*pip, "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    _run_logged(
        [*install, *requirements], log_file=log_file, progress=progress, what="pip install", environ=environ
    )


def _open_private(path: str, flags: int) -> int:
    """``open``'s opener for logs: created 0600 (pip may print index URLs that carry credentials)."""
    return os.open(path, flags, 0o600)


def _run_logged(
    cmd: Sequence[str],
    *,
    log_file: Path,
    progress: Callable[[str], None],
    what: str,
    environ: Mapping[str, str],
) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    tail: list[str] = []
    with open(log_file, "a", encoding="utf-8", opener=_open_private) as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        env = {**environ, "PIP_NO_INPUT": "1", "PYTHONUNBUFFERED": "1"}
        with subprocess.Popen(
            list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        ) as process:
            assert process.stdout is not None
            for raw in process.stdout:
                line = raw.decode("utf-8", "replace").rstrip()
                log.write(line + "\n")
                tail = [*tail[-(PIP_TAIL_LINES - 1) :], line]
                if line.lstrip().startswith(_PROGRESS_PREFIXES):
                    progress(line.strip())
            code = process.wait()
    if code != 0:
        quoted = "\n".join(f"    {line}" for line in tail)
        raise EnvBuildFailed(f"{what} failed (exit code {code}); full output in {log_file}:\n{quoted}")
