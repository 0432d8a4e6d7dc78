"""Bad input, property-based: every command's options and the artist files ``crawl`` reads. Each bad
value exits 2 with one ``Error:`` line that names the problem, no traceback, no request to the API
and nothing written: the database file is not even created."""

from __future__ import annotations

import re
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulated import CLIENT_ID, CLIENT_SECRET
from spotify_catalog.cli import main
from spotify_catalog.emulator import EmulatorConfig, serve_in_thread

EXAMPLES = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
BTS = "3Nrfpe0tUJi4K4DXYWgMUX"


@pytest.fixture(scope="module")
def emu() -> Iterator[Any]:
    with serve_in_thread(EmulatorConfig(artists=200)) as running:
        yield running


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env; default databases would land here
    for name in ("SPOTIFY_CATALOG_MODE", "SPOTIFY_CATALOG_CONFIG", "SPOTIFY_API_URL", "SPOTIFY_TOKEN_URL"):
        monkeypatch.delenv(name, raising=False)


def invoke(emu: Any, *args: str) -> Result:
    base = ["--api-url", emu.url + "/v1", "--token-url", emu.url + "/api/token"]
    env = {"SPOTIFY_CLIENT_ID": CLIENT_ID, "SPOTIFY_CLIENT_SECRET": CLIENT_SECRET}
    return CliRunner().invoke(main, [*base, *args], env=env)


def assert_refused(result: Result, *names: str) -> str:
    """Exit 2, exactly one ``Error:`` line naming one of ``names``, no traceback; the line."""
    output = result.output
    assert result.exit_code == 2, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    line = errors[0]
    assert any(name.lower() in line.lower() for name in names), (line, names)
    assert len(line) < 600, line
    return line


def _requests(emu: Any) -> int:
    return int(emu.stats()["requests"])


# ------------------------------------------------------------------------------ value strategies


def _not(pattern_ok: Any, base: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return base.filter(lambda v: not pattern_ok(v))


def _is_int(text: str) -> bool:
    try:
        int(text.strip())
    except ValueError:
        return False
    return True


def _is_date(text: str) -> bool:
    from datetime import date

    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_float(text: str) -> bool:
    try:
        float(text.strip())
    except ValueError:
        return False
    return True


printable = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=30
)
not_int = _not(_is_int, printable)
not_float = _not(_is_float, printable)


def ints_outside(low: int | None, high: int | None) -> st.SearchStrategy[str]:
    parts: list[st.SearchStrategy[int]] = []
    if low is not None:
        parts.append(st.integers(max_value=low - 1))
    if high is not None:
        parts.append(st.integers(min_value=high + 1))
    return st.one_of(*parts).map(str) | not_int


def words_except(allowed: set[str]) -> st.SearchStrategy[str]:
    return printable.filter(lambda v: v.strip().lower() not in allowed)


def not_market(value: str) -> bool:
    return not (len(value) == 2 and value.isascii() and value.isalpha())


# ------------------------------------------------------------------------------ crawl options

CRAWL_OPTIONS: list[tuple[str, st.SearchStrategy[str], tuple[str, ...]]] = [
    ("--workers", ints_outside(1, 64), ("--workers",)),
    ("--max-requests", st.integers(max_value=-1).map(str) | not_int, ("--max-requests",)),
    ("--max-wait", st.floats(max_value=-0.001).map(repr) | not_float, ("--max-wait",)),
    ("--depth", words_except({"artists", "albums", "tracks", "track-details"}), ("--depth",)),
    ("--mode", words_except({"auto", "development", "extended"}), ("--mode",)),
    ("--market", printable.filter(not_market), ("--market",)),
    (
        "--refresh-after",
        printable.filter(
            lambda v: not v.strip() or v.strip()[-1] not in "0123456789smhdw" or v.strip().startswith("-")
        ),
        ("duration",),
    ),
    (
        "--include-groups",
        st.text(string.ascii_lowercase + ",_", max_size=20).filter(
            lambda v: any(g not in {"album", "single", "compilation", "appears_on"} for g in v.split(","))
        ),
        ("album group", "names no group"),
    ),
    ("--db", printable.filter(lambda v: "://" not in v), ("database URL",)),
]


@pytest.mark.parametrize(("option", "values", "names"), CRAWL_OPTIONS, ids=[o[0] for o in CRAWL_OPTIONS])
def test_crawl_refuses_bad_option_values(
    emu: Any, tmp_path: Path, option: str, values: st.SearchStrategy[str], names: tuple[str, ...]
) -> None:
    @EXAMPLES
    @given(value=values)
    def check(value: str) -> None:
        before = _requests(emu)
        with tempfile.TemporaryDirectory(dir=tmp_path) as where:
            db_path = Path(where) / "catalog.db"
            args = ["crawl", "--artist", "BTS", "--quiet"]
            if option != "--db":
                args += ["--db", f"sqlite:///{db_path}"]
            assert_refused(invoke(emu, *args, f"{option}={value}"), *names)
            assert not db_path.exists()
            assert not list(Path(where).iterdir())
        assert _requests(emu) == before

    check()


# ------------------------------------------------------------------------------ artist files


def _bad_files() -> st.SearchStrategy[tuple[bytes, str, tuple[str, ...]]]:
    """(file content, file name, words the error must contain)."""
    blank = st.lists(st.sampled_from(["", "   ", "# a comment", "\t"]), max_size=5).map(
        lambda lines: ("\n".join(lines)).encode()
    )
    binary = st.binary(min_size=1, max_size=200).filter(lambda b: not _utf8(b))
    latin1 = st.sampled_from(["Beyoncé", "Sigur Rós", "Mötley Crüe", "Françoise Hardy"]).map(
        lambda name: (name + "\n").encode("latin-1")
    )
    utf16 = st.sampled_from(["BTS", "Beyoncé", "아이유"]).map(lambda name: (name + "\n").encode("utf-16"))
    csv_without_column = st.sampled_from(["country,genre", "band;year", "label,year,country"]).map(
        lambda header: (header + "\nKR,pop\nUS,rock\n").encode()
    )
    short_ids = (
        st.integers(min_value=8, max_value=40)
        .filter(lambda n: n != 22)
        .flatmap(
            lambda n: st.text(string.ascii_letters + string.digits, min_size=n, max_size=n).filter(
                lambda t: (
                    any(c.isdigit() for c in t)
                    and any(c.isupper() for c in t)
                    and any(c.islower() for c in t)
                )
            )
        )
    )
    # bare tokens are names unless they look like an id: letters of both cases and digits, 15-30 long
    wrong_ids = short_ids.map(
        lambda t: st.sampled_from(
            [
                f"spotify:artist:{t}",
                f"https://open.spotify.com/artist/{t}",
                *([t] if 15 <= len(t) <= 30 else []),
            ]
        )
    ).flatmap(lambda s: s)
    other_sites = st.sampled_from([
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ", "https://music.apple.com/us/artist/bts/883131348",
        "www.deezer.com/artist/6064115", "http://example.com/artist/3Nrfpe0tUJi4K4DXYWgMUX",
        "soundcloud.com/bangtan", "https://open.spotify.com/album/4aawyAB9vmqN3uQ7FjRGTy",
        "ftp://open.spotify.com/artist/3Nrfpe0tUJi4K4DXYWgMUX",
    ])  # fmt: skip
    huge_line = st.integers(min_value=201, max_value=300_000).map(lambda n: ("x" * n + "\n").encode())
    many_bad = st.integers(min_value=50, max_value=5000).map(
        lambda n: "".join(f"spotify:artist:bad{i}\n" for i in range(n)).encode()
    )
    return st.one_of(
        blank.map(lambda b: (b, "artists.txt", ("no artists",))),
        binary.map(lambda b: (b, "artists.txt", ("UTF-8", "utf-8"))),
        latin1.map(lambda b: (b, "artists.txt", ("UTF-8", "utf-8"))),
        utf16.map(lambda b: (b, "artists.txt", ("UTF-8", "utf-8"))),
        csv_without_column.map(lambda b: (b, "artists.csv", ("column",))),
        wrong_ids.map(lambda t: ((f"BTS\n{t}\n").encode(), "artists.txt", ("line 2",))),
        other_sites.map(lambda t: ((f"BTS\n{t}\n").encode(), "artists.txt", ("line 2",))),
        huge_line.map(lambda b: (b, "artists.txt", ("longer than",))),
        many_bad.map(lambda b: (b, "artists.txt", ("bad line",))),
    )


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@EXAMPLES
@given(case=_bad_files())
def test_crawl_refuses_bad_artist_files(
    emu: Any, tmp_path: Path, case: tuple[bytes, str, tuple[str, ...]]
) -> None:
    content, name, words = case
    before = _requests(emu)
    with tempfile.TemporaryDirectory(dir=tmp_path) as where:
        listing = Path(where) / name
        listing.write_bytes(content)
        db_path = Path(where) / "catalog.db"
        result = invoke(
            emu, "crawl", "--db", f"sqlite:///{db_path}", "--quiet", "--artists-file", str(listing)
        )
        assert_refused(result, *words)
        assert not db_path.exists()
    assert _requests(emu) == before


def test_a_huge_valid_file_is_read(emu: Any, tmp_path: Path) -> None:
    """Size alone is no reason to refuse: 100 000 lines are parsed (and a bad line among them named)."""
    listing = tmp_path / "many.txt"
    lines = [f"Artist number {i}" for i in range(100_000)]
    lines[77_776] = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"
    listing.write_text("\n".join(lines), encoding="utf-8")
    result = invoke(
        emu, "crawl", "--db", f"sqlite:///{tmp_path / 'c.db'}", "--quiet", "--artists-file", str(listing)
    )
    line = assert_refused(result, "line 77777")
    assert "youtube" in line
    assert not (tmp_path / "c.db").exists()


LONG = 140_000  # beyond the csv module's field limit (131,072 characters)
LONG_LINES = {
    "a first line": ("artists.txt", "x" * LONG + "\nBTS\n", ("line 1", "longer than")),
    "a CSV header": ("artists.csv", '"' + "x" * LONG + '",artist\nBTS,\n', ("line 1", "field limit")),
    "a CSV field": ("artists.csv", 'artist,country\nBTS,KR\n"' + "x" * LONG + '",US\n', ("line 3",)),
    "a quoted one-column field": ("artists.txt", 'artist\n"' + "x" * LONG + '"\n', ("line 2",)),
    "a playlists file": ("playlists.txt", "y" * LONG + "\n", ("line 1",)),
}


@pytest.mark.parametrize("case", list(LONG_LINES))
def test_a_line_or_field_of_any_length_is_refused_cleanly(emu: Any, tmp_path: Path, case: str) -> None:
    """Lines and CSV fields past the csv module's limit are bad lines like any other (they were a
    ``_csv.Error`` traceback, exit 1)."""
    name, content, words = LONG_LINES[case]
    listing = tmp_path / name
    listing.write_text(content, encoding="utf-8")
    option = "--playlists-file" if name.startswith("playlists") else "--artists-file"
    before = _requests(emu)
    result = invoke(emu, "crawl", "--db", f"sqlite:///{tmp_path / 'c.db'}", "--quiet", option, str(listing))
    line = assert_refused(result, *words)
    assert all(word in line for word in words), line
    assert not (tmp_path / "c.db").exists()
    assert _requests(emu) == before


@pytest.mark.parametrize(
    ("where", "content"),
    [
        (".env", "# " + "c" * 300_000 + "\nSPOTIFY_CATALOG_MODE=" + "m" * 300_000 + "\n"),
        (".env", "SPOTIFY_CATALOG_MAX_WAIT=" + "9" * 300_000 + "x\n"),
        ("settings.toml", '[spotify]\nrate = "' + "9" * 300_000 + 'x"\n'),
    ],
    ids=["env-mode", "env-number", "toml-number"],
)
def test_settings_of_any_length_are_one_short_line(
    emu: Any, tmp_path: Path, where: str, content: str
) -> None:
    """A value a whole file long is named by its first characters (the message held it twice)."""
    (tmp_path / where).write_text(content, encoding="utf-8")
    config = ["--config", str(tmp_path / where)] if where.endswith(".toml") else []
    before = _requests(emu)
    assert_refused(invoke(emu, *config, "search", "BTS"), "bad value")
    assert _requests(emu) == before


# ------------------------------------------------------------------------------ other commands

OTHER: list[tuple[list[str], str, st.SearchStrategy[str], tuple[str, ...]]] = [
    (["search", "BTS"], "--limit", ints_outside(1, 50), ("--limit",)),
    (["search", "BTS"], "--offset", ints_outside(0, 999), ("--offset",)),
    (
        ["search", "BTS"],
        "--type",
        st.text(string.ascii_lowercase + ",", min_size=1, max_size=20).filter(
            lambda v: any(
                t.strip()
                and t.strip() not in {"album", "artist", "playlist", "track", "show", "episode", "audiobook"}
                for t in v.split(",")
            )
        ),
        ("type",),
    ),
    (["search", "BTS"], "--market", printable.filter(not_market), ("market",)),
    (["search", "BTS"], "--format", words_except({"table", "json", "jsonl", "csv"}), ("--format",)),
    (["search", "BTS"], "--include-external", words_except({"audio"}), ("--include-external",)),
    (["get", "artist", BTS], "--market", printable.filter(not_market), ("market",)),
    (["export"], "--format", words_except({"parquet", "csv", "jsonl"}), ("--format",)),
    (["export"], "--snapshot-date", printable.filter(lambda v: not _is_date(v)), ("date", "--snapshot-date")),
    (["export"], "--compression", words_except({"zstd", "snappy", "none"}), ("--compression",)),
    (["emulator"], "--port", ints_outside(0, 65535), ("--port",)),
    (
        ["emulator"],
        "--artists",
        st.one_of(st.integers(max_value=2), st.integers(min_value=46657)).map(str),
        ("artists",),
    ),
    (
        ["emulator"],
        "--fault-rate",
        st.one_of(
            st.floats(min_value=1.0001, allow_infinity=False),
            st.floats(max_value=-0.0001, allow_infinity=False),
        ).map(repr),
        ("fault", "--fault-rate"),
    ),
    (
        ["emulator"],
        "--fault-kinds",
        st.text(string.ascii_lowercase + ",_", min_size=1, max_size=20).filter(
            lambda v: any(
                k.strip()
                and k.strip()
                not in {"drop", "truncated", "html", "content_type", "missing_field", "extra_field"}
                for k in v.split(",")
            )
        ),
        ("fault kind", "fault_kinds"),
    ),
    (["emulator"], "--token-ttl", st.integers(max_value=0).map(str), ("token_ttl", "--token-ttl")),
    (
        ["emulator"],
        "--latency-ms",
        st.floats(max_value=-0.001, allow_infinity=False).map(repr),
        ("latency", "--latency-ms"),
    ),
    (["emulator"], "--profile", words_except({"development", "extended"}), ("--profile",)),
    (["emulator"], "--retry-after", words_except({"normal", "zero", "omit"}), ("--retry-after",)),
]


@pytest.mark.parametrize(
    ("command", "option", "values", "names"), OTHER, ids=[f"{c[0]}{o}" for c, o, _, _ in OTHER]
)
def test_other_commands_refuse_bad_option_values(
    emu: Any,
    tmp_path: Path,
    command: list[str],
    option: str,
    values: st.SearchStrategy[str],
    names: tuple[str, ...],
) -> None:
    @EXAMPLES
    @given(value=values)
    def check(value: str) -> None:
        before = _requests(emu)
        with tempfile.TemporaryDirectory(dir=tmp_path) as where:
            args = [*command, f"{option}={value}"]
            if command[0] == "export":
                (Path(where) / "c.db").touch()
                args = [*args, "--db", f"sqlite:///{Path(where) / 'c.db'}", "--to", str(Path(where) / "lake")]
            assert_refused(invoke(emu, *args), *names)
            if command[0] == "export":
                assert not (Path(where) / "lake").exists()
        assert _requests(emu) == before

    check()


@EXAMPLES
@given(
    value=st.one_of(
        st.text(string.ascii_letters + string.digits, max_size=40).filter(lambda t: len(t) != 22),
        st.sampled_from(
            ["https://www.youtube.com/watch?v=x", f"spotify:album:{BTS}", f"spotify:artist:{BTS}x"]
        ),
    )
)
def test_get_refuses_ids_that_are_not_ids(emu: Any, value: str) -> None:
    before = _requests(emu)
    assert_refused(invoke(emu, "get", "artist", value), "Spotify id", "not a artist", "not an artist")
    assert _requests(emu) == before


@pytest.mark.parametrize("query", ["", "   "])
def test_search_refuses_an_empty_query(emu: Any, query: str) -> None:
    before = _requests(emu)
    assert_refused(invoke(emu, "search", query), "query")
    assert _requests(emu) == before


# ------------------------------------------------------------------------------ settings

NUMERIC = {
    "max_wait": "SPOTIFY_CATALOG_MAX_WAIT",
    "rate": "SPOTIFY_CATALOG_RATE",
    "max_attempts": "SPOTIFY_CATALOG_MAX_ATTEMPTS",
    "max_total_wait": "SPOTIFY_CATALOG_MAX_TOTAL_WAIT",
    "timeout": "SPOTIFY_CATALOG_TIMEOUT",
    "max_connections": "SPOTIFY_CATALOG_MAX_CONNECTIONS",
}
toml_values = st.one_of(
    st.sampled_from(['"fast"', "-1", "-0.5", '"nan"', '"inf"', "[1]", "{ a = 1 }", '""', '"1e400"']),
    st.integers(max_value=-1).map(str),
)


def _is_toml(data: bytes) -> bool:
    import tomllib

    try:
        tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return True


@EXAMPLES
@given(
    content=st.one_of(
        st.binary(max_size=200).filter(lambda b: not _is_toml(b)),
        st.tuples(st.sampled_from(sorted(NUMERIC)), toml_values).map(
            lambda kv: f"[spotify]\n{kv[0]} = {kv[1]}\n".encode()
        ),
        st.sampled_from(
            [
                b"[spotify]\nmode = 'fast'\n",
                b"[spotify]\nmode = 7\n",
                b"[spotify]\nclient_password = 'x'\n",
                b"spotify = 3\n",
            ]
        ),
    )
)
def test_bad_settings_files_are_refused(emu: Any, tmp_path: Path, content: bytes) -> None:
    before = _requests(emu)
    with tempfile.TemporaryDirectory(dir=tmp_path) as where:
        config = Path(where) / "settings.toml"
        config.write_bytes(content)
        result = invoke(emu, "--config", str(config), "search", "BTS")
        line = assert_refused(result, str(config))  # the line names the file
        key = re.match(rb"\[spotify\]\n(\w+) = ", content)
        if key is not None and _is_toml(content):  # ... and the key whose value is refused
            assert key.group(1).decode() in line, line
    assert _requests(emu) == before


@EXAMPLES
@given(
    setting=st.sampled_from(sorted(NUMERIC)),
    value=st.one_of(
        not_float, st.floats(max_value=-0.001).map(repr), st.sampled_from(["nan", "inf", "-inf", "0x1"])
    ).filter(lambda v: v.strip() and "\x00" not in v),  # empty means "not set"; no NUL in the environment
)
def test_bad_environment_values_are_refused(emu: Any, setting: str, value: str) -> None:
    variable = NUMERIC[setting]
    before = _requests(emu)
    base = ["--api-url", emu.url + "/v1", "--token-url", emu.url + "/api/token"]
    env = {"SPOTIFY_CLIENT_ID": CLIENT_ID, "SPOTIFY_CLIENT_SECRET": CLIENT_SECRET, variable: value}
    result = CliRunner().invoke(main, [*base, "search", "BTS"], env=env)
    assert_refused(result, variable)
    assert _requests(emu) == before
