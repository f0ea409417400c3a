"""A batch stage: records its start, works for a while (``seconds``), records its end.

Usage: ``python work.py NAME [SECONDS]``. Prints every ``BW_TEST_`` secret it was given, so the tests
can check the terminal and the log show them redacted.
"""

import os
import sys
import time

from stage_record import record

name = sys.argv[1]
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
record(name, event="start")
for key in sorted(k for k in os.environ if k.startswith("BW_TEST_SECRET")):
    print(f"{name} sees {key}={os.environ[key]}", flush=True)
try:
    import bw_marker  # the cached-venv test installs this package from a local wheel

    print(f"bw_marker {bw_marker.VERSION} from {bw_marker.__file__}", flush=True)
except ImportError:
    pass
time.sleep(seconds)  # long enough that two concurrent stages overlap; never asserted as a duration
record(name, event="end")
print(f"{name} done", flush=True)
