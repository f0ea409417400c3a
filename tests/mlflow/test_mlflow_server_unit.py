"""The pure parts of mlflow_server.py: argv and environment built from a configuration mapping."""

from __future__ import annotations

import json
import os
import re
import sys
import types

import pytest

import mlflow_server as ms

ALL_MODULES = {"psycopg2", "psycopg", "boto3", "uvloop", "sentry_sdk"}
PG_URI = "postgresql://mlflow:s3cr3t-pw@db.example:5432/mlflow"


def have(*names: str):
    return lambda module: module in names


def launch(env: dict, args: list[str] | None = None, modules=ALL_MODULES, **kwargs) -> ms.Launch:
    return ms.build_launch(env, args or [], have_module=have(*modules), python="/py", **kwargs)


def option(argv: list[str], name: str) -> str:
    return argv[len(argv) - 1 - argv[::-1].index(name) + 1]


def test_defaults_are_a_local_four_worker_proxied_server():
    result = launch({})
    assert result.argv[:4] == ["/py", "-m", "mlflow", "server"]
    assert option(result.argv, "--host") == "0.0.0.0"
    assert option(result.argv, "--port") == "5000"
    assert option(result.argv, "--workers") == "4"
    assert "--serve-artifacts" in result.argv
    env = result.env
    assert env["MLFLOW_BACKEND_STORE_URI"] == "sqlite:///mlflow.db"
    assert env["MLFLOW_ARTIFACTS_DESTINATION"] == "./mlartifacts"
    assert env["MLFLOW_SERVE_ARTIFACTS"] == "true"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert env["DO_NOT_TRACK"] == "true"
    assert env["MLFLOW_SERVER_SGI"] == "gunicorn"
    assert "--worker-class gthread" in env["MLFLOW_GUNICORN_OPTS"]
    assert "--access-logfile" not in env["MLFLOW_GUNICORN_OPTS"]
    assert "MLFLOW_UVICORN_OPTS" not in env
    assert "PYTHONPATH" not in env


def test_artifact_root_becomes_the_proxied_destination_and_is_removed():
    result = launch({"MLFLOW_DEFAULT_ARTIFACT_ROOT": "s3://bucket/prefix"})
    assert result.env["MLFLOW_ARTIFACTS_DESTINATION"] == "s3://bucket/prefix"
    assert "MLFLOW_DEFAULT_ARTIFACT_ROOT" not in result.env  # it would switch MLflow to direct mode
    assert "--default-artifact-root" not in result.argv


def test_postgres_uri_gets_the_psycopg2_driver_and_stays_off_the_command_line():
    result = launch({"MLFLOW_BACKEND_STORE_URI": PG_URI})
    assert result.env["MLFLOW_BACKEND_STORE_URI"] == PG_URI.replace("postgresql://", "postgresql+psycopg2://")
    assert not any("s3cr3t-pw" in arg for arg in result.argv)
    assert not any("s3cr3t-pw" in message for message in result.messages)
    assert any("mlflow:***@db.example" in message for message in result.messages)


@pytest.mark.parametrize(
    ("uri", "modules", "expected"),
    [
        ("postgres://u:p@h/db", {"psycopg2"}, "postgresql+psycopg2://u:p@h/db"),
        ("postgresql://u:p@h/db", {"psycopg"}, "postgresql+psycopg://u:p@h/db"),
        ("postgresql+psycopg://u:p@h/db", {"psycopg"}, "postgresql+psycopg://u:p@h/db"),
        ("mysql://u:p@h/db", {"pymysql"}, "mysql+pymysql://u:p@h/db"),
        ("sqlite:////var/lib/mlflow/mlflow.db", set(), "sqlite:////var/lib/mlflow/mlflow.db"),
        ("SQLITE:///x.db", set(), "sqlite:///x.db"),
        ("file:///srv/mlruns", set(), "file:///srv/mlruns"),
        ("./mlruns", set(), "./mlruns"),
    ],
)
def test_backend_uri_normalisation(uri, modules, expected):
    assert ms.normalise_backend_uri(uri, have(*modules)) == expected


@pytest.mark.parametrize(
    ("uri", "modules", "message"),
    [
        ("postgresql://u:pw123@h/db", set(), "pip install psycopg2-binary"),
        ("postgresql+pg8000://u:pw123@h/db", {"psycopg2"}, "pip install pg8000"),
        ("mysql://u:pw123@h/db", set(), "pip install PyMySQL"),
        ("oracle://u:pw123@h/db", ALL_MODULES, "unknown scheme 'oracle'"),
        ("mongodb://u:pw123@h/db", ALL_MODULES, "unknown scheme 'mongodb'"),
        ("redis:h/db", ALL_MODULES, "is not a URI MLflow can use"),
    ],
)
def test_bad_backend_uris_are_config_errors_with_the_password_masked(uri, modules, message):
    with pytest.raises(ms.ConfigError) as caught:
        ms.normalise_backend_uri(uri, have(*modules))
    assert message in str(caught.value)
    assert "pw123" not in str(caught.value)


@pytest.mark.parametrize(
    ("root", "modules", "message"),
    [
        ("s3://bucket", set(), "pip install boto3"),
        ("gs://bucket", ALL_MODULES, "pip install google-cloud-storage"),
        ("nfs://server/share", ALL_MODULES, "unknown scheme 'nfs'"),
    ],
)
def test_bad_artifact_roots(root, modules, message):
    with pytest.raises(ms.ConfigError, match=message):
        launch({"MLFLOW_DEFAULT_ARTIFACT_ROOT": root}, modules=modules)


@pytest.mark.parametrize(
    ("uri", "masked"),
    [
        (PG_URI, "postgresql://mlflow:***@db.example:5432/mlflow"),
        (
            "mysql+pymysql://u:p%40ss@h/db?ssl_key=/k&charset=utf8",
            "mysql+pymysql://u:***@h/db?ssl_key=***&charset=utf8",
        ),
        ("postgresql://u:pw@h/db?sslpassword=zz", "postgresql://u:***@h/db?sslpassword=***"),
        ("postgresql://user@h/db", "postgresql://user@h/db"),
        ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
        ("s3://bucket/prefix", "s3://bucket/prefix"),
    ],
)
def test_mask_uri(uri, masked):
    assert ms.mask_uri(uri) == masked


def test_port_precedence_and_the_kubernetes_mlflow_port_collision():
    env = {"MLFLOW_PORT": "tcp://10.0.0.7:5000"}
    assert option(launch(env).argv, "--port") == "5000"
    assert "MLFLOW_PORT" not in launch(env).env
    assert option(launch({**env, "BODYWORK_SERVICE_PORT": "8080"}).argv, "--port") == "8080"
    assert option(launch({"BODYWORK_SERVICE_PORT": "8080"}, ["--port", "5060"]).argv, "--port") == "5060"
    assert option(launch({"MLFLOW_HOST": "127.0.0.1"}).argv, "--host") == "127.0.0.1"


def test_extra_arguments_are_passed_to_mlflow_server():
    result = launch({}, ["--host", "127.0.0.1", "--static-prefix", "/mlflow"])
    assert option(result.argv, "--host") == "127.0.0.1"
    assert result.argv[-2:] == ["--static-prefix", "/mlflow"]


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"MLFLOW_WORKERS": "many"}, [], "MLFLOW_WORKERS='many'"),
        ({"MLFLOW_WORKERS": "0"}, [], "MLFLOW_WORKERS='0'"),
        ({"BODYWORK_SERVICE_PORT": "http"}, [], "BODYWORK_SERVICE_PORT='http'"),
        ({}, ["--port", "70000"], "--port='70000'"),
    ],
)
def test_bad_numbers(env, args, message):
    with pytest.raises(ms.ConfigError, match=message):
        launch(env, args)


def test_workers_and_user_overrides_are_respected():
    env = {
        "MLFLOW_WORKERS": "2",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true",
        "MLFLOW_ACCESS_LOG": "true",
        "MLFLOW_UVICORN_OPTS": "--timeout-keep-alive 75",
    }
    result = launch(env)
    assert option(result.argv, "--workers") == "2"
    assert result.env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"
    assert result.env["MLFLOW_UVICORN_OPTS"] == "--timeout-keep-alive 75"
    assert not any("uvloop" in m for m in result.messages)
    without_uvloop = launch(env, modules={"psycopg2"})
    assert any("pip install uvloop" in m for m in without_uvloop.messages)


def test_empty_aws_placeholders_are_dropped():
    env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": " ", "AWS_DEFAULT_REGION": "eu-west-2"}
    result = launch(env)
    assert "AWS_ACCESS_KEY_ID" not in result.env
    assert "AWS_SECRET_ACCESS_KEY" not in result.env
    assert result.env["AWS_DEFAULT_REGION"] == "eu-west-2"


def test_allowed_hosts_from_the_engine_variables():
    env = {
        "BODYWORK_STAGE": "server",
        "BODYWORK_NAMESPACE": "bodywork-mlflow",
        "BODYWORK_SERVICE_PORT": "5000",
    }
    hosts = launch(env).env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    for name in (
        "server",
        "server.bodywork-mlflow",
        "server.bodywork-mlflow.svc",
        "server.bodywork-mlflow.svc.cluster.local",
    ):
        assert name in hosts
        assert f"{name}:5000" in hosts
    for default in ("localhost", "localhost:*", "127.0.0.1:*", "10.*", "172.16.*", "172.31.*", "192.168.*"):
        assert default in hosts
    assert "*" not in hosts


def test_allowed_hosts_use_the_kubernetes_name_of_the_stage():
    env = {"BODYWORK_STAGE": "Tracking_Server", "BODYWORK_NAMESPACE": "ml"}
    hosts = launch(env).env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert "tracking-server.ml.svc.cluster.local:5000" in hosts


def test_allowed_hosts_fall_back_to_what_the_pod_can_see():
    result = launch({}, hostname="server-7d9f8b5c4-x2x9k", sa_namespace="bodywork-mlflow\n")
    hosts = result.env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert "server.bodywork-mlflow.svc.cluster.local:5000" in hosts
    assert "server-7d9f8b5c4-x2x9k" in hosts
    assert ms.deployment_from_pod_name("my-laptop") == ""


def test_explicit_allowed_hosts_win():
    result = launch({"MLFLOW_SERVER_ALLOWED_HOSTS": "mlflow.example.com", "BODYWORK_STAGE": "server"})
    assert result.env["MLFLOW_SERVER_ALLOWED_HOSTS"] == "mlflow.example.com"


def test_sentry_plan():
    assert "not set" in ms.sentry_plan({}, have("sentry_sdk"))
    assert "not installed" in ms.sentry_plan({"SENTRY_DSN": "https://k@o1.ingest.sentry.io/1"}, have())
    assert ms.sentry_plan({"SENTRY_DSN": "https://k@o1.ingest.sentry.io/1"}, have("sentry_sdk")) is None


def test_sentry_boot_folder_goes_first_on_pythonpath():
    result = launch({"PYTHONPATH": "/app/lib"}, sentry_boot_dir="/tmp/boot")
    assert result.env["PYTHONPATH"] == os.pathsep.join(["/tmp/boot", "/app/lib"])
    assert launch({}, sentry_boot_dir="/tmp/boot").env["PYTHONPATH"] == "/tmp/boot"


def test_secrets_are_scrubbed_from_sentry_events():
    env = {"MLFLOW_BACKEND_STORE_URI": PG_URI, "AWS_SECRET_ACCESS_KEY": "aws-very-secret"}
    secrets = ms.env_secrets(env)
    assert set(secrets) == {"s3cr3t-pw", "aws-very-secret"}
    event = {
        "exception": {"values": [{"value": f"cannot connect to {PG_URI}"}]},
        "frames": [{"vars": {"db_uri": PG_URI, "key": "aws-very-secret", "n": 3}}],
    }
    scrubbed = ms.scrub(event, secrets)
    assert "s3cr3t-pw" not in repr(scrubbed)
    assert "aws-very-secret" not in repr(scrubbed)
    assert scrubbed["frames"][0]["vars"]["n"] == 3


def test_database_address():
    assert ms.database_address("postgresql+psycopg2://u:p@db:6543/x") == ("db", 6543)
    assert ms.database_address("mysql+pymysql://u:p@db/x") == ("db", 3306)
    assert ms.database_address("sqlite:///mlflow.db") is None
    assert ms.database_address("postgresql+psycopg2://u:p@/x?host=/run/pg") is None


# --- speed-ups (installed by the generated sitecustomize in every server process) ---------------


def test_compact_json_makes_handlers_answer_without_whitespace():
    calls = []

    def message_to_json(message, *, pretty: bool = True, convert_int64_to_number: bool = True):
        calls.append(pretty)
        return "{}"

    handlers = types.SimpleNamespace(message_to_json=message_to_json)
    assert ms.compact_json_responses(handlers) is True
    handlers.message_to_json("m")
    handlers.message_to_json("m", pretty=True)  # an explicit choice is kept
    assert calls == [False, True]
    assert ms.compact_json_responses(handlers) is False  # once only


def test_compact_json_leaves_an_unknown_signature_alone():
    def message_to_json(message):
        return "{}"

    handlers = types.SimpleNamespace(message_to_json=message_to_json)
    assert ms.compact_json_responses(handlers) is False
    assert handlers.message_to_json is message_to_json


def test_compact_json_still_matches_mlflow():
    """The real MLflow function still takes `pretty`, and compact output is the same document."""
    from mlflow.protos.service_pb2 import Metric
    from mlflow.utils import proto_json_utils

    handlers = types.SimpleNamespace(message_to_json=proto_json_utils.message_to_json)
    assert ms.compact_json_responses(handlers)
    message = Metric(key="m", value=1.5, timestamp=2, step=3)
    compact = handlers.message_to_json(message)
    assert "\n" not in compact and " " not in compact
    assert json.loads(compact) == json.loads(proto_json_utils.message_to_json(message))


def test_sqlite_connections_use_wal(tmp_path):
    import sqlalchemy

    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert ms.sqlite_wal_on_connect(target=engine) is True
    assert ms.sqlite_wal_on_connect(target=engine) is False
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    engine.dispose()


def test_speedups_hook_runs_after_the_module_loads_and_can_be_turned_off(tmp_path, monkeypatch):
    (tmp_path / "speedup_target_mod.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []
    finder = ms._AfterImport({"speedup_target_mod": lambda module: seen.append(module.VALUE)})
    sys.meta_path.insert(0, finder)
    try:
        import speedup_target_mod  # noqa: F401
    finally:
        sys.meta_path.remove(finder)
        sys.modules.pop("speedup_target_mod", None)
    assert seen == [1]
    assert ms.speedups_enabled({}) and not ms.speedups_enabled({"MLFLOW_SERVER_SPEEDUPS": "false"})
    before = list(sys.meta_path)
    ms.install_speedups({"MLFLOW_SERVER_SPEEDUPS": "false"})
    assert sys.meta_path == before


def test_server_choice_and_workers_per_backend():
    assert launch({}).env["MLFLOW_WORKERS"] == "4"  # SQLite in WAL: 4 processes measured best
    assert launch({"MLFLOW_BACKEND_STORE_URI": "./mlruns"}).env["MLFLOW_WORKERS"] == "1"  # file store
    pg = {"MLFLOW_BACKEND_STORE_URI": "postgresql://u:p@db:5432/m"}
    assert launch(pg, modules=("psycopg2",)).env["MLFLOW_WORKERS"] == "4"
    assert launch({**pg, "MLFLOW_WORKERS": "3"}, modules=("psycopg2",)).env["MLFLOW_WORKERS"] == "3"
    uvicorn = launch({"MLFLOW_SERVER_SGI": "uvicorn"}).env
    assert "--no-access-log" in uvicorn["MLFLOW_UVICORN_OPTS"] and "MLFLOW_GUNICORN_OPTS" not in uvicorn
    logged = launch({"MLFLOW_ACCESS_LOG": "true"}).env["MLFLOW_GUNICORN_OPTS"]
    assert logged.endswith("--access-logfile -")
    mine = launch({"MLFLOW_GUNICORN_OPTS": "--threads 2"}).env["MLFLOW_GUNICORN_OPTS"]
    assert mine.endswith("--threads 2")  # the user's options come last, so they win
    assert (
        launch({}, ["--uvicorn-opts", "--h11-max-incomplete-event-size 1"]).env["MLFLOW_SERVER_SGI"]
        == "uvicorn"
    )
    waitress = launch({}, ["--waitress-opts", "--threads=4"]).env
    assert waitress["MLFLOW_SERVER_SGI"] == "waitress"
    assert "MLFLOW_GUNICORN_OPTS" not in waitress and "MLFLOW_UVICORN_OPTS" not in waitress
    with pytest.raises(ms.ConfigError):
        launch({"MLFLOW_SERVER_SGI": "hypercorn"})


def _filled(message_class, rng, depth=0):
    """A message of `message_class` with random values in a random subset of its fields."""
    from google.protobuf.descriptor import FieldDescriptor as F

    def scalar(field):
        kind = field.cpp_type
        if kind == F.CPPTYPE_STRING:
            return b"\x00\xff" if field.type == F.TYPE_BYTES else rng.choice(["", "x", 'é"\n'])
        if kind == F.CPPTYPE_BOOL:
            return rng.choice([True, False])
        if kind == F.CPPTYPE_INT32:
            return rng.choice([0, -5, 2**31 - 1])
        if kind == F.CPPTYPE_INT64:
            return rng.choice([0, -5, 2**62])
        if kind in (F.CPPTYPE_UINT32, F.CPPTYPE_UINT64):
            return rng.choice([0, 7])
        if kind in (F.CPPTYPE_DOUBLE, F.CPPTYPE_FLOAT):
            return rng.choice([0.1, 1 / 3, float("nan"), float("inf"), -float("inf"), -1.5])
        return rng.choice([v.number for v in field.enum_type.values])

    message = message_class()
    for field in message.DESCRIPTOR.fields:
        if rng.random() < 0.3 or (field.cpp_type == F.CPPTYPE_MESSAGE and depth > 3):
            continue
        try:
            if field.cpp_type == F.CPPTYPE_MESSAGE and field.message_type.GetOptions().map_entry:
                key_field, value_field = (field.message_type.fields_by_name[n] for n in ("key", "value"))
                key = "k" if key_field.cpp_type == F.CPPTYPE_STRING else 3
                entries = getattr(message, field.name)
                if value_field.cpp_type == F.CPPTYPE_MESSAGE:
                    entries[key].CopyFrom(_filled(value_field.message_type._concrete_class, rng, depth + 1))
                else:
                    entries[key] = scalar(value_field)
            elif field.cpp_type == F.CPPTYPE_MESSAGE:
                value_class = field.message_type._concrete_class
                if field.is_repeated:
                    getattr(message, field.name).extend([_filled(value_class, rng, depth + 1) for _ in "ab"])
                else:
                    getattr(message, field.name).CopyFrom(_filled(value_class, rng, depth + 1))
            elif field.is_repeated:
                getattr(message, field.name).extend([scalar(field), scalar(field)])
            else:
                setattr(message, field.name, scalar(field))
        except (TypeError, ValueError, AttributeError):
            pass  # e.g. a value out of a field's range: leave the field unset
    return message


def test_fast_json_is_byte_for_byte_mlflows_for_every_message_of_its_rest_api():
    """message_to_dict + compact json.dumps against MLflow's message_to_json (compact): every message
    type of the tracking and registry services, empty and randomly filled (maps, enums, NaN and
    infinities, int64, bytes, nested and repeated messages); the rest falls back to MLflow's."""
    import random

    import google.protobuf.message
    from mlflow.protos import model_registry_pb2, service_pb2
    from mlflow.utils.proto_json_utils import message_to_json

    classes = [
        value
        for module in (service_pb2, model_registry_pb2)
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, google.protobuf.message.Message)
    ]
    rng = random.Random(15)
    messages = [cls() for cls in classes] + [_filled(rng.choice(classes), rng) for _ in range(1500)]
    compared = fallbacks = 0
    for message in messages:
        try:
            expected = message_to_json(message, pretty=False)
        except Exception:  # e.g. a random Timestamp: protobuf refuses to print it
            continue
        try:
            got = json.dumps(ms.message_to_dict(message), separators=(",", ":"))
        except ms.NotPlainMessage:
            fallbacks += 1
            continue
        compared += 1
        assert got == expected, type(message).__name__
    assert compared > 1000 and fallbacks > 0
    with pytest.raises(ms.NotPlainMessage):
        ms.message_to_dict("not a message")


def test_missing_auth_module_is_remembered_as_off():
    modules: dict = {}
    assert ms.remember_missing_auth(modules=modules, have_module=have("flask_wtf")) is False
    assert ms.remember_missing_auth(modules=modules, have_module=have()) is True
    stand_in = modules["mlflow.server.auth"]
    assert stand_in.auth_config is None  # what search_runs asks: no filtering, as when the import fails
    assert not hasattr(stand_in, "__wrapped__")  # introspection gets AttributeError, as from any module
    assert ms.remember_missing_auth(modules=modules, have_module=have()) is False


@pytest.mark.filterwarnings("ignore")  # the real import loads MLflow's FastAPI app (a Starlette warning)
def test_missing_auth_stand_in_still_raises_mlflows_import_error(monkeypatch):
    pytest.importorskip("mlflow.server")
    if ms.module_available("flask_wtf"):
        pytest.skip("Flask-WTF is installed: mlflow.server.auth imports")
    server = sys.modules["mlflow.server"]
    monkeypatch.delitem(sys.modules, "mlflow.server.auth", raising=False)
    try:
        assert ms.remember_missing_auth() is True
        from mlflow.server import auth

        assert auth.auth_config is None
        with pytest.raises(ImportError, match="Flask-WTF"):
            from mlflow.server.auth import bootstrap_admin_user  # noqa: F401
        assert sys.modules["mlflow.server.auth"] is auth  # still the stand-in afterwards
    finally:  # the stand-in belongs to a server process, not to the rest of this test session
        sys.modules.pop("mlflow.server.auth", None)
        server.__dict__.pop("auth", None)


def metric_writes_scenario(uri: str, artifacts: str) -> tuple:
    """What the store returns and holds after a sequence of metric writes, good and bad."""
    import math

    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(uri, artifacts)
    run = store.create_run(store.create_experiment("e"), "u", 0, [], "r").info.run_id
    t = 1000
    calls = [
        lambda: store.log_metric(run, Metric("a", 1.0, t, 0)),
        lambda: store.log_metric(run, Metric("a", 1.0, t, 0)),  # the same metric again
        lambda: store.log_batch(
            run,
            [
                Metric("a", 2.0, t, 1),
                Metric("a", 0.5, t, 0),
                Metric("b", math.nan, t, 3),
                Metric("b", math.inf, t, 3),
                Metric("c", 5.0, t + 5, 2),
                Metric("c", 4.0, t + 9, 2),
                Metric("c", 4.0, t + 9, 2),
            ],
            [],
            [],
        ),
        lambda: store.log_batch(run, [Metric("a", 2.0, t, 1), Metric("d", 7.0, t, 0)], [], []),  # half known
        lambda: store.log_metric(run, Metric("a", 9.0, t - 5, 1)),  # same step, older: not the latest
        lambda: store.log_metric(run, Metric("a", -math.inf, t + 100, 5)),
        lambda: store.log_metric(run, Metric("", 1.0, t, 0)),  # invalid name
        lambda: store.log_metric("0" * 32, Metric("z", 1.0, t, 0)),  # no such run
        lambda: store.delete_run(run),
        lambda: store.log_metric(run, Metric("x", 1.0, t, 0)),  # a deleted run
        lambda: store.restore_run(run),
    ]
    outcomes = []
    for call in calls:
        try:
            call()
            outcomes.append("ok")
        except MlflowException as error:
            outcomes.append((error.error_code, str(error).replace(run, "RUN")))
    latest = sorted((m.key, repr(m.value), m.timestamp, m.step) for m in store.get_run(run).data._metric_objs)
    history = {
        key: sorted((repr(m.value), m.timestamp, m.step) for m in store.get_metric_history(run, key))
        for key in "abcd"
    }
    store.engine.dispose()
    return outcomes, latest, history


def test_fast_metric_writes_give_what_mlflows_own_gives_on_sqlite(tmp_path, monkeypatch):
    from mlflow.store.tracking import sqlalchemy_store

    expected = metric_writes_scenario(f"sqlite:///{tmp_path / 'a.db'}", str(tmp_path / "art"))
    monkeypatch.setattr(
        sqlalchemy_store.SqlAlchemyStore,
        "_log_metrics_once",
        sqlalchemy_store.SqlAlchemyStore._log_metrics_once,
    )
    assert ms.fast_metric_writes(sqlalchemy_store) is True
    assert ms.fast_metric_writes(sqlalchemy_store) is False  # once only
    assert metric_writes_scenario(f"sqlite:///{tmp_path / 'b.db'}", str(tmp_path / "art")) == expected
    assert expected[1][0] == ("a", "-1.7976931348623157e+308", 1100, 5)


def test_fast_metric_writes_give_what_mlflows_own_gives_on_postgresql(postgres, tmp_path, monkeypatch):
    from mlflow.store.tracking import sqlalchemy_store

    uris = [
        postgres.create_database(name, "pw").replace("postgresql://", "postgresql+psycopg2://")
        for name in ("fast_metrics_a", "fast_metrics_b")
    ]
    expected = metric_writes_scenario(uris[0], str(tmp_path / "art"))
    monkeypatch.setattr(
        sqlalchemy_store.SqlAlchemyStore,
        "_log_metrics_once",
        sqlalchemy_store.SqlAlchemyStore._log_metrics_once,
    )
    assert ms.fast_metric_writes(sqlalchemy_store) is True
    assert metric_writes_scenario(uris[1], str(tmp_path / "art")) == expected


def test_fast_metric_writes_read_the_run_directly_unless_the_store_scopes_its_queries(tmp_path, monkeypatch):
    """The plain store reads the run's stage itself (no ORM query); a store that overrides
    ``_get_query`` (MLflow's workspace-aware store does, to scope every query) is asked for the run."""
    from mlflow.entities import Metric
    from mlflow.store.tracking import sqlalchemy_store
    from mlflow.store.tracking.dbmodels.models import SqlRun

    store_class = sqlalchemy_store.SqlAlchemyStore
    monkeypatch.setattr(store_class, "_log_metrics_once", store_class._log_metrics_once)
    assert ms.fast_metric_writes(sqlalchemy_store) is True
    orm_lookups: list[str] = []
    real_get_run = store_class._get_run

    def counted_get_run(self, session, run_uuid, eager=False):
        orm_lookups.append(run_uuid)
        return real_get_run(self, session, run_uuid, eager)

    monkeypatch.setattr(store_class, "_get_run", counted_get_run)
    scoped_models: list[type] = []

    class ScopedStore(store_class):
        def _get_query(self, session, model):
            scoped_models.append(model)
            return super()._get_query(session, model)

    for label, cls in (("plain", store_class), ("scoped", ScopedStore)):
        store = cls(f"sqlite:///{tmp_path / label}.db", str(tmp_path / "art"))
        run = store.create_run(store.create_experiment("e"), "u", 0, [], "r").info.run_id
        orm_lookups.clear()
        scoped_models.clear()
        store.log_metric(run, Metric("m", 1.0, 1000, 0))
        if cls is store_class:
            assert orm_lookups == []
        else:
            assert orm_lookups == [run] and SqlRun in scoped_models
        assert [m.value for m in store.get_metric_history(run, "m")] == [1.0]
        store.engine.dispose()


def run_search_scenario(uri: str, artifacts: str) -> tuple:
    """What search_runs and get_run return for runs with metrics, params, tags and model outputs,
    with run and model ids replaced by the names they were given (ids are random)."""
    import sqlalchemy
    from mlflow.entities import (
        Dataset,
        DatasetInput,
        InputTag,
        LoggedModelOutput,
        Metric,
        Param,
        RunStatus,
        RunTag,
        ViewType,
    )
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(uri, artifacts)
    experiment = store.create_experiment("e")
    names: dict[str, str] = {}
    runs = []
    for index in range(4):
        run = store.create_run(
            experiment, "u", 1000 + index, [RunTag("team", "t")], f"run{index}"
        ).info.run_id
        names[run] = f"run{index}"
        store.log_batch(
            run,
            [Metric("m", float(index), 1000, 0), Metric("m", float(index) + 0.5, 1001, 1)],
            [Param("p", str(index))],
            [RunTag("k", "v" * index)],
        )
        runs.append(run)
    models = [
        store.create_logged_model(experiment, name=f"model{i}", source_run_id=runs[i]) for i in range(2)
    ]
    names.update({model.model_id: model.name for model in models})
    store.log_outputs(
        runs[0], [LoggedModelOutput(models[0].model_id, 3), LoggedModelOutput(models[1].model_id, 7)]
    )
    store.log_outputs(runs[2], [LoggedModelOutput(models[1].model_id, 0)])
    training = Dataset("training", "d1", "local", '{"uri": "/data/train"}', '{"cols": 3}', '{"rows": 9}')
    store.log_inputs(
        runs[1],
        [
            DatasetInput(training, [InputTag("mlflow.data.context", "train"), InputTag("split", "a")]),
            DatasetInput(Dataset("eval", "d2", "local", '{"uri": "/data/eval"}')),
        ],
    )
    store.log_metric(runs[1], Metric("loss", float("nan"), 1002, 0))
    store.update_run_info(runs[1], RunStatus.FINISHED, 2000, "run1")
    store.delete_run(runs[3])
    with store.engine.begin() as connection:  # a run stored without a name: it comes from its tag
        connection.execute(
            sqlalchemy.text("UPDATE runs SET name = NULL WHERE run_uuid = :id"), {"id": runs[2]}
        )

    def described(run) -> tuple:
        info = run.info
        return (
            names[info.run_id],
            (info.run_name, info.experiment_id, info.user_id, info.start_time, info.end_time),
            (info.status, info.lifecycle_stage, info.artifact_uri.replace(info.run_id, names[info.run_id])),
            sorted((m.key, repr(m.value), m.timestamp, m.step) for m in run.data._metric_objs),
            sorted(run.data.params.items()),
            sorted(run.data.tags.items()),
            sorted(
                (
                    (d.dataset.name, d.dataset.digest, d.dataset.source, d.dataset.schema, d.dataset.profile),
                    sorted((t.key, t.value) for t in d.tags),
                )
                for d in run.inputs.dataset_inputs
            ),
            sorted((names[o.model_id], o.step) for o in run.outputs.model_outputs),
        )

    found = store.search_runs([experiment], "metrics.m >= 1", ViewType.ALL, 2, ["metrics.m DESC"], None)
    rest = store.search_runs([experiment], "metrics.m >= 1", ViewType.ALL, 2, ["metrics.m DESC"], found.token)
    active = store.search_runs([experiment], "", ViewType.ACTIVE_ONLY, 100, ["attributes.start_time"], None)
    with store.ManagedSessionMaker() as session:
        bulk = store._get_model_outputs_bulk(runs, session=session)
        none = store._get_model_outputs_bulk([], session=session)
    result = (
        [described(run) for run in found],
        [described(run) for run in rest],
        [described(run) for run in active],
        described(store.get_run(runs[0])),
        [(names[run], sorted((names[o.model_id], o.step) for o in outputs)) for run, outputs in bulk.items()],
        none,
    )
    store.engine.dispose()
    return result


def with_search_speedups(monkeypatch) -> None:
    """mlflow_server's read speed-ups applied here, and taken back when the test ends."""
    from mlflow.store.db import utils as db_utils
    from mlflow.store.tracking import sqlalchemy_store

    store_class = sqlalchemy_store.SqlAlchemyStore
    monkeypatch.setattr(store_class, "_get_model_outputs_bulk", store_class._get_model_outputs_bulk)
    monkeypatch.setattr(store_class, "_search_runs", store_class._search_runs)
    monkeypatch.setattr(db_utils, "_get_managed_session_maker", db_utils._get_managed_session_maker)
    assert ms.fast_run_outputs(sqlalchemy_store) is True
    assert ms.fast_search_runs(sqlalchemy_store) is True
    assert ms.keep_read_results_on_commit(db_utils) is True
    assert ms.fast_run_outputs(sqlalchemy_store) is False  # once only
    assert ms.fast_search_runs(sqlalchemy_store) is False
    assert ms.keep_read_results_on_commit(db_utils) is False


def test_search_speedups_give_what_mlflows_own_gives_on_sqlite(tmp_path, monkeypatch):
    expected = run_search_scenario(f"sqlite:///{tmp_path / 'a.db'}", str(tmp_path / "art"))
    with_search_speedups(monkeypatch)
    assert run_search_scenario(f"sqlite:///{tmp_path / 'b.db'}", str(tmp_path / "art")) == expected
    monkeypatch.setattr(ms, "SEARCH_IDS_PER_QUERY", 1)  # every run's rows read by a query of their own
    assert run_search_scenario(f"sqlite:///{tmp_path / 'c.db'}", str(tmp_path / "art")) == expected
    found, rest, active, run0, bulk, none = expected
    assert [run[0] for run in found + rest] == ["run3", "run2", "run1"]  # the deleted run3 too: ViewType.ALL
    assert [run[0] for run in active] == ["run0", "run1", "run2"]
    assert run0[-1] == [("model0", 3), ("model1", 7)]
    run1_inputs = next(run for run in rest if run[0] == "run1")[-2]
    assert [(dataset[0], tags) for dataset, tags in run1_inputs] == [
        ("eval", []),
        ("training", [("mlflow.data.context", "train"), ("split", "a")]),
    ]
    assert bulk == [
        ("run0", [("model0", 3), ("model1", 7)]),
        ("run1", []),
        ("run2", [("model1", 0)]),
        ("run3", []),
    ]
    assert none == {}


def test_search_speedups_give_what_mlflows_own_gives_on_postgresql(postgres, tmp_path, monkeypatch):
    uris = [
        postgres.create_database(name, "pw").replace("postgresql://", "postgresql+psycopg2://")
        for name in ("search_a", "search_b")
    ]
    expected = run_search_scenario(uris[0], str(tmp_path / "art"))
    with_search_speedups(monkeypatch)
    assert run_search_scenario(uris[1], str(tmp_path / "art")) == expected


def test_read_sessions_keep_what_they_loaded_and_write_sessions_still_expire(tmp_path, monkeypatch):
    import sqlalchemy.orm.exc
    from mlflow.exceptions import MlflowException
    from mlflow.store.tracking.dbmodels.models import SqlExperiment
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    with_search_speedups(monkeypatch)
    store = SqlAlchemyStore(f"sqlite:///{tmp_path / 'a.db'}", str(tmp_path / "art"))
    store.create_experiment("kept")
    with store.ManagedSessionMaker() as session:
        read = session.query(SqlExperiment).filter_by(name="kept").one()
    with store.ManagedSessionMaker(read_only=False) as session:
        written = session.query(SqlExperiment).filter_by(name="kept").one()
        written.lifecycle_stage = "deleted"
    assert read.name == "kept"  # a read session's objects keep their values after it ends
    with pytest.raises(sqlalchemy.orm.exc.DetachedInstanceError):
        written.name  # noqa: B018  # a writing session expired its objects on commit, as MLflow's does
    assert store.get_experiment_by_name("kept").lifecycle_stage == "deleted"
    with pytest.raises(MlflowException, match="boom"), store.ManagedSessionMaker():
        raise ValueError("boom")  # MLflow's own handling of an error in a session still applies
    store.engine.dispose()


def test_speedups_are_hooked_to_the_modules_they_change(monkeypatch):
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    ms.install_speedups({"MLFLOW_BACKEND_STORE_URI": "postgresql://db/mlflow"})
    hooks = sys.meta_path[0].hooks
    assert hooks["mlflow.store.tracking.sqlalchemy_store"] is ms.speed_up_tracking_store
    assert hooks["mlflow.store.db.utils"] is ms.keep_read_results_on_commit
    ms.install_speedups({"MLFLOW_BACKEND_STORE_URI": "sqlite:///mlflow.db"})
    assert sys.meta_path[0].hooks["mlflow.store.db.utils"] is ms.speed_up_sqlite_sessions


@pytest.mark.parametrize(
    ("env", "thresholds"),
    [({}, list(ms.SERVER_GC_THRESHOLDS)), ({"MLFLOW_SERVER_SPEEDUPS": "false"}, [700, 10, 10])],
)
def test_server_processes_collect_garbage_less_often_unless_speedups_are_off(env, thresholds):
    import subprocess

    probe = (
        "import gc, json, sys; gc.set_threshold(700, 10, 10); import mlflow_server as ms; "
        "ms.install_speedups(json.loads(sys.argv[1])); print(json.dumps(gc.get_threshold()))"
    )
    root = os.path.dirname(os.path.abspath(ms.__file__))
    done = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(env)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout) == thresholds


@pytest.mark.filterwarnings("ignore")  # importing mlflow.server loads its FastAPI app (a Starlette warning)
def test_search_runs_json_from_entities_is_byte_for_byte_mlflows_handler(tmp_path, monkeypatch):
    """The REST search_runs handler made from entities, over MLflow's store and then over the
    store's speed-ups, against MLflow's own handler and store (with the compact JSON): plain runs (NaN
    and infinite metrics, a name only in its tag, no end time), runs it leaves to to_proto (dataset
    inputs, model outputs), paging, deleted runs, no runs, bad filters and a bad max_results give the
    same status and the same bytes."""
    import sqlalchemy
    from mlflow.entities import Dataset, DatasetInput, LoggedModelOutput, Metric, Param, RunStatus, RunTag
    from mlflow.protos.service_pb2 import SearchRuns
    from mlflow.server import app, handlers
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{tmp_path / 'runs.db'}", str(tmp_path / "art"))
    experiment = store.create_experiment("e")
    runs = [
        store.create_run(experiment, "u", 1000 + i, [RunTag("team", "t")], f"r{i}").info.run_id
        for i in range(6)
    ]
    store.log_batch(
        runs[0],
        [Metric("m", 1.5, 1, 0), Metric("nan", float("nan"), 1, 0), Metric("up", float("inf"), 1, 0)],
        [Param("p", "1")],
        [RunTag("k", "")],
    )
    store.log_batch(runs[1], [Metric("m", 2.0, 1, 0), Metric("down", float("-inf"), 2, 3)], [], [])
    store.update_run_info(runs[1], RunStatus.FINISHED, 2000, "r1")
    store.log_metric(runs[2], Metric("m", 3.0, 1, 0))
    store.log_inputs(runs[2], [DatasetInput(Dataset("d", "x1", "local", '{"uri": "/d"}'))])
    model = store.create_logged_model(experiment, name="model", source_run_id=runs[3])
    store.log_outputs(runs[3], [LoggedModelOutput(model.model_id, 4)])
    store.delete_run(runs[4])
    with store.engine.begin() as connection:  # a run stored without a name: it comes from its tag
        connection.execute(
            sqlalchemy.text("UPDATE runs SET name = NULL WHERE run_uuid = :id"), {"id": runs[5]}
        )

    monkeypatch.setattr(handlers, "_get_tracking_store", lambda *args, **kwargs: store)
    monkeypatch.setattr(handlers, "message_to_json", handlers.message_to_json)
    monkeypatch.setitem(handlers.HANDLERS, SearchRuns, handlers.HANDLERS[SearchRuns])
    ms.compact_json_responses(handlers)
    assert handlers.message_to_json._mlflow_server_compact
    mlflows = handlers.HANDLERS[SearchRuns]
    assert ms.search_runs_json_from_entities(handlers) is True
    assert ms.search_runs_json_from_entities(handlers) is False  # once only
    ours = handlers.HANDLERS[SearchRuns]
    assert ours.__name__ == mlflows.__name__  # Flask names the route's endpoint after it

    to_proto_runs: list[str] = []
    real_plain_run_json = ms.plain_run_json

    def counted(run):
        try:
            return real_plain_run_json(run)
        except ms.NotPlainRun:
            to_proto_runs.append(run.info.run_id)
            raise

    monkeypatch.setattr(ms, "plain_run_json", counted)

    def answer(view, body: dict) -> tuple[int, bytes]:
        with app.test_request_context("/api/2.0/mlflow/runs/search", method="POST", json=body):
            response = view()
        # an error's message may name a Python object by its address (`<ast.Name object at 0x…>`)
        return response.status_code, re.sub(rb" at 0x[0-9a-f]+", b"", response.get_data())

    every = {"experiment_ids": [experiment]}
    long_id_list = [runs[0], *(f"{i:032x}" for i in range(70)), runs[1]]
    assert len(", ".join(repr(r) for r in long_id_list)) > ms.SEARCH_FILTER_KEPT_CHARS
    first_page = {**every, "filter": "metrics.m >= 1", "order_by": ["metrics.m DESC"], "max_results": 2}
    _, page = answer(mlflows, first_page)
    token = json.loads(page)["next_page_token"]
    bodies = [
        every,
        {**every, "run_view_type": "ALL", "order_by": ["attributes.start_time ASC"]},
        first_page,
        {**first_page, "page_token": token},
        {"experiment_ids": ["424242"]},  # no runs: an empty object
        {**every, "filter": "metrics.m >"},  # MLflow's error for a filter it cannot parse
        {**every, "filter": "attributes.run_id IN (a)"},  # a ValueError in the parser: INTERNAL_ERROR
        {**every, "filter": f"attributes.run_id IN ({', '.join(repr(r) for r in long_id_list)})"},  # not kept
        {**every, "max_results": 50001},  # and for too many results
    ]
    expected = [answer(mlflows, body) for body in bodies]  # MLflow's handler and MLflow's store
    for store_speedups in (False, True):
        if store_speedups:
            with_search_speedups(monkeypatch)
        for body, (status, data) in zip(bodies, expected, strict=True):
            to_proto_runs.clear()
            assert answer(ours, body) == (status, data), (store_speedups, body)
            if status == 200:
                found = [run["info"]["run_id"] for run in json.loads(data).get("runs", [])]
                assert sorted(to_proto_runs) == sorted(r for r in found if r in runs[2:4])  # the rest: direct
    assert json.loads(expected[-3][1])["error_code"] == "INTERNAL_ERROR"
    assert {run["info"]["run_id"] for run in json.loads(expected[-2][1])["runs"]} == {runs[0], runs[1]}
    by_id = {run["info"]["run_id"]: run for run in json.loads(answer(ours, every)[1])["runs"]}
    assert [m["value"] for m in by_id[runs[0]]["data"]["metrics"]] == [1.5, "NaN", 1.7976931348623157e308]
    assert by_id[runs[5]]["info"]["run_name"] == "r5" and runs[4] not in by_id
    store.engine.dispose()


def test_plain_run_json_is_what_mlflow_makes_of_the_run_or_refuses():
    """Entities a store does not give (infinities are stored as the largest float), field by field."""
    from mlflow.entities import Metric, Param, Run, RunData, RunInfo, RunInputs, RunOutputs, RunTag

    def run(metrics, *, name=None, end_time=None, artifact_uri="", inputs=None, outputs=None) -> Run:
        info = RunInfo("r" * 32, "7", "u", "KILLED", 5, end_time, "active", artifact_uri, run_name=name)
        return Run(info, RunData(metrics, [Param("p", "")], [RunTag("t", "v")]), inputs, outputs)

    values = [float("inf"), float("-inf"), float("nan"), -0.0, 1e-300]
    plain = [
        run([Metric(f"m{i}", v, 1, -i) for i, v in enumerate(values)]),
        run([], name="n", end_time=9, artifact_uri="s3://b/x", inputs=RunInputs([]), outputs=RunOutputs([])),
    ]
    for entity in plain:
        assert ms.plain_run_json(entity) == ms.message_to_dict(entity.to_proto())
        assert json.dumps(ms.plain_run_json(entity)) == json.dumps(ms.message_to_dict(entity.to_proto()))
    refused = [
        run([Metric("int", 1, 1, 0)]),  # protobuf makes it 1.0
        run([Metric("m", 1.0, 1, 0, model_id="model")]),
    ]
    for entity in refused:
        with pytest.raises(ms.NotPlainRun):
            ms.plain_run_json(entity)
        assert ms.run_json(entity) == ms.message_to_dict(entity.to_proto())
    with pytest.raises(TypeError):  # a run protobuf refuses fails as it does in MLflow's handler
        ms.run_json(run([], name=7))
