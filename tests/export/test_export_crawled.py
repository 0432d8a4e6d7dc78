"""The whole path: the emulator, a crawl into the database, the export, the lake read back."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import sqlalchemy as sa
from lake_helpers import PARQUET, database_rows, lake_rows

from emulated import emulator_settings
from spotify_catalog import export as lake_export
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import Crawler, CrawlOptions, Depth
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.storage import schema
from spotify_catalog.storage.migrate import open_database

PARTITIONING = ds.partitioning(pa.schema([("dt", pa.string())]), flavor="hive")


def test_a_crawled_catalog_round_trips(emulator: Any, db_url: str, tmp_path: Path) -> None:
    settings = emulator_settings(emulator)
    engine = open_database(db_url)
    try:
        catalog = emulator.catalog
        albums = {a: len(catalog.artist_album_ids(a, ("album",))) for a in catalog.artist_ids()}
        artist = next(a for a, n in albums.items() if 2 <= n <= 4)  # a small discography: a fast crawl
        options = CrawlOptions(artists=(ArtistInput(artist, True),), depth=Depth.TRACKS)
        with SpotifyClient(settings) as client:
            Crawler(engine, client, options, now=lambda: datetime(2026, 11, 25, 10, tzinfo=UTC)).run()
        lake = lake_export.open_lake(str(tmp_path / "lake"))
        exported = lake_export.export(engine, schema.metadata, lake, date(2026, 11, 25))
        done = {d.table: d.rows for d in exported}
        with engine.connect() as conn:
            count = sa.select(sa.func.count())
            counts = {t.name: conn.execute(count.select_from(t)).scalar() for t in schema.CATALOG_TABLES}
        assert done == counts
        assert counts["artists"] >= 1
        assert counts["tracks"] > 0

        for table in schema.CATALOG_TABLES:
            got = ds.dataset(tmp_path / "lake" / table.name, format=PARQUET, partitioning=PARTITIONING)
            assert lake_rows(got.to_table(), table) == database_rows(engine, table), table.name

        con = duckdb.connect()
        con.execute(lake_export.ddl(schema.metadata, lake.uri, "duckdb"))
        types = con.execute("SELECT DISTINCT typeof(available_markets), typeof(fetched_at) FROM tracks")
        assert types.fetchall() == [("VARCHAR[]", "TIMESTAMP WITH TIME ZONE")]
        joined = con.execute(
            "SELECT count(*) FROM tracks t JOIN albums a ON t.album_id = a.id WHERE t.dt = a.dt"
        ).fetchone()
        assert joined == (counts["tracks"],)
    finally:
        engine.dispose()
