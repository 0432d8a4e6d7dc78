# The two set-up commands of the README: `make demo` and `make test`. Both install what they need.
# `make test-engines`: the lake read by Spark, Hive and DuckDB (tests/engines; .ci/run runs it).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTHON ?= python3

.PHONY: install demo test test-engines lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[all,dev]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/spotify-catalog demo

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# Spark (with Hive) and DuckDB read the lake: installs Java (apt-get) and the engines' own virtual
# environments in ~/.cache/spotify-catalog-engines if missing, then runs tests/engines.
test-engines: install
	SPOTIFY_CATALOG_REQUIRE_ENGINES=1 $(PY) -m pytest tests/engines -m engines $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

# `make bench`: every benchmark (long), the figures also written to docs/benchmarks.md with the machine;
# some, with options: make bench BENCH_ARGS="client 'load --only-ids'"
bench: install
	$(PY) -m benchmarks --out docs/benchmarks.md $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist
