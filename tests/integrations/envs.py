"""The integrations suite's own tools, each in a virtual environment of its own kept between runs in
``SPOTIFY_CATALOG_INTEGRATIONS_DIR`` (default ``~/.cache/spotify-catalog-integrations``), one folder
per pinned set of packages (:mod:`cached_venv`):

- ``tools``: ``build`` and ``pipx``, run as the README runs them;
- ``dlt``: dlt with its DuckDB and PostgreSQL destinations, and spotify-catalog's own dependencies
  (those of the package and of its ``postgresql`` and ``mysql`` extras, read from pyproject.toml);
  the code under test comes from the checkout (``PYTHONPATH=src``), as the main suite's does;
- ``airflow``: Apache Airflow 3 (pinned) with spotify-catalog's dependencies and those of its
  ``parquet`` and ``report`` extras (the example DAG's export and report), the code again from the
  checkout.

The suite runs when ``SPOTIFY_CATALOG_REQUIRE_INTEGRATIONS=1`` (``make test-integrations``,
``.ci/run``): it installs what is missing, and what it cannot have is a failure. A plain ``make test``
skips it with one line.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from pathlib import Path

from cached_venv import Missing, cached_venv

REPO = Path(__file__).resolve().parents[2]
REQUIRE = "SPOTIFY_CATALOG_REQUIRE_INTEGRATIONS"
TOOLS_PACKAGES = ("build==1.6.1", "pipx==1.18.4")
DLT_PACKAGES = ("dlt[duckdb,postgres]==1.31.0",)
AIRFLOW_PACKAGES = ("apache-airflow==3.3.2",)
PIP_TIMEOUT = 900

__all__ = ["Missing", "airflow_python", "dlt_python", "required", "tools_python", "unavailable"]


def integrations_dir() -> Path:
    configured = os.environ.get("SPOTIFY_CATALOG_INTEGRATIONS_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "spotify-catalog-integrations"


def package_requirements(*extras: str) -> tuple[str, ...]:
    """The dependencies of the package and of ``extras``, as pyproject.toml lists them."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    found = list(project["dependencies"])
    for extra in extras:
        found += project["optional-dependencies"][extra]
    return tuple(found)


def _environment(name: str, packages: tuple[str, ...], install: bool) -> Path:
    digest = hashlib.sha256("\n".join(packages).encode()).hexdigest()[:10]
    where = integrations_dir() / f"{name}-{digest}"
    return cached_venv(where, name, packages, install=install, timeout=PIP_TIMEOUT)


def tools_python(install: bool) -> Path:
    return _environment("tools", TOOLS_PACKAGES, install)


def dlt_python(install: bool) -> Path:
    packages = (*DLT_PACKAGES, *package_requirements("postgresql", "mysql"))
    return _environment("dlt", packages, install)


def airflow_python(install: bool) -> Path:
    packages = (*AIRFLOW_PACKAGES, *package_requirements("parquet", "report"))
    return _environment("airflow", packages, install)


def required() -> bool:
    """``SPOTIFY_CATALOG_REQUIRE_INTEGRATIONS=1``: install what is missing; a missing tool fails."""
    return os.environ.get(REQUIRE) == "1"


def unavailable() -> str | None:
    """Why the suite skips (one line), or ``None`` when it runs: only when required, since it takes
    minutes and reaches the package index."""
    if required():
        return None
    return f"integrations: run by 'make test-integrations' ({REQUIRE}=1): the wheel, pipx, dlt, Airflow"
