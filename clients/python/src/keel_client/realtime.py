"""Live project events over WebSocket (docs/realtime.md), resuming after every disconnect."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import websockets
from websockets.asyncio.client import ClientConnection

from keel_client.session import KeelSession, SessionExpiredError

UNAUTHORIZED = 4401


@dataclass(frozen=True)
class ProjectEvent:
    id: str
    type: str  # project.created | project.updated | project.deleted
    data: dict[str, object] = field(hash=False)  # the Project, as JSON
    timestamp: str


class Subscription:
    """`async for event in Subscription(session)`: reconnects on any close or network error
    with `last_event_id`, so no committed event is missed or repeated within the retention
    window. A 4401 close refreshes the session first; a session that cannot refresh ends the
    iteration with SessionExpiredError."""

    def __init__(
        self,
        session: KeelSession,
        *,
        last_event_id: str | None = None,
        project_ids: list[str] | None = None,
        on_resync: Callable[[], None] | None = None,
        max_backoff: float = 15.0,
    ) -> None:
        self.session = session
        self.last_event_id = last_event_id
        self.project_ids = project_ids
        self.on_resync = on_resync
        self.max_backoff = max_backoff
        self.live = asyncio.Event()
        self._closed = False
        self._connection: ClientConnection | None = None

    async def close(self) -> None:
        self._closed = True
        if self._connection is not None:
            await self._connection.close()

    def __aiter__(self) -> AsyncIterator[ProjectEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[ProjectEvent]:
        attempt = 0
        url = self.session.base_url.replace("http", "ws", 1) + "/api/v1/ws"
        while not self._closed:
            token = self.session.access_token
            if token is None:
                raise SessionExpiredError
            code: int | None = None
            try:
                async with websockets.connect(url, open_timeout=10) as connection:
                    self._connection = connection
                    await connection.send(json.dumps(self._auth(token)))
                    async for text in connection:
                        message = json.loads(text)
                        kind = message.get("type")
                        if kind == "ready":
                            attempt = 0
                            self.live.set()
                        elif kind == "resync" and self.on_resync is not None:
                            self.on_resync()
                        elif isinstance(message.get("id"), str) and str(kind).startswith("project."):
                            self.last_event_id = message["id"]
                            yield ProjectEvent(
                                id=message["id"],
                                type=kind,
                                data=message["data"],
                                timestamp=message["timestamp"],
                            )
                    code = connection.close_code
            except (OSError, websockets.ConnectionClosed, TimeoutError) as exc:
                code = getattr(getattr(exc, "rcvd", None), "code", None)
            finally:
                self._connection = None
                self.live.clear()
            if self._closed:
                return
            if code == UNAUTHORIZED:
                await self.session.refresh_after(token)  # SessionExpiredError ends iteration
            delay = min(self.max_backoff, 0.25 * 2**attempt) * random.uniform(0.5, 1.0)  # noqa: S311
            attempt += 1
            await asyncio.sleep(delay)

    def _auth(self, token: str) -> dict[str, object]:
        auth: dict[str, object] = {"type": "auth", "accessToken": token}
        if self.last_event_id is not None:
            auth["lastEventId"] = self.last_event_id
        if self.project_ids:
            auth["projectIds"] = self.project_ids
        return auth
