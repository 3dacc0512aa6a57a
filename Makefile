# Every target creates the environment itself from the committed lockfile (uv.lock).
PY ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
POSTGRES_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
export UV_PYTHON_DOWNLOADS := never

.PHONY: env run test test-postgres lint format bench schemas clean

$(UV):
	$(PY) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: uv.lock pyproject.toml libs/common/pyproject.toml $(wildcard services/*/pyproject.toml) | $(UV)
	$(UV) sync --frozen --all-packages --python $(PY)
	touch $@

env: $(VENV)/.synced

run: env ## start broker + four services on the embedded default (SQLite, demo data)
	$(BIN)/gridgov run

test: env ## every service's tests and the end-to-end tests (own broker, temporary SQLite)
	$(BIN)/pytest

test-postgres: env ## the same suite against PostgreSQL/PostGIS (one fresh database per test)
	GRIDGOV_TEST_POSTGRES_URL=$(POSTGRES_URL) $(BIN)/pytest

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy libs/common/src

format: env
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: env ## benchmarks, each printing JSON
	$(BIN)/python -m bench

schemas: env ## regenerate the event JSON Schemas under docs/events/
	$(BIN)/gridgov events schemas --out docs/events

clean:
	rm -rf $(VENV) $(TOOLS) var
