"""An endpoint that fails every delivery for long enough is disabled, with a visible reason."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from asgi_lifespan import LifespanManager

from keel.app import create_app
from keel.settings import Settings
from tests.conftest import register_user
from tests.webhooks.conftest import API, FAST, eventually
from tests.webhooks.receiver import Receiver


async def test_prolonged_failure_disables_the_endpoint_with_a_reason(
    make_settings: Callable[..., Settings], receiver: Receiver
) -> None:
    receiver.fail_first = 1000
    settings = make_settings(
        **{**FAST, "webhook_retry_schedule": "0.5,0.5,0.5,0.5", "webhook_disable_after_seconds": 1}
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30),
        httpx.AsyncClient(transport=transport, base_url="http://keel.test") as client,
    ):
        user = await register_user(client)
        endpoint = (
            await client.post(
                API, json={"url": receiver.url, "events": ["project.created"]}, headers=user.headers
            )
        ).json()
        created = await client.post(
            "/api/v1/projects", json={"name": "Never arrives"}, headers=user.headers
        )
        assert created.status_code == 201

        async def disabled() -> bool:
            body = (await client.get(f"{API}/{endpoint['id']}", headers=user.headers)).json()
            return body["isActive"] is False

        await eventually(disabled)
        body = (await client.get(f"{API}/{endpoint['id']}", headers=user.headers)).json()
        assert "every delivery failed" in body["disabledReason"]
        assert "HTTP 500" in body["disabledReason"]
        log = (await client.get(f"{API}/{endpoint['id']}/deliveries", headers=user.headers)).json()
        assert log["data"][0]["status"] == "failed"
        assert all(a["statusCode"] == 500 for a in log["data"][0]["attempts"])
