# ganbench: `make run` and `make test` set up a fresh machine (they create .venv when absent).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ganbench-installed

.PHONY: run test test-all bench leaderboard lint format clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test,ray]'
	@touch $@

## run the quick matrix (minutes) and render leaderboard/ (rendered even if some trials failed);
## `.venv/bin/ganbench run smoke` runs the smoke matrix
run: $(STAMP)
	$(BIN)/ganbench run quick; status=$$?; $(BIN)/ganbench leaderboard && exit $$status

## the test suite (under ~15 minutes on 2 CPU cores); `slow` checks run in test-all
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" --ignore=tests/benchmarks

test-all: $(STAMP)
	$(BIN)/python -m pytest -q --ignore=tests/benchmarks

## micro-benchmarks of hot paths, each against a plain reference implementation timed in the same run
bench: $(STAMP)
	$(BIN)/python -m pytest -q tests/benchmarks --benchmark-only --benchmark-sort=name --benchmark-columns=mean,stddev,median,rounds

leaderboard: $(STAMP)
	$(BIN)/ganbench leaderboard

lint: $(STAMP)
	$(BIN)/ruff check bench architectures datasets explainers metrics tests
	$(BIN)/ruff format --check bench architectures datasets explainers metrics tests

format: $(STAMP)
	$(BIN)/ruff format bench architectures datasets explainers metrics tests
	$(BIN)/ruff check --fix bench architectures datasets explainers metrics tests

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
