"""Container images for tests: a private Docker engine, and stand-in Python base images built from Debian.

Two things, each usable on its own::

    from testing.images import ensure_engine, ensure_python_base_image

    with ensure_engine() as engine:                  # starts Debian's dockerd if needed, stops it after
        tag = ensure_python_base_image("python:3.12.11-slim-bookworm", engine)
        engine.docker("build", "--network", "host", "-t", "mine", ".")

**The engine** is Debian's docker.io (dockerd + containerd + runc), started by the tests like PostgreSQL:
its own containerd socket, data root and exec root (nothing shared with a system Docker or with a
kubelet's containerd), no bridge and no iptables rules, so containers use ``--network host`` and reach
only what the host reaches. Several test processes may hold it at once: each holds a shared lock, and
the last one out stops dockerd and containerd (only if this module started them). Its data root lives
in ``~/.cache/bodywork-action/engine`` so built layers survive between runs. ``BODYWORK_DOCKER_HOST``
names an engine to use instead; this module never starts or stops that one.

**Stand-in base images.** Registries can't be reached here, so ``python:*`` images can't be pulled. The
stand-in is Debian bookworm (``mmdebstrap --variant=minbase``) with python3 (3.11), pip, venv,
``python`` and ``pip`` on PATH, no EXTERNALLY-MANAGED marker (like the official images), and the
host's CA bundle plus a pip.conf using it (package downloads pass through a TLS-intercepting proxy
here). Its root filesystem is cached as a tarball keyed by the recipe, built once (about 3.5 min) and
imported under whatever tag a Dockerfile or manifest names, so those files run unmodified. The image
carries the label ``org.bodywork-action.stand-in=<recipe id>``; a tag already holding an image of the
same recipe is reused as it is.

Errors: :class:`EngineUnavailable` (with the exact reason) when there is no engine binary or it won't
start, :class:`ImageBuildFailed` when mmdebstrap or ``docker import`` fails. Tests turn these into a
skip, or a failure when ``CI=true``; see :func:`required`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bodywork-action"
ENGINE_DATA = CACHE / "engine"
IMAGE_CACHE = CACHE / "images"
RUN_DIR = Path("/run/bodywork-engine")
SOCKET = RUN_DIR / "docker.sock"
CONTAINERD_SOCKET = RUN_DIR / "containerd.sock"

STAND_IN_LABEL = "org.bodywork-action.stand-in"
SUITE = "bookworm"
PACKAGES = ("python3", "python3-pip", "python3-venv", "python-is-python3", "ca-certificates")
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class EngineUnavailable(RuntimeError):
    """No container engine could be used; the message says exactly why."""


class ImageBuildFailed(RuntimeError):
    """A stand-in image could not be built; the message carries the tool's own output."""


def required() -> bool:
    """True when a missing engine or image must fail the run instead of skipping (CI=true)."""
    return os.environ.get("CI", "").lower() == "true"


@dataclass(frozen=True)
class Engine:
    """A running engine: ``host`` for DOCKER_HOST, ``env`` for subprocesses that run the docker client."""

    host: str

    @property
    def env(self) -> dict[str, str]:
        # The legacy builder: dockerd 20.10 without buildx (the client has none here either).
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0"}

    def docker(
        self, *args: str, check: bool = True, timeout: float | None = 600, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker client against this engine, capturing text output."""
        completed = subprocess.run(
            [docker_client(), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            input=input,
        )
        if check and completed.returncode != 0:
            raise subprocess.CalledProcessError(
                completed.returncode, completed.args, completed.stdout, completed.stderr
            )
        return completed

    def image_label(self, tag: str, label: str) -> str | None:
        """A label of the image ``tag``, or None when there's no such image (or no such label)."""
        completed = self.docker(
            "image", "inspect", "--format", f'{{{{ index .Config.Labels "{label}" }}}}', tag, check=False
        )
        value = completed.stdout.strip()
        return value if completed.returncode == 0 and value and value != "<no value>" else None


def docker_client() -> str:
    client = shutil.which("docker")
    if client is None:
        raise EngineUnavailable("the docker client is not installed (apt-get install docker.io)")
    return client


def _answers(host: str) -> bool:
    try:
        completed = subprocess.run(
            [docker_client(), "version", "--format", "{{.Server.Version}}"],
            env={**os.environ, "DOCKER_HOST": host},
            capture_output=True,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return completed.returncode == 0


@contextlib.contextmanager
def _flock(path: Path, mode: int) -> Iterator[int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield fd
    finally:
        os.close(fd)


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _is_ours(pid: int, pid_file: Path) -> bool:
    """The process is still the daemon this module started (a stale pid file's number may be reused)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    name = pid_file.stem.removesuffix(".pid")  # "dockerd" or "containerd"
    return Path(argv[0].decode(errors="replace")).name == name and str(RUN_DIR).encode() in b" ".join(argv)


# The daemons this process started, kept referenced (a collected Popen of a running process warns, and
# the tests turn warnings into errors) and waited for when this process stops them.
_DAEMONS: dict[int, subprocess.Popen[bytes]] = {}


def _stop(pid_file: Path) -> None:
    """SIGTERM the process named in ``pid_file`` (one this module started), SIGKILL after a grace time."""
    pid = _pid(pid_file)
    if pid is None or not _alive(pid) or not _is_ours(pid, pid_file):
        pid_file.unlink(missing_ok=True)
        _reap(pid)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and _alive(pid):
        if pid in _DAEMONS:
            _DAEMONS[pid].poll()
        else:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)
    pid_file.unlink(missing_ok=True)


def _reap(pid: int | None) -> None:
    daemon = _DAEMONS.pop(pid, None) if pid is not None else None
    if daemon is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            daemon.wait(timeout=STOP_TIMEOUT)


def _start() -> None:
    """Start containerd and dockerd in their own session (they outlive this process if others use them)."""
    for binary in ("dockerd", "containerd", "runc"):
        if shutil.which(binary, path="/usr/sbin:/usr/bin:/sbin:/bin:" + os.environ.get("PATH", "")) is None:
            raise EngineUnavailable(f"{binary} is not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        raise EngineUnavailable("starting dockerd needs root")
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    ENGINE_DATA.mkdir(parents=True, exist_ok=True)
    log = ENGINE_DATA / "engine.log"
    config = RUN_DIR / "containerd.toml"
    config.write_text(
        "version = 2\n"
        f'root = "{ENGINE_DATA / "containerd"}"\n'
        f'state = "{RUN_DIR / "containerd-state"}"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{CONTAINERD_SOCKET}"\n'
        f'[ttrpc]\n  address = "{CONTAINERD_SOCKET}.ttrpc"\n'
    )
    env = {**os.environ, "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    with log.open("ab") as out:
        containerd = subprocess.Popen(
            ["containerd", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
            start_new_session=True,
        )
        _DAEMONS[containerd.pid] = containerd
        (RUN_DIR / "containerd.pid").write_text(str(containerd.pid))
        deadline = time.monotonic() + START_TIMEOUT
        while not CONTAINERD_SOCKET.exists():
            if containerd.poll() is not None or time.monotonic() > deadline:
                _stop(RUN_DIR / "containerd.pid")
                raise EngineUnavailable(f"containerd did not start; see {log}:\n{_tail(log)}")
            time.sleep(0.1)
        dockerd = subprocess.Popen(
            [
                "dockerd",
                f"--host=unix://{SOCKET}",
                f"--containerd={CONTAINERD_SOCKET}",
                f"--data-root={ENGINE_DATA / 'docker'}",
                f"--exec-root={RUN_DIR / 'docker'}",
                f"--pidfile={RUN_DIR / 'dockerd.pid'}",
                "--storage-driver=overlay2",
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--ip-forward=false",
                "--userland-proxy=false",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
            start_new_session=True,
        )
    _DAEMONS[dockerd.pid] = dockerd
    host = f"unix://{SOCKET}"
    deadline = time.monotonic() + START_TIMEOUT
    while not _answers(host):
        if dockerd.poll() is not None or time.monotonic() > deadline:
            (RUN_DIR / "dockerd.pid").write_text(str(dockerd.pid))
            _stop(RUN_DIR / "dockerd.pid")
            _stop(RUN_DIR / "containerd.pid")
            raise EngineUnavailable(f"dockerd did not start; see {log}:\n{_tail(log)}")
        time.sleep(0.2)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def ensure_engine() -> Iterator[Engine]:
    """A running engine for the duration of the block; the last holder stops one this module started."""
    external = os.environ.get("BODYWORK_DOCKER_HOST")
    if external:
        if not _answers(external):
            raise EngineUnavailable(f"BODYWORK_DOCKER_HOST={external} does not answer `docker version`")
        yield Engine(external)
        return
    host = f"unix://{SOCKET}"
    users = RUN_DIR / "users.lock"
    with _flock(RUN_DIR / "start.lock", fcntl.LOCK_EX):
        if not _answers(host):
            _start()
        users_fd = os.open(users, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(users_fd, fcntl.LOCK_SH)
    try:
        yield Engine(host)
    finally:
        with _flock(RUN_DIR / "start.lock", fcntl.LOCK_EX):
            os.close(users_fd)  # drops this holder's shared lock
            try:
                with _flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB):
                    stop_engine()
            except BlockingIOError:
                pass  # another holder still uses it: the last one out stops it


def stop_engine() -> None:
    """Stop the dockerd and containerd this module started (no-op when none is running)."""
    _stop(RUN_DIR / "dockerd.pid")
    _stop(RUN_DIR / "containerd.pid")


# -- stand-in base images ------------------------------------------------------------------------------


def _host_sources() -> Path:
    for candidate in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")):
        if candidate.is_file() and candidate.stat().st_size:
            return candidate
    raise ImageBuildFailed("no Debian apt sources on this host (/etc/apt/sources.list[.d/debian.sources])")


def _extra_cas() -> list[Path]:
    return sorted(HOST_CA_DIR.glob("*.crt")) if HOST_CA_DIR.is_dir() else []


def recipe_id() -> str:
    """What the stand-in is made of: suite, packages, the hooks below, the host's sources and extra CAs."""
    digest = hashlib.sha256()
    for part in (SUITE, *PACKAGES, *_hooks(Path("/"))):
        digest.update(part.encode() + b"\0")
    digest.update(_host_sources().read_bytes())
    for ca in _extra_cas():
        digest.update(ca.read_bytes())
    return digest.hexdigest()[:16]


def _hooks(ca_dir: Path) -> list[str]:
    return [
        # Like the official python images: pip installs into the system interpreter.
        'rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
        # The host's extra CAs (a TLS-intercepting proxy here), and pip told to use the system bundle.
        f'cp {ca_dir}/*.crt "$1/usr/local/share/ca-certificates/" 2>/dev/null || true',
        'chroot "$1" update-ca-certificates >/dev/null',
        "printf '[global]\\ncert = /etc/ssl/certs/ca-certificates.crt\\n' > \"$1/etc/pip.conf\"",
        'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*',
    ]


def stand_in_tarball() -> Path:
    """The cached root filesystem of the stand-in (built with mmdebstrap when missing)."""
    recipe = recipe_id()
    tarball = IMAGE_CACHE / f"python-{SUITE}-{recipe}.tar"
    IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
    with _flock(IMAGE_CACHE / f"{tarball.name}.lock", fcntl.LOCK_EX):
        if tarball.exists():
            return tarball
        if shutil.which("mmdebstrap") is None:
            raise ImageBuildFailed("mmdebstrap is not installed (apt-get install mmdebstrap)")
        partial = tarball.with_suffix(".partial.tar")
        command = [
            "mmdebstrap",
            "--variant=minbase",
            "--mode=root",
            "--quiet",
            f"--include={','.join(PACKAGES)}",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-include=/usr/share/doc/*/copyright",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            *(f"--customize-hook={hook}" for hook in _hooks(HOST_CA_DIR)),
            SUITE,
            str(partial),
            str(_host_sources()),
        ]
        print(f"testing.images: building the stand-in Python base ({SUITE}, ~3.5 min once)", file=sys.stderr)
        completed = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1800, check=False
        )
        if completed.returncode != 0:
            partial.unlink(missing_ok=True)
            raise ImageBuildFailed(f"mmdebstrap failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
        partial.rename(tarball)
        for stale in IMAGE_CACHE.glob(f"python-{SUITE}-*.tar"):
            if stale != tarball:
                stale.unlink(missing_ok=True)
        return tarball


def ensure_python_base_image(tag: str, engine: Engine) -> str:
    """Make ``tag`` (e.g. ``python:3.12.11-slim-bookworm``) a stand-in Python image; returns ``tag``.

    Reused as it is when ``tag`` already holds the current recipe's stand-in. The stand-in's Python is
    bookworm's 3.11 whatever the tag says.
    """
    recipe = recipe_id()
    if engine.image_label(tag, STAND_IN_LABEL) == recipe:
        return tag
    tarball = stand_in_tarball()
    changes: Sequence[str] = (
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        f"LABEL {STAND_IN_LABEL}={recipe}",
        'CMD ["python3"]',
    )
    args = [arg for change in changes for arg in ("--change", change)]
    completed = engine.docker("import", *args, str(tarball), tag, check=False, timeout=600)
    if completed.returncode != 0:
        raise ImageBuildFailed(f"docker import {tarball} {tag} failed:\n{completed.stderr}")
    return tag


def remove_images(engine: Engine, tags: Sequence[str]) -> None:
    """Remove images by tag (missing ones ignored)."""
    if tags:
        engine.docker("image", "rm", "--force", *tags, check=False)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m testing.images base TAG...``: make each TAG a stand-in and print it."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] != "base":
        print("usage: python -m testing.images base TAG [TAG...]", file=sys.stderr)
        return 2
    with ensure_engine() as engine:
        for tag in args[1:]:
            print(ensure_python_base_image(tag, engine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
