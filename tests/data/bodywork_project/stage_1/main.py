"""Writes a file using numpy (checks that requirements install)."""

import numpy as np

np.savetxt("stage_1_output.txt", np.arange(3))
