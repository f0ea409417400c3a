"""Secrets for local runs: parsing, and each stage getting exactly the keys its ``secrets`` section names."""

from __future__ import annotations

import pytest

from bodywork_action.errors import InputError, SecretKeyRef
from bodywork_action.local.secrets import build_stage_environ, parse_env_file
from bodywork_action.results import DeploymentStatus
from bodywork_action.secret_groups import SecretRequest, SecretSupply, Surface, build_secret_supply
from testing.local_runs import Project, batch, free_port, record_of, standard_pipeline

TOKEN = "tok-3f9a-canary-value"  # long enough to be redacted
PASSWORD = "pw-81c2-canary-value"
UNUSED = "unused-77d1-canary-value"


def test_env_file_lines_comments_quotes_and_export() -> None:
    text = "# comment\n\nexport A=1\nB = 'two words'\nC=\"x#y\"\nD=plain # trailing\nE=\n"
    assert parse_env_file(text, file=".env") == {
        "A": "1",
        "B": "two words",
        "C": "x#y",
        "D": "plain",
        "E": "",
    }


def test_a_bad_env_file_line_names_the_line_but_not_its_value() -> None:
    with pytest.raises(InputError, match=r"^\.env:2: ") as caught:
        parse_env_file(f"A=1\n{TOKEN}\n", file=".env")
    assert TOKEN not in str(caught.value)


def local_supply(keys: tuple[str, ...], *sources: dict[str, str]) -> SecretSupply:
    return build_secret_supply([SecretRequest("creds", keys)], list(sources), surface=Surface.LOCAL)


def test_keys_without_a_value_are_listed_and_no_value_is_shown() -> None:
    with pytest.raises(InputError) as caught:
        local_supply(("TOKEN", "MISSING"), {"TOKEN": TOKEN})
    assert "creds/MISSING" in str(caught.value)
    assert "creds/TOKEN" not in str(caught.value)
    assert "--env-file" in str(caught.value) and "Nothing was started" in str(caught.value)
    assert TOKEN not in str(caught.value) + repr(caught.value)


def test_the_environment_wins_over_the_env_file() -> None:
    supply = local_supply(("TOKEN",), {"TOKEN": "from-env"}, {"TOKEN": "from-file"})
    stage = batch("s", "work.py", secrets={"TOKEN": "creds"})
    assert build_stage_environ({}, stage=stage, supply=supply, extra={})["TOKEN"] == "from-env"
    assert supply.value_of(SecretKeyRef("creds", "TOKEN")) is not None
    assert "from-env" not in repr(supply)


def test_a_stage_environment_drops_every_supplied_secret_it_does_not_name() -> None:
    supply = local_supply(("TOKEN", "PASSWORD"), {"TOKEN": TOKEN, "PASSWORD": PASSWORD})
    inherited = {"PATH": "/bin", "TOKEN": TOKEN, "PASSWORD": PASSWORD, "HOME": "/root"}
    stage = batch("s", "work.py", secrets={"TOKEN": "creds"})

    environ = build_stage_environ(inherited, stage=stage, supply=supply, extra={"GIT_COMMIT_HASH": "abc1234"})

    assert environ == {"PATH": "/bin", "HOME": "/root", "TOKEN": TOKEN, "GIT_COMMIT_HASH": "abc1234"}


def test_secrets_from_an_env_file_reach_only_the_stages_that_name_them(project: Project) -> None:
    env_file = project.root / "local.env"
    env_file.write_text(
        f"BW_TEST_SECRET_TOKEN={TOKEN}\nBW_TEST_SECRET_PASSWORD={PASSWORD}\nBW_TEST_SECRET_UNUSED={UNUSED}\n"
    )
    pipeline = standard_pipeline(
        free_port(),
        prepare=batch("prepare", "work.py", secrets={"BW_TEST_SECRET_TOKEN": "creds"}),
        left=batch("left", "work.py", secrets={"BW_TEST_SECRET_PASSWORD": "db"}),
    )
    # The caller's own environment holds a supplied key too: it must not leak into other stages.
    environ = {**project.environ, "BW_TEST_SECRET_UNUSED": UNUSED}

    run = project.run(
        pipeline,
        environ=environ,
        env_file=env_file,
        secrets=(
            SecretRequest("creds", ("BW_TEST_SECRET_TOKEN", "BW_TEST_SECRET_UNUSED")),
            SecretRequest("db", ("BW_TEST_SECRET_PASSWORD",)),
        ),
    )

    assert run.result.status is DeploymentStatus.SUCCEEDED, run.output

    def secrets_seen(stage: str) -> dict[str, str]:
        env = record_of(project.out_dir, stage, "start")["env"]
        return {k: v for k, v in env.items() if k.startswith("BW_TEST_SECRET")}

    assert secrets_seen("prepare") == {"BW_TEST_SECRET_TOKEN": TOKEN}
    assert secrets_seen("left") == {"BW_TEST_SECRET_PASSWORD": PASSWORD}
    assert secrets_seen("right") == {}
    assert secrets_seen("serve") == {}
    # Stages print the secrets they see: the terminal and the logs show them redacted.
    assert "prepare sees BW_TEST_SECRET_TOKEN=***" in run.output
    logs = "".join(p.read_text() for p in (project.state_dir / "runs").glob("*/*.log"))
    assert "BW_TEST_SECRET_TOKEN=***" in logs
    for value in (TOKEN, PASSWORD, UNUSED):
        assert value not in run.output
        assert value not in logs
        assert value not in repr(run.result)


def test_a_secret_key_a_stage_names_but_nobody_supplied_is_a_warning(project: Project) -> None:
    pipeline = standard_pipeline(
        free_port(), prepare=batch("prepare", "work.py", secrets={"BW_TEST_SECRET_TOKEN": "creds"})
    )

    run = project.run(pipeline)

    assert run.result.status is DeploymentStatus.SUCCEEDED
    assert "--secret creds=BW_TEST_SECRET_TOKEN" in run.output
    assert "BW_TEST_SECRET_TOKEN" not in record_of(project.out_dir, "prepare", "start")["env"]
