"""``report``: what a crawl database holds and how its crawl went, as one self-contained HTML page.

Read only: no client, no request, no write. :func:`collect` runs the aggregations in SQL (SQLAlchemy
Core, the same expressions on SQLite, PostgreSQL and MySQL/MariaDB; two small constructs compile per
dialect: a UTC date and the length of a JSON list) and returns plain data, bounded in size whatever
the size of the catalog; :func:`render` turns it into HTML with Vega-Lite charts, the Vega JavaScript
inlined (docs/report.md).
"""

from __future__ import annotations

import html
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import FunctionElement

from spotify_catalog import status as status_lib
from spotify_catalog.crawl import NOT_FOUND
from spotify_catalog.storage import schema, state

log = logging.getLogger(__name__)

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
OPEN_SPOTIFY = "https://open.spotify.com"
FOLLOWER_BOUNDS = (10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000)
ENTITY_TABLES = {"artist": schema.artists, "album": schema.albums, "track": schema.tracks}


# --------------------------------------------------------------------------- per-dialect SQL pieces


class utc_date(FunctionElement[str]):
    """The UTC calendar date (``YYYY-MM-DD``) of a :class:`~spotify_catalog.storage.schema.UtcDateTime`."""

    type = sa.String()
    inherit_cache = True
    name = "utc_date"


@compiles(utc_date)
def _utc_date_default(element: utc_date, compiler: Any, **kw: Any) -> str:
    return f"DATE({compiler.process(element.clauses, **kw)})"  # SQLite, MySQL: naive UTC stored


@compiles(utc_date, "postgresql")
def _utc_date_postgresql(element: utc_date, compiler: Any, **kw: Any) -> str:
    return f"CAST(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC' AS DATE)"


class json_list_length(FunctionElement[int]):
    """The number of items of a JSON list column; NULL when it holds no list (SQL NULL, JSON null)."""

    type = sa.Integer()
    inherit_cache = True
    name = "json_list_length"


@compiles(json_list_length)
def _json_length_sqlite(element: json_list_length, compiler: Any, **kw: Any) -> str:
    x = compiler.process(element.clauses, **kw)
    return f"CASE WHEN json_type({x}) = 'array' THEN json_array_length({x}) END"


@compiles(json_list_length, "postgresql")
def _json_length_postgresql(element: json_list_length, compiler: Any, **kw: Any) -> str:
    x = compiler.process(element.clauses, **kw)
    return f"CASE WHEN json_typeof({x}) = 'array' THEN json_array_length({x}) END"


@compiles(json_list_length, "mysql")
def _json_length_mysql(element: json_list_length, compiler: Any, **kw: Any) -> str:
    x = compiler.process(element.clauses, **kw)
    return f"CASE WHEN JSON_TYPE({x}) = 'ARRAY' THEN JSON_LENGTH({x}) END"


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
    """table -> {"full": n, "simplified": n} for entities, {"rows": n} for the others"""
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


def collect(conn: sa.Connection, *, now: datetime, daily_budget: int | None = None) -> Report:
    """The report of the crawl database behind ``conn`` (read only)."""
    report = Report(generated_at=now)
    inspector = sa.inspect(conn)
    if not inspector.has_table(schema.artists.name) or not inspector.has_table(schema.runs.name):
        return report
    report.status = status_lib.read_status(conn, now=now, daily_budget=daily_budget)
    _counts(conn, report)
    if report.status.empty and not any(sum(c.values()) for c in report.counts.values()):
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
        report.counts[table.name] = {"full": found.get("full", 0), "simplified": found.get("simplified", 0)}
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
    report.runs = [
        status_lib.RunInfo(
            int(row.id), row.started_at, row.ended_at, row.status, row.reason, row.retry_at, int(row.requests)
        )
        for row in conn.execute(sa.select(r).order_by(r.c.id.desc()).limit(RECENT_RUNS))
    ]
    report.run_count = int(conn.execute(sa.select(sa.func.count()).select_from(r)).scalar_one())
    reason = sa.func.coalesce(r.c.reason, "")
    query = (
        sa.select(r.c.status, reason, sa.func.count())
        .group_by(r.c.status, reason)
        .order_by(sa.func.count().desc(), r.c.status, reason)
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
    ar = schema.artists
    n = sa.func.count().label("n")
    top = (
        sa.select(credits.c.artist_id, n)
        .group_by(credits.c.artist_id)
        .order_by(n.desc(), credits.c.artist_id)
        .limit(TOP)
        .subquery()
    )
    query = (
        sa.select(top.c.artist_id, ar.c.name, top.c.n)
        .select_from(top.outerjoin(ar, ar.c.id == top.c.artist_id))
        .order_by(top.c.n.desc(), top.c.artist_id)
    )
    return [
        (str(i), str(name) if name is not None else str(i), int(count))
        for i, name, count in conn.execute(query)
    ]


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
    report.counts["tracks"] = {"full": details["full"], "simplified": details["simplified"]}
    report.explicit = [
        (label, explicit[key])
        for key, label in ((True, "explicit"), (False, "not explicit"), (None, "not given"))
        if explicit[key]
    ]
    report.durations = sorted(durations.items())
    if popularities:
        report.popularity["track"] = sorted(popularities.items())


def _extended(conn: sa.Connection, report: Report) -> None:
    for entity, table in ENTITY_TABLES.items():
        if entity == "track":  # counted with the other figures of tracks
            continue
        found = _popularity(conn, table.c.popularity)
        if found:
            report.popularity[entity] = found
    order = list(ENTITY_TABLES)
    report.popularity = dict(sorted(report.popularity.items(), key=lambda item: order.index(item[0])))
    f = schema.artists.c.followers
    bucket = sa.case(
        *((f < bound, index) for index, bound in enumerate(FOLLOWER_BOUNDS)), else_=len(FOLLOWER_BOUNDS)
    )
    query = sa.select(bucket, sa.func.count()).where(f.is_not(None)).group_by(bucket).order_by(bucket)
    report.followers = [(int(b), int(n)) for b, n in conn.execute(query)]
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
    length = json_list_length(a.c.available_markets)
    query = sa.select(length, sa.func.count()).where(length.is_not(None)).group_by(length).order_by(length)
    report.markets_per_album = [(int(k), int(count)) for k, count in conn.execute(query)]
    if report.markets_per_album:
        text = sa.cast(a.c.available_markets, sa.Text)
        query = (
            sa.select(text, n).where(length > 0).group_by(text).order_by(n.desc(), text).limit(MARKET_LISTS)
        )
        per_market: Counter[str] = Counter()
        for markets, count in conn.execute(query):
            for market in set(json.loads(markets)):
                per_market[str(market)] += int(count)
        report.albums_per_market = sorted(per_market.items(), key=lambda item: (-item[1], item[0]))


def _quality(conn: sa.Connection, report: Report, columns: Mapping[str, set[str]]) -> None:
    samples: list[tuple[str, str, str | None]] = []
    for entity, table in ENTITY_TABLES.items():
        query = (
            sa.select(table.c.id, table.c.name)
            .where(table.c.detail == "simplified")
            .order_by(table.c.id)
            .limit(SAMPLES)
        )
        samples += [(entity, str(i), name) for i, name in conn.execute(query)]
    report.simplified_samples = samples

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

    # entities answered 404: stored rows marked gone, and ids asked for that were never stored
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


# ------------------------------------------------------------------------------------- the page


@dataclass
class Chart:
    """One chart: its Vega-Lite spec and its numbers as a table (the text alternative)."""

    id: str
    title: str
    spec: dict[str, Any]
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    note: str = ""


def _number(value: float | int) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{round(value):,}"


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value is not None else ""


def _spec(title: str, values: list[dict[str, Any]], subtitle: str = "", **rest: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "title": {"text": title, **({"subtitle": subtitle} if subtitle else {})},
        "data": {"values": values},
        "width": "container",
        "height": 220,
    }
    spec.update(rest)
    if isinstance(spec["height"], dict):  # a height per bar: only the width fits the container
        spec["autosize"] = {"type": "fit-x", "contains": "padding"}
    return spec


def _axis(title: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"title": title, "type": kind, **extra}


def _follower_label(index: int) -> str:
    def short(n: int) -> str:
        for size, unit in ((1_000_000, "M"), (1_000, "k")):
            if n >= size:
                return f"{n // size}{unit}"
        return str(n)

    if index == 0:
        return f"< {short(FOLLOWER_BOUNDS[0])}"
    if index >= len(FOLLOWER_BOUNDS):
        return f"≥ {short(FOLLOWER_BOUNDS[-1])}"
    return f"{short(FOLLOWER_BOUNDS[index - 1])}-{short(FOLLOWER_BOUNDS[index])}"


def _unique_names(rows: Iterable[tuple[str, str, int]]) -> list[dict[str, Any]]:
    rows = list(rows)
    seen = Counter(name for _, name, _ in rows)
    return [
        {
            "artist": name if seen[name] == 1 else f"{name} ({artist_id[:6]})",
            "n": count,
            "url": f"{OPEN_SPOTIFY}/artist/{artist_id}",
        }
        for artist_id, name, count in rows
    ]


def crawl_charts(report: Report) -> list[Chart]:
    """The charts of the crawl section."""
    charts: list[Chart] = []
    status = report.status
    assert status is not None
    budget = status.budget
    budget_label = f"daily budget {budget:,}" + ("" if status.daily_budget else " (assumed)")
    days = [{"day": d, "requests": n, "runs": runs} for d, n, runs in report.requests_per_day]
    charts.append(
        Chart(
            "requests-per-day",
            "Requests per day",
            _spec(
                "Requests per day",
                days,
                subtitle=f"runs by the UTC day they started; the line: {budget_label}",
                layer=[
                    {
                        "mark": {"type": "bar", "tooltip": True},
                        "encoding": {
                            "x": _axis("day (UTC)", "ordinal", field="day", axis={"labelAngle": -45}),
                            "y": _axis("requests", "quantitative", field="requests"),
                        },
                    },
                    {
                        "data": {"values": [{"budget": budget}]},
                        "mark": {"type": "rule", "strokeDash": [6, 4], "color": "#d62728", "size": 2},
                        "encoding": {"y": {"field": "budget", "type": "quantitative"}},
                    },
                ],
            ),
            ("day (UTC)", "requests", "runs"),
            [(d, n, runs) for d, n, runs in report.requests_per_day],
        )
    )
    tasks = [
        {"kind": kind, "state": st, "tasks": counts.get(st, 0)}
        for kind, counts in status.tasks.items()
        for st in (state.DONE, state.PENDING, state.FAILED)
    ]
    charts.append(
        Chart(
            "tasks",
            "Tasks per kind",
            _spec(
                "Tasks per kind",
                tasks,
                subtitle="the crawl's work queue: done, pending, failed",
                height={"step": 28},
                mark={"type": "bar", "tooltip": True},
                encoding={
                    "y": _axis("task kind", "nominal", field="kind", sort=list(status.tasks)),
                    "x": _axis("tasks", "quantitative", field="tasks"),
                    "color": {
                        "field": "state",
                        "type": "nominal",
                        "title": "state",
                        "scale": {
                            "domain": [state.DONE, state.PENDING, state.FAILED],
                            "range": ["#4c9f38", "#f2a900", "#d62728"],
                        },
                    },
                    "order": {"field": "state", "sort": "ascending"},
                },
            ),
            ("task kind", "done", "pending", "failed", "requests left"),
            [
                (
                    kind,
                    counts.get(state.DONE, 0),
                    counts.get(state.PENDING, 0),
                    counts.get(state.FAILED, 0),
                    round(status.estimate.requests.get(kind, 0.0)),
                )
                for kind, counts in status.tasks.items()
            ],
        )
    )
    runs = Counter[str]()
    for st, _, n in report.stop_reasons:
        runs[st] += n
    charts.append(
        Chart(
            "runs-by-status",
            "Runs by status",
            _spec(
                "Runs by status",
                [{"status": st, "runs": n} for st, n in runs.most_common()],
                subtitle="how each run ended",
                height={"step": 28},
                mark={"type": "bar", "tooltip": True},
                encoding={
                    "y": _axis("status", "nominal", field="status", sort="-x"),
                    "x": _axis(
                        "runs",
                        "quantitative",
                        field="runs",
                        axis={"tickCount": min(8, max(runs.values(), default=1))},
                    ),
                },
            ),
            ("status", "stop reason", "runs"),
            report.stop_reasons,
        )
    )
    return charts


def catalog_charts(report: Report) -> list[Chart]:
    """The charts of the catalog section."""
    charts: list[Chart] = []
    if report.releases:
        charts.append(
            Chart(
                "releases",
                "Releases per year",
                _spec(
                    "Releases per year",
                    [
                        {"year": int(y), "end": int(y) + 1, "type": k, "albums": n}
                        for y, k, n in report.releases
                        if y.isdigit()
                    ],
                    subtitle="albums by year of release and album type",
                    mark={"type": "bar", "tooltip": True},
                    encoding={
                        "x": _axis(
                            "year of release",
                            "quantitative",
                            field="year",
                            bin={"binned": True, "step": 1},
                            axis={"format": "d"},
                        ),
                        "x2": {"field": "end"},
                        "y": _axis("albums", "quantitative", field="albums", stack=True),
                        "color": {"field": "type", "type": "nominal", "title": "album type"},
                    },
                ),
                ("year", "album type", "albums"),
                report.releases,
            )
        )
    for key, rows, what in (
        ("top-artists-tracks", report.top_by_tracks, "tracks"),
        ("top-artists-albums", report.top_by_albums, "albums"),
    ):
        if not rows:
            continue
        title = f"Artists with the most {what} (top {TOP})"
        charts.append(
            Chart(
                key,
                title,
                _spec(
                    title,
                    _unique_names(rows),
                    subtitle=f"{what} credited to the artist; a bar opens the artist on open.spotify.com",
                    height={"step": 18},
                    mark={"type": "bar", "tooltip": True, "cursor": "pointer"},
                    encoding={
                        "y": _axis("artist", "nominal", field="artist", sort="-x"),
                        "x": _axis(what, "quantitative", field="n"),
                        "href": {"field": "url"},
                    },
                ),
                ("artist", what),
                [(_link(f"{OPEN_SPOTIFY}/artist/{i}", name), n) for i, name, n in rows],
            )
        )
    if report.durations:
        last = DURATION_CAP_MS // 1000
        charts.append(
            Chart(
                "durations",
                "Track durations",
                _spec(
                    "Track durations",
                    [
                        {"from": s / 60, "to": (s + DURATION_BUCKET_MS // 1000) / 60, "tracks": n}
                        for s, n in report.durations
                    ],
                    subtitle=f"tracks per {DURATION_BUCKET_MS // 1000} s; the last: {last // 60} min or more",
                    mark={"type": "bar", "tooltip": True},
                    encoding={
                        "x": _axis(
                            "duration (minutes)",
                            "quantitative",
                            field="from",
                            bin={"binned": True, "step": 0.5},
                        ),
                        "x2": {"field": "to"},
                        "y": _axis("tracks", "quantitative", field="tracks"),
                    },
                ),
                ("duration from (m:ss)", "tracks"),
                [(f"{s // 60}:{s % 60:02d}" + ("+" if s == last else ""), n) for s, n in report.durations],
            )
        )
    if report.explicit:
        total = sum(n for _, n in report.explicit)
        charts.append(
            Chart(
                "explicit",
                "Explicit tracks",
                _spec(
                    "Explicit tracks",
                    [{"explicit": k, "tracks": n, "share": n / total} for k, n in report.explicit],
                    subtitle="share of the tracks marked explicit",
                    height=180,
                    mark={"type": "arc", "innerRadius": 45, "tooltip": True},
                    encoding={
                        "theta": {"field": "tracks", "type": "quantitative", "title": "tracks"},
                        "color": {"field": "explicit", "type": "nominal", "title": "tracks"},
                    },
                ),
                ("tracks", "count", "share"),
                [(k, n, f"{100 * n / total:.1f} %") for k, n in report.explicit],
            )
        )
    if report.album_sizes:
        charts.append(
            Chart(
                "album-sizes",
                "Album sizes",
                _spec(
                    "Album sizes",
                    [{"size": s, "end": s + 1, "albums": n} for s, n in report.album_sizes],
                    subtitle=f"albums by number of tracks (total_tracks); the last: {ALBUM_SIZE_CAP} or more",
                    mark={"type": "bar", "tooltip": True},
                    encoding={
                        "x": _axis(
                            "tracks on the album",
                            "quantitative",
                            field="size",
                            bin={"binned": True, "step": 1},
                        ),
                        "x2": {"field": "end"},
                        "y": _axis("albums", "quantitative", field="albums"),
                    },
                ),
                ("tracks on the album", "albums"),
                [(f"{s}+" if s == ALBUM_SIZE_CAP else s, n) for s, n in report.album_sizes],
            )
        )
    return charts


def extended_charts(report: Report) -> list[Chart]:
    """The charts of the Extended-mode columns the data has."""
    charts: list[Chart] = []
    for entity, rows in report.popularity.items():
        title = f"Popularity of {entity}s"
        charts.append(
            Chart(
                f"popularity-{entity}",
                title,
                _spec(
                    title,
                    [{"from": b, "to": b + 10, "n": n} for b, n in rows],
                    subtitle="Spotify's popularity, 0 to 100, in steps of 10",
                    mark={"type": "bar", "tooltip": True},
                    encoding={
                        "x": _axis(
                            "popularity (0-100)",
                            "quantitative",
                            field="from",
                            bin={"binned": True, "step": 10},
                            scale={"domain": [0, 100]},
                        ),
                        "x2": {"field": "to"},
                        "y": _axis(f"{entity}s", "quantitative", field="n"),
                    },
                ),
                ("popularity", f"{entity}s"),
                [(f"{b}-{b + 9 if b < 90 else 100}", n) for b, n in rows],
            )
        )
    if report.followers:
        labels = [_follower_label(i) for i in range(len(FOLLOWER_BOUNDS) + 1)]
        charts.append(
            Chart(
                "followers",
                "Followers of artists",
                _spec(
                    "Followers of artists",
                    [{"followers": _follower_label(b), "artists": n} for b, n in report.followers],
                    subtitle="artists by their number of followers (steps of ten times)",
                    mark={"type": "bar", "tooltip": True},
                    encoding={
                        "x": _axis(
                            "followers", "ordinal", field="followers", sort=labels, axis={"labelAngle": 0}
                        ),
                        "y": _axis("artists", "quantitative", field="artists"),
                    },
                ),
                ("followers", "artists"),
                [(_follower_label(b), n) for b, n in report.followers],
            )
        )
    if report.popularity_over_time:
        charts.append(
            Chart(
                "popularity-over-time",
                "Popularity over time",
                _spec(
                    "Popularity over time",
                    [
                        {"date": d, "kind": k, "popularity": p, "n": n}
                        for d, k, p, n in report.popularity_over_time
                    ],
                    subtitle="mean popularity of the artists and tracks snapshotted each day",
                    mark={"type": "line", "point": True, "tooltip": True},
                    encoding={
                        "x": _axis("snapshot date (UTC)", "temporal", field="date", timeUnit="yearmonthdate"),
                        "y": _axis(
                            "mean popularity (0-100)",
                            "quantitative",
                            field="popularity",
                            scale={"domain": [0, 100]},
                        ),
                        "color": {"field": "kind", "type": "nominal", "title": "of"},
                    },
                ),
                ("date", "of", "mean popularity", "entities"),
                report.popularity_over_time,
            )
        )
    if report.labels:
        title = f"Labels with the most albums (top {TOP})"
        charts.append(
            Chart(
                "labels",
                title,
                _spec(
                    title,
                    [{"label": label, "albums": n} for label, n in report.labels],
                    height={"step": 18},
                    mark={"type": "bar", "tooltip": True},
                    encoding={
                        "y": _axis("label", "nominal", field="label", sort="-x"),
                        "x": _axis("albums", "quantitative", field="albums"),
                    },
                ),
                ("label", "albums"),
                report.labels,
            )
        )
    if report.markets_per_album:
        charts.append(
            Chart(
                "markets-per-album",
                "Markets per album",
                _spec(
                    "Markets per album",
                    [{"markets": k, "end": k + 1, "albums": n} for k, n in report.markets_per_album],
                    subtitle="albums by the number of markets they are available in",
                    mark={"type": "bar", "tooltip": True},
                    encoding={
                        "x": _axis(
                            "markets (countries)",
                            "quantitative",
                            field="markets",
                            bin={"binned": True, "step": 1},
                        ),
                        "x2": {"field": "end"},
                        "y": _axis("albums", "quantitative", field="albums"),
                    },
                ),
                ("markets", "albums"),
                report.markets_per_album,
            )
        )
    if report.albums_per_market:
        shown = report.albums_per_market[:40]
        charts.append(
            Chart(
                "albums-per-market",
                "Albums per market",
                _spec(
                    "Albums per market",
                    [{"market": m, "albums": n} for m, n in shown],
                    subtitle=f"the {len(shown)} markets with the most albums available",
                    height={"step": 14},
                    mark={"type": "bar", "tooltip": True},
                    encoding={
                        "y": _axis("market (ISO country code)", "nominal", field="market", sort="-x"),
                        "x": _axis("albums available", "quantitative", field="albums"),
                    },
                ),
                ("market", "albums"),
                report.albums_per_market,
            )
        )
    return charts


# ------------------------------------------------------------------------------------- HTML


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


class _Html(str):
    """Text already escaped."""


def _link(url: str, text: str) -> _Html:
    return _Html(f'<a href="{_e(url)}">{_e(text)}</a>')


def _cell(value: Any) -> str:
    if isinstance(value, _Html):
        return f"<td>{value}</td>"
    if isinstance(value, bool) or value is None:
        return f"<td>{_e('' if value is None else value)}</td>"
    if isinstance(value, int | float):
        return f'<td class="num" data-value="{value}">{_number(value)}</td>'
    return f"<td>{_e(value)}</td>"


def _table(columns: Sequence[str], rows: Iterable[Sequence[Any]], table_id: str = "") -> str:
    head = "".join(f'<th scope="col">{_e(c)}</th>' for c in columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    attribute = f' id="{_e(table_id)}"' if table_id else ""
    return f"<table{attribute}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(chart: Chart) -> str:
    rows = list(chart.rows)
    summary = f"{chart.title}: the numbers ({len(rows)} row{'s' if len(rows) != 1 else ''})"
    return (
        f'<figure class="chart-box" aria-labelledby="{chart.id}-caption">'
        f'<div class="chart" id="chart-{chart.id}" role="img" aria-label="{_e(chart.title)}: chart; '
        f'its numbers are in the table below"></div>'
        f'<figcaption id="{chart.id}-caption"><details><summary>{_e(summary)}</summary>'
        f"{_table(chart.columns, rows, f'table-{chart.id}')}</details></figcaption></figure>"
    )


def _charts_block(charts: Sequence[Chart]) -> str:
    return '<div class="charts">' + "".join(_figure(c) for c in charts) + "</div>" if charts else ""


def _figures(html_id: str, label: str, value: Any, note: str = "") -> str:
    shown = _number(value) if isinstance(value, int | float) and not isinstance(value, bool) else _e(value)
    raw = f' data-value="{_e(value)}"' if isinstance(value, int | float) else ""
    extra = f"<small>{_e(note)}</small>" if note else ""
    return f'<div class="figure"><dt>{_e(label)}</dt><dd id="{_e(html_id)}"{raw}>{shown}{extra}</dd></div>'


def _crawl_section(report: Report, charts: list[Chart]) -> str:
    status = report.status
    assert status is not None
    estimate = status.estimate
    kind = "exact" if estimate.exact else "estimated"
    mode = f"{estimate.mode} mode" + ("" if estimate.mode_known else " (assumed)")
    budget_note = "" if status.daily_budget else "assumed: no daily budget set"
    last = status.last_run
    figures = [
        _figures(
            "requests-left",
            "requests left",
            estimate.total,
            f"{kind}; depth {estimate.plan.depth.label}, {mode}",
        ),
        _figures(
            "days-left",
            "days to finish",
            status.days_left if estimate.total else 0,
            f"at {status.budget:,} requests a day" + (f" ({budget_note})" if budget_note else ""),
        ),
        _figures("requests-24h", "requests in the last 24 h", status.requests_last_24h),
        _figures("runs-total", "runs", report.run_count),
    ]
    if last is not None:
        text = last.status + (f": {last.reason}" if last.reason else "")
        if last.retry_at is not None:
            text += f"; run again after {_when(last.retry_at)}"
        figures.append(_figures("last-run", "last run", f"#{last.id} {text}"))
    notes = "".join(f"<li>{_e(n)}</li>" for n in estimate.notes)
    runs_table = _table(
        ("run", "started", "ended", "status", "requests", "reason", "run again after"),
        [
            (
                r.id,
                _when(r.started_at),
                _when(r.ended_at),
                r.status,
                r.requests,
                r.reason or "",
                _when(r.retry_at),
            )
            for r in report.runs
        ],
        "runs",
    )
    shown = (
        f"the last {len(report.runs)} of {report.run_count}" if report.run_count > len(report.runs) else "all"
    )
    return (
        '<section id="crawl"><h2>The crawl</h2>'
        f'<dl class="figures">{"".join(figures)}</dl>'
        + (f'<ul class="notes">{notes}</ul>' if notes else "")
        + _charts_block(charts)
        + f"<h3>Runs ({shown})</h3>{runs_table}</section>"
    )


def _catalog_section(report: Report, charts: list[Chart]) -> str:
    figures = []
    for table in ("artists", "albums", "tracks"):
        c = report.counts[table]
        total = c["full"] + c["simplified"]
        figures.append(
            _figures(
                f"count-{table}", table, total, f"{c['full']:,} full, {c['simplified']:,} simplified only"
            )
        )
    for table, label in (
        ("artist_albums", "discography entries"),
        ("artist_resolutions", "names resolved"),
        ("artist_snapshots", "artist snapshots"),
        ("track_snapshots", "track snapshots"),
    ):
        figures.append(_figures(f"count-{table}", label, report.counts[table]["rows"]))
    return (
        '<section id="catalog"><h2>The catalog</h2>'
        f'<dl class="figures">{"".join(figures)}</dl>' + _charts_block(charts) + "</section>"
    )


def _extended_section(report: Report, charts: list[Chart]) -> str:
    if not charts:
        return (
            '<section id="extended"><h2>Extended-mode data</h2><p class="muted">None: popularity, followers, '
            "labels and markets come only with Extended Quota Mode, and this database has none of them."
            "</p></section>"
        )
    return '<section id="extended"><h2>Extended-mode data</h2>' + _charts_block(charts) + "</section>"


def _entity_link(entity: str, entity_id: str, name: str | None) -> _Html:
    return _link(f"{OPEN_SPOTIFY}/{entity}/{entity_id}", name or entity_id)


def _quality_section(report: Report) -> str:
    c = report.counts
    simplified_rows = [
        (t, c[t]["simplified"], c[t]["full"] + c[t]["simplified"]) for t in ("artists", "albums", "tracks")
    ]
    parts = [
        '<section id="quality"><h2>Data quality</h2>',
        "<h3>Seen only in simplified form</h3>",
        "<p>Entities met only inside other objects (a track's artists, a discography's albums): their full "
        "object was never fetched, so their columns beyond the simplified ones are empty.</p>",
        _table(("entity", "simplified only", "of"), simplified_rows, "simplified"),
    ]
    if report.simplified_samples:
        items = "".join(f"<li>{e} {_entity_link(e, i, n)}</li>" for e, i, n in report.simplified_samples)
        parts.append(
            f"<details><summary>The first {SAMPLES} of each, by id</summary><ul>{items}</ul></details>"
        )
    parts.append(f"<h3>Names resolved to nothing or not exactly ({report.resolution_count:,})</h3>")
    if report.resolutions:
        rows = []
        for name, artist_id, artist_name, candidates in report.resolutions:
            chosen: Any = _entity_link("artist", artist_id, artist_name) if artist_id else "nothing found"
            links = ", ".join(
                _entity_link("artist", str(cand.get("id", "")), str(cand.get("name", "")))
                for cand in candidates[:10]
            )
            rows.append((name, chosen, _Html(links or "none")))
        parts.append(
            _table(("name given", "resolved to", "candidates, in Spotify's order"), rows, "resolutions")
        )
        if report.resolution_count > len(rows):
            parts.append(f'<p class="muted">The first {len(rows)} shown.</p>')
    else:
        parts.append("<p>None: every name given found an artist of exactly that name.</p>")
    source = "the gone_at column" if report.gone_source == "gone_at" else "tasks that failed with 'not found'"
    total = sum(report.gone_counts.values())
    parts.append(f'<h3>Answered 404 by Spotify ({total:,})</h3><p class="muted">From {_e(source)}.</p>')
    if report.gone:
        parts.append(
            _table(
                ("entity", "id / name", "when"),
                [(e, _entity_link(e, i, n), _when(when)) for e, i, n, when in report.gone],
                "gone",
            )
        )
    else:
        parts.append("<p>None.</p>")
    parts.append("</section>")
    return "".join(parts)


def _template() -> Template:
    return Template(resources.files("spotify_catalog").joinpath("templates/report.html").read_text("utf-8"))


def _script_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def render(report: Report, *, title: str, source: str, javascript: str | None = None) -> str:
    """The HTML page of ``report``; ``source`` names the database (credentials hidden);
    ``javascript``: the Vega bundle (default :func:`vega_javascript`; not needed for an empty report)."""
    generated = f"{_when(report.generated_at)} from {source}"
    if report.empty:
        body = (
            '<section id="nothing"><h2>Nothing collected yet</h2>'
            f"<p>The database {_e(source)} holds no crawl: no run, no task, no artist. Start one with "
            "<code>spotify-catalog crawl --db URL --artist NAME</code> "
            "(or <code>spotify-catalog demo</code>), "
            "then make the report again.</p></section>"
        )
        return _template().substitute(
            title=_e(title), generated=_e(generated), body=body, specs="{}", vega="", charts=0
        )
    groups = (crawl_charts(report), catalog_charts(report), extended_charts(report))
    body = (
        _crawl_section(report, groups[0])
        + _catalog_section(report, groups[1])
        + _extended_section(report, groups[2])
        + _quality_section(report)
    )
    specs = {f"chart-{c.id}": c.spec for group in groups for c in group}
    vega = javascript if javascript is not None else vega_javascript()
    return _template().substitute(
        title=_e(title),
        generated=_e(generated),
        body=body,
        specs=_script_json(specs),
        vega=vega.replace("</script", "<\\/script"),
        charts=len(specs),
    )


# -------------------------------------------------------------------------------- the JavaScript

_BUNDLE: dict[str, str] = {}
_GLOBALS = "window.vegaEmbed = vegaEmbed; window.vega = vega; window.vegaLite = vegaLite;"


def vega_javascript(cache_dir: Path | None = None) -> str:
    """Vega, Vega-Lite and vega-embed as one script, from ``vl-convert-python`` (which ships them):
    bundled once (a few seconds), then kept in the user's cache directory."""
    import vl_convert

    version = f"vega{vl_convert.get_vega_version()}-embed{vl_convert.get_vega_embed_version()}"
    if version in _BUNDLE:
        return _BUNDLE[version]
    base = cache_dir or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spotify-catalog"
    path = base / f"vega-bundle-{version}.js"
    try:
        text = path.read_text("utf-8")
    except OSError:
        text = ""
    if not text:
        text = vl_convert.javascript_bundle(_GLOBALS)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(text, "utf-8")
            temporary.replace(path)
        except OSError as exc:
            log.debug("vega bundle not cached at %s: %s", path, exc)
    _BUNDLE[version] = text
    return text
