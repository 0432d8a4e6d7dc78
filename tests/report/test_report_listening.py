"""The Listening section: a user's own data aggregated in SQL equals the same figures counted in
Python from the rows, on SQLite, PostgreSQL (in a session whose time zone is not UTC) and MariaDB;
no section for a database without such data."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from listening_rows import ALICE, BOB, CAROL, CREDITS, EVIL, NEWEST, TRACKS, UNKNOWN_TRACK, insert, user_rows

from spotify_catalog import report as report_lib
from spotify_catalog.report.listening import PERIOD_DAYS, SAVED, TOP_ITEMS_SHOWN, TOP_PLAYED
from spotify_catalog.storage import schema
from spotify_catalog.storage.migrate import open_database

NOW = datetime(2026, 11, 25, 9, tzinfo=UTC)


def _expected(rows: dict[sa.Table, list[dict[str, Any]]]) -> dict[str, Any]:
    """The section's figures counted in Python from the rows."""
    plays = rows[schema.plays]
    newest = max(p["played_at"] for p in plays)
    start = datetime.combine(newest.date() - timedelta(days=PERIOD_DAYS - 1), time(), tzinfo=UTC)
    period = [p for p in plays if p["played_at"] >= start]
    names = {a["id"]: a["name"] for a in rows[schema.artists]}
    credited = Counter(a for p in period for a in CREDITS.get(p["track_id"], []))
    top = sorted(credited.items(), key=lambda item: (-item[1], item[0]))[:TOP_PLAYED]
    months = Counter(
        (r["added_at"].strftime("%Y-%m"), kind)
        for kind, table in SAVED.items()
        for r in rows[table]
        if r["added_at"] is not None
    )
    newest_top: dict[tuple[str, str, str], Any] = {}
    for r in rows[schema.top_items]:
        key = (r["user_id"], r["item_type"], r["time_range"])
        newest_top[key] = max(newest_top.get(key, r["snapshot_date"]), r["snapshot_date"])
    return {
        "start": start,
        "period": period,
        "per_day": sorted(Counter((p["played_at"].date().isoformat(), p["user_id"]) for p in period).items()),
        "per_hour": sorted(Counter((p["played_at"].hour, p["user_id"]) for p in period).items()),
        "top": [(i, names.get(i, i), n) for i, n in top],
        "minutes": round(
            sum(TRACKS[p["track_id"]][1] for p in period if p["track_id"] in TRACKS) / 60_000, 1
        ),
        "months": sorted(months.items()),
        "newest_top": newest_top,
    }


def test_the_listening_figures_aggregated_in_sql_equal_those_counted_from_the_rows(db_url: str) -> None:
    rows = user_rows()
    engine = open_database(db_url)
    with engine.begin() as conn:
        insert(conn, rows)
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":  # the UTC days and hours whatever the session's zone
            conn.exec_driver_sql("SET TIME ZONE 'Asia/Tokyo'")
        report = report_lib.collect(conn, now=NOW)
    engine.dispose()
    want = _expected(rows)
    found = report.listening
    assert found is not None
    assert found.users == {ALICE: EVIL, BOB: BOB, CAROL: CAROL}  # Carol: plays only, no profile
    plays = rows[schema.plays]
    assert found.plays_total == len(plays)
    assert found.first_play == min(p["played_at"] for p in plays)
    assert found.last_play == NEWEST  # to the millisecond
    assert found.period_start == want["start"] == datetime(2025, 11, 25, tzinfo=UTC)
    period = want["period"]
    assert found.plays == len(period) < len(plays)
    assert found.tracks_played == len({p["track_id"] for p in period})
    assert found.plays_per_day == [(day, user, n) for (day, user), n in want["per_day"]]
    assert found.plays_per_day[-1][0] == "2026-11-24"  # 23:59:59.999 is still that day
    assert found.plays_per_day[0][0] == "2025-11-25"
    assert found.plays_per_hour == [(hour, user, n) for (hour, user), n in want["per_hour"]]
    assert found.top_played == want["top"]
    assert found.top_played[0][1] in {"Sigur Rós", "Beyoncé", "Björk"}
    assert found.plays_uncredited == sum(p["track_id"] not in CREDITS for p in period) > 0
    assert found.minutes == want["minutes"]
    assert found.plays_without_duration == sum(p["track_id"] == UNKNOWN_TRACK for p in period) > 0
    assert found.saved == {kind: len(rows[table]) for kind, table in SAVED.items()}
    assert found.saved_per_month == [(month, kind, n) for (month, kind), n in want["months"]]
    assert found.followed == 3
    assert (found.playlists, found.playlists_owned) == (5, 3)

    assert [(t.user_id, t.item_type, t.time_range) for t in found.top_lists] == [
        (BOB, "track", "short_term"),  # by user id, then kind, then the ranges from the shortest
        (ALICE, "artist", "short_term"),
        (ALICE, "artist", "medium_term"),
        (ALICE, "artist", "long_term"),
    ]
    for top in found.top_lists:
        key = (top.user_id, top.item_type, top.time_range)
        assert top.snapshot_date == want["newest_top"][key].isoformat()
        stored = sorted(
            (r["position"], r["item_id"])
            for r in rows[schema.top_items]
            if (r["user_id"], r["item_type"], r["time_range"], r["snapshot_date"])
            == (*key, want["newest_top"][key])
        )
        assert [i for i, _ in top.items] == [i for _, i in stored][:TOP_ITEMS_SHOWN]
    alice_short = next(t for t in found.top_lists if (t.user_id, t.time_range) == (ALICE, "short_term"))
    assert len(alice_short.items) == TOP_ITEMS_SHOWN
    assert alice_short.items[-1][1] is None  # an artist the catalog lacks: no name


def test_the_page_has_the_listening_section_only_with_a_users_data(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'l.db'}")
    rows = user_rows()
    catalog_only = {t: rows[t] for t in (schema.artists, schema.tracks, schema.track_artists)}
    with engine.begin() as conn:
        insert(conn, catalog_only)
    with engine.connect() as conn:
        without = report_lib.collect(conn, now=NOW)
    with engine.begin() as conn:
        insert(conn, {t: r for t, r in rows.items() if t not in catalog_only})
    with engine.connect() as conn:
        with_data = report_lib.collect(conn, now=NOW)
    engine.dispose()

    assert without.listening is None
    page = report_lib.render(without, title="t", source="db", javascript="")
    assert 'id="listening"' not in page
    assert "chart-plays-per-day" not in page

    page = report_lib.render(with_data, title="t", source="db", javascript="")
    assert '<section id="listening"><h2>Listening</h2>' in page
    for chart in ("plays-per-day", "plays-per-hour", "top-artists-plays", "saved-per-month"):
        assert f'id="chart-{chart}"' in page
    assert f'id="listening-plays" data-value="{with_data.listening.plays}"' in page  # type: ignore[union-attr]
    assert "<script>alert(1)" not in page
    assert "Alice &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Alice \\u003cscript>alert(1)\\u003c/script>" in page  # in the charts' JSON
    assert 'id="top-lists"' in page
    assert "short term (about 4 weeks)" in page


def test_a_users_data_alone_makes_a_report(tmp_path: Path) -> None:
    """Plays of tracks the catalog does not hold yet, nothing else: a report, not 'nothing collected'."""
    engine = open_database(f"sqlite:///{tmp_path / 'p.db'}")
    with engine.begin() as conn:
        insert(conn, {schema.plays: user_rows()[schema.plays][:3]})
    with engine.connect() as conn:
        report = report_lib.collect(conn, now=NOW)
    engine.dispose()
    assert not report.empty
    assert report.listening is not None
    assert report.listening.plays_total == 3
    assert report.listening.top_played == []
    page = report_lib.render(report, title="t", source="db", javascript="")
    assert 'id="chart-plays-per-day"' in page
    assert 'id="chart-top-artists-plays"' not in page
