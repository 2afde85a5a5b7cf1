"""Account mail over a real SMTP server (SPEC §11): the links in the messages, followed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text, update

from keel.identity.models import EmailToken
from tests.conftest import register_user
from tests.mail.conftest import Mailbox, link_token, parts

AUTH = "/api/v1/auth"


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code, response.text


async def test_registration_mails_a_verification_link_that_verifies(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    user = await register_user(client, email="Verify.Me@Example.com", name="Ada <b>")
    profile = await client.get(f"{AUTH}/profile", headers=user.headers)
    assert profile.json()["emailVerified"] is False

    (message,) = await mailbox.wait("verify.me@example.com")
    assert message["Subject"] == "Confirm your e-mail address"
    assert message["From"] == "Keel <no-reply@keel.test>"
    plain, html = parts(message)
    assert "Ada <b>" in plain
    assert "Ada &lt;b&gt;" in html
    token = link_token(message, "verify-email")

    verified = await client.post(f"{AUTH}/email/verify", json={"token": token})
    assert verified.status_code == 200, verified.text
    assert verified.json()["emailVerified"] is True
    assert verified.json()["email"] == "verify.me@example.com"
    # The cached profile of the signed-in session is current at once.
    profile = await client.get(f"{AUTH}/profile", headers=user.headers)
    assert profile.json()["emailVerified"] is True

    again = await client.post(f"{AUTH}/email/verify", json={"token": token})
    assert_error(again, 400, "INVALID_TOKEN")


async def test_password_reset_revokes_every_session_and_sets_the_password(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    user = await register_user(client)
    second = await client.post(
        f"{AUTH}/login", json={"email": user.email, "password": user.password}
    )
    assert second.status_code == 200
    await mailbox.wait(user.email)  # the verification mail

    forgot = await client.post(f"{AUTH}/password/forgot", json={"email": user.email.upper()})
    assert forgot.status_code == 202, forgot.text
    _, message = await mailbox.wait(user.email, 2)
    assert message["Subject"] == "Reset your password"
    assert "30 minutes" in parts(message)[0]
    token = link_token(message, "reset-password")

    new_password = "a brand new passphrase 42"
    reset = await client.post(
        f"{AUTH}/password/reset", json={"token": token, "newPassword": new_password}
    )
    assert reset.status_code == 204, reset.text

    refreshed = await client.post(f"{AUTH}/refresh", json={"refreshToken": user.refresh_token})
    assert refreshed.status_code == 401
    other = await client.post(
        f"{AUTH}/refresh", json={"refreshToken": second.json()["refreshToken"]}
    )
    assert other.status_code == 401
    assert (await client.get(f"{AUTH}/profile", headers=user.headers)).status_code == 401
    old = await client.post(f"{AUTH}/login", json={"email": user.email, "password": user.password})
    assert old.status_code == 401
    new = await client.post(f"{AUTH}/login", json={"email": user.email, "password": new_password})
    assert new.status_code == 200, new.text
    assert new.json()["user"]["emailVerified"] is True  # the link proved the address

    reused = await client.post(
        f"{AUTH}/password/reset", json={"token": token, "newPassword": "yet another passphrase"}
    )
    assert_error(reused, 400, "INVALID_TOKEN")


async def test_forgot_for_an_unknown_address_is_202_and_sends_nothing(
    app: FastAPI, client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    unknown = await client.post(f"{AUTH}/password/forgot", json={"email": "nobody@example.com"})
    assert unknown.status_code == 202
    assert unknown.content == b""
    user = await register_user(client)
    known = await client.post(f"{AUTH}/password/forgot", json={"email": user.email})
    assert known.status_code == 202
    assert known.content == unknown.content
    await mailbox.wait(user.email, 2)
    assert mailbox.to("nobody@example.com") == []
    async with app.state.services.database.sessions() as session:
        tokens = await session.scalar(text("SELECT count(*) FROM email_tokens"))
        actions = (
            await session.execute(
                text(
                    "SELECT outcome FROM audit_log "
                    "WHERE action = 'auth.password_reset_requested' ORDER BY outcome"
                )
            )
        ).scalars()
        assert list(actions) == ["failure", "success"]
    assert tokens == 2  # the verification and the reset link of the known user only


async def test_a_second_reset_request_retires_the_first_link(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    user = await register_user(client)
    await mailbox.wait(user.email)
    tokens = []
    for count in (2, 3):  # one at a time: jobs may deliver in any order
        forgot = await client.post(f"{AUTH}/password/forgot", json={"email": user.email})
        assert forgot.status_code == 202
        tokens.append(link_token((await mailbox.wait(user.email, count))[-1], "reset-password"))
    first, second = tokens
    body = {"newPassword": "a brand new passphrase 42"}
    assert_error(
        await client.post(f"{AUTH}/password/reset", json={"token": first, **body}),
        400,
        "INVALID_TOKEN",
    )
    ok = await client.post(f"{AUTH}/password/reset", json={"token": second, **body})
    assert ok.status_code == 204


async def test_resend_sends_a_new_link_until_verified(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    user = await register_user(client)
    assert (await client.post(f"{AUTH}/email/resend")).status_code == 401
    resent = await client.post(f"{AUTH}/email/resend", headers=user.headers)
    assert resent.status_code == 202
    first, second = await mailbox.wait(user.email, 2)
    token = link_token(second, "verify-email")
    assert token != link_token(first, "verify-email")
    assert (await client.post(f"{AUTH}/email/verify", json={"token": token})).status_code == 200
    # Verified: still 202, nothing more is sent (the next mail to arrive is the reset one).
    assert (await client.post(f"{AUTH}/email/resend", headers=user.headers)).status_code == 202
    await client.post(f"{AUTH}/password/forgot", json={"email": user.email})
    third = (await mailbox.wait(user.email, 3))[2]
    assert third["Subject"] == "Reset your password"


async def test_email_change_confirms_the_new_address_and_notifies_the_old(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    user = await register_user(client, email="old@example.com")
    await mailbox.wait("old@example.com")
    wrong = await client.post(
        f"{AUTH}/email/change",
        json={"newEmail": "new@example.com", "password": "not the password"},
        headers=user.headers,
    )
    assert_error(wrong, 403, "INVALID_PASSWORD")

    change = await client.post(
        f"{AUTH}/email/change",
        json={"newEmail": "New@Example.com", "password": user.password},
        headers=user.headers,
    )
    assert change.status_code == 202, change.text
    notice = (await mailbox.wait("old@example.com", 2))[1]
    assert notice["Subject"] == "Your e-mail address is being changed"
    notice_text, _ = parts(notice)
    assert "token=" not in notice_text
    (confirm,) = await mailbox.wait("new@example.com")
    token = link_token(confirm, "verify-email")
    # Nothing has changed before the link is followed.
    profile = await client.get(f"{AUTH}/profile", headers=user.headers)
    assert profile.json()["email"] == "old@example.com"

    applied = await client.post(f"{AUTH}/email/verify", json={"token": token})
    assert applied.status_code == 200, applied.text
    assert applied.json()["email"] == "new@example.com"
    assert applied.json()["emailVerified"] is True
    profile = await client.get(f"{AUTH}/profile", headers=user.headers)
    assert profile.json()["email"] == "new@example.com"
    login = await client.post(
        f"{AUTH}/login", json={"email": "new@example.com", "password": user.password}
    )
    assert login.status_code == 200
    old = await client.post(
        f"{AUTH}/login", json={"email": "old@example.com", "password": user.password}
    )
    assert old.status_code == 401
    assert_error(
        await client.post(f"{AUTH}/email/verify", json={"token": token}), 400, "INVALID_TOKEN"
    )


async def test_change_to_a_taken_address_is_202_without_a_link(
    app: FastAPI, client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    holder = await register_user(client, email="taken@example.com")
    user = await register_user(client, email="mover@example.com")
    await mailbox.wait("taken@example.com")
    change = await client.post(
        f"{AUTH}/email/change",
        json={"newEmail": holder.email, "password": user.password},
        headers=user.headers,
    )
    assert change.status_code == 202
    await mailbox.wait("mover@example.com", 2)  # verification, then the notice
    assert len(mailbox.to("taken@example.com")) == 1  # only its own verification mail
    async with app.state.services.database.sessions() as session:
        changes = await session.scalar(
            text("SELECT count(*) FROM email_tokens WHERE purpose = 'change'")
        )
    assert changes == 0


async def test_changing_to_the_current_address_is_a_400(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    same = await client.post(
        f"{AUTH}/email/change",
        json={"newEmail": user.email, "password": user.password},
        headers=user.headers,
    )
    assert_error(same, 400, "VALIDATION_ERROR")


async def test_expired_tokens_are_refused(
    app: FastAPI, client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    user = await register_user(client)
    (verify_mail,) = await mailbox.wait(user.email)
    await client.post(f"{AUTH}/password/forgot", json={"email": user.email})
    reset_mail = (await mailbox.wait(user.email, 2))[1]
    async with app.state.services.database.transaction() as session:
        await session.execute(
            update(EmailToken).values(expires_at=datetime(2000, 1, 1, tzinfo=UTC))
        )
    assert_error(
        await client.post(
            f"{AUTH}/email/verify", json={"token": link_token(verify_mail, "verify-email")}
        ),
        400,
        "INVALID_TOKEN",
    )
    assert_error(
        await client.post(
            f"{AUTH}/password/reset",
            json={
                "token": link_token(reset_mail, "reset-password"),
                "newPassword": "a brand new passphrase 42",
            },
        ),
        400,
        "INVALID_TOKEN",
    )


async def test_a_token_only_works_for_its_own_purpose(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    user = await register_user(client)
    (verify_mail,) = await mailbox.wait(user.email)
    token = link_token(verify_mail, "verify-email")
    wrong = await client.post(
        f"{AUTH}/password/reset", json={"token": token, "newPassword": "a brand new passphrase"}
    )
    assert_error(wrong, 400, "INVALID_TOKEN")
    # The failed attempt did not use it up.
    assert (await client.post(f"{AUTH}/email/verify", json={"token": token})).status_code == 200


async def test_a_weak_new_password_keeps_the_token_usable(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    user = await register_user(client, name="Grace Hopper")
    await mailbox.wait(user.email)
    await client.post(f"{AUTH}/password/forgot", json={"email": user.email})
    token = link_token((await mailbox.wait(user.email, 2))[1], "reset-password")
    for weak in ("short", "password123", "grace hopper 1"):
        response = await client.post(
            f"{AUTH}/password/reset", json={"token": token, "newPassword": weak}
        )
        assert_error(response, 400, "VALIDATION_ERROR")
    ok = await client.post(
        f"{AUTH}/password/reset", json={"token": token, "newPassword": "a brand new passphrase"}
    )
    assert ok.status_code == 204


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/password/forgot", {}),
        ("/password/forgot", {"email": 5}),
        ("/password/forgot", {"email": ["a@example.com"]}),
        ("/password/forgot", {"email": "a" * 400 + "@example.com"}),
        ("/password/forgot", {"email": "a@example.com", "extra": 1}),
        ("/password/forgot", {"email": "a\u0000@example.com"}),
        ("/password/reset", {"token": "x"}),
        ("/password/reset", {"token": 123, "newPassword": "a brand new passphrase"}),
        ("/password/reset", {"token": "x" * 10_000, "newPassword": "a brand new passphrase"}),
        ("/password/reset", {"token": "", "newPassword": "a brand new passphrase"}),
        ("/email/verify", {"token": None}),
        ("/email/verify", {"token": {"$ne": ""}}),
        ("/email/verify", {"token": "é" * 300}),
    ],
)
async def test_malformed_bodies_are_a_400(
    client: httpx.AsyncClient, path: str, body: dict[str, object]
) -> None:
    assert_error(await client.post(f"{AUTH}{path}", json=body), 400, "VALIDATION_ERROR")


@pytest.mark.parametrize("token", ["unknown", "☃" * 60, "a" * 43, "../../etc/passwd", "%00"])
async def test_unknown_tokens_are_invalid(client: httpx.AsyncClient, token: str) -> None:
    assert_error(
        await client.post(f"{AUTH}/email/verify", json={"token": token}), 400, "INVALID_TOKEN"
    )
    assert_error(
        await client.post(
            f"{AUTH}/password/reset",
            json={"token": token, "newPassword": "a brand new passphrase"},
        ),
        400,
        "INVALID_TOKEN",
    )


async def test_change_body_is_validated(client: httpx.AsyncClient) -> None:
    user = await register_user(client)
    for body in (
        {"newEmail": "not an address", "password": user.password},
        {"newEmail": "ü" * 400 + "@example.com", "password": user.password},
        {"newEmail": "new@example.com"},
        {"newEmail": "new@example.com", "password": 12},
    ):
        response = await client.post(f"{AUTH}/email/change", json=body, headers=user.headers)
        assert_error(response, 400, "VALIDATION_ERROR")
    anonymous = await client.post(
        f"{AUTH}/email/change", json={"newEmail": "new@example.com", "password": "x"}
    )
    assert anonymous.status_code == 401


async def test_logs_name_recipient_and_subject_but_never_a_token(
    client: httpx.AsyncClient,
    mailbox: Mailbox,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    user = await register_user(client)
    (verify_mail,) = await mailbox.wait(user.email)
    await client.post(f"{AUTH}/password/forgot", json={"email": user.email})
    reset_mail = (await mailbox.wait(user.email, 2))[1]
    tokens = [link_token(verify_mail, "verify-email"), link_token(reset_mail, "reset-password")]
    await client.post(
        f"{AUTH}/password/reset",
        json={"token": tokens[1], "newPassword": "a brand new passphrase 42"},
    )
    logged = caplog.text + capsys.readouterr().out
    assert "mail_sent" in logged
    assert "Reset your password" in logged
    for token in tokens:
        assert token not in logged


async def test_a_link_used_by_two_requests_at_once_works_once(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    user = await register_user(client)
    (message,) = await mailbox.wait(user.email)
    token = link_token(message, "verify-email")
    answers = await asyncio.gather(
        *(client.post(f"{AUTH}/email/verify", json={"token": token}) for _ in range(4))
    )
    assert sorted(a.status_code for a in answers) == [200, 400, 400, 400]
    for answer in answers:
        if answer.status_code == 400:
            assert answer.json()["code"] == "INVALID_TOKEN"
