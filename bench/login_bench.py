"""Login latency and server memory at the production Argon2 parameters (64 MiB, t=3, p=4).

Starts a real `python -m keel serve` (SQLite, rate limits off so the limiter does not
answer instead of the hasher), registers users, then measures:

  1. sequential logins (one at a time): latency;
  2. N concurrent logins (default 50): latency, throughput and the server's peak RSS, while
     one client keeps reading /api/v1/auth/profile to show what the flood does to others;
  3. optionally (--burst 500) a larger burst: peak RSS stays near
     baseline + pool size x 64 MiB, and requests that wait too long get 503 + Retry-After.

    .venv/bin/python bench/login_bench.py [--concurrent 50] [--burst 500] [--pool-size N]
                                          [--queue-timeout SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench passphrase that is long enough"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PeakRss:
    """Samples a process tree's RSS every few milliseconds in a thread; keeps the maximum."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        procs = [self.process, *self.process.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs if p.is_running())

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.003)

    def __enter__(self) -> PeakRss:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def describe(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"{name}: n={len(ms)} p50={pct(ms, 0.5):.0f} ms p95={pct(ms, 0.95):.0f} ms "
        f"p99={pct(ms, 0.99):.0f} ms max={max(ms):.0f} ms mean={statistics.mean(ms):.0f} ms"
    )


async def timed_login(client: httpx.AsyncClient, email: str) -> tuple[float, int]:
    start = time.perf_counter()
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    return time.perf_counter() - start, response.status_code


async def profile_loop(
    client: httpx.AsyncClient, token: str, stop: asyncio.Event, out: list[float]
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    while not stop.is_set():
        start = time.perf_counter()
        response = await client.get("/api/v1/auth/profile", headers=headers)
        out.append(time.perf_counter() - start)
        assert response.status_code == 200, response.text
        await asyncio.sleep(0.01)


async def run(args: argparse.Namespace, base: str, rss: PeakRss) -> None:
    limits = httpx.Limits(max_connections=max(args.concurrent, args.burst) + 10)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        emails = [f"bench{i}@example.com" for i in range(args.concurrent)]
        for start in range(0, len(emails), 8):
            results = await asyncio.gather(
                *(
                    client.post(
                        "/api/v1/auth/register",
                        json={"email": e, "password": PASSWORD, "name": "Bench"},
                    )
                    for e in emails[start : start + 8]
                )
            )
            assert all(r.status_code == 201 for r in results), [r.text for r in results]
        token = results[0].json()["accessToken"]
        await timed_login(client, emails[0])  # warm-up
        idle_rss = rss.rss()
        print(f"server RSS idle (after registering): {idle_rss / 2**20:.0f} MiB")

        sequential = []
        for i in range(args.sequential):
            elapsed, status = await timed_login(client, emails[i % len(emails)])
            assert status == 200, status
            sequential.append(elapsed)
        print(describe("1 login at a time", sequential))

        with PeakRss(rss.process.pid) as peak:
            stop = asyncio.Event()
            others: list[float] = []
            reader = asyncio.create_task(profile_loop(client, token, stop, others))
            started = time.perf_counter()
            results2 = await asyncio.gather(*(timed_login(client, e) for e in emails))
            wall = time.perf_counter() - started
            stop.set()
            await reader
        statuses = [s for _, s in results2]
        print(
            describe(f"{args.concurrent} concurrent logins", [t for t, _ in results2])
            + f" | all answered in {wall:.2f} s; "
            + f"{statuses.count(200) / wall:.1f} successful logins/s"
            + f" | statuses { {s: statuses.count(s) for s in set(statuses)} }"
        )
        print(
            f"server peak RSS during the {args.concurrent}-login flood: "
            f"{peak.peak / 2**20:.0f} MiB (+{(peak.peak - idle_rss) / 2**20:.0f} MiB over idle)"
        )
        if others:
            print(describe("  /profile meanwhile", others))

        if args.burst:
            burst_emails = [emails[i % len(emails)] for i in range(args.burst)]
            with PeakRss(rss.process.pid) as peak:
                started = time.perf_counter()
                results3 = await asyncio.gather(*(timed_login(client, e) for e in burst_emails))
                wall = time.perf_counter() - started
            statuses = [s for _, s in results3]
            print(
                f"burst of {args.burst}: {wall:.1f} s, statuses "
                f"{ {s: statuses.count(s) for s in set(statuses)} }; peak RSS "
                f"{peak.peak / 2**20:.0f} MiB (+{(peak.peak - idle_rss) / 2**20:.0f} MiB)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--sequential", type=int, default=20)
    parser.add_argument("--burst", type=int, default=0)
    parser.add_argument("--pool-size", type=int, default=0, help="KEEL_HASH_POOL_SIZE")
    parser.add_argument(
        "--queue-timeout", type=float, default=0, help="KEEL_HASH_QUEUE_TIMEOUT_SECONDS"
    )
    args = parser.parse_args()

    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        env = {
            **os.environ,
            "KEEL_ENV": "development",
            "KEEL_DATA_DIR": data,
            "KEEL_PORT": str(port),
            "KEEL_HOST": "127.0.0.1",
            "KEEL_LOG_LEVEL": "WARNING",
            "KEEL_RATE_LIMIT_ENABLED": "false",
            "KEEL_LOGIN_MAX_FAILURES_PER_IP": "100000",
            # Production Argon2 parameters, set explicitly so an .env cannot lower them.
            "KEEL_ARGON2_MEMORY_KIB": "65536",
            "KEEL_ARGON2_TIME_COST": "3",
            "KEEL_ARGON2_PARALLELISM": "4",
        }
        env.pop("KEEL_DATABASE_URL", None)
        env.pop("KEEL_REDIS_URL", None)
        if args.pool_size:
            env["KEEL_HASH_POOL_SIZE"] = str(args.pool_size)
        if args.queue_timeout:
            env["KEEL_HASH_QUEUE_TIMEOUT_SECONDS"] = str(args.queue_timeout)
        server = subprocess.Popen([sys.executable, "-m", "keel", "serve"], env=env, cwd=ROOT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("server did not start")
                time.sleep(0.2)
            print(
                f"Argon2id m=64 MiB t=3 p=4, hash pool "
                f"{args.pool_size or os.cpu_count()} threads, {os.cpu_count()} CPUs, "
                f"queue timeout {args.queue_timeout or 5} s"
            )
            asyncio.run(run(args, base, PeakRss(server.pid)))
        finally:
            server.terminate()
            server.wait(timeout=20)


if __name__ == "__main__":
    main()
