"""OpenID Connect fixtures: a real OpenID provider process (oauth2-mock-server, from npm, in
tests/oidc/provider) and Keel on a real uvicorn socket configured to use it.

The provider runs once per test session; each test resets what its ID tokens say through the
provider's control endpoint.
"""

from __future__ import annotations

import asyncio
import json
import select
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import text

from keel.settings import Settings
from tests.conftest import IN_CI
from tests.servers import free_port

PROVIDER_DIR = Path(__file__).parent / "provider"
CLIENT_ID = "keel-test-client"
CLIENT_SECRET = "keel-test-secret"
FRONT = "http://front.test/after-login"
SPA_ORIGIN = "http://spa.test"


@dataclass
class Provider:
    issuer: str
    control: str

    def set(self, **control: Any) -> None:
        """What the next ID tokens say (`claims`) or how they are spoiled (`forge`, …)."""
        httpx.post(f"{self.control}/claims", json=control, timeout=5).raise_for_status()

    def reset(self) -> None:
        httpx.post(f"{self.control}/reset", timeout=5).raise_for_status()


@pytest.fixture(scope="session")
def provider() -> Iterator[Provider]:
    node = shutil.which("node")
    if node is None or not (PROVIDER_DIR / "node_modules" / "oauth2-mock-server").is_dir():
        message = "the OpenID test provider needs: (cd tests/oidc/provider && npm ci)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    process = subprocess.Popen(
        [node, "server.mjs"], cwd=PROVIDER_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline() if ready else b""
        if not line:
            process.kill()
            _, err = process.communicate(timeout=5)
            raise RuntimeError(f"the OpenID test provider did not start: {err.decode()}")
        address = json.loads(line)
        yield Provider(issuer=address["issuer"], control=address["control"])
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Person:
    """Someone with an account at the provider."""

    sub: str
    email: str
    name: str = "Ada Lovelace"
    email_verified: bool = True

    @property
    def claims(self) -> dict[str, Any]:
        return {
            "sub": self.sub,
            "email": self.email,
            "email_verified": self.email_verified,
            "name": self.name,
        }


@pytest.fixture
def person(provider: Provider) -> Person:
    """A fresh provider account; the provider's ID tokens speak for it until changed."""
    provider.reset()
    who = Person(sub=f"sub-{uuid.uuid4().hex}", email=f"ada-{uuid.uuid4().hex[:10]}@example.com")
    provider.set(claims=who.claims)
    return who


@pytest.fixture
def keel_port() -> int:
    return free_port()


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], provider: Provider, keel_port: int
) -> Settings:
    return make_settings(
        public_url=f"http://127.0.0.1:{keel_port}",
        oidc_providers="mock,offline,skewed",
        oidc_mock_issuer=provider.issuer,
        oidc_mock_client_id=CLIENT_ID,
        oidc_mock_client_secret=CLIENT_SECRET,
        # A provider nobody listens for: discovery fails.
        oidc_offline_issuer=f"http://127.0.0.1:{free_port()}",
        oidc_offline_client_id="nobody",
        # Discovery there names another issuer (without the slash): nothing is trusted.
        oidc_skewed_issuer=f"{provider.issuer}/",
        oidc_skewed_client_id=CLIENT_ID,
        oidc_redirect_allowlist=f"{FRONT},{SPA_ORIGIN}",
    )


@dataclass
class Live:
    app: FastAPI
    url: str


@pytest.fixture
async def live(app: FastAPI, keel_port: int) -> AsyncIterator[Live]:
    """The app on a real socket at KEEL_PUBLIC_URL's port (the callback URL points there)."""
    config = uvicorn.Config(app, host="127.0.0.1", port=keel_port, lifespan="off", log_config=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield Live(app=app, url=f"http://127.0.0.1:{keel_port}")
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)


@pytest.fixture
async def browser(live: Live) -> AsyncIterator[httpx.AsyncClient]:
    """A browser: keeps cookies, follows no redirect by itself (the tests walk them)."""
    async with httpx.AsyncClient(base_url=live.url, timeout=15, follow_redirects=False) as c:
        yield c


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


async def walk(browser: httpx.AsyncClient, response: httpx.Response, *, stop: str) -> str:
    """Follow redirects across real servers until one points at `stop` (the front end)."""
    for _ in range(5):
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        if location.startswith(stop):
            return location
        response = await browser.get(location)
    raise AssertionError("too many redirects")


async def authorize(browser: httpx.AsyncClient, *, redirect_uri: str = FRONT) -> httpx.Response:
    return await browser.get(
        "/api/v1/auth/oidc/mock/authorize", params={"redirectUri": redirect_uri}
    )


async def sign_in(browser: httpx.AsyncClient, *, redirect_uri: str = FRONT) -> dict[str, str]:
    """authorize -> provider -> callback -> redirectUri: the query the front end gets."""
    return query_of(
        await walk(browser, await authorize(browser, redirect_uri=redirect_uri), stop=redirect_uri)
    )


async def exchange(browser: httpx.AsyncClient, code: str, **extra: Any) -> httpx.Response:
    return await browser.post("/api/v1/auth/oidc/exchange", json={"code": code, **extra})


async def count(app: FastAPI, table: str) -> int:
    async with app.state.services.database.sessions() as session:
        return int((await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def execute(app: FastAPI, statement: str) -> None:
    async with app.state.services.database.sessions() as session, session.begin():
        await session.execute(text(statement))


async def audit_rows(app: FastAPI, action: str) -> list[dict[str, Any]]:
    async with app.state.services.database.sessions() as session:
        rows = await session.execute(
            text("SELECT outcome, details FROM audit_log WHERE action = :a ORDER BY id"),
            {"a": action},
        )
        return [
            {
                "outcome": outcome,
                "details": json.loads(details) if isinstance(details, str) else details,
            }
            for outcome, details in rows
        ]
