"""The crawl's request count equals docs/crawl.md's minimum, in both modes and at every depth;
a rerun makes none; stale data is fetched again."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from crawl_helpers import T0, crawl, minimum_requests, new_engine, pick

from emulated import web_requests
from spotify_catalog.crawl import Depth
from spotify_catalog.inputs import ArtistInput
from spotify_catalog.storage import schema


@pytest.mark.parametrize("profile", ["development", "extended"])
@pytest.mark.parametrize("depth", list(Depth), ids=lambda d: d.label)
def test_request_count_is_the_minimum(make_emulator: Any, tmp_path: Path, profile: str, depth: Depth) -> None:
    emu = make_emulator(profile=profile)
    engine = new_engine(tmp_path / "c.db")
    names, ids = pick().names, pick().ids
    result = crawl(emu, engine, mode=profile, depth=depth, workers=4)
    expected = minimum_requests(emu.catalog, names, ids, mode=profile, depth=depth)
    assert result.status == "done"
    assert web_requests(emu) == result.requests == expected
    with engine.connect() as conn:
        chosen = dict(
            conn.execute(
                sa.select(schema.artist_resolutions.c.input, schema.artist_resolutions.c.artist_id)
            ).all()
        )
        assert chosen == names
        n_tracks = conn.execute(sa.select(sa.func.count()).select_from(schema.tracks)).scalar_one()
        n_full = conn.execute(
            sa.select(sa.func.count()).select_from(schema.tracks).where(schema.tracks.c.detail == "full")
        ).scalar_one()
    if depth >= Depth.TRACKS:
        albums = {a for artist in [*names.values(), *ids] for a in emu.catalog.artist_album_ids(artist)}
        assert n_tracks == sum(emu.catalog.album(a).total_tracks for a in albums)
    assert n_full == (n_tracks if depth == Depth.TRACK_DETAILS else 0)

    before = web_requests(emu)
    again = crawl(emu, engine, mode=profile, depth=depth, workers=4, now=T0 + timedelta(days=6))
    assert again.requests == 0
    assert web_requests(emu) == before
    engine.dispose()


@pytest.mark.parametrize("given", ["names", "ids", "both"])
@pytest.mark.parametrize("profile", ["development", "extended"])
def test_auto_mode_is_learnt_from_requests_the_crawl_needs_anyway(
    make_emulator: Any, tmp_path: Path, profile: str, given: str
) -> None:
    """Neither mode pays a request to learn it: names, from the search; ids only, from the first
    artist's first discography page (asked with 10, which both modes accept)."""
    emu = make_emulator(profile=profile)
    engine = new_engine(tmp_path / "c.db")
    names = pick().names if given != "ids" else {}
    ids = pick().ids if given != "names" else ()
    inputs = [ArtistInput(n, False) for n in names] + [ArtistInput(i, True) for i in ids]
    result = crawl(emu, engine, inputs, mode=None, depth=Depth.TRACKS, workers=4)
    assert result.api_mode == profile
    expected = minimum_requests(emu.catalog, names, ids, mode=profile, depth=Depth.TRACKS)
    assert result.requests == web_requests(emu) == expected
    # a new crawl into the same database knows the mode: nothing extra at all
    other = emu.catalog.artist_ids()[150:152]
    start = web_requests(emu)
    second = crawl(emu, engine, [ArtistInput(i, True) for i in other], mode=None, depth=Depth.TRACKS)
    assert second.requests == web_requests(emu) - start
    assert second.requests == minimum_requests(emu.catalog, {}, other, mode=profile, depth=Depth.TRACKS)
    engine.dispose()


def test_stale_data_is_fetched_again(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator(profile="extended")
    engine = new_engine(tmp_path / "c.db")
    first = crawl(emu, engine, mode="extended", depth=Depth.TRACKS)
    assert first.requests > 0
    assert crawl(emu, engine, mode="extended", depth=Depth.TRACKS, now=T0 + timedelta(days=6)).requests == 0
    later = crawl(emu, engine, mode="extended", depth=Depth.TRACKS, now=T0 + timedelta(days=8))
    assert later.requests == first.requests
    engine.dispose()


@pytest.mark.parametrize("profile", ["development", "extended"])
@pytest.mark.parametrize("groups", [("single", "appears_on"), ("appears_on",), ("album", "compilation")])
def test_include_groups_select_the_albums(
    make_emulator: Any, tmp_path: Path, profile: str, groups: tuple[str, ...]
) -> None:
    """Development Mode strips ``album_group``; the albums crawled are still those of the groups."""
    emu = make_emulator(profile=profile)
    engine = new_engine(tmp_path / "c.db")
    names, ids = pick().names, pick().ids
    result = crawl(emu, engine, mode=profile, depth=Depth.TRACKS, groups=groups, workers=2)
    assert result.requests == minimum_requests(
        emu.catalog, names, ids, mode=profile, depth=Depth.TRACKS, groups=groups
    )
    with engine.connect() as conn:
        full = set(
            conn.execute(sa.select(schema.albums.c.id).where(schema.albums.c.detail == "full")).scalars()
        )
        linked = conn.execute(sa.select(schema.artist_albums)).mappings().all()
    wanted = {a for artist in [*names.values(), *ids] for a in emu.catalog.artist_album_ids(artist, groups)}
    assert full == wanted
    truth = {
        (artist, album.id): group
        for artist in [*names.values(), *ids]
        for album, group in emu.catalog.artist_albums(emu.catalog.artist_by_id(artist).index, groups)
    }
    assert {(r["artist_id"], r["album_id"]): r["album_group"] for r in linked} == truth
    engine.dispose()


def test_overlapping_inputs_are_fetched_once(make_emulator: Any, tmp_path: Path) -> None:
    """An id that a name already resolved to costs nothing; an artist already crawled neither."""
    emu = make_emulator(profile="development")
    engine = new_engine(tmp_path / "c.db")
    names, ids = pick().names, pick().ids
    first, second = list(names)[:2]
    duplicate = [*pick().inputs, ArtistInput(names[first], True), ArtistInput(second, False)]
    result = crawl(emu, engine, duplicate, mode="development", depth=Depth.ALBUMS)
    assert result.requests == minimum_requests(
        emu.catalog, names, ids, mode="development", depth=Depth.ALBUMS
    )
    engine.dispose()


def test_a_run_writes_what_it_wrote_before_once(make_emulator: Any, tmp_path: Path) -> None:
    """An album comes inside each of its tracks and a track's artists with its album's list and again
    with the track: within a run they are written once (``crawl.copies.WrittenCopies``), and the tables
    are the same."""
    emu = make_emulator(profile="extended")
    engine = new_engine(tmp_path / "c.db")
    sent: dict[str, int] = {"albums": 0, "track_artists": 0}

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        for table in sent:
            if statement.startswith(f"INSERT INTO {table} "):
                sent[table] += len(parameters) if many else 1

    sa.event.listen(engine, "before_cursor_execute", count)
    assert crawl(emu, engine, mode="extended", depth=Depth.TRACK_DETAILS, workers=4).status == "done"
    with engine.connect() as conn:
        albums = conn.execute(sa.select(sa.func.count()).select_from(schema.albums)).scalar_one()
        links = conn.execute(sa.select(sa.func.count()).select_from(schema.track_artists)).scalar_one()
        tracks = conn.execute(sa.select(sa.func.count()).select_from(schema.tracks)).scalar_one()
        listed = conn.execute(sa.select(sa.func.count()).select_from(schema.artist_albums)).scalar_one()
    engine.dispose()
    assert tracks > 3 * albums  # without it, an album would be written once per track
    # its own object, its listings on discography pages, and the first copy inside a track
    assert 0 < sent["albums"] <= 2 * albums + listed
    assert sent["track_artists"] == links  # not again from the full track


def test_ids_only_auto_mode_learns_from_a_first_page_of_ten(make_emulator: Any, tmp_path: Path) -> None:
    """The first artist has 21 to 49 albums: its first page (10, asked before the mode is known) is
    followed by one page of 50 in Extended mode, not by pages of 10: one request more than the
    minimum, as when those 10 do not save a page of 50 (docs/crawl.md)."""
    emu = make_emulator(profile="extended")
    engine = new_engine(tmp_path / "c.db")
    catalog = emu.catalog
    first = next(a for a in catalog.artist_ids() if 20 < len(catalog.artist_album_ids(a)) < 50)
    ids = (first, pick().ids[0])
    n = len(catalog.artist_album_ids(first))
    result = crawl(emu, engine, [ArtistInput(i, True) for i in ids], mode=None, depth=Depth.ALBUMS)
    extra = 1
    expected = minimum_requests(emu.catalog, {}, ids, mode="extended", depth=Depth.ALBUMS)
    assert result.api_mode == "extended"
    assert result.requests == web_requests(emu) == expected + extra
    with engine.connect() as conn:
        listed = conn.execute(
            sa.select(sa.func.count())
            .select_from(schema.artist_albums)
            .where(schema.artist_albums.c.artist_id == ids[0])
        ).scalar_one()
    assert listed == n
    engine.dispose()


@pytest.mark.parametrize("profile", ["development", "extended"])
def test_one_id_in_auto_mode_is_asked_alone_and_tells_the_mode(
    make_emulator: Any, tmp_path: Path, profile: str
) -> None:
    """One artist to ask (one more than a multiple of 50): asked alone, which is its minimum in both
    modes, its answer tells the mode, and the discography pages are as large as the mode allows."""
    emu = make_emulator(profile=profile)
    engine = new_engine(tmp_path / "c.db")
    ids = (pick().ids[1],)  # more than 10 albums
    result = crawl(emu, engine, [ArtistInput(i, True) for i in ids], mode=None, depth=Depth.ALBUMS)
    assert result.api_mode == profile
    expected = minimum_requests(emu.catalog, {}, ids, mode=profile, depth=Depth.ALBUMS)
    assert result.requests == web_requests(emu) == expected
    engine.dispose()
