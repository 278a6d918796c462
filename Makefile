# The project's commands. `make run` serves the API locally; `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
export SQLX_OFFLINE ?= true

.PHONY: help test quick lint fmt migrate prepare build venv check-template package rehearse deploy run invoke fuzz connections bench bench-quick bench-tuning bench-volume bench-mail bench-profiles

VENV := .venv
VENV_STAMP := $(VENV)/.installed

help: ## List the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

build: ## Build every crate (debug)
	$(CARGO) build --workspace --all-targets

test: $(VENV_STAMP) ## Run every test: Rust suites, template checks, schemathesis (throwaway Postgres, local Secrets Manager and SES)
	scripts/install-pgbouncer
	scripts/install-chromium
	$(CARGO) build --workspace --all-targets
	scripts/with-postgres scripts/with-moto $(CARGO) test --workspace --lib --tests --bench '*'
	scripts/check-template
	tests/dev-run/private-clone.sh
	scripts/with-postgres scripts/with-moto scripts/fuzz-api

quick: $(VENV_STAMP) ## The inner loop: the unit tests and shared's in-process handler tests (real Postgres, local SES and Secrets Manager)
	scripts/with-postgres scripts/with-moto $(CARGO) test --workspace --lib --test api

fuzz: $(VENV_STAMP) ## schemathesis against the local API, checked against openapi.yaml
	$(CARGO) build -p functions -p local-lambda -p shared --bins
	scripts/with-postgres scripts/with-moto scripts/fuzz-api

connections: $(VENV_STAMP) ## The database connection budget: each database function's concurrency times its pool, from template.yaml (PARAMETERS="Name=Value ..." as a deploy's)
	.venv/bin/python scripts/connections $(PARAMETERS)

check-template: $(VENV_STAMP) ## sam validate --lint, cfn-lint and the SAM-translator check of template.yaml
	scripts/check-template

package: $(VENV_STAMP) ## Build one arm64 bootstrap zip per function (cargo-lambda + zig from .venv)
	scripts/package

rehearse: $(VENV_STAMP) ## make package, then run those arm64 zips under qemu-user: migrate an empty database, smoke the API, shut down
	scripts/rehearse

bench: $(VENV_STAMP) ## Benchmarks (release build, emulator, local Postgres and Secrets Manager) into BENCHMARKS.md
	scripts/bench

bench-quick: $(VENV_STAMP) ## A smoke run of the benchmark pipeline (writes target/BENCHMARKS-quick.md)
	scripts/bench --quick --out target/BENCHMARKS-quick.md

bench-tuning: $(VENV_STAMP) ## Only the power-tuning table of BENCHMARKS.md: each function at 128 to 3008 MB under Lambda's CPU share
	scripts/bench --power-tuning

bench-volume: $(VENV_STAMP) ## Only sections 10 and 11 of BENCHMARKS.md: every path at 10^6 users beside an empty database, the purge against a backlog (USERS=N to change)
	scripts/bench --volume $(if $(USERS),--volume-users $(USERS))

bench-mail: $(VENV_STAMP) ## Only section 12 of BENCHMARKS.md: what the timing of an anonymous request tells about an address
	scripts/bench --mail

bench-profiles: ## Measure the release profile's options: build cost per function, size, cold start and latency (tools/bench/profiles.md: three full release builds)
	scripts/bench-profiles

deploy: package ## make package, then sam deploy of those zips (samconfig.toml; PARAMETERS="DbSecretArn=... ..."; MANAGED_INSTANCES=true: on Lambda Managed Instances; needs AWS credentials)
	scripts/deploy

venv: $(VENV_STAMP) ## Install the pinned Python tools (moto, cfn-lint, aws-sam-cli) into .venv

$(VENV_STAMP): requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

migrate: ## Apply the migrations to $DATABASE_URL (or DB_HOST/DB_USER/...)
	$(CARGO) run --quiet -p shared --bin db-migrate

prepare: ## Refresh .sqlx/ (the offline query data) from a throwaway Postgres
	scripts/with-postgres scripts/sqlx-prepare

run: $(VENV_STAMP) ## Serve the API locally as Lambda would, CPU share and memory limit included (PORT=3000; UNTHROTTLED=1 turns the limits off; Postgres kept in .local/, mail written to .local/mail/)
	CARGO="$(CARGO)" scripts/with-moto scripts/dev-run

invoke: $(VENV_STAMP) ## Invoke one function once: make invoke FN=<binary> EVENT=events/<binary>.json (fill its placeholders first)
	CARGO="$(CARGO)" scripts/with-moto scripts/dev-run invoke "$(FN)" "$(EVENT)"
