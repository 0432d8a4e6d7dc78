"""``spotify-catalog crawl`` and ``demo``: input errors before any request, exit codes of stops,
the summary, no secrets in the database."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from crawl_helpers import crawl, new_engine, pick

from emulated import web_requests
from spotify_catalog.cli import main
from spotify_catalog.crawl import GC_THRESHOLDS, Depth, collecting_less
from spotify_catalog.storage import schema
from spotify_catalog.storage.engine import create_engine

SECRET = "emulator-client-secret"


def run(emu: Any, *args: str, env: dict[str, str] | None = None) -> Result:
    runner = CliRunner()
    environment = {"SPOTIFY_CLIENT_ID": "emulator-client-id", "SPOTIFY_CLIENT_SECRET": SECRET}
    environment.update(env or {})
    base = ["--api-url", emu.url + "/v1", "--token-url", emu.url + "/api/token"] if emu else []
    return runner.invoke(main, [*base, *args], env=environment)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env, default databases land here
    monkeypatch.delenv("SPOTIFY_CATALOG_MODE", raising=False)


def _artist_args() -> list[str]:
    return pick().args()


def test_bad_lines_are_refused_before_any_request(emulator: Any, tmp_path: Path) -> None:
    listing = tmp_path / "artists.txt"
    listing.write_text(
        "# my artists\nBTS\n\nspotify:album:4aawyAB9vmqN3uQ7FjRGTy\nhttps://open.spotify.com/artist/short\n"
        "  \nspotify:artist:3Nrfpe0tUJi4K4DXYWgMUX\n",
        encoding="utf-8",
    )
    result = run(emulator, "crawl", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--artists-file", str(listing))
    assert result.exit_code == 2, result.output
    assert "line 4" in result.output
    assert "line 4: 'spotify:album:4aawyAB9vmqN3uQ7FjRGTy' is an album, not an artist" in result.output
    assert "line 5" in result.output
    assert "line 2" not in result.output
    assert "line 7" not in result.output
    assert "Traceback" not in result.output
    assert emulator.stats()["requests"] == 0


@pytest.mark.parametrize("text", ["", "# only a comment\n\n", "artist,country\n"])
def test_a_file_without_artists_is_refused(emulator: Any, tmp_path: Path, text: str) -> None:
    listing = tmp_path / "artists.csv"
    listing.write_text(text, encoding="utf-8")
    result = run(emulator, "crawl", "--artists-file", str(listing))
    assert result.exit_code == 2
    assert "no artists" in result.output
    assert emulator.stats()["requests"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--artist", "BTS", "--db", "nonsense"], "not a database URL"),
        (["--artist", "BTS", "--depth", "everything"], "Invalid value for '--depth'"),
        (["--artist", "BTS", "--refresh-after", "soon"], "not a duration"),
        (["--artist", "BTS", "--include-groups", "album,bootleg"], "unknown album group 'bootleg'"),
        (["--artist", "BTS", "--market", "USA"], "2-letter country code"),
        (["--artist", "spotify:track:3Nrfpe0tUJi4K4DXYWgMUX"], "is a track, not an artist"),
        (["--artists-file", "missing.txt"], "artists file not found"),
        ([], "nothing to crawl"),
    ],
)
def test_bad_options_exit_2(emulator: Any, args: list[str], message: str) -> None:
    result = run(emulator, "crawl", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert emulator.stats()["requests"] == 0


def test_database_errors_hide_the_password(emulator: Any) -> None:
    result = run(
        emulator, "crawl", "--artist", "BTS", "--db", "postgresql+psycopg://user:s3cr3tpw@127.0.0.1:1/x"
    )
    assert result.exit_code == 1
    assert "cannot set up the database" in result.output
    assert "s3cr3tpw" not in result.output
    assert "Traceback" not in result.output
    assert emulator.stats()["requests"] == 0


def test_missing_credentials_exit_2(emulator: Any) -> None:
    result = run(emulator, "crawl", "--artist", "BTS", env={"SPOTIFY_CLIENT_SECRET": ""})
    assert result.exit_code == 2
    assert "SPOTIFY_CLIENT_SECRET" in result.output


def test_csv_file_crawl_prints_a_summary_and_records_the_run(emulator: Any, tmp_path: Path) -> None:
    listing = tmp_path / "artists.csv"
    rows = "\n".join(f'"{a.value}",x' for a in pick().inputs)
    listing.write_text(f"artist,comment\n{rows}\n", encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'c.db'}"
    result = run(emulator, "crawl", "--db", url, "--artists-file", str(listing), "--mode", "development")
    assert result.exit_code == 0, result.output
    assert "rows per table" in result.output
    assert "requests made" in result.output
    engine = create_engine(url)
    with engine.connect() as conn:
        run_row = conn.execute(sa.select(schema.runs)).mappings().one()
        n_res = conn.execute(sa.select(sa.func.count()).select_from(schema.artist_resolutions)).scalar_one()
    engine.dispose()
    assert run_row["status"] == "done"
    assert run_row["requests"] == web_requests(emulator) > 0
    assert run_row["command"].startswith("spotify-catalog crawl --db sqlite:///")
    assert "--artists-file" in run_row["command"]
    assert n_res == len(pick().names)
    assert SECRET.encode() not in (tmp_path / "c.db").read_bytes()


def test_quota_stop_exits_75_and_a_later_run_completes(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator(profile="development", quota=25)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    args = ["crawl", "--db", url, "--mode", "development", "--depth", "tracks", *_artist_args()]
    first = run(emu, *args)
    assert first.exit_code == 75, first.output
    assert "quota bucket parked (Spotify answered 429 QUOTA_EXCEEDED): albums until " in first.output
    assert "Traceback" not in first.output
    engine = create_engine(url)
    with engine.connect() as conn:
        stopped = conn.execute(sa.select(schema.runs)).mappings().one()
    assert stopped["status"] == "stopped"
    assert stopped["retry_at"] is not None
    # the quota counts per bucket: one bucket's 25 answered, the 26th of it refused (the only 429), the
    # others went on
    assert stopped["requests"] == web_requests(emu)
    assert emu.stats()["by_status"]["429"] == 1
    assert 25 in [use["used"] for use in emu.stats()["quota"]["emulator-client-id"].values()]

    before = web_requests(emu)
    early = run(emu, *args)  # before retry_at: read from the database, nothing asked
    assert early.exit_code == 75, early.output
    assert "continue after" in early.output
    assert "--force" in early.output
    assert web_requests(emu) == before

    emu.advance(24 * 3600 + 60)  # the emulator's clock, not the crawl's: --force
    emu.configure(quota=0)
    second = run(emu, *args, "--force")
    assert second.exit_code == 0, second.output
    third = run(emu, *args)
    assert third.exit_code == 0
    with engine.connect() as conn:
        runs = conn.execute(sa.select(schema.runs.c.status, schema.runs.c.requests)).all()
    engine.dispose()
    assert [r[0] for r in runs] == ["stopped", "done", "done"]
    assert runs[2][1] == 0


def test_max_requests_exits_75(emulator: Any, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    result = run(
        emulator, "crawl", "--db", url, "--mode", "development", "--max-requests", "3", *_artist_args()
    )
    assert result.exit_code == 75, result.output
    assert "budget of 3" in result.output
    assert web_requests(emulator) == 3


def test_demo_crawls_the_fixed_list_with_bts(tmp_path: Path) -> None:
    from spotify_catalog.emulator import BTS_ID

    url = f"sqlite:///{tmp_path / 'demo.db'}"
    result = run(None, "demo", "--db", url, "--depth", "albums")
    assert result.exit_code == 0, result.output
    assert "rows per table" in result.output
    engine = create_engine(url)
    with engine.connect() as conn:
        artists = (
            conn.execute(sa.select(schema.artists.c.id).where(schema.artists.c.detail == "full"))
            .scalars()
            .all()
        )
        albums = conn.execute(sa.select(sa.func.count()).select_from(schema.artist_albums)).scalar_one()
    engine.dispose()
    assert BTS_ID in artists
    assert len(artists) == 20
    assert albums > 20


def test_a_wait_longer_than_max_wait_exits_75(make_emulator: Any, tmp_path: Path) -> None:
    emu = make_emulator(profile="development", rate_limit=5)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    args = ["crawl", "--db", url, "--mode", "development", "--max-wait", "1", *_artist_args()]
    result = run(emu, *args)
    assert result.exit_code == 75, result.output
    assert "continue after" in result.output
    engine = create_engine(url)
    with engine.connect() as conn:
        stopped = conn.execute(sa.select(schema.runs)).mappings().one()
    engine.dispose()
    assert stopped["status"] == "stopped"
    assert stopped["retry_at"] is not None
    assert web_requests(emu) == 6  # five answered, the sixth refused by the 30-second limiter


# ------------------------------------------------------------------------------ the cycle collector


@contextmanager
def _thresholds_seen(start: tuple[int, int, int]) -> Iterator[set[tuple[int, int, int]]]:
    """The cycle collector's thresholds at every statement any engine runs inside, from ``start``;
    what they were is restored after."""
    seen: set[tuple[int, int, int]] = set()

    def look(*args: Any) -> None:
        seen.add(gc.get_threshold())

    before = gc.get_threshold()
    sa.event.listen(sa.Engine, "before_cursor_execute", look)
    try:
        gc.set_threshold(*start)
        yield seen
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", look)
        gc.set_threshold(*before)


def test_a_crawl_command_collects_cycles_less_often_and_restores_the_thresholds(
    make_emulator: Any, tmp_path: Path
) -> None:
    """The command line raises the cycle collector's thresholds while the crawl writes (never lowering
    one), and they are what they were after."""
    emu = make_emulator(profile="extended")
    url = f"sqlite:///{tmp_path / 'c.db'}"
    with _thresholds_seen((1000, 5, 30)) as seen:
        result = run(emu, "crawl", "--db", url, "--mode", "extended", "--depth", "albums", *_artist_args())
        assert result.exit_code == 0, result.output
        assert gc.get_threshold() == (1000, 5, 30)
    assert (GC_THRESHOLDS[0], GC_THRESHOLDS[1], 30) in seen  # never lowered


def test_a_crawl_of_the_library_leaves_the_thresholds_alone(make_emulator: Any, tmp_path: Path) -> None:
    """The thresholds are the process's: a program running ``Crawler`` itself opts in."""
    emu = make_emulator(profile="extended")
    engine = new_engine(tmp_path / "c.db")
    with _thresholds_seen((1000, 5, 30)) as seen:
        assert crawl(emu, engine, mode="extended", depth=Depth.ALBUMS).status == "done"
    engine.dispose()
    assert seen == {(1000, 5, 30)}


def test_overlapping_crawls_restore_the_thresholds_when_the_last_ends() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        first, second = collecting_less(), collecting_less()
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        assert gc.get_threshold() == GC_THRESHOLDS  # the second crawl still runs
        second.__exit__(None, None, None)
        assert gc.get_threshold() == (700, 10, 10)
        gc.set_threshold(0)  # the application turned collection off: it stays off
        with collecting_less():
            assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)
