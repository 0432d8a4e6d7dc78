"""The report's data: :func:`collect` reads a crawl database (read only: no client, no request, no
write) and returns a :class:`Report` of plain data, bounded in size whatever the size of the catalog.

The aggregations run in SQL, written once with SQLAlchemy Core, the same expressions on SQLite,
PostgreSQL and MySQL/MariaDB (the constructs that compile per dialect: :mod:`~spotify_catalog.report.sql`).
A user's own data (``crawl --me``) is the Listening section: :mod:`~spotify_catalog.report.listening`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from spotify_catalog import status as status_lib
from spotify_catalog.crawl import NOT_FOUND
from spotify_catalog.report.listening import Listening, collect_listening
from spotify_catalog.report.sql import json_list_length, top_artists, utc_date
from spotify_catalog.settings import Settings
from spotify_catalog.storage import schema, state
from spotify_catalog.storage.read_only import has_crawl
from spotify_catalog.transform import FULL, SIMPLIFIED

TOP = 25
"""Artists and labels shown in the top charts."""
RECENT_RUNS = 50
"""Runs listed one by one."""
SAMPLES = 25
"""Entities listed by name in the data-quality section (all are counted)."""
RESOLUTIONS = 100
"""Names listed with their candidates."""
MARKET_LISTS = 2000
"""Distinct market lists added up per market (the most common ones)."""
DURATION_BUCKET_MS = 30_000
DURATION_CAP_MS = 15 * 60_000
ALBUM_SIZE_CAP = 40
FOLLOWER_BOUNDS = (10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000)
ENTITY_TABLES = {"artist": schema.artists, "album": schema.albums, "track": schema.tracks}


# ------------------------------------------------------------------------------------- the data


@dataclass
class Report:
    """Everything the page shows, as plain data (lists of tuples, dicts); sizes bounded."""

    generated_at: datetime
    empty: bool = True
    status: status_lib.Status | None = None
    requests_per_day: list[tuple[str, int, int]] = field(default_factory=list)
    """(UTC day a run started, requests of the runs started that day, runs)"""
    runs: list[status_lib.RunInfo] = field(default_factory=list)
    run_count: int = 0
    stop_reasons: list[tuple[str, str, int]] = field(default_factory=list)
    """(status, reason or '', runs)"""
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    """table -> {FULL: n, SIMPLIFIED: n} for entities (:mod:`~spotify_catalog.transform`'s names of a
    row's ``detail``), {"rows": n} for the others"""
    releases: list[tuple[str, str, int]] = field(default_factory=list)
    """(year, album_type, albums)"""
    top_by_tracks: list[tuple[str, str, int]] = field(default_factory=list)
    top_by_albums: list[tuple[str, str, int]] = field(default_factory=list)
    """(artist id, name, tracks or albums credited)"""
    durations: list[tuple[int, int]] = field(default_factory=list)
    """(bucket start in seconds, tracks); the last bucket holds everything from DURATION_CAP_MS on"""
    explicit: list[tuple[str, int]] = field(default_factory=list)
    album_sizes: list[tuple[int, int]] = field(default_factory=list)
    """(total_tracks, capped at ALBUM_SIZE_CAP, albums)"""
    popularity: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    """entity -> (popularity bucket start, count): only entities with a popularity"""
    followers: list[tuple[int, int]] = field(default_factory=list)
    """(bucket index in FOLLOWER_BOUNDS, artists)"""
    popularity_over_time: list[tuple[str, str, float, int]] = field(default_factory=list)
    """(snapshot date, artists|tracks, mean popularity, entities)"""
    labels: list[tuple[str, int]] = field(default_factory=list)
    markets_per_album: list[tuple[int, int]] = field(default_factory=list)
    albums_per_market: list[tuple[str, int]] = field(default_factory=list)
    simplified_samples: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(entity, id, name) of entities seen only in simplified form"""
    resolutions: list[tuple[str, str | None, str | None, list[dict[str, Any]]]] = field(default_factory=list)
    """(input, artist id or None, artist name, candidates) of names resolved to nothing or not exactly"""
    resolution_count: int = 0
    gone_counts: dict[str, int] = field(default_factory=dict)
    gone: list[tuple[str, str, str | None, datetime | None]] = field(default_factory=list)
    """(entity, id, name, when) answered 404"""
    gone_source: str = "tasks"
    """``gone_at`` (the column) or ``tasks`` (failed 'not found')"""
    listening: Listening | None = None
    """a user's own data (``crawl --me``); ``None`` when the database has none"""

    @property
    def extended(self) -> bool:
        """Whether the data has any of the Extended-mode columns."""
        return bool(
            self.popularity
            or self.followers
            or self.popularity_over_time
            or self.labels
            or self.markets_per_album
        )


def collect(
    conn: sa.Connection, *, now: datetime, daily_budget: int | None = None, settings: Settings | None = None
) -> Report:
    """The report of the crawl database behind ``conn`` (read only); with ``settings``, the requests of
    the last 24 h are its account's, from its ledger (:func:`spotify_catalog.status.read_status`)."""
    report = Report(generated_at=now)
    if not has_crawl(conn):
        return report
    inspector = sa.inspect(conn)
    report.status = status_lib.read_status(conn, now=now, daily_budget=daily_budget, settings=settings)
    _counts(conn, report)
    report.listening = collect_listening(conn)
    collected = any(sum(c.values()) for c in report.counts.values()) or report.listening is not None
    if report.status.empty and not collected:
        return report
    report.empty = False
    _crawl(conn, report)
    _catalog(conn, report)
    _extended(conn, report)
    _quality(conn, report, {name: _columns(inspector, name) for name in ("artists", "albums", "tracks")})
    return report


def _columns(inspector: sa.Inspector, table: str) -> set[str]:
    return {column["name"] for column in inspector.get_columns(table)}


def _counts(conn: sa.Connection, report: Report) -> None:
    _tracks(conn, report)
    for table in (schema.artists, schema.albums):
        rows = conn.execute(sa.select(table.c.detail, sa.func.count()).group_by(table.c.detail))
        found = {str(detail): int(n) for detail, n in rows}
        report.counts[table.name] = {FULL: found.get(FULL, 0), SIMPLIFIED: found.get(SIMPLIFIED, 0)}
    for table in (
        schema.artist_albums,
        schema.artist_snapshots,
        schema.track_snapshots,
        schema.artist_resolutions,
    ):
        report.counts[table.name] = {
            "rows": int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
        }


def _crawl(conn: sa.Connection, report: Report) -> None:
    r = schema.runs
    day = utc_date(r.c.started_at)
    query = (
        sa.select(day.label("day"), sa.func.sum(r.c.requests), sa.func.count()).group_by(day).order_by(day)
    )
    report.requests_per_day = [(str(d)[:10], int(n or 0), int(runs)) for d, n, runs in conn.execute(query)]
    dead = state.dead_runs(conn, now=report.generated_at)
    report.runs = status_lib.recent_runs(conn, dead, limit=RECENT_RUNS)
    report.run_count = int(conn.execute(sa.select(sa.func.count()).select_from(r)).scalar_one())
    status, reason = state.shown_status(dead)
    shown = sa.select(status.label("status"), sa.func.coalesce(reason, "").label("reason")).subquery()
    query = (
        sa.select(shown.c.status, shown.c.reason, sa.func.count())
        .group_by(shown.c.status, shown.c.reason)
        .order_by(sa.func.count().desc(), shown.c.status, shown.c.reason)
        .limit(RECENT_RUNS)
    )
    report.stop_reasons = [(str(s), str(why), int(n)) for s, why, n in conn.execute(query)]


def _catalog(conn: sa.Connection, report: Report) -> None:
    a = schema.albums
    year = sa.func.substr(a.c.release_date, 1, 4)
    album_type = sa.func.coalesce(a.c.album_type, "unknown")
    query = (
        sa.select(year, album_type, sa.func.count())
        .where(a.c.release_date.is_not(None), a.c.release_date != "", a.c.release_date != "0000")
        .group_by(year, album_type)
        .order_by(year, album_type)
    )
    report.releases = [(str(y), str(kind), int(n)) for y, kind, n in conn.execute(query)]
    report.top_by_tracks = _top_artists(conn, schema.track_artists)
    report.top_by_albums = _top_artists(conn, schema.album_artists)

    size = sa.case((a.c.total_tracks >= ALBUM_SIZE_CAP, ALBUM_SIZE_CAP), else_=a.c.total_tracks)
    query = (
        sa.select(size, sa.func.count()).where(a.c.total_tracks.is_not(None)).group_by(size).order_by(size)
    )
    report.album_sizes = [(int(s), int(n)) for s, n in conn.execute(query)]


def _top_artists(conn: sa.Connection, credits: sa.Table) -> list[tuple[str, str, int]]:
    """The TOP artists credited most often in ``credits`` (``track_artists`` or ``album_artists``)."""
    return top_artists(conn, credits.c.artist_id, credits, TOP)


def _popularity_bucket(column: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    """0-9 -> 0, ..., 90-100 -> 90."""
    return sa.case((column >= 100, 90), else_=column - column % 10)


def _popularity(conn: sa.Connection, column: sa.ColumnElement[int]) -> list[tuple[int, int]]:
    bucket = _popularity_bucket(column)
    query = sa.select(bucket, sa.func.count()).where(column.is_not(None)).group_by(bucket).order_by(bucket)
    return [(int(b), int(n)) for b, n in conn.execute(query)]


def _tracks(conn: sa.Connection, report: Report) -> None:
    """Everything counted over ``tracks`` in one scan (the largest table): one GROUP BY of detail,
    explicit, duration bucket and popularity bucket (a few thousand groups at most), added up here."""
    t = schema.tracks
    d, p = t.c.duration_ms, t.c.popularity
    duration = sa.case((d >= DURATION_CAP_MS, DURATION_CAP_MS), else_=d - d % DURATION_BUCKET_MS)
    popularity = _popularity_bucket(p)
    query = sa.select(t.c.detail, t.c.explicit, duration, popularity, sa.func.count()).group_by(
        t.c.detail, t.c.explicit, duration, popularity
    )
    details: Counter[str] = Counter()
    explicit: Counter[bool | None] = Counter()
    durations: Counter[int] = Counter()
    popularities: Counter[int] = Counter()
    for detail, is_explicit, d_bucket, p_bucket, count in conn.execute(query):
        details[str(detail)] += int(count)
        explicit[None if is_explicit is None else bool(is_explicit)] += int(count)
        if d_bucket is not None:
            durations[int(d_bucket) // 1000] += int(count)
        if p_bucket is not None:
            popularities[int(p_bucket)] += int(count)
    report.counts[schema.tracks.name] = {FULL: details[FULL], SIMPLIFIED: details[SIMPLIFIED]}
    report.explicit = [
        (label, explicit[key])
        for key, label in ((True, "explicit"), (False, "not explicit"), (None, "not given"))
        if explicit[key]
    ]
    report.durations = sorted(durations.items())
    if popularities:
        report.popularity["track"] = sorted(popularities.items())


def _extended(conn: sa.Connection, report: Report) -> None:
    """The Extended-mode columns: each figure empty when the database has none of its values."""
    _popularity_of_entities(conn, report)
    _followers(conn, report)
    _popularity_over_time(conn, report)
    _labels(conn, report)
    _markets(conn, report)


def _popularity_of_entities(conn: sa.Connection, report: Report) -> None:
    for entity, table in ENTITY_TABLES.items():
        if entity == "track":  # counted with the other figures of tracks
            continue
        found = _popularity(conn, table.c.popularity)
        if found:
            report.popularity[entity] = found
    order = list(ENTITY_TABLES)
    report.popularity = dict(sorted(report.popularity.items(), key=lambda item: order.index(item[0])))


def _followers(conn: sa.Connection, report: Report) -> None:
    f = schema.artists.c.followers
    bucket = sa.case(
        *((f < bound, index) for index, bound in enumerate(FOLLOWER_BOUNDS)), else_=len(FOLLOWER_BOUNDS)
    )
    query = sa.select(bucket, sa.func.count()).where(f.is_not(None)).group_by(bucket).order_by(bucket)
    report.followers = [(int(b), int(n)) for b, n in conn.execute(query)]


def _popularity_over_time(conn: sa.Connection, report: Report) -> None:
    over_time: list[tuple[str, str, float, int]] = []
    for kind, snapshots in (("artists", schema.artist_snapshots), ("tracks", schema.track_snapshots)):
        p = snapshots.c.popularity
        query = (
            sa.select(snapshots.c.snapshot_date, sa.func.avg(p), sa.func.count(p))
            .where(p.is_not(None))
            .group_by(snapshots.c.snapshot_date)
            .order_by(snapshots.c.snapshot_date)
        )
        over_time += [
            (str(d)[:10], kind, round(float(mean), 2), int(n)) for d, mean, n in conn.execute(query)
        ]
    report.popularity_over_time = sorted(over_time)


def _labels(conn: sa.Connection, report: Report) -> None:
    a = schema.albums
    n = sa.func.count().label("n")
    query = (
        sa.select(a.c.label, n)
        .where(a.c.label.is_not(None), a.c.label != "")
        .group_by(a.c.label)
        .order_by(n.desc(), a.c.label)
        .limit(TOP)
    )
    report.labels = [(str(label), int(count)) for label, count in conn.execute(query)]


def _markets(conn: sa.Connection, report: Report) -> None:
    a = schema.albums
    length = json_list_length(a.c.available_markets)
    query = sa.select(length, sa.func.count()).where(length.is_not(None)).group_by(length).order_by(length)
    report.markets_per_album = [(int(k), int(count)) for k, count in conn.execute(query)]
    if not report.markets_per_album:
        return
    text = sa.cast(a.c.available_markets, sa.Text)
    n = sa.func.count().label("n")
    lists = sa.select(text, n).where(length > 0).group_by(text).order_by(n.desc(), text).limit(MARKET_LISTS)
    per_market: Counter[str] = Counter()
    for markets, count in conn.execute(lists):
        for market in set(json.loads(markets)):
            per_market[str(market)] += int(count)
    report.albums_per_market = sorted(per_market.items(), key=lambda item: (-item[1], item[0]))


def _quality(conn: sa.Connection, report: Report, columns: Mapping[str, set[str]]) -> None:
    _simplified_samples(conn, report)
    _resolutions(conn, report)
    _gone(conn, report, columns)


def _simplified_samples(conn: sa.Connection, report: Report) -> None:
    samples: list[tuple[str, str, str | None]] = []
    for entity, table in ENTITY_TABLES.items():
        query = (
            sa.select(table.c.id, table.c.name)
            .where(table.c.detail == SIMPLIFIED)
            .order_by(table.c.id)
            .limit(SAMPLES)
        )
        samples += [(entity, str(i), name) for i, name in conn.execute(query)]
    report.simplified_samples = samples


def _resolutions(conn: sa.Connection, report: Report) -> None:
    r = schema.artist_resolutions
    doubtful = sa.or_(r.c.artist_id.is_(None), r.c.exact.is_(False))
    report.resolution_count = int(conn.execute(sa.select(sa.func.count()).where(doubtful)).scalar_one())
    query = (
        sa.select(r.c.input, r.c.artist_id, r.c.artist_name, r.c.alternatives)
        .where(doubtful)
        .order_by(r.c.input)
        .limit(RESOLUTIONS)
    )
    for row in conn.execute(query):
        candidates: Any = row.alternatives or []
        report.resolutions.append(
            (
                str(row.input),
                row.artist_id,
                row.artist_name,
                [c for c in candidates if isinstance(c, dict)] if isinstance(candidates, list) else [],
            )
        )


def _gone(conn: sa.Connection, report: Report, columns: Mapping[str, set[str]]) -> None:
    """Entities answered 404: stored rows marked gone, and ids asked for that were never stored."""
    t = schema.tasks
    failed = sa.and_(t.c.state == state.FAILED, t.c.error == NOT_FOUND)
    has_gone_at = all("gone_at" in columns[table.name] for table in ENTITY_TABLES.values())
    report.gone_source = "gone_at" if has_gone_at else "tasks"
    for entity, table in ENTITY_TABLES.items():
        parts = []
        if has_gone_at:
            gone_at = sa.column("gone_at", schema.UtcDateTime())
            parts.append(
                sa.select(table.c.id.label("id"), table.c.name.label("name"), gone_at.label("at")).where(
                    gone_at.is_not(None)
                )
            )
        parts.append(
            sa.select(t.c.key.label("id"), table.c.name.label("name"), t.c.done_at.label("at"))
            .select_from(t.outerjoin(table, table.c.id == t.c.key))
            .where(failed, t.c.kind == entity, table.c.id.is_(None) if has_gone_at else sa.true())
        )
        gone = sa.union_all(*parts).subquery()
        count = int(conn.execute(sa.select(sa.func.count()).select_from(gone)).scalar_one())
        if count:
            report.gone_counts[entity] = count
        rows = conn.execute(sa.select(gone).order_by(gone.c.id).limit(SAMPLES))
        report.gone += [(entity, str(row.id), row.name, row.at) for row in rows]
