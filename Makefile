# The two set-up commands of the README: `make demo` and `make test`. Both install what they need:
# `make demo` the package with the emulator and the report only, `make test` every extra and the dev
# tools (each has its stamp in .venv, so `make demo` then `make test` installs only what is missing).
# `make test-engines`: the lake read by Spark, Hive and DuckDB (tests/engines; .ci/run runs it).
# `make test-integrations`: the wheel, dlt, Airflow (tests/integrations; .ci/run runs it).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
DEMO_STAMP := $(VENV)/.installed-demo
DEV_STAMP := $(VENV)/.installed-dev
PYTHON ?= python3

.PHONY: install demo test test-engines test-integrations lint bench clean

install: $(DEV_STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(DEMO_STAMP): pyproject.toml | $(PY)
	$(PIP) -e '.[emulator,report]'
	touch $@

$(DEV_STAMP): pyproject.toml | $(PY)
	$(PIP) -e '.[all,dev]'
	touch $@ $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(VENV)/bin/spotify-catalog demo

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# Spark (with Hive) and DuckDB read the lake: installs Java (apt-get) and the engines' own virtual
# environments in ~/.cache/spotify-catalog-engines if missing, then runs tests/engines.
test-engines: install
	SPOTIFY_CATALOG_REQUIRE_ENGINES=1 $(PY) -m pytest tests/engines -m engines $(PYTEST_ARGS)

# The package built, installed and run as a user would, the dlt source loading into DuckDB and
# PostgreSQL, the example Airflow DAG: their virtual environments kept in ~/.cache/spotify-catalog-integrations.
test-integrations: install
	SPOTIFY_CATALOG_REQUIRE_INTEGRATIONS=1 $(PY) -m pytest tests/integrations -m integrations $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/mypy

# `make bench`: every benchmark (long), the figures also written to docs/benchmarks.md with the machine;
# some, with options: make bench BENCH_ARGS="client 'load --only-ids'"
bench: install
	$(PY) -m benchmarks --out docs/benchmarks.md $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist
