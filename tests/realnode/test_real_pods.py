"""Stage code really runs: the deploy engine against a control plane whose only node is a real kubelet
on containerd (testing/cluster/realnode.py). Each pod clones the exact commit with git-sync from the
host server, pip-installs from the local wheelhouse, and runs the module; services answer through the
apiserver's service proxy. Nothing here is scripted: exit codes, restarts, logs and deadlines are the
kubelet's and the controllers'.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from bodywork_action.kube.inventory import delete_pipeline, read_status
from bodywork_action.results import DeploymentStatus, StageStatus
from testing.cluster.sshserve import SshGitServer
from testing.realnode_runs import RealCluster, program_output, result_of, run_entrypoint, stage_logs

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

SERVICE_PY = """
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MESSAGE = "{message}"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{{MESSAGE}} stage={{os.environ['BODYWORK_STAGE']}} commit={{os.environ['GIT_COMMIT_HASH']}}"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


print("serving", MESSAGE, flush=True)
ThreadingHTTPServer(("0.0.0.0", int(os.environ["BODYWORK_SERVICE_PORT"])), Handler).serve_forever()
"""


def pipeline_yaml(name: str, dag: str, stages: dict[str, str], on_failure: str = "") -> str:
    failure = f"  run_on_failure: {on_failure}\n" if on_failure else ""
    body = "".join(
        f"  {stage}:\n" + "\n".join(f"    {line}" for line in spec.strip().splitlines()) + "\n"
        for stage, spec in stages.items()
    )
    return (
        f'version: "1.1"\npipeline:\n  name: {name}\n  docker_image: python:3.11-slim\n  DAG: {dag}\n'
        f"  secrets_group: test\n{failure}stages:\n{body}logging:\n  log_level: INFO\n"
    )


def batch(module: str, *, retries: int = 0, max_seconds: int = 120, extra: str = "") -> str:
    return (
        f"executable_module_path: {module}\ncpu_request: 0.1\nmemory_request_mb: 50\n{extra}"
        f"batch:\n  max_completion_time_seconds: {max_seconds}\n  retries: {retries}\n"
    )


def service(module: str, *, port: int = 8000, startup: int = 60, extra: str = "") -> str:
    return (
        f"executable_module_path: {module}\ncpu_request: 0.1\nmemory_request_mb: 50\n{extra}"
        f"service:\n  max_startup_time_seconds: {startup}\n  replicas: 1\n  port: {port}\n  ingress: false\n"
    )


def pod_logs(real: RealCluster, namespace: str, stage: str) -> list[str]:
    return [real.logs(namespace, pod.metadata.name) for pod in real.pods(namespace, stage)]


def terminated(pod: Any) -> Any:
    for status in pod.status.container_statuses or []:
        if status.name == "stage" and status.state.terminated is not None:
            return status.state.terminated
    return None


# ----------------------------------------------------------------------------------------------- (a)
PREPARE_PY = "import os\nprint('prepare computed', sum(range(101)), 'at', os.environ['GIT_COMMIT_HASH'])\n"
TRAIN_PY = (
    "import requests, sys\n"
    "print('train imported requests', requests.__version__, 'python', tuple(sys.version_info[:2]))\n"
)


def test_four_stage_dag_runs_real_code_and_the_service_answers_through_the_proxy(real: RealCluster) -> None:
    stages = {
        "prepare": batch("prepare.py"),
        "train": batch("train.py", extra="requirements:\n  - requests>=2.31,<3\n"),
        "score": service("score.py", port=8000),
        "api": service("api.py", port=9000),
    }
    project, commit = real.project(
        {
            "bodywork.yaml": pipeline_yaml("four", "prepare >> train,score >> api", stages),
            "prepare.py": PREPARE_PY,
            "train.py": TRAIN_PY,
            "score.py": SERVICE_PY.format(message="score v1"),
            "api.py": SERVICE_PY.format(message="api v1"),
        }
    )
    namespace = real.namespace()
    result = real.deploy(project, commit, namespace, smoke_tests={"api": "/health"})

    assert result.status is DeploymentStatus.SUCCEEDED, result.message
    assert [s.status for s in result.stages] == [StageStatus.SUCCEEDED] * 4
    # The batch stages' code ran, in real containers, at the exact commit.
    (prepare_log,) = pod_logs(real, namespace, "prepare")
    assert program_output(prepare_log, "prepare.py") == [f"prepare computed 5050 at {commit}"]
    (train_log,) = pod_logs(real, namespace, "train")
    assert "bodywork-action: installing requests>=2.31,<3" in train_log
    assert "train imported requests 2." in train_log and "python (3, 11)" in train_log
    # Both services answer through the apiserver's service proxy (EndpointSlices from real readiness).
    for stage, message in (("score", "score v1"), ("api", "api v1")):
        status, body = real.proxy(namespace, result_of(result, stage).url, "/health")
        assert status == 200
        assert body == f"{message} stage={stage} commit={commit}"
    # Parallel step: score was Ready while train ran (both started before either finished).
    train, score = result_of(result, "train"), result_of(result, "score")
    assert train.started_at is not None and score.started_at is not None
    assert score.started_at < train.finished_at and train.started_at < score.finished_at


# ----------------------------------------------------------------------------------------------- (b)
FLAKY_PY = "import socket, sys\nprint('attempt on', socket.gethostname(), flush=True)\nsys.exit(3)\n"


def test_failing_batch_stage_retries_in_real_pods_then_run_on_failure_runs(real: RealCluster) -> None:
    stages = {
        "flaky": batch("flaky.py", retries=1),
        "after": batch("after.py"),
        "on_fail": batch("on_fail.py"),
    }
    project, commit = real.project(
        {
            "bodywork.yaml": pipeline_yaml("fails", "flaky >> after", stages, on_failure="on_fail"),
            "flaky.py": FLAKY_PY,
            "after.py": "print('must not run')\n",
            "on_fail.py": "print('cleaning up after the failure')\n",
        }
    )
    namespace = real.namespace()
    result = real.deploy(project, commit, namespace)

    assert result.status is DeploymentStatus.FAILED
    flaky = result_of(result, "flaky")
    assert flaky.status is StageStatus.FAILED
    assert flaky.attempts == 2
    assert flaky.reason == "BackoffLimitExceeded"
    pods = real.pods(namespace, "flaky")
    assert len(pods) == 2  # two real attempts, each its own pod
    assert [terminated(p).exit_code for p in pods] == [3, 3]
    hostnames = [real.logs(namespace, p.metadata.name).splitlines()[-1] for p in pods]
    assert hostnames == [f"attempt on {p.metadata.name}" for p in pods]
    assert result_of(result, "after").status in (StageStatus.PENDING, StageStatus.SKIPPED)
    assert real.pods(namespace, "after") == []
    on_fail = result_of(result, "on_fail")
    assert on_fail.run_on_failure and on_fail.status is StageStatus.SUCCEEDED
    (on_fail_log,) = pod_logs(real, namespace, "on-fail")
    assert program_output(on_fail_log, "on_fail.py") == ["cleaning up after the failure"]


# ----------------------------------------------------------------------------------------------- (c)
def test_batch_stage_over_its_time_limit_is_killed_near_the_limit_per_attempt(real: RealCluster) -> None:
    """max_completion_time_seconds is per attempt, as Bodywork's users read it: each attempt's module is
    stopped near that limit, and the retry gets its own full time (not a share of one Job budget)."""
    max_seconds, tolerance = 8, 20  # tolerance: the kubelet's status sync, SIGTERM -> SIGKILL grace
    stages = {"slow": batch("slow.py", retries=1, max_seconds=max_seconds)}
    project, commit = real.project(
        {
            "bodywork.yaml": pipeline_yaml("slow", "slow", stages),
            "slow.py": "import time\nprint('started', flush=True)\ntime.sleep(100000)\n",
        }
    )
    namespace = real.namespace()
    cancel = threading.Event()
    outcome: dict[str, Any] = {}

    def deploy() -> None:
        outcome["result"] = real.deploy(project, commit, namespace, cancel=cancel)

    worker = threading.Thread(target=deploy, daemon=True)
    worker.start()
    try:
        # Bounded: two attempts of (limit + tolerance), the 10 s back-off, and start-up on a busy machine.
        worker.join(timeout=2 * (max_seconds + tolerance) + 10 + 120)
        pods = real.pods(namespace, "slow")
        ended = [terminated(p) for p in pods]
        assert len(pods) == 2 and all(ended), (
            f"expected two attempts, each stopped near its {max_seconds}s limit; "
            f"found {[(p.metadata.name, p.status.phase) for p in pods]}"
        )
        for pod, end in zip(pods, ended, strict=True):
            lived = (end.finished_at - end.started_at).total_seconds()
            assert max_seconds - 1 <= lived <= max_seconds + tolerance, (pod.metadata.name, lived)
            assert end.exit_code != 0
            assert "started" in real.logs(namespace, pod.metadata.name)
        assert not worker.is_alive()
        slow = result_of(outcome["result"], "slow")
        assert slow.status is StageStatus.FAILED and slow.attempts == 2
    finally:
        cancel.set()
        worker.join(timeout=120)


# ----------------------------------------------------------------------------------------------- (d)
def test_crash_looping_rollout_is_rolled_back_while_the_old_revision_keeps_answering(
    real: RealCluster,
) -> None:
    stages = {"web": service("web.py", startup=20)}
    project, first = real.project(
        {
            "bodywork.yaml": pipeline_yaml("rollback", "web", stages),
            "web.py": SERVICE_PY.format(message="web v1"),
        }
    )
    namespace = real.namespace()
    result = real.deploy(project, first, namespace)
    assert result.status is DeploymentStatus.SUCCEEDED, result.message
    url = result_of(result, "web").url

    second = project.commit(
        {"web.py": "import sys\nprint('v2 cannot start', flush=True)\nsys.exit(2)\n"}, "break"
    )
    answers: list[tuple[int, str]] = []
    restarts: list[tuple[int, int | None]] = []
    done = threading.Event()

    def watch() -> None:
        for _ in range(600):  # bounded: at most ~10 min at 1 request a second
            if done.is_set():
                return
            answers.append(real.proxy(namespace, url, "/"))
            for pod in real.pods(namespace, "web"):
                for status in pod.status.container_statuses or []:
                    last = status.last_state.terminated if status.last_state else None
                    if status.restart_count:
                        restarts.append((status.restart_count, last.exit_code if last else None))
            done.wait(1.0)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        broken = real.deploy(project, second, namespace, deployment_id="run-2")
    finally:
        done.set()
        watcher.join(timeout=60)
    assert broken.status is DeploymentStatus.FAILED
    web = result_of(broken, "web")
    assert web.status is StageStatus.FAILED and web.rolled_back
    assert restarts and max(count for count, _ in restarts) >= 1  # the kubelet really restarted it
    assert {code for _, code in restarts} - {None} == {2}
    assert answers  # at least one request answered while the broken revision was rolling out
    # During the broken rollout every request was answered by the old revision ...
    assert set(answers) == {(200, f"web v1 stage=web commit={first}")}
    # ... and after the rollback too.
    assert real.proxy(namespace, url, "/") == (200, f"web v1 stage=web commit={first}")
    assert any("v2 cannot start" in line for lines in web.logs.values() for line in lines)


# ----------------------------------------------------------------------------------------------- (e)
SECRET_VALUE = "canary-7f3a9c-real-pods"


def test_secrets_reach_exactly_the_stages_that_name_them_and_never_a_log(real: RealCluster) -> None:
    from bodywork_action.secret_groups import SecretRequest, build_secret_supply

    reader = (
        "import hashlib, os\n"
        "value = os.environ.get('API_TOKEN')\n"
        "print('token sha256', hashlib.sha256(value.encode()).hexdigest() if value else 'absent')\n"
    )
    stages = {
        "uses_it": batch("reader.py", extra="secrets:\n  API_TOKEN: api-credentials\n"),
        "does_not": batch("other.py"),
    }
    project, commit = real.project(
        {
            "bodywork.yaml": pipeline_yaml("secrets", "uses_it >> does_not", stages),
            "reader.py": reader,
            "other.py": reader,
        }
    )
    namespace = real.namespace()
    supply = build_secret_supply(
        [SecretRequest("api-credentials", ("API_TOKEN",))], [{"API_TOKEN": SECRET_VALUE}], group="test"
    )
    result = real.deploy(project, commit, namespace, secrets=supply)
    assert result.status is DeploymentStatus.SUCCEEDED, result.message
    digest = hashlib.sha256(SECRET_VALUE.encode()).hexdigest()
    (uses_log,) = pod_logs(real, namespace, "uses-it")
    (other_log,) = pod_logs(real, namespace, "does-not")
    assert program_output(uses_log, "reader.py") == [f"token sha256 {digest}"]
    assert program_output(other_log, "other.py") == ["token sha256 absent"]
    everything = repr(result) + "".join(
        pod_logs(real, namespace, "uses-it") + pod_logs(real, namespace, "does-not")
    )
    assert SECRET_VALUE not in everything


# ----------------------------------------------------------------------------------------------- (f)
def test_the_mlflow_example_deploys_for_real_and_answers_through_the_proxy(
    real: RealCluster, tmp_path: Path
) -> None:
    from testing.action_runs import MLFLOW_SECRETS_INPUT

    project, commit = real.project(
        {name: (REPO_ROOT / name).read_text() for name in ("bodywork.yaml", "mlflow_server.py")}
    )
    namespace = real.namespace()
    env = {
        "MLFLOW_BACKEND_STORE_URI": "sqlite:////tmp/mlflow.db",
        "MLFLOW_DEFAULT_ARTIFACT_ROOT": "/tmp/mlartifacts",
        "AWS_ACCESS_KEY_ID": "unused",
        "AWS_SECRET_ACCESS_KEY": "unused",
        "AWS_DEFAULT_REGION": "unused",
    }
    inputs = {
        "kubeconfig": real.tier.cp.kubeconfig_path.read_text(),
        "secrets": MLFLOW_SECRETS_INPUT,
        "namespace": namespace,
        "repository-url": project.url,
        "commit": commit,
        "smoke-test": "server=/health",
    }
    started = time.monotonic()
    done, outputs = run_entrypoint(project.path, tmp_path / "run", inputs, env)
    first_deploy = time.monotonic() - started
    print(f"MLflow example: first deploy on the real node took {first_deploy:.1f}s")
    assert done.returncode == 0, done.stdout + done.stderr
    url = f"http://server.{namespace}.svc.cluster.local:5000"
    assert outputs["status"] == "succeeded" and outputs["mlflow-url"] == url
    assert real.proxy(namespace, url, "/health") == (200, "OK")
    status, body = real.proxy(
        namespace, url, "/api/2.0/mlflow/experiments/create", body={"name": "real-pods"}
    )
    assert status == 200, body
    assert json.loads(body)["experiment_id"]
    status, body = real.proxy(
        namespace, url, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=real-pods"
    )
    assert status == 200 and json.loads(body)["experiment"]["name"] == "real-pods"


# ----------------------------------------------------------------------------------------------- (g)
def test_redeploy_of_a_new_commit_serves_the_new_code_then_status_and_delete(real: RealCluster) -> None:
    stages = {"setup": batch("setup.py"), "web": service("web.py")}
    project, first = real.project(
        {
            "bodywork.yaml": pipeline_yaml("redeploy", "setup >> web", stages),
            "setup.py": "print('setup v1')\n",
            "web.py": SERVICE_PY.format(message="web v1"),
        }
    )
    namespace = real.namespace()
    assert real.deploy(project, first, namespace).status is DeploymentStatus.SUCCEEDED
    second = project.commit(
        {"web.py": SERVICE_PY.format(message="web v2"), "setup.py": "print('setup v2')\n"}
    )
    result = real.deploy(project, second, namespace, deployment_id="run-2")
    assert result.status is DeploymentStatus.SUCCEEDED, result.message
    url = result_of(result, "web").url
    assert real.proxy(namespace, url, "/") == (200, f"web v2 stage=web commit={second}")
    setup_outputs = [program_output(log, "setup.py") for log in pod_logs(real, namespace, "setup")]
    assert ["setup v2"] in setup_outputs

    state = read_status(project.pipeline(), target=real.target, namespace=namespace)
    by_stage = {s.stage: s for s in state.stages}
    assert by_stage["web"].status == "succeeded" and by_stage["web"].commit == second
    assert by_stage["setup"].commit == second and by_stage["setup"].status == "succeeded"
    deleted = delete_pipeline(project.pipeline(), target=real.target, namespace=namespace)
    assert "Deployment/web" in deleted.deleted and "Service/web" in deleted.deleted
    deadline = time.monotonic() + 60
    while real.pods(namespace) and time.monotonic() < deadline:
        time.sleep(1)
    assert real.pods(namespace) == []


# ------------------------------------------------------------------------------- private repository
def test_a_private_repository_is_cloned_with_the_token_in_the_credentials_secret(real: RealCluster) -> None:
    from kubernetes import client

    stages = {"hello": batch("hello.py")}
    project, commit = real.project(
        {
            "bodywork.yaml": pipeline_yaml("private", "hello", stages),
            "hello.py": "print('private code ran')\n",
        }
    )
    real.tier.node.host_server.require_auth(project.name, "deploy-bot", "tok-3f9a")
    namespace = real.namespace()
    with real.api() as api:
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": namespace}})
        core.create_namespaced_secret(
            namespace,
            {
                "metadata": {"name": "git-token"},
                "stringData": {"username": "deploy-bot", "password": "tok-3f9a"},
            },
        )
    result = real.deploy(project, commit, namespace, git_credentials_secret="git-token")
    assert result.status is DeploymentStatus.SUCCEEDED, result.message
    (hello_log,) = pod_logs(real, namespace, "hello")
    assert program_output(hello_log, "hello.py") == ["private code ran"]
    # Without the secret the same clone is refused (the server really demands the token).
    other = real.namespace()
    refused = real.deploy(project, commit, other, deployment_id="run-2")
    assert refused.status is DeploymentStatus.FAILED
    (pod,) = real.pods(other, "hello")[:1]
    init = pod.status.init_container_statuses[0]
    assert init.name == "git-sync" and (init.state.terminated or init.last_state.terminated).exit_code != 0


# ------------------------------------------------------------------------- private repository over SSH
def _ssh_credentials(real: RealCluster, namespace: str, private_key: str, known_hosts: str) -> None:
    from kubernetes import client

    with real.api() as api:
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": namespace}})
        core.create_namespaced_secret(
            namespace,
            {
                "metadata": {"name": "git-ssh"},
                "stringData": {"ssh": private_key, "known_hosts": known_hosts},
            },
        )


def _ssh_project(real: RealCluster, ssh_git: SshGitServer) -> tuple[Any, str, str]:
    """A project served only over SSH whose branch tip has moved past the commit under test."""
    stages = {"hello": batch("hello.py")}
    hello = "import os\nprint('{version} ran over ssh at', os.environ['GIT_COMMIT_HASH'])\n"
    project, first = real.project(
        {
            "bodywork.yaml": pipeline_yaml("ssh", "hello", stages),
            "hello.py": hello.format(version="v1"),
        }
    )
    second = project.commit({"hello.py": hello.format(version="v2")}, "tip")
    project.url = ssh_git.url(project.path)
    return project, first, second


def _served_over_http(real: RealCluster, project: Any) -> list[tuple[str, str, int]]:
    return [r for r in real.tier.node.host_server.requests if f"/git/{project.name}" in r[1]]


def test_a_private_repository_is_cloned_over_ssh_with_the_deploy_key_and_known_hosts(
    real: RealCluster, ssh_git: SshGitServer
) -> None:
    project, first, second = _ssh_project(real, ssh_git)
    assert project.url.startswith(f"ssh://root@{real.tier.node.gateway}:{ssh_git.port}/")
    namespace = real.namespace()
    _ssh_credentials(real, namespace, ssh_git.private_key, ssh_git.known_hosts_line)
    started = time.monotonic()
    result = real.deploy(project, first, namespace, git_credentials_secret="git-ssh")
    print(f"SSH private repository: deploy took {time.monotonic() - started:.1f}s")
    assert result.status is DeploymentStatus.SUCCEEDED, result.message
    # The exact commit ran (v1), not the branch tip (v2) ...
    (hello_log,) = pod_logs(real, namespace, "hello")
    assert program_output(hello_log, "hello.py") == [f"v1 ran over ssh at {first}"]
    assert second != first
    # ... fetched over SSH with the deploy key (git-shell ran upload-pack), never over HTTP.
    log = ssh_git.log_text()
    assert "Accepted publickey for root" in log, log
    assert "git-shell" in log
    assert _served_over_http(real, project) == []


def test_a_wrong_ssh_known_hosts_line_fails_the_stage_quickly_and_says_why(
    real: RealCluster, ssh_git: SshGitServer, tmp_path: Path
) -> None:
    from testing.cluster.sshserve import keygen

    project, first, _ = _ssh_project(real, ssh_git)
    impostor = keygen(tmp_path / "other_host_key", "not-the-server")
    wrong = f"[{ssh_git.host}]:{ssh_git.port} {' '.join(impostor.split()[:2])}\n"
    namespace = real.namespace()
    _ssh_credentials(real, namespace, ssh_git.private_key, wrong)
    cancel = threading.Event()
    outcome: dict[str, Any] = {}

    def deploy() -> None:
        outcome["result"] = real.deploy(
            project, first, namespace, git_credentials_secret="git-ssh", cancel=cancel
        )

    started = time.monotonic()
    worker = threading.Thread(target=deploy, daemon=True)
    worker.start()
    try:
        worker.join(timeout=180)  # bounded: a clone that can't verify the host must not hang
        elapsed = time.monotonic() - started
        assert not worker.is_alive(), f"the deploy still waits after {elapsed:.0f}s"
    finally:
        cancel.set()
        worker.join(timeout=120)
    print(f"SSH wrong known_hosts: the deploy failed after {elapsed:.1f}s")
    result = outcome["result"]
    assert result.status is DeploymentStatus.FAILED
    hello = result_of(result, "hello")
    assert hello.status is StageStatus.FAILED
    # The stage's failure says why: ssh refused the host key, in git-sync's own log.
    assert "Host key verification failed" in stage_logs(result, "hello"), hello
    (pod,) = real.pods(namespace, "hello")[:1]
    init = pod.status.init_container_statuses[0]
    assert init.name == "git-sync" and (init.state.terminated or init.last_state.terminated).exit_code != 0
    # The client stopped before authenticating: the server never accepted the key.
    assert "Accepted publickey" not in ssh_git.log_text()
