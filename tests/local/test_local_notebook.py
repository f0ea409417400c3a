"""A ``.ipynb`` stage runs with nbconvert in its own venv (requirements + nbconvert, ipykernel)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bodywork_action.results import DeploymentStatus
from testing.local_runs import Project, batch, build_pipeline, read_records


@pytest.mark.slow  # builds a venv with nbconvert + ipykernel from PyPI (~25 s)
def test_a_notebook_stage_runs_in_its_venv_and_the_executed_copy_is_kept_with_logs(
    project: Project,
) -> None:
    pipeline = build_pipeline("notebook", batch("notebook", "notebook.ipynb"))

    run = project.run(pipeline, reuse_env=False)

    assert run.result.status is DeploymentStatus.SUCCEEDED, run.output
    (record,) = read_records(project.out_dir, "notebook")
    assert Path(record["prefix"]).parent == project.cache_dir  # the kernel ran in the stage's venv
    (executed,) = (project.state_dir / "runs").glob("*/notebook.ipynb")
    outputs = json.loads(executed.read_text())["cells"][1]["outputs"]
    assert any("notebook done" in "".join(o.get("text", "")) for o in outputs)
    assert not list(project.root.glob("*.nbconvert.ipynb"))  # nothing written into the source tree
