"""Profile one scenario: Keel with one worker under wrk, sampled by py-spy.

Usage: .venv/bin/python bench/profile.py <scenario> [postgres|sqlite] [seconds]
Writes bench/.work/profile-<scenario>-<backend>.txt (py-spy --format raw, collapsed stacks).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading

import driver

scenario = sys.argv[1] if len(sys.argv) > 1 else "list"
backend = sys.argv[2] if len(sys.argv) > 2 else "postgres"
seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 10

driver.WORK.mkdir(parents=True, exist_ok=True)
if backend == "postgres":
    driver.reset_postgres()
    driver.reset_redis()
    url = f"postgresql+asyncpg://{driver.PG_ADMIN.split('://', 1)[1]}/{driver.PG_DB}"
    redis_url: str | None = driver.REDIS_URL
else:
    db = driver.WORK / "profile-sqlite.db"
    db.unlink(missing_ok=True)
    url, redis_url = f"sqlite+aiosqlite:///{db}", None
data_dir = driver.WORK / "data-profile"
shutil.rmtree(data_dir, ignore_errors=True)
env = driver.keel_env(url, redis_url, data_dir)
# Extra settings for an A/B comparison, e.g. PROFILE_ENV="KEEL_RATE_LIMIT_ENABLED=false".
for pair in filter(None, os.environ.get("PROFILE_ENV", "").split(",")):
    name, _, value = pair.partition("=")
    env[name] = value
driver.migrate(env)
port = driver.free_port()
server = driver.start_server(
    "keel-profile", [driver.PYTHON, "-m", "keel", "serve", "--port", str(port)], env, port
)
try:
    fx = driver.seed(server.url, "profile")
    out = driver.WORK / f"profile-{scenario}-{backend}.txt"
    spy = None if os.environ.get("PROFILE_NO_SPY") else subprocess.Popen(
        ["py-spy", "record", "--pid", str(server.process.pid), "--duration", str(seconds),
         "--format", "raw", "--rate", "200", "--output", str(out), "--nonblocking",
         *os.environ.get("PROFILE_SPY_ARGS", "").split()]
    )  # fmt: skip
    script, args = driver.scenario_call(scenario, fx)
    cpu_before = driver.cpu_seconds(server.process.pid)
    result: dict[str, object] = {}
    thread = threading.Thread(
        target=lambda: result.update(driver.wrk(server.url, script, args, 64, seconds))
    )
    thread.start()
    thread.join()
    if spy is not None:
        spy.wait()
    cpu = driver.cpu_seconds(server.process.pid) - cpu_before
    requests = int(result.get("requests", 0) or 0)  # type: ignore[call-overload]
    print(f"server CPU per request: {cpu / max(requests, 1) * 1e6:.0f} us ({requests} requests)")
    print(f"{scenario} {backend}: {result.get('rps', 0):.0f} req/s, {result.get('latency_us')}")
    print(f"profile: {out}")
finally:
    server.stop()
