"""``spotify-catalog export`` over the project's real schema: files, DDL that runs, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from lake_helpers import PARQUET, as_read, database_rows, fill, lake_rows
from lake_schema import GOLDEN, REGENERATE, golden_schema, golden_tables

from spotify_catalog import export as lake_export
from spotify_catalog.cli import main
from spotify_catalog.storage.migrate import open_database
from spotify_catalog.storage.schema import metadata

PARTITIONING = ds.partitioning(pa.schema([("dt", pa.string())]), flavor="hive")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EXPORTED = [t.name for t in metadata.sorted_tables if not t.name.startswith("_")]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["export", *args])
    assert "Traceback" not in result.stderr, result.stderr
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def catalog(tmp_path: Path) -> str:
    """A SQLite file with the real schema and 23 rows in every table."""
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    engine = sa.create_engine(url)
    fill(engine, metadata, 23)
    engine.dispose()
    return url


def test_every_table_of_the_real_schema_round_trips(db_url: str, tmp_path: Path) -> None:
    """Every table of the project's schema, every column: the files have the golden schema
    (``tests/data/lake_schema.json``) and the database's rows."""
    assert sorted(golden_tables()) == sorted(EXPORTED), f"tables other than {GOLDEN}'s ({REGENERATE})"
    engine = sa.create_engine(db_url)
    try:
        fill(engine, metadata, 23, gone=True)
        code, out, err = run(
            "--db", db_url, "--to", str(tmp_path / "lake"), "--snapshot-date", "2026-11-25",
            "--with-raw", "--batch-rows", "10", "--include-gone",
        )  # fmt: skip
        assert code == 0, err
        assert out == ""
        for name in EXPORTED:
            table = metadata.tables[name]
            assert f"{name}: 23 rows -> {tmp_path}/lake/{name}/dt=2026-11-25/part-00000.parquet" in err
            got = ds.dataset(tmp_path / "lake" / name, format=PARQUET, partitioning=PARTITIONING).to_table()
            want = as_read(golden_schema(name)).append(pa.field("dt", pa.string()))
            assert got.schema.equals(want), f"{name}: not the schema of {GOLDEN} (on purpose? {REGENERATE})"
            rows = database_rows(engine, table, with_raw=True, include_gone=True)
            assert lake_rows(got, table) == rows, name
        assert not (tmp_path / "lake" / "_tasks").exists()
    finally:
        engine.dispose()


def test_gone_rows_are_left_out_unless_include_gone(catalog: str, tmp_path: Path) -> None:
    """Rows with ``gone_at`` set, and rows belonging to a gone entity (a discography link of a gone
    artist or to a gone album, a gone track's artists, ...), are not exported by default; with
    ``--include-gone`` every row is, with the ``gone_at`` column."""
    engine = sa.create_engine(catalog)
    fill(engine, metadata, 23, gone=True)
    everything = {name: database_rows(engine, metadata.tables[name], include_gone=True) for name in EXPORTED}
    engine.dispose()
    gone = {
        name: {r["id"] for r in rows if r["gone_at"] is not None}
        for name, rows in everything.items()
        if "gone_at" in metadata.tables[name].c
    }
    assert all(0 < len(ids) < 23 for ids in gone.values()), gone  # some gone, some not
    parents = {
        name: {c.name: c.info["belongs_to"] for c in metadata.tables[name].c if "belongs_to" in c.info}
        for name in EXPORTED
    }
    code, _, err = run("--db", catalog, "--to", str(tmp_path / "lake"), "--snapshot-date", "2026-11-25")
    assert code == 0, err
    left_out = 0
    for name in EXPORTED:
        table = metadata.tables[name]
        got = ds.dataset(tmp_path / "lake" / name, format="parquet", partitioning=PARTITIONING).to_table()
        assert "gone_at" not in got.column_names
        want = [
            {k: v for k, v in row.items() if k != "gone_at"}
            for row in everything[name]
            if row.get("gone_at") is None
            and not any(row[column] in gone.get(parent, ()) for column, parent in parents[name].items())
        ]
        assert lake_rows(got, table) == want, name
        left_out += len(everything[name]) - len(want)
    assert left_out > 0
    assert len(parents["artist_albums"]) == 2  # left out if the artist or the album is gone
    assert "artist_id" not in parents["album_artists"]  # an album's credits stay when an artist is gone

    code, _, err = run(
        "--db", catalog, "--to", str(tmp_path / "lake"), "--snapshot-date", "2026-11-25", "--include-gone"
    )  # fmt: skip
    assert code == 0, err
    for name in EXPORTED:
        got = ds.dataset(tmp_path / "lake" / name, format=PARQUET, partitioning=PARTITIONING).to_table()
        assert lake_rows(got, metadata.tables[name]) == everything[name], name
    albums = ds.dataset(tmp_path / "lake" / "albums", format=PARQUET, partitioning=PARTITIONING).to_table()
    assert albums.schema.field("gone_at").type == pa.timestamp("us")  # INT96: UTC without a zone
    code, ddl, _ = run("--to", str(tmp_path / "lake"), "--print-ddl", "spark", "--tables", "albums")
    assert "`gone_at`" not in ddl
    code, ddl, _ = run(
        "--to", str(tmp_path / "lake"), "--print-ddl", "spark", "--tables", "albums", "--include-gone"
    )
    assert "  `gone_at` timestamp,\n" in ddl


def test_real_schema_types() -> None:
    tracks = lake_export.arrow_schema(metadata.tables["tracks"])
    assert tracks.field("id").type == pa.string()
    assert not tracks.field("id").nullable
    assert tracks.field("duration_ms").type == pa.int32()
    assert tracks.field("explicit").type == pa.bool_()
    assert tracks.field("available_markets").type == pa.list_(pa.string())
    assert tracks.field("fetched_at").type == pa.timestamp("us", tz="UTC")
    assert tracks.field("popularity").nullable
    assert "raw" not in tracks.names
    snapshots = lake_export.arrow_schema(metadata.tables["track_snapshots"])
    assert snapshots.field("snapshot_date").type == pa.date32()


def test_the_catalog_tables_beyond_artists_have_ddl_and_types() -> None:
    top = lake_export.arrow_schema(metadata.tables["artist_top_tracks"])
    assert top.names == ["artist_id", "market", "snapshot_date", "position", "track_id"]
    assert top.field("snapshot_date").type == pa.date32()
    items = lake_export.arrow_schema(metadata.tables["playlist_items"])
    assert items.field("added_at").type == pa.timestamp("us", tz="UTC")
    assert items.field("track_id").nullable  # local files and removed tracks have no id
    assert lake_export.arrow_schema(metadata.tables["episodes"]).field("languages").type == pa.list_(
        pa.string()
    )
    assert lake_export.arrow_schema(metadata.tables["audiobooks"]).field("authors").type == pa.list_(
        pa.string()
    )
    code, ddl, _ = run(
        "--to", "s3://bucket/lake/", "--print-ddl", "athena", "--tables",
        "artist_top_tracks,playlists,playlist_items,shows,episodes,audiobooks,chapters",
    )  # fmt: skip
    assert code == 0
    for name in (
        "artist_top_tracks",
        "playlists",
        "playlist_items",
        "shows",
        "episodes",
        "audiobooks",
        "chapters",
    ):
        assert f"CREATE EXTERNAL TABLE IF NOT EXISTS `{name}` (" in ddl, name
    assert "`languages` array<string>" in ddl


def test_printed_duckdb_ddl_counts_every_table(catalog: str, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for day in ("2026-11-24", "2026-11-25"):
        code, _, err = run("--db", catalog, "--to", str(lake), "--snapshot-date", day)
        assert code == 0, err
    code, ddl, err = run("--to", str(lake), "--print-ddl", "duckdb")
    assert code == 0, err
    con = duckdb.connect()
    con.execute(ddl)
    for name in EXPORTED:
        assert con.execute(f'SELECT count(*), count(DISTINCT dt) FROM "{name}"').fetchone() == (46, 2), name
        assert con.execute(f"SELECT count(*), min(dt) FROM {name}_latest").fetchone() == (23, "2026-11-25")
    assert con.execute("SELECT max(dt) FROM tracks").fetchone() == ("2026-11-25",)

    # one table exported on a later date: its _latest moves on, the others' stay
    engine = sa.create_engine(catalog)
    with engine.begin() as conn:
        conn.execute(
            sa.delete(metadata.tables["artists"]).where(metadata.tables["artists"].c.id > "id000019")
        )
    engine.dispose()
    code, _, err = run(
        "--db", catalog, "--to", str(lake), "--snapshot-date", "2026-11-26", "--tables", "artists"
    )
    assert code == 0, err
    assert con.execute("SELECT count(*), min(dt) FROM artists_latest").fetchone() == (20, "2026-11-26")
    assert con.execute("SELECT count(*), min(dt) FROM tracks_latest").fetchone() == (23, "2026-11-25")
    assert con.execute("SELECT count(*) FROM artists").fetchone() == (66,)


def _exported_with_duckdb_ddl(catalog: str, lake: Path) -> str:
    """Export ``catalog`` to ``lake`` (one date); the DuckDB DDL printed for it."""
    code, _, err = run("--db", catalog, "--to", str(lake), "--snapshot-date", "2026-11-25")
    assert code == 0, err
    code, ddl, err = run("--to", str(lake), "--print-ddl", "duckdb")
    assert code == 0, err
    return ddl


def test_printed_duckdb_ddl_reads_timestamps_as_the_same_instants(catalog: str, tmp_path: Path) -> None:
    """The files hold INT96 (no zone): the printed views make them TIMESTAMP WITH TIME ZONE, the same
    instants as in the database whatever DuckDB's own time zone."""
    ddl = _exported_with_duckdb_ddl(catalog, tmp_path / "lake")
    engine = sa.create_engine(catalog)
    want = {
        name: sorted(
            (r["id"] if "id" in r else r["input"], r[column])
            for r in database_rows(engine, metadata.tables[name])
            if r[column] is not None
        )
        for name, column in (("tracks", "fetched_at"), ("artist_resolutions", "resolved_at"))
    }
    engine.dispose()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'America/New_York'")
    con.execute(ddl)
    for name, column in (("tracks", "fetched_at"), ("artist_resolutions", "resolved_at")):
        key = "id" if name == "tracks" else "input"
        assert con.execute(f"SELECT DISTINCT typeof({column}) FROM {name}_latest").fetchall() == [
            ("TIMESTAMP WITH TIME ZONE",)
        ]
        got = con.execute(
            f"SELECT {key}, epoch_us({column}) FROM {name} WHERE {column} IS NOT NULL ORDER BY 1"
        ).fetchall()
        assert got == [(k, (v - EPOCH) // timedelta(microseconds=1)) for k, v in want[name]], name


def test_athena_and_spark_ddl() -> None:
    code, athena, _ = run("--to", "s3://bucket/lake/", "--print-ddl", "athena", "--tables", "tracks,albums")
    assert code == 0
    assert athena.count("CREATE EXTERNAL TABLE") == 2
    assert "CREATE EXTERNAL TABLE IF NOT EXISTS `tracks` (\n  `id` string,\n" in athena
    for piece in (
        "  `duration_ms` int,\n",
        "  `explicit` boolean,\n",
        "  `available_markets` array<string>,\n",
        "  `fetched_at` timestamp\n)",
        "PARTITIONED BY (`dt` string)\nSTORED AS PARQUET\nLOCATION 's3://bucket/lake/tracks/'",
        "'storage.location.template' = 's3://bucket/lake/tracks/dt=${dt}/'",
    ):
        assert piece in athena
    assert "`raw`" not in athena
    code, spark, _ = run("--to", "s3a://bucket/lake/", "--print-ddl=spark", "--with-raw", "--tables=tracks")
    assert code == 0
    assert spark.startswith("CREATE TABLE IF NOT EXISTS `tracks` (\n")
    assert "  `raw` string,\n  `fetched_at` timestamp,\n  `dt` string\n)\nUSING parquet\n" in spark
    assert "PARTITIONED BY (dt)\nLOCATION 's3a://bucket/lake/tracks/';\nMSCK REPAIR TABLE `tracks`;" in spark


RELEASED = ("albums", "episodes", "chapters")  # the tables with a release_date


@pytest.mark.parametrize("dialect", ["athena", "spark", "duckdb"])
def test_every_dialect_reads_release_date_as_a_date_beside_its_text(dialect: str) -> None:
    """``release_date`` is a DATE in the lake (it was the string Spotify sends), followed by that
    string (``release_date_text``) and its precision."""
    code, ddl, _ = run("--to", "s3://bucket/lake", "--print-ddl", dialect, "--tables", ",".join(RELEASED))
    assert code == 0
    if dialect == "duckdb":  # DuckDB takes the types from the files (next test)
        assert ddl.count("read_parquet(") == len(RELEASED)
        return
    columns = "  `release_date` date,\n  `release_date_text` string,\n  `release_date_precision` string,\n"
    assert ddl.count(columns) == len(RELEASED), ddl


def test_duckdb_reads_release_date_as_a_date_to_filter_and_group_by(catalog: str, tmp_path: Path) -> None:
    ddl = _exported_with_duckdb_ddl(catalog, tmp_path / "lake")
    engine = sa.create_engine(catalog)
    want = {
        name: sorted(
            (r["id"], r["release_date"], r["release_date_text"])
            for r in database_rows(engine, metadata.tables[name])
        )
        for name in RELEASED
    }
    engine.dispose()
    con = duckdb.connect()
    con.execute(ddl)
    for name in RELEASED:
        types = con.execute(f"SELECT DISTINCT typeof(release_date), typeof(release_date_text) FROM {name}")
        assert types.fetchall() == [("DATE", "VARCHAR")]
        got = con.execute(
            f"SELECT id, release_date, release_date_text FROM {name}_latest ORDER BY id"
        ).fetchall()
        assert got == want[name], name
        assert any(day is not None for _, day, _ in got)  # the sample holds real dates ...
        assert any(day is None and text for _, day, text in got)  # ... and texts that are none
    years = con.execute(
        "SELECT year(release_date) AS y, count(*) FROM albums_latest WHERE release_date >= DATE '2000-01-01' "
        "GROUP BY y ORDER BY y"
    ).fetchall()
    counted: dict[int, int] = {}
    for _, day, _ in want["albums"]:
        if day is not None and day.year >= 2000:
            counted[day.year] = counted.get(day.year, 0) + 1
    assert dict(years) == counted
    assert counted


def _python_block(doc: Path, after: str) -> str:
    """The first ``python`` code block of ``doc`` after the text ``after``."""
    text = doc.read_text(encoding="utf-8")
    return text[text.index(after) :].split("```python\n", 1)[1].split("```", 1)[0]


def test_the_lake_doc_s_local_queries_run_through_duckdb_s_python_module(
    catalog: str, tmp_path: Path
) -> None:
    """docs/lake.md queries a local lake as written, with the DuckDB Python module (it piped them into
    a ``duckdb`` command that installing spotify-catalog does not provide)."""
    doc = Path(__file__).resolve().parents[2] / "docs" / "lake.md"
    (tmp_path / "lake.sql").write_text(_exported_with_duckdb_ddl(catalog, tmp_path / "lake"))
    script = _python_block(doc, "**DuckDB, local**")
    assert "import duckdb" in script
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "count_star()" in done.stdout
    assert "albums" in done.stdout  # the albums per year of release_date
    assert (tmp_path / "catalog.duckdb").is_file()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--tables", "tracks,nope"], 2, "unknown table nope"),
        (["--snapshot-date", "2026-13-01"], 2, "is not a date YYYY-MM-DD"),
        (["--format", "csv", "--compression", "snappy"], 2, "snappy is for Parquet"),
        (["--to", "gs://bucket/x"], 2, "give a directory or an s3://bucket/prefix URL"),
        (["--to", "FILE"], 2, "not a directory"),
        (["--print-ddl", "athena"], 2, "Athena reads from S3"),
        (["--print-ddl", "duckdb", "--format", "csv"], 2, "--print-ddl describes the Parquet layout"),
    ],
)
def test_bad_input_is_one_line_and_exit_code(
    catalog: str, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    (tmp_path / "file").write_text("x")
    args = [str(tmp_path / "file") if a == "FILE" else a for a in args]
    to = [] if "--to" in args else ["--to", str(tmp_path / "lake")]
    got, out, err = run("--db", catalog, *to, *args)
    assert got == code
    assert message in err
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "lake").exists() or not any((tmp_path / "lake").iterdir())


def test_missing_or_empty_database(tmp_path: Path) -> None:
    code, _, err = run("--db", f"sqlite:///{tmp_path / 'none.db'}", "--to", str(tmp_path / "lake"))
    missing = tmp_path / "none.db"
    assert (code, err.strip()) == (
        2,
        f"Error: no database at sqlite:///{missing} (nothing crawled there: check --db)",
    )
    sa.create_engine(f"sqlite:///{tmp_path / 'empty.db'}").connect().close()
    (tmp_path / "empty.db").touch()
    code, _, err = run("--db", f"sqlite:///{tmp_path / 'empty.db'}", "--to", str(tmp_path / "lake"))
    assert code == 2
    assert "has no table " in err
    assert ", tracks, " in err
    assert err.endswith(" (crawl into it first)\n")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    metadata.create_all(engine)  # the schema, no rows: exporting would blank out today's partitions
    engine.dispose()
    code, _, err = run("--db", f"sqlite:///{tmp_path / 'empty.db'}", "--to", str(tmp_path / "lake"))
    assert code == 2
    assert err.startswith(f"Error: nothing to export: the {len(EXPORTED)} tables in sqlite:///")
    assert not (tmp_path / "lake").exists()
    code, _, err = run("--db", "not a url", "--to", str(tmp_path / "lake"))
    assert (code, "not a database URL: 'not a url'" in err) == (2, True)


def test_an_unreachable_server_hides_the_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg://user:s3cr3t-pw@127.0.0.1:9/db"
    code, out, err = run("--db", url, "--to", str(tmp_path / "lake"))
    assert code == 1
    assert err.startswith("Error: cannot open the database postgresql+psycopg://user:***@127.0.0.1:9/db")
    assert "s3cr3t-pw" not in err + out


def test_quiet_prints_nothing_and_jsonl_is_written(catalog: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["-q", "export", "--db", catalog, "--to", str(tmp_path / "lake"), "--tables", "artists",
         "--format", "jsonl", "--snapshot-date", "2026-01-02"],
    )  # fmt: skip
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    lines = (tmp_path / "lake" / "artists" / "dt=2026-01-02" / "part-00000.jsonl").read_text().splitlines()
    assert len(lines) == 23


def _play(user: str, at: datetime, track: str) -> dict[str, object]:
    return {"user_id": user, "played_at": at, "track_id": track, "context_type": None, "fetched_at": at}


def test_a_users_plays_are_whole_in_every_snapshot_and_latest_holds_the_history(
    db_url: str, tmp_path: Path
) -> None:
    """``plays`` only grows: each export writes every play stored, so ``plays_latest`` (DuckDB, from
    the printed DDL) is the whole history, to the millisecond, and ``plays`` repeats it per date;
    ``top_items`` keeps its own ``snapshot_date`` beside ``dt``."""
    engine = open_database(db_url)
    first = datetime(2026, 11, 23, 23, 59, 59, 999_000, tzinfo=UTC)
    plays = [_play("u1", first + timedelta(minutes=4 * i), f"t{i}") for i in range(3)]
    lake = lake_export.open_lake(str(tmp_path / "lake"))
    names = ["plays", "top_items"]

    def add_and_export(new_plays: list[dict[str, object]], day: date) -> None:
        """The plays added, a top list of that day, then the export of that day."""
        top = {"user_id": "u1", "item_type": "artist", "time_range": "short_term", "position": 0}
        with engine.begin() as conn:
            conn.execute(sa.insert(metadata.tables["plays"]), new_plays)
            conn.execute(
                sa.insert(metadata.tables["top_items"]),
                {**top, "item_id": "a1", "snapshot_date": day, "fetched_at": first},
            )
        lake_export.export(engine, metadata, lake, day, tables=names)

    later = [_play("u1", first + timedelta(days=1, milliseconds=i), f"t{i}") for i in (1, 2)]
    try:
        add_and_export(plays, date(2026, 11, 24))
        add_and_export(later, date(2026, 11, 25))
    finally:
        engine.dispose()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(lake_export.ddl(metadata, lake.uri, "duckdb", tables=names))
    latest = con.execute("SELECT played_at FROM plays_latest ORDER BY played_at").fetchall()
    assert [at for (at,) in latest] == [p["played_at"] for p in plays + later]
    assert con.execute("SELECT dt, count(*) FROM plays GROUP BY dt ORDER BY dt").fetchall() == [
        ("2026-11-24", 3),
        ("2026-11-25", 5),
    ]
    assert con.execute("SELECT count(DISTINCT (user_id, played_at)) FROM plays").fetchone() == (5,)
    days = con.execute("SELECT dt, snapshot_date FROM top_items_latest ORDER BY snapshot_date").fetchall()
    assert days == [("2026-11-25", date(2026, 11, 24)), ("2026-11-25", date(2026, 11, 25))]


USER_TABLES = [
    "users", "plays", "saved_tracks", "saved_albums", "saved_shows", "saved_episodes",
    "followed_artists", "user_playlists", "top_items",
]  # fmt: skip


@pytest.mark.parametrize(
    ("dialect", "to"), [("athena", "s3://b/l"), ("spark", "s3a://b/l"), ("duckdb", "/l")]
)
def test_every_dialect_defines_a_users_tables_and_their_latest_views(dialect: str, to: str) -> None:
    text = lake_export.ddl(metadata, to, dialect)
    for name in USER_TABLES:
        assert f"CREATE OR REPLACE VIEW {name}_latest AS\nSELECT * FROM {name} WHERE dt = " in text
    if dialect == "duckdb":  # types from the files; the instants read as UTC
        assert 'timezone(\'UTC\', "played_at") AS "played_at"' in text
        return
    plays = text[text.index("EXISTS `plays` (") : text.index("VIEW plays_latest")]
    for column in (
        "`user_id` string",
        "`played_at` timestamp",
        "`track_id` string",
        "`fetched_at` timestamp",
    ):
        assert f"\n  {column}" in plays  # Athena: no comma after the last column
    assert "  `snapshot_date` date,\n  `position` int," in text
