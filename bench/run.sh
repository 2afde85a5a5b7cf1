#!/usr/bin/env bash
# `make bench`: load-test Keel (PostgreSQL + Redis, then SQLite) and the raw baseline with wrk,
# and write bench/results/latest.{md,json}, then the real-time, gRPC, tracing, webhook, login-flood
# and overload scenarios (bench/results/). About 15 minutes on a 2-core machine (2026-12-02).
# Each scenario first waits for a quiet machine (bench/quiet.py).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
  echo "bench: wrk is not installed; installing it with apt-get (needs root or sudo)"
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get install -y wrk >/dev/null 2>&1 || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y wrk >/dev/null; }
  echo "bench: installed $(wrk -v 2>&1 | head -n1)"
fi

PY=.venv/bin/python
export BENCH_PG_URL="${BENCH_PG_URL:-postgresql://postgres@127.0.0.1:5432}"
export BENCH_REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379/6}"

if [ -z "${BENCH_BACKENDS:-}" ]; then
  # The scaled-out shape needs the machine's PostgreSQL and Redis; without them, SQLite only.
  if "$PY" - <<'PY'
import asyncio, os, sys
import asyncpg, redis
async def check():
    conn = await asyncpg.connect(os.environ["BENCH_PG_URL"] + "/postgres", timeout=5)
    await conn.close()
try:
    asyncio.run(check())
    redis.Redis.from_url(os.environ["BENCH_REDIS_URL"], socket_timeout=5).ping()
except Exception as exc:
    print(f"bench: PostgreSQL/Redis not reachable ({exc}); benchmarking SQLite only")
    sys.exit(1)
PY
  then export BENCH_BACKENDS="postgres,sqlite"; else export BENCH_BACKENDS="sqlite"; fi
fi

"$PY" bench/quiet.py "the REST runs"
timeout 900 "$PY" bench/driver.py

# Real-time: idle WebSocket capacity and commit-to-delivery latency (one instance).
echo "bench: real-time scenario (${BENCH_WS_CONNECTIONS:-10000} idle WebSockets, 1000 subscribers)"
RT_ARGS=(--connections "${BENCH_WS_CONNECTIONS:-10000}")
if [[ "$BENCH_BACKENDS" == *postgres* ]]; then
  "$PY" - <<'PY'
import asyncio, os, asyncpg
async def recreate():
    conn = await asyncpg.connect(os.environ["BENCH_PG_URL"] + "/postgres")
    name = os.environ.get("BENCH_PG_DB", "keel_bench") + "_realtime"
    await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()
asyncio.run(recreate())
PY
  RT_ARGS+=(--database-url "postgresql+asyncpg://${BENCH_PG_URL#postgresql://}/${BENCH_PG_DB:-keel_bench}_realtime"
            --redis-url "$BENCH_REDIS_URL")
fi
"$PY" bench/quiet.py "the real-time run"
timeout 600 "$PY" bench/realtime_bench.py "${RT_ARGS[@]}" | tee bench/results/realtime.txt
if [[ "$BENCH_BACKENDS" == *postgres* ]]; then
  echo "bench: commit -> delivery across two instances (half the subscribers on each)"
  "$PY" bench/quiet.py "the two-instance run"
  timeout 600 "$PY" bench/realtime_bench.py "${RT_ARGS[@]}" --instances 2 --connections 100 \
    | tee -a bench/results/realtime.txt
fi

# gRPC beside REST: unary GetProject and GET /api/v1/projects/{id}, same driver, same run.
echo "bench: gRPC GetProject beside REST GET /projects/{id}"
GRPC_ARGS=()
if [[ "$BENCH_BACKENDS" == *postgres* ]]; then
  "$PY" - <<'PY'
import asyncio, os, asyncpg
async def recreate():
    conn = await asyncpg.connect(os.environ["BENCH_PG_URL"] + "/postgres")
    await conn.execute("DROP DATABASE IF EXISTS keel_bench_grpc WITH (FORCE)")
    await conn.execute("CREATE DATABASE keel_bench_grpc")
    await conn.close()
asyncio.run(recreate())
PY
  GRPC_ARGS+=(--database-url "postgresql+asyncpg://${BENCH_PG_URL#postgresql://}/keel_bench_grpc"
              --redis-url "$BENCH_REDIS_URL")
fi
"$PY" bench/quiet.py "the gRPC run"
timeout 600 "$PY" bench/grpc_bench.py "${GRPC_ARGS[@]}" | tee bench/results/grpc.txt

# Tracing: the same reads with KEEL_OTEL_EXPORTER_OTLP_ENDPOINT off and on, in one run.
echo "bench: tracing scenario (off vs on)"
"$PY" bench/quiet.py "the tracing run"
timeout 300 "$PY" bench/tracing_bench.py

# Webhooks at the size of SPEC §10: 1 000 events to 10 endpoints, each project's events in
# order at every endpoint (the suite runs the same test at 60 events to 3 endpoints).
echo "bench: webhooks, 1000 events to 10 endpoints (SQLite)"
"$PY" bench/quiet.py "the webhook run"
KEEL_TEST_ORDER_EVENTS=1000 KEEL_TEST_ORDER_ENDPOINTS=10 timeout 1200 "$PY" -m pytest \
  tests/webhooks/test_order.py -p no:cacheprovider -o timeout=1000 --durations=1 \
  | tee bench/results/webhooks.txt

# Login flood with reads alongside (SPEC §7, issue 11): the list at 16 connections alone, then
# beside 50 connections signing in at the production Argon2 cost.
echo "bench: login flood with reads alongside"
FLOOD_BACKEND=sqlite
if [[ "$BENCH_BACKENDS" == *postgres* ]]; then FLOOD_BACKEND=postgres; fi
"$PY" bench/quiet.py "the login flood"
timeout 300 "$PY" bench/login_flood_bench.py "$FLOOD_BACKEND" "${BENCH_DURATION:-8}"

# Many connections (SPEC §7, issue 11): the list at 256 and 1024 connections, Keel beside the
# raw floor; at 1024 the overload guard should answer the excess with fast 503s.
if [[ "$BENCH_BACKENDS" == *postgres* ]]; then
  echo "bench: the list at 256 and 1024 connections"
  "$PY" bench/quiet.py "the many-connection runs"
  timeout 300 "$PY" bench/overload_bench.py "${BENCH_DURATION:-8}"
fi
