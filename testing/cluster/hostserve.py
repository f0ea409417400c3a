"""What the real node's pods fetch from the host: git repositories and Python packages.

One threaded HTTP server, bound to the node bridge's gateway address (never 0.0.0.0), serves

- ``/git/<name>``: every repository under a directory, over git's smart HTTP protocol (``git
  http-backend``, with ``uploadpack.allowAnySHA1InWant`` so git-sync can fetch an exact commit);
  a repository may require HTTP basic auth (``require_auth``), as a private repository with a token;
- ``/simple/``: a PEP 503 index of a wheelhouse (``ensure_wheelhouse``: the test pipelines'
  requirements downloaded once from PyPI into the cache), so ``pip install`` in a pod never reaches
  PyPI, which pods can't route to anyway.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

# What the test pipelines pip-install in pods (the repository's MLflow example and the scenarios).
REQUIREMENTS = (
    "mlflow==3.17.2",
    "psycopg2-binary>=2.9,<3",
    "boto3>=1.34,<2",
    "sentry-sdk>=2.0,<3",
    "uvloop>=0.19,<1",
    "requests>=2.31,<3",
)
POD_PYTHON = "3.11"  # the stand-in images' interpreter (bookworm's)
PLATFORMS = (
    "manylinux2014_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_34_x86_64",
)


class WheelhouseError(RuntimeError):
    pass


def ensure_wheelhouse(cache: Path, progress: Callable[[str], None] | None = None) -> Path:
    """The wheelhouse directory for REQUIREMENTS (binary wheels for the pods' Python), downloaded once."""
    key = hashlib.sha256("\n".join((POD_PYTHON, *PLATFORMS, *REQUIREMENTS)).encode()).hexdigest()[:12]
    dest = Path(cache) / f"wheelhouse-{key}"
    if (dest / ".complete").exists():
        return dest
    (progress or (lambda _m: None))("downloading the pods' wheelhouse from PyPI (once, ~200 MB)")
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet"]
    cmd += ["--only-binary=:all:", "--implementation=cp", f"--python-version={POD_PYTHON}"]
    cmd += [f"--platform={p}" for p in PLATFORMS] + ["--platform=any", "-d", str(dest), *REQUIREMENTS]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        raise WheelhouseError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    (dest / ".complete").write_text("\n".join(REQUIREMENTS) + "\n")
    return dest


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _project_of(filename: str) -> str:
    return _normalise(filename.split("-", 1)[0])


class HostServer:
    """Serves git repositories under ``git_root`` and the wheelhouse on ``host:port``."""

    def __init__(self, host: str, git_root: Path, wheelhouse: Path | None) -> None:
        self.git_root = Path(git_root)
        self.wheelhouse = wheelhouse
        self.auth: dict[str, str] = {}  # repository name -> expected "Basic ..." header value
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status), for tests
        server = ThreadingHTTPServer((host, 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self.host, self.port = host, server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, name="hostserve", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def git_base(self) -> str:
        return f"{self.base_url}/git"

    @property
    def index_url(self) -> str:
        return f"{self.base_url}/simple/"

    def require_auth(self, repo: str, username: str, password: str) -> None:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self.auth[repo] = f"Basic {token}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def _handler_for(owner: HostServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _reply(
            self, status: int, body: bytes, content_type: str = "text/plain", extra: dict | None = None
        ):
            owner.requests.append((self.command, self.path, status))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path.startswith("/git/"):
                return self._git()
            if path.startswith("/simple"):
                return self._simple(path)
            if path.startswith("/files/") and owner.wheelhouse is not None:
                name = unquote(path[len("/files/") :])
                file = owner.wheelhouse / name
                if "/" in name or not file.is_file():
                    return self._reply(404, b"no such file\n")
                return self._reply(200, file.read_bytes(), "application/octet-stream")
            return self._reply(404, b"not found\n")

        do_HEAD = do_GET

        def do_POST(self) -> None:
            if urlsplit(self.path).path.startswith("/git/"):
                return self._git()
            return self._reply(404, b"not found\n")

        def _simple(self, path: str) -> None:
            if owner.wheelhouse is None:
                return self._reply(404, b"no package index\n")
            files = sorted(p.name for p in owner.wheelhouse.iterdir() if p.suffix == ".whl")
            parts = [p for p in path.split("/") if p]
            if len(parts) == 1:
                names = sorted({_project_of(f) for f in files})
                links = "".join(f'<a href="/simple/{n}/">{n}</a>\n' for n in names)
            else:
                project = _normalise(parts[1])
                links = "".join(
                    f'<a href="/files/{html.escape(f)}">{html.escape(f)}</a>\n'
                    for f in files
                    if _project_of(f) == project
                )
                if not links:
                    return self._reply(404, b"no such project\n")
            return self._reply(
                200, f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode(), "text/html"
            )

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _git(self) -> None:
            parts = urlsplit(self.path)
            rel = parts.path[len("/git") :]
            repo = rel.strip("/").split("/", 1)[0]
            if not repo or repo.startswith(".") or not (owner.git_root / repo).is_dir():
                return self._reply(404, b"no such repository\n")
            expected = owner.auth.get(repo)
            if expected and self.headers.get("Authorization") != expected:
                return self._reply(
                    401, b"authentication required\n", extra={"WWW-Authenticate": 'Basic realm="git"'}
                )
            body = self._read_body() if self.command == "POST" else b""
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(owner.git_root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": rel,
                "QUERY_STRING": parts.query,
                "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_ADDR": self.client_address[0],
                "REMOTE_USER": "git" if expected else "",
                "GIT_CONFIG_COUNT": "2",
                "GIT_CONFIG_KEY_0": "uploadpack.allowAnySHA1InWant",
                "GIT_CONFIG_VALUE_0": "true",
                "GIT_CONFIG_KEY_1": "safe.directory",
                "GIT_CONFIG_VALUE_1": "*",
            }
            if self.headers.get("Git-Protocol"):
                env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            if self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
            proc = subprocess.run(
                ["git", "http-backend"], input=body, capture_output=True, env=env, check=False
            )
            head, _, payload = proc.stdout.partition(b"\r\n\r\n")
            if not _:
                head, _, payload = proc.stdout.partition(b"\n\n")
            status, headers = 200, {}
            for line in head.decode("latin-1").splitlines():
                key, _, value = line.partition(":")
                if key.lower() == "status":
                    status = int(value.split()[0])
                elif key:
                    headers[key.strip()] = value.strip()
            ctype = headers.pop("Content-Type", "application/octet-stream")
            headers.pop("Content-Length", None)
            self._reply(status, payload, ctype, headers)

    return Handler
