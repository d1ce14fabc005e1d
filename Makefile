# Two commands matter: `make demo` and `make test`. Everything installs into .venv from the pinned locks:
# requirements.txt (the runtime, all the Docker image gets) and requirements-dev.txt (tests, benches, tools).
# Bytecode is compiled at install: machines that set PYTHONDONTWRITEBYTECODE would otherwise compile Airflow
# from source in every process (measured: an `import airflow.sdk` + our adapters took 2.5x the CPU).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt pyproject.toml dev/pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install demo test test-fast test-e2e test-cluster test-chaos lint format lock clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml dev/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.txt -r requirements-dev.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e . -e dev
	rm -f $(VENV)/.installed-*
	touch $@

## Run a job end to end on an embedded Airflow (SQLite, LocalExecutor), approving both gates.
demo: install
	$(BIN)/python scripts/demo.py

## The whole test suite: unit, adapters, DAG integrity and end-to-end on real Airflow processes.
## Three workers (pytest-xdist, work stealing), each with its own embedded Airflow: with two, the end-to-end
## tests mostly waited on Airflow (57 % of two cores busy), and a third took the suite from 19.6 min to 14.0
## (README). A fourth would not help: with three the CPU is saturated most of the run.
test: install
	sh scripts/install-browser.sh
	$(BIN)/pytest -n 3 --dist worksteal --durations=20

## The tests without Airflow processes or slow media (Chromium, 200-segment joins): the edit-test loop.
## Four workers: these tests wait on sockets and subprocesses too (47 % of two cores busy with two workers;
## 121.6 s with two, 87.8 s with four).
test-fast: install
	$(BIN)/pytest -n 4 -m "not e2e and not cluster and not slow"

test-e2e: install
	sh scripts/install-browser.sh
	$(BIN)/pytest -m "e2e"

## Fault injection on real Airflow: worker SIGKILL, triggerer/scheduler restarts, S3 outage, bad input.
test-chaos: install
	$(BIN)/pytest -m "chaos" -s

## CeleryExecutor cluster on the local PostgreSQL + Redis: two workers, S3 over HTTP, an 8-segment job.
test-cluster: install
	$(BIN)/pytest -m "cluster" -s

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Re-resolve both locks (Airflow's constraint files are not reachable here): the runtime first, then the dev
## lock constrained by it, so both give every package one version. uv keeps a lock's pins unless an input changed.
lock: install
	$(BIN)/uv pip compile --quiet requirements.in --python-version 3.11 -o requirements.txt
	$(BIN)/uv pip compile --quiet requirements-dev.in --python-version 3.11 -o requirements-dev.txt

clean:
	rm -rf .airflow .data .pytest_cache .mypy_cache .ruff_cache
