"""Pydantic building blocks shared by every feature's schemas."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict
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
