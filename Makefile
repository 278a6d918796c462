# The project's commands. `make run` serves the API locally; `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
export SQLX_OFFLINE ?= true

.PHONY: help test lint fmt migrate prepare build

help: ## List the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

build: ## Build every crate (debug)
	$(CARGO) build --workspace --all-targets

test: ## Run every test against a throwaway Postgres (or $DATABASE_URL)
	$(CARGO) build --workspace --all-targets
	scripts/with-postgres $(CARGO) test --workspace --all-targets

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

migrate: ## Apply the migrations to $DATABASE_URL (or DB_HOST/DB_USER/...)
	$(CARGO) run --quiet -p shared --bin migrate

prepare: ## Refresh .sqlx/ (the offline query data) from a throwaway Postgres
	scripts/with-postgres scripts/sqlx-prepare
