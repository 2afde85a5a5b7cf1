"""GET /metrics: Prometheus names and labels of SPEC §6, bearer protection, multi-worker sums."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families

from keel.app import create_app
from keel.platform.metrics import WEBSOCKET_CONNECTIONS, _classify, prepare_multiprocess
from keel.settings import Settings
from tests.conftest import FAST_ARGON2, register_user
from tests.servers import run_server

SPEC_NAMES = {
    "http_request_duration_seconds",
    "db_query_duration_seconds",
    "cache_hits",
    "cache_misses",
    "db_connections_active",
    "websocket_connections",
    "rate_limit_rejections",
}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


async def test_metrics_exposes_spec_names_in_prometheus_format(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name for f in text_string_to_metric_families(response.text)}
    assert families >= SPEC_NAMES


async def test_http_duration_is_labelled_by_route_template(client: httpx.AsyncClient) -> None:
    before = (await client.get("/metrics")).text
    for name in ("a.js", "b.js", "c.js"):
        assert (await client.get(f"/static/missing-{name}")).status_code == 404
    await client.get("/no/such/path/123")
    after = (await client.get("/metrics")).text
    labels = {"method": "GET", "route": "/static/{name}", "status_code": "404"}
    count = "http_request_duration_seconds_count"
    assert value(after, count, **labels) - value(before, count, **labels) == 3
    unmatched = {"method": "GET", "route": "<unmatched>", "status_code": "404"}
    assert value(after, count, **unmatched) - value(before, count, **unmatched) >= 1
    assert "missing-a.js" not in after
    assert "/no/such/path" not in after


async def test_database_queries_are_timed_by_operation_and_table(
    client: httpx.AsyncClient,
) -> None:
    before = (await client.get("/metrics")).text
    await register_user(client)
    after = (await client.get("/metrics")).text
    count = "db_query_duration_seconds_count"
    inserted = value(after, count, operation="INSERT", table="users") - value(
        before, count, operation="INSERT", table="users"
    )
    assert inserted >= 1
    assert re.search(r"db_connections_active(\{[^}]*\})? ", after)


def test_statement_classification_bounds_label_values() -> None:
    tables = frozenset({"users", "projects"})
    assert _classify("SELECT users.id FROM users WHERE x", tables) == ("SELECT", "users")
    assert _classify('INSERT INTO "projects" (id) VALUES (1)', tables) == ("INSERT", "projects")
    assert _classify("UPDATE projects SET a=1", tables) == ("UPDATE", "projects")
    assert _classify("SELECT 1", tables) == ("SELECT", "none")
    assert _classify("SELECT * FROM pg_catalog", tables) == ("SELECT", "other")
    assert _classify("VACUUM", tables) == ("OTHER", "none")
    assert _classify("   ", tables) == ("OTHER", "none")


async def test_websocket_gauge_is_shared_for_realtime(client: httpx.AsyncClient) -> None:
    WEBSOCKET_CONNECTIONS.inc()
    try:
        text = (await client.get("/metrics")).text
        assert value(text, "websocket_connections") >= 1
    finally:
        WEBSOCKET_CONNECTIONS.dec()


async def test_rate_limit_rejections_are_counted(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(rate_limit_anonymous="1/minute"))
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app, client=("198.51.100.77", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            before = value((await client.get("/metrics")).text, "rate_limit_rejections_total")
            await client.get("/x")
            assert (await client.get("/x")).status_code == 429
            after = value((await client.get("/metrics")).text, "rate_limit_rejections_total")
            assert after == before + 1
            labels = {"method": "GET", "route": "<unmatched>", "status_code": "429"}
            text = (await client.get("/metrics")).text
            assert value(text, "http_request_duration_seconds_count", **labels) >= 1


@pytest.fixture
async def protected(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(metrics_token="scrape-me-please"))
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=app, client=("198.51.100.78", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def test_metrics_token_is_required_when_configured(protected: httpx.AsyncClient) -> None:
    missing = await protected.get("/metrics")
    assert missing.status_code == 401
    assert missing.json()["code"] == "UNAUTHORIZED"
    wrong = await protected.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    ok = await protected.get("/metrics", headers={"Authorization": "Bearer scrape-me-please"})
    assert ok.status_code == 200
    assert "http_request_duration_seconds" in ok.text


def test_prepare_multiprocess_sets_a_fresh_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # setenv first, so that monkeypatch removes the variable again after the test.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    prepare_multiprocess(1)

    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    prepare_multiprocess(2)
    assert Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).is_dir()
    stale = tmp_path / "metrics"
    stale.mkdir()
    (stale / "counter_1.db").write_bytes(b"old")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(stale))
    prepare_multiprocess(2)
    assert stale.is_dir()
    assert not any(stale.iterdir())


def test_metrics_add_up_across_worker_processes(
    database_url: str, redis_url: str | None, tmp_path: Path
) -> None:
    env = {
        "KEEL_DATABASE_URL": database_url,
        "KEEL_SECRET_KEY": "test-secret-" + "x" * 40,
        "KEEL_DATA_DIR": str(tmp_path / "data"),
        "KEEL_RATE_LIMIT_ENABLED": "false",
        **{f"KEEL_{k.upper()}": str(v) for k, v in FAST_ARGON2.items()},
    }
    if redis_url:
        env["KEEL_REDIS_URL"] = redis_url
    labels = {"method": "GET", "route": "/static/{name}", "status_code": "404"}
    with run_server(env, log_dir=tmp_path, workers=2) as server, httpx.Client() as http:
        # New connections each time, so the kernel spreads them over both workers.
        for n in range(40):
            http.get(f"{server.url}/static/none-{n}.js", headers={"Connection": "close"})
        scrapes = [
            value(
                http.get(f"{server.url}/metrics").text,
                "http_request_duration_seconds_count",
                **labels,
            )
            for _ in range(4)
        ]
    # Whichever worker answers the scrape, it reports the sum over both workers.
    assert scrapes == [40.0] * 4
