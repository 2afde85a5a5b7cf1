"""Audit tests sign in several times from one address: the rate limiter is off here."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from keel.settings import Settings


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(rate_limit_enabled=False)
