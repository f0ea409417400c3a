"""testing/images.py: the engine shared by several holders, and the stand-in Python base images."""

from __future__ import annotations

from testing.image import docker_run
from testing.images import (
    STAND_IN_LABEL,
    Engine,
    _answers,
    ensure_engine,
    ensure_python_base_image,
    recipe_id,
)


def test_a_second_holder_leaving_does_not_stop_the_engine_the_session_holds(engine: Engine) -> None:
    with ensure_engine() as second:
        assert second.host == engine.host
        assert second.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
    assert _answers(engine.host)


def test_a_stand_in_is_tagged_with_any_python_name_and_reused(engine: Engine) -> None:
    tag = "python:3.11-slim"
    assert ensure_python_base_image(tag, engine) == tag
    first_id = engine.docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
    assert engine.image_label(tag, STAND_IN_LABEL) == recipe_id()
    assert ensure_python_base_image(tag, engine) == tag
    assert engine.docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip() == first_id
    # python, pip and venv as the official images have them; pip may install into the system.
    done = docker_run(
        engine,
        tag,
        "sh",
        "-c",
        "python --version && pip --version && python -m venv /tmp/v && test ! -e "
        '"$(python -c \'import sysconfig; print(sysconfig.get_path("stdlib"))\')/EXTERNALLY-MANAGED"',
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Python 3.")
