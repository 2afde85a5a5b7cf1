"""The one way Keel writes a moment on the wire: ISO-8601 in UTC with a `Z`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal


def iso_z(value: datetime, *, timespec: Literal["seconds", "microseconds"] = "microseconds") -> str:
    """`2026-11-25T10:30:00.000000Z` (the API's form for stored times; error envelopes use
    whole seconds)."""
    return value.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def now_z() -> str:
    """The current moment, to the second, as error envelopes carry it."""
    return iso_z(datetime.now(UTC), timespec="seconds")
