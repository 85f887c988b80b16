# One entry point for every task. `make run` and `make test` install what is missing first.
SHELL := /bin/bash
VENV := .venv/bin
export PATH := $(CURDIR)/.state/bin:$(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: bootstrap up down run test lint typecheck buflint pytest proto proto-check check

bootstrap:
	@scripts/bootstrap

up: bootstrap
	@scripts/services up

down:
	@scripts/services down

lint: bootstrap
	$(VENV)/ruff check learnflow gateway tests
	$(VENV)/ruff format --check learnflow gateway tests

typecheck: bootstrap
	$(VENV)/mypy

buflint: bootstrap
	buf lint

pytest: up
	$(VENV)/pytest

test: lint typecheck buflint pytest
