"""From committed events to signed HTTP requests: the fan-out and the drain job.

The fan-out reads the outbox after a durable cursor (realtime's `events_after`, in commit
order) and, in one transaction with the cursor's advance, writes a delivery per matching
endpoint and enqueues a drain job for each endpoint touched (one requested at a time). The
engine runs one drain per endpoint at once, across instances (the endpoint is the job's
partition). A drain sends only each project's oldest pending delivery, so one project's
events reach the endpoint in order, and a delivery waiting for its retry holds back the
later ones of its project, not those of other projects.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import orjson
import structlog

from keel.jobs.engine import JobEngine, Payload, Retry
from keel.platform.db import Database, utcnow
from keel.platform.services import Slot
from keel.platform.timestamps import iso_z
from keel.realtime.service import EVENTS_NUMBERED, events_after
from keel.webhooks import repository
from keel.webhooks.delivery import AttemptResult, Target, send
from keel.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from keel.webhooks.service import DRAIN_JOB, WebhooksRuntime, schedule_drain
from keel.webhooks.signing import headers, new_message_id

log = structlog.get_logger("keel.webhooks")
FANOUT_BATCH = 500


async def fan_out(database: Database, *, batch: int = FANOUT_BATCH) -> int:
    """Turn the next committed events into deliveries; returns how many events it read."""
    async with database.transaction() as session:
        cursor = await repository.lock_cursor(session)
        events = await events_after(session, after_id=cursor.value, limit=batch)
        if not events:
            return 0
        endpoints = await repository.active_endpoints_of(session, {e.owner_id for e in events})
        by_owner: dict[uuid.UUID, list[WebhookEndpoint]] = {}
        for endpoint in endpoints:
            by_owner.setdefault(endpoint.user_id, []).append(endpoint)
        touched: dict[uuid.UUID, WebhookEndpoint] = {}
        now = utcnow()
        for event in events:
            # The client-visible event id is the relay-given position (ADR 0011); events_after
            # returns only numbered events, in position order.
            position = event.position
            assert position is not None
            for endpoint in by_owner.get(event.owner_id, ()):
                if event.type not in endpoint.events or position <= endpoint.since_event_id:
                    continue
                body = {
                    "type": event.type,
                    "timestamp": iso_z(event.created_at),
                    "data": event.payload,
                }
                session.add(
                    WebhookDelivery(
                        id=new_message_id(),
                        endpoint_id=endpoint.id,
                        event_id=position,
                        event_type=event.type,
                        project_id=event.project_id,
                        body=orjson.dumps(body).decode(),
                        status="pending",
                        next_attempt_at=now,
                        failures=0,
                        created_at=now,
                    )
                )
                touched[endpoint.id] = endpoint
        last = events[-1].position
        assert last is not None
        cursor.value = last
        for endpoint in touched.values():
            await schedule_drain(session, endpoint=endpoint)
        return len(events)


@dataclass(eq=False)
class Dispatcher:
    """Runs the fan-out on this instance (woken once the relay has delivered newly numbered
    events, and on a timer) and the drain job's handler."""

    database: Database
    runtime: WebhooksRuntime
    _task: asyncio.Task[None] | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def wire(cls, *, database: Database, runtime: WebhooksRuntime, jobs: JobEngine) -> Dispatcher:
        """Build the dispatcher and define its job on the engine."""
        dispatcher = cls(database=database, runtime=runtime)
        # A drain that raised (a database error, not a failed delivery) is run again soon.
        jobs.define(DRAIN_JOB, dispatcher.drain, retry_delays=(1.0, 5.0, 30.0, 60.0, 300.0))
        return dispatcher

    async def start(self) -> None:
        if not self.runtime.settings.jobs_enabled:
            return
        self.database.connect(EVENTS_NUMBERED, self._wake.set)
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        self.database.disconnect(EVENTS_NUMBERED, self._wake.set)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.runtime.client.aclose()

    async def _loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.runtime.settings.jobs_poll_seconds):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                while await fan_out(self.database) == FANOUT_BATCH:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failing database must not end the loop
                log.warning("webhook_fanout_failed", error_type=type(exc).__name__)

    async def drain(self, payload: Payload) -> Retry | None:
        """The `webhooks.drain` job: send the endpoint's due deliveries, each project's in
        order; ask to run again when the earliest retry is due."""
        endpoint_id = uuid.UUID(str(payload["endpoint"]))
        async with self.database.transaction() as session:
            endpoint = await session.get(WebhookEndpoint, endpoint_id)
            if endpoint is None:
                return None
            # From here on, new deliveries request a new drain (queued behind this one).
            endpoint.drain_requested_at = None
        while True:
            async with self.database.transaction() as session:
                endpoint = await session.get(WebhookEndpoint, endpoint_id)
                if endpoint is None:
                    return None
                if not endpoint.is_active:
                    await repository.fail_pending(session, endpoint_id)
                    return None
                heads = await repository.queue_heads(session, endpoint_id)
                target = Target(
                    url=endpoint.url,
                    require_https=self.runtime.require_https,
                    allow_private=self.runtime.settings.webhook_allow_private_targets,
                )
                secret = self.runtime.unseal(endpoint)
            now = utcnow()
            due = [h for h in heads if h.next_attempt_at is None or h.next_attempt_at <= now]
            if not due:
                waits = [
                    (h.next_attempt_at - now).total_seconds() for h in heads if h.next_attempt_at
                ]
                return Retry(min(waits)) if waits else None
            # Heads of different projects are independent: send them together.
            results = await asyncio.gather(
                *(
                    send(
                        self.runtime.client,
                        target=target,
                        body=head.body,
                        headers=headers(
                            secret=secret,
                            message_id=head.id,
                            timestamp=int(utcnow().timestamp()),
                            body=head.body,
                        ),
                        deadline_seconds=self.runtime.settings.webhook_timeout_seconds,
                    )
                    for head in due
                )
            )
            await self._record(list(zip((h.id for h in due), results, strict=True)))

    async def _record(self, outcomes: list[tuple[str, AttemptResult]]) -> None:
        """Store the attempts and move each delivery on: done, retry later, or failed."""
        delays = self.runtime.settings.webhook_retry_delays
        async with self.database.transaction() as session:
            for delivery_id, result in outcomes:
                delivery = await session.get(WebhookDelivery, delivery_id)
                if delivery is None:
                    continue
                endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
                now = utcnow()
                session.add(
                    WebhookAttempt(
                        delivery_id=delivery_id,
                        at=now,
                        status_code=result.status_code,
                        duration_ms=result.duration_ms,
                        error=result.error,
                    )
                )
                if result.succeeded:
                    delivery.status = "succeeded"
                    delivery.next_attempt_at = None
                    if endpoint is not None:
                        endpoint.failing_since = None
                    continue
                delivery.failures += 1
                if endpoint is not None:
                    self._note_failure(endpoint, result=result)
                if delivery.failures > len(delays) or (
                    endpoint is not None and not endpoint.is_active
                ):
                    delivery.status = "failed"
                    delivery.next_attempt_at = None
                else:
                    wait = delays[delivery.failures - 1]
                    delivery.next_attempt_at = now + timedelta(seconds=wait)

    def _note_failure(self, endpoint: WebhookEndpoint, *, result: AttemptResult) -> None:
        current = utcnow()
        if endpoint.failing_since is None:
            endpoint.failing_since = current
            return
        failing_for = (current - endpoint.failing_since).total_seconds()
        if failing_for >= self.runtime.settings.webhook_disable_after_seconds:
            endpoint.is_active = False
            reason = result.error or f"HTTP {result.status_code}"
            endpoint.disabled_reason = (
                f"Disabled after every delivery failed for {int(failing_for)} s "
                f"(since {iso_z(endpoint.failing_since)}); last error: {reason}"
            )[:500]
            endpoint.updated_at = current
            log.warning("webhook_endpoint_disabled", endpoint=str(endpoint.id))


DISPATCHER: Slot[Dispatcher] = Slot("webhooks.dispatcher")
