"""Paging through any artist's albums and any album's tracks gives exactly the catalog's truth."""

from __future__ import annotations

import pytest
from emulator_helpers import client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

GROUPS = ("album", "single", "compilation", "appears_on")


@pytest.fixture(scope="module")
def emu():
    from spotify_catalog.emulator import EmulatorConfig, serve_in_thread

    with serve_in_thread(EmulatorConfig(artists=120)) as running:
        yield running


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    index=st.integers(0, 119),
    limit=st.integers(1, 10),
    groups=st.lists(st.sampled_from(GROUPS), min_size=1, max_size=4, unique=True),
)
def test_artist_album_pages_concatenate_to_the_truth(emu, index, limit, groups):
    cat = emu.catalog
    artist_id = cat.artist_ids()[index]
    seen: list[str] = []
    with client(emu) as c:
        url: str | None = f"/v1/artists/{artist_id}/albums?include_groups={','.join(groups)}&limit={limit}"
        while url:
            page = c.get(url).json()
            assert len(page["items"]) <= limit
            seen += [a["id"] for a in page["items"]]
            url = page["next"]
    assert seen == cat.artist_album_ids(artist_id, groups)
    assert page["total"] == len(seen)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, 119), limit=st.integers(1, 50), data=st.data())
def test_album_track_pages_concatenate_to_the_truth(emu, index, limit, data):
    cat = emu.catalog
    album = data.draw(st.sampled_from(cat.discography(index)))
    seen: list[str] = []
    with client(emu) as c:
        url: str | None = f"/v1/albums/{album.id}/tracks?limit={limit}"
        while url:
            page = c.get(url).json()
            seen += [t["id"] for t in page["items"]]
            url = page["next"]
    assert seen == cat.album_track_ids(album.id)
    assert len(seen) == album.total_tracks
