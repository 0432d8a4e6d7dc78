"""The report of the demo database (both profiles), of a user's own data and of an empty database,
opened in headless Chromium: offline, no console error, every chart drawn, the numbers those of the
database."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from listening_rows import insert, user_rows
from report_browser import Page, cells_in, charts_in, console_errors, number, open_page, screenshot

from spotify_catalog.cli import main
from spotify_catalog.storage import schema
from spotify_catalog.storage.migrate import open_database

EXTENDED_CHARTS = {
    "chart-popularity-artist",
    "chart-popularity-album",
    "chart-followers",
    "chart-popularity-over-time",
    "chart-labels",
    "chart-markets-per-album",
    "chart-albums-per-market",
}
CATALOG_CHARTS = {
    "chart-requests-per-day",
    "chart-tasks",
    "chart-runs-by-status",
    "chart-releases",
    "chart-top-artists-tracks",
    "chart-top-artists-albums",
    "chart-durations",
    "chart-explicit",
    "chart-album-sizes",
}


@pytest.fixture(scope="module", params=["development", "extended"])
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """``demo`` run once per profile: (profile, its directory holding spotify-demo.db and .html)."""
    where = tmp_path_factory.mktemp(f"demo-{request.param}")
    database = where / "spotify-demo.db"
    result = CliRunner().invoke(
        main, ["demo", "--db", f"sqlite:///{database}", "--profile", request.param, "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert f"Report: {where / 'spotify-demo.html'}" in result.output
    return request.param, where


def _offline_and_clean(html: str, page: Page) -> None:
    """No resource from the network: no http(s) src/href but links to open.spotify.com, a CSP that
    forbids the rest, no request in Chromium's net log, no error in the console or the page."""
    for attribute, url in re.findall(r'\b(src|href|action|srcset)\s*=\s*["\']?(https?:[^"\'\s>]*)', html):
        assert attribute == "href", url
        assert url.startswith("https://open.spotify.com/"), url
    assert "default-src 'none'" in html
    assert page.requests == []
    assert console_errors(page.console) == []
    assert "data-errors=" not in page.dom


@pytest.mark.slow
def test_the_demo_report_draws_every_chart_offline_with_the_databases_numbers(
    demo: tuple[str, Path], tmp_path: Path
) -> None:
    profile, where = demo
    report = where / "spotify-demo.html"
    html = report.read_text("utf-8")
    assert len(html.encode()) < 5_000_000
    page = open_page(report, tmp_path / "browser")
    _offline_and_clean(html, page)

    charts = charts_in(page.dom)
    expected = CATALOG_CHARTS | (EXTENDED_CHARTS if profile == "extended" else set())
    engine = sa.create_engine(f"sqlite:///{where / 'spotify-demo.db'}")
    with engine.connect() as conn:  # the extras drawn exactly when the data has them
        tracks_rated = conn.execute(sa.select(sa.func.count(schema.tracks.c.popularity))).scalar_one()
        albums_with_markets = conn.execute(
            sa.select(sa.func.count(schema.albums.c.available_markets))
        ).scalar_one()
    engine.dispose()
    if tracks_rated:
        expected.add("chart-popularity-track")
    if not albums_with_markets:  # a crawl with --market: Spotify leaves available_markets out
        expected -= {"chart-markets-per-album", "chart-albums-per-market"}
    assert set(charts) == expected
    for chart_id, found in charts.items():
        assert found["svg"] >= 1, chart_id
        assert found["marks"] > 0, chart_id
    drawn = re.search(r'<body[^>]*\sdata-charts="(\d+)"', page.dom)
    assert drawn is not None
    assert int(drawn.group(1)) == len(expected)
    if profile == "development":
        assert "None: popularity, followers" in page.dom

    cells = cells_in(page.dom)
    engine = sa.create_engine(f"sqlite:///{where / 'spotify-demo.db'}")
    with engine.connect() as conn:
        for table in (schema.artists, schema.albums, schema.tracks, schema.artist_albums):
            count = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            assert number(cells.values[f"count-{table.name}"]) == count > 0
            assert cells.texts[f"count-{table.name}"].startswith(f"{count:,}")
        per_day: Counter[str] = Counter()
        for started, requests in conn.execute(sa.select(schema.runs.c.started_at, schema.runs.c.requests)):
            per_day[started.astimezone(UTC).date().isoformat()] += requests
        tasks = {
            (kind, st): n
            for kind, st, n in conn.execute(
                sa.select(schema.tasks.c.kind, schema.tasks.c.state, sa.func.count()).group_by(
                    schema.tasks.c.kind, schema.tasks.c.state
                )
            )
        }
        runs = conn.execute(sa.select(sa.func.count()).select_from(schema.runs)).scalar_one()
    engine.dispose()
    shown = {row[0]: number(row[1]) for row in cells.tables["table-requests-per-day"][1:]}
    assert shown == dict(per_day)
    assert sum(shown.values()) > 0
    shown_tasks = {}
    for kind, done, pending, failed, _left in cells.tables["table-tasks"][1:]:
        for st, value in (("done", done), ("pending", pending), ("failed", failed)):
            if number(value):
                shown_tasks[(kind, st)] = number(value)
    assert shown_tasks == tasks
    assert number(cells.values["runs-total"]) == runs == len(cells.tables["runs"]) - 1
    assert cells.values["requests-left"] == "0"  # the demo finished

    light = screenshot(report, tmp_path / f"report-{profile}.png")
    dark = screenshot(report, tmp_path / f"report-{profile}-dark.png", dark=True)
    assert light.read_bytes() != dark.read_bytes()


def test_the_checks_would_see_a_request_and_an_error(tmp_path: Path) -> None:
    """The detectors themselves: a page that loads an image is seen by the net log; a load the
    Content-Security-Policy blocks, an exception thrown and an error logged are seen by the console
    filter of ``_offline_and_clean``."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<html><head><meta http-equiv="Content-Security-Policy" '
        "content=\"img-src https://example.com; script-src 'unsafe-inline'\"></head><body>"
        '<img src="https://example.com/x.png"><img src="https://example.org/blocked.png">'
        '<div class="chart" id="chart-x"></div>'
        "<script>console.error('ERROR broken'); undefinedFunction();</script></body></html>"
    )
    page = open_page(bad, tmp_path / "browser")
    assert page.requests == ["https://example.com/x.png"]
    errors = console_errors(page.console)
    assert "Uncaught ReferenceError: undefinedFunction is not defined" in errors
    assert "ERROR broken" in errors
    blocked = [m for m in errors if "https://example.org/blocked.png" in m]
    assert len(blocked) == 1, page.console
    assert len(errors) == 3, errors
    assert charts_in(page.dom) == {"chart-x": {"svg": 0, "canvas": 0, "marks": 0}}


@pytest.mark.parametrize("kind", ["created", "no tables"])
def test_an_empty_database_gives_a_nothing_collected_page(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "empty.db"
    if kind == "created":
        open_database(f"sqlite:///{path}").dispose()
    else:
        sqlite3.connect(path).close()
    before = path.read_bytes()
    out = tmp_path / "empty.html"
    result = CliRunner().invoke(main, ["report", "--db", f"sqlite:///{path}", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "nothing collected yet" in result.output
    assert path.read_bytes() == before  # read only
    html = out.read_text("utf-8")
    assert "Nothing collected yet" in html
    assert len(html) < 20_000  # no chart library when there is no chart
    page = open_page(out, tmp_path / "browser")
    _offline_and_clean(html, page)
    assert charts_in(page.dom) == {}
    assert "Nothing collected yet" in page.dom


LISTENING_CHARTS = {
    "chart-plays-per-day",
    "chart-plays-per-hour",
    "chart-top-artists-plays",
    "chart-saved-per-month",
}


def test_the_listening_section_draws_its_charts_offline_with_the_databases_numbers(tmp_path: Path) -> None:
    """A database with a user's own data (the tables filled directly, as ``crawl --me`` fills them):
    the Listening section's charts drawn, no console error, its numbers those of the database."""
    database = tmp_path / "me.db"
    engine = open_database(f"sqlite:///{database}")
    with engine.begin() as conn:
        insert(conn, user_rows())
    engine.dispose()
    out = tmp_path / "me.html"
    result = CliRunner().invoke(main, ["report", "--db", f"sqlite:///{database}", "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text("utf-8")
    page = open_page(out, tmp_path / "browser")
    _offline_and_clean(html, page)

    charts = charts_in(page.dom)
    assert LISTENING_CHARTS <= set(charts)
    for chart_id in LISTENING_CHARTS:  # (no crawl ran: the tasks chart has no bar)
        found = charts[chart_id]
        assert found["svg"] >= 1, chart_id
        assert found["marks"] > 0, chart_id
    drawn = re.search(r'<body[^>]*\sdata-charts="(\d+)"', page.dom)
    assert drawn is not None
    assert int(drawn.group(1)) == len(charts)

    cells = cells_in(page.dom)
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.connect() as conn:
        p = schema.plays
        newest = conn.execute(sa.select(sa.func.max(p.c.played_at))).scalar_one()
        start = datetime.combine(newest.date() - timedelta(days=364), time(), tzinfo=UTC)
        plays = conn.execute(sa.select(sa.func.count()).where(p.c.played_at >= start)).scalar_one()
        saved = conn.execute(sa.select(sa.func.count()).select_from(schema.saved_tracks)).scalar_one()
    engine.dispose()
    assert number(cells.values["listening-plays"]) == plays > 0
    assert number(cells.values["saved-tracks"]) == saved > 0
    for table in ("table-plays-per-day", "table-plays-per-hour"):
        assert sum(number(row[2]) for row in cells.tables[table][1:]) == plays
    assert "Alice <script>alert(1)</script>" in [row[1] for row in cells.tables["table-plays-per-day"][1:]]
    assert len(cells.tables["top-lists"]) == 1 + 4
    screenshot(out, tmp_path / "report-listening.png")
