"""`make bench`: drive Keel (PostgreSQL + Redis, then SQLite) and the baseline with wrk.

Each server runs as `--workers 2` on 127.0.0.1; wrk (2 threads) drives it from the same
machine. Between scenarios the driver scrapes /metrics for the cache hit rate and samples the
server's process tree for peak RSS. Writes bench/results/latest.{json,md}.

Environment knobs: BENCH_DURATION (seconds per run, default 8), BENCH_CONNECTIONS
("64,256"), BENCH_BACKENDS ("postgres,sqlite"), BENCH_SCENARIOS (a subset, e.g. "get,create",
for a quick A/B; the report then checks only what ran), BENCH_PG_URL, BENCH_REDIS_URL.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = BENCH / ".work"
RESULTS = BENCH / "results"
LUA = BENCH / "lua"
PYTHON = sys.executable

DURATION = int(os.environ.get("BENCH_DURATION", "8"))
CONNECTIONS = [int(c) for c in os.environ.get("BENCH_CONNECTIONS", "64,256").split(",")]
BACKENDS = os.environ.get("BENCH_BACKENDS", "postgres,sqlite").split(",")
PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")
PG_DB = os.environ.get("BENCH_PG_DB", "keel_bench_pg")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")
SEED_PROJECTS = 200
PASSWORD = "bench password 2026 correct horse"
SECRET = secrets.token_urlsafe(48)

# Reads first: writes change what the reads see (list tokens are renewed by every create).
SCENARIOS = [
    ("list", "GET /api/v1/projects"),
    ("graphql_list", "POST /graphql `projects(first: 20)` (the list's fields)"),
    ("get", "GET /api/v1/projects/{id}"),
    ("profile", "GET /api/v1/auth/profile"),
    ("create", "POST /api/v1/projects"),
    ("login", "POST /api/v1/auth/login (Argon2id 64 MiB, t=3, p=4)"),
]
READ_SCENARIOS = {"list", "get", "profile"}
ONLY = set(filter(None, os.environ.get("BENCH_SCENARIOS", "").split(",")))


def chosen(names: list[str]) -> list[str]:
    return [name for name in names if not ONLY or name in ONLY]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=8)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(name: str, argv: list[str], env: dict[str, str], port: int) -> Server:
    log_path = WORK / f"{name}.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=out, cwd=ROOT)
    server = Server(name, process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(server.url + "/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{name} did not start:\n{log_path.read_text()[-3000:]}")


class RssSampler:
    """Peak resident memory of a process and its children (the workers) while running."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        total = 0
        for proc in [self.root, *self.root.children(recursive=True)]:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(0.25)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a server and its workers: per request, a load-independent cost."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def cache_counters(url: str) -> dict[str, float]:
    try:
        text = httpx.get(url + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    counters: dict[str, float] = {}
    for name, layer, value in re.findall(
        r'^(cache_hits_total|cache_misses_total)\{cache_layer="(\w+)"\} ([0-9.e+]+)$', text, re.M
    ):
        counters[f"{name}:{layer}"] = counters.get(f"{name}:{layer}", 0.0) + float(value)
    return counters


def hit_rate(before: dict[str, float], after: dict[str, float]) -> float | None:
    def delta(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    lookups = delta("cache_hits_total:l1") + delta("cache_misses_total:l1")
    if lookups <= 0:
        return None
    # Scrapes are not atomic across worker files, so an L2 hit may land before its L1 miss.
    return min(1.0, (delta("cache_hits_total:l1") + delta("cache_hits_total:l2")) / lookups)


def socket_errors(data: dict[str, Any]) -> int:
    """Requests of a wrk run that got no answer: connect, read, write errors and timeouts."""
    e = data["errors"]
    return int(e["connect"] + e["read"] + e["write"] + e["timeout"])


def wrk(
    url: str,
    script: str,
    args: list[str],
    connections: int,
    duration: int,
    *,
    track_admitted: bool = False,
) -> dict[str, Any]:
    """One wrk run; `track_admitted` pairs requests with answers by X-Request-ID so that
    `latency_us.admitted_p99` is the exact p99 of the non-error answers (bench/lua/common.lua)."""
    argv = [
        "wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
        "-s", str(LUA / script), url, "--", *args,
    ]  # fmt: skip
    env = {
        **os.environ,
        "BENCH_LUA_DIR": str(LUA),
        "BENCH_TRACK_ADMITTED": str(int(track_admitted)),
    }
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("WRK_JSON "))
    data: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    seconds = data["duration_us"] / 1e6
    e = data["errors"]
    # `requests` counts responses; timeouts and socket errors are attempts without one.
    attempts = data["requests"] + e["timeout"] + e["connect"]
    failed = e["status"] + socket_errors(data)
    data["rps"] = data["requests"] / seconds if seconds else 0.0
    data["ok_rps"] = (
        max(0, data["requests"] - e["status"] - e["read"]) / seconds if seconds else 0.0
    )
    data["error_rate"] = min(1.0, failed / attempts) if attempts else 1.0
    return data


@dataclass
class Fixture:
    token: str
    email: str
    list_file: Path
    ids_file: Path
    profile_file: Path


def seed(url: str, tag: str) -> Fixture:
    """One user with SEED_PROJECTS projects, created through the API like any client."""
    email = f"bench-{tag}-{secrets.token_hex(4)}@example.com"
    with httpx.Client(base_url=url, timeout=30) as http:
        response = http.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Bench"}
        )
        response.raise_for_status()
        token = response.json()["accessToken"]
        headers = {"Authorization": f"Bearer {token}"}

        async def create_all() -> list[str]:
            async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as client:
                sem = asyncio.Semaphore(16)

                async def one(n: int) -> str:
                    async with sem:
                        r = await client.post(
                            "/api/v1/projects",
                            json={"name": f"Seed project {n}", "description": f"seeded {n}"},
                        )
                        r.raise_for_status()
                        return str(r.json()["id"])

                return await asyncio.gather(*(one(n) for n in range(SEED_PROJECTS)))

        ids = asyncio.run(create_all())
        listing = http.get("/api/v1/projects", headers=headers)
        listing.raise_for_status()
        assert listing.json()["pagination"]["total"] == SEED_PROJECTS, listing.text[:300]
    list_file = WORK / f"{tag}-list.txt"
    list_file.write_text("/api/v1/projects\n")
    ids_file = WORK / f"{tag}-ids.txt"
    ids_file.write_text("".join(f"/api/v1/projects/{i}\n" for i in ids))
    profile_file = WORK / f"{tag}-profile.txt"
    profile_file.write_text("/api/v1/auth/profile\n")
    return Fixture(token, email, list_file, ids_file, profile_file)


# The same page as the REST list: 20 projects with the fields REST shows, and the page info.
GRAPHQL_LIST = (
    "{ projects(first: 20) { totalCount pageInfo { hasNextPage endCursor } "
    "edges { node { id name description status createdAt updatedAt } } } }"
)


def scenario_call(name: str, fx: Fixture) -> tuple[str, list[str]]:
    if name == "graphql_list":
        body = WORK / "graphql-list.json"
        body.write_text(json.dumps({"query": GRAPHQL_LIST}))
        return "graphql.lua", [fx.token, str(body)]
    if name == "list":
        return "auth_get.lua", [fx.token, str(fx.list_file)]
    if name == "get":
        return "auth_get.lua", [fx.token, str(fx.ids_file)]
    if name == "profile":
        return "auth_get.lua", [fx.token, str(fx.profile_file)]
    if name == "create":
        return "create.lua", [fx.token]
    return "login.lua", [fx.email, PASSWORD]


@dataclass
class Result:
    target: str
    scenario: str
    connections: int
    rps: float
    ok_rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    error_rate: float
    errors: dict[str, int]
    requests: int
    peak_rss_mb: float
    cache_hit_rate: float | None
    cpu_us_per_request: float | None = None
    ratio_to_baseline: float | None = None
    cpu_ratio_to_baseline: float | None = None  # baseline CPU/request over Keel's: load-proof
    extra: dict[str, Any] = field(default_factory=dict)


def measure(server: Server, target: str, fx: Fixture, scenarios: list[str]) -> list[Result]:
    results = []
    # Warm-up: imports, pools and caches, so the first measured run is not a cold start.
    script, args = scenario_call("list", fx)
    wrk(server.url, script, args, 16, 2)
    for name in scenarios:
        for conns in CONNECTIONS:
            script, args = scenario_call(name, fx)
            before = cache_counters(server.url)
            cpu_before = cpu_seconds(server.process.pid)
            with RssSampler(server.process.pid) as rss:
                data = wrk(server.url, script, args, conns, DURATION)
            cpu = cpu_seconds(server.process.pid) - cpu_before
            after = cache_counters(server.url)
            lat = data["latency_us"]
            result = Result(
                target=target,
                scenario=name,
                connections=conns,
                rps=round(data["rps"], 1),
                ok_rps=round(data["ok_rps"], 1),
                p50_ms=lat["p50"] / 1000,
                p95_ms=lat["p95"] / 1000,
                p99_ms=lat["p99"] / 1000,
                error_rate=data["error_rate"],
                errors=data["errors"],
                requests=data["requests"],
                peak_rss_mb=round(rss.peak / 2**20, 1),
                cache_hit_rate=hit_rate(before, after) if target != "baseline" else None,
                cpu_us_per_request=round(cpu / data["requests"] * 1e6)
                if data["requests"]
                else None,
            )
            log(
                f"{target:9} {name:8} c={conns:<4} {result.rps:8.1f} req/s  "
                f"p50 {result.p50_ms:7.1f}  p95 {result.p95_ms:7.1f}  p99 {result.p99_ms:7.1f} ms  "
                f"err {result.error_rate:.2%}  rss {result.peak_rss_mb} MB  "
                f"cpu {result.cpu_us_per_request} us/req  "
                f"hit {'-' if result.cache_hit_rate is None else round(result.cache_hit_rate, 3)}"
            )
            results.append(result)
    return results


def keel_env(database_url: str, redis_url: str | None, data_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "KEEL_ENV": "production",
        "KEEL_SECRET_KEY": SECRET,
        "KEEL_DATABASE_URL": database_url,
        "KEEL_DATA_DIR": str(data_dir),
        "KEEL_ALLOW_SQLITE_IN_PRODUCTION": "true",
        "KEEL_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "INFO"),
        "KEEL_ACCESS_TOKEN_TTL_SECONDS": "3600",
        # Limits stay on (their cost is part of the measurement) but far above the load.
        "KEEL_RATE_LIMIT_ANONYMOUS": "100000000/15minutes",
        "KEEL_RATE_LIMIT_AUTHENTICATED": "100000000/15minutes",
        "KEEL_RATE_LIMIT_AUTH_ENDPOINTS": "100000000/15minutes",
        "KEEL_LOGIN_MAX_FAILURES_PER_IP": "1000000",
        # Production Argon2 parameters (the defaults), stated for the record.
        "KEEL_ARGON2_MEMORY_KIB": "65536",
        "KEEL_ARGON2_TIME_COST": "3",
        "KEEL_ARGON2_PARALLELISM": "4",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if redis_url:
        env["KEEL_REDIS_URL"] = redis_url
    else:
        env.pop("KEEL_REDIS_URL", None)
    return env


def reset_postgres() -> str:
    import asyncpg

    async def run() -> str:
        conn = await asyncpg.connect(PG_ADMIN + "/postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{PG_DB}"')
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    return asyncio.run(run())


def reset_redis() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    version = str(client.info("server")["redis_version"])
    client.close()
    return version


def migrate(env: dict[str, str]) -> None:
    subprocess.run([PYTHON, "-m", "keel", "migrate"], env=env, cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip


def start_keel(
    name: str, database_url: str, redis_url: str | None, extra_env: dict[str, str] | None = None
) -> Server:
    """A migrated Keel with `--workers 2` and a fresh data directory."""
    data_dir = WORK / f"data-{name}"
    shutil.rmtree(data_dir, ignore_errors=True)
    env = {**keel_env(database_url, redis_url, data_dir), **(extra_env or {})}
    migrate(env)
    port = free_port()
    argv = [PYTHON, "-m", "keel", "serve", "--workers", "2", "--port", str(port)]
    return start_server(name, argv, env, port)


def run_keel(target: str, database_url: str, redis_url: str | None) -> list[Result]:
    server = start_keel(f"keel-{target}", database_url, redis_url)
    try:
        log(f"seeding {target}: 1 user, {SEED_PROJECTS} projects")
        fx = seed(server.url, target)
        return measure(server, target, fx, chosen([name for name, _ in SCENARIOS]))
    finally:
        server.stop()


def start_baseline(name: str) -> Server:
    """The raw floor (bench/baseline, `--workers 2`) on the PostgreSQL database Keel seeded."""
    port = free_port()
    base_env = {
        **os.environ,
        "KEEL_SECRET_KEY": SECRET,
        "BASELINE_DSN": f"{PG_ADMIN}/{PG_DB}",
        "PYTHONPATH": str(ROOT),
    }
    argv = [
        PYTHON, "-m", "uvicorn", "bench.baseline.app:app", "--workers", "2", "--port", str(port),
        "--host", "127.0.0.1", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return start_server(name, argv, base_env, port)


def run_baseline(keel_url_for_seed: str | None) -> list[Result]:
    """The baseline against the PostgreSQL database (seeded through a short-lived Keel)."""
    database_url = f"postgresql+asyncpg://{PG_ADMIN.split('://', 1)[1]}/{PG_DB}"
    env = keel_env(database_url, REDIS_URL, WORK / "data-baseline-seed")
    port = free_port()
    keel = start_server(
        "keel-seed", [PYTHON, "-m", "keel", "serve", "--port", str(port)], env, port
    )
    try:
        fx = seed(keel.url, "baseline")
    finally:
        keel.stop()
    server = start_baseline("baseline")
    try:
        return measure(server, "baseline", fx, chosen(["list", "get", "profile", "create"]))
    finally:
        server.stop()


def machine_info(pg_version: str | None, redis_version: str | None) -> dict[str, Any]:
    cpu_model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    packages = ["fastapi", "starlette", "uvicorn", "sqlalchemy", "asyncpg", "redis", "pyjwt",
                "orjson", "limits", "prometheus-client", "argon2-cffi", "uvloop"]  # fmt: skip
    wrk_out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    wrk_version = (wrk_out.stdout or wrk_out.stderr).split("\n")[0]
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "postgresql": pg_version,
        "redis": redis_version,
        "wrk": wrk_version.strip(),
        "packages": {p: metadata.version(p) for p in packages},
        "load_average_start": LOAD_AT_START,
    }


def slo_checks(results: list[Result]) -> list[dict[str, Any]]:
    def find(target: str, scenario: str, conns: int) -> Result | None:
        return next(
            (r for r in results
             if (r.target, r.scenario, r.connections) == (target, scenario, conns)),
            None,
        )  # fmt: skip

    checks: list[dict[str, Any]] = []
    for target in ("postgres", "sqlite"):
        lst = find(target, "list", 64)
        if lst is None:
            continue
        checks.append({"check": f"{target}: list p95 < 100 ms @64", "value": lst.p95_ms,
                       "ok": lst.p95_ms < 100})  # fmt: skip
        checks.append({"check": f"{target}: list p99 < 200 ms @64", "value": lst.p99_ms,
                       "ok": lst.p99_ms < 200})  # fmt: skip
        reads = [find(target, s, 64) for s in ("list", "get", "profile")]
        best = min(r.rps for r in reads if r)
        checks.append({"check": f"{target}: authenticated reads >= 1000 req/s @64 (slowest)",
                       "value": best, "ok": best >= 1000})  # fmt: skip
        measured = READ_SCENARIOS | {"create"}
        worst_err = max(r.error_rate for r in results
                        if r.target == target and r.scenario in measured)  # fmt: skip
        checks.append({"check": f"{target}: error rate < 0.1 % (reads and create)",
                       "value": worst_err, "ok": worst_err < 0.001})  # fmt: skip
        if lst.cache_hit_rate is not None:
            hit = lst.cache_hit_rate
            checks.append({"check": f"{target}: cache hit rate > 80 % (list @64)",
                           "value": hit, "ok": hit > 0.8})  # fmt: skip
        if lst.ratio_to_baseline is not None:
            checks.append({"check": f"{target}: list >= 70 % of baseline req/s @64",
                           "value": lst.ratio_to_baseline,
                           "ok": lst.ratio_to_baseline >= 0.7})  # fmt: skip
        graphql = find(target, "graphql_list", 64)
        if graphql is not None and lst.rps:
            ratio = round(graphql.rps / lst.rps, 3)
            checks.append({"check": f"{target}: GraphQL projects(first: 20) >= 0.5 x REST list @64",
                           "value": ratio, "ok": ratio >= 0.5})  # fmt: skip
        if lst.cpu_ratio_to_baseline is not None:
            checks.append({"check": f"{target}: list CPU per request within 1/0.7 of baseline",
                           "value": lst.cpu_ratio_to_baseline,
                           "ok": lst.cpu_ratio_to_baseline >= 0.7})  # fmt: skip
    return checks


def write_report(results: list[Result], machine: dict[str, Any], started: float) -> None:
    baseline = {(r.scenario, r.connections): r for r in results if r.target == "baseline"}
    for r in results:
        base = baseline.get((r.scenario, r.connections))
        if r.target != "baseline" and base is not None and base.rps:
            r.ratio_to_baseline = round(r.rps / base.rps, 3)
            if base.cpu_us_per_request and r.cpu_us_per_request:
                r.cpu_ratio_to_baseline = round(base.cpu_us_per_request / r.cpu_us_per_request, 3)
    checks = slo_checks(results)
    machine["load_average_end"] = os.getloadavg()
    payload = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "duration_seconds_per_run": DURATION,
        "wall_seconds": round(time.monotonic() - started, 1),
        "machine": machine,
        "results": [r.__dict__ for r in results],
        "slo": checks,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(payload, indent=2) + "\n")

    lines = [
        "# Keel benchmark",
        "",
        f"Generated {payload['generated_at']} by `make bench` ({DURATION} s per run, wrk -t2, "
        f"servers with `--workers 2`, load generator on the same machine).",
        "",
        f"Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory_gb']} GB, "
        f"Python {machine['python']}, PostgreSQL {machine['postgresql']}, "
        f"Redis {machine['redis']}, {machine['wrk']}. Load average at start "
        f"{', '.join(f'{x:.2f}' for x in machine['load_average_start'])}, at end "
        f"{', '.join(f'{x:.2f}' for x in machine['load_average_end'])} "
        "(other work on the machine shares the CPUs; compare only figures from one run).",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in machine["packages"].items()) + ".",
        "",
        "| target | scenario | conns | req/s | ok/s | p50 ms | p95 ms | p99 ms | errors "
        "| peak RSS MB | CPU µs/req | cache hit | vs baseline req/s | vs baseline CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        hit = "—" if r.cache_hit_rate is None else f"{r.cache_hit_rate:.1%}"
        ratio = "—" if r.ratio_to_baseline is None else f"{r.ratio_to_baseline:.2f}"
        lines.append(
            f"| {r.target} | {r.scenario} | {r.connections} | {r.rps:.0f} | {r.ok_rps:.0f} "
            f"| {r.p50_ms:.1f} "
            f"| {r.p95_ms:.1f} | {r.p99_ms:.1f} | {r.error_rate:.2%} | {r.peak_rss_mb:.0f} "
            f"| {r.cpu_us_per_request or '—'} | {hit} | {ratio} "
            f"| {'—' if r.cpu_ratio_to_baseline is None else f'{r.cpu_ratio_to_baseline:.2f}'} |"
        )
    lines += ["", "Scenarios: " + "; ".join(f"`{n}` = {d}" for n, d in SCENARIOS) + ". "
              "The baseline (bench/baseline/app.py) runs on the PostgreSQL database; SQLite rows "
              "are compared with that same PostgreSQL baseline. `vs baseline CPU` is the "
              "baseline's server CPU per request divided by Keel's: unlike req/s it does not "
              "move with other load on the machine.", "",
              "## SLO checks (SPEC §7)", "", "| check | value | ok |", "|---|---|---|"]  # fmt: skip
    for c in checks:
        v = c["value"]
        shown = f"{v:.3f}" if isinstance(v, float) and v < 10 else f"{v:.1f}"
        lines.append(f"| {c['check']} | {shown} | {'yes' if c['ok'] else '**no**'} |")
    lines.append("")
    (RESULTS / "latest.md").write_text("\n".join(lines))
    log(f"report: {RESULTS / 'latest.md'}")


LOAD_AT_START = os.getloadavg()


def main() -> None:
    started = time.monotonic()
    WORK.mkdir(parents=True, exist_ok=True)
    pg_version = redis_version = None
    results: list[Result] = []
    if "postgres" in BACKENDS:
        pg_version = reset_postgres()
        redis_version = reset_redis()
        pg_url = f"postgresql+asyncpg://{PG_ADMIN.split('://', 1)[1]}/{PG_DB}"
        log("Keel on PostgreSQL + Redis")
        results += run_keel("postgres", pg_url, REDIS_URL)
        log("baseline (Starlette-free ASGI + asyncpg + PyJWT + orjson) on PostgreSQL")
        results += run_baseline(None)
    if "sqlite" in BACKENDS:
        log("Keel on SQLite (embedded shape)")
        db = WORK / "bench-sqlite.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        results += run_keel("sqlite", f"sqlite+aiosqlite:///{db}", None)
    write_report(results, machine_info(pg_version, redis_version), started)


if __name__ == "__main__":
    main()
