# flukeid: the two commands of the README (make demo, make test), and a few more.
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DATA ?= data/demo
DEMO_SCALE ?= 0.05
DEMO_SEED ?= 5113
PROFILE ?= demo
STORAGE ?= storage
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export FLUKEID_DATA_DIR ?= $(CURDIR)/$(DEMO_DATA)
export FLUKEID_STORAGE_DIR ?= $(CURDIR)/$(STORAGE)
export FLUKEID_DEVICE ?= auto
export FLUKEID_PROFILE := $(PROFILE)
export YOLO_OFFLINE := 1
export DAGSTER_DISABLE_TELEMETRY := 1

# Every asset of the chain: not the experiment sweep (`make experiments`), whose partitions run only when asked for.
CHAIN := not group:experiments
JOBS ?= 2
TEST_JOBS ?= auto

.PHONY: install demo test ui review screenshots update experiments scaling lint data clean

# The venv is rebuilt when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The home's dagster.yaml and storage schema, created once before any run (two runs at once on a new home
# would both create it and both fail).
$(DAGSTER_HOME)/dagster.yaml: | $(VENV)/.installed
	$(BIN)/flukeid init-home

$(DEMO_DATA)/train.csv: | $(VENV)/.installed
	$(BIN)/flukeid synth $(DEMO_DATA) --scale $(DEMO_SCALE) --seed $(DEMO_SEED)

data: $(DEMO_DATA)/train.csv

## make demo: generate the demo data when missing and materialize every asset on it.
demo: $(VENV)/.installed $(DEMO_DATA)/train.csv $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster asset materialize -m pipelines.definitions --select raw_image_files
	$(BIN)/dagster asset materialize -m pipelines.definitions --select '$(CHAIN)' -c configs/$(PROFILE).yaml
	$(BIN)/flukeid outputs

## make test: the test suite, in one pytest-xdist worker per core up to 4 (most tests use one core; a test file
## stays on one worker, so its module fixtures are built once).
test: $(VENV)/.installed
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) --maxprocesses 4 --dist loadfile

## make update: observe the data folder, materialize only what is stale or missing.
update: $(VENV)/.installed $(DEMO_DATA)/train.csv $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/flukeid update --profile $(PROFILE)
	$(BIN)/flukeid outputs

## make experiments: the experiment sweep (configs/experiments.yaml) on the chain's artifacts (after make demo):
## every missing or stale partition of experiment_run in $(JOBS) workers, then experiment_comparison, printed;
## then docs/experiments.md written from it. About 47 minutes on 2 cores (README, "Experiments").
experiments: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/flukeid experiments --run --jobs $(JOBS) --profile $(PROFILE) --write-docs docs/experiments.md

## make scaling: bench/scaling.py, every stage's seconds and peak memory on generated sets of four sizes and their
## growth exponents (README, "Performance"; docs/scaling.md); sets and logs under /tmp/scaling/work, resumable.
scaling: $(VENV)/.installed
	$(BIN)/python bench/scaling.py

## make ui: the Dagster UI on http://127.0.0.1:3000
ui: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -m pipelines.definitions -h 127.0.0.1 -p 3000

## make review: the review page on http://127.0.0.1:8765 over the materialized review_queue; decisions go to
## $(DEMO_DATA)/reviews/decisions.csv, then `make update` learns from them.
review: $(VENV)/.installed
	$(BIN)/flukeid review --storage $(FLUKEID_STORAGE_DIR) --data $(FLUKEID_DATA_DIR)

## make screenshots: the browser tests (tests/test_ui.py, tests/test_review_ui.py, tests/test_experiments_ui.py),
## their screenshots kept in docs/ui and docs/review for the README.
screenshots: $(VENV)/.installed
	FLUKEID_TEST_OUTPUT=$(CURDIR)/docs $(BIN)/python -m pytest -q tests/test_ui.py tests/test_review_ui.py \
		tests/test_experiments_ui.py

lint: $(VENV)/.installed
	$(BIN)/ruff check core synth pipelines assets models review tests bench
	$(BIN)/ruff format --check core synth pipelines assets models review tests bench

clean:
	rm -rf $(STORAGE) $(DAGSTER_HOME)
