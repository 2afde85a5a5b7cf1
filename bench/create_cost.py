"""What one POST /api/v1/projects costs, in-process: database round trips, Redis commands and
CPU milliseconds per create (machine-load-independent, unlike req/s).

Drives the ASGI app directly (no HTTP client, no sockets) against PostgreSQL + Redis with the
production settings the bench uses, `--concurrency` creates at a time.

Usage: .venv/bin/python bench/create_cost.py --database-url postgresql+asyncpg://…/db \
           --redis-url redis://127.0.0.1:6379/7 [--creates 500] [--profile out.txt]
The database is dropped and re-created.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/profile.py would shadow the standard library's `profile`, which cProfile imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import collections  # noqa: E402
import cProfile  # noqa: E402
import pstats  # noqa: E402
import secrets  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import partial  # noqa: E402
from typing import Any  # noqa: E402

import orjson  # noqa: E402
from asgi_lifespan import LifespanManager  # noqa: E402
from sqlalchemy import event, make_url, text  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from keel import migrations  # noqa: E402
from keel.app import create_app  # noqa: E402
from keel.platform.services import services_of  # noqa: E402
from keel.settings import Settings  # noqa: E402


async def recreate(url: str) -> None:
    name = make_url(url).database
    admin = make_url(url).set(database="postgres").render_as_string(hide_password=False)
    engine = create_async_engine(admin, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()


async def asgi_call(
    app: Any, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, bytes]:
    # Any: an ASGI application.
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


class Counter:
    """SQL statements (with BEGIN/COMMIT/ROLLBACK and pool pings) and Redis commands."""

    def __init__(self) -> None:
        self.on = False
        self.sql: collections.Counter[str] = collections.Counter()
        self.redis: collections.Counter[str] = collections.Counter()

    def hit(self, bucket: collections.Counter[str], what: str) -> None:
        if self.on:
            bucket[what] += 1

    def transaction_hit(self, what: str, connection: Any) -> None:
        # In autocommit mode (a lone statement) SQLAlchemy's events fire but nothing is sent.
        if not connection.connection.dbapi_connection.autocommit:
            self.hit(self.sql, what)

    def install(self, database: Any) -> None:
        engine = database.primary
        sync = engine.sync_engine
        observe = database.observe_statement

        def direct(statement: str, seconds: float) -> None:
            # A REST create's statement goes straight to the driver (platform/direct.py), past
            # SQLAlchemy's events; its metric observer sees it. (SQLAlchemy's statements reach
            # this observer from inside the events above, not through the attribute.)
            self.hit(self.sql, " ".join(statement.split())[:90])
            if observe is not None:
                observe(statement, seconds)

        database.observe_statement = direct
        event.listen(
            sync,
            "before_cursor_execute",
            lambda _c, _cur, statement, *_a: self.hit(self.sql, " ".join(statement.split())[:90]),
        )
        for name in ("begin", "commit", "rollback"):
            event.listen(sync, name, partial(self.transaction_hit, name.upper()))
        from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection as Adapted

        original_ping: Callable[..., Any] = Adapted._async_ping

        async def ping(connection: Any) -> Any:
            # Outside a transaction the asyncpg adapter sends BEGIN, ";" and ROLLBACK.
            self.hit(self.sql, "pool ping (3 round trips: BEGIN, ';', ROLLBACK)")
            return await original_ping(connection)

        Adapted._async_ping = ping  # type: ignore[method-assign]
        from redis.asyncio.client import Pipeline, Redis

        original: Callable[..., Any] = Redis.execute_command
        original_pipe: Callable[..., Any] = Pipeline.execute

        async def execute_command(client: Any, *args: Any, **kwargs: Any) -> Any:
            self.hit(self.redis, str(args[0]))
            return await original(client, *args, **kwargs)

        async def execute(pipe: Any, *args: Any, **kwargs: Any) -> Any:
            names = "+".join(str(c[0][0]) for c in pipe.command_stack)
            self.hit(self.redis, f"PIPELINE[{names}]")
            return await original_pipe(pipe, *args, **kwargs)

        Redis.execute_command = execute_command  # type: ignore[method-assign]
        Pipeline.execute = execute  # type: ignore[method-assign]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--creates", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--profile", type=Path, default=None)
    args = parser.parse_args()
    await recreate(args.database_url)
    await asyncio.to_thread(migrations.upgrade, args.database_url)
    data_dir = Path(tempfile.mkdtemp(prefix="keel-create-cost-"))
    settings = Settings(
        env="production",
        secret_key="bench-" + "y" * 40,
        database_url=args.database_url,
        redis_url=args.redis_url,
        data_dir=data_dir,
        allow_sqlite_in_production=True,
        log_level="WARNING",
        rate_limit_anonymous="100000000/15minutes",
        rate_limit_authenticated="100000000/15minutes",
        rate_limit_auth_endpoints="100000000/15minutes",
        argon2_memory_kib=1024,
        argon2_time_cost=1,
        argon2_parallelism=1,
    )
    app = create_app(settings)
    counter = Counter()
    counter.install(services_of(app).database)
    async with LifespanManager(app, startup_timeout=60):
        redis = services_of(app).redis
        assert redis is not None
        await redis.flushdb()
        email = f"cost-{secrets.token_hex(4)}@example.com"
        status, body = await asgi_call(
            app,
            "POST",
            "/api/v1/auth/register",
            {"content-type": "application/json"},
            orjson.dumps({"email": email, "password": "Correct-Horse-9", "name": "Cost"}),
        )
        assert status == 201, body
        token = orjson.loads(body)["accessToken"]
        headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}

        async def creates(n: int) -> None:
            sem = asyncio.Semaphore(args.concurrency)

            async def one(i: int) -> None:
                async with sem:
                    payload = orjson.dumps({"name": f"P {i}", "description": f"d {i}"})
                    status, body = await asgi_call(
                        app, "POST", "/api/v1/projects", headers, payload
                    )
                    assert status == 201, body

            await asyncio.gather(*(one(i) for i in range(n)))

        await creates(50)  # warm: prepared statements, pools, caches
        await asyncio.sleep(0.5)
        idle0 = time.process_time()
        await asyncio.sleep(3)
        idle = (time.process_time() - idle0) / 3
        counter.on = True
        profiler = cProfile.Profile() if args.profile else None
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        await creates(args.creates)
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        await asyncio.sleep(0.5)  # the relay's numbering of the last events
        counter.on = False
    n = args.creates
    print(f"creates: {n} at concurrency {args.concurrency}")
    print(f"CPU per create: {cpu / n * 1000:.2f} ms (wall {wall / n * 1000:.2f} ms/create)")
    print(f"  of which idle background (jobs, relay polls): {idle * wall / n * 1000:.2f} ms")
    print(f"SQL statements per create (BEGIN/COMMIT included): {sum(counter.sql.values()) / n:.2f}")
    for what, count in counter.sql.most_common():
        print(f"  {count / n:6.2f}  {what}")
    print(f"Redis calls per create: {sum(counter.redis.values()) / n:.2f}")
    for what, count in counter.redis.most_common():
        print(f"  {count / n:6.2f}  {what}")
    if profiler and args.profile:
        with args.profile.open("w") as out:
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("cumulative").print_stats(80)
            stats.sort_stats("tottime").print_stats(50)
        print(f"profile: {args.profile}")


if __name__ == "__main__":
    import uvloop  # as the server runs

    uvloop.run(main())
