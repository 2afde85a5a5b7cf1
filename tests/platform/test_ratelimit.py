"""Rate limits, client IP resolution and the overload guard (SPEC §6, §7)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from keel.app import create_redis
from keel.identity.service import IDENTITY
from keel.platform.metrics import REGISTRY
from keel.platform.ratelimit import (
    ProtectionMiddleware,
    RateLimiter,
    client_ip,
    parse_networks,
)
from keel.platform.sliding_window import lease_size, sliding_window_decision
from keel.settings import Settings
from tests.conftest import FAST_ARGON2, TEST_REDIS_URL, register_user, serve
from tests.servers import free_port, run_server

PEER = "203.0.113.10"


async def away_from_a_minute_edge(margin: float = 3.0) -> None:
    """Exact counts need every hit inside one window, and per-minute windows are aligned to
    the clock (in `limits` and in our Lua script, on Redis's clock, the same host's here):
    wait out the end of the current minute when it is near. A CI run once crossed it between
    two hits, and the sliding weight of the first hit turned remaining 2, 1, 0 into 2, 2, 1."""
    left = 60 - time.time() % 60
    if left < margin:
        await asyncio.sleep(left + 0.05)


def rejections() -> float:
    return REGISTRY.get_sample_value("rate_limit_rejections_total") or 0.0


async def test_anonymous_limit_rejects_with_envelope_and_headers(
    make_settings: Callable[..., Settings],
) -> None:
    before = rejections()
    async with serve(make_settings(rate_limit_anonymous="3/minute")) as client:
        await away_from_a_minute_edge()
        remaining = []
        for _ in range(3):
            response = await client.get("/api/v1/nowhere")
            assert response.status_code == 404
            assert response.headers["ratelimit-limit"] == "3"
            remaining.append(int(response.headers["ratelimit-remaining"]))
            assert 0 <= int(response.headers["ratelimit-reset"]) <= 60
        assert remaining == [2, 1, 0]

        response = await client.get("/api/v1/nowhere")
        assert response.status_code == 429
        body = response.json()
        assert body["code"] == "RATE_LIMITED"
        assert set(body) >= {"error", "code", "details", "timestamp", "path"}
        assert body["path"] == "/api/v1/nowhere"
        retry_after = response.headers["retry-after"]
        assert retry_after.isdigit()
        # A sliding window: a full window still weighs on the next one, so up to two windows.
        assert 1 <= int(retry_after) <= 120
        assert response.headers["ratelimit-limit"] == "3"
        assert response.headers["ratelimit-remaining"] == "0"
        assert "x-request-id" in response.headers  # still wrapped by the platform layer
    assert rejections() == before + 1


async def test_health_ready_and_metrics_are_exempt(make_settings: Callable[..., Settings]) -> None:
    async with serve(make_settings(rate_limit_anonymous="1/minute")) as client:
        for _ in range(3):
            for path in ("/health", "/ready", "/metrics"):
                response = await client.get(path)
                assert response.status_code == 200, (path, response.text)
                assert "ratelimit-limit" not in response.headers


async def test_authenticated_requests_count_per_user_not_per_ip(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(rate_limit_anonymous="2/minute", rate_limit_authenticated="4/minute")
    async with serve(settings) as client:
        alice = await register_user(client)
        bob = await register_user(client)
        # Exhaust the IP's anonymous allowance.
        for _ in range(2):
            await client.get("/api/v1/nowhere")
        assert (await client.get("/api/v1/nowhere")).status_code == 429
        # Both users behind that IP still have their own allowance.
        for user in (alice, bob):
            for _ in range(4):
                # Any route: the limit applies before routing (404 here keeps identity out of it).
                response = await client.get("/api/v1/nowhere", headers=user.headers)
                assert response.status_code == 404, response.text
                assert response.headers["ratelimit-limit"] == "4"
            response = await client.get("/api/v1/nowhere", headers=user.headers)
            assert response.status_code == 429
            assert response.json()["code"] == "RATE_LIMITED"


async def test_invalid_token_counts_against_the_ip(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(rate_limit_anonymous="2/minute", rate_limit_authenticated="50/minute")
    async with serve(settings) as client:
        forged = {"Authorization": "Bearer not.a.jwt"}
        statuses = [
            (await client.get("/api/v1/nowhere", headers=forged)).status_code for _ in range(3)
        ]
        assert statuses == [404, 404, 429]
        response = await client.get("/api/v1/nowhere", headers={"Authorization": "Basic x"})
        assert response.status_code == 429


async def test_sign_in_endpoints_have_a_stricter_limit(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        rate_limit_anonymous="100/minute", rate_limit_auth_endpoints="2/minute"
    )
    async with serve(settings) as client:
        credentials = {"email": "nobody@example.com", "password": "wrong password here"}
        first = await client.post("/api/v1/auth/login", json=credentials)
        second = await client.post("/api/v1/auth/login", json=credentials)
        third = await client.post("/api/v1/auth/login", json=credentials)
        assert [first.status_code, second.status_code] == [401, 401]
        assert first.headers["ratelimit-limit"] == "2"
        assert third.status_code == 429
        assert int(third.headers["retry-after"]) >= 1
        # Other endpoints still use the general allowance.
        assert (await client.get("/api/v1/nowhere")).status_code == 404


async def test_spoofed_forwarded_for_from_untrusted_peer_changes_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    async with serve(make_settings(rate_limit_anonymous="2/minute")) as client:
        for n in range(2):
            response = await client.get(
                "/api/v1/nowhere", headers={"X-Forwarded-For": f"198.51.100.{n}"}
            )
            assert response.status_code == 404
        response = await client.get("/api/v1/nowhere", headers={"X-Forwarded-For": "198.51.100.99"})
        assert response.status_code == 429


async def test_trusted_proxy_limits_each_forwarded_client_separately(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(rate_limit_anonymous="1/minute", trusted_proxies="203.0.113.0/24")
    async with serve(settings) as client:
        for n in range(3):
            response = await client.get(
                "/api/v1/nowhere",
                # The client's spoofed left-most entry is ignored: the proxy appended the real one.
                headers={"X-Forwarded-For": f"10.9.9.9, 198.51.100.{n}"},
            )
            assert response.status_code == 404
        again = await client.get("/api/v1/nowhere", headers={"X-Forwarded-For": "198.51.100.0"})
        assert again.status_code == 429


def _scope(peer: str | None, forwarded: str | None = None) -> dict[str, Any]:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return {"client": (peer, 1234) if peer else None, "headers": headers}


def test_client_ip_walks_forwarded_for_only_through_trusted_hops() -> None:
    trusted = parse_networks(["10.0.0.0/8", "192.0.2.1"])
    assert client_ip(_scope("203.0.113.5", "1.1.1.1"), trusted) == "203.0.113.5"
    assert client_ip(_scope("10.0.0.2", "1.1.1.1, 198.51.100.7"), trusted) == "198.51.100.7"
    assert client_ip(_scope("10.0.0.2", "198.51.100.7, 192.0.2.1"), trusted) == "198.51.100.7"
    assert client_ip(_scope("10.0.0.2", "garbage, 192.0.2.1"), trusted) == "192.0.2.1"
    assert client_ip(_scope("10.0.0.2", "10.0.0.3, 10.0.0.4"), trusted) == "10.0.0.3"
    assert client_ip(_scope("10.0.0.2"), trusted) == "10.0.0.2"
    assert client_ip(_scope(None, "1.1.1.1"), trusted) is None
    assert client_ip(_scope("not-an-ip", "1.1.1.1"), trusted) == "not-an-ip"
    assert client_ip(_scope("203.0.113.5", "1.1.1.1"), ()) == "203.0.113.5"


async def test_client_ip_reaches_request_state(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(trusted_proxies="203.0.113.10")
    async with serve(settings) as client:
        app: FastAPI = client.app  # type: ignore[attr-defined]
        seen: list[str | None] = []

        @app.get("/_probe_ip")
        async def probe(request: Request) -> dict[str, str]:
            seen.append(request.state.client_ip)
            return {}

        await client.get("/_probe_ip", headers={"X-Forwarded-For": "198.51.100.23"})
        assert seen == ["198.51.100.23"]


async def test_disabled_rate_limiting_sends_no_headers(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(rate_limit_enabled=False, rate_limit_anonymous="1/minute")
    async with serve(settings) as client:
        for _ in range(3):
            response = await client.get("/api/v1/nowhere")
            assert response.status_code == 404
            assert "ratelimit-limit" not in response.headers


async def test_overload_guard_rejects_excess_fast_with_retry_after(
    make_settings: Callable[..., Settings],
) -> None:
    async with serve(make_settings(overload_max_concurrency=1, overload_queue_size=0)) as client:
        app: FastAPI = client.app  # type: ignore[attr-defined]
        release = asyncio.Event()
        entered = asyncio.Event()
        body_sent = asyncio.Event()

        @app.get("/_slow")
        async def slow() -> dict[str, str]:
            entered.set()
            await release.wait()
            return {}

        async def slow_body() -> AsyncIterator[bytes]:
            await body_sent.wait()
            yield b'{"email": "a@example.com", "password": "whatever12"}'

        # A request whose body has not arrived holds no place in the guard (issue 10 item 3).
        stalled = asyncio.create_task(
            client.post(
                "/api/v1/auth/login",
                content=slow_body(),
                headers={"content-type": "application/json"},
            )
        )
        await asyncio.sleep(0.05)
        assert (await client.get("/api/v1/nowhere")).status_code == 404
        # A request being served does.
        held = asyncio.create_task(client.get("/_slow"))
        await asyncio.wait_for(entered.wait(), 10)
        response = await client.get("/api/v1/nowhere")
        assert response.status_code == 503
        assert response.json()["code"] == "OVERLOADED"
        assert response.headers["retry-after"] == "1"
        assert (await client.get("/health")).status_code == 200  # liveness is never shed
        release.set()
        assert (await held).status_code == 200
        body_sent.set()
        assert (await stalled).status_code == 401
        assert (await client.get("/api/v1/nowhere")).status_code == 404


async def test_overload_guard_lets_a_bounded_line_wait_and_sheds_the_rest(
    make_settings: Callable[..., Settings],
) -> None:
    """One served at a time, one more may wait: it is served once a place frees; a third gets
    a 503 at once; a request that waited longer than the queue timeout gets a 503 too."""
    settings = make_settings(
        overload_max_concurrency=1, overload_queue_size=1, overload_queue_timeout_ms=60_000
    )
    async with serve(settings) as client:
        app: FastAPI = client.app  # type: ignore[attr-defined]
        release = asyncio.Event()
        entered = asyncio.Event()
        calls = 0

        @app.get("/_slow")
        async def slow() -> dict[str, int]:
            nonlocal calls
            calls += 1
            entered.set()
            await release.wait()
            return {"call": calls}

        held = asyncio.create_task(client.get("/_slow"))
        await asyncio.wait_for(entered.wait(), 10)
        waiting = asyncio.create_task(client.get("/_slow"))
        while not any(  # until the second request stands in line
            isinstance(mw, ProtectionMiddleware) and mw.gate.waiting == 1
            for mw in _middlewares(app)
        ):
            await asyncio.sleep(0.01)
        shed = await client.get("/api/v1/nowhere")
        assert shed.status_code == 503
        assert shed.json()["code"] == "OVERLOADED"
        assert shed.headers["retry-after"] == "1"
        assert not waiting.done()
        release.set()
        assert (await held).json() == {"call": 1}
        assert (await waiting).json() == {"call": 2}  # served, in its turn
        assert (await client.get("/api/v1/nowhere")).status_code == 404

    # A line nobody leaves in time: the one waiting is shed when its wait runs out.
    settings = make_settings(
        overload_max_concurrency=1, overload_queue_size=4, overload_queue_timeout_ms=50
    )
    async with serve(settings) as client:
        app = client.app  # type: ignore[attr-defined]
        release = asyncio.Event()
        entered = asyncio.Event()

        @app.get("/_slow")
        async def stuck() -> dict[str, str]:
            entered.set()
            await release.wait()
            return {}

        held = asyncio.create_task(client.get("/_slow"))
        await asyncio.wait_for(entered.wait(), 10)
        late = await asyncio.gather(*(client.get("/api/v1/nowhere") for _ in range(3)))
        assert [r.status_code for r in late] == [503, 503, 503]
        assert {r.json()["code"] for r in late} == {"OVERLOADED"}
        release.set()
        assert (await held).status_code == 200
        assert (await client.get("/api/v1/nowhere")).status_code == 404


def _middlewares(app: FastAPI) -> list[object]:
    """The middleware instances of the built stack, outermost first."""
    found: list[object] = []
    layer: object | None = app.middleware_stack
    while layer is not None:
        found.append(layer)
        layer = getattr(layer, "app", None)
    return found


def _dead_redis_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


async def test_redis_outage_fails_open_reports_in_ready_and_logs_once(
    make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(redis_url=_dead_redis_url(), rate_limit_anonymous="2/minute")
    async with serve(settings) as client:
        statuses = [(await client.get("/api/v1/nowhere")).status_code for _ in range(4)]
        # The local fallback limiter still limits.
        assert statuses == [404, 404, 429, 429]
        ready = await client.get("/ready")
        assert ready.status_code == 503
    logs = capsys.readouterr().out
    assert logs.count("rate_limit_store_unavailable") == 1
    assert "rate_limit" in logs


async def test_redis_outage_fails_closed_when_configured(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(redis_url=_dead_redis_url(), rate_limit_fail_open=False)
    async with serve(settings) as client:
        response = await client.get("/api/v1/nowhere")
        assert response.status_code == 503
        assert response.json()["code"] == "SERVICE_UNAVAILABLE"
        assert response.headers["retry-after"] == "5"
        assert (await client.get("/health")).status_code == 200


@pytest.mark.skipif(
    not TEST_REDIS_URL,
    reason="the shared limit needs Redis (PostgreSQL + Redis run)",
)
async def test_limit_is_shared_by_two_server_processes(
    database_url: str, redis_url: str | None, tmp_path: Path
) -> None:
    assert redis_url
    env = {
        "KEEL_DATABASE_URL": database_url,
        "KEEL_REDIS_URL": redis_url,
        "KEEL_SECRET_KEY": "test-secret-" + "x" * 40,
        "KEEL_DATA_DIR": str(tmp_path / "data"),
        "KEEL_RATE_LIMIT_ANONYMOUS": "4/minute",
        **{f"KEEL_{k.upper()}": str(v) for k, v in FAST_ARGON2.items()},
    }
    path = f"/api/v1/nowhere-{uuid.uuid4().hex[:6]}"
    with (
        run_server(env, log_dir=tmp_path) as first,
        run_server(env, log_dir=tmp_path) as second,
    ):
        async with httpx.AsyncClient() as http:
            statuses = []
            for server in (first, second, first, second, first, second):
                statuses.append((await http.get(server.url + path)).status_code)
    assert statuses == [404, 404, 404, 404, 429, 429]


def test_sliding_window_headers_follow_the_weighted_count() -> None:
    # Half-way through a 60 s window, 10 in the previous window weigh 5.
    taken = sliding_window_decision(
        limit=10, window=60, allowed=True, previous=10, current=3, elapsed=30
    )
    assert (taken.remaining, taken.reset_after) == (2, 30)
    # Current window full: roll over (30 s), then decay until one fits (6 s of 60 * 1/10).
    full = sliding_window_decision(
        limit=10, window=60, allowed=False, previous=0, current=10, elapsed=30
    )
    assert (full.remaining, full.reset_after) == (0, 36)
    # Previous window still heavy: wait until its weight lets one more in.
    heavy = sliding_window_decision(
        limit=10, window=60, allowed=False, previous=20, current=2, elapsed=30
    )
    assert heavy.remaining == 0
    assert heavy.reset_after == 9  # 20 * (1 - t/60) + 2 <= 9  =>  t >= 39, 9 s from now


def test_lease_is_exact_for_small_limits_and_bounded_for_large_ones() -> None:
    assert lease_size(4) == 1
    assert lease_size(100) == 1
    assert lease_size(1000) == 10
    assert lease_size(100_000_000) == 20


@pytest.mark.skipif(not TEST_REDIS_URL, reason="the shared limiter needs Redis")
async def test_leased_hits_from_two_instances_stay_within_the_shared_limit(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(rate_limit_authenticated="300/minute")
    clients = [create_redis(settings), create_redis(settings)]
    try:
        limiters = [RateLimiter.from_settings(settings, c) for c in clients]
        item = limiters[0].authenticated
        user = f"user-{uuid.uuid4().hex}"
        await away_from_a_minute_edge()
        decisions = [await limiters[n % 2].hit(item, "user", user) for n in range(320)]
        allowed = [d for d in decisions if d.allowed]
        # Leases of 3: at most 2 unspent hits per instance are lost, none is over-granted.
        assert 296 <= len(allowed) <= 300
        assert not decisions[-1].allowed
        assert decisions[-1].remaining == 0
        assert all(d.limit == 300 for d in decisions)
        assert decisions[0].remaining == 299
    finally:
        for client in clients:
            assert client is not None
            await client.aclose()


async def test_expired_token_stops_counting_per_user(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(rate_limit_anonymous="7/minute", rate_limit_authenticated="9/minute")
    async with serve(settings) as client:
        app: FastAPI = client.app  # type: ignore[attr-defined]
        # A real access token with 4.5-5.5 s of life left (exp is whole seconds): room for
        # two requests on a loaded machine (a first request once took 0.8 s).
        token = app.state.services.get(IDENTITY).tokens.encode(
            subject=str(uuid.uuid4()),
            token_type="access",
            ttl=timedelta(seconds=900),
            claims={"sid": str(uuid.uuid4()), "role": "user"},
            now=datetime.now(UTC) - timedelta(seconds=895.5),
        )
        headers = {"Authorization": f"Bearer {token}"}
        first = await client.get("/api/v1/nowhere", headers=headers)
        again = await client.get("/api/v1/nowhere", headers=headers)  # verified-token cache
        assert first.headers["ratelimit-limit"] == again.headers["ratelimit-limit"] == "9"
        await asyncio.sleep(5.6)  # past the token's expiry
        expired = await client.get("/api/v1/nowhere", headers=headers)
        assert expired.headers["ratelimit-limit"] == "7"
