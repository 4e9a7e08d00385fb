# `make run` serves seeds/ on http://127.0.0.1:8080; `make test` runs the whole suite, `make
# test-fast` the tests that start no server and are not among the slowest (see tests/conftest.py),
# on every core.
# Both create .venv with the interpreter in $(PYTHON) and install feedsvc into it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast lint format docs bench clean

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "error: '$(PYTHON) -m venv' failed; on Debian install python3-venv first" >&2; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/feedsvc serve

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n auto -m "not e2e and not slow"

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.installed-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Regenerates what is made from the settings' declarations in feedsvc/config.py.
docs: $(VENV)/.installed-test
	$(BIN)/cog -r config/feedsvc.toml docs/configuration.md

clean:
	rm -rf $(VENV) data out .pytest_cache .ruff_cache

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench.bench
