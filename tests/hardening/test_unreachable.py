"""Which failures count as "the database cannot be reached" (503), and which stay bugs (500)."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from keel.platform.unreachable import database_unreachable


class _PgError(Exception):
    """An error carrying a SQLSTATE, as asyncpg's and SQLAlchemy's adapted errors do."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _wrapped(cause: BaseException) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as exc:
            raise OperationalError("SELECT 1", {}, exc) from exc
    except OperationalError as outer:
        return outer


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "refused"),
        ConnectionResetError(104, "reset by peer"),
        TimeoutError(),
        OSError(113, "no route to host"),
        InterfaceError("SELECT 1", {}, Exception("connection is closed")),
        _PgError("08006"),  # connection failure
        _PgError("57P01"),  # admin shutdown
        _PgError("57P03"),  # cannot connect now (starting up, failing over)
        _PgError("25006"),  # read-only transaction: the old primary after a failover
        _PgError("53300"),  # too many connections
        sqlite3.OperationalError("database is locked"),
    ],
)
def test_unreachable(exc: BaseException) -> None:
    assert database_unreachable(exc)
    assert database_unreachable(_wrapped(exc))


def test_invalidated_connection_is_unreachable() -> None:
    exc = DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)
    assert database_unreachable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bug"),
        KeyError("bug"),
        _PgError("23505"),  # unique violation
        _PgError("57014"),  # statement timeout: the query, not the link
        IntegrityError("INSERT", {}, Exception("duplicate")),
        sqlite3.OperationalError("no such table: projects"),
    ],
)
def test_not_unreachable(exc: BaseException) -> None:
    assert not database_unreachable(exc)
