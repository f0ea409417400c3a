"""options.py: smoke-test specs and which stage's URL is the mlflow-url."""

from __future__ import annotations

import pytest

from bodywork_action.errors import InputError
from bodywork_action.options import choose_mlflow_stage
from testing.builders import batch, pipeline, service

TRACKING = service("tracking", module="mlflow_server.py", requirements=("mlflow==3.17.2", "psycopg2-binary"))
SCORING = service("scoring", module="scoring_service.py", requirements=("mlflow-skinny[sklearn]>=2", "flask"))


def test_the_tracking_server_is_chosen_not_a_service_that_only_imports_mlflow() -> None:
    p = pipeline("train >> scoring,tracking", batch("train", requirements=("mlflow",)), SCORING, TRACKING)
    stage, why = choose_mlflow_stage(p, "")
    assert stage == "tracking" and "mlflow_server.py" in why


def test_a_server_started_by_its_args_counts() -> None:
    runner = service("ui", module="run.py", requirements=("mlflow",), args=("server", "--port", "5000"))
    assert choose_mlflow_stage(pipeline("ui", runner), "")[0] == "ui"


def test_only_a_client_means_no_guess_and_says_how_to_choose() -> None:
    stage, why = choose_mlflow_stage(pipeline("scoring", SCORING), "")
    assert stage == "" and "set mlflow-stage" in why and "scoring" in why


def test_two_servers_are_ambiguous() -> None:
    other = service("other", module="tracking_server.py", requirements=("mlflow",))
    stage, why = choose_mlflow_stage(pipeline("tracking,other", TRACKING, other), "")
    assert stage == "" and "several stages" in why


def test_the_input_wins_and_must_name_a_service_stage() -> None:
    p = pipeline("train >> scoring", batch("train"), SCORING)
    assert choose_mlflow_stage(p, "scoring") == ("scoring", "named by the mlflow-stage input")
    with pytest.raises(InputError, match="'train' is not a service stage"):
        choose_mlflow_stage(p, "train")


def test_no_mlflow_anywhere_says_nothing() -> None:
    assert choose_mlflow_stage(pipeline("web", service("web", requirements=("flask",))), "") == ("", "")
