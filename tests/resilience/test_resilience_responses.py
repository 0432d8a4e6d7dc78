"""Responses that are not what they claim: truncated JSON, an HTML page with 200, the wrong content
type, objects without their id, objects with fields nobody knows. Each is retried or reported, never
stored as data, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from resilience_helpers import artist_inputs, crawl, new_engine

from emulated import CLIENT_ID, CLIENT_SECRET, contents, differences, emulator_settings, web_requests
from spotify_catalog import endpoints
from spotify_catalog.cli import main
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import Depth, response_problem
from spotify_catalog.emulator.faults import EXTRA_FIELD
from spotify_catalog.errors import InvalidResponseError
from spotify_catalog.storage import schema

BTS = "3Nrfpe0tUJi4K4DXYWgMUX"
INPUTS = artist_inputs(12, names=4)


def _token(emu: Any) -> str:
    answer = httpx.post(
        emu.url + "/api/token",
        data={"grant_type": "client_credentials"},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    return str(answer.json()["access_token"])


@pytest.mark.parametrize("kind", ["truncated", "html", "content_type", "missing_field", "extra_field"])
def test_the_emulator_inflicts_each_kind(make_emulator: Any, kind: str) -> None:
    emu = make_emulator(fault_rate=1.0, fault_kinds=(kind,))
    answer = httpx.get(emu.url + f"/v1/artists/{BTS}", headers={"Authorization": f"Bearer {_token(emu)}"})
    assert answer.status_code == 200
    if kind == "truncated":
        with pytest.raises(ValueError, match=r"Expecting|Unterminated|delimiter"):
            answer.json()
    elif kind == "html":
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.text.lstrip().startswith("<!DOCTYPE html>")
    elif kind == "content_type":
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.json()["id"] == BTS
    elif kind == "missing_field":
        body = answer.json()
        assert "id" not in body
        assert body["name"] == "BTS"
    else:
        body = answer.json()
        assert body["id"] == BTS
        assert EXTRA_FIELD in body


@pytest.mark.parametrize("kind", ["truncated", "html", "content_type"])
def test_the_client_retries_then_reports_bodies_that_are_not_json(make_emulator: Any, kind: str) -> None:
    emu = make_emulator(fault_rate=1.0, fault_kinds=(kind,))
    slept: list[float] = []
    with SpotifyClient(emulator_settings(emu), sleep=slept.append) as client:
        with pytest.raises(InvalidResponseError, match="invalid response"):
            client.get(f"/artists/{BTS}")
        assert client.requests_made == 3  # retried, then given up
    assert len(slept) == 2
    emu.configure(fault_rate=0.0)
    with SpotifyClient(emulator_settings(emu), sleep=slept.append) as client:
        assert client.get(f"/artists/{BTS}")["id"] == BTS


def _page(*items: Any, total: int | None = None, **fields: Any) -> dict[str, Any]:
    """A whole paging object of ``items`` at offset 0."""
    page = {"href": "h", "items": list(items), "limit": 50, "next": None, "offset": 0, "previous": None}
    return {**page, "total": len(items) if total is None else total, **fields}


@pytest.mark.parametrize(
    ("kind", "result", "problem"),
    [
        (
            "album",
            [{"type": "album", "name": "x", "tracks": _page()}],
            "album without an id",
        ),
        (
            "album",
            [{"type": "album", "id": "a", "tracks": _page({"type": "track"})}],
            "track without an id",
        ),
        ("album", [{"type": "album", "id": "a", "tracks": {"items": []}}], "page without items or total"),
        ("artist", [None, "x"], "expected a list of objects"),
        ("artist", {"artists": []}, "expected a list of objects"),
        ("search", {"tracks": _page()}, "no artists page"),
        (
            "artist_albums",
            _page({"type": "album", "artists": [{"type": "artist", "name": "n"}]}),
            "album without an id",
        ),
        # null where Spotify sends none: in search results for artists, discographies, album tracks
        ("search", {"artists": _page(None)}, "a null item in a page"),
        ("artist_albums", _page(None, {"type": "album", "id": "a"}), "a null item in a page"),
        ("album_tracks", _page({"type": "track", "id": "t"}, None), "a null item in a page"),
        ("album", [{"type": "album", "id": "a", "tracks": _page(None)}], "a null item in a page"),
        # a page that does not add up: more items than its limit, items past its total
        (
            "album_tracks",
            _page(*[{"type": "track", "id": "t"}] * 3, limit=2),
            "page of 3 items, more than its limit 2",
        ),
        (
            "album_tracks",
            _page({"type": "track", "id": "t"}, offset=4, total=4),
            "page with items past its total (4 + 1 > 4)",
        ),
        ("album_tracks", {"items": [], "total": 0}, "page without its offset or limit"),
        ("artist_albums", {"href": "h", "total": 3}, "page without items or total"),
        ("search", {"artists": {"total": 3}}, "page without items or total"),
        ("album_tracks", [], "expected a JSON object"),
        ("album", [None, {"type": "album", "id": "a", "x_new": {"type": "artist"}}], "artist without an id"),
    ],
)
def test_incomplete_responses_are_recognised(kind: str, result: Any, problem: str) -> None:
    assert response_problem(kind, result) == problem


def test_extra_fields_and_unknown_ids_are_acceptable() -> None:
    album = {
        "type": "album",
        "id": "a",
        "brand_new_field": {"nested": [1, 2]},
        "artists": [{"type": "artist", "id": "b", "name": "B", "also_new": True}],
        "tracks": _page({"type": "track", "id": "t", "artists": []}),
    }
    assert response_problem("album", [album, None]) is None
    assert response_problem("search", {"artists": _page(total=0)}) is None


@pytest.mark.parametrize("mode", ["development", "extended"])
@pytest.mark.parametrize("kind", ["truncated", "html", "content_type", "missing_field", "null_items"])
def test_a_crawl_never_stores_a_bad_response(
    make_emulator: Any, tmp_path: Path, mode: str, kind: str
) -> None:
    """A third of the responses are bad: the crawl retries them and ends with exactly the tables of
    a clean crawl; at a fault rate of 1 it stores nothing and says why, in one line."""
    clean = make_emulator(profile=mode, artists=2000)
    reference = new_engine(tmp_path / "clean.db")
    crawl(clean, reference, INPUTS, mode=mode, workers=2)
    want = contents(reference, clean.url)
    assert all(want[t] for t in ("artists", "albums", "tracks", "album_artists", "artist_albums"))

    emu = make_emulator(profile=mode, artists=2000, fault_rate=0.3, fault_kinds=(kind,))
    engine = new_engine(tmp_path / "faulty.db")
    result = crawl(emu, engine, INPUTS, mode=mode, workers=2, emulator_time=True, max_attempts=10)
    assert result.status == "done"
    assert emu.stats()["by_status"]["200"] > web_requests(clean)  # bad answers were retried
    diff = differences(contents(engine, emu.url), want)
    assert not diff, "\n".join(diff)


def test_missing_ids_at_every_response_store_nothing(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator(profile="extended", artists=2000, fault_rate=1.0, fault_kinds=("missing_field",))
    db_path = tmp_path / "bad.db"
    args = [
        "--api-url",
        emu.url + "/v1",
        "--token-url",
        emu.url + "/api/token",
        "crawl",
        "--db",
        f"sqlite:///{db_path}",
        "--mode",
        "extended",
        "--quiet",
        "--artist",
        INPUTS[-1].value,
    ]
    env = {"SPOTIFY_CLIENT_ID": CLIENT_ID, "SPOTIFY_CLIENT_SECRET": CLIENT_SECRET}
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "kept failing" in result.output
    engine = new_engine(db_path)
    with engine.connect() as conn:
        for table in schema.CATALOG_TABLES:
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0, table.name
        errors = conn.execute(sa.select(schema.tasks.c.error)).scalars().all()
    assert errors
    assert all("artist without an id" in (e or "") for e in errors)
    engine.dispose()


def test_extra_fields_are_accepted_and_kept_only_in_raw(make_emulator: Any, tmp_path: Path) -> None:
    clean = make_emulator(profile="extended", artists=2000)
    reference = new_engine(tmp_path / "clean.db")
    crawl(clean, reference, INPUTS, depth=Depth.TRACK_DETAILS)
    emu = make_emulator(profile="extended", artists=2000, fault_rate=1.0, fault_kinds=("extra_field",))
    engine = new_engine(tmp_path / "extra.db")
    result = crawl(emu, engine, INPUTS, depth=Depth.TRACK_DETAILS)
    assert result.status == "done"
    assert result.requests == web_requests(clean)  # nothing refused, nothing retried
    diff = differences(
        contents(engine, emu.url, exclude=("raw",)), contents(reference, clean.url, exclude=("raw",))
    )
    assert not diff, "\n".join(diff)
    with engine.connect() as conn:
        raws = (
            conn.execute(sa.select(schema.albums.c.raw).where(schema.albums.c.detail == "full"))
            .scalars()
            .all()
        )
    assert raws
    assert all(EXTRA_FIELD in raw for raw in raws)


def test_endpoint_functions_refuse_a_batch_of_the_wrong_length(make_emulator: Any) -> None:
    """A batch answer that does not match the ids asked for is never lined up with the wrong ids."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/api/token"):
            return httpx.Response(
                200, json={"access_token": "tok-123456", "token_type": "Bearer", "expires_in": 3600}
            )
        return httpx.Response(200, json={"albums": [None]})

    settings = emulator_settings(make_emulator(), mode="extended")
    with SpotifyClient(settings, transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(InvalidResponseError, match="wrong list"):
            endpoints.get_albums(client, ["4aawyAB9vmqN3uQ7FjRGTy", "4aawyAB9vmqN3uQ7FjRGTz"])
