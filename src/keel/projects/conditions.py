"""ETags and the conditional headers that compare them, and project ids as clients send them."""

from __future__ import annotations

import uuid

from keel.platform.errors import NotFound


def etag_for(version: int) -> str:
    return f'"{version}"'


def parse_if_match(header: str | None) -> frozenset[int] | None:
    """The versions an If-Match header accepts; None when any version will do (absent or *).

    Strong comparison (RFC 9110): weak tags and anything that is not one of our ETags match
    nothing, so a garbled header fails the precondition instead of being ignored.
    """
    if header is None or header.strip() == "*":
        return None
    versions: set[int] = set()
    for part in header.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            continue
        tag = tag.strip('"')
        if tag.isascii() and tag.isdigit() and len(tag) < 10:
            versions.add(int(tag))
    return frozenset(versions)


def if_none_match_hits(header: str | None, version: int) -> bool:
    """Weak comparison, as RFC 9110 prescribes for If-None-Match."""
    if header is None:
        return False
    tags = {part.strip().removeprefix("W/") for part in header.split(",")}
    return "*" in tags or etag_for(version) in tags


def parse_project_id(raw: str) -> uuid.UUID:
    """Malformed ids name no project: 404, the same as an id that does not exist."""
    if len(raw) > 64:
        raise NotFound("Project not found")
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise NotFound("Project not found") from exc
