"""The client against the emulator: tokens, retries, 429s, quota, faults, timeouts, API modes, paging."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from typing import Any as FakeTime

import pytest

from emulated import emulator_settings, web_requests
from spotify_catalog import endpoints as ep
from spotify_catalog.client import SpotifyClient
from spotify_catalog.errors import (
    AuthenticationError,
    ForbiddenError,
    QuotaExceededError,
    RateLimitedError,
    ServerError,
    Stopped,
    TransportError,
    UnreachableError,
    WaitTooLongError,
)
from spotify_catalog.redaction import scrub
from spotify_catalog.settings import ApiMode

BTS = "3Nrfpe0tUJi4K4DXYWgMUX"
Connect = Callable[..., SpotifyClient]


def _token_requests(emu: Any) -> int:
    return int(emu.stats()["by_route"].get("POST /api/token", 0))


# ----------------------------------------------------------------------------- tokens


def test_one_token_serves_many_calls(emulator: Any, connect: Connect) -> None:
    client = connect(emulator)
    for _ in range(12):
        assert ep.get_artist(client, BTS)["name"] == "BTS"
    assert _token_requests(emulator) == 1
    assert client.tokens_fetched == 1
    assert client.requests_made == 12 == web_requests(emulator)
    token = client.tokens.token()
    assert token not in repr(client)
    assert token not in repr(client.tokens)
    assert scrub(f"Bearer {token}") == "Bearer **********"  # registered for the log filter


def test_threads_share_one_token_fetch(emulator: Any, connect: Connect) -> None:
    client = connect(emulator)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        try:
            for _ in range(5):
                client.get(f"/artists/{BTS}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _token_requests(emulator) == 1
    assert client.requests_made == 40 == web_requests(emulator)


def test_token_renewed_shortly_before_expiry(
    make_emulator: Any, connect: Connect, fake_time: FakeTime
) -> None:
    emu = make_emulator(token_ttl=600)
    client = connect(emu)
    client.get(f"/artists/{BTS}")
    fake_time.now += 500  # still valid, more than the 60 s margin left
    client.get(f"/artists/{BTS}")
    assert _token_requests(emu) == 1
    fake_time.now += 50  # 550 s: inside the margin, renewed before the API could refuse it
    client.get(f"/artists/{BTS}")
    assert _token_requests(emu) == 2
    assert emu.stats()["by_status"].get("401", 0) == 0


def test_token_renewed_once_on_401_and_request_replayed(emulator: Any, connect: Connect) -> None:
    client = connect(emulator)
    client.get(f"/artists/{BTS}")
    emulator.advance(3700)  # the emulator expires the token; the client's clock did not move
    assert ep.get_artist(client, BTS)["id"] == BTS
    assert emulator.stats()["by_status"]["401"] == 1
    assert _token_requests(emulator) == 2
    assert client.requests_made == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"client_secret": "wrong-secret"}, "Invalid client secret"),
        ({"client_id": "nobody"}, "Invalid client"),
    ],
)
def test_bad_credentials(emulator: Any, connect: Connect, change: dict[str, str], message: str) -> None:
    client = connect(emulator, **change)
    with pytest.raises(AuthenticationError, match=message) as info:
        client.get(f"/artists/{BTS}")
    assert info.value.error == "invalid_client"
    assert "wrong-secret" not in str(info.value)
    assert _token_requests(emulator) == 1  # refused credentials are not retried
    assert client.requests_made == 0


# ----------------------------------------------------------------------------- 429 and quota


def test_429_waits_retry_after_and_retries(make_emulator: Any, connect: Connect, fake_time: FakeTime) -> None:
    emu = make_emulator(rate_limit=3)
    client = connect(emu)
    for _ in range(3):
        client.get(f"/artists/{BTS}")
    assert client.get(f"/artists/{BTS}")["id"] == BTS
    # the emulator's Retry-After (until a slot of the window frees), then the gate's margin
    assert 1 <= fake_time.sleeps[0] <= 30
    assert sum(fake_time.sleeps) <= 31
    assert emu.stats()["by_status"]["429"] == 1


@pytest.mark.parametrize("mode", ["zero", "omit"])
def test_429_without_usable_retry_after_backs_off(
    make_emulator: Any, connect: Connect, fake_time: FakeTime, mode: str
) -> None:
    emu = make_emulator(rate_limit=2, retry_after=mode)
    client = connect(emu)
    client.get(f"/artists/{BTS}")
    client.get(f"/artists/{BTS}")
    assert client.get(f"/artists/{BTS}")["id"] == BTS  # within the default six attempts
    assert len(fake_time.sleeps) >= 2
    assert min(fake_time.sleeps) >= 1.0  # never a busy loop on Retry-After: 0
    assert sum(fake_time.sleeps) >= 30  # until the 30 s window let a request through
    assert emu.stats()["by_status"]["429"] == 1  # the pace the 429 taught waits for the window to free


def test_retry_after_longer_than_max_wait_is_not_slept(
    make_emulator: Any, connect: Connect, fake_time: FakeTime
) -> None:
    emu = make_emulator(rate_limit=1)
    client = connect(emu, max_wait=10)
    client.get(f"/artists/{BTS}")
    before = datetime.now(UTC)
    with pytest.raises(WaitTooLongError) as info:
        client.get(f"/artists/{BTS}")
    assert fake_time.sleeps == []
    assert before + timedelta(seconds=10) < info.value.retry_at <= before + timedelta(seconds=32)
    assert "retry after" in str(info.value)


def test_quota_exceeded_raises_with_retry_time(
    make_emulator: Any, connect: Connect, fake_time: FakeTime
) -> None:
    emu = make_emulator(quota=2)
    client = connect(emu)
    client.get(f"/artists/{BTS}")
    client.get(f"/artists/{BTS}")
    before = datetime.now(UTC)
    with pytest.raises(QuotaExceededError) as info:
        client.get(f"/artists/{BTS}")
    assert fake_time.sleeps == []
    assert client.requests_made == 3
    assert before + timedelta(hours=23) < info.value.retry_at <= before + timedelta(hours=24, minutes=1)
    assert info.value.exit_code == 75


def test_rate_limit_retries_are_capped_in_total_time(
    make_emulator: Any, connect: Connect, fake_time: FakeTime
) -> None:
    emu = make_emulator(rate_limit=1)
    client = connect(emu, max_total_wait=5)
    client.get(f"/artists/{BTS}")
    with pytest.raises(RateLimitedError, match="429"):
        client.get(f"/artists/{BTS}")  # Retry-After 30 fits max_wait (60) but not the total of 5 s
    assert fake_time.sleeps == []


def test_pacer_keeps_a_crawl_under_the_rate_limit(
    make_emulator: Any, connect: Connect, fake_time: FakeTime
) -> None:
    emu = make_emulator(rate_limit=10)
    client = connect(emu, rate=10 / 30)
    for _ in range(25):
        client.get(f"/artists/{BTS}")
    assert emu.stats()["by_status"].get("429", 0) == 0
    assert sum(fake_time.sleeps) == pytest.approx(24 * 3.0)


# ----------------------------------------------------------------------------- faults and timeouts


@pytest.mark.parametrize("kind", ["500", "502", "503", "drop", "truncated", "html", "content_type"])
def test_faults_are_retried_until_they_pass(
    emulator: Any, connect: Connect, fake_time: FakeTime, kind: str
) -> None:
    client = connect(emulator)
    emulator.configure(fault_rate=1.0, fault_kinds=[kind])
    fake_time.on_sleep.append(lambda _: emulator.configure(fault_rate=0.0))
    artist = ep.get_artist(client, BTS)
    assert artist["name"] == "BTS"
    assert len(fake_time.sleeps) == 1
    assert client.requests_made == 2


def test_server_errors_give_up_after_max_attempts(
    emulator: Any, connect: Connect, fake_time: FakeTime
) -> None:
    client = connect(emulator, max_attempts=4)
    emulator.configure(fault_rate=1.0, fault_kinds=["503"])
    with pytest.raises(ServerError, match="503"):
        client.get(f"/artists/{BTS}")
    assert client.requests_made == 4
    assert len(fake_time.sleeps) == 3
    assert fake_time.sleeps[2] > fake_time.sleeps[0]  # exponential


def test_dropped_connections_that_last_are_an_outage(
    emulator: Any, connect: Connect, fake_time: FakeTime
) -> None:
    client = connect(emulator, max_attempts=3)
    client.tokens.token()
    emulator.configure(fault_rate=1.0, fault_kinds=["drop"])
    started = fake_time.now
    with pytest.raises(UnreachableError, match="connection closed without an answer") as info:
        client.get(f"/artists/{BTS}")
    assert isinstance(info.value, TransportError)
    # nothing else answered meanwhile: not given up after 3 attempts, but after outage_after (20 s)
    assert info.value.attempts > 3
    assert 20 <= fake_time.now - started <= 21
    assert client.requests_made == info.value.attempts == web_requests(emulator)  # drops reached it


def test_timeouts_are_retried(make_emulator: Any, connect: Connect, fake_time: FakeTime) -> None:
    emu = make_emulator()
    client = connect(emu, timeout=0.15)
    client.tokens.token()  # the emulator delays its token endpoint too
    emu.configure(latency_ms=400)
    fake_time.on_sleep.append(lambda _: emu.configure(latency_ms=0))
    assert client.get(f"/artists/{BTS}")["id"] == BTS
    assert len(fake_time.sleeps) == 1
    assert client.requests_made == 2


def test_timeouts_that_last_give_up(make_emulator: Any, connect: Connect) -> None:
    emu = make_emulator()
    client = connect(emu, timeout=0.1, max_attempts=2, outage_after=1)
    client.tokens.token()
    emu.configure(latency_ms=400)
    with pytest.raises(UnreachableError, match=r"no answer in time \(timeout\)"):
        client.get(f"/artists/{BTS}")


def test_request_budget_stops_before_sending(emulator: Any, connect: Connect) -> None:
    client = connect(emulator, request_budget=2)
    client.get(f"/artists/{BTS}")
    client.get(f"/artists/{BTS}")
    with pytest.raises(Stopped, match="budget"):
        client.get(f"/artists/{BTS}")
    assert web_requests(emulator) == 2


# ----------------------------------------------------------------------------- API modes


def _artist_ids(emu: Any, count: int) -> list[str]:
    return list(emu.catalog.artist_ids()[:count])


def test_auto_mode_detects_development_from_a_batch_403(emulator: Any, connect: Connect) -> None:
    client = connect(emulator)
    ids = _artist_ids(emulator, 4)
    artists = ep.get_artists(client, ids)
    assert [a["id"] if a else None for a in artists] == ids
    assert client.mode is ApiMode.DEVELOPMENT
    assert client.requests_made == 1 + 4  # one batch attempt, then single calls
    assert emulator.stats()["by_status"]["403"] == 1
    ep.get_tracks(client, [])
    ep.get_artists(client, ids[:2])
    assert client.requests_made == 5 + 2  # no more batch attempts


def test_auto_mode_detects_development_from_invalid_limit(emulator: Any, connect: Connect) -> None:
    client = connect(emulator)
    page = ep.search(client, "a", "artist", limit=50)
    assert client.mode is ApiMode.DEVELOPMENT
    assert page["artists"]["limit"] == 10
    assert client.requests_made == 2
    ep.search(client, "a", "artist", limit=50)
    assert client.requests_made == 3  # clamped up front now


def test_extended_mode_batches_in_chunks(make_emulator: Any, connect: Connect) -> None:
    emu = make_emulator(profile="extended")
    client = connect(emu)
    ids = _artist_ids(emu, 60)
    artists = ep.get_artists(client, [*ids, "0000000000000000000000"])
    assert [a["id"] for a in artists[:-1] if a] == ids
    assert artists[-1] is None
    assert client.mode is ApiMode.EXTENDED
    assert client.requests_made == 2  # 50 + 11
    assert ep.search(client, "a", "artist", limit=50)["artists"]["limit"] == 50


def test_extended_album_batches_hold_twenty(make_emulator: Any, connect: Connect) -> None:
    emu = make_emulator(profile="extended")
    client = connect(emu, mode="extended")
    album_ids = list(emu.catalog.artist_album_ids(BTS))[:25]
    albums = ep.get_albums(client, album_ids, market="US")
    assert [a["id"] for a in albums if a] == album_ids
    assert client.requests_made == 2


def test_given_development_mode_never_tries_batches(emulator: Any, connect: Connect) -> None:
    client = connect(emulator, mode="development")
    ep.get_artists(client, _artist_ids(emulator, 3))
    assert client.requests_made == 3
    assert emulator.stats()["by_status"].get("403", 0) == 0


def test_given_extended_mode_on_a_development_app_raises(emulator: Any, connect: Connect) -> None:
    client = connect(emulator, mode="extended")
    with pytest.raises(ForbiddenError, match="403"):
        ep.get_artists(client, _artist_ids(emulator, 2))
    with pytest.raises(ForbiddenError, match="Forbidden"):
        ep.get_markets(client)


# ----------------------------------------------------------------------------- paging


@pytest.mark.parametrize(("profile", "page"), [("development", 10), ("extended", 50)])
def test_search_pages_to_the_offset_cap(
    make_emulator: Any, connect: Connect, profile: str, page: int
) -> None:
    emu = make_emulator(profile=profile, artists=2000)
    client = connect(emu, mode=profile)
    total = ep.search(client, "a", "track", limit=1)["tracks"]["total"]
    assert total > 1000
    items = [item for kind, item in ep.iter_search(client, "a", "track")]
    assert len(items) == 1000
    assert len({item["id"] for item in items}) == 1000
    assert client.requests_made == 1 + 1000 // page
    assert emu.stats()["by_status"].get("400", 0) == 0


def test_iter_pages_cuts_the_last_page_at_the_cap(make_emulator: Any, connect: Connect) -> None:
    emulator = make_emulator(artists=2000)
    client = connect(emulator, mode="development")
    first = ep.search(client, "a", "track", offset=970, limit=10)["tracks"]
    items = list(ep.iter_pages(client, first, cap=1000))
    assert len(items) == 30  # 970..999, following the emulator's next links
    assert len({item["id"] for item in items}) == 30
    assert emulator.stats()["by_status"].get("400", 0) == 0


def test_search_several_types_share_requests(emulator: Any, connect: Connect) -> None:
    client = connect(emulator, mode="development")
    first = ep.search(client, "love", ["artist", "track", "episode"], market="US", limit=10)
    totals = {kind: min(first[f"{kind}s"]["total"], 1000) for kind in ("artist", "track", "episode")}
    client_requests = client.requests_made
    seen: dict[str, list[str]] = {"artist": [], "track": [], "episode": []}
    for kind, item in ep.iter_search(client, "love", "artist,track,episode", market="US"):
        seen[kind].append(item["id"])
    for kind, ids in seen.items():
        assert len(ids) == totals[kind] == len(set(ids))
    assert client.requests_made - client_requests == -(-max(totals.values()) // 10)


def test_artist_albums_every_album_once(emulator: Any, connect: Connect) -> None:
    client = connect(emulator)
    albums = list(ep.iter_artist_albums(client, BTS))
    expected = list(emulator.catalog.artist_album_ids(BTS))
    assert [album["id"] for album in albums] == expected
    assert client.mode is ApiMode.DEVELOPMENT  # found out from the limit of 50


def test_album_tracks_and_other_catalog_endpoints(make_emulator: Any, connect: Connect) -> None:
    emu = make_emulator(profile="extended")
    client = connect(emu, mode="extended")
    album_id = next(iter(emu.catalog.artist_album_ids(BTS)))
    tracks = list(ep.iter_album_tracks(client, album_id))
    assert [t["id"] for t in tracks] == list(emu.catalog.album_track_ids(album_id))
    assert ep.get_track(client, tracks[0]["id"])["id"] == tracks[0]["id"]
    assert ep.get_artist_top_tracks(client, BTS, market="US")["tracks"]
    show = emu.catalog.shows[0]
    market = show.markets[0]
    episodes = list(ep.iter_show_episodes(client, show.id, market=market))
    assert (
        len(episodes) == show.total_episodes == ep.get_show(client, show.id, market=market)["total_episodes"]
    )
    assert ep.get_episode(client, episodes[0]["id"], market=market)["id"] == episodes[0]["id"]
    three = [e["id"] for e in episodes[:3]]
    assert [e["id"] for e in ep.get_episodes(client, three, market=market) if e] == three
    assert [s["id"] for s in ep.get_shows(client, [show.id], market=market) if s] == [show.id]
    book = emu.catalog.audiobooks[0]
    market = book.markets[0]
    chapters = list(ep.iter_audiobook_chapters(client, book.id, market=market))
    assert (
        len(chapters)
        == book.total_chapters
        == ep.get_audiobook(client, book.id, market=market)["total_chapters"]
    )
    assert ep.get_chapter(client, chapters[0]["id"], market=market)["id"] == chapters[0]["id"]
    two = [c["id"] for c in chapters[:2]]
    assert [c["id"] for c in ep.get_chapters(client, two, market=market) if c] == two
    assert [b["id"] for b in ep.get_audiobooks(client, [book.id], market=market) if b] == [book.id]
    playlist = emu.catalog.playlists[0]
    assert ep.get_playlist(client, playlist.id)["id"] == playlist.id
    assert len(ep.get_playlist_items(client, playlist.id, limit=5)["items"]) == min(5, playlist.total_items)
    assert len(list(ep.iter_playlist_items(client, playlist.id))) == playlist.total_items
    releases = list(ep.iter_new_releases(client))
    assert releases
    assert len({album["id"] for album in releases}) == len(releases)
    assert "US" in ep.get_markets(client)
    assert client.requests_made == web_requests(emu)
    assert emu.stats()["by_status"]["200"] == client.requests_made + 1  # + the token: nothing refused


# ----------------------------------------------------------------------------- cancel


def test_cancel_ends_retries_at_once_and_refuses_new_requests(make_emulator: Any) -> None:
    """A crawl that fails cancels its client: a worker in the middle of its backoff stops at once
    instead of retrying for minutes, and nothing more is sent."""
    emu = make_emulator(fault_rate=1.0, fault_kinds=("503",))
    client = SpotifyClient(emulator_settings(emu, max_attempts=6, max_total_wait=600))  # real sleep
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            client.get(f"/artists/{BTS}")
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    deadline = time.monotonic() + 10
    while web_requests(emu) < 1 and time.monotonic() < deadline:  # the first attempt got its 503
        time.sleep(0.005)
    client.cancel()
    worker.join(timeout=5)
    assert not worker.is_alive(), "the retry loop went on after cancel()"
    assert len(outcome) == 1
    assert isinstance(outcome[0], Stopped), outcome
    assert web_requests(emu) == 1
    with pytest.raises(Stopped):
        client.get(f"/artists/{BTS}")
    assert web_requests(emu) == 1
    client.close()
