"""transform: Spotify JSON (shapes of the reference, both modes) -> rows; name matching."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from typing import Any

import pytest

from spotify_catalog import transform
from spotify_catalog.crawl.copies import WrittenCopies
from spotify_catalog.transform import FULL, SIMPLIFIED, Rows

WHEN = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)
API = "https://api.spotify.com/v1"


def artist(
    artist_id: str = "0TnOYISbd1XYRBk9myaseg", name: str = "Pitbull", *, extended: bool = True
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "external_urls": {"spotify": f"https://open.spotify.com/artist/{artist_id}"},
        "genres": ["pop", "dance pop"] if extended else [],
        "href": f"{API}/artists/{artist_id}",
        "id": artist_id,
        "images": [
            {"url": "https://i.scdn.co/image/small", "height": 160, "width": 160},
            {"url": "https://i.scdn.co/image/large", "height": 640, "width": 640},
        ],
        "name": name,
        "type": "artist",
        "uri": f"spotify:artist:{artist_id}",
    }
    if extended:
        obj["followers"] = {"href": None, "total": 10071463}
        obj["popularity"] = 80
    return obj


def simple_artist(artist_id: str, name: str) -> dict[str, Any]:
    full = artist(artist_id, name)
    return {k: full[k] for k in ("external_urls", "href", "id", "name", "type", "uri")}


def simple_track(track_id: str, number: int, *, extended: bool = True) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "artists": [
            simple_artist("0TnOYISbd1XYRBk9myaseg", "Pitbull"),
            simple_artist("guest0000000000000000a", "Guest"),
        ],
        "disc_number": 1,
        "duration_ms": 200000 + number,
        "explicit": False,
        "external_urls": {"spotify": f"https://open.spotify.com/track/{track_id}"},
        "href": f"{API}/tracks/{track_id}",
        "id": track_id,
        "is_local": False,
        "name": f"Track {number}",
        "preview_url": None,
        "track_number": number,
        "type": "track",
        "uri": f"spotify:track:{track_id}",
    }
    if extended:
        obj["available_markets"] = ["US", "DE"]
    return obj


def album(
    album_id: str = "4aawyAB9vmqN3uQ7FjRGTy", *, extended: bool = True, full: bool = True
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "album_type": "compilation",
        "total_tracks": 2,
        "external_urls": {"spotify": f"https://open.spotify.com/album/{album_id}"},
        "href": f"{API}/albums/{album_id}",
        "id": album_id,
        "images": [{"url": "https://i.scdn.co/image/cover", "height": 640, "width": 640}],
        "name": "Global Warming",
        "release_date": "2012-11-16",
        "release_date_precision": "day",
        "type": "album",
        "uri": f"spotify:album:{album_id}",
        "artists": [simple_artist("0TnOYISbd1XYRBk9myaseg", "Pitbull")],
    }
    if extended:
        obj["available_markets"] = ["US", "DE"]
    if full:
        obj["copyrights"] = [{"text": "(P) 2012 RCA Records", "type": "P"}]
        obj["external_ids"] = {"upc": "886443671584"}
        obj["genres"] = []
        obj["tracks"] = {
            "href": f"{API}/albums/{album_id}/tracks?offset=0&limit=50",
            "items": [simple_track("6OmhkSOpvYBokMKQxpIGx2", 1, extended=extended),
                      simple_track("7rv6vDoB3jg0zz0HM4dLuM", 2, extended=extended)],
            "limit": 50, "next": None, "offset": 0, "previous": None, "total": 2,
        }  # fmt: skip
        if extended:
            obj["label"] = "Mr.305/Polo Grounds Music/RCA Records"
            obj["popularity"] = 57
    return obj


def test_full_artist_in_extended_mode() -> None:
    rows = Rows()
    transform.add_artist(rows, artist(), FULL, WHEN)
    (row,) = rows.upserts["artists"]
    assert row["popularity"] == 80
    assert row["followers"] == 10071463
    assert row["image_url"] == "https://i.scdn.co/image/large"
    assert row["spotify_url"] == "https://open.spotify.com/artist/0TnOYISbd1XYRBk9myaseg"
    assert row["detail"] == FULL
    assert row["raw"]["followers"]["total"] == 10071463
    assert rows.children["artist_genres"]["0TnOYISbd1XYRBk9myaseg"] == [
        {"artist_id": "0TnOYISbd1XYRBk9myaseg", "genre": "dance pop"},
        {"artist_id": "0TnOYISbd1XYRBk9myaseg", "genre": "pop"},
    ]
    assert rows.upserts["artist_snapshots"] == [
        {
            "artist_id": "0TnOYISbd1XYRBk9myaseg",
            "snapshot_date": date(2026, 11, 25),
            "popularity": 80,
            "followers": 10071463,
        }
    ]


def test_development_artist_leaves_popularity_and_followers_out() -> None:
    rows = Rows()
    transform.add_artist(rows, artist(extended=False), FULL, WHEN)
    (row,) = rows.upserts["artists"]
    assert "popularity" not in row
    assert "followers" not in row
    assert "artist_snapshots" not in rows.upserts
    assert rows.children["artist_genres"] == {"0TnOYISbd1XYRBk9myaseg": []}


def test_simplified_artist_has_only_simplified_columns() -> None:
    rows = Rows()
    transform.add_artist(rows, simple_artist("abc", "Guest"), SIMPLIFIED, WHEN)
    (row,) = rows.upserts["artists"]
    assert set(row) == {"id", "name", "uri", "href", "spotify_url", "detail", "raw", "fetched_at"}
    assert rows.children == {}


@pytest.mark.parametrize("extended", [True, False])
def test_full_album_with_its_tracks(extended: bool) -> None:
    rows = Rows()
    source = album(extended=extended)
    original = copy.deepcopy(source)
    transform.add_album(rows, source, FULL, WHEN)
    assert source == original  # not modified
    (row,) = rows.upserts["albums"]
    assert row["copyrights"] == ["(P) 2012 RCA Records"]
    assert row["upc"] == "886443671584"
    assert row["ean"] is None
    assert row["total_tracks"] == 2
    assert ("label" in row, "popularity" in row, "available_markets" in row) == (extended,) * 3
    assert rows.children["album_artists"] == {
        "4aawyAB9vmqN3uQ7FjRGTy": [
            {"album_id": "4aawyAB9vmqN3uQ7FjRGTy", "position": 0, "artist_id": "0TnOYISbd1XYRBk9myaseg"}
        ]
    }
    tracks = rows.upserts["tracks"]
    assert [t["id"] for t in tracks] == ["6OmhkSOpvYBokMKQxpIGx2", "7rv6vDoB3jg0zz0HM4dLuM"]
    assert {t["album_id"] for t in tracks} == {"4aawyAB9vmqN3uQ7FjRGTy"}
    assert {t["detail"] for t in tracks} == {SIMPLIFIED}
    assert "popularity" not in tracks[0]
    assert [a["artist_id"] for a in rows.children["track_artists"]["6OmhkSOpvYBokMKQxpIGx2"]] == [
        "0TnOYISbd1XYRBk9myaseg",
        "guest0000000000000000a",
    ]
    assert "track_snapshots" not in rows.upserts


def test_discography_page_links_artist_and_keeps_album_group_out_of_raw() -> None:
    item = album(full=False)
    item["album_group"] = "appears_on"
    page = {
        "href": "x",
        "items": [item, None],
        "limit": 10,
        "next": None,
        "offset": 0,
        "previous": None,
        "total": 1,
    }
    rows = Rows()
    transform.add_artist_albums_page(rows, "guest0000000000000000a", page, WHEN)
    assert rows.upserts["artist_albums"] == [
        {
            "artist_id": "guest0000000000000000a",
            "album_id": "4aawyAB9vmqN3uQ7FjRGTy",
            "album_group": "appears_on",
        }
    ]
    (row,) = rows.upserts["albums"]
    assert row["detail"] == SIMPLIFIED
    assert "album_group" not in row["raw"]
    assert "label" not in row


def test_full_track_with_album_external_ids_and_relinking() -> None:
    track = simple_track("6OmhkSOpvYBokMKQxpIGx2", 1)
    track["album"] = album(full=False)
    track["external_ids"] = {"isrc": "USRC11201217"}
    track["popularity"] = 71
    track["linked_from"] = {"id": "0000000000000000000old", "type": "track"}
    track["is_playable"] = True
    rows = Rows()
    transform.add_track(rows, track, FULL, WHEN)
    (row,) = rows.upserts["tracks"]
    assert row["album_id"] == "4aawyAB9vmqN3uQ7FjRGTy"
    assert (row["isrc"], row["popularity"], row["linked_from_id"], row["is_playable"]) == (
        "USRC11201217",
        71,
        "0000000000000000000old",
        True,
    )
    assert rows.upserts["albums"][0]["detail"] == SIMPLIFIED
    assert rows.upserts["track_snapshots"] == [
        {"track_id": "6OmhkSOpvYBokMKQxpIGx2", "snapshot_date": date(2026, 11, 25), "popularity": 71}
    ]


@pytest.mark.parametrize(
    ("query", "names", "chosen", "exact"),
    [
        ("BTS", ["BTS World", "BTS"], 1, True),
        ("bts", ["BTS World", "BTS"], 1, True),
        ("\uff22\uff34\uff33", ["Other", "BTS"], 1, True),  # full-width letters
        ("  Sigur   Rós ", ["Sigur Rós"], 0, True),
        ("Beyonce", ["Beyoncé", "Beyonce Tribute"], 0, False),  # accents count: Spotify's first
        ("Unknown", ["First", "Second"], 0, False),
        ("Nobody", [], None, False),
    ],
)
def test_best_match(query: str, names: list[str], chosen: int | None, exact: bool) -> None:
    candidates = [{"id": f"id{i}", "name": n} for i, n in enumerate(names)]
    found, was_exact = transform.best_match(query, candidates)
    assert (found["id"] if found else None) == (f"id{chosen}" if chosen is not None else None)
    assert was_exact is exact


def test_resolution_records_choice_and_alternatives() -> None:
    rows = Rows()
    items = [artist("aaaaaaaaaaaaaaaaaaaaaa", "BTS Tribute"), artist("3Nrfpe0tUJi4K4DXYWgMUX", "BTS")]
    assert transform.add_resolution(rows, "bts", items, WHEN) == "3Nrfpe0tUJi4K4DXYWgMUX"
    (resolution,) = rows.upserts["artist_resolutions"]
    assert resolution["artist_id"] == "3Nrfpe0tUJi4K4DXYWgMUX"
    assert resolution["exact"] is True
    assert [a["id"] for a in resolution["alternatives"]] == [
        "aaaaaaaaaaaaaaaaaaaaaa",
        "3Nrfpe0tUJi4K4DXYWgMUX",
    ]
    assert resolution["alternatives"][0]["followers"] == 10071463
    assert [a["id"] for a in rows.upserts["artists"]] == ["3Nrfpe0tUJi4K4DXYWgMUX"]
    assert rows.count() == 1 + 1 + 2 + 1  # artist, resolution, two genres, snapshot

    empty = Rows()
    assert transform.add_resolution(empty, "nobody", [], WHEN) is None
    assert empty.upserts["artist_resolutions"][0]["artist_id"] is None


@pytest.mark.parametrize(
    ("artists", "album_type", "groups", "group"),
    [
        (["0TnOYISbd1XYRBk9myaseg"], "compilation", ("album", "compilation"), "compilation"),
        (["0TnOYISbd1XYRBk9myaseg"], "compilation", ("album", "single"), "album"),
        (["0TnOYISbd1XYRBk9myaseg"], "album", ("single", "appears_on"), "single"),
        (["someone0000000000000000"], "album", ("album", "appears_on"), "appears_on"),
        (["someone0000000000000000"], "album", ("album", "single"), "album"),
        (["0TnOYISbd1XYRBk9myaseg"], "album", (), "album"),
    ],
)
def test_a_guessed_album_group_is_one_of_the_groups_asked_for(
    artists: list[str], album_type: str, groups: tuple[str, ...], group: str
) -> None:
    """Development Mode: a discography page of groups G lists albums of G only, so the guess is in G
    (a refresh of that listing then replaces exactly its links)."""
    item = {"id": "x", "album_type": album_type, "artists": [{"id": a} for a in artists]}
    assert transform.album_group("0TnOYISbd1XYRBk9myaseg", item, None, groups) == group
    assert transform.album_group(
        "0TnOYISbd1XYRBk9myaseg", {**item, "album_group": "single"}, None, groups
    ) == ("single")


def test_gone_at_is_cleared_by_an_entity_own_object_or_its_listing_only() -> None:
    listed, full = Rows(), Rows()
    page = {"items": [album(full=False)], "limit": 10, "offset": 0, "total": 1}
    transform.add_artist_albums_page(listed, "0TnOYISbd1XYRBk9myaseg", page, WHEN)
    transform.add_album(full, album(), FULL, WHEN)
    for rows in (listed, full):
        (album_row,) = rows.upserts["albums"]
        assert album_row["gone_at"] is None
        assert all("gone_at" not in row for row in rows.upserts["artists"])  # copies inside the album
    assert all(row["gone_at"] is None for row in full.upserts["tracks"])  # the album's track list
    inside, track = Rows(), simple_track("6OmhkSOpvYBokMKQxpIGx2", 1)
    track["album"] = album(full=False)
    transform.add_track(inside, track, FULL, WHEN)
    assert inside.upserts["tracks"][0]["gone_at"] is None
    assert "gone_at" not in inside.upserts["albums"][0]  # the track's album
    own = Rows()
    transform.add_artist(own, artist(), FULL, WHEN)
    assert own.upserts["artists"][0]["gone_at"] is None


def track_with_album(track_id: str, number: int, **album_changes: Any) -> Rows:
    track = simple_track(track_id, number)
    track["album"] = {**album(full=False), **album_changes}
    rows = Rows()
    transform.add_track(rows, track, FULL, WHEN)
    return rows


def test_a_copy_written_before_in_the_run_is_left_out() -> None:
    copies = WrittenCopies()
    first, fresh = track_with_album("6OmhkSOpvYBokMKQxpIGx2", 1), {}
    kept = copies.without_known(first, fresh)  # nothing known yet: all of it
    assert kept.upserts == first.upserts
    assert kept.children == first.children
    assert ("albums", "4aawyAB9vmqN3uQ7FjRGTy") in fresh
    assert ("artists", "0TnOYISbd1XYRBk9myaseg") in fresh
    assert ("album_artists", "4aawyAB9vmqN3uQ7FjRGTy") in fresh
    assert ("tracks", "6OmhkSOpvYBokMKQxpIGx2") not in fresh  # own objects are always written
    copies.written(fresh)

    second = track_with_album("7rv6vDoB3jg0zz0HM4dLuM", 2)
    kept = copies.without_known(second, fresh2 := {})
    assert len(second.upserts["albums"]) == 1  # the rows given are left as they are
    assert kept.upserts["albums"] == []
    assert kept.children["album_artists"] == {}
    assert kept.upserts["artists"] == []  # both of its artists came with the first track
    assert [r["id"] for r in kept.upserts["tracks"]] == ["7rv6vDoB3jg0zz0HM4dLuM"]
    assert kept.children["track_artists"] == second.children["track_artists"]
    assert list(fresh2) == [("track_artists", "7rv6vDoB3jg0zz0HM4dLuM")]


def test_a_track_s_artists_are_written_once_from_its_album_and_the_track() -> None:
    """The track list of a full album gives each track's artists; the full track gives them again."""
    copies = WrittenCopies()
    from_album, fresh = Rows(), {}
    transform.add_album(from_album, album(), FULL, WHEN)
    copies.without_known(from_album, fresh)
    copies.written(fresh)
    track = track_with_album("6OmhkSOpvYBokMKQxpIGx2", 1)
    kept = copies.without_known(track, {})
    assert [r["id"] for r in kept.upserts["tracks"]] == ["6OmhkSOpvYBokMKQxpIGx2"]  # its full row
    assert kept.children["track_artists"] == {}
    changed = simple_track("6OmhkSOpvYBokMKQxpIGx2", 1)
    changed["artists"] = changed["artists"][:1]
    rows = Rows()
    transform.add_track(rows, changed, FULL, WHEN)
    assert copies.without_known(rows, {}).children["track_artists"] == rows.children["track_artists"]


@pytest.mark.parametrize(
    ("change", "album_row", "album_artists"),
    [
        ({"name": "Global Warming (Deluxe)"}, True, False),
        ({"available_markets": ["US"]}, True, False),
        (
            {"artists": [simple_artist("0TnOYISbd1XYRBk9myaseg", "Pitbull"), simple_artist("x" * 22, "X")]},
            False,
            True,
        ),
    ],
)
def test_a_copy_that_differs_is_written(change: dict[str, Any], album_row: bool, album_artists: bool) -> None:
    copies = WrittenCopies()
    fresh: dict[tuple[str, str], int] = {}
    copies.without_known(track_with_album("6OmhkSOpvYBokMKQxpIGx2", 1), fresh)
    copies.written(fresh)
    changed = copies.without_known(track_with_album("7rv6vDoB3jg0zz0HM4dLuM", 2, **change), {})
    assert [r["id"] for r in changed.upserts["albums"]] == (["4aawyAB9vmqN3uQ7FjRGTy"] if album_row else [])
    assert ("4aawyAB9vmqN3uQ7FjRGTy" in changed.children["album_artists"]) is album_artists


def test_copies_not_committed_are_not_known_and_own_objects_are_never_dropped() -> None:
    copies = WrittenCopies()
    copies.without_known(track_with_album("6OmhkSOpvYBokMKQxpIGx2", 1), {})  # rolled back: not written()
    again = track_with_album("7rv6vDoB3jg0zz0HM4dLuM", 2)
    assert copies.without_known(again, {}).upserts == again.upserts
    fresh: dict[tuple[str, str], int] = {}
    copies.without_known(again, fresh)
    copies.written(fresh)
    own = Rows()  # the album's own object, and a listing of it: kept although a copy is known
    transform.add_album(own, album(), FULL, WHEN)
    page = {"items": [album(full=False)], "limit": 10, "offset": 0, "total": 1}
    transform.add_artist_albums_page(own, "0TnOYISbd1XYRBk9myaseg", page, WHEN)
    assert copies.without_known(own, {}).upserts["albums"] == own.upserts["albums"]


def test_copies_remembered_are_bounded() -> None:
    """Past ``limit`` it starts over: a copy known before is written again, not lost."""
    copies = WrittenCopies(limit=8)

    def write(rows: Rows) -> list[str]:
        fresh: dict[tuple[str, str], int] = {}
        kept = copies.without_known(rows, fresh)
        copies.written(fresh)
        return [r["id"] for r in kept.upserts["albums"]]

    # each: a track's artists; the first: its album, album artists and 2 artists
    assert write(track_with_album("6OmhkSOpvYBokMKQxpIGx2", 1)) == ["4aawyAB9vmqN3uQ7FjRGTy"]  # 5 known
    assert write(track_with_album("7rv6vDoB3jg0zz0HM4dLuM", 2)) == []  # 6
    assert write(track_with_album("7rv6vDoB3jg0zz0HM4dLuM", 2, id="1" * 22)) == ["1" * 22]  # 8
    assert write(track_with_album("6OmhkSOpvYBokMKQxpIGx2", 1)) == []
    assert write(track_with_album("7rv6vDoB3jg0zz0HM4dLuM", 2, id="2" * 22)) == ["2" * 22]  # 10: over
    assert write(track_with_album("6OmhkSOpvYBokMKQxpIGx2", 1)) == ["4aawyAB9vmqN3uQ7FjRGTy"]
