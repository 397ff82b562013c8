# The two commands a newcomer needs:  `make run`  and  `make test`.  Both install what they need first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run workbench test install hooks lint pytest contract dockerlint rules-check rules-test rules-diff validate valuesets expand soak faults examples openapi schemas bench scale clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## Start the service on http://127.0.0.1:8080 (development mode: no JWT check, SQLite in var/). PORT=8081 make run
run: $(STAMP)
	$(BIN)/python -m service serve --dev --host $(HOST) --port $(PORT)

## The rule authors' workbench on your checkout: the service in development mode with /workbench (never production).
workbench: $(STAMP)
	$(BIN)/python -m authoring workbench --host $(HOST) --port $(PORT)

## Everything CI runs: lint, rule checks, the pytest suite, the contract test, Dockerfile lint.
test: $(STAMP) lint rules-check pytest contract dockerlint

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

rules-check: $(STAMP)
	$(BIN)/python -m service rules check

rules-test: $(STAMP)
	$(BIN)/python -m authoring rules test

rules-diff: $(STAMP)
	$(BIN)/python -m authoring rules diff

## Clinical validation: every rule version over the examples, the real records and the red-flag matrix.
validate: $(STAMP)
	$(BIN)/python -m authoring validate

## Fill is-a value sets from a terminology server: make expand SERVER=https://tx.example.org/fhir
expand: $(STAMP)
	$(BIN)/python -m authoring rules expand --server $(SERVER)

## Rebuild the value sets made from ../shared/clinical/published-codes by the review rules.
valuesets: $(STAMP)
	$(BIN)/python -m authoring valuesets

## The pytest suite on two workers, with a line-coverage report (fails under the floor in pyproject.toml).
pytest: $(STAMP)
	$(BIN)/python -m pytest -n 2 --cov --cov-report=term

## Run ruff and mypy before every commit (local hooks: nothing is downloaded).
hooks: $(STAMP)
	$(BIN)/pre-commit install

contract: $(STAMP)
	BIN=$(BIN) scripts/contract.sh

dockerlint: $(STAMP)
	$(BIN)/hadolint Dockerfile

examples: $(STAMP)
	$(BIN)/python -m authoring examples build

openapi: $(STAMP)
	$(BIN)/python -m authoring openapi --write

schemas: $(STAMP)
	$(BIN)/python -m authoring rules schema

## Soak and fault suite (3-5 minutes, loopback): kills a worker, stops PostgreSQL, makes SQLite read-only under load.
soak: $(STAMP)
	command -v setpriv >/dev/null && ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || scripts/postgres.sh >/dev/null
	$(BIN)/python scripts/soak.py

## Storage faults and an /evaluate flood under load (about 2 minutes, loopback, root): disk full on a tmpfs, chattr +i,
## deleted and truncated files; no worker may die, and hook throughput may fall at most 10% under the flood.
faults: $(STAMP)
	$(BIN)/python scripts/faults.py

bench: $(STAMP)
	$(BIN)/python scripts/bench.py

## Three replicas on PostgreSQL behind HAProxy (OS packages), load with feedback, replicas killed with SIGKILL and
## restarted; reports losses (all must be zero). About a minute; not part of `make test`.
scale: $(STAMP)
	$(BIN)/python scripts/scale.py

clean:
	rm -rf $(VENV) var .ruff_cache schemathesis-report
