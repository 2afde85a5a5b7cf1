#!/usr/bin/env bash
# Contract test: schemathesis fuzzes a real Keel server against Keel's own OpenAPI schema,
# and /graphql against its GraphQL schema (no 5xx).
# Fails on any 5xx, any response that breaks the schema, wrong status codes or content types.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
WORK=$(mktemp -d)
PORT=$($BIN/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export KEEL_ENV=test KEEL_DATA_DIR="$WORK" KEEL_PORT="$PORT" KEEL_LOG_LEVEL=WARNING
# The fuzzer is one client sending thousands of requests, many of them failed logins: rate
# limits and brute-force lockout would turn most answers into 429s and test nothing.
export KEEL_RATE_LIMIT_ENABLED=false KEEL_ACCESS_TOKEN_TTL_SECONDS=7200
export KEEL_LOGIN_MAX_FAILURES_PER_ACCOUNT=1000000 KEEL_LOGIN_MAX_FAILURES_PER_IP=1000000
export KEEL_LOGIN_FAILURE_DELAY_MAX_SECONDS=0
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

token() {  # register (or with "admin", create via the CLI and sign in) and print a token
  $BIN/python - "$BASE" "$1" <<'PY'
import subprocess, sys, uuid, httpx
base, kind = sys.argv[1], sys.argv[2]
email = f"{kind}-{uuid.uuid4().hex[:8]}@example.com"
password = "contract-tests-password"
if kind == "admin":
    subprocess.run([sys.executable, "-m", "keel", "create-admin", "--email", email,
                    "--password", password, "--name", "Contract Admin"], check=True,
                   capture_output=True)
    r = httpx.post(base + "/api/v1/auth/login", json={"email": email, "password": password})
else:
    r = httpx.post(base + "/api/v1/auth/register",
                   json={"email": email, "password": password, "name": "Contract"})
r.raise_for_status()
print(r.json()["accessToken"])
PY
}

fuzz() {  # fuzz with one token; the remaining arguments select operations
  local bearer=$1; shift
  $BIN/st run "$BASE/openapi.json" \
    --header "Authorization: Bearer $bearer" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --max-examples "${CONTRACT_MAX_EXAMPLES:-25}" \
    --workers 1 \
    --max-time "${CONTRACT_MAX_SECONDS:-150}" \
    --seed 20261125 \
    "$@"
}

# Operations that end the caller's own session would log the fuzzer out half-way: they get a
# pass of their own, last. Admin-only operations are fuzzed with an admin token.
SELF_ENDING='^/api/v1/auth/(sessions/|password|account|logout)'
ADMIN_ONLY='^/api/v1/(users|audit)'
USER_TOKEN=$(token user)
ADMIN_TOKEN=$(token admin)
LAST_TOKEN=$(token user)
status=0
echo "--- pass 1: everything a signed-in user does"
# One regex: given twice, the option keeps only the last.
fuzz "$USER_TOKEN" --exclude-path-regex "($SELF_ENDING)|($ADMIN_ONLY)" || { echo "pass 1 exit $?"; status=1; }
echo "--- pass 2: admin operations"
fuzz "$ADMIN_TOKEN" --include-path-regex "$ADMIN_ONLY" || { echo "pass 2 exit $?"; status=1; }
echo "--- pass 3: operations that end the caller's session"
fuzz "$LAST_TOKEN" --include-path-regex "$SELF_ENDING" || { echo "pass 3 exit $?"; status=1; }
echo "--- pass 4: GraphQL (/graphql), queries and mutations from its introspected schema"
GRAPHQL_TOKEN=$(token user)
PYTHONPATH=. SCHEMATHESIS_HOOKS=scripts.graphql_contract_checks $BIN/st run "$BASE/graphql" \
  --header "Authorization: Bearer $GRAPHQL_TOKEN" \
  --checks no_graphql_server_error \
  --max-examples "${CONTRACT_MAX_EXAMPLES:-25}" \
  --workers 1 \
  --max-time "${CONTRACT_MAX_SECONDS:-150}" \
  --seed 20261125 || { echo "pass 4 exit $?"; status=1; }

if grep -q '"unhandled_error"' "$WORK/server.log"; then
  echo "server logged unhandled errors during the contract run:"
  grep '"unhandled_error"' "$WORK/server.log" | head -5 | cut -c1-2000
  status=1
fi
exit $status
