# The README's commands. `make run` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export DO_NOT_TRACK := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export MPLBACKEND := Agg
LINT_FORMAT ?= human         # `make lint LINT_FORMAT=json`: sqlfluff's per-file results (tests/test_dbt_environments.py)

.PHONY: install run build report test test-fast lint bench bench-incremental docs seeds clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)            ## create .venv with the locked dependencies and segfit installed

run: $(STAMP)                ## demo end to end: seeds -> dbt build -> checks -> report
	$(BIN)/segfit run

build: $(STAMP)              ## dbt build the demo warehouse only
	$(BIN)/segfit build

report: $(STAMP)             ## report from the existing warehouse
	$(BIN)/segfit report

test: $(STAMP)               ## every test: pytest (dbt builds, unit tests, GX, oracle), ruff, sqlfluff
	$(BIN)/python -m pytest

test-fast: $(STAMP)          ## the pure unit tests only (tests/unit: synthetic frames, no warehouse; < 60 s)
	$(BIN)/python -m pytest tests/unit -m "not slow"

lint: $(STAMP)               ## ruff; sqlfluff on models and snapshots (dbt templater) and macros (jinja templater)
	$(BIN)/ruff check .
	$(BIN)/sqlfluff lint --format $(LINT_FORMAT) models snapshots
	$(BIN)/sqlfluff lint --format $(LINT_FORMAT) macros --templater jinja

docs: $(STAMP)               ## dbt docs generate (into target/) against a demo build with its report's analysis tables
	$(BIN)/segfit run --warehouse $(CURDIR)/warehouse/docs.duckdb --out $(CURDIR)/reports/docs
	SEGFIT_DUCKDB_PATH=$(CURDIR)/warehouse/docs.duckdb DBT_PROFILES_DIR=profiles $(BIN)/dbt docs generate

bench: $(STAMP)              ## `segfit run` step by step vs the floor, time + customer order (benchmarks/README.md)
	$(BIN)/python benchmarks/bench_build.py $(if $(SIZES),--sizes $(SIZES)) $(if $(ORDERS),--orders $(ORDERS)) \
		$(if $(RUNS),--runs $(RUNS)) --standalone-check

bench-incremental: $(STAMP)  ## one new day appended vs a full rebuild, time order (SIZES=N:M, default 200000:4000000)
	$(BIN)/python benchmarks/bench_incremental.py $(if $(SIZES),--sizes $(SIZES))

seeds: $(STAMP)              ## regenerate the demo seeds (deterministic)
	$(BIN)/segfit demo-data

clean:
	rm -rf target logs warehouse reports $(VENV)
