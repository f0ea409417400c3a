"""Bodywork 3.0.12's own controller against the fake API server: the baseline of bench_deploy.

Run by bench_deploy with the Python of a virtual environment that has ``bodywork==3.0.12`` (it cannot
share ours: it pins kubernetes 22.6). It runs ``bodywork.workflow_execution.run_workflow`` unchanged,
with these calls STUBBED, because the fake cannot answer them or they would leave this machine:

- ``download_project_code_from_repo`` copies a prepared folder (no git clone);
- ``get_git_commit_hash`` returns a fixed hash;
- ``image_exists_on_dockerhub`` returns True (no registry here);
- ``service_account_exists`` / ``setup_stages_service_account`` do nothing (RBAC objects: the fake has
  no Roles or RoleBindings).

    python bench/bodywork30_runner.py PROJECT_DIR KUBECONFIG WORKDIR

Prints ``BENCHRUN {json}``: wall, CPU of the workflow call, and for each stage the time its step's
monitor returned (Bodywork reports per step, not per stage).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path


def main() -> int:
    project_dir, kubeconfig, workdir = sys.argv[1:4]
    os.chdir(workdir)
    import_started = time.perf_counter()
    import bodywork.workflow_execution as wf
    from bodywork import k8s
    from kubernetes import config as kube_config

    import_wall = time.perf_counter() - import_started
    kube_config.load_kube_config(config_file=kubeconfig)

    def copy_project(url, branch=None, dest=Path("bodywork_project"), ssh_key_path=None):
        shutil.copytree(project_dir, dest)

    wf.download_project_code_from_repo = copy_project
    wf.get_git_commit_hash = lambda *_a, **_k: "0" * 40
    wf.image_exists_on_dockerhub = lambda *_a, **_k: True
    k8s.service_account_exists = lambda *_a, **_k: True
    k8s.setup_stages_service_account = lambda *_a, **_k: None

    noticed_at: dict[str, float] = {}

    def timed(monitor, key):
        def wrapper(objects, *args, **kwargs):
            out = monitor(objects, *args, **kwargs)
            now = time.time()
            for obj in objects:
                noticed_at.setdefault(obj.metadata.labels.get("stage", obj.metadata.name), now)
            return out

        return wrapper

    k8s.monitor_jobs_to_completion = timed(k8s.monitor_jobs_to_completion, "jobs")
    k8s.monitor_deployments_to_completion = timed(k8s.monitor_deployments_to_completion, "deployments")
    cpu0, started = time.process_time(), time.perf_counter()
    error = ""
    try:
        wf.run_workflow("https://github.com/example/bench", "main")
    except Exception as exc:  # reported, not raised: the parent prints it
        error = f"{type(exc).__name__}: {exc}"
    wall = time.perf_counter() - started
    print(
        "BENCHRUN "
        + json.dumps(
            {
                "succeeded": not error,
                "summary": error or "succeeded",
                "wall": wall,
                "deploy_cpu": time.process_time() - cpu0,
                "import_wall": import_wall,
                "noticed_at": noticed_at,
            }
        ),
        flush=True,
    )
    return 0 if not error else 1


if __name__ == "__main__":
    raise SystemExit(main())
