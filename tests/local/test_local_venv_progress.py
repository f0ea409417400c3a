"""What a venv build shows while pip works: its telling lines condensed, and "still at work" while it
prints nothing (pip is silent for a minute while it installs MLflow)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from bodywork_action.local.venvs import condense_pip_line, run_logged

# Prints one pip-like line, then says nothing until the file named by argv[1] exists.
SILENT_UNTIL_RELEASED = textwrap.dedent(
    """
    import os, sys, time
    print("Collecting mlflow==3.17.2", flush=True)
    while not os.path.exists(sys.argv[1]):
        time.sleep(0.02)
    print("Successfully installed alembic-1.0 mlflow-3.17.2", flush=True)
    """
)


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        ("Collecting mlflow==3.17.2", "Collecting mlflow==3.17.2"),
        (
            "  Downloading mlflow-3.17.2-py3-none-any.whl (28.1 MB)",
            "Downloading mlflow-3.17.2-py3-none-any.whl (28.1 MB)",
        ),
        (
            "Installing collected packages: a, b, c, d, e, f, g",
            "Installing collected packages a, b, c, d, e and 2 more (7 packages)",
        ),
        ("Installing collected packages: a, b", "Installing collected packages: a, b"),
        ("Successfully installed a-1.0 b-2.0 c-3.0", "Successfully installed a-1.0 b-2.0 c-3.0"),
        (
            "Successfully installed a-1 b-1 c-1 d-1 e-1 f-1",
            "Successfully installed a-1, b-1, c-1, d-1, e-1 and 1 more (6 packages)",
        ),
        ("  Using cached alembic-1.0-py3-none-any.whl", None),
        ("Requirement already satisfied: six", None),
    ],
)
def test_pip_lines_are_condensed_to_one_short_line_or_left_to_the_log(line: str, shown: str | None) -> None:
    assert condense_pip_line(line) == shown


def test_a_silent_install_is_said_to_be_still_at_work_until_it_ends(tmp_path: Path) -> None:
    release = tmp_path / "release"
    shown: list[str] = []

    def progress(text: str) -> None:
        shown.append(text)
        if "still at work" in text and "(after: Collecting" in text:
            release.touch()  # the command ends only after a "still at work" line that follows its first

    run_logged(
        [sys.executable, "-c", SILENT_UNTIL_RELEASED, str(release)],
        log_file=tmp_path / "env.log",
        progress=progress,
        what="pip install",
        environ={},
        tick_seconds=0.05,
    )

    pip_lines = [text for text in shown if "still at work" not in text]
    assert pip_lines == ["Collecting mlflow==3.17.2", "Successfully installed alembic-1.0 mlflow-3.17.2"]
    ticks = [text for text in shown if text.endswith("s so far (after: Collecting mlflow==3.17.2)")]
    assert ticks and ticks[0].startswith("pip install: still at work, ")
    log = (tmp_path / "env.log").read_text()
    assert "Collecting mlflow==3.17.2" in log and "still at work" not in log  # the log: pip's own words
