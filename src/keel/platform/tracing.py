"""OpenTelemetry tracing (SPEC §13): HTTP, SQL, Redis and outgoing HTTP spans over OTLP/HTTP,
on only when KEEL_OTEL_EXPORTER_OTLP_ENDPOINT is set; the trace id is added to log lines."""

from __future__ import annotations

import structlog
from fastapi import FastAPI
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from sqlalchemy.ext.asyncio import AsyncEngine

log = structlog.get_logger("keel.tracing")

# Probes and scrapes are not user traffic: no spans (comma-separated regexes, matched on the URL).
EXCLUDED_URLS = "/health$,/ready$,/metrics$"


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a collector endpoint (the SDK's own rule for the base
    endpoint variable: append /v1/traces unless the path is given)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


class Tracing:
    """One app's tracer provider and instrumentations; `shutdown()` flushes and undoes them.

    redis-py and httpx are instrumented process-wide (their instrumentors patch the classes),
    so one app per process should trace; FastAPI and SQLAlchemy are per app and per engine.
    """

    def __init__(self, *, endpoint: str, service_name: str) -> None:
        self.provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(traces_url(endpoint))))
        self._sqlalchemy = SQLAlchemyInstrumentor()
        self._redis = RedisInstrumentor()
        self._httpx = HTTPXClientInstrumentor()
        self._app: FastAPI | None = None

    def instrument(self, app: FastAPI, *, engines: list[AsyncEngine]) -> None:
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            excluded_urls=EXCLUDED_URLS,
            # One span per ASGI message ("http send"/"http receive") doubles the span count
            # of a small request and says nothing the server span does not.
            exclude_spans=["receive", "send"],
        )
        self._app = app
        # The instrumentation declares sqlalchemy < 2.1 but only uses the engine events
        # (before/after_cursor_execute), unchanged in 2.1; tests/ops/test_tracing.py proves
        # the SQL spans (docs/adr/0018-ops-drain-and-tracing.md).
        self._sqlalchemy.instrument(
            engines=[engine.sync_engine for engine in engines],
            tracer_provider=self.provider,
            skip_dep_check=True,
        )
        self._redis.instrument(tracer_provider=self.provider)
        self._httpx.instrument(tracer_provider=self.provider)
        log.info("tracing_enabled")

    def shutdown(self) -> None:
        """Export what is buffered, then remove the instrumentation."""
        if self._app is not None:
            FastAPIInstrumentor.uninstrument_app(self._app)
            self._app = None
        for instrumentor in (self._sqlalchemy, self._redis, self._httpx):
            if instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.uninstrument()
        self.provider.shutdown()
