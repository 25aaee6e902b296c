# The verbs a user types. Every target installs what it needs first (into .venv), so a fresh clone needs
# only `make demo` or `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYTHONDONTWRITEBYTECODE := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_VERSION_CHECK := 1
export CDK_CLI_TELEMETRY_OPTOUT := 1
export CDK_DISABLE_CLI_TELEMETRY := 1

.PHONY: setup demo test test-fast test-localstack reliability lint imports import-graph format typecheck synth check-deploy bench clean help

help:
	@echo "make demo   set up and run Encore end to end on this machine (SCALE=small|default|large)"
	@echo "make test   set up and run the whole test suite (lint, types, unit, integration, infra, e2e)"
	@echo "make reliability   generated requests, injected faults and a 60 s load run against the twin's API"
	@echo "make check-deploy   synthesize dev and prod in two regions and check them against AWS's deploy-time rules"
	@echo "make test-localstack   deploy into a reachable LocalStack with cdklocal and test there (skips, saying why, if none)"
	@echo "make imports   the import contracts in pyproject.toml; make import-graph redraws docs/architecture.md's graph"
	@echo "make setup | lint | format | typecheck | synth | bench | clean"

$(STAMP): requirements.txt requirements-dev.txt layers/shared/requirements.txt layers/dependencies/requirements.txt pyproject.toml layers/shared/pyproject.toml package.json package-lock.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e layers/shared -e .
	# Lambda-platform wheels for the dependency layer, so `cdk synth` later needs no network (cdk_app/bundling.py)
	$(PY) -c "from cdk_app.bundling import download_wheels; download_wheels()"
	# The CDK CLI, pinned to 2.x in package.json
	npm ci --no-audit --no-fund --silent
	touch $(STAMP)

setup: $(STAMP)

SCALE ?= default
demo: $(STAMP)
	$(VENV)/bin/encore demo --scale $(SCALE)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(LINT_IMPORTS)

# The layering in pyproject.toml ([tool.importlinter]; docs/architecture.md), checked on the code as it is.
LINT_IMPORTS := $(VENV)/bin/lint-imports --no-cache --no-logo
imports: $(STAMP)
	$(LINT_IMPORTS)

# Redraws the import graph in docs/architecture.md (tests/unit/test_architecture_doc.py fails when it is stale).
import-graph: $(STAMP)
	$(PY) tools/import_graph.py

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: lint typecheck check-deploy
	$(PY) -m pytest

# The reliability suites at full size (`make test` runs them smaller): 60 s of load, 200 generated requests
# per operation and mode, 120 hostile requests of each class, 30 rounds of identical batches sent at once.
reliability: $(STAMP)
	ENCORE_LOAD_SECONDS=60 ENCORE_GENERATED_PER_OPERATION=200 ENCORE_HOSTILE_PER_CLASS=120 ENCORE_RETRY_ROUNDS=30 \
		$(PY) -m pytest -m reliability -p no:logging -s  # -s: each suite prints its figures

# The stack deployed into a reachable LocalStack (AWS_ENDPOINT_URL, default http://localhost:4566) with cdklocal,
# and the suites that exercise it there; says why it skipped when no LocalStack answers (it needs Docker).
test-localstack: $(STAMP)
	$(PY) -m encore_local.localstack

test-fast: $(STAMP)
	$(PY) -m pytest -m "unit"

CDK := npx cdk
synth: $(STAMP)
	rm -rf cdk.out
	$(CDK) synth --no-notices --quiet -c stage=$(STAGE)
	$(VENV)/bin/cfn-lint
	$(PY) cdk_app/synth_report.py cdk.out
STAGE ?= dev

# What CloudFormation, IAM, Lambda, Glue, SageMaker and Step Functions would refuse, read from the cloud assemblies
# the CDK CLI writes (cdk_app/deploy_rules.py; docs/deploy.md). Two regions, neither the configuration's default.
DEPLOY_TARGETS := dev:eu-west-1 prod:ap-southeast-2
CHECK_OUT := build/check-deploy
check-deploy: $(STAMP)
	rm -rf $(CHECK_OUT)
	for target in $(DEPLOY_TARGETS); do \
	  stage=$${target%%:*}; region=$${target##*:}; \
	  CDK_DEFAULT_REGION=$$region AWS_REGION=$$region \
	    $(CDK) synth --no-notices --quiet -c stage=$$stage -o $(CHECK_OUT)/$$stage-$$region || exit 1; \
	done
	$(VENV)/bin/cfn-lint $(CHECK_OUT)/*/*.template.json
	$(PY) -m cdk_app.deploy_rules $(CHECK_OUT)/*

bench: $(STAMP)
	$(PY) -m pip install --quiet -r requirements-bench.txt
	$(PY) bench/bench_simulator.py
	$(PY) bench/bench_import.py
	$(PY) bench/bench_impressions.py
	$(PY) bench/bench_jobs.py
	$(PY) bench/bench_model.py
	$(PY) bench/bench_handlers.py

clean:
	rm -rf $(VENV) cdk.out build node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis data .encore
