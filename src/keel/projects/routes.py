"""HTTP adapter of the projects service: /api/v1/projects."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/projects", tags=["projects"])
