"""The foundation: the console script, its help, and the error-to-exit-code mapping."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from spotify_catalog import errors
from spotify_catalog.cli import main


def test_console_script_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "spotify_catalog", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "0.1.0" in proc.stdout


def test_project_errors_become_one_line_and_their_exit_code() -> None:
    @main.command("_boom", hidden=True)  # registered for this test only
    @click.argument("kind")
    def boom(kind: str) -> None:
        from datetime import UTC, datetime

        if kind == "usage":
            raise errors.ConfigError("no credentials: set SPOTIFY_CLIENT_ID")
        if kind == "quota":
            raise errors.QuotaExceededError("quota spent", retry_at=datetime(2026, 11, 25, 12, tzinfo=UTC))
        raise errors.NotFoundError(404, "Resource not found", url="http://x/v1/artists/abc")

    runner = CliRunner()
    try:
        for kind, code, text in [
            ("usage", 2, "no credentials"),
            ("quota", 75, "retry after 2026-11-25 12:00:00 UTC"),
            ("api", 1, "Spotify answered 404: Resource not found (GET http://x/v1/artists/abc)"),
        ]:
            result = runner.invoke(main, ["_boom", kind])
            assert result.exit_code == code, result.output
            assert text in result.output
            assert "Traceback" not in result.output
    finally:
        main.commands.pop("_boom")


def test_usage_errors_are_one_line_naming_the_help_to_read() -> None:
    runner = CliRunner()
    for args, text, where in [
        (["--bogus"], "No such option '--bogus'", "spotify-catalog --help"),
        (["nosuch"], "No such command 'nosuch'", "spotify-catalog --help"),
        (["search"], "Missing argument 'QUERY'", "spotify-catalog search --help"),
        (["crawl", "--workers", "x"], "'x' is not a valid integer", "spotify-catalog crawl --help"),
    ]:
        result = runner.invoke(main, args, prog_name="spotify-catalog")
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1, result.output
        assert lines[0].startswith("Error: ")
        assert text in lines[0]
        assert f"(see '{where}')" in lines[0]


def test_a_library_message_of_several_lines_is_joined_into_one() -> None:
    assert errors.joined_lines("Invalid URL: x\nValid forms are:\n  a\n\n  b (or c)\n") == (
        "Invalid URL: x; Valid forms are: a; b (or c)"
    )
    assert errors.joined_lines("one line") == "one line"
    assert errors.joined_lines("  \n") == ""


@pytest.mark.parametrize("group", [[], ["auth"]])
def test_help_shows_each_command_s_whole_summary(group: list[str]) -> None:
    """Every command's first sentence, whole, in the top-level help and in ``auth --help`` (click cut
    them: ``export    Export the catalog to...``)."""
    result = CliRunner().invoke(main, [*group, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    listing = " ".join(result.output.partition("Commands:")[2].split())
    assert "..." not in listing.replace(", ...", "")  # the search summary's own "isrc:, ..."
    parent = main.get_command(click.Context(main), group[0]) if group else main
    assert isinstance(parent, click.Group)
    names = parent.list_commands(click.Context(parent))
    assert len(names) >= 4
    for name in names:
        command = parent.get_command(click.Context(parent), name)
        assert command is not None
        summary = command.get_short_help_str(10_000)
        assert f"{name} {summary}" in listing, name


def test_crawl_and_demo_have_one_quiet_option() -> None:
    """``--quiet`` is the global ``-q`` (crawl and demo had a ``--quiet`` of their own beside it)."""
    for command in ("crawl", "demo"):
        result = CliRunner().invoke(main, [command, "--help"], terminal_width=200)
        lines = [line.strip() for line in result.output.splitlines() if "-q" in line.split(",")[0]]
        assert [line.split("  ")[0] for line in lines] == ["-q, --quiet"], result.output
