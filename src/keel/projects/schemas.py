"""Request and response bodies of /api/v1/projects (camelCase on the wire)."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from keel.platform.schemas import ApiModel, Pagination, RequestModel, SafeStr

Status = Literal["active", "completed", "archived"]
SortKey = Literal["createdAt", "-createdAt", "name", "-name", "updatedAt", "-updatedAt"]

NAME_MIN = 3
NAME_MAX = 100
DESCRIPTION_MAX = 1000


def _is_name_char(char: str) -> bool:
    # Letters of any script (L*), decimal digits of any script (Nd), space and hyphen.
    return char in " -" or char.isalpha() or unicodedata.category(char) == "Nd"


def clean_name(value: str) -> str:
    """Trim, normalise to NFC (so "é" typed either way is one letter), then check the rule."""
    name = unicodedata.normalize("NFC", value.strip())
    if len(name) < NAME_MIN:
        raise ValueError(f"Must be at least {NAME_MIN} characters")
    if len(name) > NAME_MAX:
        raise ValueError(f"Must be at most {NAME_MAX} characters")
    if not all(_is_name_char(c) for c in name):
        raise ValueError("May contain only letters, digits, spaces and hyphens")
    return name


def _check_description(value: str | None) -> str | None:
    if value is not None and len(value) > DESCRIPTION_MAX:
        raise ValueError(f"Must be at most {DESCRIPTION_MAX} characters")
    return value


class ProjectCreate(RequestModel):
    name: SafeStr = Field(
        description="Trimmed, then 3–100 letters, digits, spaces and hyphens",
        examples=["Website relaunch"],
    )
    description: SafeStr | None = Field(default=None, description="At most 1000 characters")
    status: Status = "active"

    _name = field_validator("name")(clean_name)
    _description = field_validator("description")(_check_description)


class ProjectReplace(ProjectCreate):
    """PUT: the whole project; omitted optional fields take their defaults."""


class ProjectPatch(RequestModel):
    """PATCH: only the fields given change; `description: null` clears it."""

    name: SafeStr | None = Field(default=None, description="As for create; not null")
    description: SafeStr | None = None
    status: Status | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("Must not be null")
        return clean_name(value)

    @field_validator("status", mode="before")
    @classmethod
    def _status_not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("Must not be null")
        return value

    _description = field_validator("description")(_check_description)


class ProjectOut(ApiModel):
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    description: str | None
    status: Status
    created_at: datetime
    updated_at: datetime


class ProjectPage(ApiModel):
    data: list[ProjectOut]
    pagination: Pagination
