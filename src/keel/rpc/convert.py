"""Between Keel's documents and schemas and the keel.v1 messages (AIP names on the wire)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel, ValidationError

from keel.platform.errors import ErrorDetail, NotFound, ValidationFailed, validation_details
from keel.v1 import auth_service_pb2, project_pb2, project_service_pb2

M = TypeVar("M", bound=BaseModel)

STATUS_TO_PROTO = {
    "active": project_pb2.PROJECT_STATUS_ACTIVE,
    "completed": project_pb2.PROJECT_STATUS_COMPLETED,
    "archived": project_pb2.PROJECT_STATUS_ARCHIVED,
}
STATUS_FROM_PROTO: dict[int, str] = {value: key for key, value in STATUS_TO_PROTO.items()}
ROLE_TO_PROTO = {"user": auth_service_pb2.USER_ROLE_USER, "admin": auth_service_pb2.USER_ROLE_ADMIN}
EVENT_TYPES = {
    "project.created": project_service_pb2.PROJECT_EVENT_TYPE_CREATED,
    "project.updated": project_service_pb2.PROJECT_EVENT_TYPE_UPDATED,
    "project.deleted": project_service_pb2.PROJECT_EVENT_TYPE_DELETED,
}
# order_by (AIP-132) -> the REST sort key.
ORDER_BY = {
    "": "-createdAt",
    "create_time desc": "-createdAt",
    "create_time": "createdAt",
    "create_time asc": "createdAt",
    "update_time desc": "-updatedAt",
    "update_time": "updatedAt",
    "update_time asc": "updatedAt",
    "display_name desc": "-name",
    "display_name": "name",
    "display_name asc": "name",
}


def timestamp(value: str | datetime) -> Timestamp:
    stamp = Timestamp()
    if isinstance(value, datetime):
        stamp.FromDatetime(value)
    else:
        stamp.FromJsonString(value)
    return stamp


def project_message(doc: Mapping[str, Any], *, etag: str) -> project_pb2.Project:
    """A project as REST shows it (`project_json`) -> the keel.v1.Project message."""
    # Any: JSON-decoded values.
    message = project_pb2.Project(
        name=f"projects/{doc['id']}",
        owner=f"users/{doc['userId']}",
        display_name=doc["name"],
        status=STATUS_TO_PROTO[doc["status"]],
        create_time=timestamp(doc["createdAt"]),
        update_time=timestamp(doc["updatedAt"]),
        etag=etag,
    )
    if doc.get("description") is not None:
        message.description = doc["description"]
    return message


def user_message(user: Any) -> auth_service_pb2.User:
    # Any: keel.identity.models.User (typed there; read by attribute here).
    return auth_service_pb2.User(
        name=f"users/{user.id}",
        email=user.email,
        display_name=user.name,
        role=ROLE_TO_PROTO.get(user.role, auth_service_pb2.USER_ROLE_UNSPECIFIED),
        create_time=timestamp(user.created_at),
    )


def resource_id(name: str, *, collection: str) -> str:
    """`projects/{id}` -> id. A malformed name names nothing: NOT_FOUND, as REST's 404."""
    prefix = f"{collection}/"
    if not name.startswith(prefix):
        raise NotFound("Project not found" if collection == "projects" else "Not found")
    return name[len(prefix) :]


def parent_user(parent: str) -> uuid.UUID | None:
    """`users/{id}` -> id; `users/-` or empty -> None (all the caller may see)."""
    if parent in ("", "users/-"):
        return None
    try:
        return uuid.UUID(resource_id(parent, collection="users"))
    except (NotFound, ValueError) as exc:
        raise ValidationFailed(
            details=[ErrorDetail(field="parent", message="Must be users/{user_id} or users/-")]
        ) from exc


def status_value(status: int, *, field: str = "status") -> str:
    try:
        return STATUS_FROM_PROTO[status]
    except KeyError:
        raise ValidationFailed(
            details=[ErrorDetail(field=field, message="Must be a known ProjectStatus")]
        ) from None


def build(model: type[M], values: Mapping[str, object]) -> M:
    """Validate as REST does; errors come back with the REST field names (mapped later)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ValidationFailed(details=validation_details(exc.errors())) from exc
