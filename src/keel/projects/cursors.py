"""Signed, opaque keyset cursors, and the fingerprint that ties one to its sort and filters."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from datetime import UTC, datetime

import orjson

from keel.platform.errors import ErrorDetail, ValidationFailed
from keel.projects.repository import Keyset, ListFilters


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fingerprint(sort: str, filters: ListFilters) -> str:
    """What a cursor was issued for: the sort and every filter of its list."""
    parts = [
        sort,
        str(filters.owner_id or "*"),
        filters.status or "",
        filters.search_pattern or "",
        filters.created_after.isoformat() if filters.created_after else "",
        filters.created_before.isoformat() if filters.created_before else "",
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


class CursorCodec:
    """Opaque keyset cursors, signed so that a client can neither forge nor edit one.

    A cursor also carries a fingerprint of the sort and filters it was issued for; using it
    with other ones is a 400 rather than a silently wrong page.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:16]

    def encode(self, *, fingerprint: str, value: datetime | str, row_id: uuid.UUID) -> str:
        raw = value if isinstance(value, str) else value.astimezone(UTC).isoformat()
        payload = orjson.dumps({"f": fingerprint, "v": raw, "i": str(row_id)})
        return f"{_b64(payload)}.{_b64(self._mac(payload))}"

    def decode(self, token: str, *, fingerprint: str, sort: str) -> Keyset:
        invalid = ValidationFailed(details=[ErrorDetail(field="cursor", message="Invalid cursor")])
        try:
            body, mac = token.split(".")
            payload = _unb64(body)
            if not hmac.compare_digest(_unb64(mac), self._mac(payload)):
                raise invalid
            data = orjson.loads(payload)
            if data["f"] != fingerprint:
                raise ValidationFailed(
                    details=[
                        ErrorDetail(
                            field="cursor",
                            message="Cursor was issued for another sort or other filters",
                        )
                    ]
                )
            value: datetime | str = str(data["v"])
            if sort.lstrip("-") != "name":
                value = datetime.fromisoformat(str(data["v"])).astimezone(UTC)
            return Keyset(value=value, id=uuid.UUID(str(data["i"])))
        except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
            raise invalid from exc
