"""The engines the suite runs, prepared once and kept between runs: Java (Debian's JRE), pyspark in a
virtual environment of its own, DuckDB with its httpfs extension in another.

The virtual environments live in ``SPOTIFY_CATALOG_ENGINES_DIR`` (default
``~/.cache/spotify-catalog-engines``), one folder per pinned set of packages, complete once it holds
``.ready``. ``prepare(install=True)`` installs what is missing (``apt-get`` for Java, as root; plain
``pip install`` for the rest); ``prepare(install=False)`` only looks. Run this file to prepare them:
``python tests/engines/tools.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

if __name__ == "__main__":  # run as a script: cached_venv is in tests/
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cached_venv import Missing, cached_venv

SPARK_PACKAGES = ("pyspark==4.3.0",)
# DuckDB 2.x cannot load httpfs without downloading it; 1.5.5 has it as a package on PyPI
DUCKDB_PACKAGES = ("duckdb==1.5.5", "duckdb-extension-httpfs==1.5.5", "pytz")
JRE_PACKAGE = "openjdk-17-jre-headless"
PIP_TIMEOUT = 900  # seconds: pyspark is a download of about 450 MB


@dataclass(frozen=True)
class Tools:
    java: str
    spark_python: Path
    duckdb_python: Path


def engines_dir() -> Path:
    configured = os.environ.get("SPOTIFY_CATALOG_ENGINES_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "spotify-catalog-engines"


def _venv_dir(name: str, packages: tuple[str, ...]) -> Path:
    version = packages[0].split("==")[1]
    return engines_dir() / f"{name}-{version}"


def _java(install: bool) -> str:
    java = shutil.which("java")
    if java:
        return java
    if not install:
        raise Missing("no java on PATH")
    if os.geteuid() != 0:
        raise Missing(f"no java on PATH, and installing {JRE_PACKAGE} needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", JRE_PACKAGE]):
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Missing(f"{' '.join(command)} failed: {exc}") from None
        if done.returncode != 0:
            raise Missing(f"{' '.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}")
    java = shutil.which("java")
    if not java:
        raise Missing(f"{JRE_PACKAGE} installed but no java on PATH")
    return java


def _venv(name: str, packages: tuple[str, ...], install: bool) -> Path:
    """The python of a ready virtual environment holding ``packages`` (made if missing)."""
    return cached_venv(_venv_dir(name, packages), name, packages, install=install, timeout=PIP_TIMEOUT)


def required() -> bool:
    """``SPOTIFY_CATALOG_REQUIRE_ENGINES=1``: install what is missing; a missing tool fails the suite."""
    return os.environ.get("SPOTIFY_CATALOG_REQUIRE_ENGINES") == "1"


def unavailable() -> str | None:
    """Why the suite skips (one line), or ``None`` when it runs: only when required (``make
    test-engines``, ``.ci/run``), since it takes a minute or two and a plain ``make test`` should not."""
    if required():
        return None
    try:
        prepare(install=False)
    except Missing as exc:
        return f"engines: {exc}; 'make test-engines' installs Java, pyspark and DuckDB and runs them"
    return "engines: run by 'make test-engines' (SPOTIFY_CATALOG_REQUIRE_ENGINES=1)"


def prepare(*, install: bool) -> Tools:
    """The tools, installed first if ``install``; :class:`Missing` says what is not there."""
    java = _java(install)
    return Tools(
        java=java,
        spark_python=_venv("spark", SPARK_PACKAGES, install),
        duckdb_python=_venv("duckdb", DUCKDB_PACKAGES, install),
    )


if __name__ == "__main__":
    try:
        tools = prepare(install=True)
    except Missing as exc:
        print(f"engines: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"engines: java {tools.java}, spark {tools.spark_python}, duckdb {tools.duckdb_python}")
