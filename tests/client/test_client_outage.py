"""Outages: attempts that get no answer, across every thread of a client, on an ``httpx.MockTransport``
and a fake clock. Nothing answering for ``outage_after`` seconds (with at least 3 failed attempts)
raises ``UnreachableError`` from every request; any answer, even a 5xx, ends the streak."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any as FakeTime

import httpx
import pytest

from spotify_catalog.client import SpotifyClient
from spotify_catalog.errors import (
    EXIT_ERROR,
    ConfigError,
    ServerError,
    Stopped,
    TransportError,
    UnreachableError,
)
from spotify_catalog.retries import OutageTracker, describe_network_error
from spotify_catalog.settings import Settings

Handler = Callable[[httpx.Request], httpx.Response]
TOKEN = "BQ-outage-token-abcdef"
REFUSED = "[Errno 111] Connection refused"


def _settings(**extra: object) -> Settings:
    return Settings.load(
        {
            "client_id": "mock-id",
            "client_secret": "mock-secret-value",
            "api_url": "http://spotify.test/v1",
            "token_url": "http://accounts.test/api/token",
            **extra,
        },
        environ={},
        dotenv_path="/nonexistent/.env",
    )


def _client(handler: Handler, fake_time: FakeTime | None = None, **extra: object) -> SpotifyClient:
    if fake_time is None:  # real clock, real (wakeable) sleep
        return SpotifyClient(_settings(**extra), transport=httpx.MockTransport(handler))
    return SpotifyClient(
        _settings(**extra),
        transport=httpx.MockTransport(handler),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )


def _token_ok() -> httpx.Response:
    return httpx.Response(200, json={"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600})


class Api:
    """A fake Spotify whose Web API is refused while ``down``; the token endpoint answers unless
    ``token_down``. Counts the Web API calls it saw."""

    def __init__(self) -> None:
        self.down = True
        self.token_down = False
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "accounts.test":
            if self.token_down:
                raise httpx.ConnectError(REFUSED, request=request)
            return _token_ok()
        self.calls += 1
        if self.down:
            raise httpx.ConnectError(REFUSED, request=request)
        return httpx.Response(200, json={"path": request.url.path})


# ------------------------------------------------------------------------------ the tracker alone


def _refused() -> httpx.ConnectError:
    return httpx.ConnectError(REFUSED, request=httpx.Request("GET", "http://spotify.test/v1/x"))


def _fail(tracker: OutageTracker) -> Exception:
    return tracker.failed(_refused(), url="http://spotify.test/v1/x", error=TransportError("refused"))


def test_tracker_needs_both_the_time_and_the_attempts(fake_time: FakeTime) -> None:
    tracker = OutageTracker(after=20, clock=fake_time.clock)
    assert not isinstance(_fail(tracker), UnreachableError)
    fake_time.now += 25  # long enough, but only the second attempt
    assert not isinstance(_fail(tracker), UnreachableError)
    error = _fail(tracker)
    assert isinstance(error, UnreachableError)
    assert str(error) == (
        "cannot reach http://spotify.test: connection refused (3 attempts in 25.0 s); "
        "nothing was lost, run again later"
    )
    assert error.exit_code == EXIT_ERROR
    assert (error.origin, error.reason, error.attempts) == ("http://spotify.test", "connection refused", 3)


def test_an_answer_resets_the_streak(fake_time: FakeTime) -> None:
    tracker = OutageTracker(after=20, clock=fake_time.clock)
    for _ in range(10):
        assert not isinstance(_fail(tracker), UnreachableError)
        fake_time.now += 1.9  # 19 s of failures
    tracker.answered()
    assert tracker.failing == 0
    for _ in range(10):  # 19 s more: the streak started again at the answer
        assert not isinstance(_fail(tracker), UnreachableError)
        fake_time.now += 1.9
    fake_time.now += 1.0
    assert isinstance(_fail(tracker), UnreachableError)


def test_retries_wait_no_longer_than_the_verdict(fake_time: FakeTime) -> None:
    tracker = OutageTracker(after=20, clock=fake_time.clock)
    first = _fail(tracker)
    fake_time.now += 17.5
    second = _fail(tracker)
    assert getattr(first, "verdict_in", None) == 20
    assert getattr(second, "verdict_in", None) == 2.5
    assert getattr(first, "streak", None) == getattr(second, "streak", None)


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (httpx.ConnectError(REFUSED), "connection refused"),
        (httpx.ConnectError("[Errno -2] Name or service not known"), "host name not found (DNS)"),
        (httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), "TLS failed"),
        (httpx.ConnectTimeout("timed out"), "connect timeout"),
        (httpx.ReadTimeout("timed out"), "no answer in time (timeout)"),
        (httpx.RemoteProtocolError("Server disconnected"), "connection closed without an answer"),
        (httpx.ReadError("[Errno 104] Connection reset by peer"), "connection reset"),
    ],
)
def test_failures_are_named_in_a_few_words(error: httpx.HTTPError, words: str) -> None:
    assert describe_network_error(error).startswith(words)


# ------------------------------------------------------------------------------ the client


def test_a_refused_api_raises_unreachable_after_outage_after(fake_time: FakeTime) -> None:
    api = Api()
    with _client(api, fake_time) as client:
        started = fake_time.now
        with pytest.raises(UnreachableError) as info:
            client.get("/artists/x")
        assert 20.0 <= fake_time.now - started <= 20.5
        assert info.value.attempts == api.calls > 6  # past max_attempts: nothing answered anybody
        assert str(info.value).startswith("cannot reach http://spotify.test: connection refused (")
        assert str(info.value).endswith(" s); nothing was lost, run again later")
        assert all(wait <= 20.0 for wait in fake_time.sleeps)
        # never connected: not requests (no quota spent, no budget used), but attempts
        assert client.requests_made == 0
        assert client.attempts_made == api.calls


ATTEMPT = re.compile(r"\(attempt (\d+)(?: of (\d+))?")


def _retry_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, int | None]]:
    """``(attempt, of)`` of each retry line (``of`` None: the line names no bound)."""
    found = [ATTEMPT.search(r.getMessage()) for r in caplog.records if "retrying in" in r.getMessage()]
    return [(int(m[1]), int(m[2]) if m[2] else None) for m in found if m]


@pytest.mark.parametrize("down", ["api", "token"])
def test_retry_lines_count_attempts_right_against_an_unreachable_api(
    fake_time: FakeTime, caplog: pytest.LogCaptureFixture, down: str
) -> None:
    """Attempts that get no answer go on past ``max_attempts`` until the outage verdict: their lines
    promise no "of 6" that the attempts then pass (they said "attempt 6 of 6", then 7 and 8)."""
    api = Api()
    api.token_down = down == "token"
    with _client(api, fake_time) as client, caplog.at_level(logging.WARNING, "spotify_catalog.retries"):
        with pytest.raises(UnreachableError) as info:
            client.get("/artists/x")
    made = info.value.attempts
    assert made > client.settings.max_attempts
    lines = _retry_lines(caplog)
    assert [number for number, _ in lines] == list(range(2, made + 1))
    assert [of for _, of in lines if of is not None and of < made] == []
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert all("unreachable if nothing answers within" in line for line in retries), retries


def test_retry_lines_of_answered_failures_count_to_max_attempts(
    fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "accounts.test":
            return _token_ok()
        return httpx.Response(503, json={"error": {"status": 503, "message": "down"}})

    with _client(handler, fake_time, max_attempts=4) as client, caplog.at_level(logging.WARNING):
        with pytest.raises(ServerError):
            client.get("/artists/x")
    assert _retry_lines(caplog) == [(2, 4), (3, 4), (4, 4)]


def test_a_dead_token_endpoint_is_an_outage_too(fake_time: FakeTime) -> None:
    api = Api()
    api.token_down = True
    with _client(api, fake_time) as client:
        with pytest.raises(
            UnreachableError, match=r"^cannot reach http://accounts\.test: connection refused"
        ):
            client.get("/artists/x")
        assert api.calls == 0
        assert client.requests_made == 0


def test_an_answer_in_between_keeps_requests_going(fake_time: FakeTime) -> None:
    api = Api()
    with _client(api, fake_time) as client:

        def back_after_15_s(_: float) -> None:
            if fake_time.now >= 1015.0:
                api.down = False

        fake_time.on_sleep.append(back_after_15_s)
        assert client.get("/artists/a") == {"path": "/v1/artists/a"}  # 15 s of refusals, then an answer
        api.down = True
        fake_time.on_sleep[:] = [lambda _: setattr(api, "down", fake_time.now < 1030.0)]
        assert client.get("/artists/b") == {"path": "/v1/artists/b"}  # another 15 s: still no outage
        assert client.outage.outages == 0
        assert client.requests_made == 2


def test_server_errors_are_answers_not_an_outage(fake_time: FakeTime) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "accounts.test":
            return _token_ok()
        return httpx.Response(503, json={"error": {"status": 503, "message": "down"}})

    with _client(handler, fake_time, max_attempts=20, max_total_wait=600) as client:
        with pytest.raises(ServerError):
            client.get("/artists/x")
        assert fake_time.now - 1000 > 60  # far longer than outage_after
        assert client.outage.failing == 0
        assert client.outage.outages == 0
        assert client.requests_made == 20


def test_one_request_failing_while_others_are_answered_gives_up_as_before(fake_time: FakeTime) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "accounts.test":
            return _token_ok()
        if request.url.path.endswith("/flaky"):
            raise httpx.RemoteProtocolError("Server disconnected", request=request)
        return httpx.Response(200, json={})

    with _client(handler, fake_time, max_attempts=3) as client:
        fake_time.on_sleep.append(lambda _: client.get("/artists/ok"))  # another thread's answers
        with pytest.raises(TransportError) as info:
            client.get("/artists/flaky")
        assert not isinstance(info.value, UnreachableError)
        assert "RemoteProtocolError" in str(info.value)
        assert client.requests_made == 3 + 2  # dropped after sending: counted


def test_during_an_outage_requests_fail_at_once_then_one_probes(fake_time: FakeTime) -> None:
    api = Api()
    with _client(api, fake_time) as client:
        with pytest.raises(UnreachableError):
            client.get("/artists/x")
        calls, sleeps = api.calls, len(fake_time.sleeps)
        with pytest.raises(UnreachableError):
            client.get("/artists/y")  # held: not sent, no wait
        assert (api.calls, len(fake_time.sleeps)) == (calls, sleeps)
        fake_time.now += 20
        with pytest.raises(UnreachableError):
            client.get("/artists/y")  # one attempt to see whether it is back
        assert (api.calls, len(fake_time.sleeps)) == (calls + 1, sleeps)
        fake_time.now += 20
        api.down = False
        assert client.get("/artists/y") == {"path": "/v1/artists/y"}
        assert client.outage.failing == 0
        assert client.get("/artists/z") == {"path": "/v1/artists/z"}


def test_a_429_holds_every_thread_at_the_gate_until_cancelled() -> None:
    """Real clock and sleep: one thread waits out a 429's ``Retry-After: 50``; the others, started
    then, wait on the gate it closed and send nothing; ``cancel()`` ends every thread within seconds."""
    api = Api()
    rate_limited = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/slow") and not rate_limited.is_set():
            rate_limited.set()
            return httpx.Response(429, headers={"Retry-After": "50"}, json={"error": {"status": 429}})
        return api(request)

    errors: list[BaseException] = []

    def worker(path: str) -> None:
        try:
            client.get(path)
        except BaseException as exc:
            errors.append(exc)

    with _client(handler, outage_after=1, max_wait=60) as client:
        client.tokens.token()
        slow = threading.Thread(target=worker, args=("/artists/slow",))
        slow.start()
        assert rate_limited.wait(5)
        started = time.monotonic()
        others = [threading.Thread(target=worker, args=(f"/artists/{n}",)) for n in range(3)]
        for thread in others:
            thread.start()
        time.sleep(1.5)
        assert api.calls == 0  # nobody knocked while the gate is closed
        assert not errors
        client.cancel()
        for thread in [slow, *others]:
            thread.join(30)
        elapsed = time.monotonic() - started
    assert not any(t.is_alive() for t in [slow, *others])
    assert elapsed < 25  # far less than the 50 s Retry-After, however loaded the machine
    assert len(errors) == 4
    assert all(isinstance(e, Stopped) for e in errors), errors


def test_outage_after_is_a_setting() -> None:
    settings = Settings.load(
        {"client_id": "a", "client_secret": "b"},
        environ={"SPOTIFY_CATALOG_OUTAGE_AFTER": "45"},
        dotenv_path="/nonexistent/.env",
    )
    assert settings.outage_after == 45.0
    assert Settings().outage_after == 20.0
    with pytest.raises(ConfigError, match="outage_after"):
        Settings.load({"outage_after": "-1"}, environ={}, dotenv_path="/nonexistent/.env")
