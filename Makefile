# Self-documenting: every target with a '## comment' above it shows in `make help`.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
REPORTS ?= .mlops/test-results
TESTS ?= tests
# The model project that `make run` and `make data` act on (default: the first in mlops.yml).
MODEL ?=
SELECT_MODEL = model="$(MODEL)"; model="$${model:-$$($(BIN)/mlops model projects --default)}"
export MLFLOW_DISABLE_TELEMETRY := true
# Subprocesses started by tests (in other folders too) must measure coverage the same way.
export COVERAGE_RCFILE := $(CURDIR)/pyproject.toml
ifdef MLOPS_VENV
# Inside a local pipeline run: use the environment that runs the engine; never install into it.
VENV := $(MLOPS_VENV)
STAMP :=
else
VENV := .venv
STAMP := $(VENV)/.installed
endif
BIN := $(VENV)/bin

.PHONY: help install run test test-fast lint ci-lint ci-test serving-adversarial data bench ui clean loop \
	mutation mutation-ci

## Show this help
help:
	@awk '/^## /{doc=substr($$0,4); next} /^[a-zA-Z_-]+:/{if(doc){split($$1,t,":"); printf "  make %-10s %s\n", t[1], doc}; doc=""}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml environment_setup/helm.sh environment_setup/clients.sh $(wildcard environment_setup/clients/*.txt)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	bash environment_setup/helm.sh $(VENV)
	PYTHON=$(PYTHON) bash environment_setup/clients.sh $(VENV)
	@touch $(STAMP)

## Create .venv and install the project with its dev tools (idempotent)
install: $(STAMP)

## Main job on embedded defaults: build -> retrain -> release of MODEL up to the approval (APPROVE=1: through production)
run: install
	@$(BIN)/mlops doctor --fix
	@$(SELECT_MODEL); echo "model project: $$model"; $(BIN)/mlops --project "$$model" ci run "$$model-build"
	@if [ "$(APPROVE)" = "1" ]; then $(BIN)/mlops ci approve --comment "make run APPROVE=1"; fi
	@$(BIN)/mlops ci list --limit 5
	@$(BIN)/mlops deploy list
	@echo "Browse runs, metrics and models: $(BIN)/mlops ui   (then open http://127.0.0.1:5000)"

## Continuous training in its own workspace: champion in QA, drift, new data version, retrain, new champion, production waits
loop: install
	@$(BIN)/mlops doctor --fix
	@$(BIN)/python -m ml_service.monitor.loop $(if $(MODEL),--project $(MODEL))

## Lint, then all tests with coverage (JUnit and Cobertura XML under .mlops/test-results)
# The Docker tests (they mostly wait on image builds and containers) and the modules that run their own
# servers for minutes run in a second pytest process beside the others (MLOPS_TEST_GROUP, tests/conftest.py);
# one coverage report of both at the end, and the target fails if either failed.
test: install lint
	@$(BIN)/mlops doctor --fix
	@$(BIN)/python -m coverage erase
	@mkdir -p $(REPORTS)
	@rm -f .coverage.docker .coverage.rest
	@echo "== Docker and server tests start in the background (their log: $(REPORTS)/pytest-docker.log)"
	@MLOPS_TEST_GROUP=background COVERAGE_FILE=$(CURDIR)/.coverage.docker $(BIN)/python -m pytest -p no:cacheprovider \
		--cov --cov-branch --cov-report= --junitxml=$(REPORTS)/junit-docker.xml >$(REPORTS)/pytest-docker.log 2>&1 & \
	docker=$$!; \
	MLOPS_TEST_GROUP=foreground COVERAGE_FILE=$(CURDIR)/.coverage.rest $(BIN)/python -m pytest \
		--cov --cov-branch --cov-report= --junitxml=$(REPORTS)/junit.xml; rest=$$?; \
	wait $$docker; docker_rc=$$?; \
	echo "== Docker and server tests (ran beside the others; exit code $$docker_rc)"; cat $(REPORTS)/pytest-docker.log; \
	$(BIN)/python -m coverage combine -q .coverage.docker .coverage.rest && \
	$(BIN)/python -m coverage report && $(BIN)/python -m coverage xml -q -o $(REPORTS)/coverage.xml; \
	test $$rest -eq 0 && test $$docker_rc -eq 0

## Unit tests and every project's own tests, without the integration tests
test-fast: install
	$(BIN)/python -m pytest tests */tests -m "not integration"

## flake8 (configured in .flake8)
lint: install
	$(BIN)/python -m flake8

## flake8 with a JUnit report (used by the pipelines' quality gate)
ci-lint: install
	@mkdir -p $(REPORTS)
	$(BIN)/python -m flake8 --format junit-xml --output-file $(REPORTS)/flake8-junit.xml || \
		{ $(BIN)/python -m flake8; exit 1; }

## pytest on $(TESTS), integration tests left to `make test`, with JUnit and Cobertura reports (the quality gate)
ci-test: install
	@mkdir -p $(REPORTS)
	@$(BIN)/python -m coverage erase
	$(BIN)/python -m pytest $(TESTS) -m "not integration" --cov --cov-branch --cov-report=term --cov-report=xml:$(REPORTS)/coverage.xml \
		--junitxml=$(REPORTS)/junit.xml

## Adversarial serving tests, long form: 1,500 half-open connections, longer floods, 10,000 schemathesis cases an operation
serving-adversarial: install
	ulimit -n 4096; MLOPS_ADVERSARIAL_LONG=1 $(BIN)/python -m pytest -m integration -s \
		tests/serving/test_adversarial.py tests/serving/test_schemathesis.py

## Regenerate MODEL's data set and bad fixtures with its own generator (<project>/data.py), where it has one
data: install
	@$(SELECT_MODEL); test -f "$$model/data.py" || { echo "$$model has no data.py generator"; exit 1; }; \
		$(BIN)/python -m "$$model.data"

## Mutation testing of all of ml_service (nightly: hours): score per package, every survivor (.mlops/mutation/report.md)
# MUTATION_WORKERS: mutants run in parallel (default 1); MUTATION_ARGS: more options (--sample 20, --resume, ...).
mutation: install
	$(BIN)/python tools/mutation/run.py --workers $${MUTATION_WORKERS:-1} $(MUTATION_ARGS)

## Fast mutation check: mutants on lines changed vs origin/main + a fixed sample; fails below 80%
mutation-ci: install
	$(BIN)/python tools/mutation/run.py --changed --budget $${MUTATION_BUDGET:-240} --workers $${MUTATION_WORKERS:-1}

## Benchmarks (numbers, not pass/fail): pipeline cold/no-op runs; serving throughput, latency, image; batch
bench: install
	@test -x /tmp/dvc-venv/bin/dvc || { python3 -m venv /tmp/dvc-venv && /tmp/dvc-venv/bin/pip install -q dvc; }
	$(BIN)/python bench/pipeline.py --dvc /tmp/dvc-venv/bin/dvc
	$(BIN)/python bench/serving.py
	$(BIN)/python bench/batch.py
	$(BIN)/python bench/studio.py

## Serve the MLflow UI for the workspace on 127.0.0.1:5000
ui: install
	$(BIN)/mlops ui

## Remove the local workspace (.mlops) and caches; keeps .venv
clean:
	rm -rf .mlops mlruns .pytest_cache .coverage coverage.xml
