"""Small hazards: control characters in one-line errors and logs, and an export that must not write to the
database it reads (a read-only directory, a database in rollback-journal mode)."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from required import unavailable
from spotify_catalog.cli import configure_logging, main, one_line

ENV = {"SPOTIFY_CLIENT_ID": "emulator-client-id", "SPOTIFY_CLIENT_SECRET": "emulator-client-secret"}


def _cli(emu: Any, *args: str) -> Any:
    base = ["--api-url", emu.url + "/v1", "--token-url", emu.url + "/api/token"]
    return CliRunner().invoke(main, [*base, *args], env=ENV, color=True)  # color: as on a terminal


def _corrupt_database(path: Path) -> None:
    """A SQLite file whose schema holds terminal escapes (clear screen, red, set title)."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (a)")
    conn.execute("PRAGMA writable_schema=ON")
    conn.execute(
        "UPDATE sqlite_master SET name = ?, sql = ? WHERE name = 't'",
        ("t\x1b[31mRED\x1b]0;title\x07", "CREATE TABLE \x1b[2J\x1b[31mboom ("),
    )
    conn.commit()
    conn.close()


def test_one_line_escapes_every_control_character() -> None:
    assert one_line("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert one_line("two\nlines\r\ttab\x00\x7f\x9b") == "two\\x0alines\\x0d\\x09tab\\x00\\x7f\\x9b"
    assert one_line("user \u202eevil") == "user \\u202eevil"  # a right-to-left override
    assert one_line("naïve Beyoncé 방탄소년단 ✓") == "naïve Beyoncé 방탄소년단 ✓"  # printable text stays
    assert one_line("GET /v1/artists/x?q=a+b 200 0.4 ms") == "GET /v1/artists/x?q=a+b 200 0.4 ms"
    assert one_line("tab\tin ASCII") == "tab\\x09in ASCII"  # the ASCII short cut still escapes


def test_the_log_formatter_writes_the_time_as_logging_does() -> None:
    """The CLI's formatter works the date and time out once a second: each record still gets its own."""
    from spotify_catalog.cli import OneLineFormatter

    ours = OneLineFormatter("%(asctime)s %(message)s")
    stdlib = logging.Formatter("%(asctime)s %(message)s")
    start = 1_764_590_399.5  # half a second before a minute, an hour and a day turn
    for created in [start + step * 0.137 for step in range(40)] + [start - 86_400, start + 0.001]:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        assert ours.format(record) == stdlib.format(record)


@pytest.mark.parametrize("command", ["crawl", "export"])
def test_a_corrupt_database_is_one_escaped_line(make_emulator: Any, tmp_path: Path, command: str) -> None:
    emu = make_emulator()
    path = tmp_path / "corrupt.db"
    _corrupt_database(path)
    args = ["--artist", "BTS"] if command == "crawl" else ["--to", str(tmp_path / "lake")]
    result = _cli(emu, command, "--db", f"sqlite:///{path}", *args)
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1, result.output
    assert result.output.startswith("Error: ")
    assert "malformed database schema" in result.output
    assert "\x1b" not in result.output
    assert "\x07" not in result.output
    assert "\\x1b[31mRED\\x1b]0;title\\x07" in result.output
    assert emu.stats()["requests"] == 0


def test_usage_errors_are_escaped_too() -> None:
    result = CliRunner().invoke(main, ["crawl", "x\x1b[2J\x07"], color=True)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert "\x1b" not in result.output
    assert "(x\\x1b[2J\\x07)" in result.output


def test_log_messages_are_escaped(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = logging.getLogger("spotify_catalog")
    monkeypatch.setattr(ours, "handlers", list(ours.handlers))  # all three restored afterwards
    monkeypatch.setattr(ours, "propagate", ours.propagate)
    monkeypatch.setattr(ours, "level", ours.level)
    configure_logging(0, False)
    logging.getLogger("spotify_catalog.test").warning("artist %r:\n%s", "x", "\x1b]0;pwned\x07")
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "\x1b" not in err
    assert "artist 'x':\\x0a\\x1b]0;pwned\\x07" in err


# --------------------------------------------------------------------------- read-only export
@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """The directory read-only even for root (``chattr +i``), or by its mode for anyone else."""
    if os.geteuid() == 0:
        made = subprocess.run(["chattr", "+i", str(directory)], capture_output=True, check=False)
        if made.returncode != 0:
            unavailable(f"chattr +i is not available here: {made.stderr.decode().strip()}")
        undo = ["chattr", "-i", str(directory)]
    else:
        directory.chmod(0o555)
        undo = ["chmod", "0755", str(directory)]
    try:
        with pytest.raises(PermissionError):
            (directory / "probe").touch()
        yield
    finally:
        subprocess.run(undo, check=True)


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture
def crawled(make_emulator: Any, tmp_path: Path) -> tuple[Any, Path]:
    emu = make_emulator()
    directory = tmp_path / "db"
    directory.mkdir()
    result = _cli(emu, "-q", "crawl", "--db", f"sqlite:///{directory / 'catalog.db'}", "--artist", "BTS")
    assert result.exit_code == 0, result.output
    return emu, directory / "catalog.db"


def test_export_reads_a_database_in_a_read_only_directory(crawled: tuple[Any, Path], tmp_path: Path) -> None:
    emu, path = crawled
    before = _files(path.parent)
    assert list(before) == ["catalog.db"]
    with read_only(path.parent):
        result = _cli(emu, "export", "--db", f"sqlite:///{path}", "--to", str(tmp_path / "lake"))
    assert result.exit_code == 0, result.output
    assert "artists: " in result.output
    assert (tmp_path / "lake" / "artists").is_dir()
    assert _files(path.parent) == before


def test_export_leaves_the_database_as_it_was(crawled: tuple[Any, Path], tmp_path: Path) -> None:
    """Not even the journal mode changes: a database in rollback-journal mode stays in it, byte for byte,
    and no -wal or -shm file is left beside it."""
    emu, path = crawled
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    before = _files(path.parent)
    result = _cli(emu, "export", "--db", f"sqlite:///{path}", "--to", str(tmp_path / "lake"))
    assert result.exit_code == 0, result.output
    assert _files(path.parent) == before
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
