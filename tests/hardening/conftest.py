"""Hardening fixtures: the app on a real uvicorn socket (the realtime fixtures' server)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.realtime.conftest import LiveServer, serve


@pytest.fixture
async def live(app: FastAPI) -> AsyncIterator[LiveServer]:
    async for server in serve(app):
        yield server


@pytest.fixture
async def http(live: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client over a real socket to the live server."""
    async with httpx.AsyncClient(base_url=live.http, timeout=10) as client:
        yield client
