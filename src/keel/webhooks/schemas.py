"""Request and response bodies of /api/v1/webhooks (camelCase on the wire)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from keel.platform.schemas import ApiModel, RequestModel, SafeStr

EventType = Literal["project.created", "project.updated", "project.deleted"]
DeliveryStatus = Literal["pending", "succeeded", "failed"]


def _unique(events: list[EventType]) -> list[EventType]:
    if not events:
        raise ValueError("Must name at least one event type")
    return list(dict.fromkeys(events))


class EndpointCreate(RequestModel):
    url: SafeStr = Field(min_length=8, max_length=2048, description="http(s) URL of your receiver")
    events: list[EventType] = Field(max_length=10)
    description: SafeStr | None = Field(default=None, max_length=500)

    _events = field_validator("events")(_unique)


class EndpointPatch(RequestModel):
    url: SafeStr | None = Field(default=None, min_length=8, max_length=2048)
    events: list[EventType] | None = Field(default=None, max_length=10)
    description: SafeStr | None = Field(default=None, max_length=500)
    is_active: bool | None = Field(
        default=None, description="true re-enables a disabled endpoint (clears the reason)"
    )

    @field_validator("events")
    @classmethod
    def _check_events(cls, value: list[EventType] | None) -> list[EventType] | None:
        return None if value is None else _unique(value)


class EndpointOut(ApiModel):
    id: uuid.UUID
    url: str
    events: list[str]
    description: str | None
    is_active: bool
    disabled_reason: str | None = Field(description="Why Keel disabled the endpoint, if it did")
    created_at: datetime
    updated_at: datetime


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="`whsec_…`: shown only now; store it to verify signatures")


class EndpointList(ApiModel):
    data: list[EndpointOut]


class AttemptOut(ApiModel):
    at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None


class DeliveryOut(ApiModel):
    id: str = Field(description="The `webhook-id` header of every try")
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: list[AttemptOut]
    next_attempt_at: datetime | None
    created_at: datetime


class DeliveryList(ApiModel):
    data: list[DeliveryOut]
