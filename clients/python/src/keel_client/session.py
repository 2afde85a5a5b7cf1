"""A signed-in session: the generated client with bearer tokens that refresh themselves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from keel_api.client import Client


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str


class SessionExpiredError(Exception):
    """The refresh token was refused (expired, revoked or reused): sign in again."""


class _RefreshingTransport(httpx.AsyncBaseTransport):
    """Adds the access token; on a 401 shares one refresh, then retries the request once."""

    def __init__(self, session: KeelSession, inner: httpx.AsyncBaseTransport) -> None:
        self._session = session
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        token = self._session.access_token
        if token is None or "authorization" in request.headers:
            return await self._inner.handle_async_request(request)
        await request.aread()  # so the body can be sent twice
        request.headers["Authorization"] = f"Bearer {token}"
        response = await self._inner.handle_async_request(request)
        if response.status_code != 401:
            return response
        try:
            fresh = await self._session.refresh_after(token)
        except SessionExpiredError:
            return response  # the caller sees the 401; the session is now signed out
        await response.aclose()
        request.headers["Authorization"] = f"Bearer {fresh}"
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class KeelSession:
    """Pass `session.client` to any generated call: `list_projects.asyncio(client=session.client)`.

    N concurrent requests refused with the same access token make exactly one
    POST /auth/refresh (the refresh token rotates, and a second use after the server's grace
    window would revoke the whole session); each is then retried once with the new token.
    """

    def __init__(
        self,
        base_url: str,
        *,
        tokens: Tokens | None = None,
        on_tokens: Callable[[Tokens | None], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.refresh_count = 0
        self._tokens = tokens
        self._on_tokens = on_tokens
        self._lock = asyncio.Lock()
        inner = transport or httpx.AsyncHTTPTransport()
        self._raw = httpx.AsyncClient(base_url=self.base_url, transport=inner, timeout=timeout)
        self.client = Client(base_url=self.base_url, raise_on_unexpected_status=True)
        self.client.set_async_httpx_client(
            httpx.AsyncClient(
                base_url=self.base_url,
                transport=_RefreshingTransport(self, inner),
                timeout=timeout,
            )
        )

    @property
    def access_token(self) -> str | None:
        return self._tokens.access_token if self._tokens else None

    @property
    def signed_in(self) -> bool:
        return self._tokens is not None

    def set_tokens(self, tokens: Tokens | None) -> None:
        """Adopt a pair from login/register (None forgets it)."""
        self._tokens = tokens
        if self._on_tokens is not None:
            self._on_tokens(tokens)

    async def login(self, email: str, password: str, totp: str | None = None) -> None:
        body: dict[str, str] = {"email": email, "password": password}
        if totp is not None:
            body["totp"] = totp
        self._adopt(await self._raw.post("/api/v1/auth/login", json=body))

    async def register(self, email: str, password: str, name: str) -> None:
        body = {"email": email, "password": password, "name": name}
        self._adopt(await self._raw.post("/api/v1/auth/register", json=body))

    def _adopt(self, response: httpx.Response) -> None:
        response.raise_for_status()
        data = response.json()
        self.set_tokens(Tokens(data["accessToken"], data["refreshToken"]))

    async def refresh_after(self, stale: str | None) -> str:
        """A fresh access token for a caller whose token `stale` was refused; callers holding
        the same stale token share one refresh."""
        async with self._lock:
            current = self._tokens
            if current is None:
                raise SessionExpiredError
            if stale is not None and current.access_token != stale:
                return current.access_token
            self.refresh_count += 1
            response = await self._raw.post(
                "/api/v1/auth/refresh", json={"refreshToken": current.refresh_token}
            )
            if response.status_code == 401:
                self.set_tokens(None)
                raise SessionExpiredError
            response.raise_for_status()
            data = response.json()
            self.set_tokens(Tokens(data["accessToken"], data["refreshToken"]))
            return str(data["accessToken"])

    async def logout(self) -> None:
        """End this session on the server (the user's other sessions are untouched)."""
        current = self._tokens
        self.set_tokens(None)
        if current is not None:
            await self._raw.post("/api/v1/auth/logout", json={"refreshToken": current.refresh_token})

    async def aclose(self) -> None:
        await self.client.get_async_httpx_client().aclose()
        await self._raw.aclose()

    async def __aenter__(self) -> KeelSession:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
