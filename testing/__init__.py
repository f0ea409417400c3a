"""Test tooling, shipped with the repository but not with the package: the fake Kubernetes API server
(``testing.fake_k8s``), the real control-plane launcher (``testing.cluster``) and the builders tests
share (``testing.builders``). Tests and benchmarks import from here; nothing here imports from tests/.
"""
