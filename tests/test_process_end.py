"""How a finished ``bodywork-action`` process ends (``cli.end_process``): without the interpreter's
teardown, but with everything that teardown was trusted with still done: output delivered, atexit
handlers run (the kubernetes client's temporary key files deleted), working threads waited for, and a
closed pipe still reported. Each case is a child interpreter, as the program runs."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from testing.child_python import REPO_ROOT, run_python
from testing.fake_k8s.cluster import FakeCluster
from testing.fake_k8s.fixtures import fake_cluster_https  # noqa: F401
from testing.fake_k8s.tls import make_cert

PROJECT = REPO_ROOT / "tests" / "data" / "bodywork_project" / "bodywork.yaml"

# Module teardown would call this object's __del__; end_process skips the teardown.
TEARDOWN_WITNESS = textwrap.dedent(
    """
    import sys
    class Witness:
        def __del__(self):
            sys.stdout.write("torn down\\n")
    witness = Witness()
    """
)


# stdout to a pipe is block-buffered, as a user's program has it (unless PYTHONUNBUFFERED is set)
BUFFERED = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}


def run_child(body: str) -> subprocess.CompletedProcess[str]:
    return run_python(TEARDOWN_WITNESS + textwrap.dedent(body), env=BUFFERED)


def test_output_and_atexit_handlers_survive_and_the_teardown_is_skipped(tmp_path: Path) -> None:
    cleanup = tmp_path / "held-by-the-run"
    cleanup.write_text("x")
    done = run_child(
        f"""
        import atexit, os
        from bodywork_action.cli import end_process
        atexit.register(lambda: print("atexit ran"))
        atexit.register(os.remove, {str(cleanup)!r})
        print("x" * 100_000, end="")  # a pipe: block-buffered, still in the buffer
        print()
        end_process(3)
        """
    )
    assert done.returncode == 3, done.stderr
    lines = done.stdout.splitlines()
    assert lines == ["x" * 100_000, "atexit ran"]  # no "torn down": the teardown did not run
    assert not cleanup.exists()


def test_the_ordinary_exit_is_kept_while_a_thread_is_still_working(tmp_path: Path) -> None:
    done = run_child(
        """
        import threading, time
        from bodywork_action.cli import end_process
        def work():  # still working until the main thread has ended: only an ordinary exit waits
            while threading.main_thread().is_alive():
                time.sleep(0.01)
            print("thread finished", flush=True)
        threading.Thread(target=work).start()
        end_process(1)
        """
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == ["thread finished", "torn down"]


def test_output_that_cannot_be_delivered_still_fails_the_process() -> None:
    # the reader went away (``| head``): Python's own exit reports it (120), not a clean 0
    script = TEARDOWN_WITNESS + textwrap.dedent(
        """
        import select, sys
        from bodywork_action.cli import end_process
        waiting = select.poll()
        waiting.register(sys.stdout.fileno(), 0)
        waiting.poll()  # returns once the pipe has no reader left (POLLERR)
        sys.stdout.write("y" * 1000)
        end_process(0)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=BUFFERED,
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        child.stdout.close()
        errors = child.stderr.read().decode()
        code = child.wait(60)
    assert code == 120, errors
    assert "BrokenPipeError" in errors


def test_the_kubernetes_clients_temporary_key_files_are_deleted_when_a_command_ends(
    fake_cluster_https: FakeCluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    # The client writes each *-data field of a kubeconfig (the client key included) to a temporary
    # file and deletes them in an atexit handler.
    (tmp_path / "client").mkdir()
    certificate, key = make_cert(tmp_path / "client")
    config = fake_cluster_https.kubeconfig()
    config["users"][0]["user"].update(
        {
            "client-certificate-data": base64.b64encode(certificate.read_bytes()).decode(),
            "client-key-data": base64.b64encode(key.read_bytes()).decode(),
        }
    )
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    kubeconfig.chmod(0o600)

    def temporary_files_left(*argv: str, says: str = "") -> list[str]:
        temporary = tmp_path / f"tmp-{argv[0]}"
        temporary.mkdir()
        env = {**os.environ, "TMPDIR": str(temporary), "HOME": str(tmp_path)}
        done = subprocess.run(
            [sys.executable, *argv], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=env
        )
        assert done.returncode == 0 and says in done.stdout, done.stdout + done.stderr
        return sorted(path.name for path in temporary.iterdir())

    command = ["-m", "bodywork_action", "status", "-f", str(PROJECT), "--kubeconfig", str(kubeconfig)]
    assert temporary_files_left(*command, says="nothing is deployed") == []  # it asked the cluster
    # the control: the same client, ended without its atexit handlers, leaves the files behind
    abandoned = textwrap.dedent(
        f"""
        import os
        from bodywork_action.kube.client import KubeTarget, connect_cluster
        connect_cluster(KubeTarget(kubeconfig={str(kubeconfig)!r}))
        os._exit(0)
        """
    )
    assert len(temporary_files_left("-c", abandoned)) == 3  # CA, certificate, key
