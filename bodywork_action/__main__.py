"""``python -m bodywork_action`` runs the CLI."""

import sys

from bodywork_action.cli import program

sys.exit(program())
