# Self-documenting: every target with a '## comment' above it shows in `make help`.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
REPORTS ?= .mlops/test-results
TESTS ?= tests
# What `make ci-lint` checks (empty: the whole repository; a model's build passes its folder).
LINT ?=
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
TEST_STAMP :=
else
VENV := .venv
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
endif
BIN := $(VENV)/bin
# What each model's build runs besides the platform (flake8, pytest): `make install` installs them; the rest of
# pyproject.toml's [dev] (test-only clients: tritonclient, schemathesis, Playwright) and the KServe
# client's environment come with `make test` (install-test).
GATE_TOOLS := pytest pytest-cov flake8 flake8-formatter-junit-xml
REQUIREMENTS = $(BIN)/python environment_setup/requirements.py dev
# uv (a PyPI package) installs in seconds what pip resolves in minutes; pip where uv cannot be had. The project is
# installed editable as a plain path (compat), so `mlops` starts without an import hook. Bytecode is compiled at
# install, as pip does: where PYTHONDONTWRITEBYTECODE is set, nothing would ever write it, and every `mlops` would
# compile MLflow's sources again (about 9 s of CPU a call).
PIP_INSTALL = $$($(BIN)/python -m uv --version >/dev/null 2>&1 \
	&& echo "$(BIN)/python -m uv pip install -q --compile-bytecode --python $(BIN)/python -C editable_mode=compat" \
	|| echo "$(BIN)/python -m pip install -q --config-settings editable_mode=compat")

.PHONY: help install install-test install-spark install-tune run test test-fast lint ci-lint ci-test serving-adversarial data bench ui clean loop \
	mutation mutation-ci coverage-all bench-peers

## Show this help
help:
	@awk '/^## /{doc=substr($$0,4); next} /^[a-zA-Z_-]+:/{if(doc){split($$1,t,":"); printf "  make %-12s %s\n", t[1], doc}; doc=""}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml environment_setup/helm.sh environment_setup/requirements.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check uv || echo "uv cannot be had: installing with pip"
	@$(PIP_INSTALL) -e . $$($(REQUIREMENTS) --only $(GATE_TOOLS))
	bash environment_setup/helm.sh $(VENV)
	@touch $(STAMP)

$(TEST_STAMP): $(STAMP) environment_setup/clients.sh environment_setup/spark.sh $(wildcard environment_setup/clients/*.txt)
	@$(PIP_INSTALL) -e . $$($(REQUIREMENTS) --except $(GATE_TOOLS))
	PYTHON=$(PYTHON) bash environment_setup/clients.sh $(VENV)
	bash environment_setup/spark.sh $(VENV)
	@touch $(TEST_STAMP)

## Create .venv with what `make run` needs: the project, flake8 and pytest for the builds, helm (idempotent)
install: $(STAMP)

## What `make test` adds: the test-only clients (tritonclient, schemathesis, Playwright, KServe's own environment), optuna, Spark
install-test: $(TEST_STAMP)

## Java 17 (Debian) and pyspark (pinned, extra `spark`) for `mlops batch score --engine spark`
install-spark: install
	bash environment_setup/spark.sh $(VENV)

## optuna (pinned, extra `tune`) for `mlops tune` and a pipeline's tune step
install-tune: install
	@$(PIP_INSTALL) -e '.[tune]'

## Main job on embedded defaults: MODEL's build -> retrain -> release up to the approval, only what changed (FORCE=1: all; APPROVE=1: through production)
# Converges (ml_service/ci/converge.py): a work tree whose chain already ran is not run again; it says what is
# where and acts only where the live state differs (QA lost its container, APPROVE=1 with an approval waiting).
run:
	@since=$$(date +%s.%N); $(MAKE) -s --no-print-directory install && \
	$(BIN)/mlops doctor --fix && \
	$(BIN)/python -m ml_service.ci.converge --since $$since $(if $(MODEL),--project $(MODEL)) \
		$(if $(filter 1,$(FORCE)),--force) $(if $(filter 1,$(APPROVE)),--approve)

## Continuous training in its own workspace: champion in QA, drift, new data version, retrain, new champion, production waits
loop: install
	@$(BIN)/mlops doctor --fix
	@$(BIN)/python -m ml_service.monitor.loop $(if $(MODEL),--project $(MODEL))

## Lint, then all tests with coverage (JUnit and Cobertura XML under .mlops/test-results)
# Side by side, one pytest process each (MLOPS_TEST_GROUP, tests/conftest.py), one per name in TEST_PROCS: the
# first prints here, the others' logs follow. `all/<i>/<n>`: the i-th of n shares of whole modules, balanced by
# tests/durations.json, the modules with a Docker test all in the first (one engine: their images and containers
# never race). The layout of before: `foreground background` (background = the docker and the slow tests), or
# `foreground/1/2 foreground/2/2 docker slow` for four processes (no faster on 2 cores, and busier). One coverage
# report of all at the end; the target fails if any failed.
# Coverage measures the pytest processes (and what they fork), not the `mlops`, step and server subprocesses the
# tests start: measuring those too (pytest-cov's subprocess hook) doubled the suite's CPU time, each Python
# start-up paying about 0.8 s of tracing for MLflow's imports. `make coverage-all` measures them as well.
TEST_PROCS ?= foreground background
TEST_RUN = $(BIN)/python -m coverage run --parallel-mode -m pytest -p no:cacheprovider
test: install-test lint
	@$(BIN)/mlops doctor --fix
	@$(BIN)/python -m coverage erase
	@mkdir -p $(REPORTS)
	@first="$(firstword $(TEST_PROCS))"; others="$(wordlist 2,99,$(TEST_PROCS))"; pids=""; \
	echo "== $$first here; beside it, in the background: $$others (logs: $(REPORTS)/pytest-<group>.log)"; \
	for group in $$others; do log=$(REPORTS)/pytest-$${group//\//-}; \
		MLOPS_TEST_GROUP=$$group $(TEST_RUN) --junitxml=$$log.xml >$$log.log 2>&1 & pids="$$pids $$!"; done; \
	MLOPS_TEST_GROUP=$$first $(TEST_RUN) --junitxml=$(REPORTS)/pytest-$${first//\//-}.xml; \
	failed=$$?; \
	for pid in $$pids; do wait $$pid || failed=1; done; \
	for group in $$others; do log=$(REPORTS)/pytest-$${group//\//-}.log; echo "== $$group ($$log)"; cat $$log; done; \
	$(BIN)/python -m coverage combine -q && \
	$(BIN)/python -m coverage report && $(BIN)/python -m coverage xml -q -o $(REPORTS)/coverage.xml; \
	test $$failed -eq 0

## The whole suite in one process with coverage of every subprocess too (slower: about twice make test's CPU)
coverage-all: install-test
	@$(BIN)/mlops doctor --fix
	@$(BIN)/python -m coverage erase
	@mkdir -p $(REPORTS)
	$(BIN)/python -m pytest -p no:cacheprovider --cov --cov-branch --cov-report=term --cov-report=xml:$(REPORTS)/coverage.xml

## Unit tests and every project's own tests, without the integration tests
test-fast: install
	$(BIN)/python -m pytest tests */tests -m "not integration"

## flake8 (configured in .flake8)
lint: install
	$(BIN)/python -m flake8

## flake8 on $(LINT) (empty: the whole repository) with a JUnit report (the pipelines' quality gate)
ci-lint: install
	@mkdir -p $(REPORTS)
	$(BIN)/python -m flake8 --format junit-xml --output-file $(REPORTS)/flake8-junit.xml $(LINT) || \
		{ $(BIN)/python -m flake8 $(LINT); exit 1; }

## pytest on $(TESTS), integration tests left to `make test`, with JUnit and Cobertura reports (the quality gate)
ci-test: install
	@mkdir -p $(REPORTS)
	@$(BIN)/python -m coverage erase
	$(BIN)/python -m pytest $(TESTS) -m "not integration" --cov --cov-branch --cov-report=term --cov-report=xml:$(REPORTS)/coverage.xml \
		--junitxml=$(REPORTS)/junit.xml

## Adversarial serving tests, long form: 1,500 half-open connections, longer floods, 10,000 schemathesis cases an operation
serving-adversarial: install-test
	ulimit -n 4096; MLOPS_ADVERSARIAL_LONG=1 $(BIN)/python -m pytest -m integration -s \
		tests/serving/test_adversarial.py tests/serving/test_schemathesis.py

## Regenerate MODEL's data set and bad fixtures with its own generator (<project>/data.py), where it has one
data: install
	@$(SELECT_MODEL); test -f "$$model/data.py" || { echo "$$model has no data.py generator"; exit 1; }; \
		$(BIN)/python -m "$$model.data"

## Mutation testing of all of ml_service (nightly: hours): score per package, every survivor (.mlops/mutation/report.md)
# MUTATION_WORKERS: mutants run in parallel (default 1); MUTATION_ARGS: more options (--sample 20, --resume, ...).
mutation: install-test
	$(BIN)/python tools/mutation/run.py --workers $${MUTATION_WORKERS:-1} $(MUTATION_ARGS)

## Fast mutation check: mutants on lines changed vs origin/main + a fixed sample; fails below 80%
mutation-ci: install-test
	$(BIN)/python tools/mutation/run.py --changed --budget $${MUTATION_BUDGET:-240} --workers $${MUTATION_WORKERS:-1}

## Benchmarks (numbers, not pass/fail): pipeline cold/no-op runs; serving throughput, latency, image; batch
bench: install
	@test -x /tmp/dvc-venv/bin/dvc || { python3 -m venv /tmp/dvc-venv && /tmp/dvc-venv/bin/pip install -q dvc; }
	$(BIN)/python bench/pipeline.py --dvc /tmp/dvc-venv/bin/dvc
	$(BIN)/python bench/serving.py
	$(BIN)/python bench/batch.py
	$(BIN)/python bench/studio.py

## The serving peers' own environments for bench/serving.py (MLServer, KServe, BentoML; pins in bench/peers/)
bench-peers:
	bash bench/peers/build.sh .venv/peers

## Serve the MLflow UI for the workspace on 127.0.0.1:5000
ui: install
	$(BIN)/mlops ui

## Remove the local workspace (.mlops) and caches; keeps .venv
clean:
	rm -rf .mlops mlruns .pytest_cache .coverage coverage.xml
