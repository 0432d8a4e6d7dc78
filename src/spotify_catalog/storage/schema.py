"""The one schema, SQLAlchemy Core, identical on SQLite, PostgreSQL and MySQL/MariaDB.

Conventions (see docs/schema.md):

- ids are ``String(40)``; names and long texts are ``Text``; every key column has a length.
- list-valued columns are ``JSON`` with ``info={"list_of": <element type>}``; other JSON columns hold
  objects (``raw``, ``alternatives``).
- release dates, as Spotify gives them (``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``, with a
  ``release_date_precision``), are text with ``info={"partial_date": True}``: the lake holds them as a
  DATE, the text beside it.
- columns whose values are nearly all different from row to row (names, descriptions, URLs, ISRC/UPC/EAN
  codes, durations, artists' follower counts) carry ``info={"distinct": True}``: the lake writes them
  without a Parquet dictionary.
- ``raw`` is the raw JSON of the most complete, last response for that entity; ``detail`` says whether
  the row was last filled from a ``full`` object or only ever seen ``simplified``; ``fetched_at`` is
  when a response last carried the entity (:class:`UtcDateTime`, aware UTC on every backend).
- columns a mode does not provide (popularity, followers, label, available_markets, ...) are ``NULL``.
- ``gone_at`` (artists, albums, tracks) is set when Spotify answered 404 for the entity, or no crawled
  discography lists an album any more; a later response carrying the entity clears it. Rows that belong
  to one entity (a link table's parent) name its table in ``info={"belongs_to": ...}``; export leaves
  gone rows and the rows belonging to them out.
- bookkeeping tables start with ``_``: ``_state`` (key/value, includes ``schema_version``), ``_tasks``
  (the crawl's work queue), ``_runs`` (one row per crawl run).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

SCHEMA_VERSION = 4
# 2: _runs.updated_at/pid/host, _tasks.lease_until/leased_by; 3: ix__tasks_claim; 4: a user's own data
# (users, plays, saved_*, followed_artists, user_playlists, top_items)

ID = 40  # Spotify ids are 22 base-62 characters; some room for other id shapes
metadata = sa.MetaData()


# MySQL/MariaDB: Unicode everywhere and binary collation, so ids stay case-sensitive keys.
def _table(name: str, *items: sa.schema.SchemaItem) -> sa.Table:
    return sa.Table(
        name, metadata, *items, mysql_engine="InnoDB", mysql_charset="utf8mb4", mysql_collate="utf8mb4_bin"
    )


class UtcDateTime(sa.TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that takes aware datetimes and reads back aware UTC on every backend
    (SQLite and MySQL store naive UTC; PostgreSQL ``timestamptz``)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UtcDateTime needs an aware datetime")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class UtcDateTimeMs(UtcDateTime):
    """:class:`UtcDateTime` keeping milliseconds on MySQL/MariaDB too (``DATETIME(3)``; SQLite and
    PostgreSQL keep microseconds anyway): a play's ``played_at`` is a key to the millisecond."""

    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=3))
        return dialect.type_descriptor(self.impl_instance)


def _list_of(name: str, element: sa.types.TypeEngine[Any]) -> sa.Column[Any]:
    return sa.Column(name, sa.JSON, info={"list_of": element})


def _entity_columns() -> list[sa.Column[Any]]:
    """Columns every catalog entity table ends with."""
    return [
        sa.Column("uri", sa.String(100), info={"distinct": True}),
        sa.Column("href", sa.String(255), info={"distinct": True}),
        sa.Column("spotify_url", sa.String(255), info={"distinct": True}),
        sa.Column("detail", sa.String(16), nullable=False),  # "simplified" | "full"
        sa.Column("raw", sa.JSON),
        sa.Column("fetched_at", UtcDateTime),
        sa.Column("gone_at", UtcDateTime),  # answered 404, or an album no discography lists any more
    ]


def _belongs_to(name: str, table: str, **kwargs: Any) -> sa.Column[Any]:
    """An id column naming the entity its row belongs to (left out of an export when that one is gone)."""
    return sa.Column(name, sa.String(ID), info={"belongs_to": table}, **kwargs)


artists = _table(
    "artists",
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("name", sa.Text, info={"distinct": True}),
    sa.Column("popularity", sa.Integer),
    sa.Column("followers", sa.Integer, info={"distinct": True}),
    sa.Column("image_url", sa.Text, info={"distinct": True}),
    *_entity_columns(),
)

artist_genres = _table(
    "artist_genres",
    _belongs_to("artist_id", "artists", primary_key=True),
    sa.Column("genre", sa.String(255), primary_key=True),
)

albums = _table(
    "albums",
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("name", sa.Text, info={"distinct": True}),
    sa.Column("album_type", sa.String(16)),
    sa.Column("total_tracks", sa.Integer),
    sa.Column("release_date", sa.String(10), info={"partial_date": True}),
    sa.Column("release_date_precision", sa.String(8)),
    sa.Column("label", sa.Text),
    sa.Column("popularity", sa.Integer),
    sa.Column("upc", sa.String(32), info={"distinct": True}),
    sa.Column("ean", sa.String(32), info={"distinct": True}),
    _list_of("available_markets", sa.String(2)),
    _list_of("copyrights", sa.Text()),
    sa.Column("image_url", sa.Text, info={"distinct": True}),
    sa.Column("restriction", sa.String(64)),
    *_entity_columns(),
)

album_artists = _table(
    "album_artists",
    _belongs_to("album_id", "albums", primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("artist_id", sa.String(ID), nullable=False, index=True),
)

artist_albums = _table(
    "artist_albums",
    _belongs_to("artist_id", "artists", primary_key=True),
    _belongs_to("album_id", "albums", primary_key=True, index=True),
    sa.Column("album_group", sa.String(16)),
    # the start (first page) of the last refresh of a discography that listed this link
    sa.Column("listed_at", UtcDateTime),
)

tracks = _table(
    "tracks",
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("name", sa.Text, info={"distinct": True}),
    sa.Column("album_id", sa.String(ID), index=True),
    sa.Column("disc_number", sa.Integer),
    sa.Column("track_number", sa.Integer),
    sa.Column("duration_ms", sa.Integer, info={"distinct": True}),
    sa.Column("explicit", sa.Boolean),
    sa.Column("is_local", sa.Boolean),
    sa.Column("is_playable", sa.Boolean),
    sa.Column("preview_url", sa.Text, info={"distinct": True}),
    sa.Column("popularity", sa.Integer),
    sa.Column("isrc", sa.String(32), info={"distinct": True}),
    sa.Column("ean", sa.String(32), info={"distinct": True}),
    sa.Column("upc", sa.String(32), info={"distinct": True}),
    _list_of("available_markets", sa.String(2)),
    sa.Column("linked_from_id", sa.String(ID)),
    sa.Column("restriction", sa.String(64)),
    *_entity_columns(),
)

track_artists = _table(
    "track_artists",
    _belongs_to("track_id", "tracks", primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("artist_id", sa.String(ID), nullable=False, index=True),
)

artist_snapshots = _table(
    "artist_snapshots",
    _belongs_to("artist_id", "artists", primary_key=True),
    sa.Column("snapshot_date", sa.Date, primary_key=True),
    sa.Column("popularity", sa.Integer),
    sa.Column("followers", sa.Integer, info={"distinct": True}),
)

track_snapshots = _table(
    "track_snapshots",
    _belongs_to("track_id", "tracks", primary_key=True),
    sa.Column("snapshot_date", sa.Date, primary_key=True),
    sa.Column("popularity", sa.Integer),
)

artist_resolutions = _table(
    "artist_resolutions",
    sa.Column("input", sa.String(255), primary_key=True),  # the name as the user gave it
    sa.Column("artist_id", sa.String(ID)),  # NULL: the search found no artist
    sa.Column("artist_name", sa.Text, info={"distinct": True}),
    sa.Column("exact", sa.Boolean, nullable=False),  # an exact (NFKC, casefold) name match
    sa.Column("alternatives", sa.JSON),  # [{"id", "name", "popularity", "followers"}, ...] in Spotify's order
    sa.Column("resolved_at", UtcDateTime, nullable=False),
)

artist_top_tracks = _table(
    "artist_top_tracks",
    _belongs_to("artist_id", "artists", primary_key=True),
    sa.Column("market", sa.String(2), primary_key=True),
    sa.Column("snapshot_date", sa.Date, primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("track_id", sa.String(ID), nullable=False, index=True),
)

playlists = _table(
    "playlists",
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("name", sa.Text, info={"distinct": True}),
    sa.Column("description", sa.Text, info={"distinct": True}),
    sa.Column("owner_id", sa.String(255)),
    sa.Column("owner_name", sa.Text),
    sa.Column("public", sa.Boolean),
    sa.Column("collaborative", sa.Boolean),
    sa.Column("snapshot_id", sa.String(255), info={"distinct": True}),
    sa.Column("followers", sa.Integer),
    sa.Column("total_items", sa.Integer),
    # the snapshot_id of the items stored in playlist_items (NULL: never fetched, development mode)
    sa.Column("items_snapshot_id", sa.String(255), info={"distinct": True}),
    sa.Column("image_url", sa.Text, info={"distinct": True}),
    *_entity_columns(),
)

playlist_items = _table(
    "playlist_items",
    _belongs_to("playlist_id", "playlists", primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("item_type", sa.String(16)),  # track | episode | NULL (removed from Spotify)
    sa.Column("track_id", sa.String(ID), index=True),
    sa.Column("episode_id", sa.String(ID)),
    sa.Column("added_at", UtcDateTime),
    sa.Column("added_by_id", sa.String(255)),
    sa.Column("is_local", sa.Boolean),
    sa.Column("local_uri", sa.Text),  # a local file's spotify:local:… URI (no id)
)

shows = _table(
    "shows",
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("name", sa.Text, info={"distinct": True}),
    sa.Column("publisher", sa.Text),
    sa.Column("description", sa.Text, info={"distinct": True}),
    sa.Column("explicit", sa.Boolean),
    _list_of("languages", sa.String(16)),
    sa.Column("media_type", sa.String(16)),
    sa.Column("total_episodes", sa.Integer),
    sa.Column("is_externally_hosted", sa.Boolean),
    _list_of("available_markets", sa.String(2)),
    _list_of("copyrights", sa.Text()),
    sa.Column("image_url", sa.Text, info={"distinct": True}),
    *_entity_columns(),
)

episodes = _table(
    "episodes",
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("show_id", sa.String(ID), index=True),
    sa.Column("name", sa.Text, info={"distinct": True}),
    sa.Column("description", sa.Text, info={"distinct": True}),
    sa.Column("release_date", sa.String(10), info={"partial_date": True}),
    sa.Column("release_date_precision", sa.String(8)),
    sa.Column("duration_ms", sa.Integer, info={"distinct": True}),
    sa.Column("language", sa.String(16)),
    _list_of("languages", sa.String(16)),
    sa.Column("explicit", sa.Boolean),
    sa.Column("is_externally_hosted", sa.Boolean),
    sa.Column("is_playable", sa.Boolean),
    sa.Column("image_url", sa.Text, info={"distinct": True}),
    sa.Column("restriction", sa.String(64)),
    *_entity_columns(),
)

audiobooks = _table(
    "audiobooks",
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("name", sa.Text, info={"distinct": True}),
    _list_of("authors", sa.Text()),
    _list_of("narrators", sa.Text()),
    sa.Column("publisher", sa.Text),
    sa.Column("description", sa.Text, info={"distinct": True}),
    sa.Column("edition", sa.Text),
    sa.Column("explicit", sa.Boolean),
    _list_of("languages", sa.String(16)),
    sa.Column("media_type", sa.String(16)),
    sa.Column("total_chapters", sa.Integer),
    _list_of("available_markets", sa.String(2)),
    _list_of("copyrights", sa.Text()),
    sa.Column("image_url", sa.Text, info={"distinct": True}),
    *_entity_columns(),
)

chapters = _table(
    "chapters",
    sa.Column("id", sa.String(ID), primary_key=True),
    sa.Column("audiobook_id", sa.String(ID), index=True),
    sa.Column("chapter_number", sa.Integer),
    sa.Column("name", sa.Text, info={"distinct": True}),
    sa.Column("description", sa.Text, info={"distinct": True}),
    sa.Column("release_date", sa.String(10), info={"partial_date": True}),
    sa.Column("release_date_precision", sa.String(8)),
    sa.Column("duration_ms", sa.Integer, info={"distinct": True}),
    sa.Column("explicit", sa.Boolean),
    _list_of("languages", sa.String(16)),
    sa.Column("is_playable", sa.Boolean),
    _list_of("available_markets", sa.String(2)),
    sa.Column("image_url", sa.Text, info={"distinct": True}),
    sa.Column("restriction", sa.String(64)),
    *_entity_columns(),
)

# ------------------------------------------------------------------ a user's own data (crawl --me)
# Every row names its user (``user_id``, the Spotify user id: a user is never gone, so no
# ``belongs_to``) and carries ``fetched_at``, when the crawl wrote it. The lists of a user (saved
# items, followed artists, playlists) are replaced whole with each fetch that found them changed;
# ``plays`` only grows.

USER_ID = 255  # Spotify user ids: 28 characters today, older accounts have their user name


def _user_key() -> sa.Column[Any]:
    return sa.Column("user_id", sa.String(USER_ID), primary_key=True)


def _fetched() -> sa.Column[Any]:
    return sa.Column("fetched_at", UtcDateTime, nullable=False)


users = _table(
    "users",
    sa.Column("id", sa.String(USER_ID), primary_key=True),
    sa.Column("display_name", sa.Text, info={"distinct": True}),
    sa.Column("country", sa.String(2)),
    sa.Column("product", sa.String(16)),
    sa.Column("followers", sa.Integer),
    sa.Column("image_url", sa.Text, info={"distinct": True}),
    sa.Column("uri", sa.String(300), info={"distinct": True}),
    sa.Column("href", sa.String(400), info={"distinct": True}),
    sa.Column("spotify_url", sa.String(400), info={"distinct": True}),
    sa.Column("raw", sa.JSON),
    _fetched(),
)

plays = _table(
    "plays",
    _user_key(),
    sa.Column("played_at", UtcDateTimeMs, primary_key=True),  # when the play ended, to the millisecond
    sa.Column("track_id", sa.String(ID), nullable=False, index=True),
    sa.Column("context_type", sa.String(16)),  # album | playlist | artist | show | NULL (none)
    sa.Column("context_uri", sa.String(255)),
    _fetched(),
)


def _saved(name: str, item_column: str) -> sa.Table:
    return _table(
        name,
        _user_key(),
        sa.Column(item_column, sa.String(ID), primary_key=True),
        sa.Column("added_at", UtcDateTime),
        _fetched(),
    )


saved_tracks = _saved("saved_tracks", "track_id")
saved_albums = _saved("saved_albums", "album_id")
saved_shows = _saved("saved_shows", "show_id")
saved_episodes = _saved("saved_episodes", "episode_id")

followed_artists = _table(
    "followed_artists",
    _user_key(),
    sa.Column("artist_id", sa.String(ID), primary_key=True),
    _fetched(),
)

user_playlists = _table(
    "user_playlists",
    _user_key(),
    sa.Column("playlist_id", sa.String(ID), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),  # in the user's list (/me/playlists)
    sa.Column("owned", sa.Boolean, nullable=False),  # the user owns it
    sa.Column("collaborative", sa.Boolean),
    _fetched(),
)

top_items = _table(
    "top_items",
    _user_key(),
    sa.Column("item_type", sa.String(8), primary_key=True),  # artist | track
    sa.Column("time_range", sa.String(16), primary_key=True),  # short_term | medium_term | long_term
    sa.Column("snapshot_date", sa.Date, primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("item_id", sa.String(ID), nullable=False),
    _fetched(),
)

USER_LISTS = (
    "saved_tracks",
    "saved_albums",
    "saved_shows",
    "saved_episodes",
    "followed_artists",
    "user_playlists",
)
"""A user's lists, each replaced whole (per ``user_id``) when it is fetched and found changed."""

state = _table(
    "_state",
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

tasks = _table(
    "_tasks",
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),  # pending | done | failed
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("error", sa.Text),
    sa.Column("run_id", sa.Integer),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("done_at", UtcDateTime),
    sa.Column("lease_until", UtcDateTime),  # a crawl process holds the task until then (shared queues)
    sa.Column("leased_by", sa.String(64)),  # which process: "host:pid:run_id"
    # claims read pending tasks of a kind in key order: this index gives them in that order, without
    # sorting every pending task of the kind on each claim
    sa.Index("ix__tasks_claim", "kind", "state", "key"),
)

runs = _table(
    "_runs",
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("ended_at", UtcDateTime),
    sa.Column("status", sa.String(32), nullable=False),  # running | done | stopped | interrupted | failed
    sa.Column("reason", sa.Text),
    sa.Column("retry_at", UtcDateTime),
    sa.Column("api_mode", sa.String(16)),
    sa.Column("requests", sa.Integer, nullable=False, default=0),
    sa.Column("rows_written", sa.Integer, nullable=False, default=0),
    sa.Column("command", sa.Text),
    sa.Column("updated_at", UtcDateTime),  # last activity: requests is kept current while running
    sa.Column("pid", sa.Integer),
    sa.Column("host", sa.String(255)),
)

CATALOG_TABLES: tuple[sa.Table, ...] = tuple(t for t in metadata.sorted_tables if not t.name.startswith("_"))
