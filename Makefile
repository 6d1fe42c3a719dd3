# fate-airflow — one entry point for install, test, demo and code generation.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The demo and tests keep all party state under this folder; delete it to start over.
FATE_HOME ?= $(CURDIR)/.fate
# FATE 2.2's isolated environment (the FATE provider), built once and reused by every test party.
PROVIDER_ENVS ?= $(FATE_HOME)/provider-envs
TEST_PROVIDERS := $(FATE_HOME)/test-providers
# FATE's own client (pipeline SDK, flow CLI) on the provider's environment, for the client-API tests.
CLIENT_ENV := $(FATE_HOME)/client-env

.PHONY: install test lint typecheck contracts pytest provider-env client-env browser services demo up down proto proto-check lock clean
# Root installs system packages directly; anyone else through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check fate_airflow tests dags plugins bench scripts
	$(BIN)/ruff format --check fate_airflow tests dags plugins bench scripts

typecheck: install
	$(BIN)/mypy

contracts: install
	$(BIN)/lint-imports --no-cache

proto: install
	$(BIN)/python scripts/gen_protos.py

proto-check: install
	$(BIN)/python scripts/gen_protos.py --check

# Idempotent: a complete environment in $(PROVIDER_ENVS) is only registered again (seconds).
provider-env: install
	$(BIN)/fate-airflow provider install fate==2.2.0 --provider-dir $(TEST_PROVIDERS) --env-cache $(PROVIDER_ENVS)

client-env: provider-env
	$(BIN)/fate-airflow provider client-env fate==2.2.0 --provider-dir $(TEST_PROVIDERS) --dest $(CLIENT_ENV)

# Debian's Chromium for the FATE board's browser tests (Playwright drives it; it downloads no browser).
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium; }

# Debian's PostgreSQL and Redis servers for the production-path test (the harness starts its own
# instances on loopback; no system service is used).
services:
	@command -v redis-server >/dev/null && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends postgresql redis-server; }

pytest: install provider-env client-env browser services
	FATE_AIRFLOW_TEST_PROVIDERS=$(TEST_PROVIDERS) FATE_AIRFLOW_FATE_ENV_CACHE=$(PROVIDER_ENVS) FATE_AIRFLOW_TEST_CLIENT_ENV=$(CLIENT_ENV) $(BIN)/pytest

test: lint typecheck contracts proto-check pytest

demo: install
	$(BIN)/fate-airflow demo --home $(FATE_HOME)/demo

up: install
	$(BIN)/fate-airflow demo --home $(FATE_HOME)/demo --up-only

down: install
	$(BIN)/fate-airflow demo --home $(FATE_HOME)/demo --down

# Re-create constraints.txt from the current venv (run after changing dependencies on purpose).
lock:
	$(BIN)/pip freeze --exclude-editable | grep -v '^fate-airflow' > constraints.txt

clean:
	rm -rf $(VENV) $(FATE_HOME) .pytest_cache .mypy_cache .ruff_cache
