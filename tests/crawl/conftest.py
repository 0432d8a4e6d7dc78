"""Fixtures of the crawler tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from spotify_catalog.storage.migrate import open_database


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = open_database(f"sqlite:///{tmp_path / 'crawl.db'}")
    yield engine
    engine.dispose()
