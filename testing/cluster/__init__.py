"""The real-control-plane test tier: etcd, kube-apiserver, kube-controller-manager, kube-scheduler
and kwok, built from Go modules (build.sh) and started on 127.0.0.1 by the launcher.

See README.md in this directory. Entry points:
  python -m testing.cluster build                      # build (or confirm cached) binaries
  python -m testing.cluster up --kubeconfig PATH       # run a control plane until Ctrl-C
  testing.cluster.fixtures.control_plane               # session-scoped pytest fixture
"""

from testing.cluster.behaviours import LABEL, apply_behaviour, behaviour_fields
from testing.cluster.binaries import BuildFailed, BuildUnavailable, ensure_binaries
from testing.cluster.launcher import ControlPlane, ControlPlaneError, start_control_plane

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
