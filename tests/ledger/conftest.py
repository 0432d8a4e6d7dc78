"""The ledger tests' databases."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A ledger in a SQLite file (created on first use, its directory too), PostgreSQL, MariaDB."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'spotify-catalog' / 'ledger.db'}"
    return str(request.getfixturevalue("postgres_url" if request.param == "postgresql" else "mysql_url"))
