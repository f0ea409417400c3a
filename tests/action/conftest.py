"""Action tests: entrypoint.py run as GitHub runs a container action (testing/action_runs.py), against the
fake API server (testing/fake_k8s)."""

from __future__ import annotations

from testing.action_runs import run_action, two_stage_workspace, workspace  # noqa: F401  (fixtures)
from testing.fake_k8s.fixtures import fake_cluster, fake_cluster_https  # noqa: F401  (fixtures)
