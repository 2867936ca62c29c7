# Two commands for a new user: `make demo` and `make test`. Both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
# The only torch/torchvision pair that imports together with open_clip on these machines (both on local disk).
TORCH_PAIR ?= torch==2.14.1 torchvision==0.29.1
DEMO_CONFIG ?= configs/toy.toml

.PHONY: setup system-deps demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# A torch the user installed first (e.g. a CUDA build for their GPU) is kept.
	@$(PY) -c "import torch, torchvision" 2>/dev/null || $(PIP) install --quiet $(TORCH_PAIR)
	$(PIP) install --quiet -e '.[test]'
	@touch $(STAMP)

# System packages the tests need: a PostgreSQL server and Chromium (for the browser test).
system-deps:
	@bash scripts/system_deps.sh

demo: setup
	$(VENV)/bin/harness run $(DEMO_CONFIG)

test: setup system-deps lint
	$(PY) -m pytest -q

# Static checks, run by `make test` before the tests: ruff, mypy (strict for models/ and eval_protocols/, see
# pyproject.toml) and the import-linter contracts (dependency rules and the harness stage layers).
lint: setup
	$(VENV)/bin/ruff check harness models eval_protocols dashboards tests benchmarks scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

clean:
	rm -rf runs .harness .pytest_cache
