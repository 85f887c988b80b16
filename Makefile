# One entry point for every task. `make run` and `make test` install what is missing first.
SHELL := /bin/bash
VENV := .venv/bin
export PATH := $(CURDIR)/.state/bin:$(CURDIR)/node_modules/.bin:$(CURDIR)/.venv/bin:$(PATH)

.PHONY: bootstrap up down run test check lint format typecheck proto proto-deps proto-check \
        buflint breaking pytest

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
lint: bootstrap
	$(VENV)/ruff check learnflow gateway tests
	$(VENV)/ruff format --check learnflow gateway tests

format: bootstrap
	$(VENV)/ruff check --fix learnflow gateway tests
	$(VENV)/ruff format learnflow gateway tests

typecheck: bootstrap
	$(VENV)/mypy

pytest: up
	$(VENV)/pytest

## The two commands of the README
check: lint typecheck buflint breaking proto-check

test: check pytest
