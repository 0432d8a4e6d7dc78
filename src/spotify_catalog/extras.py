"""Which extra of the package brings an optional dependency, and the one line that says what to install.

The extras (``pyproject.toml``, docs/install.md) are named for what they bring: ``emulator``
(``emulator``, ``demo``, the pytest fixtures), ``postgresql`` and ``mysql`` (the database drivers),
``parquet`` (``export``), ``s3`` (``export --to s3://``), ``report`` (``report``, ``demo``), ``dlt``
(:mod:`spotify_catalog.dlt`), ``airflow`` (:mod:`spotify_catalog.airflow`); ``all`` is every one of
them but ``dlt`` and ``airflow``.
"""

from __future__ import annotations

from collections.abc import Sequence

from spotify_catalog.errors import UsageError

# the top-level module a dependency is imported as -> the extra that installs it
EXTRA_OF: dict[str, str] = {
    "starlette": "emulator",
    "uvicorn": "emulator",
    "psycopg": "postgresql",
    "psycopg_binary": "postgresql",
    "pymysql": "mysql",
    "pyarrow": "parquet",
    "adbc_driver_manager": "parquet",
    "adbc_driver_postgresql": "parquet",
    "adbc_driver_sqlite": "parquet",
    "boto3": "s3",
    "botocore": "s3",
    "s3transfer": "s3",
    "vl_convert": "report",
    "jinja2": "report",
    "markupsafe": "report",
    "dlt": "dlt",
    "airflow": "airflow",
}


class MissingExtra(UsageError):
    """A command or module needs a dependency of an extra that is not installed (exit 2)."""


def install_line(extras: Sequence[str]) -> str:
    """The pip command that adds ``extras`` to the environment where spotify-catalog is installed
    (pip takes the installed package, wherever it came from, and installs what the extras list)."""
    return f"pip install 'spotify-catalog[{','.join(extras)}]'"


def needs(what: str, module: str | None, extras: Sequence[str] = ()) -> str:
    """One line: ``what`` needs ``module`` (as a ``ModuleNotFoundError`` names it), and the pip command
    that installs ``extras`` (by default the extra of ``module``)."""
    top = (module or "?").partition(".")[0]
    extra = EXTRA_OF.get(top)
    chosen = list(extras) or ([extra] if extra else [])
    if not chosen:
        return f"{what} needs the module {top!r}, which is not installed"
    named = f"the {extra} extra" if extra and chosen == [extra] else f"extras {', '.join(chosen)}"
    return f"{what} needs {top} ({named}): {install_line(chosen)}"


def missing(what: str, exc: ModuleNotFoundError, extras: Sequence[str] = ()) -> MissingExtra:
    """The error to raise when ``what`` cannot import what ``exc`` names (see :func:`needs`)."""
    return MissingExtra(needs(what, exc.name, extras))
