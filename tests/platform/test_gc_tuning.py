"""A serving app freezes start-up's objects out of the collector and collects less often
(platform/gc_tuning.py); shutting down puts the collector back as it was."""

from __future__ import annotations

import gc
from collections.abc import Callable

import httpx
from asgi_lifespan import LifespanManager

from keel.app import create_app
from keel.platform.gc_tuning import GEN0_THRESHOLD, OLDER_THRESHOLDS
from keel.settings import Settings


async def test_serving_freezes_start_up_and_spaces_collections_then_undoes_it(
    make_settings: Callable[..., Settings],
) -> None:
    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    app = create_app(make_settings(gc_tuning=True))
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        assert gc.get_threshold() == (GEN0_THRESHOLD, *OLDER_THRESHOLDS)
        # Start-up's objects (the app, its routes, the imported modules) are frozen.
        assert gc.get_freeze_count() > frozen_before + 10_000
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://keel") as client:
            assert (await client.get("/health")).status_code == 200
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


async def test_the_tuning_is_off_when_the_setting_says_so(
    make_settings: Callable[..., Settings],
) -> None:
    before = gc.get_threshold()
    app = create_app(make_settings(gc_tuning=False))
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0
