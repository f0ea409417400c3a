"""secret_groups.py: both spellings of a secret request, values from environ mappings, which keys are
missing, and the Secrets a deploy writes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bodywork_action.errors import InputError, SecretKeyRef
from bodywork_action.secret_groups import (
    SecretRequest,
    SecretSupply,
    SecretValue,
    Surface,
    build_needed_keys,
    build_secret_manifests,
    build_secret_plan,
    build_secret_supply,
    build_store_secret_name,
    github_secret_name,
    parse_secret_option,
    parse_secret_options,
    parse_secrets_input,
    secrets_group,
)
from testing.builders import batch, pipeline, service

PEM = "-----BEGIN KEY-----\nabc\ndef\n-----END KEY-----\n"


def test_secret_request_parses_name_and_keys() -> None:
    assert parse_secret_option("aws-credentials=AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY") == SecretRequest(
        "aws-credentials", ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("aws", "expected NAME=KEY1,KEY2"),
        ("=KEY", "expected NAME=KEY1,KEY2"),
        ("aws=", "lists no keys"),
        ("aws=A,,B", "list the keys"),
        ("Aws_Creds=A", "not a valid Kubernetes secret name"),
        ("aws=A B", "invalid key"),
    ],
)
def test_malformed_secret_request_is_an_input_error(text: str, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        parse_secret_option(text)


def test_the_same_secret_named_twice_merges_its_keys() -> None:
    assert parse_secret_options(["a=X,Y", "b=Z", "a=Y,W"]) == (
        SecretRequest("a", ("X", "Y", "W")),
        SecretRequest("b", ("Z",)),
    )


def test_values_come_from_the_environ_mapping_multiline_intact() -> None:
    supply = build_secret_supply([SecretRequest("ssh", ("KEY",))], [{"KEY": PEM}], group="prod")
    secret = supply.get("ssh")
    assert secret is not None
    assert secret.values["KEY"].reveal() == PEM
    assert supply.group == "prod"
    assert supply.all_values() == (PEM,)


def test_unset_and_empty_variables_are_listed_by_name_never_by_value() -> None:
    environ = {"A": "", "C": "visible-value"}
    with pytest.raises(InputError) as caught:
        build_secret_supply([SecretRequest("s", ("A", "B", "C"))], [environ])
    message = str(caught.value)
    assert "not set: s/B" in message
    assert "empty: s/A" in message
    assert "visible-value" not in message


def test_the_missing_value_hint_maps_the_key_to_a_name_github_allows() -> None:
    with pytest.raises(InputError) as caught:
        build_secret_supply([SecretRequest("web-tls", ("tls.key",))], [{}], surface=Surface.ACTION)
    assert "(tls.key: ${{ secrets.TLS_KEY }})" in str(caught.value)


@pytest.mark.parametrize(
    "key, name",
    [("MLFLOW_URI", "MLFLOW_URI"), ("tls.key", "TLS_KEY"), ("a-b", "A_B"), ("GITHUB_X", "SECRET_GITHUB_X")],
)
def test_github_secret_names(key: str, name: str) -> None:
    assert github_secret_name(key) == name


def test_secret_value_never_shows_in_repr_or_str() -> None:
    supply = build_secret_supply([SecretRequest("s", ("K",))], [{"K": "hunter2"}])
    assert "hunter2" not in repr(supply)
    assert "hunter2" not in str(SecretValue("hunter2"))


def test_needed_keys_cover_the_dag_and_the_failure_stage_but_not_unused_stages() -> None:
    p = pipeline(
        "a >> b",
        batch("a", secrets=[("db", "USER"), ("db", "PASSWORD")]),
        service("b", secrets=[("aws", "KEY_ID")]),
        batch("unused", secrets=[("never", "X")]),
        batch("on_fail", secrets=[("slack", "TOKEN"), ("db", "USER")]),
        name="p",
        run_on_failure="on_fail",
    )
    assert build_needed_keys(p) == (
        SecretKeyRef("aws", "KEY_ID"),
        SecretKeyRef("db", "PASSWORD"),
        SecretKeyRef("db", "USER"),
        SecretKeyRef("slack", "TOKEN"),
    )


def test_store_name_follows_bodywork_make_valid_k8s_name() -> None:
    assert build_store_secret_name("prod", "aws_credentials") == "prod-aws-credentials"
    assert build_store_secret_name("prod", "mlflow-config") == "prod-mlflow-config"


NEEDED = (SecretKeyRef("aws", "ID"), SecretKeyRef("aws", "KEY"), SecretKeyRef("db", "URI"))


def supply_of(**secrets: dict[str, str]) -> SecretSupply:
    requests = [SecretRequest(name, tuple(values)) for name, values in secrets.items()]
    environ = {k: v for values in secrets.values() for k, v in values.items()}
    return build_secret_supply(requests, [environ], group="prod")


def test_plan_with_everything_supplied_misses_nothing() -> None:
    plan = build_secret_plan(
        NEEDED,
        supply_of(aws={"ID": "i", "KEY": "k"}, db={"URI": "u"}),
        in_namespace={},
        in_store={},
        group="prod",
    )
    assert plan.missing == ()
    assert plan.create == ("aws", "db")
    assert plan.copy_from_store == ()


def test_plan_lists_every_missing_key_not_just_the_first() -> None:
    plan = build_secret_plan(NEEDED, supply_of(aws={"ID": "i"}), in_namespace={}, in_store={}, group="prod")
    assert plan.missing == (SecretKeyRef("aws", "KEY"), SecretKeyRef("db", "URI"))


def test_keys_already_in_the_namespace_count() -> None:
    plan = build_secret_plan(
        NEEDED,
        supply_of(aws={"ID": "i"}),
        in_namespace={"aws": {"KEY"}, "db": {"URI"}},
        in_store={},
        group="prod",
    )
    assert plan.missing == ()
    assert plan.copy_from_store == ()


def test_bodywork_store_is_copied_only_when_it_fills_a_gap() -> None:
    plan = build_secret_plan(
        NEEDED,
        SecretSupply(),
        in_namespace={"db": {"URI"}},
        in_store={"prod-aws": {"ID", "KEY"}, "prod-db": {"URI"}},
        group="prod",
    )
    assert plan.missing == ()
    assert plan.copy_from_store == ("aws",)
    assert plan.store_names == {"aws": "prod-aws"}


def test_store_of_another_group_does_not_count() -> None:
    plan = build_secret_plan(
        NEEDED, SecretSupply(), in_namespace={}, in_store={"dev-aws": {"ID", "KEY"}}, group="prod"
    )
    assert len(plan.missing) == 3


# --- one request type, two spellings, one set of rules ---------------------------------------------


@pytest.mark.parametrize(
    ("option", "input_text"),
    [
        ("db=USER,PASSWORD", "db: USER, PASSWORD"),
        ("db=USER,PASSWORD", "db: [USER, PASSWORD]"),
        ("db=USER,PASSWORD", "db:\n  - USER\n  - PASSWORD"),
        ("web.tls=tls.key,tls.crt", "web.tls: tls.key, tls.crt"),
    ],
)
def test_the_cli_option_and_the_action_input_are_two_spellings_of_one_request(
    option: str, input_text: str
) -> None:
    assert (parse_secret_option(option),) == parse_secrets_input(input_text)


@pytest.mark.parametrize(
    ("option", "input_text", "fragment"),
    [
        ("Aws=K", "Aws: K", "not a valid Kubernetes secret name"),
        ("aws=K K", "aws: K K", "invalid key"),
        ("aws=K,K", "aws: K, K", "listed twice"),
        ("-aws=K", "-aws: K", "not a valid Kubernetes secret name"),
    ],
)
def test_both_spellings_refuse_the_same_requests_for_the_same_reason(
    option: str, input_text: str, fragment: str
) -> None:
    with pytest.raises(InputError, match=fragment):
        parse_secret_option(option)
    with pytest.raises(InputError, match=fragment):
        parse_secrets_input(input_text)


def test_the_action_input_reports_every_problem_by_line() -> None:
    with pytest.raises(InputError) as caught:
        parse_secrets_input("ok: A\nBad: B\nempty:\n- C\nno colon here")
    message = str(caught.value)
    assert "line 2: 'Bad' is not a valid Kubernetes secret name" in message
    assert "line 3: secret 'empty' lists no keys" not in message  # '- C' below belongs to it
    assert "line 5: expected 'secret-name: KEY1, KEY2'" in message


@pytest.mark.parametrize(
    ("surface", "advice"),
    [
        (Surface.ACTION, "map it in the step's env (TOKEN: ${{ secrets.TOKEN }})"),
        (Surface.CLI, "export TOKEN=... first"),
        (Surface.LOCAL, "put TOKEN=... lines in the --env-file"),
    ],
)
def test_each_surface_is_told_how_to_supply_a_value_in_its_own_syntax(surface: Surface, advice: str) -> None:
    with pytest.raises(InputError) as caught:
        build_secret_supply([SecretRequest("api", ("TOKEN",))], [{}], surface=surface)
    assert advice in str(caught.value)
    other = {Surface.ACTION: "--env-file", Surface.CLI: "secrets.", Surface.LOCAL: "secrets."}[surface]
    assert other not in str(caught.value)


def test_the_first_source_with_a_key_wins() -> None:
    supply = build_secret_supply([SecretRequest("s", ("K",))], [{"K": "from-env"}, {"K": "from-file"}])
    assert supply.value_of(SecretKeyRef("s", "K")) == SecretValue("from-env")


def test_the_group_is_the_one_asked_for_then_the_pipeline_s_then_its_name() -> None:
    p = pipeline("a", batch("a"), name="p")
    assert secrets_group(SecretSupply(group="asked"), replace(p, secrets_group="own")) == "asked"
    assert secrets_group(SecretSupply(), replace(p, secrets_group="own")) == "own"
    assert secrets_group(SecretSupply(), p) == "p"


# --- the Secrets a deploy writes, rendered once -----------------------------------------------------


def test_a_new_secret_is_ours_holds_the_supplied_values_and_the_group() -> None:
    supply = supply_of(db={"URI": "postgresql://u:p@h/db"})
    plan = build_secret_plan((SecretKeyRef("db", "URI"),), supply, in_namespace={}, in_store={}, group="prod")
    (manifest,) = build_secret_manifests(
        plan, supply, existing={}, store={}, namespace="ml", group="prod", pipeline_label="demo"
    )
    assert manifest["metadata"]["namespace"] == "ml"
    assert manifest["stringData"] == {"URI": "postgresql://u:p@h/db"}
    assert "data" not in manifest
    labels = manifest["metadata"]["labels"]
    assert labels["app.kubernetes.io/part-of"] == "demo"
    assert labels["bodywork.dev/secret-group"] == "prod"
    assert labels["app.kubernetes.io/managed-by"] == "bodywork-action"


def test_an_existing_secret_keeps_its_other_keys_and_labels_and_is_not_claimed() -> None:
    supply = supply_of(db={"URI": "new"})
    existing = {"db": {"metadata": {"labels": {"team": "data"}}, "data": {"URI": "b2xk", "EXTRA": "eA=="}}}
    plan = build_secret_plan((SecretKeyRef("db", "URI"),), supply, in_namespace={}, in_store={}, group="prod")
    (manifest,) = build_secret_manifests(
        plan, supply, existing=existing, store={}, namespace="ml", group="prod", pipeline_label="demo"
    )
    assert manifest["data"] == {"EXTRA": "eA=="}  # the supplied key is not kept twice
    assert manifest["stringData"] == {"URI": "new"}
    assert manifest["metadata"]["labels"]["team"] == "data"
    assert "app.kubernetes.io/part-of" not in manifest["metadata"]["labels"]


def test_a_secret_copied_from_bodywork_s_store_keeps_its_data_under_the_supplied_values() -> None:
    supply = supply_of(aws={"ID": "now"})
    store = {"prod-aws": {"data": {"ID": "b2xk", "KEY": "a2V5"}}}
    plan = build_secret_plan(
        (SecretKeyRef("aws", "ID"), SecretKeyRef("aws", "KEY")),
        supply,
        in_namespace={},
        in_store={"prod-aws": {"ID", "KEY"}},
        group="prod",
    )
    assert plan.copy_from_store == ("aws",)  # KEY is found only in the store
    (manifest,) = build_secret_manifests(
        plan, supply, existing={}, store=store, namespace="ml", group="prod", pipeline_label="demo"
    )
    assert manifest["data"] == {"KEY": "a2V5"}
    assert manifest["stringData"] == {"ID": "now"}
    assert manifest["metadata"]["labels"]["app.kubernetes.io/part-of"] == "demo"
