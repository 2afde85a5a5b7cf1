"""Prometheus metrics (docs/SPEC.md §6): HTTP, database, cache, rate-limit and connection gauges.

The metric objects are process-wide singletons (a registry refuses duplicate names, and tests
build many apps in one process). With `serve --workers N` the CLI points
PROMETHEUS_MULTIPROC_DIR at a fresh directory before the workers start, so every worker
writes its samples there and `/metrics` on any worker aggregates all of them.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.platform.direct import StatementObserver

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_MULTIPROCESS = bool(os.environ.get(MULTIPROC_ENV))

# Latency buckets around the SLO (p95 < 100 ms, p99 < 200 ms).
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)
_DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

# In single-process mode the samples live in this registry; in multiprocess mode they live in
# files and /metrics collects them into a fresh registry per scrape.
REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by method, route template and status code",
    ["method", "route", "status_code"],
    buckets=_HTTP_BUCKETS,
    registry=REGISTRY,
)
DB_QUERY_DURATION = Histogram(
    "db_query_duration_seconds",
    "Database statement latency by operation and table",
    ["operation", "table"],
    buckets=_DB_BUCKETS,
    registry=REGISTRY,
)
CACHE_HITS = Counter(
    "cache_hits",
    "Cache hits by layer (l1 in-process, l2 Redis)",
    ["cache_layer"],
    registry=REGISTRY,
)
CACHE_MISSES = Counter("cache_misses", "Cache misses by layer", ["cache_layer"], registry=REGISTRY)
DB_CONNECTIONS_ACTIVE = Gauge(
    "db_connections_active",
    "Database connections checked out of the pool",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
# Realtime increments this on accept and decrements on close.
WEBSOCKET_CONNECTIONS = Gauge(
    "websocket_connections",
    "Open WebSocket connections",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
# The event relay sets it after each pass: how long the oldest event it handled had waited
# since its commit (0 when nothing was waiting).
OUTBOX_RELAY_LAG = Gauge(
    "outbox_relay_lag_seconds",
    "Seconds from an event's commit to its relay by this instance (oldest of the last pass)",
    registry=REGISTRY,
    multiprocess_mode="max",
)
RATE_LIMIT_REJECTIONS = Counter(
    "rate_limit_rejections", "Requests rejected with 429 by the rate limiter", registry=REGISTRY
)
OVERLOAD_REJECTIONS = Counter(
    "overload_rejections",
    "Requests rejected with 503 because the instance was at its concurrency limit",
    registry=REGISTRY,
)


def prepare_multiprocess(workers: int) -> None:
    """Called by `serve` before workers start: one fresh sample directory for this server.

    With one worker nothing is needed; an operator-provided PROMETHEUS_MULTIPROC_DIR is kept
    (and emptied, since stale files from an earlier run would be summed in).
    """
    if workers <= 1 and not os.environ.get(MULTIPROC_ENV):
        return
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        path = Path(directory)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
    else:
        directory = tempfile.mkdtemp(prefix="keel-metrics-")
    os.environ[MULTIPROC_ENV] = directory


def mark_worker_dead() -> None:
    """Drop this worker's live gauges on shutdown (their `livesum` must not linger)."""
    directory = os.environ.get(MULTIPROC_ENV)
    if _MULTIPROCESS and directory:
        prom_multiprocess.mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]


def render_metrics() -> bytes:
    if _MULTIPROCESS:
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


# --- HTTP ---------------------------------------------------------------------------------


class MetricsMiddleware:
    """Pure ASGI: one histogram sample per HTTP request, labelled by the route *template*.

    The router writes the matched route into the scope, so after the call the template is
    known; unmatched paths share one label, which keeps cardinality bounded.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # labels() does a dict lookup plus locking; caching the children keeps the hot path short.
        self._children: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", None) or "<unmatched>"
            key = (scope["method"], route, status)
            child = self._children.get(key)
            if child is None:
                child = HTTP_REQUEST_DURATION.labels(scope["method"], route, str(status))
                self._children[key] = child
            child.observe(time.perf_counter() - start)


# --- database -----------------------------------------------------------------------------

_TABLE_RE = re.compile(
    r"\b(?:FROM|INTO|UPDATE|JOIN)\s+\"?([A-Za-z_][A-Za-z0-9_]*)\"?", re.IGNORECASE
)
_OPERATIONS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE", "BEGIN", "COMMIT", "ROLLBACK"})


def _classify(statement: str, tables: frozenset[str]) -> tuple[str, str]:
    head = statement.lstrip().split(None, 1)
    operation = head[0].upper() if head else "OTHER"
    if operation not in _OPERATIONS:
        operation = "OTHER"
    match = _TABLE_RE.search(statement)
    table = match.group(1).lower() if match else "none"
    # Only known tables become labels, so arbitrary SQL cannot blow up cardinality.
    return operation, table if table in tables or table == "none" else "other"


def instrument_engine(engine: AsyncEngine, *, tables: frozenset[str]) -> StatementObserver:
    """Time every statement and count checked-out connections through SQLAlchemy events.

    Returns the observer the events use, for a statement sent below them (platform.direct).
    """
    sync_engine = engine.sync_engine
    labels: dict[str, Any] = {}  # statement text -> histogram child (statements are cached)

    def observe(statement: str, seconds: float) -> None:
        child = labels.get(statement)
        if child is None:
            child = DB_QUERY_DURATION.labels(*_classify(statement, tables))
            if len(labels) < 5000:
                labels[statement] = child
        child.observe(seconds)

    def before(conn: Any, _cursor: Any, _stmt: str, _params: Any, _ctx: Any, _many: bool) -> None:
        # Any: SQLAlchemy's event signature (DBAPI objects vary by driver).
        conn.info.setdefault("keel_query_start", []).append(time.perf_counter())

    def after(
        conn: Any, _cursor: Any, statement: str, _params: Any, _ctx: Any, _many: bool
    ) -> None:
        observe(statement, time.perf_counter() - conn.info["keel_query_start"].pop())

    def on_error(context: Any) -> None:
        stack = context.connection.info.get("keel_query_start") if context.connection else None
        if stack:
            stack.pop()

    def checkout(*_args: Any) -> None:
        DB_CONNECTIONS_ACTIVE.inc()

    def checkin(*_args: Any) -> None:
        DB_CONNECTIONS_ACTIVE.dec()

    event.listen(sync_engine, "before_cursor_execute", before)
    event.listen(sync_engine, "after_cursor_execute", after)
    event.listen(sync_engine, "handle_error", on_error)
    event.listen(sync_engine.pool, "checkout", checkout)
    event.listen(sync_engine.pool, "checkin", checkin)
    return observe
