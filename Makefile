# The README's commands. `make run` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export DO_NOT_TRACK := 1
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export MPLBACKEND := Agg
LINT_FORMAT ?= human         # `make lint LINT_FORMAT=json`: sqlfluff's per-file results (tests/test_dbt_environments.py)

.PHONY: install install-spark test-spark java-check run build report test test-fast lint bench bench-incremental docs seeds clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

install: $(STAMP)            ## create .venv with the locked dependencies and segfit installed

SPARK_STAMP := $(VENV)/.installed-spark

java-check:                  ## Spark needs a Java 17+ runtime: one clear message when it is missing
	@java_bin=$$(command -v java || true); \
	if [ -z "$$java_bin" ] && [ -n "$$JAVA_HOME" ] && [ -x "$$JAVA_HOME/bin/java" ]; then java_bin="$$JAVA_HOME/bin/java"; fi; \
	if [ -z "$$java_bin" ]; then \
		echo "segfit: the Spark engine needs a Java 17 runtime and none was found. On Debian/Ubuntu:" \
		     "sudo apt-get install -y openjdk-17-jre-headless (or set JAVA_HOME)" >&2; exit 2; fi; \
	version=$$("$$java_bin" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1); \
	if [ -z "$$version" ] || [ "$$version" -lt 17 ]; then \
		echo "segfit: the Spark engine needs Java 17 or newer; $$java_bin is version '$$version'. On Debian/Ubuntu:" \
		     "sudo apt-get install -y openjdk-17-jre-headless (or set JAVA_HOME)" >&2; exit 2; fi

$(SPARK_STAMP): $(STAMP) requirements-spark.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-spark.lock
	touch $(SPARK_STAMP)

install-spark: java-check $(SPARK_STAMP)  ## add the Spark engine (dbt-spark, pyspark; needs Java 17) to .venv

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

test-spark: install-spark   ## the Spark identity suite: the same marts on DuckDB and Spark (tests/spark)
	SEGFIT_TEST_SPARK=1 SEGFIT_SPARK_CASES="$(SEGFIT_SPARK_CASES)" $(BIN)/python -m pytest -n 0 -s tests/spark

lint: $(STAMP)               ## ruff; sqlfluff on models and snapshots (dbt templater) and macros (jinja templater)
	$(BIN)/ruff check .
	$(BIN)/sqlfluff lint --format $(LINT_FORMAT) models snapshots
	$(BIN)/sqlfluff lint --format $(LINT_FORMAT) macros --templater jinja

docs: $(STAMP)               ## dbt docs generate (into target/) against a demo build with its report's analysis tables
	$(BIN)/segfit run --warehouse $(CURDIR)/warehouse/docs.duckdb --out $(CURDIR)/reports/docs
	SEGFIT_DUCKDB_PATH=$(CURDIR)/warehouse/docs.duckdb DBT_PROFILES_DIR=profiles $(BIN)/dbt docs generate

bench: $(STAMP)              ## `segfit run` step by step vs the floor, time + customer order (benchmarks/README.md)
	$(BIN)/python benchmarks/bench_build.py $(if $(SIZES),--sizes $(SIZES)) $(if $(ORDERS),--orders $(ORDERS)) \
		$(if $(RUNS),--runs $(RUNS)) $(if $(DBT_THREADS),--dbt-threads $(DBT_THREADS)) --standalone-check

bench-incremental: $(STAMP)  ## one new day appended vs a full rebuild, time order (SIZES=N:M, default 200000:4000000)
	$(BIN)/python benchmarks/bench_incremental.py $(if $(SIZES),--sizes $(SIZES))

seeds: $(STAMP)              ## regenerate the demo seeds (deterministic)
	$(BIN)/segfit demo-data

clean:
	rm -rf target logs warehouse reports $(VENV)
