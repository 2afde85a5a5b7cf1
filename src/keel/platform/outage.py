"""A shared dependency's outage as one client sees it: skip it for a while after an error,
and log the outage once when it starts and once when it ends."""

from __future__ import annotations

import time
from typing import Any

import structlog

log = structlog.get_logger("keel.outage")

# After an error the dependency is not tried again for this long, so an outage costs no
# per-request timeouts or retries.
RETRY_SECONDS = 2.0


class Outage:
    """The state of one client's view of a dependency (Redis for the cache, the limiter…)."""

    def __init__(
        self,
        name: str,
        *,
        logger: Any = log,
        retry_seconds: float = RETRY_SECONDS,
        **context: Any,
    ) -> None:
        # Any: structlog's bound logger of the caller; extra fields logged with the outage.
        self._log = logger
        self._name = name
        self._retry_seconds = retry_seconds
        self._context = context
        self._retry_at = 0.0
        self.down = False

    def usable(self) -> bool:
        """Whether to try the dependency now: it is up, or the retry pause has passed."""
        return not self.down or time.monotonic() >= self._retry_at

    def failed(self, exc: BaseException) -> None:
        self._retry_at = time.monotonic() + self._retry_seconds
        if not self.down:
            self.down = True
            self._log.warning(
                f"{self._name}_unavailable", error_type=type(exc).__name__, **self._context
            )

    def recovered(self) -> None:
        if self.down:
            self.down = False
            self._log.info(f"{self._name}_recovered")
