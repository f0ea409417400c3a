"""The ``logs`` command: the stages' container logs, read from the cluster and redacted.

Shell: what to read comes from ``stage_logs.py``; this reads the pipeline's objects, the values of
every Secret the stages or their pods use (to redact them: a stage that prints its password must not
put it on the terminal), then the logs. Without ``follow`` the containers are read one after the
other; with it, one thread per container feeds a queue and lines are printed as they arrive, until
every container has stopped or the user presses Ctrl+C (the streams are closed, KeyboardInterrupt
goes on to the CLI's boundary: exit 130).

No Secret read, no log: a Secret that exists but can't be read (RBAC) is an error, not a log
shown unredacted.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bodywork_action import render
from bodywork_action.errors import ClusterError
from bodywork_action.interruptible import next_item
from bodywork_action.kube.client import (
    DEPLOYMENT,
    JOB,
    NAMESPACE,
    POD,
    SECRET,
    Cluster,
    KubeTarget,
    PodLogStream,
    connect_cluster,
)
from bodywork_action.kube.inventory import COMMAND_TIMEOUT_SECONDS
from bodywork_action.model import DeployContext, Pipeline, Stage
from bodywork_action.reconcile import build_owner_selector, secret_values_of
from bodywork_action.redact import Redactor
from bodywork_action.stage_logs import (
    LogSource,
    format_log_line,
    plan_stage_logs,
    referenced_secret_names,
    select_stages,
)

Write = Callable[[str], None]


@dataclass(frozen=True)
class LogOptions:
    stage: str = ""  # "" for every stage
    container: str = ""  # "" for the stage's own container
    follow: bool = False
    previous: bool = False
    since_seconds: int | None = None


def show_logs(
    pipeline: Pipeline,
    options: LogOptions,
    *,
    target: KubeTarget,
    namespace: str = "",
    environ: Mapping[str, str] | None = None,
    out: Write,
    note: Write,
) -> None:
    """Print the logs ``options`` ask for: log lines through ``out``, what is shown (and what can't
    be) through ``note``. Raises ``InputError`` for an unknown stage before connecting."""
    stages = select_stages(pipeline, options.stage)
    resolved = render.target_namespace(
        pipeline, DeployContext(repository_url="", commit="", namespace=namespace)
    )
    cluster = connect_cluster(target, environ=environ)
    cluster.deadline = time.monotonic() + COMMAND_TIMEOUT_SECONDS  # an API server away: not forever
    try:
        if cluster.read_object(NAMESPACE, resolved) is None:
            note(f"namespace {resolved} does not exist: {pipeline.name} is not deployed there, no logs")
            return
        selector = build_owner_selector(pipeline)
        jobs = cluster.read_objects(JOB, namespace=resolved, label_selector=selector).items
        deployments = cluster.read_objects(DEPLOYMENT, namespace=resolved, label_selector=selector).items
        pods = cluster.read_objects(POD, namespace=resolved, label_selector=selector).items
        planned = plan_stage_logs(
            stages,
            jobs=jobs,
            deployments=deployments,
            pods=pods,
            container=options.container,
            previous=options.previous,
            label_stages=options.follow and len(stages) > 1,
        )
        redactor = _read_redactor(cluster, resolved, [*pipeline.stages.values()], pods)
        reader = _Reader(cluster, options, resolved, out, note, redactor.redact)
        readable: list[LogSource] = []
        for stage_logs in planned:
            note(f"== {stage_logs.header}")
            for source in stage_logs.sources:
                if source.skip_reason:
                    note(f"{_where(source)}: {source.skip_reason}, no logs")
                    continue
                if source.note:
                    note(f"{_where(source)}: {source.note}")
                if options.follow:
                    readable.append(source)
                else:
                    reader.print_all(source)
        if readable:
            reader.follow(readable)
    finally:
        cluster.close()


def _where(source: LogSource) -> str:
    return f"{source.stage}: pod {source.pod}"


def _read_redactor(
    cluster: Cluster, namespace: str, stages: Sequence[Stage], pods: Sequence[dict[str, object]]
) -> Redactor:
    """Every value of every Secret the stages name or their pods reference (a missing one has none)."""
    found = []
    for name in referenced_secret_names(stages, pods):
        secret = cluster.read_object(SECRET, name, namespace=namespace)
        if secret is not None:
            found.append(secret)
    return Redactor(secret_values_of(found))


_END = object()


@dataclass(frozen=True)
class _Reader:
    """Reads the chosen containers of one namespace and prints their lines, redacted."""

    cluster: Cluster
    options: LogOptions
    namespace: str
    out: Write
    note: Write
    clean: Callable[[str], str]

    def open(self, source: LogSource) -> PodLogStream | None:
        try:
            return self.cluster.open_pod_log(
                source.pod,
                namespace=self.namespace,
                container=source.container,
                follow=self.options.follow,
                previous=self.options.previous,
                since_seconds=self.options.since_seconds,
            )
        except ClusterError as exc:
            if exc.status in (400, 404):  # the container stopped or went since it was listed: say so
                self.note(f"{_where(source)}: {self.clean(str(exc))}")
                return None
            raise

    def print_line(self, source: LogSource, line: str) -> None:
        self.out(format_log_line(source.prefix, self.clean(line)))

    def print_all(self, source: LogSource) -> None:
        stream = self.open(source)
        for line in stream or ():
            self.print_line(source, line)

    def follow(self, sources: Sequence[LogSource]) -> None:
        """One reading thread per container; lines printed as they come until every stream ended."""
        arrived: queue.Queue[tuple[LogSource, object]] = queue.Queue()
        streams: list[PodLogStream] = []
        threads: list[threading.Thread] = []

        def pump(source: LogSource, stream: PodLogStream) -> None:
            try:
                for line in stream:
                    arrived.put((source, line))
            except ClusterError as exc:
                arrived.put((source, exc))
            finally:
                arrived.put((source, _END))

        try:
            for source in sources:
                stream = self.open(source)
                if stream is None:
                    continue
                streams.append(stream)
                thread = threading.Thread(
                    target=pump, args=(source, stream), name=f"logs-{source.pod}", daemon=True
                )
                threads.append(thread)
                thread.start()
            running = len(threads)
            while running:
                source, item = next_item(arrived)  # Ctrl+C must end a followed log
                if item is _END:
                    running -= 1
                elif isinstance(item, ClusterError):
                    self.note(f"{_where(source)}: {self.clean(str(item))}")
                else:
                    self.print_line(source, str(item))
        finally:  # Ctrl+C lands here too: end every stream so that no thread is left reading
            for stream in streams:
                stream.close()
            for thread in threads:
                thread.join(timeout=5)
