# One entry point for every task. `make run` and `make test` install what is missing first.
SHELL := /bin/bash
VENV := .venv/bin
export PATH := $(CURDIR)/.state/bin:$(CURDIR)/node_modules/.bin:$(CURDIR)/.venv/bin:$(PATH)

.PHONY: bootstrap up down run test check lint format typecheck imports proto proto-deps \
        proto-check buflint breaking pytest unit deploy-check \
        web web-api web-api-check web-check

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
PY_SOURCES := learnflow gateway tests bench examples scripts/settings_table.py scripts/openapi_document.py scripts/openapi

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

## Web app (web/, its own package.json): see web/README.md
WEB_NPM := cd web && PATH="$(CURDIR)/web/node_modules/.bin:$$PATH"

# The production build into web/dist, which the gateway serves (LEARNFLOW_GATEWAY_STATIC_DIR).
web: bootstrap
	$(WEB_NPM) vite build

# Regenerate the typed client: the gateway's OpenAPI document built offline
# (scripts/openapi over scripts/openapi_document.py), then its TypeScript types.
web-api: bootstrap
	.venv/bin/python scripts/openapi gen
	$(WEB_NPM) openapi-typescript src/api/openapi.json -o src/api/schema.d.ts

# Fails when the committed client is stale (like proto-check for learnflow/v1).
web-api-check: bootstrap
	.venv/bin/python scripts/openapi check
	@tmp=$$(mktemp -d) && ($(WEB_NPM) openapi-typescript src/api/openapi.json -o "$$tmp/schema.d.ts" >/dev/null 2>&1) \
	  && if ! cmp -s "$$tmp/schema.d.ts" web/src/api/schema.d.ts; then \
	    echo "web/src/api/schema.d.ts is stale: run 'make web-api' and commit" >&2; rm -rf "$$tmp"; exit 1; fi; \
	  rm -rf "$$tmp"

# Types, unit tests, and the initial-JS budget (200 KB gzipped) of a fresh build; and the
# contract's own TypeScript check (tests/gateway/contract_check: real calls that must type-check
# against the generated client, and calls it must refuse).
web-check: web-api-check
	$(WEB_NPM) openapi-typescript src/api/openapi.json -o ../tests/gateway/contract_check/schema.ts >/dev/null
	$(WEB_NPM) tsc -p ../tests/gateway/contract_check/tsconfig.json
	$(WEB_NPM) tsc --noEmit
	$(WEB_NPM) vitest run
	$(WEB_NPM) vite build --logLevel warn
	$(WEB_NPM) node scripts/budget.mjs

## The two commands of the README
check: lint typecheck imports buflint breaking proto-check deploy-check web-check

test: check pytest
