"""Pure parts: id parsing, chunking, limits, Retry-After parsing, the retry loop and the pacer."""

from __future__ import annotations

import logging
import threading
from typing import Any as FakeTime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spotify_catalog.endpoints import capped_limit, chunked, parse_id, search_types
from spotify_catalog.errors import ServerError, TransportError, UsageError
from spotify_catalog.pacing import Pacer
from spotify_catalog.retries import Retryable, RetryPolicy, call_with_retries, parse_retry_after

ID = "3Nrfpe0tUJi4K4DXYWgMUX"


@pytest.mark.parametrize(
    "text",
    [
        ID,
        f" {ID} ",
        f"spotify:artist:{ID}",
        f"https://open.spotify.com/artist/{ID}",
        f"https://open.spotify.com/artist/{ID}?si=abc123",
        f"https://open.spotify.com/intl-de/artist/{ID}/",
    ],
)
def test_parse_id_accepts_ids_uris_and_urls(text: str) -> None:
    assert parse_id(text, "artist") == ID


@pytest.mark.parametrize("text", ["", "abc", f"{ID}x", "spotify:artist:", f"https://example.com/artist/{ID}"])
def test_parse_id_rejects_garbage(text: str) -> None:
    with pytest.raises(UsageError):
        parse_id(text, "artist")


def test_parse_id_rejects_the_wrong_type() -> None:
    with pytest.raises(UsageError, match="is a track, not an artist"):
        parse_id(f"spotify:track:{ID}", "artist")


def test_search_types() -> None:
    assert search_types("artist, Track,artist") == ["artist", "track"]
    with pytest.raises(UsageError, match="unknown search type 'band'"):
        search_types("band")
    with pytest.raises(UsageError, match="no search type"):
        search_types(" , ")


@given(st.lists(st.text(min_size=1, max_size=3)), st.integers(min_value=1, max_value=60))
def test_chunks_cover_every_item_once_in_order(items: list[str], size: int) -> None:
    chunks = list(chunked(items, size))
    assert [item for chunk in chunks for item in chunk] == items
    assert all(1 <= len(chunk) <= size for chunk in chunks)
    assert all(len(chunk) == size for chunk in chunks[:-1])


@given(st.integers(0, 1200), st.integers(1, 50), st.integers(1, 1000))
def test_capped_limit_never_crosses_the_cap(offset: int, limit: int, cap: int) -> None:
    cut = capped_limit(offset, limit, cap)
    assert 0 <= cut <= limit
    if offset >= cap:
        assert cut == 0  # nothing left to ask for
    else:  # the largest limit that stays within the cap: the whole limit, or up to the cap exactly
        assert offset + cut <= cap
        assert cut == limit or offset + cut == cap


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("5", 5.0), ("0", 0.0), (" 2.5 ", 2.5), ("soon", None), ("-1", None)],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def _flaky(failures: list[Exception]) -> object:
    calls = {"n": 0}

    def attempt() -> str:
        calls["n"] += 1
        if failures:
            raise failures.pop(0)
        return "ok"

    attempt.calls = calls  # type: ignore[attr-defined]
    return attempt


def _transient() -> Retryable:
    return Retryable("transient", "503 down", ServerError(503, "down"))


def test_backoff_is_exponential_with_jitter_and_bounded(
    fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    policy = RetryPolicy(max_attempts=5, backoff_initial=1.0, backoff_max=3.0)
    attempt = _flaky([_transient() for _ in range(4)])
    with caplog.at_level(logging.WARNING, logger="spotify_catalog.retries"):
        assert (
            call_with_retries(
                attempt, policy=policy, clock=fake_time.clock, sleep=fake_time.sleep, what="GET /x"
            )
            == "ok"
        )  # type: ignore[arg-type]
    ceilings = [1.0, 2.0, 3.0, 3.0]
    assert len(fake_time.sleeps) == 4
    for wait, ceiling in zip(fake_time.sleeps, ceilings, strict=True):
        assert ceiling / 2 <= wait <= ceiling
    assert sum("503 down; retrying in" in r.getMessage() for r in caplog.records) == 4


def test_attempts_are_capped(fake_time: FakeTime) -> None:
    attempt = _flaky([_transient() for _ in range(10)])
    with pytest.raises(ServerError):
        call_with_retries(
            attempt,
            policy=RetryPolicy(max_attempts=3),
            clock=fake_time.clock,
            sleep=fake_time.sleep,
            what="x",
        )  # type: ignore[arg-type]
    assert attempt.calls["n"] == 3  # type: ignore[attr-defined]


def test_total_time_is_capped(fake_time: FakeTime) -> None:
    failures: list[Exception] = [
        Retryable("rate_limit", "429", ServerError(429, "slow"), retry_after=40.0) for _ in range(10)
    ]
    attempt = _flaky(failures)
    policy = RetryPolicy(max_attempts=10, max_total_wait=100.0, max_wait=60.0)
    with pytest.raises(ServerError):
        call_with_retries(attempt, policy=policy, clock=fake_time.clock, sleep=fake_time.sleep, what="x")  # type: ignore[arg-type]
    assert fake_time.sleeps == [40.0, 40.0]  # a third wait would pass 100 s


def test_invalid_responses_have_their_own_smaller_bound(fake_time: FakeTime) -> None:
    from spotify_catalog.errors import InvalidResponseError

    failures: list[Exception] = [
        Retryable("invalid", "html", InvalidResponseError("not json")) for _ in range(10)
    ]
    attempt = _flaky(failures)
    with pytest.raises(InvalidResponseError):
        call_with_retries(
            attempt,
            policy=RetryPolicy(invalid_attempts=3),
            clock=fake_time.clock,
            sleep=fake_time.sleep,
            what="x",
        )  # type: ignore[arg-type]
    assert attempt.calls["n"] == 3  # type: ignore[attr-defined]


def test_errors_that_will_not_pass_are_not_retried(fake_time: FakeTime) -> None:
    attempt = _flaky([TransportError("unsupported protocol")])
    with pytest.raises(TransportError):
        call_with_retries(
            attempt, policy=RetryPolicy(), clock=fake_time.clock, sleep=fake_time.sleep, what="x"
        )  # type: ignore[arg-type]
    assert fake_time.sleeps == []


def test_pacer_spaces_calls(fake_time: FakeTime) -> None:
    pacer = Pacer(4.0, clock=fake_time.clock, sleep=fake_time.sleep)
    for _ in range(5):
        pacer.acquire()
    assert fake_time.sleeps == [0.25, 0.25, 0.25, 0.25]
    fake_time.now += 10  # idle time is not saved up as a burst
    pacer.acquire()
    assert len(fake_time.sleeps) == 4


def test_pacer_hands_out_distinct_slots_across_threads() -> None:
    now = [0.0]
    pacer = Pacer(10.0, clock=lambda: now[0], sleep=lambda s: None)

    def worker() -> None:
        for _ in range(25):
            pacer.acquire()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 100 calls at 10/s with a frozen clock: waits 0, 0.1, ..., 9.9
    assert pacer.waited == pytest.approx(sum(i * 0.1 for i in range(100)))


def test_pacer_off() -> None:
    pacer = Pacer(0, clock=lambda: 0.0, sleep=lambda s: pytest.fail("slept"))
    pacer.acquire()
