"""Structured logging (structlog): JSON lines with request context; secrets are redacted.

Keel's own loggers (`structlog.get_logger`) render straight to standard output: the access
line is written for every request, and routing it through the standard library (a
LogRecord, the caller lookup, handler locks, ProcessorFormatter) cost ~6 % of a cached
read's CPU (GET by id 390 -> 368 µs per request). Libraries' standard-library logs
(uvicorn, DBOS, SQLAlchemy warnings) pass through the same processors via
ProcessorFormatter, so every line has one shape.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import structlog

from keel.platform.tracing_context import add_trace_ids

# Keys whose values never reach a log line, whatever logs them.
SECRET_KEYS = re.compile(
    r"pass(word)?|secret|token|authorization|cookie|totp|api[_-]?key|hash", re.IGNORECASE
)
REDACTED = "[redacted]"


@functools.lru_cache(maxsize=1024)
def _is_secret_key(key: str) -> bool:
    # Log lines use a few dozen distinct keys: the pattern runs once per key, not per line.
    return key != "event" and SECRET_KEYS.search(key) is not None


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # Any: structlog's processor signature.
    for key in list(event_dict):
        if _is_secret_key(key):
            event_dict[key] = REDACTED
    return event_dict


class StdoutLogger:
    """structlog's output end: one rendered line to whatever `sys.stdout` is when it is
    written (so redirection and test capture see it), under one lock per process."""

    _lock = threading.Lock()

    def __init__(self, name: str) -> None:
        self.name = name  # read by structlog.stdlib.add_logger_name

    def msg(self, message: str) -> None:
        with self._lock:
            out = sys.stdout
            out.write(message + "\n")
            out.flush()

    debug = info = warning = error = critical = exception = msg


def _stdout_logger(*args: Any) -> StdoutLogger:
    # Any: structlog passes get_logger's positional arguments (the logger's name, if any).
    return StdoutLogger(str(args[0]) if args else "keel")


def configure_logging(*, level: str = "INFO", fmt: str = "json") -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_trace_ids,
        redact_secrets,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        logger_factory=_stdout_logger,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own access log would duplicate ours (and print query strings).
    logging.getLogger("uvicorn.access").disabled = True
    # Database drivers log statements with their parameters (password hashes, token hashes)
    # at DEBUG: keep them at WARNING whatever the service's own level is.
    for name in ("aiosqlite", "asyncpg", "sqlalchemy.engine", "sqlalchemy.pool"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
