"""A faithful-enough fake Kubernetes API server for tests and benchmarks.  See README.md."""

from .cluster import FakeCluster
from .controllers import Scenario
from .recording import Faults, RequestLog, RequestRecord
from .store import ApiError

__all__ = ["ApiError", "FakeCluster", "Faults", "RequestLog", "RequestRecord", "Scenario"]
