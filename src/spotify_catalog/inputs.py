"""What the user asks a crawl for: artists (ids, URIs, links or names, on the command line or in a file)
and durations. Pure parsing; bad input raises :class:`~spotify_catalog.errors.UsageError` before any
request is made."""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from spotify_catalog import endpoints
from spotify_catalog.errors import UsageError, shown

MAX_NAME = 200
MAX_REPORTED = 5  # bad lines of an artists file named in the error
MAX_DURATION = 100 * 365 * 86400


@dataclass(frozen=True)
class ArtistInput:
    """One artist the user asked for: a Spotify id, or a name to search."""

    value: str
    is_id: bool


NAMED_KINDS = frozenset({"artist"})  # kinds that may be given by name (resolved by a search)
CSV_COLUMNS = ("artist", "artist_id", "spotify_id", "id", "uri", "url", "spotify_url", "name", "artist_name")


# a link (scheme://, www., or host.tld/path): never an artist name
_LINK = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|www\.|[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}/)", re.IGNORECASE)
# a bare token of letters and digits of both cases, as long as an id give or take: a mistyped id
_ID_LIKE = re.compile(r"(?=.*[0-9])(?=.*[a-z])(?=.*[A-Z])[0-9A-Za-z]{15,30}")


def parse_artist(text: str) -> ArtistInput:
    """An id (bare, ``spotify:artist:ID`` or ``open.spotify.com/artist/ID``) or a name. Links to
    other sites and bare tokens that look like an id of the wrong length are refused."""
    return parse_input(text, "artist")


def parse_spotify_id(text: str, kind: str) -> str:
    """The id of a ``kind`` (``playlist``, ``show``, ``audiobook``) given as an id, URI or URL."""
    return parse_input(text, kind).value


def parse_input(text: str, kind: str = "artist") -> ArtistInput:
    """An id of ``kind`` (bare, ``spotify:KIND:ID`` or ``open.spotify.com/KIND/ID``), or for artists a
    name (:data:`NAMED_KINDS`)."""
    value = " ".join(text.split())
    if not value:
        raise UsageError(f"empty {kind}")
    if any(ord(ch) < 32 for ch in text.strip("\r\n")):
        raise UsageError(f"control characters in {shown(text)}")
    looks_like_link = value.lower().startswith(("spotify:", "open.spotify.com")) or bool(_LINK.match(value))
    try:
        return ArtistInput(endpoints.parse_id(value, kind), True)
    except UsageError as exc:
        if looks_like_link or kind not in NAMED_KINDS:
            if "is a" in str(exc):  # a valid URI or URL of another kind: short
                raise UsageError(str(exc)) from None
            raise UsageError(f"not a Spotify {kind} id, URI or URL: {shown(value)}") from None
    if _ID_LIKE.fullmatch(value):
        raise UsageError(f"{shown(value)} looks like a Spotify id but has {len(value)} characters, not 22")
    if len(value) > MAX_NAME:
        raise UsageError(f"{kind} name longer than {MAX_NAME} characters")
    return ArtistInput(value, False)


def csv_columns(kind: str) -> tuple[str, ...]:
    """The CSV columns that name a ``kind``, in the order they are tried."""
    if kind == "artist":
        return CSV_COLUMNS
    return (kind, f"{kind}_id", "spotify_id", "id", "uri", "url", "spotify_url")


def parse_artists_text(
    text: str, source: str = "artists file", *, csv_file: bool = False, kind: str = "artist"
) -> list[ArtistInput]:
    """The artists (or ``kind``\\ s) of a file's text: one per line, or a CSV whose header names a
    column such as ``artist``, ``name``, ``id``, ``spotify_id`` or ``uri`` (``csv_file``: it must).
    Blank lines and ``#`` comments are skipped. Bad lines are reported at once, the first few by
    number (:class:`UsageError`); so is a file with none."""
    columns_of_kind = csv_columns(kind)
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)]
    content = [(n, line) for n, line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not content:
        raise UsageError(f"{source}: no {kind}s in it")
    try:
        header = _csv_header(content[0][1], columns_of_kind)
    except UsageError as exc:  # not a header; in a .csv, a header that cannot be read
        if csv_file:
            raise UsageError(f"{source}: line {content[0][0]}: {exc}") from None
        header = None
    if csv_file and header is None:
        raise UsageError(
            f"{source}: the CSV header {shown(content[0][1])} has no {kind} column "
            f"(one of {', '.join(columns_of_kind)})"
        )
    inputs: list[ArtistInput] = []
    bad: list[str] = []
    if header is not None:
        columns = [c for c in columns_of_kind if c in header]
        for number, line in content[1:]:
            try:
                if len(header) == 1 and not line.lstrip().startswith('"'):
                    fields = [line]  # one column: the whole line, commas and all
                else:
                    fields = _csv_fields(line)
                record = dict(zip(header, fields, strict=False))
                cell = next((record[c] for c in columns if (record.get(c) or "").strip()), "")
                inputs.append(parse_input(cell, kind))
            except UsageError as exc:
                bad.append(f"line {number}: {exc}")
        if not inputs and not bad:
            raise UsageError(f"{source}: no {kind}s in it (only a CSV header)")
    else:
        for number, line in content:
            try:
                inputs.append(parse_input(line, kind))
            except UsageError as exc:
                bad.append(f"line {number}: {exc}")
    if bad:
        more = f"; and {len(bad) - MAX_REPORTED} more" if len(bad) > MAX_REPORTED else ""
        raise UsageError(f"{source}: {len(bad)} bad line(s): " + "; ".join(bad[:MAX_REPORTED]) + more)
    return inputs


def _csv_header(line: str, columns: tuple[str, ...] = CSV_COLUMNS) -> list[str] | None:
    """The column names if ``line`` is a CSV header naming a column of ``columns`` (a one-column
    header such as ``artist`` counts too)."""
    fields = [f.strip().lower() for f in _csv_fields(line)]
    return fields if any(f in columns for f in fields) else None


def _csv_fields(line: str) -> list[str]:
    """The fields of one CSV line; a line the ``csv`` module refuses (a field longer than its
    ``field_size_limit``, 131,072 characters) is a :class:`UsageError`."""
    try:
        return next(csv.reader(io.StringIO(line)), [])
    except csv.Error as exc:
        raise UsageError(f"cannot read it as CSV: {exc}") from None


def read_artists_file(path: str | Path, kind: str = "artist") -> list[ArtistInput]:
    """:func:`parse_artists_text` of a file (UTF-8, a BOM allowed)."""
    what = f"{kind}s file"
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"{what} not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"cannot read {what} {path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
            f"offset {exc.start}); save it as UTF-8"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    return parse_artists_text(text, source=str(path), csv_file=Path(path).suffix.lower() == ".csv", kind=kind)


def read_ids_file(path: str | Path, kind: str) -> list[str]:
    """The ids of ``kind`` in a file (as :func:`read_artists_file`; only ids, URIs or URLs)."""
    return [item.value for item in read_artists_file(path, kind)]


def parse_duration(text: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``90s``, ``2w`` or a number of seconds."""
    value = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    try:
        seconds = float(value[:-1]) * units[value[-1]] if value and value[-1] in units else float(value)
    except ValueError:
        raise UsageError(f"not a duration: {text!r} (e.g. 7d, 12h, 30m, 3600)") from None
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_DURATION:
        raise UsageError(f"not a usable duration: {text!r} (0 to 100 years)")
    return timedelta(seconds=seconds)
