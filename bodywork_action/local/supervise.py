"""Process trees of local runs: the stage supervisor, and finding and ending every descendant.

Shell module (processes, signals, ``/proc``). Each stage runs under a supervisor, as a container runs
under its init: ``python -I -c BOOT PKGROOT GRACE MODE -- command…`` (``supervisor_command``).

- The supervisor is a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``, Linux): whatever the stage
  starts stays below it, even a daemon that double-forks and calls ``setsid``; it reaps them all.
- When the stage's own process exits, every process left below the supervisor is killed (SIGKILL, as a
  container's processes die with its main process), then the supervisor exits with the stage's code (or
  dies of the stage's signal). So a batch stage's pipe closes and the port of a service is freed.
- SIGTERM/SIGINT/SIGHUP to the supervisor: SIGTERM to the whole tree, SIGKILL to what is left after
  ``GRACE`` seconds; a second signal kills at once.
- ``MODE`` ``redact``: the values to hide arrive as JSON on stdin (never argv or the environment), the
  stage's output is read through a pipe and written redacted to the supervisor's stdout (a detached
  service's log file); ``pass``: the stage writes to the supervisor's stdout directly.

Every stage process also carries ``BODYWORK_LOCAL_RUN=<token>`` in its environment, so what escapes a
supervisor killed from outside (``kill -9``) is still found by ``end_by_token`` and ended. The helpers
read ``/proc``: on a system without it (macOS) trees are ended by process group only.

Standard library only, apart from ``bodywork_action.redact`` (pure): the supervisor runs isolated
(``-I``) from the stage's environment, so a stage's own modules can't shadow what it imports.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence

TOKEN_VARIABLE = "BODYWORK_LOCAL_RUN"
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
MODE_PASS = "pass"
MODE_REDACT = "redact"
PROC = "/proc"
MAX_KILL_ROUNDS = 1000  # each round kills all it finds: only a fork bomb outrunning SIGKILL needs more

_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from bodywork_action.local.supervise import main; sys.exit(main(sys.argv[2:]))"
)
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def supervisor_command(command: Sequence[str], *, grace_seconds: float, redact: bool) -> list[str]:
    """``command`` run under a supervisor (this interpreter, isolated from the stage's environment)."""
    mode = MODE_REDACT if redact else MODE_PASS
    # -I: nothing of the stage's environment (PYTHONPATH, its modules) applies; -S: no site-packages
    # scan (.pth files can cost more than the rest of the start-up): only the standard library and this
    # package are imported.
    return [sys.executable, "-I", "-S", "-c", _BOOT, _PACKAGE_ROOT, str(grace_seconds), mode, "--", *command]


# --- subreaper ----------------------------------------------------------------------------------


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    function: Callable[..., int] = libc.prctl
    return function


def set_child_subreaper(on: bool) -> bool:
    """Make this process the reaper of its orphaned descendants (Linux); False where that is impossible."""
    prctl = _prctl()
    if prctl is None:
        return False
    return prctl(PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(1 if on else 0), 0, 0, 0) == 0


def is_child_subreaper() -> bool:
    prctl = _prctl()
    if prctl is None:
        return False
    flag = ctypes.c_int(0)
    if prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) != 0:
        return False
    return bool(flag.value)


# --- the process table --------------------------------------------------------------------------


def read_parents() -> dict[int, int]:
    """pid → parent pid of every process (zombies included), from ``/proc``; empty without ``/proc``."""
    parents: dict[int, int] = {}
    try:
        entries = os.listdir(PROC)
    except OSError:
        return parents
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"{PROC}/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue  # exited meanwhile
        fields = stat.rsplit(")", 1)[-1].split()
        parents[int(entry)] = int(fields[1])
    return parents


def find_descendants(root: int) -> list[int]:
    """Every process below ``root`` (children first found first), not ``root`` itself."""
    children: dict[int, list[int]] = {}
    for pid, parent in read_parents().items():
        children.setdefault(parent, []).append(pid)
    found: list[int] = []
    queue = list(children.get(root, ()))
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children.get(pid, ()))
    return found


def read_token(pid: int) -> str:
    """The ``BODYWORK_LOCAL_RUN`` value a process was started with ("" if none or unreadable)."""
    try:
        with open(f"{PROC}/{pid}/environ", "rb") as handle:
            environ = handle.read()
    except OSError:
        return ""
    prefix = f"{TOKEN_VARIABLE}=".encode()
    for entry in environ.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode("utf-8", "replace")
    return ""


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


def _reap_if_child(pids: Iterable[int], *, block: bool) -> None:
    """Collect the exit status of those of ``pids`` that are this process's children (adopted orphans)."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):  # not ours (its parent reaps it), or already reaped
            os.waitpid(pid, 0 if block else os.WNOHANG)


def kill_tree(root: int, *, include_root: bool) -> int:
    """SIGKILL every descendant of ``root`` until none is left (then ``root``); returns how many were hit.

    ``root`` stays alive while its descendants are killed, so (as a subreaper) it keeps everything they
    fork below it: a process forked between two looks is found by the next one, and ``root`` reaps the
    dead (this process reaps its own children itself).
    """
    own = os.getpid()
    hit: set[int] = set()
    for _ in range(MAX_KILL_ROUNDS):
        found = find_descendants(root)
        if not found:
            break
        fresh = [pid for pid in found if pid not in hit]
        for pid in fresh:
            _kill(pid, signal.SIGKILL)
        hit.update(fresh)
        if root == own:
            _reap_if_child(found, block=True)
            _reap_adopted()
        elif not fresh:
            time.sleep(0.01)  # only the dead are left, for ``root`` to reap
    if include_root and root != own:
        _kill(root, signal.SIGKILL)
        hit.add(root)
    return len(hit)


def _reap_adopted() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def end_by_token(matches: Callable[[str], bool]) -> int:
    """SIGKILL every process whose token ``matches`` until none is left; reap those that are this
    process's children (orphans it adopted as a subreaper). Returns how many were hit."""
    own = os.getpid()
    hit: set[int] = set()
    for _ in range(MAX_KILL_ROUNDS):
        parents = read_parents()
        found = [pid for pid in parents if pid != own and (token := read_token(pid)) and matches(token)]
        if not found:
            break
        for pid in found:
            _kill(pid, signal.SIGKILL)
        hit.update(found)
        _reap_if_child([pid for pid in found if parents.get(pid) == own], block=True)
    return len(hit)


# --- the supervisor -----------------------------------------------------------------------------


class _Supervisor:
    def __init__(self, command: Sequence[str], grace_seconds: float, redactor: Callable[[str], str] | None):
        self._grace = grace_seconds
        self._redact = redactor
        self._signals = 0
        self._lock = threading.Lock()
        self.child = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if redactor is not None else None,
            stderr=subprocess.STDOUT if redactor is not None else None,
        )
        self.pump: threading.Thread | None = None
        if redactor is not None:
            self.pump = threading.Thread(target=self._copy_redacted, daemon=True)
            self.pump.start()

    def _copy_redacted(self) -> None:
        assert self.child.stdout is not None and self._redact is not None
        out = sys.stdout.buffer
        for raw in self.child.stdout:
            text = self._redact(raw.decode("utf-8", "replace").rstrip("\r\n"))
            out.write(text.encode("utf-8") + b"\n")
            out.flush()

    def on_signal(self, signum: int, frame: object) -> None:
        with self._lock:
            self._signals += 1
            first = self._signals == 1
        if first:
            for pid in [self.child.pid, *find_descendants(os.getpid())]:
                _kill(pid, signal.SIGTERM)
            timer = threading.Timer(self._grace, self.kill_all)
            timer.daemon = True
            timer.start()
        else:
            threading.Thread(target=self.kill_all, daemon=True).start()

    def kill_all(self) -> None:
        for pid in find_descendants(os.getpid()):
            _kill(pid, signal.SIGKILL)

    def run(self) -> int:
        """Reap every child until the stage's own process exits; then end the rest; its wait status."""
        main_pid = self.child.pid
        status = 0
        while True:
            try:
                pid, wait_status = os.waitpid(-1, 0)
            except ChildProcessError:  # cannot happen before the main child is reaped; be safe
                break
            if pid == main_pid:
                status = wait_status
                break
        self.child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        kill_tree(os.getpid(), include_root=False)
        _reap_adopted()
        if self.pump is not None:
            self.pump.join()
        return self.child.returncode


def main(argv: Sequence[str]) -> int:
    """``GRACE MODE -- command…``: run ``command`` supervised; exit as it did."""
    grace_text, mode, separator, *command = argv
    if separator != "--" or not command or mode not in (MODE_PASS, MODE_REDACT):
        sys.stderr.write("usage: supervise GRACE pass|redact -- command...\n")
        return 2
    set_child_subreaper(True)
    redactor: Callable[[str], str] | None = None
    if mode == MODE_REDACT:
        from bodywork_action.redact import Redactor

        values = json.loads(sys.stdin.read() or "[]")
        redactor = Redactor([str(v) for v in values]).redact
    sys.stdin.close()
    try:
        supervisor = _Supervisor(command, float(grace_text), redactor)
    except OSError as exc:
        sys.stdout.write(f"cannot start {command[0]}: {exc.strerror or exc}\n")
        return 127
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, supervisor.on_signal)
    code = supervisor.run()
    sys.stdout.flush()
    if code < 0:  # the stage died of a signal: so does its supervisor, for the runner to see the same
        with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP can't be (and needn't be) reset
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code
