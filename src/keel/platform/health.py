"""Operations routes: liveness, readiness, Prometheus metrics and the offline API docs."""

from __future__ import annotations

import asyncio
import hmac
from pathlib import Path
from typing import Literal

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from starlette.responses import Response

from keel.platform.deps import ServicesDep
from keel.platform.errors import ErrorBody, ServiceUnavailable, Unauthorized
from keel.platform.metrics import render_metrics

router = APIRouter(tags=["operations"])
log = structlog.get_logger("keel.health")
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
CHECK_TIMEOUT_SECONDS = 2.0


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ok"] = "ok"
    checks: dict[str, str]


@router.get("/health", response_model=Health, summary="Liveness: the process answers")
async def health() -> Health:
    return Health()


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Readiness: the database (and Redis, when configured) answer; 503 while draining",
    responses={
        503: {"model": ErrorBody, "description": "A dependency is unreachable, or draining"}
    },
)
async def ready(services: ServicesDep) -> Readiness:
    if services.lifecycle.draining:
        raise ServiceUnavailable("Not ready: shutting down", headers={"Retry-After": "5"})
    checks: dict[str, str] = {}
    failed: list[str] = []
    probes = services.readiness_probes
    for name, probe in probes.items():
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                await probe()
            checks[name] = "ok"
        except Exception as exc:  # any failure of a dependency means "not ready"
            log.warning("readiness_check_failed", check=name, error_type=type(exc).__name__)
            checks[name] = "unavailable"
            failed.append(name)
    if failed:
        raise ServiceUnavailable(
            f"Not ready: {', '.join(failed)} unreachable", headers={"Retry-After": "5"}
        )
    return Readiness(checks=checks)


DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Keel API</title>
<link rel="stylesheet" href="/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/static/swagger-ui-bundle.js"></script>
<script src="/static/docs-init.js"></script></body></html>"""


@router.get("/docs", include_in_schema=False)
async def docs() -> HTMLResponse:
    return HTMLResponse(DOCS_HTML)


_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css"}


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    path = STATIC_DIR / name
    media_type = _STATIC_TYPES.get(path.suffix)
    if media_type is None or path.parent != STATIC_DIR or not path.is_file():
        from keel.platform.errors import NotFound

        raise NotFound("No such file")
    return Response(
        path.read_bytes(),
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, services: ServicesDep) -> Response:
    token = services.settings.metrics_token
    if token:
        presented = request.headers.get("authorization", "")
        expected = f"Bearer {token}"
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            raise Unauthorized("A valid metrics bearer token is required")
    return Response(render_metrics(), media_type=CONTENT_TYPE_LATEST)
