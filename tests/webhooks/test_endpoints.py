"""The /api/v1/webhooks API: secrets shown once, rotation, ownership, audit, SSRF refusals."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import select

from keel.app import create_app
from keel.audit.models import AuditEntry
from keel.platform.services import services_of
from keel.settings import Settings
from keel.webhooks.delivery import refusal
from tests.conftest import register_user
from tests.webhooks.conftest import API, FAST

URL = "http://127.0.0.1:9/hook"


async def test_secret_is_shown_on_create_and_rotation_only(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    created = await client.post(
        API,
        json={"url": URL, "events": ["project.created"], "description": "CI"},
        headers=user.headers,
    )
    assert created.status_code == 201
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert created.headers["location"] == f"{API}/{body['id']}"
    assert body["isActive"] is True
    assert body["disabledReason"] is None

    listed = (await client.get(API, headers=user.headers)).json()["data"]
    fetched = (await client.get(f"{API}/{body['id']}", headers=user.headers)).json()
    assert "secret" not in listed[0]
    assert "secret" not in fetched

    rotated = await client.post(f"{API}/{body['id']}/rotate-secret", headers=user.headers)
    assert rotated.status_code == 200
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != body["secret"]


async def test_update_and_delete_are_audited_and_owner_only(
    client: httpx.AsyncClient, app: object
) -> None:
    alice, bob = await register_user(client), await register_user(client)
    created = (
        await client.post(
            API, json={"url": URL, "events": ["project.created"]}, headers=alice.headers
        )
    ).json()
    path = f"{API}/{created['id']}"

    assert (await client.get(path, headers=bob.headers)).status_code == 404
    assert (
        await client.patch(path, json={"isActive": False}, headers=bob.headers)
    ).status_code == 404
    assert (await client.delete(path, headers=bob.headers)).status_code == 404
    assert (await client.get(f"{path}/deliveries", headers=bob.headers)).status_code == 404

    patched = await client.patch(
        path,
        json={"events": ["project.updated", "project.updated"], "description": None},
        headers=alice.headers,
    )
    assert patched.status_code == 200
    assert patched.json()["events"] == ["project.updated"]
    disabled = await client.patch(path, json={"isActive": False}, headers=alice.headers)
    assert disabled.json()["isActive"] is False
    enabled = await client.patch(path, json={"isActive": True}, headers=alice.headers)
    assert enabled.json()["isActive"] is True
    assert (await client.delete(path, headers=alice.headers)).status_code == 204
    assert (await client.get(path, headers=alice.headers)).status_code == 404

    services = services_of(app)  # type: ignore[arg-type]
    async with services.database.transaction() as session:
        actions = (
            await session.scalars(
                select(AuditEntry.action).where(AuditEntry.target_id == created["id"])
            )
        ).all()
    assert sorted(actions) == sorted(
        ["webhook.create", "webhook.update", "webhook.update", "webhook.update", "webhook.delete"]
    )


async def test_bad_bodies_get_the_error_envelope(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    for body in (
        {"url": URL, "events": []},
        {"url": URL, "events": ["project.exploded"]},
        {"url": "ftp://example.com/x", "events": ["project.created"]},
        {"url": "http://user:pw@127.0.0.1/x", "events": ["project.created"]},
        {"url": "http://127.0.0.1:99999/x", "events": ["project.created"]},
        {"url": "http:///nohost", "events": ["project.created"]},
        {"url": "http://[::1/x", "events": ["project.created"]},
        {"url": "http://no-such-host.invalid/x", "events": ["project.created"]},
        {"url": URL, "events": ["project.created"], "extra": 1},
    ):
        response = await client.post(API, json=body, headers=user.headers)
        assert response.status_code == 400, body
        assert response.json()["code"] == "VALIDATION_ERROR"
    missing = await client.post(
        f"{API}/00000000-0000-0000-0000-000000000000/rotate-secret", headers=user.headers
    )
    assert missing.status_code == 404
    assert (await client.get(API)).status_code == 401


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://[fe80::1]/",
        "http://0.0.0.0/",
        "http://100.100.100.200/",
        "http://[::ffff:169.254.169.254]/",
    ],
)
async def test_link_local_and_metadata_targets_are_always_refused(
    client: httpx.AsyncClient, url: str
) -> None:
    user = await register_user(client)
    response = await client.post(
        API, json={"url": url, "events": ["project.created"]}, headers=user.headers
    )
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == "url"


async def test_private_and_loopback_targets_are_refused_unless_allowed(
    make_settings: Callable[..., Settings],
) -> None:
    strict = create_app(make_settings(**{**FAST, "webhook_allow_private_targets": False}))
    transport = httpx.ASGITransport(app=strict)
    async with (
        LifespanManager(strict, startup_timeout=30, shutdown_timeout=30),
        httpx.AsyncClient(transport=transport, base_url="http://keel.test") as client,
    ):
        user = await register_user(client)
        for url in (
            "http://127.0.0.1:8080/x",
            "http://10.1.2.3/x",
            "http://localhost/x",
            "http://[::1]/x",
        ):
            response = await client.post(
                API, json={"url": url, "events": ["project.created"]}, headers=user.headers
            )
            assert response.status_code == 400, url
            assert "private" in response.json()["details"][0]["message"]


def test_refusal_rules() -> None:
    from ipaddress import ip_address

    assert refusal(ip_address("93.184.216.34"), allow_private=False) is None
    assert refusal(ip_address("192.168.1.1"), allow_private=True) is None
    assert refusal(ip_address("169.254.1.1"), allow_private=True) == "a link-local address"
    assert refusal(ip_address("224.0.0.1"), allow_private=True) is not None


async def test_production_requires_https(make_settings: Callable[..., Settings]) -> None:
    from keel.webhooks.delivery import TargetRefused, check_url

    with pytest.raises(TargetRefused, match="https"):
        check_url("http://example.com/hook", require_https=True)
    assert check_url("https://example.com/hook", require_https=True) == (
        "https",
        "example.com",
        443,
    )
