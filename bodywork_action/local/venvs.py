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
import threading
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
# pip prints nothing while it unpacks and installs (a minute for MLflow on 2 shared cores): after this
# long without a line, say it is still at work, and for how long.
PROGRESS_TICK_SECONDS = 10.0
NAMES_SHOWN = 5  # of "Installing collected packages: ..." (MLflow brings about a hundred)


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
    run_logged(venv_cmd, log_file=log_file, progress=progress, what="python -m venv", environ=environ)
    if not requirements:
        return
    python = _venv_python(env_dir)
    pip = [sys.executable, "-m", "pip", "--python", str(python)] if own_pip else [str(python), "-m", "pip"]
    install = [*pip, "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    run_logged(
        [*install, *requirements], log_file=log_file, progress=progress, what="pip install", environ=environ
    )


def _open_private(path: str, flags: int) -> int:
    """``open``'s opener for logs: created 0600 (pip may print index URLs that carry credentials)."""
    return os.open(path, flags, 0o600)


def condense_pip_line(line: str) -> str | None:
    """The line to show for one line of pip's output, shortened (a hundred package names are one
    line), or None for a line only the log file keeps."""
    text = line.strip()
    if not text.startswith(_PROGRESS_PREFIXES):
        return None
    if text.startswith("Installing collected packages: "):
        label, names = "Installing collected packages", text.partition(": ")[2].split(", ")
    elif text.startswith("Successfully installed "):
        label, names = "Successfully installed", text.split()[2:]
    else:
        return text
    if len(names) <= NAMES_SHOWN:
        return text
    first = ", ".join(names[:NAMES_SHOWN])
    return f"{label} {first} and {len(names) - NAMES_SHOWN} more ({len(names)} packages)"


class _Ticker:
    """Says "still at work" after each ``seconds`` without a progress line, until stopped."""

    def __init__(self, what: str, progress: Callable[[str], None], seconds: float) -> None:
        self._what, self._progress, self._seconds = what, progress, seconds
        self._started = time.monotonic()
        self._last_shown = ""
        self._news = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pip-ticker", daemon=True)

    def __enter__(self) -> _Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._news.set()
        self._thread.join()

    def show(self, text: str) -> None:
        self._last_shown = text
        self._news.set()
        self._progress(text)

    def _run(self) -> None:
        while not self._stopped.is_set():
            if self._news.wait(self._seconds):
                self._news.clear()
                continue
            elapsed = time.monotonic() - self._started
            after = f" (after: {self._last_shown})" if self._last_shown else ""
            self._progress(f"{self._what}: still at work, {elapsed:.0f}s so far{after}")


def run_logged(
    cmd: Sequence[str],
    *,
    log_file: Path,
    progress: Callable[[str], None],
    what: str,
    environ: Mapping[str, str],
    tick_seconds: float = PROGRESS_TICK_SECONDS,
) -> None:
    """Run ``cmd`` with its output in ``log_file``; its telling lines, condensed, go to ``progress``,
    and every ``tick_seconds`` without one a line says it is still at work. Raises EnvBuildFailed."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    tail: list[str] = []
    with open(log_file, "a", encoding="utf-8", opener=_open_private) as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        env = {**environ, "PIP_NO_INPUT": "1", "PYTHONUNBUFFERED": "1"}
        with (
            subprocess.Popen(
                list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            ) as process,
            _Ticker(what, progress, tick_seconds) as ticker,
        ):
            assert process.stdout is not None
            for raw in process.stdout:
                line = raw.decode("utf-8", "replace").rstrip()
                log.write(line + "\n")
                tail = [*tail[-(PIP_TAIL_LINES - 1) :], line]
                shown = condense_pip_line(line)
                if shown is not None:
                    ticker.show(shown)
            code = process.wait()
    if code != 0:
        quoted = "\n".join(f"    {line}" for line in tail)
        raise EnvBuildFailed(f"{what} failed (exit code {code}); full output in {log_file}:\n{quoted}")
