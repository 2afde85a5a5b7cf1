"""Per-address limits, the .eml fallback without SMTP, KEEL_REQUIRE_VERIFIED_EMAIL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from email import message_from_bytes, policy
from email.message import EmailMessage

import httpx
import pytest
from aiosmtpd.controller import Controller
from asgi_lifespan import LifespanManager

from keel.app import create_app
from keel.mail.outbox import SmtpTarget
from keel.settings import Settings
from tests.conftest import register_user
from tests.mail.conftest import Mailbox, eml_files, free_port, link_token, parts

AUTH = "/api/v1/auth"


async def serve(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(
            app=application, client=("203.0.113.20", 50000), raise_app_exceptions=False
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://keel.test") as c:
            yield c


async def test_forgot_is_limited_per_address_for_any_address(
    mail_settings: Callable[..., Settings],
) -> None:
    async for client in serve(mail_settings(mail_rate_limit_per_address="2/hour")):
        for address in ("nobody@example.com", "NOBODY@example.com"):
            response = await client.post(f"{AUTH}/password/forgot", json={"email": address})
            assert response.status_code == 202
        limited = await client.post(f"{AUTH}/password/forgot", json={"email": "nobody@example.com"})
        assert limited.status_code == 429, limited.text
        assert limited.json()["code"] == "RATE_LIMITED"
        assert int(limited.headers["Retry-After"]) >= 1
        other = await client.post(f"{AUTH}/password/forgot", json={"email": "else@example.com"})
        assert other.status_code == 202


async def test_forgot_is_limited_per_ip(mail_settings: Callable[..., Settings]) -> None:
    async for client in serve(mail_settings(rate_limit_auth_endpoints="3/15minutes")):
        codes = [
            (
                await client.post(f"{AUTH}/password/forgot", json={"email": f"n{i}@example.com"})
            ).status_code
            for i in range(4)
        ]
        assert codes == [202, 202, 202, 429]


async def test_without_smtp_mail_is_written_as_eml_files(
    mail_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = mail_settings(smtp_url="")
    async for client in serve(settings):
        user = await register_user(client)
        for _ in range(600):
            if eml_files(settings.data_dir):
                break
            await asyncio.sleep(0.05)
        (path,) = eml_files(settings.data_dir)
        assert path.stat().st_mode & 0o077 == 0  # the file holds a live link: owner only
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        assert message["To"] == user.email
        parts(message)
        token = link_token(message, "verify-email")
        verified = await client.post(f"{AUTH}/email/verify", json={"token": token})
        assert verified.status_code == 200
        assert verified.json()["emailVerified"] is True


async def test_require_verified_email_guards_project_writes(
    mail_settings: Callable[..., Settings], mailbox: Mailbox
) -> None:
    async for client in serve(mail_settings(require_verified_email=True)):
        user = await register_user(client)
        body = {"name": "Launch plan"}
        refused = await client.post("/api/v1/projects", json=body, headers=user.headers)
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "EMAIL_NOT_VERIFIED"
        assert (await client.get("/api/v1/projects", headers=user.headers)).status_code == 200
        # GraphQL shares the project service, so the same rule holds there.
        mutation = {
            "query": "mutation($input: CreateProjectInput!) { createProject(input: $input) "
            "{ id } }",
            "variables": {"input": {"name": "Launch plan"}},
        }
        refused_gql = await client.post("/graphql", json=mutation, headers=user.headers)
        assert refused_gql.json()["errors"][0]["extensions"]["code"] == "EMAIL_NOT_VERIFIED"
        (message,) = await mailbox.wait(user.email)
        token = link_token(message, "verify-email")
        assert (await client.post(f"{AUTH}/email/verify", json={"token": token})).status_code == 200
        created = await client.post("/api/v1/projects", json=body, headers=user.headers)
        assert created.status_code == 201, created.text
        created_gql = await client.post("/graphql", json=mutation, headers=user.headers)
        assert created_gql.json()["data"]["createProject"]["id"]


async def test_unverified_users_write_when_not_required(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    created = await client.post(
        "/api/v1/projects", json={"name": "Launch plan"}, headers=user.headers
    )
    assert created.status_code == 201, created.text


async def test_a_mail_the_server_did_not_take_is_retried(
    mail_settings: Callable[..., Settings],
) -> None:
    port = free_port()  # nothing listens here yet: the first attempts fail
    settings = mail_settings(
        smtp_url=f"smtp://127.0.0.1:{port}", mail_retry_schedule=",".join(["0.3"] * 40)
    )
    async for client in serve(settings):
        user = await register_user(client)
        mailbox = Mailbox()
        await asyncio.sleep(0.5)  # let an attempt fail first (not asserted: it may not have)
        controller = Controller(mailbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            (message,) = await mailbox.wait(user.email)
        finally:
            controller.stop()
        assert link_token(message, "verify-email")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example:25", SmtpTarget("mail.example", 25, None, None, False, None)),
        (
            "smtp://u%40x:p%2Fw@mail.example:587?starttls=true",
            SmtpTarget("mail.example", 587, "u@x", "p/w", False, True),
        ),
        (
            "smtp://mail.example?starttls=false",
            SmtpTarget("mail.example", 587, None, None, False, False),
        ),
        ("smtps://u:p@mail.example", SmtpTarget("mail.example", 465, "u", "p", True, None)),
    ],
)
def test_smtp_url_forms(url: str, expected: SmtpTarget) -> None:
    assert SmtpTarget.parse(url) == expected


@pytest.mark.parametrize(
    "overrides",
    [
        {"smtp_url": "http://mail.example"},
        {"public_url": "app.example"},
        {"mail_retry_schedule": "soon"},
    ],
)
def test_bad_mail_settings_are_refused(
    make_settings: Callable[..., Settings], overrides: dict[str, str]
) -> None:
    with pytest.raises(ValueError, match="KEEL_"):
        make_settings(**overrides)
