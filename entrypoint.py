"""The container's entry point: run the action with the process environment and exit with its code.

Nothing else lives here; the flow (inputs → command → outputs and summary) is ``bodywork_action.action``.
"""

from __future__ import annotations

import os


def main() -> int:
    from bodywork_action.cli import set_program_gc_thresholds

    set_program_gc_thresholds()  # before the imports, which it speeds up too
    from bodywork_action.action import run_action

    return run_action(os.environ)


if __name__ == "__main__":
    from bodywork_action.cli import end_process

    end_process(main())
