"""Login flood with reads alongside (issue 11, SPEC §7): what 50 connections signing in at
the production Argon2 cost do to the authenticated list served beside them.

One Keel (`--workers 2`, PostgreSQL + Redis or SQLite), wrk on the same machine:
  1. the list alone: GET /api/v1/projects at 16 connections;
  2. the same list while 50 connections POST /api/v1/auth/login without pause.
Targets: the list keeps p99 < 200 ms and >= half its throughput of step 1; logins run at
>= 4.5/s (half the machine's hashing limit, ~9/s on 2 cores when the issue was written). The
report also gives this machine's own limit: its cores over one hash's time, measured here
before the runs.

Usage: .venv/bin/python bench/login_flood_bench.py [postgres|sqlite] [seconds]
Writes bench/results/login-flood.md.
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import threading
import time
from typing import Any

import driver
from keel.platform.security import argon2id_raw

READERS = 16
LOGINS = 50


def row(name: str, data: dict[str, Any]) -> str:
    lat = data["latency_us"]
    return (
        f"| {name} | {data['rps']:.1f} | {data['ok_rps']:.1f} | {lat['p50'] / 1000:.1f} | "
        f"{lat['p99'] / 1000:.1f} | {lat['admitted_p99'] / 1000:.1f} | "
        f"{data['errors']['status']} | {driver.socket_errors(data)} |"
    )


def one_hash_seconds() -> float:
    """The median time of one production-cost hash on this machine, nothing else running."""
    times = []
    for _ in range(5):
        started = time.perf_counter()
        argon2id_raw(
            b"bench", secrets.token_bytes(16), time_cost=3, memory_kib=65536, lanes=4, hash_len=32
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    backend = sys.argv[1] if len(sys.argv) > 1 else "postgres"
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    driver.WORK.mkdir(parents=True, exist_ok=True)
    hash_seconds = one_hash_seconds()
    machine_limit = (os.cpu_count() or 1) / hash_seconds
    if backend == "postgres":
        driver.reset_postgres()
        driver.reset_redis()
        url = f"postgresql+asyncpg://{driver.PG_ADMIN.split('://', 1)[1]}/{driver.PG_DB}"
        redis_url: str | None = driver.REDIS_URL
    else:
        db = driver.WORK / "login-flood.db"
        db.unlink(missing_ok=True)
        url, redis_url = f"sqlite+aiosqlite:///{db}", None
    server = driver.start_keel("keel-login-flood", url, redis_url)
    try:
        fx = driver.seed(server.url, "flood")
        script, args = driver.scenario_call("list", fx)
        driver.log(f"list alone: {READERS} connections, {seconds} s")
        alone = driver.wrk(server.url, script, args, READERS, seconds, track_admitted=True)
        login_script, login_args = driver.scenario_call("login", fx)
        flood: dict[str, Any] = {}
        flooding = threading.Thread(
            target=lambda: flood.update(
                driver.wrk(server.url, login_script, login_args, LOGINS, seconds + 2)
            )
        )
        driver.log(f"list with {LOGINS} connections signing in: {seconds} s")
        flooding.start()
        time.sleep(1)  # the hash pool is busy before the list starts
        during = driver.wrk(server.url, script, args, READERS, seconds, track_admitted=True)
        flooding.join()
    finally:
        server.stop()

    kept = during["ok_rps"] / alone["ok_rps"] if alone["ok_rps"] else 0.0
    p99 = during["latency_us"]["admitted_p99"] / 1000
    logins = flood.get("ok_rps", 0.0)
    checks = [
        ("list p99 < 200 ms during the flood", f"{p99:.1f} ms", p99 < 200),
        ("list keeps >= 0.5 of its throughput", f"{kept:.2f}", kept >= 0.5),
        ("logins >= 4.5/s during the flood", f"{logins:.1f}/s", logins >= 4.5),
    ]
    lines = [
        "# Login flood with reads alongside",
        "",
        f"Generated {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} by "
        f"`bench/login_flood_bench.py {backend} {seconds}` ({backend}, `--workers 2`, wrk on "
        f"the same machine, load average {', '.join(f'{x:.2f}' for x in driver.LOAD_AT_START)}"
        " at start). Argon2id 64 MiB, t=3, p=4.",
        "",
        "| run | req/s | ok/s | p50 ms (wrk) | p99 ms (wrk) | 2xx p99 ms | non-2xx | "
        "socket errors |",
        "|---|---|---|---|---|---|---|---|",
        row(f"list @{READERS}, alone", alone),
        row(f"list @{READERS}, during the flood", during),
        row(f"login @{LOGINS} (the flood)", flood) if flood else "| login | failed | | | | | | |",
        "",
        "| check | value | ok |",
        "|---|---|---|",
        *(f"| {name} | {value} | {'yes' if ok else '**no**'} |" for name, value, ok in checks),
        "",
        f"This machine's hashing limit: one hash took {hash_seconds * 1000:.0f} ms (median of 5, "
        f"before the runs), so {os.cpu_count()} cores hash at most {machine_limit:.1f}/s; "
        f"half of that is {machine_limit / 2:.1f}/s, and the logins ran at "
        f"{logins / machine_limit:.2f} of the limit. Keel hashes one password at a time for the "
        "whole host (ADR 0020), so logins cannot pass half the limit on 2 cores.",
        "",
        "Login non-2xx are 503s from the hash queue (KEEL_HASH_QUEUE_TIMEOUT_SECONDS) or the "
        "overload guard: refusals, fast, with Retry-After. The 2xx p99 pairs each answer with "
        "its request by X-Request-ID (see bench/overload_bench.py for why wrk's own histogram "
        "is not used for the checks); logins are not paired, so their 2xx p99 is wrk's.",
    ]
    report = "\n".join(lines) + "\n"
    (driver.RESULTS / "login-flood.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
