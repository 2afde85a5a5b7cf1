"""HTTP adapter of the account service: export and deletion under /api/v1/auth."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from keel.account import service
from keel.account.schemas import ExportOut
from keel.identity.deps import IdentityDep
from keel.identity.schemas import AccountDeleteIn
from keel.platform.deps import ContextDep, CurrentActor, SessionDep, part
from keel.platform.errors import (
    Forbidden,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    error_responses,
)
from keel.projects.service import PROJECTS, ProjectsRuntime

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.get(
    "/export",
    response_model=ExportOut,
    summary="Export everything stored about the caller (GDPR Art. 20)",
    responses=error_responses(Unauthorized),
)
async def export(actor: CurrentActor, session: SessionDep) -> ExportOut:
    return await service.export_data(session, actor)


@router.delete(
    "/account",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete the caller's account and all its data (GDPR Art. 17)",
    description="Needs the password. Projects and sessions go with the account.",
    responses=error_responses(Unauthorized, Forbidden, ServiceUnavailable, TooManyRequests),
)
async def delete_account(
    body: AccountDeleteIn,
    actor: CurrentActor,
    session: SessionDep,
    identity: IdentityDep,
    projects: Annotated[ProjectsRuntime, Depends(part(PROJECTS))],
    context: ContextDep,
) -> Response:
    await service.delete_account(
        session,
        actor,
        password=body.password,
        context=context,
        identity_part=identity,
        projects_part=projects,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
