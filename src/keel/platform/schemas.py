"""Pydantic building blocks shared by every feature's schemas."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; reject it the same way on every backend.
    if "\x00" in value:
        raise ValueError("Must not contain NUL characters")
    return value


SafeStr = Annotated[str, AfterValidator(_no_nul)]


class ApiModel(BaseModel):
    """Base of request and response bodies: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class RequestModel(ApiModel):
    """Request bodies reject unknown fields, so typos are reported, not ignored."""

    model_config = ConfigDict(extra="forbid")


class Pagination(ApiModel):
    """The one pagination block of every list response (projects, users, audit)."""

    page: int | None = Field(description="Page number; null on a cursor page")
    limit: int
    total: int | None = Field(description="Items matching the filters; null on a cursor page")
    total_pages: int | None = Field(description="null on a cursor page")
    next_cursor: str | None = Field(
        default=None,
        description="Opaque; pass as `cursor` for the next page. null on the last page "
        "and on lists without cursor pagination",
    )
