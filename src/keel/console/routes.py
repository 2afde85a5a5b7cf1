"""GET /console and its static files, plus the QR code of an MFA enrolment as SVG."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated

import segno
from fastapi import APIRouter
from pydantic import Field, StringConstraints
from starlette.responses import Response

from keel.platform.errors import NotFound
from keel.platform.schemas import RequestModel, SafeStr

router = APIRouter(prefix="/console", include_in_schema=False)
STATIC_DIR = Path(__file__).resolve().parent / "static"
MEDIA_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
}
# Immutable for a day: the page references each file by name, and a deploy changes the HTML
# (no-store) together with them, so at worst a browser uses the previous script for a day.
STATIC_CACHE = "public, max-age=3600"


class QrIn(RequestModel):
    text: Annotated[SafeStr, StringConstraints(pattern=r"^otpauth://", max_length=512)] = Field(
        description="The otpauth:// URI of POST /api/v1/auth/mfa/setup"
    )


@router.get("")
async def console_page() -> Response:
    return _file("index.html", cache="no-store")


@router.get("/static/{name}")
async def console_static(name: str) -> Response:
    return _file(name, cache=STATIC_CACHE)


@router.post("/qr")
async def console_qr(body: QrIn) -> Response:
    """The URI as a QR code in SVG, drawn on the server so the console needs no QR library.
    A pure function of the body: it sees nothing the caller did not just send."""
    buffer = io.BytesIO()
    segno.make(body.text, error="m").save(
        buffer, kind="svg", scale=4, border=4, xmldecl=False, title="QR code", nl=False
    )
    return Response(buffer.getvalue(), media_type="image/svg+xml")


def _file(name: str, *, cache: str) -> Response:
    path = STATIC_DIR / name
    media_type = MEDIA_TYPES.get(path.suffix)
    if media_type is None or path.parent != STATIC_DIR or not path.is_file():
        raise NotFound("No such file")
    return Response(path.read_bytes(), media_type=media_type, headers={"Cache-Control": cache})
