"""The real-control-plane test tier: etcd, kube-apiserver, kube-controller-manager, kube-scheduler
and kwok, built from Go modules (build.sh) and started on 127.0.0.1 by the launcher.

See README.md in this directory. Entry points:
  python -m tests.cluster build                      # build (or confirm cached) binaries
  python -m tests.cluster up --kubeconfig PATH       # run a control plane until Ctrl-C
  tests.cluster.fixtures.control_plane               # session-scoped pytest fixture
"""

from tests.cluster.behaviours import LABEL, apply_behaviour, behaviour_fields
from tests.cluster.binaries import BuildFailed, BuildUnavailable, ensure_binaries
from tests.cluster.launcher import ControlPlane, ControlPlaneError, start_control_plane

__all__ = [
    "LABEL",
    "BuildFailed",
    "BuildUnavailable",
    "ControlPlane",
    "ControlPlaneError",
    "apply_behaviour",
    "behaviour_fields",
    "ensure_binaries",
    "start_control_plane",
]
