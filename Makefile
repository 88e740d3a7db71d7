# Two commands a newcomer needs:  `make quickstart`  and  `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: quickstart test test-fast lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

# torch first, pinned: with none installed, the dev extra's plain `torch>=2.4` takes PyPI's
# CUDA build (several GB); pip takes this version's CPU build from the machine's wheel folder
TORCH ?= torch==2.13.0

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet '$(TORCH)'
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed

## Train, track, register and serve two models (keeps serving; add ARGS=--no-serve to stop).
quickstart: $(VENV)/.installed
	$(BIN)/shipyard quickstart $(ARGS)

## The whole suite: unit, integration (SQLite; PostgreSQL/Redis when their URLs are set), e2e, slow.
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=25 $(PYTEST_ARGS)

test-fast: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n 2 -m "not slow and not e2e" $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/lint-imports

## mypy, strict, on src/ (configured in pyproject.toml; CI runs it after lint).
typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

bench:
	$(PYTHON) benchmarks/tracking.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist src/*.egg-info
