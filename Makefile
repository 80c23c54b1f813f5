# petcut: `make run` serves on $PORT (default 8080); `make test` runs the whole test suite.
# Both create or refresh .venv first, on a fresh machine with nothing but Python 3.11.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run test test-fast lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

run: venv
	@if [ -z "$${PETCUT_CHECKPOINT:-}" ] && [ ! -f "$$($(BIN)/petcut weights path)" ]; then \
	  $(BIN)/petcut weights download || \
	  echo "petcut: weights could not be downloaded; the service starts anyway and /ready says why" >&2; \
	elif [ "$${PETCUT_ENGINE:-auto}" != torch ]; then \
	  $(BIN)/petcut weights prepare || echo "petcut: no OpenVINO artifact; the service runs on torch" >&2; \
	fi
	@exec $(BIN)/petcut serve --port $${PORT:-8080}

test: venv
	$(BIN)/python -m pytest

test-fast: venv
	$(BIN)/python -m pytest -m "not slow"

lint: venv
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache src/*.egg-info
