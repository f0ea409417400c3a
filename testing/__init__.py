"""Test tooling, shipped with the repository but not with the package: the fake Kubernetes API server
(``testing.fake_k8s``), the real control-plane launcher (``testing.cluster``), the builders of the values
tests make (``testing.builders``: stages, pipelines, deploy contexts, the MLflow example's secrets) and
what each group of tests runs (``action_runs``, ``deploy_runs``, ``controlplane_runs``, ``local_runs``,
``k8s_objects``). Tests and benchmarks import from here; nothing here imports from tests/, and no test
imports from a conftest.py or another test module (tests/test_test_layout.py).
"""
