"""A crawl of a few hundred artists through 5xx answers, dropped connections, 429s of the 30-second
limiter and 5-second tokens finishes with the same database, table by table and row by row, as a
crawl that met no fault.

The client's clock is the emulator's clock and its sleeps move that clock forward: a ``Retry-After:
30`` costs no real time, the limiter's window really frees up, and tokens expire on the same clock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from resilience_helpers import artist_inputs, crawl, new_engine, orphans, row_counts

from emulated import contents, differences, emulator_settings, web_requests
from spotify_catalog.client import SpotifyClient
from spotify_catalog.crawl import Depth
from spotify_catalog.errors import UnauthorizedError

CATALOG = 2000
# generous retry bounds on the emulator's clock (429 waits of up to 30 s add up)
PATIENT = {"max_attempts": 12, "max_total_wait": 3600}


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "count", "max_albums"), [("extended", 300, 10), ("development", 120, 6)])
def test_a_faulty_crawl_equals_a_clean_one(
    make_emulator: Any, tmp_path: Path, mode: str, count: int, max_albums: int
) -> None:
    inputs = artist_inputs(count, names=30, max_albums=max_albums)
    clean = make_emulator(profile=mode, artists=CATALOG)
    reference = new_engine(tmp_path / "clean.db")
    assert crawl(clean, reference, inputs, mode=mode, depth=Depth.TRACKS).status == "done"
    minimum = web_requests(clean)
    assert clean.stats()["by_status"] == {"200": clean.stats()["requests"]}
    counts = row_counts(reference)
    assert counts.artists >= count
    assert counts.albums > count
    assert counts.tracks > counts.albums

    emu = make_emulator(profile=mode, artists=CATALOG, fault_rate=0.2, rate_limit=60, token_ttl=5)
    engine = new_engine(tmp_path / "faulty.db")
    result = crawl(emu, engine, inputs, mode=mode, depth=Depth.TRACKS, emulator_time=True, settings=PATIENT)
    assert result.status == "done", result

    stats = emu.stats()
    by_status = stats["by_status"]
    assert by_status.get("429", 0) > 0  # the limiter refused requests
    assert sum(by_status.get(s, 0) for s in ("500", "502", "503")) > 0.1 * minimum
    assert by_status.get("drop", 0) > 0.03 * minimum
    assert stats["by_route"]["POST /api/token"] > 3  # 5-second tokens were renewed
    assert by_status["200"] >= minimum

    diff = differences(contents(engine, emu.url), contents(reference, clean.url))
    assert not diff, "\n".join(diff)
    assert not orphans(engine)
    engine.dispose()
    reference.dispose()


@pytest.mark.parametrize(("seconds_per_request", "renewals"), [(10.0, 3), (0.0, 2)])
def test_a_token_that_expires_while_in_use_is_renewed_again(
    make_emulator: Any, seconds_per_request: float, renewals: int
) -> None:
    """Two 401s in a row: if the renewed token also outlived its time (here: 10 s pass per request,
    tokens live 5 s), renewing again is right; a fresh token refused twice is an error."""
    now = [0.0]
    answers = iter([401, 401, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/token":
            return httpx.Response(
                200, json={"access_token": f"tok-{now[0]:08.1f}", "token_type": "Bearer", "expires_in": 5}
            )
        now[0] += seconds_per_request
        status = next(answers)
        if status == 401:
            return httpx.Response(401, json={"error": {"status": 401, "message": "The access token expired"}})
        return httpx.Response(200, json={"id": "x"})

    settings = emulator_settings(make_emulator(), mode="extended")
    client = SpotifyClient(settings, transport=httpx.MockTransport(handler), clock=lambda: now[0])
    with client:
        if renewals == 3:
            assert client.get("/artists/x") == {"id": "x"}
        else:
            with pytest.raises(UnauthorizedError):
                client.get("/artists/x")
        assert client.tokens_fetched == renewals
