"""A batch stage that never ends, with a child process of its own: ``python hang.py NAME``.

Records both pids and prints ``hanging`` once both exist, then sleeps until killed.
"""

import subprocess
import sys
import time

from stage_record import record

name = sys.argv[1]
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
record(name, event="start", child_pid=child.pid)
print("hanging", flush=True)
time.sleep(3600)
