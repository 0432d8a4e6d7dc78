"""The report's HTML page: :func:`render` fills the Jinja2 templates of ``templates/`` (autoescape on:
every name from the database is escaped) with a :class:`Report`'s figures, tables and charts. One
file with its styles, scripts and data inline, which opens offline.

What is shown is computed here, as plain values (:class:`Figure`, :class:`Table`, the charts of
:mod:`~spotify_catalog.report.charts`); the markup is in the templates.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import jinja2
from markupsafe import Markup

from spotify_catalog.report.charts import (
    Chart,
    Link,
    catalog_charts,
    crawl_charts,
    extended_charts,
    spotify_link,
)
from spotify_catalog.report.data import SAMPLES, Report
from spotify_catalog.report.javascript import vega_javascript
from spotify_catalog.report.listening import PERIOD_DAYS, Listening
from spotify_catalog.report.listening_charts import listening_charts
from spotify_catalog.status import Status
from spotify_catalog.transform import FULL, SIMPLIFIED

ENTITIES = ("artists", "albums", "tracks")
COUNTED_TABLES = (
    ("artist_albums", "discography entries"),
    ("artist_resolutions", "names resolved"),
    ("artist_snapshots", "artist snapshots"),
    ("track_snapshots", "track snapshots"),
)
CANDIDATES_SHOWN = 10
TIME_RANGES = {
    "short_term": "short term (about 4 weeks)",
    "medium_term": "medium term (about 6 months)",
    "long_term": "long term (about a year)",
}


@dataclass
class Figure:
    """One headline figure: ``shown`` as text, ``raw`` (a number) in its ``data-value``."""

    id: str
    label: str
    value: Any
    note: str = ""

    @property
    def shown(self) -> str:
        """A number with its thousands separated; anything else as it is."""
        if isinstance(self.value, int | float) and not isinstance(self.value, bool):
            return number(self.value)
        return str(self.value)

    @property
    def raw(self) -> Any:
        """The number as it is, for the tests and tools that read the page; ``None`` for a text."""
        return self.value if isinstance(self.value, int | float) else None


@dataclass
class Table:
    """A table of the page: its column headings and its rows of cells (a :class:`Link` is a link)."""

    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]


def number(value: float | int) -> str:
    """``1,234`` (``1,234.57`` for a fraction)."""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{round(value):,}"


def when(value: datetime | None) -> str:
    """``2026-11-30 12:00 UTC``; empty for ``None``."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value is not None else ""


def render(report: Report, *, title: str, source: str, javascript: str | None = None) -> str:
    """The HTML page of ``report``; ``source`` names the database (credentials hidden);
    ``javascript``: the Vega bundle (default :func:`vega_javascript`; not needed for an empty report)."""
    generated = f"{when(report.generated_at)} from {source}"
    if report.empty:
        page = _templates().get_template("empty.html")
        return page.render(title=title, generated=generated, source=source, specs={}, vega="")
    listening = report.listening
    groups = (
        crawl_charts(report),
        catalog_charts(report),
        listening_charts(listening) if listening is not None else [],
        extended_charts(report),
    )
    page = _templates().get_template("report.html")
    return page.render(
        title=title,
        generated=generated,
        crawl=_crawl_section(report, groups[0]),
        catalog={"figures": _catalog_figures(report), "charts": groups[1]},
        listening=_listening_section(listening, groups[2]) if listening is not None else None,
        extended={"charts": groups[3]},
        quality=_quality_section(report),
        specs={f"chart-{c.id}": c.spec for group in groups for c in group},
        vega=javascript if javascript is not None else vega_javascript(),
    )


@cache
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("spotify_catalog.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["number"] = number
    env.filters["script_json"] = _script_json
    env.filters["script"] = _script
    env.tests["link"] = lambda value: isinstance(value, Link)
    env.tests["links"] = lambda value: isinstance(value, tuple) and all(isinstance(v, Link) for v in value)
    return env


# The text of a <script> element is not HTML: entities there are not decoded, so it is not escaped
# but kept from ending the element, and marked safe as it is.


def _script_json(value: Any) -> Markup:
    """JSON safe inside a ``<script>`` element: no ``<``, so no ``</script>`` nor ``<!--``."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    return Markup(text)  # noqa: S704 (no "<" left)


def _script(text: str) -> Markup:
    """JavaScript safe inside a ``<script>`` element: no ``</script`` that would end it."""
    return Markup(text.replace("</script", "<\\/script"))  # noqa: S704 (no "</script" left)


# ------------------------------------------------------------------------------------- sections


def _crawl_section(report: Report, charts: list[Chart]) -> dict[str, Any]:
    status = report.status
    assert status is not None
    estimate = status.estimate
    runs = Table(
        ("run", "started", "ended", "status", "requests", "reason", "run again after"),
        [
            (
                r.id,
                when(r.started_at),
                when(r.ended_at),
                r.status,
                r.requests,
                r.reason or "",
                when(r.retry_at),
            )
            for r in report.runs
        ],
    )
    shown = (
        f"the last {len(report.runs)} of {report.run_count}" if report.run_count > len(report.runs) else "all"
    )
    return {
        "figures": _crawl_figures(report),
        "notes": estimate.notes,
        "charts": charts,
        "runs": runs,
        "runs_shown": shown,
    }


def _account_note(status: Status) -> str:
    """Whose requests the figure counts (the account's, in its ledger)."""
    use = status.usage
    if use is None or use.account is None:
        return "no account known"
    return f"account {use.account}" + ("" if use.recorded else ": none recorded")


def _crawl_figures(report: Report) -> list[Figure]:
    status = report.status
    assert status is not None
    estimate = status.estimate
    kind = "exact" if estimate.exact else "estimated"
    mode = f"{estimate.mode} mode" + ("" if estimate.mode_known else " (assumed)")
    figures = [
        Figure(
            "requests-left",
            "requests left",
            estimate.total,
            f"{kind}; depth {estimate.plan.depth.label}, {mode}",
        ),
        Figure(
            "days-left",
            "days to finish",
            status.days_left if estimate.total else 0,
            "at " + "; ".join(limit.describe() for limit in status.limits),
        ),
        Figure("requests-24h", "requests in the last 24 h", status.requests_last_24h, _account_note(status)),
        Figure("runs-total", "runs", report.run_count),
    ]
    last = status.last_run
    if last is not None:
        text = last.status + (f": {last.reason}" if last.reason else "")
        if last.retry_at is not None:
            text += f"; run again after {when(last.retry_at)}"
        figures.append(Figure("last-run", "last run", f"#{last.id} {text}"))
    return figures


def _catalog_figures(report: Report) -> list[Figure]:
    figures = []
    for table in ENTITIES:
        c = report.counts[table]
        note = f"{c[FULL]:,} full, {c[SIMPLIFIED]:,} simplified only"
        figures.append(Figure(f"count-{table}", table, c[FULL] + c[SIMPLIFIED], note))
    for table, label in COUNTED_TABLES:
        figures.append(Figure(f"count-{table}", label, report.counts[table]["rows"]))
    return figures


def _quality_section(report: Report) -> dict[str, Any]:
    c = report.counts
    simplified = Table(
        ("entity", "simplified only", "of"),
        [(t, c[t][SIMPLIFIED], c[t][FULL] + c[t][SIMPLIFIED]) for t in ENTITIES],
    )
    gone = Table(
        ("entity", "id / name", "when"),
        [(e, spotify_link(e, i, n), when(at)) for e, i, n, at in report.gone],
    )
    source = "the gone_at column" if report.gone_source == "gone_at" else "tasks that failed with 'not found'"
    return {
        "simplified": simplified,
        "samples": [(e, spotify_link(e, i, n)) for e, i, n in report.simplified_samples],
        "samples_each": SAMPLES,
        "resolution_count": report.resolution_count,
        "resolutions": _resolutions(report),
        "gone_total": sum(report.gone_counts.values()),
        "gone_source": source,
        "gone": gone,
    }


def _resolutions(report: Report) -> Table:
    """Names resolved to nothing or not exactly: what they resolved to, Spotify's candidates."""
    rows = []
    for name, artist_id, artist_name, candidates in report.resolutions:
        chosen: Any = spotify_link("artist", artist_id, artist_name) if artist_id else "nothing found"
        links = tuple(
            spotify_link("artist", str(cand.get("id", "")), str(cand.get("name", "")))
            for cand in candidates[:CANDIDATES_SHOWN]
        )
        rows.append((name, chosen, links))
    return Table(("name given", "resolved to", "candidates, in Spotify's order"), rows)


def _listening_section(listening: Listening, charts: list[Chart]) -> dict[str, Any]:
    """A user's own data: figures, charts, and Spotify's top lists as a table."""
    names = listening.users
    tops = Table(
        ("user", "top", "time range", "as of", f"the first {_top_shown(listening)}, in Spotify's order"),
        [
            (
                names.get(top.user_id, top.user_id),
                f"{top.item_type}s",
                TIME_RANGES.get(top.time_range, top.time_range),
                top.snapshot_date,
                tuple(spotify_link(top.item_type, i, name) for i, name in top.items),
            )
            for top in listening.top_lists
        ],
    )
    return {"figures": _listening_figures(listening), "charts": charts, "tops": tops}


def _top_shown(listening: Listening) -> int:
    """The longest top list shown (at most TOP_ITEMS_SHOWN)."""
    return max((len(top.items) for top in listening.top_lists), default=0)


def _listening_figures(listening: Listening) -> list[Figure]:
    names = ", ".join(listening.users.values())
    figures = [Figure("listening-users", "users", len(listening.users), names)]
    if listening.plays_total:
        first = listening.first_play.date().isoformat() if listening.first_play else ""
        untimed = listening.plays_without_duration
        figures += [
            Figure(
                "listening-plays",
                "plays",
                listening.plays,
                f"the {PERIOD_DAYS} days to the newest; {listening.plays_total:,} stored since {first}",
            ),
            Figure("listening-tracks", "tracks played", listening.tracks_played),
            Figure(
                "listening-hours",
                "hours listened",
                round(listening.minutes / 60, 1),
                "from the tracks' durations" + (f"; {untimed:,} plays without one" if untimed else ""),
            ),
            Figure("listening-last", "newest play", when(listening.last_play)),
        ]
    figures += [Figure(f"saved-{kind}", f"saved {kind}", n) for kind, n in listening.saved.items()]
    figures += [
        Figure("followed-artists", "artists followed", listening.followed),
        Figure("user-playlists", "playlists", listening.playlists, f"{listening.playlists_owned:,} owned"),
    ]
    return figures
