"""Many connections (issue 11, SPEC §7): the authenticated list at 256 and 1024 connections,
Keel (`--workers 2`, PostgreSQL + Redis) beside the raw floor (bench/baseline) on one machine.

Targets: at 256 connections p99 < 500 ms and no socket errors; at 1024 the excess gets fast
503s (the overload guard) while the admitted requests keep p99 < 1 s. wrk keeps one
latency histogram for every response, 503s included, so the admitted p99 comes from pairing
each request with its answer by X-Request-ID (bench/lua/common.lua).

Usage: .venv/bin/python bench/overload_bench.py [seconds]
Writes bench/results/overload.md.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import driver

CONNECTIONS = [256, 1024]


def run(server: driver.Server, fx: driver.Fixture, seconds: int) -> dict[int, dict[str, Any]]:
    script, args = driver.scenario_call("list", fx)
    driver.wrk(server.url, script, args, 16, 2)  # warm-up
    out = {}
    for conns in CONNECTIONS:
        cpu_before = driver.cpu_seconds(server.process.pid)
        data = driver.wrk(server.url, script, args, conns, seconds, track_admitted=True)
        cpu = driver.cpu_seconds(server.process.pid) - cpu_before
        data["cpu_us"] = cpu / max(1, data["requests"]) * 1e6
        out[conns] = data
        driver.log(f"list c={conns}: {data['rps']:.0f} req/s, {data['latency_us']}")
        time.sleep(2)  # let the previous run's connections close
    return out


def keel(seconds: int) -> tuple[dict[int, dict[str, Any]], driver.Fixture]:
    driver.reset_postgres()
    driver.reset_redis()
    url = f"postgresql+asyncpg://{driver.PG_ADMIN.split('://', 1)[1]}/{driver.PG_DB}"
    # Settings to try, e.g. OVERLOAD_ENV="KEEL_OVERLOAD_QUEUE_TIMEOUT_MS=250".
    extra = dict(
        pair.partition("=")[::2]
        for pair in filter(None, os.environ.get("OVERLOAD_ENV", "").split(","))
    )
    server = driver.start_keel("keel-overload", url, driver.REDIS_URL, extra)
    try:
        fx = driver.seed(server.url, "overload")
        return run(server, fx, seconds), fx
    finally:
        server.stop()


def floor(fx: driver.Fixture, seconds: int) -> dict[int, dict[str, Any]]:
    server = driver.start_baseline("baseline-overload")
    try:
        return run(server, fx, seconds)
    finally:
        server.stop()


def row(target: str, conns: int, data: dict[str, Any]) -> str:
    lat = data["latency_us"]
    return (
        f"| {target} | {conns} | {data['rps']:.0f} | {data['ok_rps']:.0f} | "
        f"{lat['mean'] / 1000:.0f} | {lat['p99'] / 1000:.0f} | {lat['admitted_p99'] / 1000:.0f} | "
        f"{lat['admitted_mean'] / 1000:.0f} | {conns / max(1.0, data['rps']) * 1000:.0f} | "
        f"{data['errors']['status']} | {driver.socket_errors(data)} | {data['cpu_us']:.0f} |"
    )


def main() -> None:
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    driver.WORK.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    ours, fx = keel(seconds)
    if os.environ.get("OVERLOAD_KEEL_ONLY"):
        return
    base = floor(fx, seconds)
    at256, at1024 = ours[256], ours[1024]
    lat = at1024["latency_us"]
    lost256, lost1024 = driver.socket_errors(at256), driver.socket_errors(at1024)
    refused = f"{lat['refused']} ({lat['refused_p99'] / 1000:.0f} ms p99)"
    checks = [
        ("256: p99 < 500 ms", f"{at256['latency_us']['admitted_p99'] / 1000:.0f} ms",
         at256["latency_us"]["admitted_p99"] < 500_000 and at256["errors"]["status"] == 0),
        ("256: no socket errors", str(lost256), lost256 == 0),
        ("1024: no timeouts, no socket errors", str(lost1024), lost1024 == 0),
        ("1024: admitted p99 < 1 s", f"{lat['admitted_p99'] / 1000:.0f} ms",
         lat["admitted_p99"] < 1_000_000),
        ("1024: refused (503 + Retry-After) within 1 s, if any", refused,
         lat["refused"] == 0 or lat["refused_p99"] < 1_000_000),
    ]  # fmt: skip
    lines = [
        "# Many connections: the list at 256 and 1024 connections",
        "",
        f"Generated {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} by "
        f"`bench/overload_bench.py {seconds}`: GET /api/v1/projects, Keel `--workers 2` on "
        "PostgreSQL + Redis (overload guard at its defaults) and the raw floor "
        "(bench/baseline, `--workers 2`), wrk -t2 on the same 2-core machine. Load average "
        f"at start {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}.",
        "",
        "| target | conns | req/s | ok/s | mean ms (wrk) | p99 ms (wrk) | 2xx p99 ms | "
        "2xx mean ms | conns ÷ req/s ms | non-2xx | socket errors | CPU µs/req |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *(row("keel", c, ours[c]) for c in CONNECTIONS),
        *(row("floor", c, base[c]) for c in CONNECTIONS),
        "",
        "| check (keel) | value | ok |",
        "|---|---|---|",
        *(f"| {name} | {value} | {'yes' if ok else '**no**'} |" for name, value, ok in checks),
        "",
        "Non-2xx are the overload guard's 503s (with Retry-After): a request waits at most "
        "KEEL_OVERLOAD_QUEUE_TIMEOUT_MS (500) for a place, so when Keel keeps up with every "
        "connection inside that wait there is no excess and no 503. The 2xx columns are the "
        "answers the service admitted, each paired with its request by X-Request-ID (Keel and "
        "the floor echo it). wrk's own histogram holds every answer, 503s included. Where every "
        "answer is a 2xx, Little's law fixes the mean at connections ÷ throughput at most: "
        "the paired mean meets it and wrk's comes out above it, so wrk's histogram is not "
        "trusted for the checks (its p99 is shown for comparison only).",
    ]
    out = driver.BENCH / "results" / "overload.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
