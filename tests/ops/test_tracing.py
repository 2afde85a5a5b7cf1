"""Tracing exported to a real OTLP/HTTP receiver: server span with the route template, SQL
and Redis spans under it, probes excluded, the trace id in the request's log line."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from opentelemetry.sdk.trace import TracerProvider

from keel.app import create_app
from keel.platform.tracing import traces_url
from keel.platform.tracing_context import add_trace_ids
from keel.settings import Settings
from tests.conftest import TEST_REDIS_URL, is_postgres, register_user
from tests.ops.otlp import ReceivedSpan, Receiver, otlp_receiver

SERVER = 2  # SpanKind.SERVER in OTLP
CLIENT = 3


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with otlp_receiver() as running:
        yield running


def _log_events(out: str) -> list[dict[str, Any]]:
    """The JSON lines Keel wrote to standard output (its loggers render there directly)."""
    # Any: parsed log lines.
    events = []
    for line in out.splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def _ancestors(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> list[ReceivedSpan]:
    chain = []
    while span.parent_span_id and span.parent_span_id in by_id:
        span = by_id[span.parent_span_id]
        chain.append(span)
    return chain


async def test_spans_reach_a_real_otlp_receiver(
    make_settings: Callable[..., Settings],
    receiver: Receiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = create_app(make_settings(otel_exporter_otlp_endpoint=receiver.url))
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.20", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://keel.test") as client:
            user = await register_user(client)
            created = await client.post(
                "/api/v1/projects", json={"name": "Traced project"}, headers=user.headers
            )
            assert created.status_code == 201
            for probe in ("/health", "/ready", "/metrics"):
                assert (await client.get(probe)).status_code == 200
    # Leaving the lifespan flushed the spans to the receiver.
    spans = receiver.snapshot()
    by_id = {span.span_id: span for span in spans}
    assert {span.service for span in spans} == {"keel"}

    [server] = [
        span
        for span in spans
        if span.kind == SERVER
        and span.attributes.get("http.route") == "/api/v1/projects"
        and span.attributes.get("http.request.method", span.attributes.get("http.method")) == "POST"
    ]
    assert server.name == "POST /api/v1/projects"  # the template, never the raw path
    in_request = [span for span in spans if span.trace_id == server.trace_id]
    sql = [
        span
        for span in in_request
        if "db.system" in span.attributes
        or span.name in {"INSERT", "SELECT", "UPDATE", "DELETE"}
        or span.attributes.get("db.system.name")
    ]
    assert sql, [span.name for span in in_request]
    for span in sql:
        assert server in _ancestors(span, by_id)  # a child (or grandchild) of the request
    if TEST_REDIS_URL:
        redis_spans = [s for s in in_request if str(s.attributes.get("db.system")) == "redis"]
        assert redis_spans
    assert is_postgres() or any("sqlite" in str(s.attributes) for s in sql)

    # Probes and scrapes are not traced.
    routes = {span.attributes.get("http.route") for span in spans if span.kind == SERVER}
    assert not routes & {"/health", "/ready", "/metrics"}

    # The request's log line names the same trace.
    [access] = [
        event
        for event in _log_events(capsys.readouterr().out)
        if event.get("event") == "request" and event.get("route") == "/api/v1/projects"
    ]
    assert access["trace_id"] == server.trace_id
    assert access["span_id"] == server.span_id


def test_the_traces_url_of_an_endpoint() -> None:
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("http://collector:4318/v1/traces/") == "http://collector:4318/v1/traces"


def test_log_lines_carry_a_trace_id_only_inside_a_span() -> None:
    assert add_trace_ids(None, "info", {"event": "x"}) == {"event": "x"}
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        line = add_trace_ids(None, "info", {"event": "x"})
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["span_id"] == format(span.get_span_context().span_id, "016x")
