"""The README's one-off commands (``search``, ``get``, ``auth check``) run against the default emulator,
ids included, and every Spotify id the README and docs/ show is one the default emulator serves."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from emulated import stored_login
from spotify_catalog.cli import main
from spotify_catalog.emulator import Catalog
from spotify_catalog.emulator.config import EmulatorConfig
from spotify_catalog.settings import CONFIG_ENV, ENV_NAMES
from spotify_catalog.users import LoginStore

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
ONE_OFF = re.compile(r"^spotify-catalog (?:search|get|auth check)\b.*$", re.MULTILINE)
SPOTIFY_ID = re.compile(r"(?<![0-9A-Za-z])[0-9A-Za-z]{22}(?![0-9A-Za-z])")
UNKNOWN_ON_PURPOSE = {"0000000000000000000000"}  # the docs' example of an id that names nothing


DEFAULTS = EmulatorConfig()


def _a_newcomer_at(emu: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """``emu`` as a newcomer meets it: in an empty directory, the emulator's credentials and URLs in
    the environment and nothing else, the ledger, caches and logins under ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    for name in (*ENV_NAMES.values(), CONFIG_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", DEFAULTS.client_id)
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", DEFAULTS.client_secret)
    monkeypatch.setenv("SPOTIFY_API_URL", emu.url + "/v1")
    monkeypatch.setenv("SPOTIFY_TOKEN_URL", emu.url + "/api/token")
    for name in ("DATA", "CACHE", "CONFIG"):
        monkeypatch.setenv(f"XDG_{name}_HOME", str(tmp_path / name.lower()))
    return emu


def readme_commands() -> list[list[str]]:
    """The README's one-off command lines, as arguments (a trailing ``# comment`` left out)."""
    lines = ONE_OFF.findall(README.read_text(encoding="utf-8"))
    return [shlex.split(line, comments=True)[1:] for line in lines]


def test_the_readme_shows_get_examples_of_several_kinds() -> None:
    kinds = {args[1] for args in readme_commands() if args[0] == "get"}
    assert {"artist", "playlist", "show"} <= kinds


@pytest.mark.parametrize("profile", ["development", "extended"])
def test_the_readme_one_off_commands_succeed_against_the_default_emulator(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_emulator: Any, profile: str
) -> None:
    _a_newcomer_at(
        make_emulator(profile=profile, seed=DEFAULTS.seed, artists=DEFAULTS.artists), monkeypatch, tmp_path
    )
    commands = readme_commands()
    assert len(commands) >= 5
    for args in commands:
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, (args, result.stderr)
        assert result.stdout.strip(), args


def test_every_id_in_the_readme_and_docs_is_served_by_the_default_emulator() -> None:
    catalog = Catalog(DEFAULTS.seed, DEFAULTS.artists)
    found: dict[str, str] = {}
    for path in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for spotify_id in SPOTIFY_ID.findall(path.read_text(encoding="utf-8")):
            found.setdefault(spotify_id, path.name)
    assert "3Nrfpe0tUJi4K4DXYWgMUX" in found  # the pattern finds ids
    unknown = {
        i: where for i, where in found.items() if i not in UNKNOWN_ON_PURPOSE and catalog.lookup(i) is None
    }
    assert unknown == {}


def readme_pipeline_commands() -> list[list[str]]:
    """The README's other command lines (auth login, crawl, status, report, export, demo), continuation
    lines joined; not ``emulator``, which serves until stopped, nor the one-off commands above."""
    text = README.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = re.findall(r"^spotify-catalog (?!emulator\b|search\b|get\b|auth check\b).*$", text, re.MULTILINE)
    return [shlex.split(line, comments=True)[1:] for line in lines]


def test_the_readme_pipeline_commands_succeed_against_the_default_emulator(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_emulator: Any
) -> None:
    """Every crawl, status, report, export and demo line of the README, in its order, against the default
    emulator (its ids), in an empty directory; the S3 lake the examples export to is a local folder here,
    and ``auth login`` stores the emulator's first user's login without a browser (the same PKCE flow,
    tests/client/test_client_auth_cli.py drives the browser's part)."""
    emu = _a_newcomer_at(make_emulator(seed=DEFAULTS.seed, artists=DEFAULTS.artists), monkeypatch, tmp_path)
    catalog = Catalog(DEFAULTS.seed, DEFAULTS.artists)
    (tmp_path / "artists.txt").write_text(f"{catalog.artist(1).name}\n{catalog.artist(2).id}\n")
    commands = readme_pipeline_commands()
    assert {args[0] for args in commands} >= {"auth", "crawl", "status", "report", "export", "demo"}
    for args in commands:
        if args[:2] == ["auth", "login"]:
            stored_login(emu, LoginStore(tmp_path / "config" / "spotify-catalog"), DEFAULTS.users[0])
            continue
        if "--db" in args:  # writes the lake; --print-ddl only names the place
            args = [a.replace("s3://bucket/spotify", str(tmp_path / "lake")) for a in args]
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, (args, result.stderr)
    assert (tmp_path / "report.html").stat().st_size > 0
    assert list((tmp_path / "lake").glob("tracks/dt=2026-11-25/*.parquet"))
    assert (tmp_path / "spotify-demo.html").exists()
    assert (tmp_path / "me.db").exists()
