# Keel: `make run` serves the embedded default; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export KEEL_HOST ?= 127.0.0.1
export KEEL_PORT ?= 8000
export KEEL_DATA_DIR ?= ./data

.PHONY: run test cli install lock lint typecheck coverage contract bench clean clients protos protos-check

# Every package, direct or not, comes pinned and hash-checked from requirements.lock.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python scripts/check_lock.py
	touch $(STAMP)

# After changing a dependency in pyproject.toml: re-resolve the whole tree, with hashes.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==0.13.9
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
		--quiet -o requirements.lock

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m keel migrate
	$(BIN)/python -m keel serve

cli: $(STAMP)
	$(BIN)/python -m keel $(ARGS)

# Runs on SQLite; set KEEL_TEST_DATABASE_URL and KEEL_TEST_REDIS_URL for PostgreSQL + Redis.
test: $(STAMP)
	$(BIN)/python -m pytest --cov=keel --cov-branch --cov-report= $(PYTEST_ARGS)

coverage: $(STAMP)
	$(BIN)/python -m coverage combine --keep --quiet || true
	$(BIN)/python -m coverage report --fail-under=90

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

contract: $(STAMP)
	bash scripts/contract.sh

# Regenerate openapi.json and the TypeScript and Python clients (needs npm); see clients/README.md.
clients: $(STAMP)
	bash clients/generate.sh

bench: $(STAMP)
	bash bench/run.sh

# gRPC: regenerate src/keel/v1 from proto/keel/v1 (committed; CI checks it is current).
protos: $(STAMP)
	$(BIN)/python scripts/generate_protos.py

protos-check: $(STAMP)
	$(BIN)/python scripts/generate_protos.py --check

clean:
	rm -rf $(VENV) .coverage .coverage.* .mypy_cache .ruff_cache
