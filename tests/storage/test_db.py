"""The schema and the upserts on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from emulated import table_contents
from spotify_catalog.errors import StorageError, UsageError
from spotify_catalog.redaction import redact_url
from spotify_catalog.storage import schema
from spotify_catalog.storage.engine import create_engine
from spotify_catalog.storage.migrate import migrate, open_database
from spotify_catalog.storage.write import insert_missing, replace_children, upsert

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = open_database(db_url)
    yield engine
    engine.dispose()


def test_schema_is_created_and_versioned(engine: sa.Engine) -> None:
    names = set(sa.inspect(engine).get_table_names())
    assert {t.name for t in schema.metadata.sorted_tables} <= names
    migrate(engine)  # a second time is a no-op
    with engine.connect() as conn:
        assert conn.execute(sa.select(schema.state.c.value)).scalars().all() == [str(schema.SCHEMA_VERSION)]


def test_newer_schema_is_refused(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(schema.state.update().values(value=str(schema.SCHEMA_VERSION + 1)))
    with pytest.raises(StorageError, match="newer than this program"):
        migrate(engine)


def test_simplified_never_erases_full(engine: sa.Engine) -> None:
    full = {
        "id": "4Z8W4fKeB5YxbusRsdQVPb",
        "name": "Radiohead",
        "popularity": 79,
        "followers": 9_000_000,
        "image_url": "https://i.scdn.co/image/big",
        "uri": "spotify:artist:4Z8W4fKeB5YxbusRsdQVPb",
        "detail": "full",
        "raw": {"id": "4Z8W4fKeB5YxbusRsdQVPb", "popularity": 79},
        "fetched_at": T0,
    }
    simplified = {
        "id": "4Z8W4fKeB5YxbusRsdQVPb",
        "name": "Radiohead (renamed)",
        "uri": "spotify:artist:4Z8W4fKeB5YxbusRsdQVPb",
        "detail": "simplified",
        "raw": {"id": "4Z8W4fKeB5YxbusRsdQVPb"},
        "fetched_at": T0 + timedelta(hours=1),
    }
    with engine.begin() as conn:
        upsert(conn, schema.artists, [full])
        upsert(conn, schema.artists, [simplified])
    with engine.connect() as conn:
        row = conn.execute(sa.select(schema.artists)).mappings().one()
    assert row["name"] == "Radiohead (renamed)"  # columns the simplified object has are updated
    assert row["popularity"] == 79
    assert row["followers"] == 9_000_000
    assert row["image_url"] == "https://i.scdn.co/image/big"
    assert row["detail"] == "full"
    assert row["raw"] == {"id": "4Z8W4fKeB5YxbusRsdQVPb", "popularity": 79}
    assert row["fetched_at"] == T0 + timedelta(hours=1)


def test_full_replaces_simplified_and_raw(engine: sa.Engine) -> None:
    base = {"id": "a1", "uri": "spotify:album:a1", "fetched_at": T0}
    with engine.begin() as conn:
        upsert(conn, schema.albums, [{**base, "name": "A", "detail": "simplified", "raw": {"s": 1}}])
        upsert(conn, schema.albums, [{**base, "name": "A", "detail": "simplified", "raw": {"s": 2}}])
    with engine.connect() as conn:
        assert conn.execute(sa.select(schema.albums.c.raw)).scalar() == {"s": 2}
    with engine.begin() as conn:
        upsert(
            conn,
            schema.albums,
            [{**base, "name": "A", "label": "L", "detail": "full", "raw": {"f": 1}, "copyrights": ["(C) x"]}],
        )
    with engine.connect() as conn:
        row = conn.execute(sa.select(schema.albums)).mappings().one()
    assert (row["detail"], row["raw"], row["label"], row["copyrights"]) == ("full", {"f": 1}, "L", ["(C) x"])


def test_datetimes_read_back_as_aware_utc(engine: sa.Engine) -> None:
    plus2 = timezone(timedelta(hours=2))
    with engine.begin() as conn:
        upsert(
            conn,
            schema.artists,
            [{"id": "x", "detail": "simplified", "fetched_at": datetime(2026, 1, 1, 14, 30, tzinfo=plus2)}],
        )
    with engine.connect() as conn:
        value = conn.execute(sa.select(schema.artists.c.fetched_at)).scalar()
    assert value == datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    assert value.utcoffset() == timedelta(0)


def test_naive_datetime_is_refused(engine: sa.Engine) -> None:
    with pytest.raises(sa.exc.StatementError), engine.begin() as conn:
        upsert(conn, schema.artists, [{"id": "x", "detail": "full", "fetched_at": datetime(2026, 1, 1)}])


def test_unicode_and_case_sensitive_ids(engine: sa.Engine) -> None:
    rows = [
        {"id": "3Nrfpe0tUJi4K4DXYWgMUX", "name": "방탄소년단 BTS", "detail": "simplified"},
        {"id": "3nrfpe0tuji4k4dxywgmux", "name": "\uff22\uff34\uff33", "detail": "simplified"},
    ]
    with engine.begin() as conn:
        upsert(conn, schema.artists, rows)
        upsert(conn, schema.artist_snapshots, [{"artist_id": "x", "snapshot_date": date(2026, 11, 25)}])
    with engine.connect() as conn:
        got = table_contents(conn, schema.artists, exclude=("fetched_at", "raw", "uri", "href"))
    assert [(r[0], r[1]) for r in got] == sorted((r["id"], r["name"]) for r in rows)


# what a backslash or a quote could break: SQL string escaping (MySQL/MariaDB sessions read
# backslashes as themselves, so that pymysql only doubles quotes), JSON escapes inside raw
AWKWARD = ["O'Brien", "back\\slash", "\\'", "\\n and a real\nnewline", "50% off_", "'; --", "\\\\'\\"]


def test_backslashes_and_quotes_round_trip(engine: sa.Engine) -> None:
    rows = [
        {"id": f"id{i}", "name": text, "detail": "full", "raw": {"name": text, "list": [text, "\\u00e9"]}}
        for i, text in enumerate(AWKWARD)
    ]
    with engine.begin() as conn:
        upsert(conn, schema.artists, rows)  # the driver's executemany
        upsert(conn, schema.artists, rows[:1])  # an update of an existing row
        conn.execute(schema.artists.insert().values(id="one", name=AWKWARD[-1], detail="full"))  # one row
    a = schema.artists
    with engine.connect() as conn:
        got = {r.id: (r.name, r.raw) for r in conn.execute(sa.select(a.c.id, a.c.name, a.c.raw))}
        found = conn.execute(sa.select(a.c.id).where(a.c.name.startswith("\\'", autoescape=True))).scalars()
        assert sorted(found) == ["id2"]
    assert got == {**{r["id"]: (r["name"], r["raw"]) for r in rows}, "one": (AWKWARD[-1], None)}


def test_a_urls_own_mysql_init_command_is_kept(mysql_url: str) -> None:
    url = sa.make_url(mysql_url).update_query_dict({"init_command": "SET SESSION sql_mode='ANSI_QUOTES'"})
    engine = open_database(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar() == "ANSI_QUOTES"
    finally:
        engine.dispose()
    engine = open_database(mysql_url)
    try:
        with engine.connect() as conn:
            server, session = conn.exec_driver_sql("SELECT @@GLOBAL.sql_mode, @@SESSION.sql_mode").one()
        modes = set(session.split(","))
        assert "NO_BACKSLASH_ESCAPES" in modes
        assert set(server.split(",")) - {""} <= modes  # added to the server's modes, none taken away
    finally:
        engine.dispose()


def test_replace_children_and_insert_missing(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        replace_children(
            conn,
            schema.album_artists,
            "album_id",
            ["a"],
            [
                {"album_id": "a", "position": 0, "artist_id": "x"},
                {"album_id": "a", "position": 1, "artist_id": "y"},
            ],
        )
        new = [{"album_id": "a", "position": 0, "artist_id": "z"}]
        replace_children(conn, schema.album_artists, "album_id", ["a"], new)
        insert_missing(conn, schema.artist_genres, [{"artist_id": "z", "genre": "k-pop"}] * 2)
        insert_missing(conn, schema.artist_genres, [{"artist_id": "z", "genre": "k-pop"}])
    with engine.connect() as conn:
        assert table_contents(conn, schema.album_artists) == [("a", 0, "z")]
        assert table_contents(conn, schema.artist_genres) == [("z", "k-pop")]


def test_bad_urls_are_usage_errors(tmp_path: object) -> None:
    with pytest.raises(UsageError, match="not a database URL"):
        create_engine("nonsense")
    with pytest.raises(UsageError):
        create_engine("oracle+nosuchdriver://x/y")
    assert "secret" not in redact_url("postgresql+psycopg://u:secret@h/d")


def test_unreachable_server_is_a_storage_error() -> None:
    engine = create_engine("postgresql+psycopg://nobody:pw@127.0.0.1:1/none")
    with pytest.raises(StorageError, match="cannot set up the database") as info:
        migrate(engine)
    assert "pw" not in str(info.value).replace("postgresql", "")
