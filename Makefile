# One entry point for every task. `make run` and `make test` install what is missing first.
SHELL := /bin/bash
VENV := .venv/bin
export PATH := $(CURDIR)/.state/bin:$(CURDIR)/node_modules/.bin:$(CURDIR)/.venv/bin:$(PATH)

.PHONY: bootstrap up down run test check lint format typecheck imports proto proto-deps \
        proto-check buflint breaking pytest unit deploy-check

bootstrap:
	@scripts/bootstrap

up: bootstrap
	@scripts/services up

down:
	@scripts/services down

run: bootstrap
	@scripts/run

## Contract
proto-deps: bootstrap
	@scripts/protos deps

proto: proto-deps
	buf format -w
	@scripts/protos gen

proto-check: proto-deps
	@scripts/protos check

buflint: proto-deps
	buf lint
	buf format -d --exit-code

breaking: proto-deps
	@scripts/protos breaking

## Python
PY_SOURCES := learnflow gateway tests bench examples scripts/settings_table.py scripts/openapi_document.py

lint: bootstrap
	$(VENV)/ruff check $(PY_SOURCES)
	$(VENV)/ruff format --check $(PY_SOURCES)

format: bootstrap
	$(VENV)/ruff check --fix $(PY_SOURCES)
	$(VENV)/ruff format $(PY_SOURCES)

typecheck: bootstrap
	$(VENV)/mypy

# Layer contracts ([tool.importlinter] in pyproject.toml): a wrong-way import names itself.
imports: bootstrap
	$(VENV)/lint-imports --no-cache

# The fast layer: pure functions and projection handlers, no database needed.
unit: bootstrap
	$(VENV)/pytest tests/unit -q -p no:hypothesispytest -p no:schemathesis

# Everything, against the services `make up` starts, with a coverage report.
pytest: up
	$(VENV)/pytest --cov=learnflow --cov=gateway --cov-report=term:skip-covered

## Deployment (deploy/): Kubernetes manifests and compose.yaml, validated with no cluster
deploy-check: bootstrap
	@deploy/check

## The two commands of the README
check: lint typecheck imports buflint breaking proto-check deploy-check

test: check pytest
