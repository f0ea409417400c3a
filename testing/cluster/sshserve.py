"""Git over SSH for the real node's pods: a private ``sshd`` the test starts and stops itself.

``SshGitServer`` runs Debian's ``/usr/sbin/sshd -D -f <generated config>`` (openssh-server's binary
only: .ci/run installs the package without letting it start a system sshd) bound to one address, the
node bridge's gateway (never 0.0.0.0), on a free port, with

- a freshly generated host key (``known_hosts_line``: what ``ssh-keyscan`` would print for it);
- a freshly generated client key (``private_key``: the deploy key a git-credentials secret holds),
  the only key in its ``AuthorizedKeysFile``, with ``restrict`` (no pty, no forwarding) and
  ``git-shell`` as its command, so the key can only fetch (or push) repositories;
- public-key authentication only, for root (``PermitRootLogin prohibit-password``);
- ``uploadpack.allowAnySHA1InWant`` for upload-pack (as the HTTP host server), so git-sync can fetch
  an exact commit.

Repositories are addressed by absolute path: ``url(path)`` gives ``ssh://root@<host>:<port><path>``.
``stop()`` terminates sshd by its PID (and kills it if it doesn't exit); its log (``LogLevel
VERBOSE``) stays readable in ``log_text()``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"
USER = "root"


class SshServeError(RuntimeError):
    pass


def sshd_available() -> str:
    """'' if sshd and ssh-keygen are here, else why not (the exact missing path)."""
    if not os.access(SSHD, os.X_OK):
        return f"{SSHD} not found (Debian's openssh-server: .ci/run installs it in its real-node block)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen not found (openssh-client)"
    if shutil.which("git-shell") is None:
        return "git-shell not found (git)"
    return ""


def keygen(path: Path, comment: str) -> str:
    """A new ed25519 key pair at ``path`` (+ ``.pub``); returns the public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return path.with_name(path.name + ".pub").read_text().strip()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class SshGitServer:
    def __init__(self, host: str, workdir: Path, *, start_timeout: float = 15.0) -> None:
        why = sshd_available()
        if why:
            raise SshServeError(why)
        if host in ("", "0.0.0.0", "::"):
            raise SshServeError("sshd binds one address (the bridge's gateway), never all of them")
        self.host = host
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self.host_key = self.dir / "host_ed25519"
        self.client_key = self.dir / "deploy_ed25519"
        host_pub = keygen(self.host_key, "bodywork-test-host")
        client_pub = keygen(self.client_key, "bodywork-test-deploy-key")
        git_shell = shutil.which("git-shell")
        (self.dir / "authorized_keys").write_text(
            f'restrict,command="{git_shell} -c \\"$SSH_ORIGINAL_COMMAND\\"" {client_pub}\n'
        )
        self._host_pub = " ".join(host_pub.split()[:2])
        self.log = self.dir / "sshd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        # sshd's privilege separation needs its empty directory (the Debian service creates it).
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        last = ""
        for _ in range(3):  # the free port may be taken between probing and binding
            self.port = _free_port(host)
            config = self._write_config()
            check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
            if check.returncode != 0:
                raise SshServeError(f"{SSHD} -t -f {config}: {check.stderr.strip()}")
            with self.log.open("wb") as log:  # sshd keeps its own copy of the descriptor
                self.proc = subprocess.Popen(
                    [SSHD, "-D", "-e", "-f", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    start_new_session=True,
                )
            if self._wait_listening(start_timeout):
                return
            last = self.log_text()
            self.stop()
        raise SshServeError(f"sshd did not start on {host}: {last.strip()[-2000:]}")

    def _write_config(self) -> Path:
        config = self.dir / "sshd_config"
        lines = [
            f"ListenAddress {self.host}:{self.port}",
            f"HostKey {self.host_key}",
            f"PidFile {self.dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
            f"AllowUsers {USER}",
            "PermitRootLogin prohibit-password",
            "AuthenticationMethods publickey",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",  # the key files live in a test temp dir
            "DisableForwarding yes",
            "PermitTTY no",
            "PermitUserRC no",
            "PrintMotd no",
            "UseDNS no",
            "AcceptEnv GIT_PROTOCOL",  # git's protocol v2 over SSH
            "SetEnv GIT_CONFIG_COUNT=2 GIT_CONFIG_KEY_0=uploadpack.allowAnySHA1InWant"
            " GIT_CONFIG_VALUE_0=true GIT_CONFIG_KEY_1=safe.directory GIT_CONFIG_VALUE_1=*",
            "LoginGraceTime 30",
            "LogLevel VERBOSE",
        ]
        config.write_text("\n".join(lines) + "\n")
        return config

    def _wait_listening(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=2) as s,
            ):
                if s.recv(64).startswith(b"SSH-2.0-"):
                    return True
            time.sleep(0.1)
        return False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def private_key(self) -> str:
        return self.client_key.read_text()

    @property
    def known_hosts_line(self) -> str:
        """The server's host key as known_hosts names it for a non-default port."""
        return f"[{self.host}]:{self.port} {self._host_pub}\n"

    def url(self, repo_path: Path) -> str:
        return f"ssh://{USER}@{self.host}:{self.port}{Path(repo_path).resolve()}"

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
