"""A user's own data as ``crawl --me`` writes it, put straight into a database: two users with a
profile and one named only by its plays, plays over more than a year (milliseconds, around UTC
midnight, tracks the catalog lacks), saved items over several months (some without ``added_at``),
followed artists, playlists and two days of top lists. Used by the report's data and browser tests."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from spotify_catalog.storage import schema

ALICE, BOB, CAROL = "alice.smith", "31l77y2kwyjbzd3rasg5fovgx6gi", "carol"
NEWEST = datetime(2026, 11, 24, 23, 59, 59, 999_000, tzinfo=UTC)
"""The newest play: one millisecond before a UTC midnight."""
FETCHED = datetime(2026, 11, 25, 8, tzinfo=UTC)
EVIL = "Alice <script>alert(1)</script>"


def sid(kind: str, n: int) -> str:
    """A Spotify-like id of 22 characters."""
    return f"{kind}{n:0{22 - len(kind)}d}"


ARTISTS = {sid("ar", n): name for n, name in enumerate(["Sigur Rós", "Beyoncé", "AC/DC", "Björk", "Nobody"])}
ARTIST_IDS = list(ARTISTS)
TRACKS = {sid("tr", n): (f"Song {n}", 180_000 + 7_000 * n) for n in range(8)}
TRACK_IDS = list(TRACKS)
CREDITS = {  # track -> its artists; the last two tracks have none (credits not crawled)
    TRACK_IDS[0]: [ARTIST_IDS[0]],
    TRACK_IDS[1]: [ARTIST_IDS[0], ARTIST_IDS[1]],
    TRACK_IDS[2]: [ARTIST_IDS[2]],
    TRACK_IDS[3]: [ARTIST_IDS[1], ARTIST_IDS[3]],
    TRACK_IDS[4]: [ARTIST_IDS[3]],
    TRACK_IDS[5]: [ARTIST_IDS[4]],
}
UNKNOWN_TRACK = sid("tr", 99)
"""Played, not in ``tracks``: no duration, no credits."""


def _plays(rng: random.Random) -> list[dict[str, Any]]:
    plays: dict[tuple[str, datetime], dict[str, Any]] = {}
    moments = [NEWEST, NEWEST + timedelta(milliseconds=1) - timedelta(days=1)]  # 00:00:00.000 a day before
    moments += [NEWEST - timedelta(days=364, hours=23, minutes=59, seconds=59, milliseconds=999)]  # first day
    moments += [NEWEST - timedelta(days=365)]  # one day before the period
    moments += [NEWEST - timedelta(days=400)]
    for _ in range(160):
        moments.append(
            NEWEST - timedelta(minutes=rng.randint(1, 60 * 24 * 60), milliseconds=rng.randint(0, 999))
        )
    for i, moment in enumerate(moments):
        user = (ALICE, ALICE, BOB, CAROL)[i % 4]
        track = UNKNOWN_TRACK if i % 23 == 5 else rng.choice(TRACK_IDS)
        context = rng.choice([None, "album", "playlist"])
        plays[(user, moment)] = {
            "user_id": user,
            "played_at": moment,
            "track_id": track,
            "context_type": context,
            "context_uri": None if context is None else f"spotify:{context}:{sid('cx', i)}",
            "fetched_at": FETCHED,
        }
    return list(plays.values())


def _saved(rng: random.Random, column: str, ids: list[str]) -> list[dict[str, Any]]:
    rows = []
    for user in (ALICE, BOB):
        for item in rng.sample(ids, k=min(len(ids), 5)):
            added = (
                None
                if rng.random() < 0.15
                else NEWEST - timedelta(days=rng.randint(0, 200), seconds=rng.randint(0, 86_399))
            )
            rows.append({"user_id": user, column: item, "added_at": added, "fetched_at": FETCHED})
    return rows


def _top_items() -> list[dict[str, Any]]:
    rows = []
    for day in (date(2026, 11, 20), date(2026, 11, 24)):
        for time_range in ("long_term", "short_term", "medium_term"):
            for position in range(12):  # more than the report shows
                shift = day.day + len(time_range)
                rows.append(
                    {
                        "user_id": ALICE,
                        "item_type": "artist",
                        "time_range": time_range,
                        "snapshot_date": day,
                        "position": position,
                        "item_id": ARTIST_IDS[(position + shift) % len(ARTIST_IDS)]
                        if position < 5
                        else sid("ar", 50 + position),
                        "fetched_at": FETCHED,
                    }
                )
        rows.append(
            {
                "user_id": BOB, "item_type": "track", "time_range": "short_term", "snapshot_date": day,
                "position": 0, "item_id": TRACK_IDS[day.day % 8], "fetched_at": FETCHED,
            }
        )  # fmt: skip
    return rows


def user_rows(seed: int = 22) -> dict[sa.Table, list[dict[str, Any]]]:
    """The rows of every table, catalog rows for the items they name included."""
    rng = random.Random(seed)
    return {
        schema.artists: [{"id": i, "name": name, "detail": "full"} for i, name in ARTISTS.items()],
        schema.tracks: [
            {"id": i, "name": name, "duration_ms": ms, "detail": "full"} for i, (name, ms) in TRACKS.items()
        ],
        schema.track_artists: [
            {"track_id": t, "position": p, "artist_id": a}
            for t, artists in CREDITS.items()
            for p, a in enumerate(artists)
        ],
        schema.users: [
            {"id": ALICE, "display_name": EVIL, "country": "SE", "product": "premium", "fetched_at": FETCHED},
            {"id": BOB, "display_name": None, "country": "US", "product": "free", "fetched_at": FETCHED},
        ],
        schema.plays: _plays(rng),
        schema.saved_tracks: _saved(rng, "track_id", TRACK_IDS),
        schema.saved_albums: _saved(rng, "album_id", [sid("al", n) for n in range(6)]),
        schema.saved_shows: _saved(rng, "show_id", [sid("sh", n) for n in range(2)]),
        schema.saved_episodes: [],
        schema.followed_artists: [
            {"user_id": ALICE, "artist_id": a, "fetched_at": FETCHED} for a in ARTIST_IDS[:3]
        ],
        schema.user_playlists: [
            {
                "user_id": ALICE,
                "playlist_id": sid("pl", n),
                "position": n,
                "owned": n % 2 == 0,
                "collaborative": n == 3,
                "fetched_at": FETCHED,
            }
            for n in range(5)
        ],
        schema.top_items: _top_items(),
    }


def insert(conn: sa.Connection, rows: dict[sa.Table, list[dict[str, Any]]]) -> None:
    for table, values in rows.items():
        if values:
            conn.execute(sa.insert(table), values)
