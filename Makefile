# lightctl: `make demo` runs the whole district on this machine; `make test` runs every check.
# Both bootstrap a virtual environment in .venv from nothing.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8000

.PHONY: demo test lint typecheck unit system-deps bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The stamps are remade when pyproject.toml changes, so a pull that adds a dependency installs it.
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(VENV)/.runtime $@

demo: $(VENV)/.runtime
	$(BIN)/lightctl demo --port $(PORT)

# Debian packages the tests need (Mosquitto, victoria-metrics, influxdb, Chromium, CJK fonts, mbpoll),
# installed when missing, and the shared Mosquitto started if it is not running.
system-deps:
	bash scripts/install-system-deps.sh

lint: $(VENV)/.test
	$(BIN)/ruff check lightctl tests bench
	$(BIN)/ruff format --check lightctl tests bench

typecheck: $(VENV)/.test
	$(BIN)/mypy

unit: $(VENV)/.test system-deps
	$(BIN)/pytest -ra

test: lint typecheck unit

bench: $(VENV)/.test system-deps
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache var test-artifacts
