"""HTTP adapter of the webhooks service: /api/v1/webhooks."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from keel.platform.deps import ContextDep, CurrentActor, SessionDep, part
from keel.platform.errors import NotFound, Unauthorized, ValidationFailed, error_responses
from keel.webhooks import service
from keel.webhooks.schemas import (
    DeliveryList,
    EndpointCreate,
    EndpointList,
    EndpointOut,
    EndpointPatch,
    EndpointWithSecret,
)
from keel.webhooks.service import WEBHOOKS, WebhooksRuntime

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])
RuntimeDep = Annotated[WebhooksRuntime, Depends(part(WEBHOOKS))]
EndpointId = Annotated[uuid.UUID, Path(description="Webhook endpoint id")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=EndpointWithSecret,
    summary="Register a webhook endpoint",
    description=(
        "Your endpoint receives the chosen events of your projects, signed per Standard "
        "Webhooks. The `secret` is shown only in this response (and on rotation). The URL "
        "must not resolve to a private, loopback, link-local or metadata address."
    ),
    responses=error_responses(ValidationFailed, Unauthorized),
)
async def create_endpoint(
    data: EndpointCreate,
    actor: CurrentActor,
    session: SessionDep,
    context: ContextDep,
    runtime: RuntimeDep,
    response: Response,
) -> EndpointWithSecret:
    created = await service.create_endpoint(
        session, actor=actor, context=context, data=data, runtime=runtime
    )
    response.headers["Location"] = f"/api/v1/webhooks/{created.id}"
    return created


@router.get(
    "",
    response_model=EndpointList,
    summary="List your webhook endpoints",
    responses=error_responses(Unauthorized),
)
async def list_endpoints(actor: CurrentActor, session: SessionDep) -> EndpointList:
    return EndpointList(data=await service.list_endpoints(session, actor=actor))


@router.get(
    "/{endpoint_id}",
    response_model=EndpointOut,
    summary="One webhook endpoint",
    responses=error_responses(Unauthorized, NotFound),
)
async def get_endpoint(
    endpoint_id: EndpointId, actor: CurrentActor, session: SessionDep
) -> EndpointOut:
    endpoint = await service.get_endpoint(session, actor=actor, endpoint_id=endpoint_id)
    return service.endpoint_out(endpoint)


@router.patch(
    "/{endpoint_id}",
    response_model=EndpointOut,
    summary="Change a webhook endpoint (or re-enable a disabled one)",
    responses=error_responses(ValidationFailed, Unauthorized, NotFound),
)
async def update_endpoint(
    endpoint_id: EndpointId,
    data: EndpointPatch,
    actor: CurrentActor,
    session: SessionDep,
    context: ContextDep,
    runtime: RuntimeDep,
) -> EndpointOut:
    return await service.update_endpoint(
        session,
        actor=actor,
        context=context,
        endpoint_id=endpoint_id,
        data=data,
        runtime=runtime,
    )


@router.delete(
    "/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a webhook endpoint and its delivery log",
    responses=error_responses(Unauthorized, NotFound),
)
async def delete_endpoint(
    endpoint_id: EndpointId, actor: CurrentActor, session: SessionDep, context: ContextDep
) -> Response:
    await service.delete_endpoint(session, actor=actor, context=context, endpoint_id=endpoint_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{endpoint_id}/rotate-secret",
    response_model=EndpointWithSecret,
    summary="Replace the signing secret (the new one is shown only here)",
    responses=error_responses(Unauthorized, NotFound),
)
async def rotate_secret(
    endpoint_id: EndpointId,
    actor: CurrentActor,
    session: SessionDep,
    context: ContextDep,
    runtime: RuntimeDep,
) -> EndpointWithSecret:
    return await service.rotate_secret(
        session, actor=actor, context=context, endpoint_id=endpoint_id, runtime=runtime
    )


@router.get(
    "/{endpoint_id}/deliveries",
    response_model=DeliveryList,
    summary="The delivery log of an endpoint, newest first, with every attempt",
    responses=error_responses(Unauthorized, NotFound),
)
async def list_deliveries(
    endpoint_id: EndpointId,
    actor: CurrentActor,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> DeliveryList:
    deliveries = await service.list_deliveries(
        session, actor=actor, endpoint_id=endpoint_id, limit=limit
    )
    return DeliveryList(data=deliveries)


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Send a delivery again (same `webhook-id`), after the project's earlier ones",
    responses=error_responses(Unauthorized, NotFound),
)
async def redeliver(
    endpoint_id: EndpointId,
    delivery_id: Annotated[str, Path(max_length=40)],
    actor: CurrentActor,
    session: SessionDep,
    context: ContextDep,
) -> Response:
    await service.redeliver(
        session, actor=actor, context=context, endpoint_id=endpoint_id, delivery_id=delivery_id
    )
    return Response(status_code=status.HTTP_202_ACCEPTED)
