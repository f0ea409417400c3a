"""The real-control-plane tier: tests here run against etcd + kube-apiserver + controller-manager +
scheduler + kwok started on 127.0.0.1 (see testing/cluster/README.md)."""

from testing.cluster.fixtures import control_plane, cp_namespace

__all__ = ["control_plane", "cp_namespace"]
