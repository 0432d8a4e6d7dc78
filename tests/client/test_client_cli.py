"""``search``, ``get`` and ``auth check`` against the emulator: output, exit codes, no secrets shown."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from emulated import web_requests
from spotify_catalog import modecache
from spotify_catalog.cli import main
from spotify_catalog.settings import CONFIG_ENV, ENV_NAMES

BTS = "3Nrfpe0tUJi4K4DXYWgMUX"
SECRET = "Sup3r-S3cret-Value-4711"
TOKEN_PATTERN = re.compile(r"BQ[A-Za-z0-9_-]{20,}")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No Spotify settings from the real environment or a .env; SPOTIFY_* set per test."""
    monkeypatch.chdir(tmp_path)
    for name in (*ENV_NAMES.values(), CONFIG_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _point_at(env: pytest.MonkeyPatch, emu: Any, secret: str = "emulator-client-secret") -> None:
    env.setenv("SPOTIFY_CLIENT_ID", "emulator-client-id")
    env.setenv("SPOTIFY_CLIENT_SECRET", secret)
    env.setenv("SPOTIFY_API_URL", emu.url + "/v1")
    env.setenv("SPOTIFY_TOKEN_URL", emu.url + "/api/token")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def _one_line_error(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_lesson_search_json(env: pytest.MonkeyPatch, emulator: Any) -> None:
    _point_at(env, emulator)
    env.setenv("SPOTIFY_API_URL", "http://127.0.0.1:9/v1")  # the flags win over the environment
    env.setenv("SPOTIFY_TOKEN_URL", "http://127.0.0.1:9/api/token")
    flags = ["--api-url", emulator.url + "/v1", "--token-url", emulator.url + "/api/token"]
    result = run(*flags, "search", "BTS", "--type", "artist", "--limit", "3", "--format", "json")
    assert result.exit_code == 0, result.stderr
    page = json.loads(result.stdout)["artists"]
    assert [a["name"] for a in page["items"]] == ["BTS", "BTS World", "BTSC"]
    assert page["items"][0]["id"] == BTS


def test_lesson_search_table(env: pytest.MonkeyPatch, emulator: Any) -> None:
    _point_at(env, emulator)
    result = run("search", "BTS", "--type", "artist", "--limit", "3")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("artists (3 of 3)")
    assert any("name" in line and "id" in line for line in lines[:4])
    rows = [line for line in lines if BTS in line or "BTS World" in line or "BTSC" in line]
    assert len(rows) == 3
    assert "BTS World" in rows[1]
    assert "popularity" not in result.stdout  # stripped in development mode: no empty column
    assert f"https://open.spotify.com/artist/{BTS}" in rows[0]


def test_search_formats_and_all_pages(env: pytest.MonkeyPatch, make_emulator: Any) -> None:
    emu = make_emulator(profile="extended")
    _point_at(env, emu)
    jsonl = run("search", "love", "--type", "album,track", "--all", "--format", "jsonl", "--market", "us")
    assert jsonl.exit_code == 0, jsonl.stderr
    items = [json.loads(line) for line in jsonl.stdout.splitlines()]
    full = run(
        "search", "love", "--type", "album,track", "--limit", "1", "--format", "json", "--market", "US"
    )
    totals = {k: v["total"] for k, v in json.loads(full.stdout).items()}
    assert sum(1 for i in items if i["type"] == "album") == min(totals["albums"], 1000)
    assert sum(1 for i in items if i["type"] == "track") == min(totals["tracks"], 1000)
    table = run("search", "love", "--type", "track", "--limit", "5", "--format", "csv", "--offset", "2")
    rows = list(csv.DictReader(io.StringIO(table.stdout)))
    assert len(rows) == 5
    assert set(rows[0]) >= {"type", "name", "id", "artists", "album", "duration"}
    tracks = [item for item in items if item["type"] == "track"]
    assert [row["id"] for row in rows] == [track["id"] for track in tracks[2:7]]
    assert rows[0]["name"] == tracks[2]["name"]


def test_get_accepts_ids_uris_and_urls(env: pytest.MonkeyPatch, emulator: Any) -> None:
    _point_at(env, emulator)
    for ref in (BTS, f"spotify:artist:{BTS}", f"https://open.spotify.com/artist/{BTS}?si=x"):
        result = run("get", "artist", ref)
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["name"] == "BTS"
    several = run("get", "artist", BTS, "0000000000000000000000")
    assert several.exit_code == 0, several.stderr
    found = json.loads(several.stdout)
    assert found[0]["id"] == BTS
    assert found[1] is None


def test_get_show_needs_a_market(env: pytest.MonkeyPatch, emulator: Any) -> None:
    _point_at(env, emulator)
    show = emulator.catalog.shows[0]
    result = run("get", "show", show.id)
    assert result.exit_code == 1
    assert "--market" in _one_line_error(result)
    ok = run("get", "show", show.id, "--market", show.markets[0])
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["name"] == show.name


@pytest.mark.parametrize(("profile", "mode"), [("development", "development"), ("extended", "extended")])
def test_auth_check_reports_the_mode(
    env: pytest.MonkeyPatch, make_emulator: Any, profile: str, mode: str
) -> None:
    emu = make_emulator(profile=profile)
    _point_at(env, emu)
    result = run("auth", "check")
    assert result.exit_code == 0, result.stderr
    assert "credentials: ok" in result.stdout
    assert f"api mode: {mode} (detected with one request; remembered in " in result.stdout
    assert f"pin it: export SPOTIFY_CATALOG_MODE={mode}" in result.stdout
    assert web_requests(emu) == 1  # one cheap request to detect the mode
    assert "previously remembered: nothing" in result.stdout
    again = run("auth", "check")
    assert f"api mode: {mode} (detected with one request; remembered in " in again.stdout
    assert re.search(
        rf"previously remembered: {mode}, learnt \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC", again.stdout
    )
    assert web_requests(emu) == 2  # detected afresh every time: the command that reports the mode
    env.setenv("SPOTIFY_CATALOG_MODE", "development")
    assert "api mode: development (from the settings)" in run("auth", "check").stdout


def test_one_off_commands_remember_the_mode(env: pytest.MonkeyPatch, make_emulator: Any) -> None:
    """Development Mode: the first ``search --limit 20`` pays the 400 and asks again with 10; after
    that every command knows the mode. The cache file holds no client id or secret."""
    emu = make_emulator(profile="development")
    _point_at(env, emu)
    ids = emu.catalog.artist_ids()[:3]
    first = run("search", "BTS", "--type", "artist", "--limit", "20", "--format", "json")
    assert first.exit_code == 0, first.stderr
    assert web_requests(emu) == 2
    second = run("search", "BTS", "--type", "artist", "--limit", "20", "--format", "json")
    assert web_requests(emu) == 3
    assert json.loads(second.stdout) == json.loads(first.stdout)
    many = run("get", "artist", *ids)
    assert many.exit_code == 0, many.stderr
    assert web_requests(emu) == 3 + len(ids)  # no 403 from the batch endpoint first
    text = modecache.cache_file().read_text(encoding="utf-8")
    assert '"development"' in text
    assert "emulator-client-id" not in text
    assert "emulator-client-secret" not in text


@pytest.mark.parametrize(
    "args",
    [
        ["search", "BTS", "--limit", "0"],
        ["search", "BTS", "--limit", "51"],
        ["search", "BTS", "--offset", "1000"],
        ["search", "BTS", "--type", "band"],
        ["search", "   "],
        ["search", "BTS", "--market", "USA"],
        ["search", "BTS", "--format", "xml"],
        ["get", "band", BTS],
        ["get", "artist", "not-an-id"],
        ["get", "track", f"spotify:artist:{BTS}"],
        ["--config", "missing.toml", "search", "BTS"],
    ],
)
def test_usage_errors_exit_2(env: pytest.MonkeyPatch, emulator: Any, args: list[str]) -> None:
    _point_at(env, emulator)
    result = run(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert emulator.stats()["requests"] == 0  # refused before any request


def test_missing_credentials_exit_2_naming_the_variables(env: pytest.MonkeyPatch) -> None:
    result = run("search", "BTS")
    assert result.exit_code == 2
    line = _one_line_error(result)
    assert "SPOTIFY_CLIENT_ID" in line
    assert "SPOTIFY_CLIENT_SECRET" in line


def test_bad_secret_exit_1(env: pytest.MonkeyPatch, emulator: Any) -> None:
    _point_at(env, emulator, secret="wrong-secret-123")
    result = run("auth", "check")
    assert result.exit_code == 1
    assert "Invalid client secret" in _one_line_error(result)
    assert "wrong-secret-123" not in result.stderr + result.stdout


def test_not_found_exit_1(env: pytest.MonkeyPatch, emulator: Any) -> None:
    _point_at(env, emulator)
    result = run("get", "artist", "0000000000000000000000")
    assert result.exit_code == 1
    assert "404" in _one_line_error(result)


def test_server_errors_after_retries_exit_1(env: pytest.MonkeyPatch, emulator: Any) -> None:
    _point_at(env, emulator)
    env.setenv("SPOTIFY_CATALOG_MAX_ATTEMPTS", "2")
    emulator.configure(fault_rate=1.0, fault_kinds=["503"])
    result = run("search", "BTS")
    assert result.exit_code == 1
    assert "503" in _one_line_error(result)
    assert "retrying in" in result.stderr  # the retry was logged at the default level
    quiet = run("--quiet", "search", "BTS")
    assert quiet.exit_code == 1
    assert "retrying in" not in quiet.stderr
    assert "503" in _one_line_error(quiet)


def test_network_down_exit_1(env: pytest.MonkeyPatch, emulator: Any) -> None:
    _point_at(env, emulator)
    env.setenv("SPOTIFY_CATALOG_MAX_ATTEMPTS", "1")
    env.setenv("SPOTIFY_TOKEN_URL", "http://127.0.0.1:9/api/token")
    result = run("search", "BTS")
    assert result.exit_code == 1
    assert "ConnectError" in _one_line_error(result)


def test_quota_exit_75_says_when(env: pytest.MonkeyPatch, make_emulator: Any) -> None:
    emu = make_emulator(quota=1)
    _point_at(env, emu)
    assert run("search", "BTS").exit_code == 0
    result = run("search", "BTS")
    assert result.exit_code == 75
    line = _one_line_error(result)
    assert "quota exceeded" in line
    assert re.search(r"retry after \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", line)


def test_too_long_wait_exit_75(env: pytest.MonkeyPatch, make_emulator: Any) -> None:
    emu = make_emulator(rate_limit=1)
    _point_at(env, emu)
    env.setenv("SPOTIFY_CATALOG_MAX_WAIT", "5")
    assert run("search", "BTS").exit_code == 0
    result = run("search", "BTS")
    assert result.exit_code == 75
    assert "over the maximum of 5 s" in _one_line_error(result)


@pytest.mark.parametrize("verbosity", ["-v", "-vv", "-vvv"])
def test_no_secret_or_token_in_any_output(
    env: pytest.MonkeyPatch, make_emulator: Any, verbosity: str
) -> None:
    emu = make_emulator(client_secret=SECRET, token_ttl=3600)
    _point_at(env, emu, secret=SECRET)
    outputs = []
    for args in (
        ["search", "BTS", "--format", "json"],
        ["search", "BTS", "--type", "artist,album", "--all", "--format", "jsonl"],
        ["get", "artist", BTS, "0000000000000000000000"],
        ["auth", "check"],
    ):
        result = run(verbosity, *args)
        assert result.exit_code == 0, result.stderr
        outputs.append(result.stdout + result.stderr)
    emu.advance(4000)  # expired token: the 401 and the renewal are logged too
    emu.configure(fault_rate=0.5, fault_kinds=["503", "html"])
    outputs.append(run(verbosity, "get", "artist", BTS).stderr)
    _point_at(env, emu, secret=SECRET + "-wrong")
    outputs.append(run(verbosity, "auth", "check").stderr)
    text = "\n".join(outputs)
    assert "INFO" in text  # the logs were on
    if verbosity != "-v":
        assert "DEBUG" in text
    assert SECRET not in text
    assert not TOKEN_PATTERN.search(text)
    assert "Bearer " not in text
    assert "Basic " not in text


def test_search_all_says_what_it_will_spend_and_stops_at_max_requests(
    env: pytest.MonkeyPatch, make_emulator: Any
) -> None:
    """The first page's totals say the requests before the rest are made; at --max-requests the
    JSON lines printed are whole, the JSON document holds the results so far, and the exit is 75."""
    emu = make_emulator(profile="development")
    _point_at(env, emu)
    env.setenv("SPOTIFY_CATALOG_MODE", "development")
    totals = json.loads(run("search", "year:2020", "--type", "album,track", "--format", "json").stdout)
    pages = max(-(-min(totals[k]["total"], 1000) // 10) for k in ("albums", "tracks"))
    before = web_requests(emu)
    lines = run(
        "search", "year:2020", "--type", "album,track", "--all", "--format", "jsonl", "--max-requests", "4"
    )
    assert lines.exit_code == 75
    assert "--max-requests 4" in _one_line_error(lines)
    assert web_requests(emu) - before == 4
    assert f"about {pages:,} request(s); --max-requests 4 stops it before the end" in lines.stderr
    assert "4 requests made" in lines.stderr
    items = [json.loads(line) for line in lines.stdout.splitlines()]  # every line whole
    assert len(items) == 4 * 10 * 2
    document = run(
        "search", "year:2020", "--type", "album,track", "--all", "--format", "json", "--max-requests", "2"
    )
    assert document.exit_code == 75
    assert {k: len(v) for k, v in json.loads(document.stdout).items()} == {"albums": 20, "tracks": 20}
    assert [i["id"] for i in json.loads(document.stdout)["albums"]] == [
        i["id"] for i in items if i["type"] == "album"
    ][:20]
    one = run("search", "BTS", "--format", "json")
    assert one.exit_code == 0
    assert "requests made" not in one.stderr  # one request: nothing to say
    env.delenv("SPOTIFY_CATALOG_MODE")  # unknown: --limit 20 answered 400, asked again with 10
    stopped = run("search", "BTS", "--limit", "20", "--format", "json", "--max-requests", "1")
    assert stopped.exit_code == 75
    assert stopped.stdout == ""  # not an empty answer: no answer


def test_get_counts_its_requests_and_refuses_more_than_max_requests(
    env: pytest.MonkeyPatch, emulator: Any
) -> None:
    _point_at(env, emulator)
    env.setenv("SPOTIFY_CATALOG_MODE", "development")
    ids = emulator.catalog.artist_ids()[:3]
    refused = run("get", "artist", *ids, "--max-requests", "2")
    assert refused.exit_code == 2
    assert "3 artists need at least 3 requests, more than --max-requests 2: nothing sent" in _one_line_error(
        refused
    )
    assert web_requests(emulator) == 0
    ok = run("get", "artist", *ids, "--max-requests", "3")
    assert ok.exit_code == 0, ok.stderr
    assert [a["id"] for a in json.loads(ok.stdout)] == ids
    assert "3 requests made" in ok.stderr
    quiet = run("-q", "get", "artist", *ids)
    assert quiet.stderr == ""
    env.delenv("SPOTIFY_CATALOG_MODE")  # the mode unknown: the batch request first, its 403, then one by one
    capped = run("get", "artist", *ids, "--max-requests", "2")
    assert capped.exit_code == 75
    assert "stopped at --max-requests 2" in _one_line_error(capped)
    assert capped.stdout == ""  # no list of some of the ids
    assert "2 requests made" in capped.stderr
    assert web_requests(emulator) == 3 + 3 + 2


def test_a_search_of_shows_without_a_market_says_it_needs_one(env: pytest.MonkeyPatch, emulator: Any) -> None:
    _point_at(env, emulator)
    for types in ("show", "episode", "audiobook", "artist,show,episode"):
        result = run("search", "podcast", "--type", types)
        assert result.exit_code == 0, result.stderr
        hints = [line for line in result.stderr.splitlines() if "--market" in line]
        assert len(hints) == 1, result.stderr
    assert "shows and episodes are found only in a market: add --market XX" in result.stderr
    for args in (["--type", "show", "--market", "US"], ["--type", "artist,track"]):
        assert "--market" not in run("search", "podcast", *args).stderr
