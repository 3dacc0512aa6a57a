# Every target creates the environment itself from the committed lockfile (uv.lock).
PY ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
POSTGRES_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
export UV_PYTHON_DOWNLOADS := never

.PHONY: env run test test-postgres lint format bench reliability schemas clean dashboard-deps chromium screenshots

$(UV):
	$(PY) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: uv.lock pyproject.toml libs/common/pyproject.toml $(wildcard services/*/pyproject.toml) | $(UV)
	$(UV) sync --frozen --all-packages --python $(PY)
	touch $@

env: $(VENV)/.synced

# The dashboard's front-end libraries, from the npm registry per the committed lockfile
# (npm itself from Debian where it is missing); re-run when the lockfile changes.
dashboard/node_modules/.installed: dashboard/package-lock.json dashboard/package.json
	command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm; }
	cd dashboard && npm ci --no-audit --no-fund
	touch $@

dashboard-deps: dashboard/node_modules/.installed

# Debian's Chromium for the browser tests (Playwright drives it; no browser is downloaded).
/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

chromium: /usr/bin/chromium

run: env dashboard-deps ## start broker + four services + dashboard (:8100) on the embedded default
	$(BIN)/gridgov run

test: env dashboard-deps chromium ## every service's tests and the end-to-end tests (own broker, temporary SQLite)
	$(BIN)/pytest

test-postgres: env dashboard-deps chromium ## the same suite against PostgreSQL/PostGIS (one fresh database per test)
	GRIDGOV_TEST_POSTGRES_URL=$(POSTGRES_URL) $(BIN)/pytest

# CJK glyphs for the screenshots (a person's own browser has its fonts; headless Chromium needs these).
CJK_FONT := /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
$(CJK_FONT):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk

screenshots: env dashboard-deps chromium $(CJK_FONT) ## the README's dashboard pictures, from a running `make run`
	$(BIN)/python dashboard/screenshots.py --out docs/screenshots

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy libs/common/src services/*/src

format: env
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: env ## benchmarks, each printing JSON
	$(BIN)/python -m bench

# RELIABILITY_ARGS: e.g. --quick, --database postgres (a private cluster of its own), load (one module).
reliability: env ## faults injected, then the load stepped up; reconciled; exits non-zero if anything is lost or duplicated
	$(BIN)/python -m reliability $(RELIABILITY_ARGS)

schemas: env ## regenerate the event JSON Schemas under docs/events/
	$(BIN)/gridgov events schemas --out docs/events

clean:
	rm -rf $(VENV) $(TOOLS) var dashboard/node_modules
