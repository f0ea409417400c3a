"""The run_on_failure stage: records that it ran. ``python on_failure.py NAME``."""

import sys

from stage_record import record

record(sys.argv[1], event="run")
print("cleaning up after a failure", flush=True)
