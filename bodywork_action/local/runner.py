"""The local backend: ``bodywork-action run --local`` runs the whole DAG on this machine, no cluster.

Shell module (processes, sockets, files, signals). The executor walks the DAG exactly as for a cluster
deploy; this module only says how one stage runs here:

- each stage runs under its own supervisor (``supervise.py``: a session and process group of its own, a
  child subreaper that ends everything the stage started when the stage's process exits), from the
  working tree, or from a commit checked out into a temporary ``git worktree``, in a cached per-stage
  venv (``venvs.py``); the run itself is a child subreaper too (Linux), and when it ends it kills every
  process that still carries one of its stages' ``BODYWORK_LOCAL_RUN`` tokens, wherever it is;
- batch stages run to completion, retried ``retries`` times; ``max_completion_time_seconds`` (per attempt,
  as Bodywork's in-container timeout; 0 = none) kills the whole group;
- service stages stay up; they are ready when their port accepts connections (and the smoke-test path
  answers 2xx) within ``max_startup_time_seconds``; a taken port is an error before anything starts,
  services sharing a port are moved to free ones (``ports.py``);
- output is streamed with a stage-name prefix and kept in ``.bodywork/runs/<id>/<stage>.log`` (redacted;
  the run directory 0700, its files 0600; a detached service's supervisor redacts its log itself);
- Ctrl+C / SIGTERM stops every stage's tree (SIGTERM, then SIGKILL after a grace period); a second one
  kills them at once, even while the first is still waiting; ``--detach`` leaves services running and
  records them in ``.bodywork/services.json`` for ``stop --local``, which ends their trees the same way.

POSIX only (process groups, ``fcntl``).
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import os
import secrets as random_tokens
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from bodywork_action.deadline import Deadline
from bodywork_action.errors import InputError
from bodywork_action.executor import Progress, ProgressKind, execute, start_in_thread
from bodywork_action.interruptible import wait_for
from bodywork_action.local.ports import (
    LOCAL_HOST,
    PortPlan,
    assign_service_ports,
    check_port_free,
    describe_moved_port,
    find_hard_coded_ports,
    format_port_table,
)
from bodywork_action.local.secrets import build_stage_environ, format_unsupplied_warning, parse_env_file
from bodywork_action.local.supervise import (
    TOKEN_VARIABLE,
    end_by_token,
    is_child_subreaper,
    kill_tree,
    set_child_subreaper,
    supervisor_command,
)
from bodywork_action.local.venvs import StageEnv, build_env_requirements, default_cache_dir, ensure_stage_env
from bodywork_action.model import Pipeline, Stage, StageName
from bodywork_action.redact import Redactor
from bodywork_action.results import (
    LOCAL_TARGET,
    DeploymentResult,
    DeploymentStatus,
    StageResult,
    StageStatus,
)
from bodywork_action.secret_groups import (
    SecretRequest,
    SecretSupply,
    Surface,
    build_secret_supply,
    find_unsupplied_keys,
)
from bodywork_action.selection import EVERY_STAGE, StageSelection

GRACE_SECONDS = (
    5.0  # between SIGTERM and SIGKILL, as Kubernetes' terminationGracePeriodSeconds (30) but shorter
)
LOG_TAIL_LINES = 40  # last lines of a stage's output kept in its result (shown for failures)
READY_BACKOFF_FIRST_SECONDS = 0.05
READY_BACKOFF_MAX_SECONDS = 1.0
SMOKE_TEST_TIMEOUT_SECONDS = 5.0
STATE_DIR_NAME = ".bodywork"
SERVICES_FILE_NAME = "services.json"
PRIVATE_FILE_MODE = 0o600  # logs may hold what a stage printed: only the user reads them
PRIVATE_DIR_MODE = 0o700
TARGET = LOCAL_TARGET
STOP_MARGIN_SECONDS = 5.0  # stop --local: beyond the supervisor's own grace period, before SIGKILL


# Services a --detach run left running, when that run's process lives on (tests, embedding): kept
# referenced so Popen does not warn that they still run, and reaped by stop_local so no zombie remains.
_DETACHED: dict[int, subprocess.Popen[bytes]] = {}


class LocalRunInvalid(InputError):
    """The pipeline cannot run locally as given (missing module, bad commit, nbconvert missing)."""


# --- output -------------------------------------------------------------------------------------


class _Console:
    """Serialises lines from concurrent stages onto one stream; every line is redacted first."""

    def __init__(self, out: IO[str], redactor: Redactor, width: int) -> None:
        self._out = out
        self._redactor = redactor
        self._width = width
        self._lock = threading.Lock()

    @property
    def redactor(self) -> Redactor:
        return self._redactor

    def stage_line(self, stage: str, text: str) -> None:
        self.write(f"{stage:<{self._width}} | {text}")

    def write(self, text: str) -> None:
        with self._lock:
            self._out.write(self._redactor.redact(text) + "\n")
            self._out.flush()


# --- processes ----------------------------------------------------------------------------------


@dataclass(eq=False)  # identity: list membership must not compare fields
class _Running:
    """One started stage: its supervisor process (the leader of its own session and process group)."""

    stage: Stage
    process: subprocess.Popen[bytes]
    log_path: Path
    token: str  # BODYWORK_LOCAL_RUN of every process of this start
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_TAIL_LINES))
    pump: threading.Thread | None = None
    stopping: bool = False  # we asked it to stop: its exit is not news

    @property
    def pgid(self) -> int:
        return self.process.pid  # start_new_session: the leader's pid is the group id


def describe_exit(code: int | None) -> str:
    """``exited with code 1``, or ``was killed by SIGKILL`` for a process a signal ended (code < 0)."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _kill_all(running: _Running) -> None:
    """SIGKILL the stage's whole tree: whatever is below its supervisor, then the supervisor's group."""
    if running.process.returncode is None:
        kill_tree(running.process.pid, include_root=False)
    _signal_group(running.pgid, signal.SIGKILL)


def _open_private(path: Path) -> int:
    """A file descriptor appending to ``path``, created 0600 (an existing file is made 0600 too)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)
    os.fchmod(fd, PRIVATE_FILE_MODE)
    return fd


def redact_file(path: Path, redactor: Redactor) -> None:
    """Rewrite ``path`` (a text file a stage wrote, e.g. an executed notebook: JSON, whose escaped forms
    the redactor knows) with every secret form replaced, private (0600); a missing file is left alone."""
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return
    staging = path.with_name(f".{path.name}.redacted")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with open(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(redactor.redact(text))
    os.replace(staging, path)


def _read_log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        with open(path, "rb") as handle:
            return [line.decode("utf-8", "replace").rstrip() for line in deque(handle, maxlen=lines)]
    except OSError:
        return []


def _answers_smoke_test(port: int, path: str, timeout_seconds: float) -> tuple[bool, str]:
    connection = http.client.HTTPConnection(LOCAL_HOST, port, timeout=max(0.1, timeout_seconds))
    try:
        connection.request("GET", path if path.startswith("/") else f"/{path}")
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return False, f"GET {path}: {type(exc).__name__}"
    finally:
        connection.close()
    return 200 <= status < 300, f"GET {path} answered {status}"


# --- the backend --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RunSettings:
    source_dir: Path  # the directory holding bodywork.yaml (working tree or worktree)
    run_dir: Path  # .bodywork/runs/<id>
    namespace: str
    commit_short: str
    smoke_tests: Mapping[str, str]  # stage name -> path
    detach: bool
    grace_seconds: float
    ports: PortPlan  # where each service listens here, and what moved services wanted


class LocalBackend:
    """Runs stages as local process groups; implements the executor's ``Backend`` protocol."""

    target = TARGET

    def __init__(
        self,
        settings: _RunSettings,
        *,
        envs: Mapping[StageName, StageEnv],
        supply: SecretSupply,
        environ: Mapping[str, str],
        console: _Console,
    ) -> None:
        self._settings = settings
        self._envs = envs
        self._supply = supply
        self._environ = environ
        self._console = console
        self._lock = threading.Lock()
        self._running: list[_Running] = []
        self._services: list[_Running] = []
        self._interrupts = 0
        self.cancel = threading.Event()
        self.services_done = threading.Event()  # set when every ready service has exited (or on interrupt)

    # The Backend protocol ---------------------------------------------------------------------

    def start_stage(self, stage: Stage, *, cancel: threading.Event) -> Future[StageResult]:
        # A local stage is a process, waited on by a thread of its own (few stages run locally).
        return start_in_thread(functools.partial(self._run_stage, stage, cancel), name=f"stage-{stage.name}")

    def _run_stage(self, stage: Stage, cancel: threading.Event) -> StageResult:
        started = StageResult(
            stage=stage.name, kind=stage.kind, status=StageStatus.RUNNING, started_at=time.time()
        )
        if stage.batch is not None:
            result = self._run_batch(stage, started, cancel)
        else:
            result = self._run_service(stage, started, cancel)
        return result.evolve(finished_at=time.time())

    def rollback_stage(self, stage: Stage, result: StageResult, *, atomic: bool = False) -> StageResult:
        return result  # no earlier revision runs locally: the failed process is already stopped

    def finish(self, pipeline: Pipeline, result: DeploymentResult) -> DeploymentResult:
        return result  # what to keep running is decided by run_local once execute() returns

    # Control ----------------------------------------------------------------------------------

    def interrupt(self) -> None:
        """Ctrl+C / SIGTERM: cancel, SIGTERM every group, SIGKILL after the grace period (or at once)."""
        self._interrupts += 1
        self.cancel.set()
        self.services_done.set()
        with self._lock:
            running = [r for r in self._running if r.process.returncode is None]
        hard = self._interrupts > 1
        for item in running:
            item.stopping = True
            if hard:
                _kill_all(item)
            else:
                _signal_group(item.pgid, signal.SIGTERM)
        if not hard and running:
            threading.Thread(target=self._kill_after_grace, args=(running,), daemon=True).start()

    def stop_all(self) -> None:
        """Stop every process still running and wait for them (SIGTERM, SIGKILL after the grace period)."""
        with self._lock:
            running = list(self._running)
        for item in running:
            item.stopping = True
            if item.process.returncode is None:
                _signal_group(item.pgid, signal.SIGTERM)
        self._kill_after_grace(running)
        for item in running:
            self._reap(item)

    @property
    def running_services(self) -> list[_Running]:
        with self._lock:
            return [s for s in self._services if s.process.poll() is None]

    def _kill_after_grace(self, running: Sequence[_Running]) -> None:
        deadline = time.monotonic() + self._settings.grace_seconds
        for item in running:
            try:
                item.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_all(item)
                item.process.wait()
            _signal_group(item.pgid, signal.SIGKILL)  # members that outlived their leader

    # Starting ---------------------------------------------------------------------------------

    def _command(self, stage: Stage) -> tuple[list[str], Path]:
        python = str(self._envs[stage.name].python)
        module = (self._settings.source_dir / stage.executable_module_path).resolve()
        if stage.is_notebook:
            # nbconvert writes the executed copy next to the run's logs, never into the working tree.
            return [
                python,
                "-m",
                "nbconvert",
                "--to",
                "notebook",
                "--execute",
                module.name,
                "--output-dir",
                str(self._settings.run_dir),
                "--output",
                f"{stage.k8s_name}.ipynb",
                "--ExecutePreprocessor.timeout=-1",  # Bodywork set none; our own time limit applies
            ], module.parent
        return [python, module.name, *stage.args], module.parent

    def _stage_environ(self, stage: Stage, token: str) -> dict[str, str]:
        env = self._envs[stage.name]
        inherited = dict(self._environ)
        extra: dict[str, str] = {"GIT_COMMIT_HASH": self._settings.commit_short, "PYTHONUNBUFFERED": "1"}
        source = str(self._settings.source_dir)
        if env.path is None:  # --reuse-env: keep what the current environment relies on
            extra["PYTHONPATH"] = os.pathsep.join(p for p in (source, inherited.get("PYTHONPATH")) if p)
        else:  # as Bodywork: the project root is the import path, nothing of the caller's leaks in
            inherited.pop("PYTHONHOME", None)
            extra["PYTHONPATH"] = source
            extra["VIRTUAL_ENV"] = str(env.path)
            extra["PATH"] = os.pathsep.join(p for p in (str(env.bin_dir), inherited.get("PATH")) if p)
        extra[TOKEN_VARIABLE] = token
        if stage.service is not None:
            extra["BODYWORK_STAGE"] = stage.k8s_name
            extra["BODYWORK_NAMESPACE"] = self._settings.namespace
            extra["BODYWORK_SERVICE_PORT"] = str(stage.service.port)
        return build_stage_environ(inherited, stage=stage, supply=self._supply, extra=extra)

    def _start(self, stage: Stage, *, attempt: int, to_file: bool) -> _Running:
        """Start the stage under its supervisor (a session of its own); output goes through a pump
        thread, or (detached) to its log, redacted by the supervisor: a pipe would die with this process."""
        command, cwd = self._command(stage)
        token = f"{self._settings.run_dir.name}:{stage.name}:{attempt}"
        log_path = self._settings.run_dir / f"{stage.name}.log"
        log = _open_private(log_path)
        try:
            os.write(
                log, f"--- attempt {attempt} at {time.strftime('%H:%M:%S')}: {' '.join(command)}\n".encode()
            )
            process = subprocess.Popen(
                supervisor_command(command, grace_seconds=self._settings.grace_seconds, redact=to_file),
                cwd=cwd,
                env=self._stage_environ(stage, token),
                stdin=subprocess.PIPE if to_file else subprocess.DEVNULL,
                stdout=log if to_file else subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            os.close(log)
        if process.stdin is not None:  # the values to hide, on a pipe: never in argv or the environment
            with contextlib.suppress(BrokenPipeError), process.stdin:
                process.stdin.write(json.dumps(list(self._supply.all_values())).encode())
        running = _Running(stage=stage, process=process, log_path=log_path, token=token)
        if not to_file:
            running.pump = threading.Thread(
                target=self._pump, args=(running,), name=f"pump-{stage.name}", daemon=True
            )
            running.pump.start()
        with self._lock:
            self._running.append(running)
        if self.cancel.is_set():  # an interrupt raced this start
            running.stopping = True
            _signal_group(running.pgid, signal.SIGTERM)
        return running

    def _pump(self, running: _Running) -> None:
        """Copy the stage's output to its log and to the terminal, line by line, until EOF."""
        assert running.process.stdout is not None
        name = running.stage.name
        redact = self._console.redactor.redact
        with open(_open_private(running.log_path), "ab") as log:
            for raw in running.process.stdout:
                text = redact(raw.decode("utf-8", "replace").rstrip("\r\n"))
                log.write(text.encode("utf-8") + b"\n")
                log.flush()
                running.tail.append(text)
                self._console.stage_line(name, text)
        running.process.stdout.close()
        code = running.process.wait()
        if running in self._services and not running.stopping:
            self._console.write(f"service {name} {describe_exit(code)}")
            if not self.running_services:
                self.services_done.set()

    def _reap(self, running: _Running) -> None:
        """After the supervisor exited (having ended the stage's tree): kill what is left of its group,
        and anything of this start that escaped (a supervisor killed from outside), so the pipe closes;
        then drain the pump."""
        _signal_group(running.pgid, signal.SIGKILL)
        end_by_token(lambda token: token == running.token)
        if running.pump is not None:
            running.pump.join()
        with self._lock:
            if running in self._running and running not in self._services:
                self._running.remove(running)

    def _tail(self, running: _Running) -> tuple[str, ...]:
        if running.pump is None:
            return tuple(self._console.redactor.redact(line) for line in _read_log_tail(running.log_path))
        return tuple(running.tail)

    def _terminate(self, running: _Running) -> None:
        running.stopping = True
        _signal_group(running.pgid, signal.SIGTERM)
        self._kill_after_grace([running])
        self._reap(running)

    # Batch ------------------------------------------------------------------------------------

    def _run_batch(self, stage: Stage, result: StageResult, cancel: threading.Event) -> StageResult:
        assert stage.batch is not None
        limit_seconds = stage.batch.max_completion_time_seconds or None
        attempts = stage.batch.retries + 1
        reason, message = "", ""
        logs: tuple[str, ...] = ()
        for attempt in range(1, attempts + 1):
            if cancel.is_set():
                break
            try:
                running = self._start(stage, attempt=attempt, to_file=False)
            except OSError as exc:
                return result.evolve(
                    status=StageStatus.FAILED, attempts=attempt, reason="StartFailed", message=str(exc)
                )
            timed_out = False
            try:
                code = running.process.wait(timeout=limit_seconds)
            except subprocess.TimeoutExpired:
                timed_out = True
                self._console.write(f"{stage.name}: time limit of {limit_seconds}s reached, stopping it")
                self._terminate(running)
                code = running.process.returncode
            self._reap(running)
            if stage.is_notebook:  # nbconvert's executed copy holds the cells' output: redact it too
                redact_file(self._settings.run_dir / f"{stage.k8s_name}.ipynb", self._console.redactor)
            logs = self._tail(running)
            if cancel.is_set():
                return result.evolve(status=StageStatus.CANCELLED, attempts=attempt, logs={stage.name: logs})
            if code == 0 and not timed_out:
                return result.evolve(status=StageStatus.SUCCEEDED, attempts=attempt)
            if timed_out:
                reason = "DeadlineExceeded"
                message = (
                    f"did not finish within max_completion_time_seconds={limit_seconds}; process tree killed"
                )
            else:
                reason = "Error"
                message = describe_exit(code)
            left = attempts - attempt
            if left:
                self._console.write(f"{stage.name}: attempt {attempt} {message}; retrying ({left} left)")
        if cancel.is_set():
            return result.evolve(status=StageStatus.CANCELLED)
        return result.evolve(
            status=StageStatus.FAILED,
            attempts=attempts,
            reason=reason,
            message=f"{message} (attempt {attempts} of {attempts})",
            logs={stage.name: logs},
        )

    # Services ---------------------------------------------------------------------------------

    def _run_service(self, stage: Stage, result: StageResult, cancel: threading.Event) -> StageResult:
        service = stage.service
        assert service is not None
        if not check_port_free(service.port):  # taken since the up-front check (e.g. during a venv build)
            return result.evolve(
                status=StageStatus.FAILED,
                reason="PortInUse",
                message=f"port {service.port} is already in use; nothing was started for this stage",
            )
        try:
            running = self._start(stage, attempt=1, to_file=self._settings.detach)
        except OSError as exc:
            return result.evolve(
                status=StageStatus.FAILED, attempts=1, reason="StartFailed", message=str(exc)
            )
        with self._lock:
            self._services.append(running)
        ready, reason, message = self._wait_ready(running, service.max_startup_time_seconds, cancel)
        url = f"http://{LOCAL_HOST}:{service.port}"
        if cancel.is_set():
            return result.evolve(status=StageStatus.CANCELLED, attempts=1, url=url)
        if ready:
            self._console.write(f"{stage.name} is serving at {url}")
            return result.evolve(status=StageStatus.SUCCEEDED, attempts=1, url=url)
        with self._lock:
            self._services.remove(running)
        self._terminate(running)
        return result.evolve(
            status=StageStatus.FAILED,
            attempts=1,
            reason=reason,
            message=message + describe_moved_port(stage, self._settings.ports),
            url=url,
            logs={stage.name: self._tail(running)},
        )

    def _wait_ready(
        self, running: _Running, startup_seconds: int, cancel: threading.Event
    ) -> tuple[bool, str, str]:
        """Connect with backoff until the port answers (and the smoke test passes) or the deadline.

        The pause between tries is a wait on the process itself, so an exit is seen at once.
        """
        stage = running.stage
        assert stage.service is not None
        port = stage.service.port
        smoke_path = self._settings.smoke_tests.get(stage.name, "")
        deadline = time.monotonic() + startup_seconds
        delay = READY_BACKOFF_FIRST_SECONDS
        last = "the port never accepted a connection"
        while not cancel.is_set():
            if running.process.poll() is not None:
                return (
                    False,
                    "ExitedDuringStartup",
                    f"{describe_exit(running.process.returncode)} before ready",
                )
            remaining = deadline - time.monotonic()
            try:
                with socket.create_connection((LOCAL_HOST, port), timeout=max(0.05, min(1.0, remaining))):
                    pass
            except OSError:
                pass
            else:
                if not smoke_path:
                    return True, "", ""
                passed, last = _answers_smoke_test(
                    port, smoke_path, min(SMOKE_TEST_TIMEOUT_SECONDS, max(0.1, remaining))
                )
                if passed:
                    return True, "", ""
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return (
                    False,
                    "StartupTimeout",
                    f"not ready within max_startup_time_seconds={startup_seconds} ({last})",
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                running.process.wait(timeout=min(delay, remaining))
            delay = min(delay * 2, READY_BACKOFF_MAX_SECONDS)
        return False, "Cancelled", "cancelled"


# --- preparing a run ----------------------------------------------------------------------------


def _stages_to_run(pipeline: Pipeline, selection: StageSelection) -> list[Stage]:
    stages = [stage for stage in pipeline.dag_stages if selection.includes(stage.name)]
    if pipeline.failure_stage is not None and pipeline.failure_stage not in stages:
        stages.append(pipeline.failure_stage)
    return stages


def _check_modules(stages: Sequence[Stage], source_dir: Path) -> None:
    missing = [
        f"{s.name}: {s.executable_module_path}"
        for s in stages
        if not (source_dir / s.executable_module_path).is_file()
    ]
    if missing:
        raise LocalRunInvalid(f"executable module(s) not found under {source_dir}: {'; '.join(missing)}")


def _git(args: Sequence[str], cwd: Path) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise LocalRunInvalid(f"git is needed to run a commit: {exc}") from exc
    if done.returncode != 0:
        raise LocalRunInvalid(f"git {' '.join(args)} failed: {done.stderr.strip() or done.returncode}")
    return done.stdout.strip()


def _read_short_commit(directory: Path) -> str:
    try:
        return _git(["rev-parse", "--short", "HEAD"], directory)
    except LocalRunInvalid:
        return ""  # not a git checkout: GIT_COMMIT_HASH is empty, as for an unborn branch


@dataclass(frozen=True)
class _Source:
    config_file: Path
    commit_short: str
    worktree: Path | None  # the temporary checkout of --commit, removed when the run ends


@contextlib.contextmanager
def _checkout(config_file: Path, commit: str, *, keep: Callable[[], bool]) -> Iterator[_Source]:
    """The working tree as is, or ``commit`` checked out into a temporary worktree (removed unless kept)."""
    if not commit:
        yield _Source(
            config_file=config_file, commit_short=_read_short_commit(config_file.parent), worktree=None
        )
        return
    top = Path(_git(["rev-parse", "--show-toplevel"], config_file.parent)).resolve()
    try:
        sha = _git(["rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"], top)
    except LocalRunInvalid:
        raise LocalRunInvalid(f"--commit {commit!r}: no such commit in {top}") from None
    holder = Path(tempfile.mkdtemp(prefix="bodywork-action-"))
    worktree = holder / "src"
    try:
        _git(["worktree", "add", "--detach", str(worktree), sha], top)
    except LocalRunInvalid:
        shutil.rmtree(holder, ignore_errors=True)
        raise
    try:
        yield _Source(
            config_file=worktree / config_file.resolve().relative_to(top),
            commit_short=sha[:7],
            worktree=worktree,
        )
    finally:
        if not keep():
            remove_worktree(worktree)


def remove_worktree(worktree: Path) -> None:
    """Remove a worktree made by ``_checkout``, and git's record of it (asked from its main repository)."""
    with contextlib.suppress(LocalRunInvalid):
        common_dir = Path(_git(["rev-parse", "--path-format=absolute", "--git-common-dir"], worktree))
        _git(["worktree", "remove", "--force", str(worktree)], common_dir)
    shutil.rmtree(worktree.parent, ignore_errors=True)


def _prepare_envs(
    stages: Sequence[Stage],
    *,
    reuse_env: bool,
    cache_dir: Path,
    run_dir: Path,
    console: _Console,
    environ: Mapping[str, str],
) -> dict[StageName, StageEnv]:
    if reuse_env:
        current = StageEnv(python=Path(sys.executable), key="", path=None, built=False)
        if any(s.is_notebook for s in stages) and not _has_module("nbconvert"):
            raise LocalRunInvalid(
                "--reuse-env with a notebook stage needs nbconvert and ipykernel in this environment "
                "(pip install nbconvert ipykernel), or run without --reuse-env"
            )
        return {s.name: current for s in stages}
    envs: dict[StageName, StageEnv] = {}
    for stage in stages:
        requirements = build_env_requirements(stage.requirements, notebook=stage.is_notebook)
        envs[stage.name] = ensure_stage_env(
            requirements,
            cache_dir=cache_dir,
            log_file=run_dir / f"{stage.name}.env.log",
            progress=functools.partial(_env_progress, console, stage.name),
            environ=environ,
        )
    return envs


def _env_progress(console: _Console, stage: str, text: str) -> None:
    console.stage_line(stage, f"[env] {text}")


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _new_run_dir(state_dir: Path) -> tuple[str, Path]:
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{random_tokens.token_hex(3)}"
    run_dir = state_dir / "runs" / run_id
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(mode=PRIVATE_DIR_MODE)
    run_dir.chmod(PRIVATE_DIR_MODE)  # whatever the umask
    return run_id, run_dir


@contextlib.contextmanager
def _interrupts_call(on_interrupt: Callable[[], None]) -> Iterator[None]:
    """Route SIGINT and SIGTERM to ``on_interrupt`` while the run lasts (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.getsignal(signum) for signum in handled}

    def handler(signum: int, frame: Any) -> None:
        # Off the signal handler: it runs on the main thread, which may hold the backend's lock.
        threading.Thread(target=on_interrupt, name="interrupt", daemon=True).start()

    for signum in handled:
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def _adopting_orphans() -> Iterator[None]:
    """Make this process a child subreaper while the stages run (Linux): a process orphaned below it
    is reparented here, not to init, and stays findable; the previous setting is restored afterwards."""
    was = is_child_subreaper()
    set_child_subreaper(True)
    try:
        yield
    finally:
        if not was:
            set_child_subreaper(False)


def _reporter(console: _Console) -> Callable[[Progress], None]:
    def report(progress: Progress) -> None:
        if progress.kind is ProgressKind.STEP_STARTED:
            console.write(f"== step {progress.step}: {', '.join(progress.stages)}")
        elif progress.kind is ProgressKind.FAILURE_STAGE_STARTED:
            console.write(f"== run_on_failure: {progress.stages[0]}")
        elif progress.kind is ProgressKind.STAGE_FINISHED and progress.result is not None:
            console.write(_format_stage_result(progress.result))

    return report


def _format_stage_result(result: StageResult) -> str:
    duration = result.duration_seconds
    took = f" in {duration:.1f}s" if duration is not None else ""
    tries = f" after {result.attempts} attempt(s)" if result.attempts > 1 else ""
    line = f"-- {result.stage}: {result.status.value}{took}{tries}"
    if result.status is StageStatus.FAILED:
        line += f": {result.reason}: {result.message}"
    return line


# --- detached services --------------------------------------------------------------------------


def _read_start_ticks(pid: int) -> str:
    """The process's start time in clock ticks (Linux), so a recycled pid is not mistaken for ours."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def _services_file(state_dir: Path) -> Path:
    return state_dir / SERVICES_FILE_NAME


def _read_services(state_dir: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(_services_file(state_dir).read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {_services_file(state_dir)}: {exc}") from exc
    return list(data.get("services", []))


def _write_services(state_dir: Path, services: Sequence[Mapping[str, Any]]) -> None:
    path = _services_file(state_dir)
    if not services:
        path.unlink(missing_ok=True)
        return
    staging = path.with_suffix(".json.staging")
    staging.write_text(json.dumps({"services": list(services)}, indent=2) + "\n")
    os.replace(staging, path)


def _is_same_process(entry: Mapping[str, Any]) -> bool:
    pid = int(entry["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    ticks = _read_start_ticks(pid)
    return not entry.get("start_ticks") or not ticks or ticks == entry["start_ticks"]


def _record_detached(
    state_dir: Path, run_id: str, services: Sequence[_Running], worktree: Path | None
) -> list[dict[str, Any]]:
    alive = [entry for entry in _read_services(state_dir) if _is_same_process(entry)]
    new = [
        {
            "run_id": run_id,
            "stage": s.stage.name,
            "pid": s.process.pid,
            "pgid": s.pgid,
            "start_ticks": _read_start_ticks(s.process.pid),
            "port": s.stage.service.port if s.stage.service else None,
            "url": f"http://{LOCAL_HOST}:{s.stage.service.port}" if s.stage.service else "",
            "log": str(s.log_path),
            "token": s.token,
            "worktree": str(worktree) if worktree else "",
        }
        for s in services
    ]
    _write_services(state_dir, [*alive, *new])
    return new


def _wait_for_exit(pid: int, timeout_seconds: float) -> bool:
    """Wait for a process that is not our child; True if it exited. Watches a pidfd where there is one."""
    if hasattr(os, "pidfd_open"):
        import select

        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return True
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return bool(poller.poll(timeout_seconds * 1000))
        finally:
            os.close(fd)
    deadline = time.monotonic() + timeout_seconds  # no pidfd (macOS): a short poll is the only portable way
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def stop_local(project_dir: Path, *, out: IO[str] | None = None, grace_seconds: float = GRACE_SECONDS) -> int:
    """``bodywork-action stop --local``: stop the services a ``--detach`` run left; return an exit code."""
    out = out or sys.stdout
    state_dir = project_dir / STATE_DIR_NAME
    entries = _read_services(state_dir)
    if not entries:
        out.write(f"no detached local services recorded in {_services_file(state_dir)}\n")
        return 0
    failed: list[dict[str, Any]] = []
    for entry in entries:
        name, pid = entry["stage"], int(entry["pid"])
        if not _is_same_process(entry):
            out.write(f"{name} (pid {pid}) had already stopped\n")
        else:
            # The supervisor ends the service's tree: SIGTERM, SIGKILL after its grace period.
            _signal_group(int(entry["pgid"]), signal.SIGTERM)
            if not _wait_for_exit(pid, grace_seconds + STOP_MARGIN_SECONDS):
                kill_tree(pid, include_root=True)
                _signal_group(int(entry["pgid"]), signal.SIGKILL)
                if not _wait_for_exit(pid, grace_seconds):
                    out.write(f"{name} (pid {pid}) could not be stopped\n")
                    failed.append(entry)
                    continue
            _signal_group(int(entry["pgid"]), signal.SIGKILL)  # members that outlived their leader
            own = _DETACHED.pop(pid, None)
            if own is not None:
                own.wait()
            out.write(f"stopped {name} (pid {pid}, {entry.get('url', '')})\n")
        token = str(entry.get("token") or "")
        if token:  # what escaped the supervisor (killed from outside): found by its token
            end_by_token(token.__eq__)
    worktrees = {e["worktree"] for e in entries if e.get("worktree")} - {e["worktree"] for e in failed}
    for worktree in worktrees:
        remove_worktree(Path(worktree))
    _write_services(state_dir, failed)
    return 1 if failed else 0


# --- the run ------------------------------------------------------------------------------------


def run_local(
    pipeline: Pipeline,
    config_file: Path,
    *,
    secrets: Sequence[SecretRequest] = (),
    env_file: Path | None = None,
    reuse_env: bool = False,
    smoke_tests: Mapping[str, str] | None = None,
    ports: Mapping[str, int] | None = None,
    detach: bool = False,
    commit: str = "",
    select: Callable[[Pipeline], StageSelection] | None = None,
    out: IO[str] | None = None,
    environ: Mapping[str, str] | None = None,
    cache_dir: Path | None = None,
    state_dir: Path | None = None,
    reload: Callable[[Path], Pipeline] | None = None,
    stop: threading.Event | None = None,
    grace_seconds: float = GRACE_SECONDS,
    deadline: Deadline | None = None,
) -> DeploymentResult:
    """Run ``pipeline`` (loaded from ``config_file``) on this machine; return the result.

    Before anything starts: module files exist, every service has a free port of its own (``ports``,
    ``--port``, else its service.port, else a free one when an earlier stage has that), every ``--secret``
    key has a value, every venv is built. Then the executor walks the DAG. Afterwards, if it succeeded
    and services are up: with ``detach`` they keep running (recorded for ``stop_local``), otherwise this
    blocks until Ctrl+C (or ``stop`` is set, or every service has exited) and stops them.
    With ``commit``, that commit is checked out into a temporary worktree and its config is loaded with
    ``reload`` (default ``config.load_pipeline``). ``select``: a partial run's stages, chosen from the
    pipeline as loaded (``--only``, ``--from-step``); only they are prepared and run.
    """
    out = out or sys.stdout
    environ = os.environ if environ is None else environ
    project_dir = config_file.resolve().parent
    state_dir = state_dir or project_dir / STATE_DIR_NAME
    cache_dir = cache_dir or default_cache_dir(environ)
    env_values = parse_env_file(_read_env_file(env_file), file=str(env_file)) if env_file else {}
    supply = build_secret_supply(secrets, [environ, env_values], surface=Surface.LOCAL)
    leave_running: list[bool] = [False]

    with _checkout(config_file.resolve(), commit, keep=lambda: leave_running[0]) as source:
        if source.worktree is not None:
            pipeline = (reload or _default_reload)(source.config_file)
        selection = select(pipeline) if select is not None else EVERY_STAGE
        stages = _stages_to_run(pipeline, selection)
        source_dir = source.config_file.parent
        console = _Console(out, supply.redactor(), width=max(len(s.name) for s in stages))
        _check_modules(stages, source_dir)
        service_names = {s.name for s in stages if s.service is not None}
        for option, named in (("--smoke-test", smoke_tests or {}), ("--port", ports or {})):
            unknown = sorted(set(named) - service_names)
            if unknown:
                raise InputError(f"{option} names no service stage of this pipeline: {', '.join(unknown)}")
        port_plan = assign_service_ports(stages, ports or {})
        pipeline = _with_ports(pipeline, port_plan)
        stages = _stages_to_run(pipeline, selection)
        for line in [*format_port_table(stages, port_plan), *find_hard_coded_ports(stages, port_plan)]:
            console.write(line)
        unsupplied = find_unsupplied_keys(stages, supply)
        if unsupplied:
            console.write(format_unsupplied_warning(unsupplied))
        run_id, run_dir = _new_run_dir(state_dir)
        where = (
            f"commit {source.commit_short} (worktree {source.worktree})"
            if source.worktree
            else "working tree"
        )
        console.write(f"local run {run_id} of {pipeline.name!r} from the {where}; logs in {run_dir}")
        # pip sees the caller's environment (index settings, proxies) but no supplied secret.
        pip_environ = {k: v for k, v in environ.items() if k not in supply.supplied_keys}
        envs = _prepare_envs(
            stages,
            reuse_env=reuse_env,
            cache_dir=cache_dir,
            run_dir=run_dir,
            console=console,
            environ=pip_environ,
        )
        settings = _RunSettings(
            source_dir=source_dir,
            run_dir=run_dir,
            namespace=pipeline.target_namespace,
            commit_short=source.commit_short,
            smoke_tests=dict(smoke_tests or {}),
            detach=detach,
            grace_seconds=grace_seconds,
            ports=port_plan,
        )
        backend = LocalBackend(settings, envs=envs, supply=supply, environ=environ, console=console)
        # Handlers stay while everything is stopped: a second Ctrl+C during the grace period kills at once.
        with _interrupts_call(backend.interrupt), _adopting_orphans():
            kept: set[str] = set()
            try:
                # --timeout: until every stage finished or serves; past it they stop, as on Ctrl+C.
                with deadline.running(backend.interrupt) if deadline else contextlib.nullcontext():
                    result = execute(
                        pipeline,
                        backend,
                        report=_reporter(console),
                        cancel=backend.cancel,
                        commit=source.commit_short,
                        selection=selection,
                    )
                result = deadline.apply(result) if deadline else result
                services = backend.running_services
                if result.succeeded and services and detach:
                    leave_running[0] = True
                    kept = {s.token for s in services}
                    return _detached_result(result, state_dir, run_id, services, source.worktree, console)
                if result.succeeded and services:
                    result = _serve_until_stopped(result, backend, services, stop, console)
            finally:
                if not leave_running[0]:
                    backend.stop_all()
                # Nothing of this run outlives it but what --detach keeps: not even an escaped daemon.
                prefix = f"{run_id}:"
                end_by_token(lambda token: token.startswith(prefix) and token not in kept)
        return result  # the caller prints the result (the CLI: its table, then the one line)


def _with_ports(pipeline: Pipeline, plan: PortPlan) -> Pipeline:
    """The pipeline with each moved service stage on its port here (BODYWORK_SERVICE_PORT, the URL)."""
    moved = {
        name: replace(stage, settings=replace(stage.service, port=plan.ports[name]))
        for name, stage in pipeline.stages.items()
        if stage.service is not None and name in plan.wanted
    }
    return replace(pipeline, stages={**pipeline.stages, **moved}) if moved else pipeline


def _default_reload(config_file: Path) -> Pipeline:
    from bodywork_action.config import load_pipeline

    return load_pipeline(config_file)


def _read_env_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read --env-file {path}: {exc.strerror or exc}") from exc


def _detached_result(
    result: DeploymentResult,
    state_dir: Path,
    run_id: str,
    services: Sequence[_Running],
    worktree: Path | None,
    console: _Console,
) -> DeploymentResult:
    recorded = _record_detached(state_dir, run_id, services, worktree)
    _DETACHED.update((s.process.pid, s.process) for s in services)
    listed = ", ".join(f"{e['stage']} at {e['url']} (pid {e['pid']})" for e in recorded)
    console.write(f"left running: {listed}; logs in {Path(recorded[0]['log']).parent}")
    console.write("stop them with: bodywork-action stop --local")
    return replace(result, message=f"left running: {listed}")


def _relay_event(source: threading.Event, target: threading.Event) -> None:
    source.wait()
    target.set()


def _serve_until_stopped(
    result: DeploymentResult,
    backend: LocalBackend,
    services: Sequence[_Running],
    stop: threading.Event | None,
    console: _Console,
) -> DeploymentResult:
    urls = ", ".join(
        f"{s.stage.name} at http://{LOCAL_HOST}:{s.stage.service.port}" for s in services if s.stage.service
    )
    console.write(f"serving: {urls} (Ctrl+C stops everything; --detach leaves services running)")
    if stop is not None:
        # An injected stop (tests, embedding) ends the wait like Ctrl+C does.
        threading.Thread(target=_relay_event, args=(stop, backend.services_done), daemon=True).start()
    wait_for(backend.services_done)  # Ctrl+C must reach this (interruptible.py)
    exited = [s for s in services if s.process.poll() is not None and not s.stopping]
    if not exited:
        return replace(result, message="services stopped")
    codes = {s.stage.name: s.process.returncode for s in exited}
    stages = tuple(
        r.evolve(
            status=StageStatus.FAILED,
            reason="Exited",
            message=f"{describe_exit(codes[r.stage])} after ready",
        )
        if r.stage in codes and not r.run_on_failure
        else r
        for r in result.stages
    )
    names = ", ".join(codes)
    return replace(
        result,
        stages=stages,
        status=DeploymentStatus.FAILED,
        message=f"service(s) exited after ready: {names}",
    )
