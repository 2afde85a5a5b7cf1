#!/usr/bin/env bash
# Regenerate openapi.json and both clients from the app (`make clients`); CI runs this and
# fails when the result differs from the commit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
GENERATOR_VENV=${GENERATOR_VENV:-$ROOT/.venv-generator}
OPENAPI_PYTHON_CLIENT=openapi-python-client==0.29.1

KEEL_DATA_DIR=$(mktemp -d) "$PYTHON" -m keel openapi -o openapi.json

cd "$ROOT/clients/typescript"
test -d node_modules || npm ci --no-audit --no-fund
npm run --silent generate >/dev/null

# The Python generator lives in its own venv: its pins (typer, pydantic) are not Keel's.
test -x "$GENERATOR_VENV/bin/openapi-python-client" || {
  python3 -m venv "$GENERATOR_VENV"
  "$GENERATOR_VENV/bin/pip" install --quiet "$OPENAPI_PYTHON_CLIENT"
}
cd "$ROOT/clients/python"
rm -rf src/keel_api
"$GENERATOR_VENV/bin/openapi-python-client" generate --path ../../openapi.json --meta none \
  --config generator.yaml --output-path src/keel_api >/dev/null
touch src/keel_api/py.typed
echo "openapi.json and clients regenerated"
