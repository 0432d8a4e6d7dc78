"""The report's charts: one function per chart, each turning a part of a :class:`Report` into a
:class:`Chart`, a Vega-Lite specification (plain JSON, drawn in the page by vega-embed) with its
numbers as a table, the chart's text alternative. A chart whose data the report does not have is
``None`` and left out.

No HTML here: a cell that links to open.spotify.com is a :class:`Link`, which the page writes out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from spotify_catalog.report.data import (
    ALBUM_SIZE_CAP,
    DURATION_BUCKET_MS,
    DURATION_CAP_MS,
    FOLLOWER_BOUNDS,
    TOP,
    Report,
)
from spotify_catalog.storage import state

OPEN_SPOTIFY = "https://open.spotify.com"
TASK_STATES = (state.DONE, state.PENDING, state.FAILED)
TASK_COLOURS = ("#4c9f38", "#f2a900", "#d62728")


@dataclass(frozen=True)
class Link:
    """A table cell that links to ``url``, shown as ``text``."""

    url: str
    text: str


def spotify_link(entity: str, entity_id: str, name: str | None) -> Link:
    """The entity's page on open.spotify.com, shown by its name (its id when it has none)."""
    return Link(f"{OPEN_SPOTIFY}/{entity}/{entity_id}", name or entity_id)


@dataclass
class Chart:
    """One chart: its Vega-Lite spec and its numbers as a table (the text alternative)."""

    id: str
    title: str
    spec: dict[str, Any]
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]


ChartMaker = Callable[[Report], "Chart | None"]


def crawl_charts(report: Report) -> list[Chart]:
    """The charts of the crawl section."""
    return _made(report, (requests_per_day_chart, tasks_chart, runs_by_status_chart))


def catalog_charts(report: Report) -> list[Chart]:
    """The charts of the catalog section."""
    makers = (
        releases_chart,
        top_artists_by_tracks_chart,
        top_artists_by_albums_chart,
        durations_chart,
        explicit_chart,
        album_sizes_chart,
    )
    return _made(report, makers)


def extended_charts(report: Report) -> list[Chart]:
    """The charts of the Extended-mode columns the data has."""
    popularity = [popularity_chart(entity, rows) for entity, rows in report.popularity.items()]
    makers = (
        followers_chart,
        popularity_over_time_chart,
        labels_chart,
        markets_per_album_chart,
        albums_per_market_chart,
    )
    return popularity + _made(report, makers)


def _made(report: Report, makers: Iterable[ChartMaker]) -> list[Chart]:
    return [chart for make in makers if (chart := make(report)) is not None]


# ------------------------------------------------------------------------------ building blocks


def vl_spec(title: str, values: list[dict[str, Any]], subtitle: str = "", **rest: Any) -> dict[str, Any]:
    """A Vega-Lite specification: its title, inline data, the container's width; ``rest`` added."""
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


def vl_axis(title: str, kind: str, **extra: Any) -> dict[str, Any]:
    """An encoding channel with its title and type (``quantitative``, ``ordinal``, ...)."""
    return {"title": title, "type": kind, **extra}


def _binned_axis(title: str, field: str, step: float, **extra: Any) -> dict[str, Any]:
    """A quantitative axis of bins ``step`` wide, whose starts are in ``field``."""
    return vl_axis(title, "quantitative", field=field, bin={"binned": True, "step": step}, **extra)


def vl_bar(**extra: Any) -> dict[str, Any]:
    """A bar mark with tooltips."""
    return {"type": "bar", "tooltip": True, **extra}


def _binned_bars(
    title: str,
    values: list[dict[str, Any]],
    *,
    subtitle: str,
    x: dict[str, Any],
    end: str,
    y: dict[str, Any],
    **encoding: Any,
) -> dict[str, Any]:
    """Vertical bars over bins of x: each value holds its bin's start in x's field and its end in ``end``."""
    return vl_spec(
        title,
        values,
        subtitle=subtitle,
        mark=vl_bar(),
        encoding={"x": x, "x2": {"field": end}, "y": y, **encoding},
    )


def _horizontal_bars(
    title: str,
    values: list[dict[str, Any]],
    *,
    step: int,
    y: dict[str, Any],
    x: dict[str, Any],
    subtitle: str = "",
    mark: dict[str, Any] | None = None,
    **encoding: Any,
) -> dict[str, Any]:
    """One bar a row, ``step`` pixels high, the chart as high as its rows."""
    return vl_spec(
        title,
        values,
        subtitle=subtitle,
        height={"step": step},
        mark=mark or vl_bar(),
        encoding={"y": y, "x": x, **encoding},
    )


# ------------------------------------------------------------------------------------- the crawl


def requests_per_day_chart(report: Report) -> Chart:
    """Requests per UTC day against the daily budget (a dashed rule)."""
    status = report.status
    assert status is not None
    budget = status.budget
    budget_label = f"daily budget {budget:,}" + ("" if status.daily_budget else " (assumed)")
    days = [{"day": d, "requests": n, "runs": runs} for d, n, runs in report.requests_per_day]
    bars = {
        "mark": vl_bar(),
        "encoding": {
            "x": vl_axis("day (UTC)", "ordinal", field="day", axis={"labelAngle": -45}),
            "y": vl_axis("requests", "quantitative", field="requests"),
        },
    }
    rule = {
        "data": {"values": [{"budget": budget}]},
        "mark": {"type": "rule", "strokeDash": [6, 4], "color": "#d62728", "size": 2},
        "encoding": {"y": {"field": "budget", "type": "quantitative"}},
    }
    subtitle = f"runs by the UTC day they started; the line: {budget_label}"
    return Chart(
        "requests-per-day",
        "Requests per day",
        vl_spec("Requests per day", days, subtitle=subtitle, layer=[bars, rule]),
        ("day (UTC)", "requests", "runs"),
        [(d, n, runs) for d, n, runs in report.requests_per_day],
    )


def tasks_chart(report: Report) -> Chart:
    """The work queue per task kind: done, pending, failed stacked."""
    status = report.status
    assert status is not None
    tasks = [
        {"kind": kind, "state": st, "tasks": counts.get(st, 0)}
        for kind, counts in status.tasks.items()
        for st in TASK_STATES
    ]
    colour = {
        "field": "state",
        "type": "nominal",
        "title": "state",
        "scale": {"domain": list(TASK_STATES), "range": list(TASK_COLOURS)},
    }
    spec = _horizontal_bars(
        "Tasks per kind",
        tasks,
        subtitle="the crawl's work queue: done, pending, failed",
        step=28,
        y=vl_axis("task kind", "nominal", field="kind", sort=list(status.tasks)),
        x=vl_axis("tasks", "quantitative", field="tasks"),
        color=colour,
        order={"field": "state", "sort": "ascending"},
    )
    rows = [
        (kind, *(counts.get(st, 0) for st in TASK_STATES), round(status.estimate.requests.get(kind, 0.0)))
        for kind, counts in status.tasks.items()
    ]
    columns = ("task kind", "done", "pending", "failed", "requests left")
    return Chart("tasks", "Tasks per kind", spec, columns, rows)


def runs_by_status_chart(report: Report) -> Chart:
    """How the runs ended; the table splits them by stop reason."""
    runs = Counter[str]()
    for st, _, n in report.stop_reasons:
        runs[st] += n
    ticks = {"tickCount": min(8, max(runs.values(), default=1))}
    spec = _horizontal_bars(
        "Runs by status",
        [{"status": st, "runs": n} for st, n in runs.most_common()],
        subtitle="how each run ended",
        step=28,
        y=vl_axis("status", "nominal", field="status", sort="-x"),
        x=vl_axis("runs", "quantitative", field="runs", axis=ticks),
    )
    return Chart(
        "runs-by-status", "Runs by status", spec, ("status", "stop reason", "runs"), report.stop_reasons
    )


# ----------------------------------------------------------------------------------- the catalog


def releases_chart(report: Report) -> Chart | None:
    if not report.releases:
        return None
    spec = _binned_bars(
        "Releases per year",
        [
            {"year": int(y), "end": int(y) + 1, "type": k, "albums": n}
            for y, k, n in report.releases
            if y.isdigit()
        ],
        subtitle="albums by year of release and album type",
        x=_binned_axis("year of release", "year", 1, axis={"format": "d"}),
        end="end",
        y=vl_axis("albums", "quantitative", field="albums", stack=True),
        color={"field": "type", "type": "nominal", "title": "album type"},
    )
    return Chart("releases", "Releases per year", spec, ("year", "album type", "albums"), report.releases)


def top_artists_by_tracks_chart(report: Report) -> Chart | None:
    return top_artists_chart("top-artists-tracks", report.top_by_tracks, "tracks")


def top_artists_by_albums_chart(report: Report) -> Chart | None:
    return top_artists_chart("top-artists-albums", report.top_by_albums, "albums")


def top_artists_chart(key: str, rows: list[tuple[str, str, int]], what: str, top: int = TOP) -> Chart | None:
    """The ``top`` artists credited on the most ``what``; a bar opens the artist on open.spotify.com."""
    if not rows:
        return None
    title = f"Artists with the most {what} (top {top})"
    spec = _horizontal_bars(
        title,
        _unique_names(rows),
        subtitle=f"{what} credited to the artist; a bar opens the artist on open.spotify.com",
        step=18,
        mark=vl_bar(cursor="pointer"),
        y=vl_axis("artist", "nominal", field="artist", sort="-x"),
        x=vl_axis(what, "quantitative", field="n"),
        href={"field": "url"},
    )
    table = [(Link(f"{OPEN_SPOTIFY}/artist/{i}", name), n) for i, name, n in rows]
    return Chart(key, title, spec, ("artist", what), table)


def _unique_names(rows: Iterable[tuple[str, str, int]]) -> list[dict[str, Any]]:
    """Chart values of artists: a name two artists share is told apart by the start of the id."""
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


def durations_chart(report: Report) -> Chart | None:
    if not report.durations:
        return None
    step = DURATION_BUCKET_MS // 1000
    last = DURATION_CAP_MS // 1000
    spec = _binned_bars(
        "Track durations",
        [{"from": s / 60, "to": (s + step) / 60, "tracks": n} for s, n in report.durations],
        subtitle=f"tracks per {step} s; the last: {last // 60} min or more",
        x=_binned_axis("duration (minutes)", "from", 0.5),
        end="to",
        y=vl_axis("tracks", "quantitative", field="tracks"),
    )
    rows = [(f"{s // 60}:{s % 60:02d}" + ("+" if s == last else ""), n) for s, n in report.durations]
    return Chart("durations", "Track durations", spec, ("duration from (m:ss)", "tracks"), rows)


def explicit_chart(report: Report) -> Chart | None:
    if not report.explicit:
        return None
    total = sum(n for _, n in report.explicit)
    spec = vl_spec(
        "Explicit tracks",
        [{"explicit": k, "tracks": n, "share": n / total} for k, n in report.explicit],
        subtitle="share of the tracks marked explicit",
        height=180,
        mark={"type": "arc", "innerRadius": 45, "tooltip": True},
        encoding={
            "theta": {"field": "tracks", "type": "quantitative", "title": "tracks"},
            "color": {"field": "explicit", "type": "nominal", "title": "tracks"},
        },
    )
    rows = [(k, n, f"{100 * n / total:.1f} %") for k, n in report.explicit]
    return Chart("explicit", "Explicit tracks", spec, ("tracks", "count", "share"), rows)


def album_sizes_chart(report: Report) -> Chart | None:
    if not report.album_sizes:
        return None
    return _albums_by_number(
        "album-sizes",
        "Album sizes",
        report.album_sizes,
        subtitle=f"albums by number of tracks (total_tracks); the last: {ALBUM_SIZE_CAP} or more",
        axis=("tracks on the album", "size"),
        column="tracks on the album",
        rows=[(f"{s}+" if s == ALBUM_SIZE_CAP else s, n) for s, n in report.album_sizes],
    )


def _albums_by_number(
    key: str,
    title: str,
    counts: list[tuple[int, int]],
    *,
    subtitle: str,
    axis: tuple[str, str],
    column: str,
    rows: Sequence[Sequence[Any]],
) -> Chart:
    """Albums by a whole number of something (tracks, markets): ``counts`` of (number, albums), one
    bar a number; ``axis``: the x axis's title and the values' field."""
    x_title, field = axis
    spec = _binned_bars(
        title,
        [{field: k, "end": k + 1, "albums": n} for k, n in counts],
        subtitle=subtitle,
        x=_binned_axis(x_title, field, 1),
        end="end",
        y=vl_axis("albums", "quantitative", field="albums"),
    )
    return Chart(key, title, spec, (column, "albums"), rows)


# --------------------------------------------------------------------------------- Extended mode


def popularity_chart(entity: str, rows: list[tuple[int, int]]) -> Chart:
    """Entities of one kind by popularity, in steps of 10."""
    title = f"Popularity of {entity}s"
    spec = _binned_bars(
        title,
        [{"from": b, "to": b + 10, "n": n} for b, n in rows],
        subtitle="Spotify's popularity, 0 to 100, in steps of 10",
        x=_binned_axis("popularity (0-100)", "from", 10, scale={"domain": [0, 100]}),
        end="to",
        y=vl_axis(f"{entity}s", "quantitative", field="n"),
    )
    table = [(f"{b}-{b + 9 if b < 90 else 100}", n) for b, n in rows]
    return Chart(f"popularity-{entity}", title, spec, ("popularity", f"{entity}s"), table)


def followers_chart(report: Report) -> Chart | None:
    if not report.followers:
        return None
    labels = [_follower_label(i) for i in range(len(FOLLOWER_BOUNDS) + 1)]
    spec = vl_spec(
        "Followers of artists",
        [{"followers": _follower_label(b), "artists": n} for b, n in report.followers],
        subtitle="artists by their number of followers (steps of ten times)",
        mark=vl_bar(),
        encoding={
            "x": vl_axis("followers", "ordinal", field="followers", sort=labels, axis={"labelAngle": 0}),
            "y": vl_axis("artists", "quantitative", field="artists"),
        },
    )
    rows = [(_follower_label(b), n) for b, n in report.followers]
    return Chart("followers", "Followers of artists", spec, ("followers", "artists"), rows)


def _follower_label(index: int) -> str:
    """The label of bucket ``index`` of FOLLOWER_BOUNDS: ``< 10``, ``10-100``, ..., ``≥ 100M``."""

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


def popularity_over_time_chart(report: Report) -> Chart | None:
    if not report.popularity_over_time:
        return None
    spec = vl_spec(
        "Popularity over time",
        [{"date": d, "kind": k, "popularity": p, "n": n} for d, k, p, n in report.popularity_over_time],
        subtitle="mean popularity of the artists and tracks snapshotted each day",
        mark={"type": "line", "point": True, "tooltip": True},
        encoding={
            "x": vl_axis("snapshot date (UTC)", "temporal", field="date", timeUnit="yearmonthdate"),
            "y": vl_axis(
                "mean popularity (0-100)", "quantitative", field="popularity", scale={"domain": [0, 100]}
            ),
            "color": {"field": "kind", "type": "nominal", "title": "of"},
        },
    )
    columns = ("date", "of", "mean popularity", "entities")
    return Chart("popularity-over-time", "Popularity over time", spec, columns, report.popularity_over_time)


def labels_chart(report: Report) -> Chart | None:
    if not report.labels:
        return None
    title = f"Labels with the most albums (top {TOP})"
    spec = _horizontal_bars(
        title,
        [{"label": label, "albums": n} for label, n in report.labels],
        step=18,
        y=vl_axis("label", "nominal", field="label", sort="-x"),
        x=vl_axis("albums", "quantitative", field="albums"),
    )
    return Chart("labels", title, spec, ("label", "albums"), report.labels)


def markets_per_album_chart(report: Report) -> Chart | None:
    if not report.markets_per_album:
        return None
    return _albums_by_number(
        "markets-per-album",
        "Markets per album",
        report.markets_per_album,
        subtitle="albums by the number of markets they are available in",
        axis=("markets (countries)", "markets"),
        column="markets",
        rows=report.markets_per_album,
    )


def albums_per_market_chart(report: Report) -> Chart | None:
    """The 40 markets with the most albums (the table lists them all)."""
    if not report.albums_per_market:
        return None
    shown = report.albums_per_market[:40]
    spec = _horizontal_bars(
        "Albums per market",
        [{"market": m, "albums": n} for m, n in shown],
        subtitle=f"the {len(shown)} markets with the most albums available",
        step=14,
        y=vl_axis("market (ISO country code)", "nominal", field="market", sort="-x"),
        x=vl_axis("albums available", "quantitative", field="albums"),
    )
    return Chart(
        "albums-per-market", "Albums per market", spec, ("market", "albums"), report.albums_per_market
    )
