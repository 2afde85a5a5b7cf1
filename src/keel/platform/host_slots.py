"""A counting semaphore shared by every process on one host: `count` lock files, each held
with flock(2) by at most one holder. The worker processes of `keel serve --workers N` share
their data directory, so a limit kept here holds for the host, not per process; the kernel
drops a dead holder's lock with its file descriptor.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import structlog

log = structlog.get_logger(__name__)

T = TypeVar("T")

_POLL_SECONDS = 0.005


class SlotsBusy(Exception):
    """Every slot stayed taken until the deadline."""


class HostSlots:
    """At most `count` callers of `run` at once across the processes sharing `folder`.

    `run` blocks its thread (call it from a worker thread, never the event loop) until a slot
    is free or `deadline` (time.monotonic) passes. Each attempt opens the slot file afresh:
    flock belongs to an open file description, so two threads of one process exclude each
    other exactly as two processes do.
    """

    def __init__(self, folder: Path, count: int) -> None:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._paths = [folder / f"slot-{index}.lock" for index in range(count)]
        for path in self._paths:
            path.touch(mode=0o600, exist_ok=True)
        self.count = count

    @classmethod
    def in_folder(cls, folder: Path, count: int) -> HostSlots | None:
        """The host's slots, or None (with a warning) where the folder cannot be written: the
        caller then limits itself per process only."""
        try:
            return cls(folder, count)
        except OSError as exc:
            log.warning("host_slots_unavailable", folder=str(folder), error=str(exc))
            return None

    def _try_take(self) -> int | None:
        for path in self._paths:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            except BaseException:
                os.close(fd)
                raise
            return fd
        return None

    def run(self, deadline: float, fn: Callable[[], T]) -> T:
        """fn() while holding one slot; SlotsBusy when none came free before `deadline`."""
        while (fd := self._try_take()) is None:
            if time.monotonic() >= deadline:
                raise SlotsBusy
            time.sleep(_POLL_SECONDS)
        try:
            return fn()
        finally:
            os.close(fd)  # closing the only descriptor of the description releases the lock
