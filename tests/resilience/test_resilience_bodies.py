"""Answers Spotify really gives that are not what a client expects: error bodies that are
plain text or empty (spotify/web-api#1267, zmb3/spotify#301), ``null`` items in pages
(counsel-spotify#15, spotify-web-api-ts-sdk#141), artists and albums without ``genres`` (spotDL#2615).

The client maps each to the right error with a readable message, and a crawl through each fault kind
ends with the same database as a crawl that met none. A page with the emulator's extra ``null`` (one
item more than it holds; in discographies and album tracks, where Spotify sends none) is refused and
asked again (docs/crawl.md, "Pages").
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from resilience_helpers import artist_inputs, crawl, new_engine, orphans, row_counts

from emulated import contents, differences, emulator_settings, web_requests
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import Depth
from spotify_catalog.errors import (
    EXIT_TEMPFAIL,
    PREMIUM_LAPSED,
    ForbiddenError,
    PremiumLapsedError,
    RateLimitedError,
    ServerError,
)
from spotify_catalog.retries import Retryable, RetryPolicy, check_response

PREMIUM = (
    "Active premium subscription required for the owner of the app. When the subscription status "
    "changes, it can take a few hours before requests are allowed again."
)
URL = "https://api.spotify.com/v1/artists/x"


def _check(response: httpx.Response) -> Any:
    return check_response(
        response, url=URL, method="GET", policy=RetryPolicy(), now=lambda: datetime(2026, 11, 25, tzinfo=UTC)
    )


def test_the_premium_required_403_is_a_lapse_and_other_plain_text_403s_are_forbidden():
    """zmb3/spotify#301: the premium-required 403 is plain text; it is the owner's lapsed Premium (come
    back in an hour), not a refusal of the request. Any other plain-text 403 keeps its text."""
    response = httpx.Response(403, text=PREMIUM + "\n", headers={"content-type": "text/plain"})
    with pytest.raises(PremiumLapsedError) as lapse:
        _check(response)
    assert str(lapse.value) == f"{PREMIUM_LAPSED}; retry after 2026-11-25 01:00:00 UTC"
    assert lapse.value.exit_code == EXIT_TEMPFAIL
    other = httpx.Response(403, text="Not allowed here\n", headers={"content-type": "text/plain"})
    with pytest.raises(ForbiddenError) as caught:
        _check(other)
    assert "Not allowed here" in str(caught.value)
    assert caught.value.status == 403


@pytest.mark.parametrize(
    ("body", "content_type", "shown"),
    [(b"", None, "Too Many Requests"), (b"Too many requests", "text/plain", "Too many requests")],
)
def test_a_429_without_json_still_honours_retry_after(body, content_type, shown):
    """spotify/web-api#1267: 429s with an empty body or the plain text `Too many requests`."""
    headers = {"retry-after": "7"} | ({"content-type": content_type} if content_type else {})
    with pytest.raises(Retryable) as caught:
        _check(httpx.Response(429, content=body, headers=headers))
    assert caught.value.kind == "rate_limit"
    assert caught.value.retry_after == 7
    assert isinstance(caught.value.error, RateLimitedError)
    assert shown in str(caught.value.error)


@pytest.mark.parametrize(
    ("body", "content_type", "shown"),
    [
        (b"<html><body>Bad gateway</body></html>", "text/html", "Bad Gateway"),
        (b"\xff\xfe\x00", "application/octet-stream", "Bad Gateway"),
        (b"upstream \x1b[31mfailed\nsecond line", "text/plain", "upstream \\x1b[31mfailed"),
        (b"x" * 5000, "text/plain", "x" * 199 + "…"),
    ],
)
def test_other_bodies_give_a_short_readable_message(body, content_type, shown):
    with pytest.raises(Retryable) as caught:
        _check(httpx.Response(502, content=body, headers={"content-type": content_type}))
    assert isinstance(caught.value.error, ServerError)
    assert caught.value.error.message == shown


@pytest.mark.parametrize("kind", ["plain_text_error", "empty_429"])
def test_the_client_waits_out_non_json_429s_of_the_emulator(make_emulator, kind):
    emu = make_emulator(profile="development", fault_rate=0.5, fault_kinds=(kind,))
    sleeps: list[float] = []
    settings = emulator_settings(emu, mode="development", max_attempts=12)
    with SpotifyClient(settings, sleep=sleeps.append) as client:
        for artist in emu.catalog.artist_ids()[:10]:
            assert client.get(f"/artists/{artist}")["id"] == artist
    refused = emu.stats()["by_status"]["429"]
    assert refused >= 2
    # each 429 closed the gate for its Retry-After (1 s, less what the clock moved meanwhile); the
    # other waits are the pace the 429s taught, spacing the requests over the rate limit's window
    assert len([s for s in sleeps if s > 0.9]) >= refused


@pytest.mark.parametrize("kind", ["plain_text_error", "empty_429", "null_items"])
@pytest.mark.parametrize("mode", ["development", "extended"])
def test_a_crawl_through_each_new_fault_equals_a_clean_one(make_emulator, tmp_path: Path, kind, mode):
    inputs = artist_inputs(40, names=10, max_albums=6)
    clean = make_emulator(profile=mode, artists=2000)
    reference = new_engine(tmp_path / "clean.db")
    assert crawl(clean, reference, inputs, mode=mode, depth=Depth.TRACKS).status == "done"
    assert row_counts(reference).tracks > 0

    emu = make_emulator(profile=mode, artists=2000, fault_rate=0.3, fault_kinds=(kind,))
    engine = new_engine(tmp_path / "faulty.db")
    result = crawl(
        emu,
        engine,
        inputs,
        mode=mode,
        depth=Depth.TRACKS,
        emulator_time=True,
        settings={"max_attempts": 12},
        max_attempts=12,
    )
    assert result.status == "done", result
    by_status = emu.stats()["by_status"]
    if kind == "null_items":
        assert set(by_status) == {"200"}
        assert web_requests(emu) > web_requests(clean)  # the pages with a null were asked again
    else:
        assert by_status["429"] > 3
    diff = differences(contents(engine, emu.url), contents(reference, clean.url))
    assert not diff, "\n".join(diff)
    assert not orphans(engine)
    engine.dispose()
    reference.dispose()


def test_development_artists_without_genres_store_none(make_emulator, tmp_path: Path):
    """spotDL#2615: Development Mode artists have no `genres` key; nothing is stored, nothing breaks."""
    emu = make_emulator(profile="development", artists=2000)
    engine = new_engine(tmp_path / "dev.db")
    assert (
        crawl(emu, engine, artist_inputs(10, names=3), mode="development", depth=Depth.ALBUMS).status
        == "done"
    )
    tables = contents(engine)
    assert tables["artists"]
    assert tables["artist_genres"] == []
    engine.dispose()
