"""Start the MLflow tracking server: the executable module of the `server` service stage.

The script turns a small environment contract into a call of MLflow's public CLI,
``python -m mlflow server ...``, and replaces itself with it (``os.execve``), so the pod runs the
MLflow CLI and its HTTP server (gunicorn's threaded workers serving MLflow's Flask app; see
``MLFLOW_SERVER_SGI``) and nothing else.

Environment contract
--------------------
Set from the stage's secrets (``bodywork.yaml``):

``MLFLOW_BACKEND_STORE_URI``
    Where runs, metrics and the model registry live. Default ``sqlite:///mlflow.db`` (one
    replica only). ``postgresql://user:password@host:5432/db`` in production; it is mapped to
    the ``postgresql+psycopg2`` driver (``postgres://`` is accepted too). Schemes: sqlite,
    postgresql, mysql, mssql (with or without ``+driver``), file. The URI reaches MLflow through
    the environment, never the command line, and is only ever logged with its password masked.
``MLFLOW_DEFAULT_ARTIFACT_ROOT``
    Where artifacts are stored. Default ``./mlartifacts``; ``s3://bucket/prefix`` in
    production. The server *proxies* artifacts (``mlflow-artifacts:/`` URIs), so clients need no
    cloud credentials: the value becomes MLflow's ``--artifacts-destination`` and the variable
    itself is removed, because MLflow would otherwise silently switch to direct mode.
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ``MLFLOW_S3_ENDPOINT_URL``
    Read by boto3 inside the server for ``s3://`` artifact roots. Empty values are dropped, so a
    placeholder ``aws-credentials`` secret with empty keys does no harm (boto3 then falls back
    to its other credential sources, e.g. an IAM role for the service account).

Set by the bodywork-action deploy engine on every service-stage container:

``BODYWORK_STAGE``
    The stage name (``server``); its Kubernetes form is the name of the Service.
``BODYWORK_NAMESPACE``
    The namespace the stage runs in.
``BODYWORK_SERVICE_PORT``
    The stage's ``service.port``: the port to listen on and the port of the Service.

They make up the in-cluster names that MLflow's Host-header check must accept
(``server``, ``server.<ns>``, ``server.<ns>.svc``, ``server.<ns>.svc.cluster.local``, each with and
without the port), next to localhost and private addresses. Without them the script falls back
to what the pod can see: the namespace of its service account and the Deployment name inside
its own host name. ``MLFLOW_SERVER_ALLOWED_HOSTS``, if set, is used exactly as given.

Optional:

``MLFLOW_WORKERS``
    Worker processes. Default 4 for SQLite and for a database server such as PostgreSQL (measured
    best with 8 concurrent clients on 2 cores; see ``default_workers``), 1 for a file store.
    About 400 MB for the first, ~200 MB for each extra worker.
``MLFLOW_SERVER_SGI``
    ``gunicorn`` (default: 8 threads per worker, the Flask app without MLflow's ASGI bridge, about
    twice as fast per request here) or ``uvicorn`` (MLflow's default, which also serves the
    OpenTelemetry ``/v1/traces`` ingest, the jobs, gateway and assistant APIs and
    ``/api/3.0/mlflow/server-info``). Setting ``MLFLOW_UVICORN_OPTS`` also selects uvicorn.
``MLFLOW_SERVER_SPEEDUPS``
    ``false`` turns off what the script changes inside MLflow's processes: compact JSON responses
    built in one pass (search_runs' straight from the run entities), metric writes and search reads
    through prebuilt SQLAlchemy Core statements (SQLite and PostgreSQL), the missing basic-auth
    module remembered, and for SQLite WAL journaling with ``synchronous=NORMAL`` (see "speed-ups"
    below).
``MLFLOW_DB_WAIT_SECONDS``
    How long to wait for the database host to accept TCP connections before giving up,
    default 60. MLflow then retries failed connections by itself for about 100 s more.
``SENTRY_DSN`` (and ``SENTRY_ENVIRONMENT``, ``SENTRY_RELEASE``, ``SENTRY_TRACES_SAMPLE_RATE``)
    Report unhandled errors from every server process (the CLI and the server's workers) when
    ``sentry-sdk`` is installed. Secrets are scrubbed from events before they are sent.
``MLFLOW_ACCESS_LOG``
    ``true`` to log one line per request (off by default: a tracking server takes thousands of
    small requests and the log costs throughput).

Defaults that suit a pod are set unless the environment says otherwise: the GenAI job runner
off (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``) and usage telemetry off
(``MLFLOW_DISABLE_TELEMETRY=true``, ``DO_NOT_TRACK=true``). ``MLFLOW_PORT`` is ignored: a
Kubernetes Service named ``mlflow`` injects ``MLFLOW_PORT=tcp://...``, so ``--port`` is always
passed explicitly.

Command line: ``python mlflow_server.py [--host H] [--port P] [extra mlflow server options]``.

Exit codes: 2 for a configuration error found before start (bad scheme, missing driver,
database host unreachable, bad number); otherwise MLflow's own (1 when it cannot initialise the
backend store). SIGTERM stops the server cleanly: the MLflow CLI forwards it to gunicorn (or uvicorn).
"""

from __future__ import annotations

import argparse
import copy
import functools
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import math
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger("mlflow_server")

DEFAULT_BACKEND_STORE_URI = "sqlite:///mlflow.db"
DEFAULT_ARTIFACTS_DESTINATION = "./mlartifacts"
DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 5000
DEFAULT_DB_WAIT_SECONDS = 60.0
CLUSTER_DOMAIN = "cluster.local"
SERVICE_ACCOUNT_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

# Environment defaults for a plain tracking server in a pod (each can be overridden).
SERVER_ENV_DEFAULTS = {
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}

# Backend store: the SQLAlchemy dialect, its default driver and the module each driver needs.
DIALECT_ALIASES = {"postgres": "postgresql"}
DEFAULT_DRIVERS = {
    "postgresql": ("psycopg2", "psycopg"),
    "mysql": ("pymysql", "mysqldb"),
    "mssql": ("pyodbc",),
}
DRIVER_MODULES = {
    "psycopg2": ("psycopg2", "psycopg2-binary"),
    "psycopg": ("psycopg", "psycopg[binary]"),
    "pg8000": ("pg8000", "pg8000"),
    "pymysql": ("pymysql", "PyMySQL"),
    "mysqldb": ("MySQLdb", "mysqlclient"),
    "mysqlconnector": ("mysql.connector", "mysql-connector-python"),
    "pyodbc": ("pyodbc", "pyodbc"),
    "pymssql": ("pymssql", "pymssql"),
}
DEFAULT_DB_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}

# Artifact stores MLflow can proxy to, and the module each one needs.
ARTIFACT_SCHEMES = {
    "": None,
    "file": None,
    "s3": ("boto3", "boto3"),
    "gs": ("google.cloud.storage", "google-cloud-storage"),
    "wasbs": ("azure.storage.blob", "azure-storage-blob"),
    "abfss": ("azure.storage.filedatalake", "azure-storage-file-datalake"),
    "hdfs": ("pyarrow", "pyarrow"),
    "viewfs": ("pyarrow", "pyarrow"),
    "ftp": None,
    "sftp": ("pysftp", "pysftp"),
}

# What MLflow allows by default (mlflow.server.security_utils); setting the allowed hosts replaces
# this list, so it is repeated here next to the in-cluster names.
LOCAL_AND_PRIVATE_HOSTS = [
    "localhost",
    "127.0.0.1",
    "[::1]",
    "0.0.0.0",
    "localhost:*",
    "127.0.0.1:*",
    "[[]::1]:*",
    "0.0.0.0:*",
    "192.168.*",
    "10.*",
    *[f"172.{i}.*" for i in range(16, 32)],
    "fc00:*",
    "fd00:*",
]

SECRET_QUERY_KEYS = re.compile(r"pass|secret|token|key|signature|credential", re.IGNORECASE)


class ConfigError(Exception):
    """A configuration problem that stops the server before it starts."""


@dataclass(frozen=True)
class Launch:
    """Everything needed to exec the MLflow CLI, plus the (already masked) lines to log first."""

    argv: list[str]
    env: dict[str, str]
    messages: list[str] = field(default_factory=list)


def module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


# --- URIs ---------------------------------------------------------------------------------------


def mask_uri(uri: str) -> str:
    """The URI with its password (and secret-looking query values) replaced by ``***``."""
    for secret in uri_secrets(uri):
        uri = uri.replace(secret, "***")
    return uri


def uri_secrets(uri: str) -> list[str]:
    """The secret substrings of a URI: its password and secret-looking query values."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return [uri] if uri else []
    found = []
    if parts.password:
        found.append(parts.password)
    found += [v for k, v in parse_qsl(parts.query) if v and SECRET_QUERY_KEYS.search(k)]
    return found


def normalise_backend_uri(uri: str, have_module: Callable[[str], bool] = module_available) -> str:
    """Pick an installed SQLAlchemy driver for the backend store URI, or raise ConfigError."""
    if "://" not in uri:
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", uri) and not re.match(r"^[a-zA-Z]:[\\/]", uri):
            raise ConfigError(f"MLFLOW_BACKEND_STORE_URI={mask_uri(uri)!r} is not a URI MLflow can use")
        return uri  # a plain path: MLflow's file store
    scheme, rest = uri.split("://", 1)
    dialect, _, driver = scheme.lower().partition("+")
    dialect = DIALECT_ALIASES.get(dialect, dialect)
    if dialect in ("sqlite", "file"):
        return f"{dialect}://{rest}"
    if dialect not in DEFAULT_DRIVERS:
        known = "sqlite, postgresql, mysql, mssql, file"
        raise ConfigError(
            f"MLFLOW_BACKEND_STORE_URI={mask_uri(uri)!r}: unknown scheme {scheme!r} (use one of: {known})"
        )
    if not driver:
        installed = [d for d in DEFAULT_DRIVERS[dialect] if have_module(DRIVER_MODULES[d][0])]
        if not installed:
            wanted = DRIVER_MODULES[DEFAULT_DRIVERS[dialect][0]][1]
            raise ConfigError(
                f"MLFLOW_BACKEND_STORE_URI={mask_uri(uri)!r} needs a {dialect} driver: pip install {wanted}"
            )
        driver = installed[0]
    module, package = DRIVER_MODULES.get(driver, (driver, driver))
    if not have_module(module):
        raise ConfigError(
            f"MLFLOW_BACKEND_STORE_URI={mask_uri(uri)!r} uses driver {driver!r}, which is not "
            f"installed: pip install {package}"
        )
    return f"{dialect}+{driver}://{rest}"


def check_artifacts_destination(uri: str, have_module: Callable[[str], bool] = module_available) -> str:
    scheme = urlsplit(uri).scheme.lower() if "://" in uri else ""
    if scheme not in ARTIFACT_SCHEMES:
        raise ConfigError(
            f"MLFLOW_DEFAULT_ARTIFACT_ROOT={mask_uri(uri)!r}: unknown scheme {scheme!r} "
            f"(use a local folder or one of: {', '.join(s for s in ARTIFACT_SCHEMES if s)})"
        )
    needs = ARTIFACT_SCHEMES[scheme]
    if needs and not have_module(needs[0]):
        raise ConfigError(
            f"MLFLOW_DEFAULT_ARTIFACT_ROOT={mask_uri(uri)!r} needs {needs[1]}: pip install {needs[1]}"
        )
    return uri


def database_address(uri: str) -> tuple[str, int] | None:
    """(host, port) of a network database URI, or None for sqlite, files and socket paths."""
    if "://" not in uri:
        return None
    dialect = uri.split("://", 1)[0].partition("+")[0].lower()
    if dialect not in DEFAULT_DB_PORTS:
        return None
    parts = urlsplit(uri)
    if not parts.hostname:
        return None
    return parts.hostname, parts.port or DEFAULT_DB_PORTS[dialect]


# --- hosts and ports ----------------------------------------------------------------------------


def parse_int(value: str, name: str, minimum: int = 1, maximum: int = 65535) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = None
    if number is None or not minimum <= number <= maximum:
        raise ConfigError(f"{name}={value!r} must be a whole number from {minimum} to {maximum}")
    return number


def k8s_name(name: str) -> str:
    """A stage name as its Service is called (the deploy engine's rule: a DNS-1123 label)."""
    return re.sub(r"[^a-z0-9]+", "-", name.strip().lower()).strip("-")[:63].rstrip("-")


def deployment_from_pod_name(hostname: str) -> str:
    """``server-7d9f8b5c4-x2x9k`` -> ``server``: a Deployment's pod is named after it."""
    match = re.fullmatch(r"(.+)-[a-z0-9]{6,10}-[a-z0-9]{5}", hostname or "")
    return match.group(1) if match else ""


def allowed_hosts(env: Mapping[str, str], port: int, hostname: str = "", sa_namespace: str = "") -> str:
    """The value for MLFLOW_SERVER_ALLOWED_HOSTS: in-cluster names, localhost, private addresses."""
    if env.get("MLFLOW_SERVER_ALLOWED_HOSTS"):
        return env["MLFLOW_SERVER_ALLOWED_HOSTS"]
    service = k8s_name(env.get("BODYWORK_STAGE", "")) or deployment_from_pod_name(hostname)
    namespace = env.get("BODYWORK_NAMESPACE", "").strip() or sa_namespace.strip()
    ports = [port]
    if env.get("BODYWORK_SERVICE_PORT", "").strip().isdigit():
        ports.append(int(env["BODYWORK_SERVICE_PORT"]))
    names = []
    if service:
        names.append(service)
        if namespace:
            base = f"{service}.{namespace}"
            names += [base, f"{base}.svc", f"{base}.svc.{CLUSTER_DOMAIN}"]
    if hostname:
        names.append(hostname)
    hosts = []
    for name in names:
        hosts += [name, *(f"{name}:{p}" for p in sorted(set(ports)))]
    hosts += LOCAL_AND_PRIVATE_HOSTS
    return ",".join(dict.fromkeys(hosts))


# --- Sentry -------------------------------------------------------------------------------------

SITECUSTOMIZE = '''\
"""Generated by mlflow_server.py: Sentry and the speed-ups in every Python process of the MLflow server."""
import importlib.util as _util
import sys as _sys

_spec = _util.spec_from_file_location("_mlflow_server_boot", {script!r})
_boot = _sys.modules[_spec.name] = _util.module_from_spec(_spec)
_spec.loader.exec_module(_boot)
_boot.start_sentry()
_boot.install_speedups()
_boot.run_shadowed_sitecustomize(__file__)
'''


def sentry_plan(env: Mapping[str, str], have_module: Callable[[str], bool] = module_available) -> str | None:
    """None when Sentry should be started, else the reason it is off."""
    if not env.get("SENTRY_DSN", "").strip():
        return "SENTRY_DSN is not set: error reporting to Sentry is off"
    if not have_module("sentry_sdk"):
        return "SENTRY_DSN is set but sentry-sdk is not installed: error reporting to Sentry is off"
    return None


def env_secrets(env: Mapping[str, str]) -> list[str]:
    """Values that must never leave the process: passwords in URIs and cloud keys."""
    found = []
    for name in ("MLFLOW_BACKEND_STORE_URI", "MLFLOW_REGISTRY_STORE_URI", "MLFLOW_TRACKING_URI"):
        found += uri_secrets(env.get(name, ""))
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        if env.get(name):
            found.append(env[name])
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


def scrub(value, secrets: Sequence[str]):
    """A copy of a JSON-like value with every secret substring replaced by ``***``."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "***")
        return value
    if isinstance(value, dict):
        return {scrub(k, secrets): scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, secrets) for v in value]
    return value


def start_sentry() -> None:
    """Called by the generated sitecustomize in each process of the server."""
    if sentry_plan(os.environ) is not None:
        return
    import sentry_sdk

    secrets = env_secrets(os.environ)

    def before_send(event, _hint):
        return scrub(event, secrets)

    sentry_sdk.init(
        traces_sample_rate=float(os.environ.get("SENTRY_TRACES_SAMPLE_RATE") or 0),
        send_default_pii=False,
        before_send=before_send,
        before_breadcrumb=lambda crumb, _hint: scrub(crumb, secrets),
    )


# --- speed-ups -----------------------------------------------------------------------------------
#
# Measured with cProfile on MLflow 3.17.2 (bench/bench_mlflow.py has the figures): about a third of a
# search_runs request's CPU is Python's pure-Python JSON encoder, because MLflow pretty-prints every
# response (``json.dumps(..., indent=2)`` never uses the C encoder); and each SQLite commit in the
# default rollback-journal mode costs several fsyncs. Both are changed here, in the server's own
# processes, after MLflow's modules load: responses are compact JSON (the same document, no
# whitespace), and SQLite connections use WAL with synchronous=NORMAL (a commit is one WAL append;
# after a power loss the last commits may be lost, never the database: SQLite's documented trade-off).
# Profiled again with py-spy (gunicorn worker, one client): the HTTP server is under a tenth of a
# request's CPU (so uvicorn + httptools would not pay for itself); MLflow's own handlers are the rest.
# log_batch: ~70 % the SQLAlchemy ORM's unit of work; log_metric: about half; search_runs: ~55 %
# the store's ORM loading, ~25 % protobuf's pure-Python MessageToDict plus MLflow's second int64
# walk, ~7 % a failed ``import mlflow.server.auth`` re-run on every request. Changed here: metric
# writes through Core (fast_metric_writes), JSON built in one pass (message_to_dict), the missing
# auth module remembered (remember_missing_auth). Profiled again after those (MLflow 3.17.2, SQLite,
# 50 runs): a sixth of search_runs was its query for logged-model outputs and a tenth the expiry of
# every loaded object when a read-only session commits; the query is now one prebuilt Core statement
# (fast_run_outputs) and read-only sessions keep what they loaded (keep_read_results_on_commit).
# Profiled again (py-spy, then cProfile of the store call): a quarter of log_metric was the ORM query
# for the run (now one prebuilt statement); in search_runs, the run entities made into protobuf and
# read back (two fifths once the store was fast: search_runs_json_from_entities), sqlparse of the same
# filter and order on every call, a fetchone per row, and MLflow's dataset-inputs join for runs that
# have none (fast_search_runs). Each is checked against MLflow's own result in
# tests/mlflow/test_mlflow_server_unit.py.
# ``MLFLOW_SERVER_SPEEDUPS=false`` turns all of them off.


def speedups_enabled(env: Mapping[str, str]) -> bool:
    return env.get("MLFLOW_SERVER_SPEEDUPS", "").strip().lower() not in ("0", "false", "no", "off")


def compact_json_responses(handlers) -> bool:
    """Make ``mlflow.server.handlers.message_to_json`` default to compact output (C encoder)."""
    import inspect

    original = getattr(handlers, "message_to_json", None)
    if original is None or getattr(original, "_mlflow_server_compact", False):
        return False
    try:
        if "pretty" not in inspect.signature(original).parameters:
            return False
    except (TypeError, ValueError):
        return False

    import json

    def message_to_json(message, *args, pretty: bool = False, **kwargs):
        if not pretty and not args and kwargs.get("convert_int64_to_number", True):
            try:
                return json.dumps(message_to_dict(message), separators=(",", ":"))
            except NotPlainMessage:
                pass
        return original(message, *args, pretty=pretty, **kwargs)

    message_to_json._mlflow_server_compact = True
    handlers.message_to_json = message_to_json
    return True


def remember_missing_auth(_handlers=None, modules: dict | None = None, have_module=module_available) -> bool:
    """Without Flask-WTF, ``mlflow.server.auth`` cannot be imported (basic auth is off). MLflow's
    search_runs handler imports it on every request and, when that fails, skips auth filtering; a
    failed import is not cached, so each request ran much of the module's body again (py-spy: about
    7 % of a search_runs request's CPU). A stand-in in ``sys.modules`` says so at once:
    ``auth_config`` is None, and any other name runs the real import, which raises MLflow's own
    ImportError."""
    import types

    modules = sys.modules if modules is None else modules
    name = "mlflow.server.auth"
    if name in modules or have_module("flask_wtf"):
        return False
    stand_in = types.ModuleType(name, "mlflow.server.auth without Flask-WTF: basic auth is off")
    stand_in.auth_config = None  # type: ignore[attr-defined]

    def real_import(attribute: str):
        if attribute.startswith("__"):  # what introspection asks of any module (hasattr, inspect)
            raise AttributeError(attribute)
        del modules[name]
        try:
            return getattr(importlib.import_module(name), attribute)
        finally:
            modules.setdefault(name, stand_in)

    stand_in.__getattr__ = real_import  # type: ignore[method-assign]
    modules[name] = stand_in
    return True


SEARCH_RUNS_JSON_MLFLOW = "3.17.2"  # the MLflow whose search_runs handler is mirrored below


class NotPlainRun(Exception):
    """A run ``plain_run_json`` leaves to its own ``to_proto`` and ``message_to_dict``."""


def search_runs_json_from_entities(handlers) -> bool:
    """Answer the REST search_runs call with JSON made from the run entities, not from protobuf.

    MLflow's handler makes a protobuf message of every run found (``Run.to_proto``: 1,100 messages
    for 50 runs) and the response's JSON is read back out of them: two fifths of a search request's
    CPU once the store reads fast (py-spy). Here the same JSON, byte for byte (same keys, same order,
    same values), is made from the entities; a run with anything else in it (dataset or model
    inputs, outputs, a metric tied to a model, a value of another type) goes through its own
    ``to_proto`` as before. The handler's request checks, auth filter and store call are MLflow
    SEARCH_RUNS_JSON_MLFLOW's, so this is installed for that version only, and only over the
    compact JSON it matches; the GraphQL API keeps MLflow's ``search_runs_impl``.
    """
    import json

    import mlflow

    table = getattr(handlers, "HANDLERS", None)
    if getattr(mlflow, "__version__", "") != SEARCH_RUNS_JSON_MLFLOW or not isinstance(table, dict):
        return False
    if not getattr(getattr(handlers, "message_to_json", None), "_mlflow_server_compact", False):
        return False
    from mlflow.entities import ViewType
    from mlflow.protos.service_pb2 import SearchRuns

    original = table.get(SearchRuns)
    if original is None or getattr(original, "_mlflow_server_fast", False):
        return False
    h = handlers

    @functools.wraps(original)
    def _search_runs():
        request_message = h._get_request_message(
            SearchRuns(),
            schema={
                "experiment_ids": [h._assert_array],
                "filter": [h._assert_string],
                "max_results": [h._assert_intlike, lambda x: h._assert_less_than_or_equal(int(x), 50000)],
                "order_by": [h._assert_array, h._assert_item_type_string],
            },
        )
        run_view_type = ViewType.ACTIVE_ONLY
        if request_message.HasField("run_view_type"):
            run_view_type = ViewType.from_proto(request_message.run_view_type)
        experiment_ids = list(request_message.experiment_ids)
        try:
            from mlflow.server import auth

            if auth.auth_config:
                experiment_ids = auth.filter_experiment_ids(experiment_ids)
        except ImportError:  # basic auth is off
            pass
        runs = h._get_tracking_store().search_runs(
            experiment_ids=experiment_ids,
            filter_string=request_message.filter,
            run_view_type=run_view_type,
            max_results=request_message.max_results,
            order_by=request_message.order_by,
            page_token=request_message.page_token or None,
        )
        body: dict = {}
        if runs:
            body["runs"] = [run_json(run) for run in runs]
        if token := runs.token:  # a string field: protobuf takes bytes (MLflow's tokens are) as UTF-8
            body["next_page_token"] = token.decode("utf-8") if isinstance(token, bytes) else token
        response = h.Response(mimetype="application/json")
        response.set_data(json.dumps(body, separators=(",", ":")))
        return response

    view = h.catch_mlflow_exception(h._disable_if_artifacts_only(_search_runs))
    view._mlflow_server_fast = True
    table[SearchRuns] = view
    return True


def run_json(run) -> dict:
    """What ``message_to_dict(run.to_proto())`` gives, from the entity when it is plain."""
    try:
        return plain_run_json(run)
    except NotPlainRun:
        return message_to_dict(run.to_proto())


def json_real(value: float) -> float | str:
    """A double as protobuf's JSON printer gives it: infinities and NaN as strings."""
    if math.isinf(value):
        return "-Infinity" if value < 0.0 else "Infinity"
    if math.isnan(value):
        return "NaN"
    return value


@functools.cache
def run_status_names() -> frozenset[str]:
    from mlflow.protos.service_pb2 import RunStatus

    return frozenset(RunStatus.keys())


def plain_run_json(run) -> dict:
    """The run as ``Run.to_proto`` and ``message_to_dict`` make it (fields in protobuf field-number
    order), for a run of strings, integers and float metrics with no inputs or outputs."""
    from mlflow.entities import Run

    info, data, inputs, outputs = run.info, run.data, run.inputs, run.outputs
    if type(run) is not Run or data is None:
        raise NotPlainRun
    if (inputs is not None and (inputs.dataset_inputs or inputs.model_inputs)) or (
        outputs is not None and outputs.model_outputs
    ):
        raise NotPlainRun
    if not all(
        type(value) is str for value in (info.run_id, info.experiment_id, info.user_id, info.lifecycle_stage)
    ):
        raise NotPlainRun
    if info.status not in run_status_names() or type(info.start_time) is not int:
        raise NotPlainRun
    out_info: dict = {"run_uuid": info.run_id, "experiment_id": info.experiment_id}
    if info.run_name is not None:
        if type(info.run_name) is not str:
            raise NotPlainRun
        out_info["run_name"] = info.run_name
    out_info["user_id"] = info.user_id
    out_info["status"] = info.status
    out_info["start_time"] = info.start_time
    if info.end_time:
        if type(info.end_time) is not int:
            raise NotPlainRun
        out_info["end_time"] = info.end_time
    if info.artifact_uri:
        if type(info.artifact_uri) is not str:
            raise NotPlainRun
        out_info["artifact_uri"] = info.artifact_uri
    out_info["lifecycle_stage"] = info.lifecycle_stage
    out_info["run_id"] = info.run_id

    metrics = []
    for metric in data._metric_objs:
        value = metric.value
        if (
            type(metric.key) is not str
            or type(value) is not float
            or type(metric.timestamp) is not int
            or type(metric.step) is not int
            or metric.model_id
            or metric.dataset_name
            or metric.dataset_digest
            or metric.run_id
        ):
            raise NotPlainRun
        metrics.append(
            {"key": metric.key, "value": json_real(value), "timestamp": metric.timestamp, "step": metric.step}
        )
    out_data: dict = {}
    if metrics:
        out_data["metrics"] = metrics
    for name, values in (("params", data.params), ("tags", data.tags)):
        if values:
            if not all(type(key) is str and type(value) is str for key, value in values.items()):
                raise NotPlainRun
            out_data[name] = [{"key": key, "value": value} for key, value in values.items()]
    # Run.to_proto merges in data, inputs and outputs whenever they exist, empty or not
    out = {"info": out_info, "data": out_data}
    if inputs is not None:
        out["inputs"] = {}
    if outputs is not None:
        out["outputs"] = {}
    return out


def speed_up_handlers(handlers) -> None:
    compact_json_responses(handlers)
    remember_missing_auth(handlers)
    search_runs_json_from_entities(handlers)


class NotPlainMessage(Exception):
    """A message ``message_to_dict`` leaves to protobuf's own printer."""


_FIELD_CONVERTERS: dict = {}


def message_to_dict(message) -> dict:
    """What MLflow's ``message_to_json`` makes of a message before ``json.dumps``, in one pass.

    MLflow runs protobuf's pure-Python ``MessageToDict`` (proto field names), then walks the message
    a second time to turn int64 values back into numbers (``_mark_int64_fields``) and merges the
    two: about a quarter of a search_runs request's CPU. This gives the same dict (same keys in the
    same order, int64 as numbers, enums by name, NaN and infinities as strings, float32 at its
    shortest, bytes in base64) for messages of plain fields, repeated fields and string-keyed maps;
    anything else (well-known types, extensions, other map keys, enum options) raises
    NotPlainMessage and is left to MLflow's function.
    """
    descriptor = getattr(message, "DESCRIPTOR", None)
    if descriptor is None or descriptor.full_name.startswith("google.protobuf."):
        raise NotPlainMessage(getattr(descriptor, "full_name", type(message).__name__))
    out = {}
    for descriptor_field, value in message.ListFields():
        convert = _FIELD_CONVERTERS.get(descriptor_field)
        if convert is None:
            convert = _FIELD_CONVERTERS[descriptor_field] = _field_converter(descriptor_field)
        out[descriptor_field.name] = convert(value)
    return out


def _field_converter(field) -> Callable:
    import base64
    import math

    from google.protobuf.descriptor import FieldDescriptor as F
    from google.protobuf.internal import type_checkers

    if field.is_extension:
        raise NotPlainMessage(field.full_name)
    message_type = field.message_type
    if field.type == F.TYPE_MESSAGE and message_type.has_options and message_type.GetOptions().map_entry:
        if message_type.fields_by_name["key"].type != F.TYPE_STRING:
            raise NotPlainMessage(field.full_name)
        entry = _scalar_converter(message_type.fields_by_name["value"], F, base64, math, type_checkers)
        return lambda value: {str(key): entry(value[key]) for key in value}
    one = _scalar_converter(field, F, base64, math, type_checkers)
    repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == F.LABEL_REPEATED
    if repeated:
        return lambda value: [one(item) for item in value]
    return one


def _scalar_converter(field, F, base64, math, type_checkers) -> Callable:
    if field.cpp_type == F.CPPTYPE_MESSAGE:
        return message_to_dict
    if field.cpp_type == F.CPPTYPE_ENUM:
        enum_type = field.enum_type
        if enum_type.full_name == "google.protobuf.NullValue" or any(v.has_options for v in enum_type.values):
            raise NotPlainMessage(field.full_name)
        names = {v.number: v.name for v in enum_type.values}

        def enum(value):
            name = names.get(value)
            if name is None:
                raise NotPlainMessage(field.full_name)  # protobuf raises or prints the number
            return name

        return enum
    if field.type == F.TYPE_BYTES:
        return lambda value: base64.b64encode(value).decode("utf-8")
    if field.cpp_type == F.CPPTYPE_STRING:
        return str
    if field.cpp_type == F.CPPTYPE_BOOL:
        return bool
    if field.cpp_type in (F.CPPTYPE_DOUBLE, F.CPPTYPE_FLOAT):
        shortest = field.cpp_type == F.CPPTYPE_FLOAT

        def real(value):
            if shortest and math.isfinite(value):
                return type_checkers.ToShortestFloat(value)
            return json_real(value)

        return real
    return int  # int32, int64 (numbers, as MLflow prints them), unsigned and fixed


def sqlite_wal_on_connect(_module=None, target=None) -> bool:
    """Every new SQLite connection of SQLAlchemy (of `target`, default every Engine): WAL journal,
    synchronous=NORMAL, 30 s busy wait."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    target = Engine if target is None else target
    if getattr(target, "_mlflow_server_sqlite_wal", False):
        return False

    def on_connect(dbapi_connection, _record) -> None:
        if type(dbapi_connection).__module__.split(".")[0] not in ("sqlite3", "pysqlite2"):
            return
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
        finally:
            cursor.close()

    event.listen(target, "connect", on_connect)
    target._mlflow_server_sqlite_wal = True
    return True


FAST_METRIC_DIALECTS = ("sqlite", "postgresql")


def fast_metric_writes(store_module) -> bool:
    """Make ``SqlAlchemyStore._log_metrics_once`` (log_metric and log_batch) write with SQLAlchemy
    Core instead of the ORM, for SQLite and PostgreSQL.

    Profiled (py-spy), about 70 % of a log_batch request's CPU and half of a log_metric's is the ORM
    unit of work: an object per metric and per latest value, identity map, flush, expiry. This does
    the same statements with plain executemany: the same validation and de-duplication, the run
    looked up and checked active as MLflow does, the metrics inserted, the latest values read (locked
    ``FOR UPDATE`` in key order on PostgreSQL, as MLflow does) and inserted or updated by MLflow's rule
    (a later (step, timestamp, value) wins). Any IntegrityError (a metric logged twice, two writers
    creating one latest value) rolls back and hands the whole call to MLflow's own method, which
    has the recovery logic; other dialects always use MLflow's.
    """
    store_class = getattr(store_module, "SqlAlchemyStore", None)
    original = getattr(store_class, "_log_metrics_once", None)
    if original is None or getattr(original, "_mlflow_server_fast", False):
        return False
    validate_metric = getattr(store_module, "_validate_metric", None)
    if validate_metric is None:
        return False
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlRun
    from sqlalchemy import (
        BigInteger,
        Boolean,
        Float,
        String,
        and_,
        bindparam,
        cast,
        func,
        insert,
        select,
        update,
    )
    from sqlalchemy.dialects.postgresql import ARRAY
    from sqlalchemy.exc import IntegrityError

    metrics_table = SqlMetric.__table__
    latest_table = SqlLatestMetric.__table__
    runs = SqlRun.__table__.c
    run_stage = select(runs.run_uuid, runs.lifecycle_stage).where(runs.run_uuid == bindparam("run_uuid"))
    plain_query = getattr(store_class, "_get_query", None)
    insert_metrics = insert(metrics_table)
    insert_latest = insert(latest_table)
    update_latest = (
        update(latest_table)
        .where(
            and_(
                latest_table.c.run_uuid == bindparam("b_run_uuid"),
                latest_table.c.key == bindparam("b_key"),
            )
        )
        .values(
            value=bindparam("value"),
            timestamp=bindparam("timestamp"),
            step=bindparam("step"),
            is_nan=bindparam("is_nan"),
        )
    )

    # PostgreSQL: one statement, built once, whose rows come as arrays. psycopg2 sends an executemany
    # as one statement per row, and PostgreSQL parses and plans each one.
    changed_rows = (
        func.unnest(
            cast(bindparam("b_keys"), ARRAY(String)),
            cast(bindparam("b_values"), ARRAY(Float)),
            cast(bindparam("b_timestamps"), ARRAY(BigInteger)),
            cast(bindparam("b_steps"), ARRAY(BigInteger)),
            cast(bindparam("b_is_nans"), ARRAY(Boolean)),
        )
        .table_valued("key", "value", "timestamp", "step", "is_nan")
        .render_derived(name="changed")
    )
    update_latest_postgresql = (
        update(latest_table)
        .where(latest_table.c.run_uuid == bindparam("b_run_uuid"), latest_table.c.key == changed_rows.c.key)
        .values(
            value=changed_rows.c.value,
            timestamp=changed_rows.c.timestamp,
            step=changed_rows.c.step,
            is_nan=changed_rows.c.is_nan,
        )
    )

    # Built once: a statement made per request cost more CPU to build and key for the cache than to run.
    latest_values = (
        select(
            latest_table.c.key,
            latest_table.c.value,
            latest_table.c.timestamp,
            latest_table.c.step,
            latest_table.c.is_nan,
        )
        .where(
            latest_table.c.run_uuid == bindparam("b_run_uuid"),
            latest_table.c.key.in_(bindparam("b_keys", expanding=True)),
        )
        .order_by(latest_table.c.run_uuid, latest_table.c.key)
    )
    latest_values_locked = latest_values.with_for_update()

    def _log_metrics_once(self, run_id, metrics):
        dialect = getattr(getattr(self, "engine", None), "dialect", None)
        if getattr(dialect, "name", None) not in FAST_METRIC_DIALECTS:
            return original(self, run_id, metrics)
        rows = []
        seen = set()
        single = len(metrics) == 1
        for index, metric in enumerate(metrics):
            validate_metric(
                metric.key,
                metric.value,
                metric.timestamp,
                metric.step,
                path="" if single else f"metrics[{index}]",
            )
            if metric not in seen:
                is_nan, value = self.sanitize_metric_value(metric.value)
                rows.append(
                    {
                        "run_uuid": run_id,
                        "key": metric.key,
                        "value": value,
                        "timestamp": metric.timestamp,
                        "step": metric.step,
                        "is_nan": is_nan,
                    }
                )
            seen.add(metric)
        conflict = False
        with self.ManagedSessionMaker(read_only=False) as session:
            connection = session.connection()
            # The run's stage read with one prebuilt statement, not an ORM query (a quarter of a
            # log_metric request's CPU, py-spy on PostgreSQL); a store that scopes its queries
            # (workspaces override _get_query), a missing run or a duplicate id go MLflow's way.
            found = []
            if plain_query is not None and getattr(type(self), "_get_query", None) is plain_query:
                found = connection.execute(run_stage, {"run_uuid": run_id}).all()
            run = found[0] if len(found) == 1 else self._get_run(run_uuid=run_id, session=session)
            self._check_run_is_active(run)
            if not rows:
                return None
            try:
                connection.execute(insert_metrics, rows)
                current: dict[str, dict] = {}
                keys = sorted({row["key"] for row in rows})
                query = latest_values_locked if dialect.name == "postgresql" else latest_values
                for start in range(0, len(keys), 500):
                    chunk = {"b_run_uuid": run_id, "b_keys": keys[start : start + 500]}
                    for key, value, timestamp, step, is_nan in connection.execute(query, chunk):
                        current[key] = {
                            "value": value,
                            "timestamp": timestamp,
                            "step": step,
                            "is_nan": is_nan,
                        }
                created: dict[str, dict] = {}
                changed: dict[str, dict] = {}
                for row in rows:
                    key = row["key"]
                    latest = current.get(key)
                    if latest is None:
                        current[key] = created[key] = row
                    elif (row["step"], row["timestamp"], row["value"]) > (
                        latest["step"],
                        latest["timestamp"],
                        latest["value"],
                    ):
                        current[key] = row
                        (created if key in created else changed)[key] = row
                if created:
                    connection.execute(insert_latest, list(created.values()))
                if changed and dialect.name == "postgresql":
                    rows = changed.values()
                    connection.execute(
                        update_latest_postgresql,
                        {
                            "b_run_uuid": run_id,
                            "b_keys": list(changed),
                            "b_values": [row["value"] for row in rows],
                            "b_timestamps": [row["timestamp"] for row in rows],
                            "b_steps": [row["step"] for row in rows],
                            "b_is_nans": [row["is_nan"] for row in rows],
                        },
                    )
                elif changed:
                    connection.execute(
                        update_latest,
                        [{**row, "b_run_uuid": run_id, "b_key": key} for key, row in changed.items()],
                    )
            except IntegrityError:
                session.rollback()
                conflict = True
        if conflict:
            return original(self, run_id, metrics)
        return None

    _log_metrics_once._mlflow_server_fast = True
    store_class._log_metrics_once = _log_metrics_once
    return True


def fast_run_outputs(store_module) -> bool:
    """Make ``SqlAlchemyStore._get_model_outputs_bulk`` (the logged-model outputs of the runs a
    search returns) run MLflow's query as one prebuilt Core statement instead of a new ORM query.

    Profiled (py-spy, one client, SQLite): about a sixth of a search_runs request's CPU went to this
    one query, which finds nothing unless models were logged: building the ORM query, its cache key
    and an ORM object per row. The statement here is built once, so its cache key is computed once;
    the rows come back as tuples. The same table, filter and rows (neither query orders them).
    """
    store_class = getattr(store_module, "SqlAlchemyStore", None)
    original = getattr(store_class, "_get_model_outputs_bulk", None)
    output_class = getattr(store_module, "LoggedModelOutput", None)
    if original is None or output_class is None or getattr(original, "_mlflow_server_fast", False):
        return False
    from mlflow.store.tracking.dbmodels.models import SqlInput
    from sqlalchemy import bindparam, select

    inputs = SqlInput.__table__
    query = select(inputs.c.source_id, inputs.c.destination_id, inputs.c.step).where(
        inputs.c.source_type == "RUN_OUTPUT",
        inputs.c.source_id.in_(bindparam("run_ids", expanding=True)),
        inputs.c.destination_type == "MODEL_OUTPUT",
    )

    def _get_model_outputs_bulk(self, run_ids, session):
        outputs_per_run: dict[str, list] = {}
        if run_ids:
            for source_id, destination_id, step in session.connection().execute(
                query, {"run_ids": list(run_ids)}
            ):
                outputs_per_run.setdefault(source_id, []).append(
                    output_class(model_id=destination_id, step=step)
                )
        return {run_id: outputs_per_run.get(run_id, []) for run_id in run_ids}

    _get_model_outputs_bulk._mlflow_server_fast = True
    store_class._get_model_outputs_bulk = _get_model_outputs_bulk
    return True


# Run ids per IN list when a search reads its runs' rows, as SQLAlchemy's selectin loading chunks them:
# a search may return up to 50,000 runs, more than SQLite takes as parameters of one statement.
SEARCH_IDS_PER_QUERY = 500
SEARCH_ORDERS_KEPT = 256  # distinct filters and orders whose parsing a server keeps
SEARCH_FILTER_KEPT_CHARS = 2_000  # longer filters are parsed each time


def fast_search_runs(store_module) -> bool:
    """Make ``SqlAlchemyStore._search_runs`` read the found runs' latest metrics, params and tags with
    three prebuilt Core statements instead of ORM eager loads.

    MLflow's search selects the runs (its filters, order, paging: kept as they are, through its own
    helpers) and loads their metrics, params and tags as ORM objects with ``selectinload``, then turns
    each into an entity: for 50 runs, 650 ORM objects built, tracked and thrown away, over a quarter
    of a search_runs request's CPU on PostgreSQL (py-spy, one client). Here the same three tables
    are read for the same runs as plain rows, and the same entities are built from them.
    """
    store_class = getattr(store_module, "SqlAlchemyStore", None)
    original = getattr(store_class, "_search_runs", None)
    needed = (
        "SearchUtils", "LifecycleStage", "_get_orderby_clauses", "_get_sqlalchemy_filter_clauses",
        "_parse_experiment_ids", "_get_run_name_from_tags", "SqlRun", "Run", "RunInputs", "RunOutputs",
    )  # fmt: skip
    if original is None or getattr(original, "_mlflow_server_fast", False):
        return False
    if not all(hasattr(store_module, name) for name in needed):
        return False
    from mlflow.entities import Metric, Param, RunData, RunInfo, RunTag
    from mlflow.store.tracking.dbmodels.models import SqlInput, SqlLatestMetric, SqlParam, SqlTag
    from sqlalchemy import bindparam, select

    m = store_module
    run_ids = bindparam("run_ids", expanding=True)
    metrics = SqlLatestMetric.__table__.c
    params, tags = SqlParam.__table__.c, SqlTag.__table__.c
    metrics_query = select(
        metrics.run_uuid, metrics.key, metrics.value, metrics.timestamp, metrics.step, metrics.is_nan
    ).where(metrics.run_uuid.in_(run_ids))
    params_query = select(params.run_uuid, params.key, params.value).where(params.run_uuid.in_(run_ids))
    tags_query = select(tags.run_uuid, tags.key, tags.value).where(tags.run_uuid.in_(run_ids))
    inputs = SqlInput.__table__.c
    any_inputs_query = (
        select(inputs.destination_id)
        .where(inputs.destination_type == "RUN", inputs.destination_id.in_(run_ids))
        .limit(1)
    )

    def run_entity(row, metrics_of, params_of, tags_of):
        """``SqlRun.to_mlflow_entity`` from a row and the run's rows of the three tables."""
        info = RunInfo(
            run_id=row.run_uuid,
            run_name=row.name,
            experiment_id=str(row.experiment_id),
            user_id=row.user_id,
            status=row.status,
            start_time=row.start_time,
            end_time=row.end_time,
            lifecycle_stage=row.lifecycle_stage,
            artifact_uri=row.artifact_uri,
        )
        run_tags = [RunTag(key, value) for key, value in tags_of.get(row.run_uuid, ())]
        data = RunData(
            metrics=[
                Metric(key=key, value=float("nan") if is_nan else value, timestamp=timestamp, step=step)
                for key, value, timestamp, step, is_nan in metrics_of.get(row.run_uuid, ())
            ],
            params=[Param(key, value) for key, value in params_of.get(row.run_uuid, ())],
            tags=run_tags,
        )
        if not info.run_name and (run_name := m._get_run_name_from_tags(run_tags)):
            info._set_run_name(run_name)
        return info, data

    # A client repeats its search; parsing the filter and order (sqlparse) and building the order's
    # clauses is a fifteenth of the request, and depends on nothing else. Clauses are immutable SQL
    # constructs, shared as the prebuilt statements above are; the parsed filter is copied per use.
    @functools.lru_cache(maxsize=SEARCH_ORDERS_KEPT)
    def parsed_filter(filter_string):
        return m.SearchUtils.parse_search_filter(filter_string)

    order_clauses: dict[tuple, tuple] = {}  # the first SEARCH_ORDERS_KEPT orders asked for

    def _search_runs(self, experiment_ids, filter_string, run_view_type, max_results, order_by, page_token):
        self._validate_max_results_param(max_results, allow_null=True)
        stages = set(m.LifecycleStage.view_type_to_stages(run_view_type))
        with self.ManagedSessionMaker() as session:  # which makes a parser's ValueError MLflow's error
            if len(filter_string or "") <= SEARCH_FILTER_KEPT_CHARS:
                parsed_filters = copy.deepcopy(parsed_filter(filter_string))
            else:  # a long filter (thousands of run ids) would hold a lot of memory and is rarely repeated
                parsed_filters = m.SearchUtils.parse_search_filter(filter_string)
            order_key = tuple(order_by or ())
            order = order_clauses.get(order_key)
            if order is None:  # the session only builds the clauses' queries: nothing is sent
                order = m._get_orderby_clauses(order_by, session)
                if len(order_clauses) < SEARCH_ORDERS_KEPT:
                    order_clauses[order_key] = order
            cases_orderby, parsed_orderby, sorting_joins = order
            stmt = select(m.SqlRun, *cases_orderby)
            attribute_filters, non_attribute_filters, dataset_filters = m._get_sqlalchemy_filter_clauses(
                parsed_filters, session, self._get_dialect()
            )
            for non_attr_filter in non_attribute_filters:
                stmt = stmt.join(non_attr_filter)
            for dataset_filter in dataset_filters:
                stmt = stmt.join(dataset_filter, m.SqlRun.run_uuid == dataset_filter.c.destination_id)
            for join in sorting_joins:  # outer: runs without the sorted-on value stay in
                stmt = stmt.outerjoin(join)
            offset = m.SearchUtils.parse_start_offset_from_page_token(page_token)
            experiment_ids = self._filter_experiment_ids(session, m._parse_experiment_ids(experiment_ids))
            stmt = (
                stmt.distinct()
                .filter(
                    m.SqlRun.experiment_id.in_(experiment_ids),
                    m.SqlRun.lifecycle_stage.in_(stages),
                    *attribute_filters,
                )
                .order_by(*parsed_orderby)
                .offset(offset)
            )
            if max_results is not None:
                stmt = stmt.limit(max_results + 1)
            found = session.execute(stmt).scalars(m.SqlRun).all()
            ids = [row.run_uuid for row in found]
            metrics_of: dict[str, list] = {}
            params_of: dict[str, list] = {}
            tags_of: dict[str, list] = {}
            any_inputs = False
            connection = session.connection()
            for start in range(0, len(ids), SEARCH_IDS_PER_QUERY):
                chunk = {"run_ids": ids[start : start + SEARCH_IDS_PER_QUERY]}
                # .all(): one fetchall, not a fetchone per row
                for run_uuid, *metric in connection.execute(metrics_query, chunk).all():
                    metrics_of.setdefault(run_uuid, []).append(metric)
                for run_uuid, key, value in connection.execute(params_query, chunk).all():
                    params_of.setdefault(run_uuid, []).append((key, value))
                for run_uuid, key, value in connection.execute(tags_query, chunk).all():
                    tags_of.setdefault(run_uuid, []).append((key, value))
                any_inputs = any_inputs or connection.execute(any_inputs_query, chunk).first() is not None
            # Most runs log no dataset: MLflow's ORM join for them (a twentieth of a search's CPU)
            # runs only when one of the found runs has one.
            inputs = self._get_run_inputs(run_uuids=ids, session=session) if any_inputs else [[] for _ in ids]
            outputs = self._get_model_outputs_bulk(run_ids=ids, session=session)
            runs = []
            for row, run_inputs in zip(found, inputs, strict=True):
                info, data = run_entity(row, metrics_of, params_of, tags_of)
                run_outputs = m.RunOutputs(outputs[info.run_id])
                runs.append(m.Run(info, data, m.RunInputs(dataset_inputs=run_inputs), run_outputs))
            next_page_token = None
            if max_results is not None and len(runs) == max_results + 1:
                next_page_token = m.SearchUtils.create_page_token(offset + max_results)
                runs = runs[:max_results]
        return runs, next_page_token

    _search_runs._mlflow_server_fast = True
    store_class._search_runs = _search_runs
    return True


def keep_read_results_on_commit(db_utils) -> bool:
    """Sessions MLflow opens for reading (``ManagedSessionMaker(read_only=True)``) do not expire
    what they loaded when they commit.

    Expiring marks every loaded object stale so that the next access reads it again; a read-only
    session is committed and closed at the end of its block, so nothing reads it again and the
    expiry is wasted: about a tenth of a search_runs request's CPU (py-spy, 50 runs, 700 objects).
    The objects keep the values they were loaded with; before, touching one after the block raised
    DetachedInstanceError, so no code that works relied on it. Sessions that write are unchanged.
    """
    original = getattr(db_utils, "_get_managed_session_maker", None)
    if original is None or getattr(original, "_mlflow_server_fast", False):
        return False
    from contextlib import contextmanager

    def _get_managed_session_maker(session_maker, db_type):
        managed = original(session_maker, db_type)

        @contextmanager
        def make_managed_session(read_only=True):
            with managed(read_only=read_only) as session:
                if read_only:
                    session.expire_on_commit = False
                yield session

        return make_managed_session

    _get_managed_session_maker._mlflow_server_fast = True
    db_utils._get_managed_session_maker = _get_managed_session_maker
    return True


def speed_up_tracking_store(store_module) -> None:
    fast_metric_writes(store_module)
    fast_run_outputs(store_module)
    fast_search_runs(store_module)


def speed_up_sqlite_sessions(db_utils) -> None:
    keep_read_results_on_commit(db_utils)
    sqlite_wal_on_connect(db_utils)


# CPython runs its cycle collector after every 700 new container objects by default; a server process
# holds MLflow, SQLAlchemy, Flask and protobuf (a large heap), and one search_runs request makes
# thousands of objects that live until it ends, so those collections kept promoting them and
# rescanning the whole heap. Measured with gc.callbacks in the busy worker (PostgreSQL, 50 runs, one
# client): 1.3 s of a 10-s run, a fifth of its CPU, went to collections; with these thresholds, 0.3 s
# including start-up, and a request's CPU fell from 44 to 35 ms. The garbage waiting for a collection
# stays small: most objects are freed by reference counting, and a collection still runs every
# 10,000 new containers. (The deploy tool does the same: bodywork_action/cli.py.)
SERVER_GC_THRESHOLDS = (10_000, 10, 10)


def collect_garbage_less_often() -> None:
    import gc

    gc.set_threshold(*SERVER_GC_THRESHOLDS)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs a function on a module right after it is first imported (the module itself unchanged)."""

    def __init__(self, hooks: Mapping[str, Callable]):
        self.hooks = dict(hooks)

    def find_spec(self, fullname, path=None, target=None):
        hook = self.hooks.pop(fullname, None)
        if hook is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        original_exec = loader.exec_module

        def exec_module(module):
            original_exec(module)
            try:
                hook(module)
            except Exception as error:  # a speed-up must never stop the server
                log.warning("speed-up for %s not applied: %s", fullname, error)

        loader.exec_module = exec_module
        return spec


def install_speedups(env: Mapping[str, str] | None = None) -> None:
    """Called by the generated sitecustomize in each process of the server."""
    env = os.environ if env is None else env
    if not speedups_enabled(env):
        return
    collect_garbage_less_often()
    hooks = {
        "mlflow.server.handlers": speed_up_handlers,
        "mlflow.store.tracking.sqlalchemy_store": speed_up_tracking_store,
        "mlflow.store.db.utils": keep_read_results_on_commit,
    }
    if env.get("MLFLOW_BACKEND_STORE_URI", "").startswith("sqlite:"):
        hooks["mlflow.store.db.utils"] = speed_up_sqlite_sessions
    sys.meta_path.insert(0, _AfterImport(hooks))


def run_shadowed_sitecustomize(own_file: str) -> None:
    """Run the sitecustomize this one hides (e.g. Debian's), so the image's behaviour is kept."""
    own_dir = os.path.dirname(os.path.abspath(own_file))
    path = [p for p in sys.path if os.path.abspath(p or ".") != own_dir]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec and spec.loader and spec.origin and os.path.dirname(os.path.abspath(spec.origin)) != own_dir:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


def write_sentry_boot(script: Path) -> str:
    """Create a folder holding the sitecustomize that starts Sentry; return its path."""
    folder = tempfile.mkdtemp(prefix="mlflow-sentry-boot-")
    Path(folder, "sitecustomize.py").write_text(SITECUSTOMIZE.format(script=str(script.resolve())))
    return folder


# --- the launch ---------------------------------------------------------------------------------


def parse_args(args: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description="Start the MLflow tracking server (configured by environment variables).",
        epilog="Other options are passed to `mlflow server`.",
    )
    parser.add_argument("--host", default=None, help=f"interface to bind (default {DEFAULT_HOST})")
    parser.add_argument(
        "--port", default=None, help=f"port (default BODYWORK_SERVICE_PORT or {DEFAULT_PORT})"
    )
    return parser.parse_known_args(list(args))


def build_launch(
    env: Mapping[str, str],
    args: Sequence[str] = (),
    *,
    have_module: Callable[[str], bool] = module_available,
    hostname: str = "",
    sa_namespace: str = "",
    sentry_boot_dir: str | None = None,
    python: str = sys.executable,
) -> Launch:
    """Build the argv and environment of ``python -m mlflow server`` from a configuration mapping.

    Pure: it reads nothing but its arguments. Raises ConfigError for a bad configuration.
    """
    options, extra = parse_args(args)
    child = {k: v for k, v in env.items() if not (k.startswith("AWS_") and not v.strip())}
    messages = []

    backend = normalise_backend_uri(
        child.get("MLFLOW_BACKEND_STORE_URI") or DEFAULT_BACKEND_STORE_URI, have_module
    )
    child["MLFLOW_BACKEND_STORE_URI"] = backend
    destination = check_artifacts_destination(
        child.pop("MLFLOW_DEFAULT_ARTIFACT_ROOT", "").strip() or DEFAULT_ARTIFACTS_DESTINATION, have_module
    )
    child["MLFLOW_ARTIFACTS_DESTINATION"] = destination
    child["MLFLOW_SERVE_ARTIFACTS"] = "true"
    for key, value in SERVER_ENV_DEFAULTS.items():
        child.setdefault(key, value)

    host = options.host or child.get("MLFLOW_HOST") or DEFAULT_HOST
    if options.port is not None:
        port = parse_int(options.port, "--port")
    elif child.get("BODYWORK_SERVICE_PORT", "").strip():
        port = parse_int(child["BODYWORK_SERVICE_PORT"], "BODYWORK_SERVICE_PORT")
    else:
        port = DEFAULT_PORT
    child.pop("MLFLOW_PORT", None)
    sgi = choose_sgi(child, extra)
    child["MLFLOW_SERVER_SGI"] = sgi
    workers = parse_int(
        child.get("MLFLOW_WORKERS") or str(default_workers(backend)), "MLFLOW_WORKERS", maximum=64
    )
    child["MLFLOW_WORKERS"] = str(workers)
    child["MLFLOW_SERVER_ALLOWED_HOSTS"] = allowed_hosts(child, port, hostname, sa_namespace)

    access_log = child.get("MLFLOW_ACCESS_LOG", "").strip().lower() in ("1", "true", "yes")
    own_sgi_option = any(o in extra for o in ("--gunicorn-opts", "--uvicorn-opts", "--waitress-opts"))
    if sgi == "waitress":
        child.pop("MLFLOW_UVICORN_OPTS", None)  # MLflow refuses two servers' options at once
        child.pop("MLFLOW_GUNICORN_OPTS", None)
    elif sgi == "gunicorn":
        child.pop("MLFLOW_UVICORN_OPTS", None)
        if not own_sgi_option:
            opts = GUNICORN_DEFAULT_OPTS + (" --access-logfile -" if access_log else "")
            child["MLFLOW_GUNICORN_OPTS"] = f"{opts} {child.get('MLFLOW_GUNICORN_OPTS', '')}".strip()
    else:
        child.pop("MLFLOW_GUNICORN_OPTS", None)
        uvicorn_opts = child.get("MLFLOW_UVICORN_OPTS", "")
        if not access_log:
            uvicorn_opts = f"{uvicorn_opts} --no-access-log".strip()
        if uvicorn_opts and not own_sgi_option:
            child["MLFLOW_UVICORN_OPTS"] = uvicorn_opts
        if workers > 1 and not have_module("uvloop"):
            messages.append(
                f"MLFLOW_WORKERS={workers} without uvloop: keep-alive requests may stall ~50 ms "
                "(pip install uvloop)"
            )

    if sentry_boot_dir:
        child["PYTHONPATH"] = os.pathsep.join(p for p in (sentry_boot_dir, child.get("PYTHONPATH")) if p)

    argv = [python, "-m", "mlflow", "server", "--host", host, "--port", str(port)]
    argv += ["--workers", str(workers), "--serve-artifacts", *extra]
    messages.insert(
        0,
        f"MLflow tracking server on {host}:{port}, {sgi} with {workers} worker(s); "
        f"backend store {mask_uri(backend)}; "
        f"artifacts proxied to {mask_uri(destination)}",
    )
    messages.append(f"allowed Host headers: {child['MLFLOW_SERVER_ALLOWED_HOSTS']}")
    return Launch(argv=argv, env=child, messages=messages)


# The HTTP server. MLflow 3 runs uvicorn by default: a FastAPI app in front of the Flask app, every
# request crossing an ASGI->WSGI bridge (a thread hop per request) and two HTTP middlewares. Measured
# here (bench/bench_mlflow.py), serving the same Flask app with gunicorn's threaded workers cut a
# request's time by about half, so gunicorn is the default. What only the FastAPI app serves is lost
# with it: the OpenTelemetry ingest endpoint (/v1/traces), the jobs, gateway and assistant APIs and
# /api/3.0/mlflow/server-info. MLFLOW_SERVER_SGI=uvicorn (or --uvicorn-opts) keeps MLflow's own.
GUNICORN_DEFAULT_OPTS = "--worker-class gthread --threads 8 --keep-alive 75 --graceful-timeout 10"


def choose_sgi(env: Mapping[str, str], extra: Sequence[str]) -> str:
    """``gunicorn`` (the default), ``uvicorn``, or ``waitress`` when --waitress-opts is given."""
    if "--uvicorn-opts" in extra:
        return "uvicorn"
    if "--gunicorn-opts" in extra:
        return "gunicorn"
    if "--waitress-opts" in extra:
        return "waitress"
    wanted = env.get("MLFLOW_SERVER_SGI", "").strip().lower()
    if wanted in ("uvicorn", "gunicorn"):
        return wanted
    if wanted:
        raise ConfigError(f"MLFLOW_SERVER_SGI={wanted!r}: use gunicorn or uvicorn")
    if env.get("MLFLOW_UVICORN_OPTS", "").strip():  # uvicorn options mean uvicorn
        return "uvicorn"
    return "gunicorn"


def default_workers(backend: str) -> int:
    """Worker processes (gunicorn, 8 threads each) for a backend store: 4 for SQLite and for a
    database server, 1 for MLflow's file store.

    Why 4, measured with 8 client processes on this 2-core box (bench/bench_mlflow.py's calls, SQLite,
    calls/s, load 9-13): 1 worker 49 / 19 / 6.2 (log_metric / log_batch / search_runs), 2 workers
    99 / 20 / 8.6, 4 workers 98 / 29 / 17; stock ``mlflow server`` (4 uvicorn workers) 31 / 11 / 6.6.
    A process is what the GIL and the kernel's scheduler count: one worker gets at most one core,
    and on a machine shared with busy clients each process gets about an equal slice, so 4 workers
    keep pace with stock's 4. SQLite's single-writer lock costs little here: with WAL, reads never
    wait, and a metric write is a few Core statements (see fast_metric_writes) held for milliseconds,
    well inside the 30 s busy wait. PostgreSQL has no such lock. Each worker costs ~200 MB; set
    MLFLOW_WORKERS=1 for a small pod. MLflow's file store keeps 1 (its files have no locking)."""
    if backend.startswith("file:") or "://" not in backend:
        return 1
    return 4


def wait_for_database(uri: str, timeout: float, interval: float = 2.0) -> None:
    """Wait until the database host accepts TCP connections; raise ConfigError after ``timeout``."""
    address = database_address(uri)
    if address is None:
        return
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        attempt += 1
        try:
            with socket.create_connection(address, timeout=min(5.0, max(timeout, 0.5))):
                return
        except OSError as error:
            if time.monotonic() + interval > deadline:
                raise ConfigError(
                    f"database {mask_uri(uri)} is unreachable at {address[0]}:{address[1]} "
                    f"after {attempt} attempt(s) in {timeout:.0f} s: {error}"
                ) from None
            log.warning("waiting for database at %s:%s (%s)", address[0], address[1], error)
            time.sleep(interval)


def read_text(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = sys.argv[1:] if argv is None else list(argv)
    env = dict(os.environ)
    try:
        off_reason = sentry_plan(env)
        launch = build_launch(
            env,
            args,
            hostname=socket.gethostname(),
            sa_namespace=read_text(SERVICE_ACCOUNT_NAMESPACE_FILE),
            sentry_boot_dir=(
                write_sentry_boot(Path(__file__)) if off_reason is None or speedups_enabled(env) else None
            ),
        )
        db_wait = env.get("MLFLOW_DB_WAIT_SECONDS", "").strip() or str(DEFAULT_DB_WAIT_SECONDS)
        try:
            timeout = float(db_wait)
        except ValueError:
            raise ConfigError(f"MLFLOW_DB_WAIT_SECONDS={db_wait!r} must be a number of seconds") from None
        wait_for_database(launch.env["MLFLOW_BACKEND_STORE_URI"], timeout)
    except ConfigError as error:
        log.error("cannot start the MLflow server: %s", error)
        return 2
    for message in launch.messages:
        log.info("%s", message)
    log.info("%s", off_reason or "Sentry error reporting is on in every server process")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(launch.argv[0], launch.argv, launch.env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
