"""OpenID Connect sign-in against a real OpenID provider process, over real HTTP (SPEC §11)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pyotp
import pytest

from tests.conftest import register_user
from tests.oidc.conftest import (
    CLIENT_ID,
    FRONT,
    SPA_ORIGIN,
    Live,
    Person,
    Provider,
    audit_rows,
    authorize,
    count,
    exchange,
    execute,
    query_of,
    sign_in,
    walk,
)

pytestmark = pytest.mark.usefixtures("person")


async def nothing_signed_in(live: Live) -> None:
    """No user, no link, no code and no session came out of a failed sign-in."""
    for table in ("users", "oidc_identities", "oidc_handoffs", "auth_sessions"):
        assert await count(live.app, table) == 0, table


# --- the happy path ------------------------------------------------------------------------


async def test_authorize_redirects_to_the_provider_with_pkce_state_and_nonce(
    browser: httpx.AsyncClient, live: Live, provider: Provider
) -> None:
    response = await authorize(browser)
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(f"{provider.issuer}/authorize?")
    query = query_of(location)
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == f"{live.url}/api/v1/auth/oidc/mock/callback"
    assert set(query["scope"].split()) >= {"openid", "email"}
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43  # base64url of a SHA-256
    assert len(query["state"]) >= 43
    assert len(query["nonce"]) >= 20
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert await count(live.app, "oidc_logins") == 1


async def test_a_new_person_signs_in_and_the_tokens_work(
    browser: httpx.AsyncClient, live: Live, person: Person
) -> None:
    query = await sign_in(browser)
    assert set(query) == {"code"}
    response = await exchange(browser, query["code"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"user", "accessToken", "refreshToken", "tokenType", "expiresIn"}
    assert body["user"]["email"] == person.email
    assert body["user"]["name"] == person.name
    assert body["user"]["emailVerified"] is True
    profile = await browser.get(
        "/api/v1/auth/profile", headers={"Authorization": f"Bearer {body['accessToken']}"}
    )
    assert profile.status_code == 200
    assert profile.json()["id"] == body["user"]["id"]
    refreshed = await browser.post(
        "/api/v1/auth/refresh", json={"refreshToken": body["refreshToken"]}
    )
    assert refreshed.status_code == 200
    # Audited like a password login, with the method.
    logins = await audit_rows(live.app, "auth.login")
    assert logins[-1]["outcome"] == "success"
    assert logins[-1]["details"] == {"method": "oidc", "provider": "mock"}
    assert (await audit_rows(live.app, "auth.register"))[-1]["details"]["method"] == "oidc"
    # The state and the code were used up.
    assert await count(live.app, "oidc_logins") == 0
    assert await count(live.app, "oidc_handoffs") == 0


async def test_the_same_provider_account_signs_in_as_the_same_user(
    browser: httpx.AsyncClient, live: Live, provider: Provider, person: Person
) -> None:
    first = (await exchange(browser, (await sign_in(browser))["code"])).json()["user"]
    # The provider's e-mail changed meanwhile: the link is by subject, not by address.
    provider.set(claims={**person.claims, "email": "renamed@example.com"})
    second = (await exchange(browser, (await sign_in(browser))["code"])).json()["user"]
    assert second["id"] == first["id"]
    assert second["email"] == person.email
    assert await count(live.app, "users") == 1


async def test_a_verified_email_links_the_existing_account(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, live: Live, person: Person
) -> None:
    existing = await register_user(client, email=person.email.upper())
    response = await exchange(browser, (await sign_in(browser))["code"])
    assert response.status_code == 200
    assert response.json()["user"]["id"] == existing.id
    assert response.json()["user"]["emailVerified"] is True
    assert await count(live.app, "users") == 1
    assert (await audit_rows(live.app, "auth.oidc_link"))[-1]["outcome"] == "success"
    # The password keeps working.
    login = await client.post(
        "/api/v1/auth/login", json={"email": person.email, "password": existing.password}
    )
    assert login.status_code == 200


async def test_an_unverified_email_creates_an_unverified_account(
    browser: httpx.AsyncClient, provider: Provider, person: Person
) -> None:
    provider.set(claims={**person.claims, "email_verified": False})
    response = await exchange(browser, (await sign_in(browser))["code"])
    assert response.status_code == 200
    assert response.json()["user"]["emailVerified"] is False


async def test_an_account_from_the_provider_has_no_usable_password(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, person: Person
) -> None:
    assert (await exchange(browser, (await sign_in(browser))["code"])).status_code == 200
    for password in ("", "correct horse battery staple", "None"):
        login = await client.post(
            "/api/v1/auth/login", json={"email": person.email, "password": password or "x"}
        )
        assert login.status_code == 401


async def test_origin_entries_allow_any_path_and_keep_the_query(
    browser: httpx.AsyncClient,
) -> None:
    target = f"{SPA_ORIGIN}/deep/path?tab=1"
    location = await walk(browser, await authorize(browser, redirect_uri=target), stop=target)
    query = query_of(location)
    assert query["tab"] == "1"
    assert (await exchange(browser, query["code"])).status_code == 200


async def test_mfa_users_give_their_totp_code_at_exchange(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, person: Person
) -> None:
    user = await register_user(client, email=person.email)
    setup = await client.post("/api/v1/auth/mfa/setup", headers=user.headers)
    secret = setup.json()["secret"]
    totp = pyotp.TOTP(secret)
    enabled = await client.post(
        "/api/v1/auth/mfa/enable", json={"code": totp.now()}, headers=user.headers
    )
    assert enabled.status_code == 204
    code = (await sign_in(browser))["code"]
    missing = await exchange(browser, code)
    assert missing.status_code == 401
    assert missing.json()["code"] == "MFA_REQUIRED"
    wrong = await exchange(browser, code, totp="000000" if totp.now() != "000000" else "111111")
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "INVALID_TOTP"
    # The code survives a missing or wrong second factor until it expires.
    step = int(time.time()) // 30 + 1  # the enable call used this step's code
    right = await exchange(browser, code, totp=totp.at(step * 30))
    assert right.status_code == 200, right.text
    assert right.json()["user"]["id"] == user.id


# --- bad input -----------------------------------------------------------------------------


async def test_a_code_is_good_once(browser: httpx.AsyncClient) -> None:
    code = (await sign_in(browser))["code"]
    assert (await exchange(browser, code)).status_code == 200
    again = await exchange(browser, code)
    assert again.status_code == 400
    assert again.json()["code"] == "INVALID_CODE"


@pytest.mark.parametrize("code", ["nope", "x" * 256, "A" * 43])
async def test_unknown_codes_are_refused(browser: httpx.AsyncClient, code: str) -> None:
    response = await exchange(browser, code)
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_CODE"


@pytest.mark.parametrize("body", [{}, {"code": ""}, {"code": "x" * 257}, {"code": 5}])
async def test_malformed_exchange_bodies_are_400(browser: httpx.AsyncClient, body: object) -> None:
    response = await browser.post("/api/v1/auth/oidc/exchange", json=body)
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"


async def test_an_expired_code_is_refused(browser: httpx.AsyncClient, live: Live) -> None:
    code = (await sign_in(browser))["code"]
    await execute(live.app, "UPDATE oidc_handoffs SET expires_at = '2000-01-01 00:00:00+00:00'")
    response = await exchange(browser, code)
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_CODE"
    assert await count(live.app, "auth_sessions") == 0


async def test_a_tampered_state_is_refused(
    browser: httpx.AsyncClient, live: Live, provider: Provider
) -> None:
    at_provider = (await authorize(browser)).headers["location"]
    back = (await browser.get(at_provider)).headers["location"]
    state = query_of(back)["state"]
    tampered = back.replace(f"state={state}", f"state={state[:-2]}xy")
    response = await browser.get(tampered)
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_STATE"
    missing = await browser.get(back.split("&state=")[0])
    assert missing.status_code == 400
    await nothing_signed_in(live)


async def test_a_state_is_good_once(browser: httpx.AsyncClient, live: Live) -> None:
    at_provider = (await authorize(browser)).headers["location"]
    back = (await browser.get(at_provider)).headers["location"]
    first = await browser.get(back)
    assert query_of(first.headers["location"]).keys() == {"code"}
    replayed = await browser.get(back)
    assert replayed.status_code == 400
    assert replayed.json()["code"] == "INVALID_STATE"
    assert await count(live.app, "oidc_handoffs") == 1


async def test_an_expired_state_goes_back_with_an_error(
    browser: httpx.AsyncClient, live: Live
) -> None:
    at_provider = (await authorize(browser)).headers["location"]
    back = (await browser.get(at_provider)).headers["location"]
    await execute(live.app, "UPDATE oidc_logins SET expires_at = '2000-01-01 00:00:00+00:00'")
    location = await walk(browser, await browser.get(back), stop=FRONT)
    assert query_of(location)["error"] == "INVALID_STATE"
    await nothing_signed_in(live)


async def test_a_callback_in_another_browser_is_refused(
    browser: httpx.AsyncClient, live: Live
) -> None:
    """Login CSRF: the callback URL of someone else's sign-in does not sign this browser in."""
    at_provider = (await authorize(browser)).headers["location"]
    back = (await browser.get(at_provider)).headers["location"]
    async with httpx.AsyncClient(timeout=15) as victim:
        response = await victim.get(back)
    assert response.status_code == 302
    assert query_of(response.headers["location"])["error"] == "INVALID_STATE"
    await nothing_signed_in(live)


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        ({"claims": {"aud": "someone-else"}}, "wrong audience"),
        ({"claims": {"aud": ["someone-else"], "azp": CLIENT_ID}}, "azp is not aud"),
        ({"claims": {"iss": "https://evil.example.com"}}, "wrong issuer"),
        ({"claims": {"nonce": "replayed-nonce"}}, "wrong nonce"),
        ({"claims": {"nonce": None}}, "no nonce"),
        ({"claims": {"exp": 1_000_000_000}}, "expired"),
        ({"claims": {"sub": None}}, "no subject"),
        ({"claims": {"sub": "s" * 256}}, "subject too long"),
        ({"claims": {"sub": "a\u0000b"}}, "subject with NUL"),
        ({"forge": "other-key"}, "signed by another key"),
        ({"forge": "alg-none"}, "unsigned"),
    ],
)
async def test_an_id_token_that_does_not_verify_signs_nobody_in(
    browser: httpx.AsyncClient,
    live: Live,
    provider: Provider,
    person: Person,
    spoil: dict[str, object],
    reason: str,
) -> None:
    claims = {**person.claims, **spoil.pop("claims", {})}  # type: ignore[dict-item]
    provider.set(claims=claims, **spoil)
    query = await sign_in(browser)
    assert query["error"] == "INVALID_ID_TOKEN", reason
    assert "code" not in query
    await nothing_signed_in(live)
    failures = await audit_rows(live.app, "auth.oidc")
    assert failures[-1] == {
        "outcome": "failure",
        "details": {"provider": "mock", "reason": "INVALID_ID_TOKEN"},
    }


async def test_an_unverified_email_of_an_existing_account_does_not_link(
    browser: httpx.AsyncClient,
    client: httpx.AsyncClient,
    live: Live,
    provider: Provider,
    person: Person,
) -> None:
    existing = await register_user(client, email=person.email)
    provider.set(claims={**person.claims, "email_verified": False})
    query = await sign_in(browser)
    assert query["error"] == "OIDC_EMAIL_UNVERIFIED"
    assert "code" not in query
    assert await count(live.app, "users") == 1
    assert await count(live.app, "oidc_identities") == 0
    assert await count(live.app, "oidc_handoffs") == 0
    # Only the session registration opened.
    assert await count(live.app, "auth_sessions") == 1
    profile = await client.get("/api/v1/auth/profile", headers=existing.headers)
    assert profile.json()["emailVerified"] is False


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://evil.test/after-login",
        "http://front.test/after-login-evil",
        "http://front.test/after-login/../x",
        "http://front.test/after-login#frag",
        "https://front.test/after-login",
        "http://front.test@evil.test/after-login",
        "http://spa.test.evil.test/",
        "http://spa.test:8080/",
        "javascript:alert(1)",
        "//spa.test/",
        "http://[::1/",
        "http://spa.test/\x00",
    ],
)
async def test_a_redirect_uri_off_the_allow_list_is_400(
    browser: httpx.AsyncClient, live: Live, redirect_uri: str
) -> None:
    response = await authorize(browser, redirect_uri=redirect_uri)
    assert response.status_code == 400
    assert response.json()["code"] in {"REDIRECT_NOT_ALLOWED", "VALIDATION_ERROR", "BAD_REQUEST"}
    assert await count(live.app, "oidc_logins") == 0


async def test_missing_redirect_uri_is_400(browser: httpx.AsyncClient) -> None:
    response = await browser.get("/api/v1/auth/oidc/mock/authorize")
    assert response.status_code == 400


@pytest.mark.parametrize("name", ["google", "MOCK", "x" * 40])
async def test_an_unknown_provider_is_404(browser: httpx.AsyncClient, name: str) -> None:
    response = await browser.get(
        f"/api/v1/auth/oidc/{name}/authorize", params={"redirectUri": FRONT}
    )
    assert response.status_code in {404, 400}
    if len(name) <= 32:
        assert response.json()["code"] == "UNKNOWN_PROVIDER"


async def test_a_state_from_one_provider_is_refused_at_another(
    browser: httpx.AsyncClient, live: Live
) -> None:
    at_provider = (await authorize(browser)).headers["location"]
    back = (await browser.get(at_provider)).headers["location"]
    elsewhere = back.replace("/oidc/mock/callback", "/oidc/offline/callback")
    location = await walk(browser, await browser.get(elsewhere), stop=FRONT)
    assert query_of(location)["error"] == "INVALID_STATE"
    await nothing_signed_in(live)


async def test_the_provider_refusing_goes_back_with_an_error(
    browser: httpx.AsyncClient, live: Live, provider: Provider, person: Person
) -> None:
    provider.set(claims=person.claims, authorizeError="access_denied")
    query = await sign_in(browser)
    assert query["error"] == "OIDC_PROVIDER_ERROR"
    assert "access_denied" in query["error_description"]
    await nothing_signed_in(live)


async def test_a_code_the_provider_rejects_goes_back_with_an_error(
    browser: httpx.AsyncClient, live: Live, provider: Provider, person: Person
) -> None:
    provider.set(claims=person.claims, tokenError="invalid_grant")
    query = await sign_in(browser)
    assert query["error"] == "OIDC_CODE_REJECTED"
    await nothing_signed_in(live)


async def test_no_email_from_the_provider_goes_back_with_an_error(
    browser: httpx.AsyncClient, live: Live, provider: Provider
) -> None:
    # The provider's userinfo (asked when the ID token has no e-mail) has none either.
    provider.set(claims={"sub": "johndoe", "email": None})
    query = await sign_in(browser)
    assert query["error"] == "OIDC_EMAIL_MISSING"
    await nothing_signed_in(live)


@pytest.mark.parametrize("name", ["offline", "skewed"])
async def test_an_unreachable_or_misconfigured_provider_goes_back_with_an_error(
    browser: httpx.AsyncClient, live: Live, name: str
) -> None:
    response = await browser.get(
        f"/api/v1/auth/oidc/{name}/authorize", params={"redirectUri": FRONT}
    )
    assert response.status_code == 302
    assert query_of(response.headers["location"])["error"] == "OIDC_PROVIDER_UNAVAILABLE"
    assert await count(live.app, "oidc_logins") == 0


async def test_a_deactivated_user_is_not_signed_in(
    browser: httpx.AsyncClient, live: Live, person: Person
) -> None:
    assert (await exchange(browser, (await sign_in(browser))["code"])).status_code == 200
    await execute(live.app, "UPDATE users SET is_active = false")
    query = await sign_in(browser)
    assert query["error"] == "ACCOUNT_DISABLED"
    assert await count(live.app, "oidc_handoffs") == 0


async def test_the_data_export_lists_linked_providers_and_erasure_removes_them(
    browser: httpx.AsyncClient, live: Live, person: Person
) -> None:
    body = (await exchange(browser, (await sign_in(browser))["code"])).json()
    headers = {"Authorization": f"Bearer {body['accessToken']}"}
    export = (await browser.get("/api/v1/auth/export", headers=headers)).json()
    assert [(i["provider"], i["subject"]) for i in export["linkedIdentities"]] == [
        ("mock", person.sub)
    ]
    await execute(live.app, "DELETE FROM users")
    assert await count(live.app, "oidc_identities") == 0


@pytest.mark.parametrize("email", ["a\u0000@example.com", "a b@example.com", "nobody", ""])
async def test_an_unusable_email_from_the_provider_goes_back_with_an_error(
    browser: httpx.AsyncClient, live: Live, provider: Provider, person: Person, email: str
) -> None:
    provider.set(claims={**person.claims, "email": email})
    query = await sign_in(browser)
    assert query["error"] == "OIDC_EMAIL_MISSING"
    await nothing_signed_in(live)


async def test_the_provider_name_is_cleaned_and_bounded(
    browser: httpx.AsyncClient, provider: Provider, person: Person
) -> None:
    provider.set(claims={**person.claims, "name": "  Ada\u0000 \n King\t" + "x" * 200})
    user = (await exchange(browser, (await sign_in(browser))["code"])).json()["user"]
    assert user["name"].startswith("Ada King xxx")
    assert len(user["name"]) == 100
    provider.set(claims={**person.claims, "sub": "another", "email": "b@example.com", "name": None})
    user = (await exchange(browser, (await sign_in(browser))["code"])).json()["user"]
    assert user["name"] == "b"


async def test_a_callback_without_a_code_goes_back_with_an_error(
    browser: httpx.AsyncClient, live: Live
) -> None:
    at_provider = (await authorize(browser)).headers["location"]
    back = (await browser.get(at_provider)).headers["location"]
    state = query_of(back)["state"]
    response = await browser.get("/api/v1/auth/oidc/mock/callback", params={"state": state})
    assert query_of(response.headers["location"])["error"] == "OIDC_PROVIDER_ERROR"
    await nothing_signed_in(live)


async def test_a_code_exchanged_twice_at_once_opens_one_session(
    browser: httpx.AsyncClient, live: Live
) -> None:
    code = (await sign_in(browser))["code"]
    first, second = await asyncio.gather(exchange(browser, code), exchange(browser, code))
    assert sorted([first.status_code, second.status_code]) == [200, 400]
    assert await count(live.app, "auth_sessions") == 1


async def test_a_callback_replayed_at_once_hands_out_one_code(
    browser: httpx.AsyncClient, live: Live
) -> None:
    at_provider = (await authorize(browser)).headers["location"]
    back = (await browser.get(at_provider)).headers["location"]
    first, second = await asyncio.gather(browser.get(back), browser.get(back))
    assert sorted([first.status_code, second.status_code]) == [302, 400]
    assert await count(live.app, "oidc_handoffs") == 1
