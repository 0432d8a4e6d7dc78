"""The API mode one-off commands remember (:mod:`spotify_catalog.modecache`): keyed by client id and
API, corrected by the first answer that contradicts it, detected afresh by ``auth check`` and
forgotten with ``auth check --forget``; the app owner's lapsed Premium is no mode (reference §1.11:
zmb3/spotify#301, the plain-text 403 to every call while the token endpoint answers 200)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from emulated import web_requests
from spotify_catalog import modecache
from spotify_catalog.cli import main
from spotify_catalog.errors import PREMIUM_LAPSED
from spotify_catalog.settings import CONFIG_ENV, ENV_NAMES, ApiMode

CLIENT_ID = "emulator-client-id"
LONG_AGO = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.chdir(tmp_path)
    for name in (*ENV_NAMES.values(), CONFIG_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _point_at(env: pytest.MonkeyPatch, emu: Any) -> str:
    env.setenv("SPOTIFY_CLIENT_ID", CLIENT_ID)
    env.setenv("SPOTIFY_CLIENT_SECRET", "emulator-client-secret")
    env.setenv("SPOTIFY_API_URL", emu.url + "/v1")
    env.setenv("SPOTIFY_TOKEN_URL", emu.url + "/api/token")
    return str(emu.url + "/v1")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _remembered(api_url: str) -> ApiMode | None:
    memory = modecache.remembered(CLIENT_ID, api_url)
    return None if memory is None else memory.mode


def test_an_answer_that_contradicts_the_memory_corrects_it(
    env: pytest.MonkeyPatch, make_emulator: Any
) -> None:
    """Remembered development, served as an Extended app: the first command's answer (artists with
    popularity) corrects the memory; ``auth check`` says extended; 3 artists are then one batch."""
    emu = make_emulator(profile="extended")
    api_url = _point_at(env, emu)
    modecache.remember(CLIENT_ID, api_url, ApiMode.DEVELOPMENT, now=LONG_AGO)
    ids = emu.catalog.artist_ids()[:3]
    first = run("get", "artist", *ids)
    assert first.exit_code == 0, first.stderr
    assert web_requests(emu) == 3  # asked as the memory said: one by one
    assert _remembered(api_url) is ApiMode.EXTENDED  # corrected by the first answer
    check = run("auth", "check")
    assert check.exit_code == 0, check.stderr
    assert "api mode: extended (detected with one request" in check.stdout
    assert "previously remembered: extended, learnt " in check.stdout
    before = web_requests(emu)
    again = run("get", "artist", *ids)
    assert again.exit_code == 0, again.stderr
    assert web_requests(emu) - before == 1  # one batch
    assert json.loads(again.stdout) == json.loads(first.stdout)


def test_a_limit_over_10_accepted_corrects_the_memory(env: pytest.MonkeyPatch, make_emulator: Any) -> None:
    """Remembered development: ``search --limit 20`` is asked with 10, whose artists show Extended mode;
    the next search gets its 20 rows."""
    emu = make_emulator(profile="extended")
    api_url = _point_at(env, emu)
    modecache.remember(CLIENT_ID, api_url, ApiMode.DEVELOPMENT)
    args = ("search", "the", "--type", "artist", "--limit", "20", "--format", "json")
    first = run(*args)
    assert len(json.loads(first.stdout)["artists"]["items"]) == 10
    assert _remembered(api_url) is ApiMode.EXTENDED
    second = run(*args)
    assert len(json.loads(second.stdout)["artists"]["items"]) == 20
    assert web_requests(emu) == 2


def test_a_refused_batch_corrects_a_remembered_extended_mode(
    env: pytest.MonkeyPatch, make_emulator: Any
) -> None:
    """Remembered extended, served as a Development-Mode app: the batch's 403 is paid once, the ids go
    one by one in the same command, and the memory says development."""
    emu = make_emulator(profile="development")
    api_url = _point_at(env, emu)
    modecache.remember(CLIENT_ID, api_url, ApiMode.EXTENDED)
    ids = emu.catalog.artist_ids()[:3]
    result = run("get", "artist", *ids)
    assert result.exit_code == 0, result.stderr
    assert [a["id"] for a in json.loads(result.stdout)] == list(ids)
    assert web_requests(emu) == 1 + len(ids)
    assert _remembered(api_url) is ApiMode.DEVELOPMENT


def test_two_apis_with_one_client_id_do_not_share_a_memory(
    env: pytest.MonkeyPatch, make_emulator: Any
) -> None:
    development, extended = make_emulator(profile="development"), make_emulator(profile="extended")
    dev_url = _point_at(env, development)
    assert "api mode: development" in run("auth", "check").stdout
    ext_url = _point_at(env, extended)
    assert "previously remembered: nothing" in run("auth", "check").stdout
    assert _remembered(dev_url) is ApiMode.DEVELOPMENT
    assert _remembered(ext_url) is ApiMode.EXTENDED
    forgotten = run("auth", "check", "--forget")
    assert forgotten.exit_code == 0, forgotten.stderr
    assert "forgot 2 remembered API mode(s)" in forgotten.stdout
    assert _remembered(dev_url) is None
    assert _remembered(ext_url) is None
    assert web_requests(extended) == 1  # --forget sends nothing


def test_a_lapsed_premium_is_no_mode(env: pytest.MonkeyPatch, make_emulator: Any) -> None:
    """``auth check`` exits 1 with the one line and remembers nothing; a remembered mode stays."""
    emu = make_emulator(profile="extended", owner_premium=False)
    api_url = _point_at(env, emu)
    result = run("auth", "check")
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: {PREMIUM_LAPSED}"]
    assert "api mode" not in result.stdout
    assert not modecache.cache_file().exists()
    modecache.remember(CLIENT_ID, api_url, ApiMode.EXTENDED, now=LONG_AGO)
    search = run("search", "BTS")
    assert search.exit_code == 75
    assert PREMIUM_LAPSED in search.stderr
    assert modecache.remembered(CLIENT_ID, api_url) == modecache.Memory(ApiMode.EXTENDED, LONG_AGO)
    httpx.post(f"{emu.url}/_emulator/config", json={"owner_premium": True}).raise_for_status()
    assert "api mode: extended" in run("auth", "check").stdout
