"""Account rules that span features: export (GDPR Art. 20) and erasure (Art. 17).

This feature sits above identity, projects and audit and calls their services; none of
them imports it, so the cycle account deletion used to need is gone.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from keel.account.schemas import ExportOut
from keel.audit import service as audit
from keel.identity import credentials, oidc
from keel.identity import service as identity
from keel.identity import sessions as identity_sessions
from keel.identity.schemas import AdminUserOut, LinkedIdentityOut, SessionOut
from keel.platform.actor import Actor, RequestContext
from keel.platform.db import utcnow
from keel.platform.timestamps import iso_z
from keel.projects import service as projects


async def export_data(session: AsyncSession, actor: Actor) -> ExportOut:
    """Everything stored about the caller, for data portability (GDPR Art. 20)."""
    user = await identity.get_profile(session, actor)
    entries = await audit.entries_of_actor(session, user.id)
    return ExportOut(
        exported_at=utcnow(),
        user=AdminUserOut.model_validate(user),
        sessions=[
            SessionOut.of(s, actor) for s in await identity_sessions.list_sessions(session, actor)
        ],
        linked_identities=[
            LinkedIdentityOut.model_validate(linked)
            for linked in await oidc.linked_identities(session, user.id)
        ],
        projects=await projects.export_of_owner(session, actor),
        audit_log=[
            {
                "at": iso_z(entry.at),
                "action": entry.action,
                "outcome": entry.outcome,
                "ip": entry.ip,
                "targetType": entry.target_type,
                "targetId": entry.target_id,
            }
            for entry in entries
        ],
    )


async def delete_account(
    session: AsyncSession,
    actor: Actor,
    *,
    password: str,
    context: RequestContext,
    identity_part: identity.Identity,
    projects_part: projects.ProjectsRuntime,
) -> None:
    """Erase the caller's account, sessions and projects (GDPR Art. 17).

    Each project is deleted as a single delete would be (audited, announced, uncached)
    before the user row goes. The audit trail keeps rows naming the user id (no personal
    data beyond IPs), as the record of security events the operator must keep.
    """
    await credentials.verify_password(identity_part, actor, password=password, context=context)
    deleted_projects = await projects.delete_all_of_owner(
        session, actor, context=context, runtime=projects_part
    )
    await identity.erase_user(session, identity_part, actor)
    await audit.record(
        session,
        action="auth.account_delete",
        context=context,
        actor_id=actor.user_id,
        target_type="user",
        target_id=actor.user_id,
        details={"projectsDeleted": deleted_projects},
    )
