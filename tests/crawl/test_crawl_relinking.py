"""Track relinking: with a market, Spotify answers a relinked track with the playable track's id and
the requested one in ``linked_from``. The crawler stores the row under the answered id with
``linked_from_id``, and the task of the id it asked for is done."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from crawl_helpers import GROUPS, crawl, new_engine

from spotify_catalog.crawl import Depth
from spotify_catalog.crawl.units import _handle_tracks
from spotify_catalog.emulator import Catalog, render
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.storage import schema, state
from spotify_catalog.transform import Rows


def _small_artist_with_a_relinked_track(catalog: Any) -> tuple[str, str, str, str, str]:
    """(artist, album, market, requested track, playable track): the smallest discography found."""
    best: tuple[int, tuple[str, str, str, str, str]] | None = None
    for artist in catalog.artist_ids()[1:80]:
        albums = catalog.artist_album_ids(artist, GROUPS)
        size = sum(catalog.album(a).total_tracks for a in albums)
        if best is not None and size >= best[0]:
            continue
        for album in albums:
            for track_id in catalog.album_track_ids(album):
                for market in ("DE", "JP", "BR", "US", "ES", "FR"):
                    playable = catalog.relinked_id(catalog.track(track_id), market)
                    if playable and (best is None or size < best[0]):
                        best = (size, (artist, album, market, track_id, playable))
    assert best is not None
    return best[1]


def test_a_crawl_with_a_market_stores_relinked_tracks_under_the_playable_id(
    make_emulator: Any, tmp_path: Path
) -> None:
    emu = make_emulator(profile="extended")
    artist, album, market, requested, playable = _small_artist_with_a_relinked_track(emu.catalog)
    engine = new_engine(tmp_path / "c.db")
    result = crawl(
        emu, engine, [ArtistInput(artist, True)], mode="extended", depth=Depth.TRACK_DETAILS, market=market
    )
    assert result.status == "done"
    t = schema.tracks
    with engine.connect() as conn:
        row = conn.execute(sa.select(t).where(t.c.id == playable)).one()
        original = conn.execute(sa.select(t.c.id).where(t.c.id == requested)).all()
        pending = conn.execute(
            sa.select(sa.func.count()).select_from(schema.tasks).where(schema.tasks.c.state != state.DONE)
        ).scalar_one()
        others = conn.execute(
            sa.select(sa.func.count()).select_from(t).where(t.c.linked_from_id.is_not(None))
        ).scalar_one()
    assert row.linked_from_id == requested
    assert row.album_id == album
    assert row.detail == "full"
    assert row.is_playable is True
    assert original == []  # never answered under the id Spotify relinks
    assert pending == 0
    assert others >= 1
    engine.dispose()


def test_a_relinked_answer_marks_the_requested_key_done() -> None:
    """``/tracks?ids=A&market=XX`` answered by track B with ``linked_from`` A (the emulator's own
    answer): A's task is done, the row is B's with ``linked_from_id`` A."""
    catalog = Catalog(seed=42, artists=200)
    _artist, _album, market, requested, playable = _small_artist_with_a_relinked_track(catalog)
    answer = render.track(catalog, catalog.track(requested), "http://127.0.0.1", False, market)
    assert answer["id"] == playable
    rows = Rows()
    outcome = _handle_tracks([requested], [answer], rows, datetime(2026, 11, 25, tzinfo=UTC))
    assert outcome.done == [requested]
    assert outcome.not_found == []
    (row,) = rows.upserts["tracks"]
    assert (row["id"], row["linked_from_id"]) == (playable, requested)
