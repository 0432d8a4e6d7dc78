"""The report's figures, aggregated in SQL, equal the same figures counted in Python from the rows,
on SQLite, PostgreSQL and MariaDB; the data-quality lists; the command's errors."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from emulated import emulator_settings
from spotify_catalog import report as report_lib
from spotify_catalog import status as status_lib
from spotify_catalog.cli import main
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import Crawler, CrawlOptions, Depth
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.storage import schema, state
from spotify_catalog.storage.migrate import open_database

T0 = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)  # the second crawl starts on the next UTC day
MISSING_ID = "0000000000000000000000"
NOBODY = "Zzyzx Qwerty Nobody"


def _small_artists(count: int) -> list[str]:
    from spotify_catalog.emulator import Catalog

    catalog = Catalog(seed=42, artists=200)
    sized = sorted((len(catalog.artist_album_ids(a)), a) for a in catalog.artist_ids())
    return [artist_id for size, artist_id in sized if size >= 2][:count]


def _crawl(emu: Any, engine: sa.Engine, artists: list[ArtistInput], now: datetime) -> None:
    options = CrawlOptions(artists=tuple(artists), depth=Depth.TRACK_DETAILS)
    with SpotifyClient(emulator_settings(emu, "extended")) as client:
        Crawler(engine, client, options, now=lambda: now, command="test").run()


def _rows(conn: sa.Connection, table: sa.Table) -> list[Any]:
    return list(conn.execute(sa.select(table)))


def _expected(conn: sa.Connection) -> dict[str, Any]:
    """The report's figures counted in Python from every row."""
    albums, tracks = _rows(conn, schema.albums), _rows(conn, schema.tracks)
    artists, runs = _rows(conn, schema.artists), _rows(conn, schema.runs)
    out: dict[str, Any] = {}
    out["counts"] = {
        name: dict(Counter(r.detail for r in rows))
        for name, rows in (("artists", artists), ("albums", albums), ("tracks", tracks))
    }
    per_day: Counter[str] = Counter()
    for run in runs:
        per_day[run.started_at.astimezone(UTC).date().isoformat()] += run.requests
    out["requests_per_day"] = sorted(per_day.items())
    out["releases"] = sorted(
        Counter(
            (a.release_date[:4], a.album_type or "unknown")
            for a in albums
            if a.release_date not in (None, "", "0000")
        ).items()
    )
    cap = report_lib.DURATION_CAP_MS
    out["durations"] = sorted(
        Counter(
            (cap if t.duration_ms >= cap else t.duration_ms - t.duration_ms % 30_000) // 1000
            for t in tracks
            if t.duration_ms is not None
        ).items()
    )
    out["explicit"] = dict(Counter(t.explicit for t in tracks))
    out["album_sizes"] = sorted(
        Counter(min(a.total_tracks, 40) for a in albums if a.total_tracks is not None).items()
    )
    names = {a.id: a.name for a in artists}
    for key, table in (("top_by_tracks", schema.track_artists), ("top_by_albums", schema.album_artists)):
        credits = Counter(r.artist_id for r in _rows(conn, table))
        top = sorted(credits.items(), key=lambda item: (-item[1], item[0]))[: report_lib.TOP]
        out[key] = [(i, names.get(i) or i, n) for i, n in top]
    out["popularity"] = {
        entity: sorted(
            Counter(min(r.popularity, 99) // 10 * 10 for r in rows if r.popularity is not None).items()
        )
        for entity, rows in (("artist", artists), ("album", albums), ("track", tracks))
    }
    bounds = report_lib.FOLLOWER_BOUNDS
    out["followers"] = sorted(
        Counter(
            next((i for i, b in enumerate(bounds) if a.followers < b), len(bounds))
            for a in artists
            if a.followers is not None
        ).items()
    )
    labels = Counter(a.label for a in albums if a.label)
    out["labels"] = sorted(labels.items(), key=lambda item: (-item[1], item[0]))[: report_lib.TOP]
    lists = [a.available_markets for a in albums if isinstance(a.available_markets, list)]
    out["markets_per_album"] = sorted(Counter(len(m) for m in lists).items())
    per_market = Counter(m for markets in lists for m in set(markets))
    out["albums_per_market"] = sorted(per_market.items(), key=lambda item: (-item[1], item[0]))
    snapshots = Counter(s.snapshot_date.isoformat() for s in _rows(conn, schema.artist_snapshots))
    out["artist_snapshot_days"] = sorted(snapshots.items())
    return out


def test_the_figures_aggregated_in_sql_equal_those_counted_from_the_rows(
    make_emulator: Any, db_url: str, tmp_path: Path
) -> None:
    emu = make_emulator(profile="extended")
    engine = open_database(db_url)
    ids = _small_artists(3)
    _crawl(
        emu, engine, [ArtistInput("BTS", False), ArtistInput(ids[0], True), ArtistInput(NOBODY, False)], T0
    )
    later = [ArtistInput(ids[1], True), ArtistInput(ids[2], True), ArtistInput(MISSING_ID, True)]
    _crawl(emu, engine, later, T0 + timedelta(hours=1))
    with engine.connect() as conn:
        report = report_lib.collect(conn, now=T0 + timedelta(days=1), daily_budget=500)
        expected = _expected(conn)
    engine.dispose()

    assert not report.empty
    assert report.extended
    counts = {name: {k: v for k, v in c.items() if v} for name, c in report.counts.items()}
    for name in ("artists", "albums", "tracks"):
        assert counts[name] == expected["counts"][name]
    assert report.requests_per_day == [(day, n, 1) for day, n in expected["requests_per_day"]]
    assert len(report.requests_per_day) == 2
    assert report.releases == [(y, k, n) for (y, k), n in expected["releases"]]
    assert report.durations == expected["durations"]
    labels = {True: "explicit", False: "not explicit", None: "not given"}
    assert dict(report.explicit) == {labels[k]: n for k, n in expected["explicit"].items()}
    assert report.album_sizes == expected["album_sizes"]
    assert report.top_by_tracks == expected["top_by_tracks"]
    assert report.top_by_albums == expected["top_by_albums"]
    assert report.top_by_tracks[0][1] == "BTS"
    assert report.popularity == {k: v for k, v in expected["popularity"].items() if v}
    assert set(report.popularity) == {"artist", "album", "track"}
    assert report.followers == expected["followers"]
    assert report.labels == expected["labels"]
    assert report.markets_per_album == expected["markets_per_album"]
    assert report.albums_per_market == expected["albums_per_market"]
    assert [(d, n) for d, kind, _, n in report.popularity_over_time if kind == "artists"] == expected[
        "artist_snapshot_days"
    ]
    # data quality: the name that found nothing, with BTS's doubles not listed (BTS is exact)
    assert [(name, artist_id) for name, artist_id, _, _ in report.resolutions] == [(NOBODY, None)]
    assert report.gone_source == "gone_at"  # the schema has the column
    assert report.gone_counts == {"artist": 1}
    assert [(e, i) for e, i, _, _ in report.gone] == [("artist", MISSING_ID)]
    assert report.status is not None
    assert report.status.daily_budget == 500

    page = report_lib.render(report, title="t <&>", source="db", javascript="/* vega */")
    assert "<title>t &lt;&amp;&gt;</title>" in page
    assert f"https://open.spotify.com/artist/{MISSING_ID}" in page
    assert NOBODY in page


def _stored(path: Path) -> sa.Engine:
    return open_database(f"sqlite:///{path}")


def _add_artist(conn: sa.Connection, artist_id: str, name: str, detail: str = "full") -> None:
    conn.execute(sa.insert(schema.artists).values(id=artist_id, name=name, detail=detail))


def test_gone_at_and_404s_never_stored_are_listed(tmp_path: Path) -> None:
    engine = _stored(tmp_path / "g.db")
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    gone = datetime(2026, 11, 29, 10, tzinfo=UTC)
    with engine.begin() as conn:
        _add_artist(conn, "a1", "Kept")
        _add_artist(conn, "a2", "Gone")
        conn.execute(sa.update(schema.artists).where(schema.artists.c.id == "a2").values(gone_at=gone))
        state.finish_tasks(conn, "artist", ["a3"], now=gone, run_id=None, state="failed", error="not found")
    with engine.connect() as conn:
        report = report_lib.collect(conn, now=now)
    engine.dispose()
    assert report.gone_source == "gone_at"
    assert report.gone_counts == {"artist": 2}
    assert report.gone == [("artist", "a2", "Gone", gone), ("artist", "a3", None, gone)]


def test_inexact_names_are_listed_with_their_candidates(tmp_path: Path) -> None:
    engine = _stored(tmp_path / "r.db")
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    candidates = [{"id": "b1", "name": "Beatles Revival"}, {"id": "b2", "name": "The Beatles Tribute"}]
    with engine.begin() as conn:
        _add_artist(conn, "b1", "Beatles Revival")
        conn.execute(
            sa.insert(schema.artist_resolutions),
            [
                {
                    "input": "beatles",
                    "artist_id": "b1",
                    "artist_name": "Beatles Revival",
                    "exact": False,
                    "alternatives": candidates,
                    "resolved_at": now,
                },
                {
                    "input": "Beatles Revival",
                    "artist_id": "b1",
                    "artist_name": "Beatles Revival",
                    "exact": True,
                    "alternatives": candidates[:1],
                    "resolved_at": now,
                },
            ],
        )
    with engine.connect() as conn:
        report = report_lib.collect(conn, now=now)
    engine.dispose()
    assert report.resolution_count == 1
    assert report.resolutions == [("beatles", "b1", "Beatles Revival", candidates)]
    assert report.simplified_samples == []
    page = report_lib.render(report, title="t", source="db", javascript="")
    assert "The Beatles Tribute" in page
    assert "https://open.spotify.com/artist/b2" in page
    assert not report.extended
    assert "None: popularity, followers" in page


def test_a_missing_sqlite_file_is_a_usage_error_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    result = CliRunner().invoke(
        main, ["report", "--db", f"sqlite:///{missing}", "--out", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: no database at sqlite:///{missing} (nothing crawled there: check --db)"
    ]
    assert not missing.exists()
    assert not (tmp_path / "r.html").exists()


def test_report_help_names_its_options() -> None:
    result = CliRunner().invoke(main, ["report", "--help"])
    assert result.exit_code == 0
    for option in ("--db URL", "--db-schema NAME", "--out", "--title", "--daily-budget"):
        assert option in result.output


def test_the_javascript_bundle_is_kept_in_the_cache_directory(tmp_path: Path) -> None:
    report_lib.forget_loaded_javascript()
    text = report_lib.vega_javascript(cache_dir=tmp_path)
    cached = list(tmp_path.glob("vega-bundle-*.js"))
    assert len(cached) == 1
    assert cached[0].read_text("utf-8") == text
    assert "vegaEmbed" in text
    assert "</script" not in text
    report_lib.forget_loaded_javascript()
    assert report_lib.vega_javascript(cache_dir=tmp_path) == text  # read back from the file


def test_names_are_escaped_in_the_page_and_in_the_chart_data(tmp_path: Path) -> None:
    engine = _stored(tmp_path / "x.db")
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    evil = "</script><script>alert(1)</script>"
    with engine.begin() as conn:
        _add_artist(conn, "e1", evil, detail="simplified")
        conn.execute(sa.insert(schema.track_artists).values(track_id="t1", position=0, artist_id="e1"))
        conn.execute(
            sa.insert(schema.artist_resolutions).values(
                input=evil, artist_id=None, exact=False, alternatives=[], resolved_at=now
            )
        )
    with engine.connect() as conn:
        report = report_lib.collect(conn, now=now)
    engine.dispose()
    assert report.top_by_tracks == [("e1", evil, 1)]
    page = report_lib.render(report, title=evil, source="db", javascript="/* vega */")
    assert "<script>alert(1)" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "\\u003c/script>\\u003cscript>alert(1)" in page  # in the charts' JSON


def test_an_unwritable_out_is_a_usage_error(tmp_path: Path) -> None:
    engine = _stored(tmp_path / "c.db")
    engine.dispose()
    out = tmp_path / "no" / "such" / "dir" / "r.html"
    result = CliRunner().invoke(main, ["report", "--db", f"sqlite:///{tmp_path / 'c.db'}", "--out", str(out)])
    assert result.exit_code == 2
    assert result.output.startswith(f"Error: cannot write {out}")
    assert len(result.output.strip().splitlines()) == 1


def test_db_schema_reports_that_schema(postgres_url: str, tmp_path: Path) -> None:
    engine = open_database(postgres_url, schema="spotify")
    with engine.begin() as conn:
        _add_artist(conn, "s1", "In the schema")
    engine.dispose()
    base = ["report", "--db", postgres_url]
    out = tmp_path / "schema.html"
    result = CliRunner().invoke(main, [*base, "--db-schema", "spotify", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert 'id="count-artists" data-value="1"' in out.read_text("utf-8")
    result = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "public.html")])
    assert result.exit_code == 0, result.output
    assert "Nothing collected yet" in (tmp_path / "public.html").read_text("utf-8")


def test_without_vl_convert_the_report_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _stored(tmp_path / "c.db")
    with engine.begin() as conn:
        _add_artist(conn, "a1", "Someone")
    engine.dispose()
    monkeypatch.setitem(sys.modules, "vl_convert", None)  # "import vl_convert" fails
    out = tmp_path / "r.html"
    result = CliRunner().invoke(main, ["report", "--db", f"sqlite:///{tmp_path / 'c.db'}", "--out", str(out)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: the report's charts need vl-convert-python: pip install 'spotify-catalog[report]'"
    ]
    assert not out.exists()


WITHOUT_JINJA2 = "import sys; sys.modules['jinja2'] = None; from spotify_catalog.cli import main; main()"
"""The command line in a process where ``import jinja2`` fails, as without the ``report`` extra."""


def test_without_jinja2_report_and_demo_say_what_to_install(tmp_path: Path) -> None:
    """The page needs the ``report`` extra: without it ``report`` says so, and ``demo`` says so
    before it crawls."""
    database = tmp_path / "demo.db"
    for command, code, message in (
        (
            ["report"],
            2,
            "'report' needs jinja2 (the report extra): pip install 'spotify-catalog[report]'",
        ),
        (
            ["demo", "--quiet"],
            2,
            "demo needs jinja2 (extras emulator, report): pip install 'spotify-catalog[emulator,report]'",
        ),
    ):
        done = subprocess.run(
            [sys.executable, "-c", WITHOUT_JINJA2, *command, "--db", f"sqlite:///{database}"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
        )
        assert (done.returncode, done.stderr.strip().splitlines()) == (code, [f"Error: {message}"])
        assert done.stdout == ""
    assert not database.exists()  # nothing crawled


def test_runs_whose_process_is_gone_show_abandoned_without_a_write(db_url: str) -> None:
    """``status`` and ``report`` show a dead run (this host, its pid gone; another host, silent for an
    hour) as ``abandoned``, on every backend, and leave ``_runs`` as it was."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    host, pid = state.this_process()
    now = datetime.now(UTC)
    engine = open_database(db_url)
    rows = [
        (host, gone.pid, now, "running", None),
        ("elsewhere", 1, now - timedelta(hours=2), "running", None),
        (host, pid, now, "running", None),  # alive: this process
        (host, gone.pid, now, "done", None),
        (host, gone.pid, now, "stopped", "budget"),
    ]
    with engine.begin() as conn:
        for run_host, run_pid, active, status, reason in rows:
            conn.execute(
                schema.runs.insert().values(
                    started_at=active, updated_at=active, status=status, reason=reason,
                    requests=1, rows_written=0, host=run_host, pid=run_pid,
                )
            )  # fmt: skip
        before = conn.execute(sa.select(schema.runs).order_by(schema.runs.c.id)).all()
        shown = status_lib.read_status(conn, now=now)
        data = report_lib.collect(conn, now=now)
        after = conn.execute(sa.select(schema.runs).order_by(schema.runs.c.id)).all()
    engine.dispose()
    want = ["stopped", "done", "running", "abandoned", "abandoned"]  # newest first
    assert [run.status for run in shown.runs] == want
    assert [run.status for run in data.runs] == want
    assert [run.reason for run in data.runs][3:] == [state.ABANDONED_REASON] * 2
    assert sorted(data.stop_reasons) == [
        ("abandoned", state.ABANDONED_REASON, 2),
        ("done", "", 1),
        ("running", "", 1),
        ("stopped", "budget", 1),
    ]
    assert after == before
