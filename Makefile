# twotower: `make run` (set up + run one simulated day through the real DAG) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# This machine keeps the CPU torch wheel on disk; elsewhere pip takes it from PyPI.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
PYTEST_ARGS ?=
# Test workers (pytest-xdist): the suite mostly waits on JVMs and Airflow's scheduler. One module
# per worker (module fixtures are shared), in collection order: tests/conftest.py puts the long
# e2e module first and the other worker runs everything else beside it. More workers than cores
# starve the e2e module's scheduler (docs/benchmarks.md has the timings).
TEST_WORKERS ?= 2
# Spark's S3A connector for the object-store test only (see the script).
S3A_JARS := var/cache/s3a-jars/.fetched
# `make bench BENCH_ARGS=--quick` for the quick subset; `--only pipeline,index` for some.
BENCH_ARGS ?=

.PHONY: help setup airflow-init run test test-fast lint bench docs screenshots clean

help:
	@echo "make run    - set up, simulate sample logs if none, run one day through the Airflow DAG"
	@echo "make test   - set up and run the test suite"
	@echo "make bench  - run every benchmark -> bench/results/<date>.json + docs/benchmarks.md (BENCH_ARGS=--quick: subset)"
	@echo "make lint   - ruff + import-linter (the package layers, docs/architecture.md)"
	@echo "make screenshots - headless-Chromium screenshots of the reports under the reports root -> docs/screenshots/"

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check pip==26.3
	$(BIN)/python -m pip install -q --disable-pip-version-check $(FIND_LINKS) -c constraints.txt -e '.[dev]' 2> >(grep -v "is neither a file nor a directory" >&2)
	@touch $(STAMP)

setup: $(STAMP)

airflow-init: $(STAMP)
	@source scripts/airflow_env.sh && $(BIN)/airflow db migrate > $$AIRFLOW_HOME/db-migrate.log 2>&1 \
	  || { cat $$AIRFLOW_HOME/db-migrate.log; exit 1; }
	@echo "Airflow metadata DB ready in var/airflow/"

run: airflow-init
	@bash scripts/run.sh

$(S3A_JARS): scripts/fetch_s3a_test_jars.sh
	@PYTHON=$(BIN)/python bash scripts/fetch_s3a_test_jars.sh $(dir $(S3A_JARS)) 2> >(grep -v "is neither a file nor a directory" >&2)

test: $(STAMP) $(S3A_JARS)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder -m "not slow and not e2e" $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

docs: $(STAMP)
	$(BIN)/python -m twotower.contract_docs > docs/data-contracts.md
	$(BIN)/python -m twotower.config_docs > docs/config.md

# Headless-Chromium screenshots of the runs under the reports root (after `make run`; needs
# Debian's chromium): a published day's report, a refused day's, the runs index, failed Data Docs.
SCREENSHOTS_ARGS ?=
screenshots: $(STAMP)
	$(BIN)/python -m reports.screenshots --out docs/screenshots $(SCREENSHOTS_ARGS)

clean:
	rm -rf var .pytest_cache
