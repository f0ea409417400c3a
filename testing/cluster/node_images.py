"""Images for the real node, built locally (no registry is reachable) and loaded into its containerd.

Every image carries the exact name the rendered manifests use, so manifests run unmodified:

- ``registry.k8s.io/pause:3.10`` (the sandbox): the static ``pause`` binary from ``build.sh --real-node``.
- ``registry.k8s.io/git-sync/git-sync:v4.4.0`` (``DEFAULT_GIT_SYNC_IMAGE``): Debian bookworm minbase
  with git, openssh-client and ca-certificates (mmdebstrap), the git-sync binary built from its
  sources, user 65533 and ``HOME=/tmp`` as upstream's image.
- ``docker.io/library/python:3.11-slim`` and ``:3.12-slim``: the stand-in root filesystem of
  ``testing.images.stand_in_tarball()`` (bookworm's Python 3.11, whatever the tag says), plus a layer
  with ``/etc/pip.conf`` pointing pip at the session's package index on the node's bridge.

OCI layouts are made with umoci and turned into docker-archive tarballs with skopeo (Debian's), cached
under ``<node cache>/images`` by content; each session imports them with ``ctr -n k8s.io images import``.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
GIT_SYNC_IMAGE = "registry.k8s.io/git-sync/git-sync:v4.4.0"
PYTHON_IMAGES = ("docker.io/library/python:3.11-slim", "docker.io/library/python:3.12-slim")
GIT_SYNC_UID = 65533
GIT_SYNC_PACKAGES = ("git", "openssh-client", "ca-certificates", "coreutils", "bash")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ImageError(RuntimeError):
    """An image could not be built or imported; the message has the command and its output."""


def _run(cmd: list[str], timeout: float = 1800) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise ImageError(
            f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{(proc.stderr or proc.stdout)[-3000:]}"
        )
    return proc.stdout


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise ImageError(f"missing tools: {', '.join(missing)} (apt-get install umoci skopeo mmdebstrap)")


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:16]


def _file_digest(path: Path) -> bytes:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def _layer_tar(path: Path, files: dict[str, tuple[bytes, int]], dirs: dict[str, int] | None = None) -> Path:
    """A layer tarball: {path-in-image: (content, mode)} plus directories {path: mode}."""
    with tarfile.open(path, "w") as tar:
        for name, mode in (dirs or {}).items():
            info = tarfile.TarInfo(name.lstrip("/"))
            info.type, info.mode = tarfile.DIRTYPE, mode
            info.uid = info.gid = GIT_SYNC_UID if name.rstrip("/").endswith("git") else 0
            tar.addfile(info)
        for name, (content, mode) in files.items():
            info = tarfile.TarInfo(name.lstrip("/"))
            info.size, info.mode = len(content), mode
            tar.addfile(info, io.BytesIO(content))
    return path


def _oci_image(layout: Path, layers: list[Path], config: list[str]) -> None:
    shutil.rmtree(layout, ignore_errors=True)
    _run(["umoci", "init", "--layout", str(layout)])
    _run(["umoci", "new", "--image", f"{layout}:img"])
    for layer in layers:
        _run(["umoci", "raw", "add-layer", "--image", f"{layout}:img", str(layer)])
    _run(["umoci", "config", "--image", f"{layout}:img", "--architecture=amd64", "--os=linux", *config])


def _docker_archive(layout: Path, out: Path, names: tuple[str, ...]) -> None:
    partial = out.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    extra = [f"--additional-tag={n}" for n in names[1:]]
    _run(["skopeo", "copy", "--quiet", *extra, f"oci:{layout}:img", f"docker-archive:{partial}:{names[0]}"])
    partial.rename(out)


class NodeImages:
    """Builds (once, cached) and imports the real node's images."""

    def __init__(self, node_bin: Path, cache: Path, progress: Callable[[str], None] | None = None) -> None:
        self.node_bin = Path(node_bin)
        self.cache = Path(cache)
        self.progress = progress or (lambda _m: None)

    # ------------------------------------------------------------------ cached archives
    def pause_archive(self) -> Path:
        binary = self.node_bin / "pause"
        out = self.cache / f"pause-{_digest(_file_digest(binary))}.tar"
        if out.exists():
            return out
        _need("umoci", "skopeo")
        self.cache.mkdir(parents=True, exist_ok=True)
        work = self.cache / "work-pause"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        layer = _layer_tar(work / "layer.tar", {"pause": (binary.read_bytes(), 0o755)})
        _oci_image(work / "oci", [layer], ["--config.entrypoint=/pause"])
        _docker_archive(work / "oci", out, (PAUSE_IMAGE,))
        shutil.rmtree(work, ignore_errors=True)
        return out

    def _git_sync_rootfs(self) -> Path:
        recipe = " ".join(GIT_SYNC_PACKAGES).encode()
        out = self.cache / f"git-sync-rootfs-{_digest(recipe)}.tar"
        if out.exists():
            return out
        _need("mmdebstrap")
        self.progress("building the git-sync image's root filesystem (mmdebstrap bookworm: git, ssh; once)")
        partial = out.with_suffix(".partial.tar")
        sources = next(
            p
            for p in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
            if p.is_file() and p.stat().st_size
        )
        _run(
            [
                "mmdebstrap",
                "--variant=minbase",
                "--mode=root",
                "--quiet",
                f"--include={','.join(GIT_SYNC_PACKAGES)}",
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
                # As upstream's image: the git-sync user (home /tmp) and a group-writable /git.
                '--customize-hook=echo "git-sync:x:65533:65533::/tmp:/sbin/nologin" >> "$1/etc/passwd"',
                '--customize-hook=echo "git-sync:x:65533:git-sync" >> "$1/etc/group"',
                '--customize-hook=chmod 0666 "$1/etc/passwd"',
                '--customize-hook=mkdir -m 02775 "$1/git" && chown 65533:65533 "$1/git"',
                '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*',
                "bookworm",
                str(partial),
                str(sources),
            ],
            timeout=1800,
        )
        partial.rename(out)
        return out

    def git_sync_archive(self) -> Path:
        binary = self.node_bin / "git-sync"
        rootfs = self._git_sync_rootfs()
        out = self.cache / f"git-sync-{_digest(_file_digest(binary), rootfs.name.encode())}.tar"
        if out.exists():
            return out
        _need("umoci", "skopeo")
        work = self.cache / "work-git-sync"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        layer = _layer_tar(work / "layer.tar", {"git-sync": (binary.read_bytes(), 0o755)})
        _oci_image(
            work / "oci",
            [rootfs, layer],
            [
                "--config.entrypoint=/git-sync",
                f"--config.user={GIT_SYNC_UID}:{GIT_SYNC_UID}",
                f"--config.env={PATH_ENV}",
                "--config.env=HOME=/tmp",
                "--config.env=GITSYNC_ROOT=/git",
                "--config.workingdir=/tmp",
            ],
        )
        _docker_archive(work / "oci", out, (GIT_SYNC_IMAGE,))
        shutil.rmtree(work, ignore_errors=True)
        return out

    def python_layout(self) -> Path:
        """The stand-in's OCI layout (cached); sessions add their pip.conf layer to a copy."""
        from testing.images import stand_in_tarball

        rootfs = stand_in_tarball()
        layout = self.cache / f"python-oci-{_digest(rootfs.name.encode())}"
        if (layout / ".complete").exists():
            return layout
        _need("umoci", "skopeo")
        _oci_image(
            layout,
            [rootfs],
            [f"--config.env={PATH_ENV}", "--config.env=LANG=C.UTF-8", "--config.cmd=python3"],
        )
        (layout / ".complete").write_text("")
        return layout

    def python_archive(self, workdir: Path, index_url: str) -> Path:
        """A per-session archive: the stand-in plus /etc/pip.conf naming the session's index."""
        base = self.python_layout()
        layout = workdir / "python-oci"
        shutil.rmtree(layout, ignore_errors=True)
        # Blobs are content-addressed and never rewritten: hard links, then a private index.json.
        _run(["cp", "-al", str(base), str(layout)])
        (layout / "index.json").unlink()
        shutil.copyfile(base / "index.json", layout / "index.json")
        host = index_url.split("//", 1)[1].split("/", 1)[0].split(":", 1)[0]
        pip_conf = f"[global]\nindex-url = {index_url}\ntrusted-host = {host}\ntimeout = 30\n".encode()
        layer = _layer_tar(workdir / "pip-layer.tar", {"etc/pip.conf": (pip_conf, 0o644)})
        _run(["umoci", "raw", "add-layer", "--image", f"{layout}:img", str(layer)])
        out = workdir / "python.tar"
        _docker_archive(layout, out, PYTHON_IMAGES)
        shutil.rmtree(layout, ignore_errors=True)
        return out


def import_archive(ctr: list[str], archive: Path) -> None:
    """Load a docker-archive tarball into containerd's k8s.io namespace (the CRI's)."""
    _run([*ctr, "-n", "k8s.io", "images", "import", str(archive)], timeout=600)
