"""GraphQL `projects(first: 20)` against the REST list in process: CPU per request.

Usage: .venv/bin/python bench/graphql_inprocess.py [rounds]
One app (SQLite, production settings, limits far above the load) driven through httpx's
ASGI transport by 16 concurrent clients; prints the best of `rounds` rounds of 320 requests
each, as process CPU time per request, and the REST/GraphQL ratio. No network and no wrk, so
it is steadier than `make bench` on a shared machine (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from keel.app import create_app
from keel.settings import Settings

QUERY = (
    "{ projects(first: 20) { totalCount pageInfo { hasNextPage endCursor } "
    "edges { node { id name description status createdAt updatedAt } } } }"
)
PASSWORD = "bench password 2026 correct horse"
CONCURRENCY = 16
PER_ROUND = 320
LIMIT = "100000000/15minutes"


async def main(rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp())
    database_url = f"sqlite+aiosqlite:///{tmp}/keel.db"
    settings = Settings(
        env="production",
        allow_sqlite_in_production=True,
        data_dir=tmp / "data",
        database_url=database_url,
        secret_key="bench-" + "x" * 48,
        log_level="WARNING",
        jobs_enabled=False,
        argon2_memory_kib=1024,
        argon2_time_cost=1,
        argon2_parallelism=1,
        rate_limit_anonymous=LIMIT,
        rate_limit_authenticated=LIMIT,
        rate_limit_auth_endpoints=LIMIT,
    )
    env = {
        **os.environ,
        "KEEL_DATABASE_URL": database_url,
        "KEEL_SECRET_KEY": settings.secret_key,
        "KEEL_DATA_DIR": str(tmp / "data"),
    }
    subprocess.run([sys.executable, "-m", "keel", "migrate"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            account = {"email": "bench@example.com", "password": PASSWORD, "name": "Bench"}
            await client.post("/api/v1/auth/register", json=account)
            login = await client.post(
                "/api/v1/auth/login", json={"email": account["email"], "password": PASSWORD}
            )
            headers = {"authorization": f"Bearer {login.json()['accessToken']}"}
            for i in range(30):
                await client.post("/api/v1/projects", json={"name": f"p{i}"}, headers=headers)

            async def rest() -> None:
                response = await client.get("/api/v1/projects", headers=headers)
                assert response.status_code == 200, response.text

            async def graphql() -> None:
                response = await client.post("/graphql", json={"query": QUERY}, headers=headers)
                assert response.status_code == 200, response.text
                assert "errors" not in response.json(), response.text

            calls: dict[str, Callable[[], Awaitable[None]]] = {"rest": rest, "graphql": graphql}
            best = dict.fromkeys(calls, float("inf"))
            for _ in range(rounds):
                for name, call in calls.items():

                    async def client_loop(call: Callable[[], Awaitable[None]] = call) -> None:
                        for _ in range(PER_ROUND // CONCURRENCY):
                            await call()

                    started = time.process_time()
                    await asyncio.gather(*(client_loop() for _ in range(CONCURRENCY)))
                    spent = (time.process_time() - started) / PER_ROUND * 1e6
                    best[name] = min(best[name], spent)
    print(
        f"CPU per request (best of {rounds}): REST list {best['rest']:.0f} us, "
        f"GraphQL {best['graphql']:.0f} us, ratio {best['rest'] / best['graphql']:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 6))
