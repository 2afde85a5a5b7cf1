"""WebSocket and Server-Sent Events endpoints."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["realtime"])
