#!/usr/bin/env bash
# Contract test: schemathesis fuzzes a real Keel server against Keel's own OpenAPI schema.
# Fails on any 5xx, any response that breaks the schema, wrong status codes or content types.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
WORK=$(mktemp -d)
PORT=$($BIN/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export KEEL_ENV=test KEEL_DATA_DIR="$WORK" KEEL_PORT="$PORT" KEEL_LOG_LEVEL=WARNING
export KEEL_RATE_LIMIT_ENABLED=false KEEL_ACCESS_TOKEN_TTL_SECONDS=7200
export KEEL_ARGON2_MEMORY_KIB=1024 KEEL_ARGON2_TIME_COST=1 KEEL_ARGON2_PARALLELISM=1
unset KEEL_DATABASE_URL KEEL_REDIS_URL

$BIN/python -m keel migrate >/dev/null
$BIN/python -m keel serve >"$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; wait $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

BASE="http://127.0.0.1:$PORT"
for _ in $(seq 1 50); do
  curl -fsS "$BASE/health" >/dev/null 2>&1 && break
  sleep 0.2
done

TOKEN=$($BIN/python - "$BASE" <<'PY'
import sys, httpx
r = httpx.post(sys.argv[1] + "/api/v1/auth/register",
               json={"email": "contract@example.com", "password": "contract-tests-password",
                     "name": "Contract"})
r.raise_for_status()
print(r.json()["accessToken"])
PY
)

$BIN/st run "$BASE/openapi.json" \
  --header "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
  --max-examples "${CONTRACT_MAX_EXAMPLES:-40}" \
  --workers 2 \
  --max-time "${CONTRACT_MAX_SECONDS:-600}" \
  --seed 20261125
status=$?
if grep -q '"unhandled_error"' "$WORK/server.log"; then
  echo "server logged unhandled errors during the contract run:"; grep '"unhandled_error"' "$WORK/server.log" | head -5
  exit 1
fi
exit $status
