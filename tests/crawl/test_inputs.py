"""Artist inputs, durations and depths: what the crawl command accepts and refuses."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from spotify_catalog.crawl import Depth
from spotify_catalog.errors import UsageError
from spotify_catalog.inputs import (
    ArtistInput,
    parse_artist,
    parse_artists_text,
    parse_duration,
    read_artists_file,
)

BTS = "3Nrfpe0tUJi4K4DXYWgMUX"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BTS, ArtistInput(BTS, True)),
        (f"spotify:artist:{BTS}", ArtistInput(BTS, True)),
        (f"https://open.spotify.com/artist/{BTS}?si=abc", ArtistInput(BTS, True)),
        (f"https://open.spotify.com/intl-de/artist/{BTS}", ArtistInput(BTS, True)),
        ("  Sigur  Rós ", ArtistInput("Sigur Rós", False)),
        ("Earth, Wind & Fire", ArtistInput("Earth, Wind & Fire", False)),
    ],
)
def test_parse_artist(text: str, expected: ArtistInput) -> None:
    assert parse_artist(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"spotify:album:{BTS}", "is an album, not an artist"),
        ("https://open.spotify.com/artist/tooshort", "not a Spotify artist id"),
        ("spotify:artist:", "not a Spotify artist id"),
        ("x" * 201, "longer than 200"),
        ("   ", "empty artist"),
        ("tab\there", "control characters"),
    ],
)
def test_parse_artist_refuses(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_artist(text)


def test_plain_list_skips_blanks_and_comments() -> None:
    text = f"# favourites\nBTS\n\n   # indented comment\nspotify:artist:{BTS}\nEarth, Wind & Fire\n"
    assert parse_artists_text(text) == [
        ArtistInput("BTS", False),
        ArtistInput(BTS, True),
        ArtistInput("Earth, Wind & Fire", False),
    ]


def test_every_bad_line_is_named() -> None:
    text = f"BTS\nspotify:track:{BTS}\n\nhttps://open.spotify.com/artist/x\nfine\n"
    with pytest.raises(UsageError) as info:
        parse_artists_text(text, source="a.txt")
    message = str(info.value)
    assert message.startswith("a.txt: 2 bad line(s): line 2:")
    assert "line 4:" in message
    assert "line 1" not in message
    assert "\n" not in message


def test_csv_with_header_uses_the_id_column_first() -> None:
    text = f'name,spotify_id,country\nBTS,{BTS},KR\n"Earth, Wind & Fire",,US\n'
    assert parse_artists_text(text) == [ArtistInput(BTS, True), ArtistInput("Earth, Wind & Fire", False)]


def test_one_column_csv_keeps_commas_in_names() -> None:
    text = 'Artist\nEarth, Wind & Fire\n"Crosby, Stills & Nash"\n'
    assert parse_artists_text(text) == [
        ArtistInput("Earth, Wind & Fire", False),
        ArtistInput("Crosby, Stills & Nash", False),
    ]


def test_csv_bad_rows_are_numbered_as_file_lines() -> None:
    text = "# exported\nartist,note\nBTS,ok\n,empty\n"
    with pytest.raises(UsageError, match="line 4: empty artist"):
        parse_artists_text(text)


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing\n", "artist,uri\n"])
def test_no_artists_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match="no artists"):
        parse_artists_text(text)


def test_read_artists_file_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes("\ufeffartist\r\nBTS\r\n".encode())
    assert read_artists_file(path) == [ArtistInput("BTS", False)]  # a one-column CSV
    path.write_bytes(b"\xff\xfe bad")
    with pytest.raises(UsageError, match="cannot read"):
        read_artists_file(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("7d", timedelta(days=7)), ("12h", timedelta(hours=12)), ("30m", timedelta(minutes=30)),
     ("90s", timedelta(seconds=90)), ("2w", timedelta(days=14)), ("0", timedelta(0)),
     ("3600", timedelta(hours=1))],
)  # fmt: skip
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["soon", "7x", "-1d", "", "nan", "inf"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


def test_depth_labels() -> None:
    assert [d.label for d in Depth] == ["artists", "albums", "tracks", "track-details"]
    assert Depth.parse("track-details") is Depth.TRACK_DETAILS
    with pytest.raises(UsageError, match="choose from artists, albums, tracks, track-details"):
        Depth.parse("all")
