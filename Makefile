# ServiceScheduler developer tasks. `make` alone lists them.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# Plain assignments, not ?=: an exported HOST (some shells set it to the host
# name) must not silently make the server listen beyond loopback.
HOST   := 127.0.0.1
PORT   := 8000
COUNT  ?= 100
PYTEST_ARGS  ?=
PRODUCE_ARGS ?=
SOAK_ARGS    ?=
REV          ?=
BENCH        ?= 7
ROUNDS       ?= 6
COMPARE_ARGS ?=

RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP     := $(VENV)/.dev-installed

.DEFAULT_GOAL := help
.PHONY: help venv dev-venv run test test-fast lint format bench bench-quick bench-compare soak produce migrate clean

help: ## List the targets
	@echo "ServiceScheduler make targets:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | awk -F'\t' '{printf "  %-12s %s\n", $$1, $$2}'
	@echo "Variables: HOST=$(HOST) PORT=$(PORT) COUNT=$(COUNT) PYTEST_ARGS= PRODUCE_ARGS="

$(PY):
	$(PYTHON) -m venv $(VENV)

# Runtime pins plus the dev broker, which `make run` starts when no Kafka is configured.
$(RUNTIME_STAMP): requirements.txt requirements-devbroker.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt -r requirements-devbroker.txt
	touch $@

$(DEV_STAMP): requirements-dev.txt requirements.txt requirements-devbroker.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@ $(RUNTIME_STAMP)

venv: $(RUNTIME_STAMP) ## Create .venv with the runtime requirements (+ dev broker)

dev-venv: $(DEV_STAMP) ## Create .venv with the test/bench requirements too

# exec: make signals only its direct child, so that must be the launcher itself.
run: $(RUNTIME_STAMP) ## Run the service (HOST, PORT; starts a dev Kafka unless KAFKA_BOOTSTRAP_SERVERS is set)
	HOST=$(HOST) PORT=$(PORT) exec $(PY) -m devtools.run

# --durations=25: every run names its 25 slowest tests, so a test drifting into `slow` shows.
test: $(DEV_STAMP) ## Run the whole test suite, all tiers (PYTEST_ARGS=...)
	bash scripts/ensure-postgres.sh
	bash scripts/ensure-chromium.sh
	bash scripts/ensure-promtool.sh
	$(PY) -m pytest --durations=25 $(PYTEST_ARGS)

# The tiers are markers tests/conftest.py derives from the fixtures a test uses; tests/test_tiers.py
# checks that nothing reaching PostgreSQL, the broker or chromium runs here.
test-fast: $(DEV_STAMP) ## Run the fast tier: SQLite only, no broker, no browser, nothing slow, on 2 workers (< 1 min)
	$(PY) -m pytest -n 2 -m "not kafka and not browser and not slow and not postgres" --durations=10 $(PYTEST_ARGS)

lint: $(DEV_STAMP) ## ruff (lint + format check) and mypy (strict for the app code)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

format: $(DEV_STAMP) ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(DEV_STAMP) ## Run the benchmarks
	$(PY) -m bench

bench-quick: $(DEV_STAMP) ## Run a short benchmark
	$(PY) -m bench --quick

# One process per run, REV in a temporary git worktree, ABBA order: medians and paired ratios.
bench-compare: $(DEV_STAMP) ## Benchmark BENCH (7) of commit REV vs the working tree, alternating ROUNDS (6) times (--quick; COMPARE_ARGS=--full)
	@test -n "$(REV)" || { echo "usage: make bench-compare REV=<commit> [BENCH=7] [ROUNDS=6] [COMPARE_ARGS='--full --metric events_per_s']"; exit 2; }
	$(PY) -m bench.compare --rev "$(REV)" --bench "$(BENCH)" --rounds "$(ROUNDS)" $(COMPARE_ARGS)

soak: $(DEV_STAMP) ## 10-minute soak of the real service (SOAK_ARGS=--quick); writes docs/reliability.md
	$(PY) -m bench.soak $(SOAK_ARGS)

produce: $(RUNTIME_STAMP) ## Produce COUNT test events to Kafka (PRODUCE_ARGS=...)
	$(PY) -m devtools.produce --count $(COUNT) $(PRODUCE_ARGS)

migrate: $(RUNTIME_STAMP) ## Apply the database migrations
	$(PY) -m servicescheduler.storage.migrate

clean: ## Remove .venv, data/ and caches
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
