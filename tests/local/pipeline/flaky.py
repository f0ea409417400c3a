"""A batch stage that fails until it has been run N times: ``python flaky.py NAME COUNTER_FILE N``."""

import sys
from pathlib import Path

from stage_record import record

name, counter_file, needed = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
runs = int(counter_file.read_text()) + 1 if counter_file.exists() else 1
counter_file.write_text(str(runs))
record(name, event="run", runs=runs)
if runs < needed:
    print(f"run {runs} of {needed}: failing", flush=True)
    sys.exit(1)
print(f"run {runs}: succeeding", flush=True)
