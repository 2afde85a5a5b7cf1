"""Rules of /api/v1/webhooks: a user's endpoints, their secrets, delivery log and redelivery."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit import service as audit
from keel.jobs.engine import enqueue
from keel.platform.actor import Actor, RequestContext
from keel.platform.db import utcnow
from keel.platform.errors import ErrorDetail, NotFound, ValidationFailed
from keel.platform.security import Encryptor
from keel.platform.services import Slot
from keel.realtime.service import latest_event_id
from keel.settings import Env, Settings
from keel.webhooks import repository
from keel.webhooks.delivery import TargetRefused, check_target
from keel.webhooks.models import WebhookDelivery, WebhookEndpoint
from keel.webhooks.schemas import (
    AttemptOut,
    DeliveryOut,
    EndpointCreate,
    EndpointOut,
    EndpointPatch,
    EndpointWithSecret,
)
from keel.webhooks.signing import new_secret

DRAIN_JOB = "webhooks.drain"


@dataclass(eq=False)
class WebhooksRuntime:
    """What the webhooks feature needs at run time: settings, the sealing key, one client."""

    settings: Settings
    encryptor: Encryptor
    client: httpx.AsyncClient = field(
        default_factory=lambda: httpx.AsyncClient(follow_redirects=False, trust_env=False)
    )

    @property
    def require_https(self) -> bool:
        return self.settings.env is Env.production

    def seal(self, endpoint_id: uuid.UUID, secret: str) -> bytes:
        return self.encryptor.encrypt(secret.encode(), associated_data=endpoint_id.bytes)

    def unseal(self, endpoint: WebhookEndpoint) -> str:
        return self.encryptor.decrypt(
            endpoint.sealed_secret, associated_data=endpoint.id.bytes
        ).decode()

    async def check(self, url: str) -> None:
        try:
            await check_target(
                url,
                require_https=self.require_https,
                allow_private=self.settings.webhook_allow_private_targets,
            )
        except TargetRefused as exc:
            raise ValidationFailed(
                "The webhook URL is not allowed",
                details=[ErrorDetail(field="url", message=f"Refused: {exc}")],
            ) from exc


WEBHOOKS: Slot[WebhooksRuntime] = Slot("webhooks")


def endpoint_out(endpoint: WebhookEndpoint) -> EndpointOut:
    return EndpointOut.model_validate(endpoint)


async def _audit(
    session: AsyncSession,
    *,
    actor: Actor,
    context: RequestContext,
    action: str,
    endpoint: WebhookEndpoint,
) -> None:
    await audit.record(
        session,
        action=action,
        context=context,
        actor_id=actor.user_id,
        target_type="webhook_endpoint",
        target_id=endpoint.id,
        details={"url": endpoint.url, "events": list(endpoint.events)},
    )


async def create_endpoint(
    session: AsyncSession,
    *,
    actor: Actor,
    context: RequestContext,
    data: EndpointCreate,
    runtime: WebhooksRuntime,
) -> EndpointWithSecret:
    await runtime.check(data.url)
    secret = new_secret()
    endpoint_id = uuid.uuid4()
    now = utcnow()
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        user_id=actor.user_id,
        url=data.url,
        events=list(data.events),
        description=data.description,
        sealed_secret=runtime.seal(endpoint_id, secret),
        is_active=True,
        since_event_id=await latest_event_id(session),
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await _audit(session, actor=actor, context=context, action="webhook.create", endpoint=endpoint)
    await session.flush()
    return EndpointWithSecret(**endpoint_out(endpoint).model_dump(), secret=secret)


async def list_endpoints(session: AsyncSession, *, actor: Actor) -> list[EndpointOut]:
    return [endpoint_out(e) for e in await repository.endpoints_of(session, actor.user_id)]


async def get_endpoint(
    session: AsyncSession, *, actor: Actor, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    """The caller's endpoint; someone else's is 404 like a missing one."""
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.user_id != actor.user_id:
        raise NotFound("Webhook endpoint not found")
    return endpoint


async def update_endpoint(
    session: AsyncSession,
    *,
    actor: Actor,
    context: RequestContext,
    endpoint_id: uuid.UUID,
    data: EndpointPatch,
    runtime: WebhooksRuntime,
) -> EndpointOut:
    endpoint = await get_endpoint(session, actor=actor, endpoint_id=endpoint_id)
    if data.url is not None:
        await runtime.check(data.url)
        endpoint.url = data.url
    if data.events is not None:
        endpoint.events = list(data.events)
    if "description" in data.model_fields_set:
        endpoint.description = data.description
    if data.is_active is not None:
        endpoint.is_active = data.is_active
        if data.is_active:
            endpoint.disabled_reason = None
            endpoint.failing_since = None
    endpoint.updated_at = utcnow()
    await _audit(session, actor=actor, context=context, action="webhook.update", endpoint=endpoint)
    await session.flush()
    return endpoint_out(endpoint)


async def delete_endpoint(
    session: AsyncSession, *, actor: Actor, context: RequestContext, endpoint_id: uuid.UUID
) -> None:
    endpoint = await get_endpoint(session, actor=actor, endpoint_id=endpoint_id)
    await _audit(session, actor=actor, context=context, action="webhook.delete", endpoint=endpoint)
    await session.delete(endpoint)
    await session.flush()


async def rotate_secret(
    session: AsyncSession,
    *,
    actor: Actor,
    context: RequestContext,
    endpoint_id: uuid.UUID,
    runtime: WebhooksRuntime,
) -> EndpointWithSecret:
    endpoint = await get_endpoint(session, actor=actor, endpoint_id=endpoint_id)
    secret = new_secret()
    endpoint.sealed_secret = runtime.seal(endpoint.id, secret)
    endpoint.updated_at = utcnow()
    await _audit(
        session, actor=actor, context=context, action="webhook.rotate_secret", endpoint=endpoint
    )
    await session.flush()
    return EndpointWithSecret(**endpoint_out(endpoint).model_dump(), secret=secret)


async def list_deliveries(
    session: AsyncSession, *, actor: Actor, endpoint_id: uuid.UUID, limit: int
) -> list[DeliveryOut]:
    endpoint = await get_endpoint(session, actor=actor, endpoint_id=endpoint_id)
    deliveries = await repository.deliveries_of(session, endpoint.id, limit=limit)
    attempts = await repository.attempts_of(session, [d.id for d in deliveries])
    return [
        DeliveryOut(
            id=d.id,
            event_id=str(d.event_id),
            event_type=d.event_type,
            status=d.status,
            attempts=[AttemptOut.model_validate(a) for a in attempts[d.id]],
            next_attempt_at=d.next_attempt_at,
            created_at=d.created_at,
        )
        for d in deliveries
    ]


# A drain requested this long ago and still not started is presumed lost: request another.
DRAIN_REQUEST_STALE = timedelta(minutes=5)


async def schedule_drain(session: AsyncSession, *, endpoint: WebhookEndpoint) -> None:
    """Enqueue (in this transaction) the job that sends the endpoint's pending deliveries,
    unless one is already requested and not yet started (it will see these too)."""
    now = utcnow()
    requested = endpoint.drain_requested_at
    if requested is not None and now - requested < DRAIN_REQUEST_STALE:
        return
    endpoint.drain_requested_at = now
    await enqueue(
        session,
        DRAIN_JOB,
        {"endpoint": str(endpoint.id)},
        key=f"{DRAIN_JOB}:{endpoint.id}:{uuid.uuid4().hex}",
        partition=str(endpoint.id),
        coalesce=True,
    )


async def redeliver(
    session: AsyncSession,
    *,
    actor: Actor,
    context: RequestContext,
    endpoint_id: uuid.UUID,
    delivery_id: str,
) -> None:
    endpoint = await get_endpoint(session, actor=actor, endpoint_id=endpoint_id)
    delivery = await session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint.id:
        raise NotFound("Delivery not found")
    delivery.status = "pending"
    delivery.failures = 0
    delivery.next_attempt_at = datetime.now(UTC)
    await _audit(
        session, actor=actor, context=context, action="webhook.redeliver", endpoint=endpoint
    )
    await schedule_drain(session, endpoint=endpoint)
