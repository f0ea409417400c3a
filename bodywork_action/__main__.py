"""``python -m bodywork_action`` runs the CLI."""

from bodywork_action.cli import program

program()
