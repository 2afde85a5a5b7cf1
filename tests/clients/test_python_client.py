"""The generated Python client and its hand-written layer, against a live Keel."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from keel_api.api.auth import profile, revoke_session
from keel_api.api.projects import create_project, delete_project, list_projects, patch_project
from keel_api.models import ProjectCreate, ProjectOut, ProjectPage, ProjectPatch, UserOut
from keel_client import KeelSession, ProjectEvent, SessionExpiredError, Subscription, Tokens

from tests.servers import Server

PASSWORD = "a long enough passphrase"


async def _signed_up(server: Server) -> KeelSession:
    session = KeelSession(server.url)
    await session.register(f"py-{uuid.uuid4().hex[:10]}@example.com", PASSWORD, "Py Client")
    return session


async def _next(events: asyncio.Queue[ProjectEvent]) -> ProjectEvent:
    return await asyncio.wait_for(events.get(), timeout=30)


async def _collect(subscription: Subscription, into: asyncio.Queue[ProjectEvent]) -> None:
    async for event in subscription:
        await into.put(event)


async def test_generated_calls_create_list_change_and_delete(live_keel: Server) -> None:
    async with await _signed_up(live_keel) as session:
        me = await profile.asyncio(client=session.client)
        assert isinstance(me, UserOut)
        created = await create_project.asyncio(
            client=session.client, body=ProjectCreate(name="Python Client")
        )
        assert isinstance(created, ProjectOut)
        changed = await patch_project.asyncio(
            id=str(created.id), client=session.client, body=ProjectPatch(description="edited")
        )
        assert isinstance(changed, ProjectOut)
        assert changed.description == "edited"
        page = await list_projects.asyncio(client=session.client)
        assert isinstance(page, ProjectPage)
        assert [p.name for p in page.data] == ["Python Client"]
        deleted = await delete_project.asyncio_detailed(id=str(created.id), client=session.client)
        assert deleted.status_code == 204


async def test_concurrent_401s_share_one_refresh(live_keel: Server) -> None:
    async with await _signed_up(live_keel) as session:
        assert session.access_token is not None
        # Every request is refused with this token, as when it has just expired.
        refresh_token = session._tokens.refresh_token if session._tokens else ""
        session.set_tokens(Tokens("expired-access-token", refresh_token))
        pages = await asyncio.gather(
            *(list_projects.asyncio(client=session.client) for _ in range(8))
        )
        assert session.refresh_count == 1
        assert all(isinstance(page, ProjectPage) for page in pages)
        # The rotated refresh token keeps working; the old one is now spent.
        assert session.access_token != "expired-access-token"


async def test_a_revoked_session_ends_with_session_expired(live_keel: Server) -> None:
    async with await _signed_up(live_keel) as session:
        sessions = httpx.get(
            f"{live_keel.url}/api/v1/auth/sessions",
            headers={"Authorization": f"Bearer {session.access_token}"},
        ).json()["data"]
        response = await revoke_session.asyncio_detailed(
            session_id=uuid.UUID(sessions[0]["id"]), client=session.client
        )
        assert response.status_code == 204
        answer = await profile.asyncio_detailed(client=session.client)
        assert answer.status_code == 401
        assert not session.signed_in
        with pytest.raises(SessionExpiredError):
            await session.refresh_after(None)


async def test_subscription_delivers_live_and_resumes_after_a_disconnect(
    live_keel: Server,
) -> None:
    async with await _signed_up(live_keel) as session:
        events: asyncio.Queue[ProjectEvent] = asyncio.Queue()
        subscription = Subscription(session)
        reader = asyncio.create_task(_collect(subscription, events))
        await asyncio.wait_for(subscription.live.wait(), timeout=30)
        first = await create_project.asyncio(client=session.client, body=ProjectCreate(name="One"))
        assert isinstance(first, ProjectOut)
        event = await _next(events)
        assert (event.type, event.data["id"]) == ("project.created", str(first.id))
        await subscription.close()
        await reader

        # Committed while nobody listened: delivered on resume, and nothing twice.
        second = await create_project.asyncio(client=session.client, body=ProjectCreate(name="Two"))
        assert isinstance(second, ProjectOut)
        resumed = Subscription(session, last_event_id=subscription.last_event_id)
        reader = asyncio.create_task(_collect(resumed, events))
        event = await _next(events)
        assert (event.type, event.data["id"]) == ("project.created", str(second.id))
        await resumed.close()
        await reader
        assert events.empty()


async def test_subscription_refreshes_after_a_4401_and_keeps_going(live_keel: Server) -> None:
    async with await _signed_up(live_keel) as session:
        assert session._tokens is not None
        good = session._tokens
        session.set_tokens(Tokens("not-a-token", good.refresh_token))
        events: asyncio.Queue[ProjectEvent] = asyncio.Queue()
        subscription = Subscription(session, max_backoff=0.2)
        reader = asyncio.create_task(_collect(subscription, events))
        await asyncio.wait_for(subscription.live.wait(), timeout=30)
        assert session.refresh_count == 1
        created = await create_project.asyncio(
            client=session.client, body=ProjectCreate(name="Three")
        )
        assert isinstance(created, ProjectOut)
        assert (await _next(events)).data["id"] == str(created.id)
        await subscription.close()
        await reader
