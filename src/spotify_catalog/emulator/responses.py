"""What the emulator's answers are made of: Spotify's JSON error body, the headers (CORS,
Cache-Control, ETag), the JSON encoders, and the 200 of a Web API route, built quickly."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import orjson
from starlette.responses import Response

JSON_TYPE = "application/json; charset=utf-8"
CATALOG_CACHE = "public, max-age=7200"
SHOW_CACHE = "public, max-age=60"
PLAYLIST_CACHE = "public, max-age=0"
PRIVATE_CACHE = "private, max-age=0"
NO_CACHE = "no-cache, no-store, must-revalidate"
JSON = dict[str, Any]
# on every Web API answer, as Spotify's (reference §4)
CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-headers": "Accept, App-Platform, Authorization, Content-Type, Origin, Retry-After, "
    "Spotify-App-Version, X-Cloud-Trace-Context, client-token, content-access-token",
    "access-control-allow-methods": "GET, POST, OPTIONS, PUT, DELETE, PATCH",
    "access-control-allow-credentials": "true",
    "access-control-max-age": "604800",
}
CORS_RAW = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in CORS.items()]
ORIGIN_RAW = [(b"access-control-allow-origin", b"*")]  # enough on a success, kept short for speed

Headers = Sequence[tuple[bytes, bytes]]
"""An ASGI scope's ``headers``: lower-case names, as the server received them."""


def header(headers: Headers, name: bytes) -> str | None:
    """The first value of header ``name`` (lower case), as Starlette's ``Request.headers.get``."""
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


class ApiFail(Exception):
    """An error answer of the Web API: ``{"error": {"status": ..., "message": ...}}``."""

    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.reason = reason


def encode(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def encode_catalog(body: JSON) -> bytes:
    """What :func:`encode` writes, 10 to 20 times quicker, for what the handlers return: strings, ints,
    booleans, ``None``, lists and dicts, never a float (``orjson`` and ``json`` write floats differently;
    ``test_every_body_is_what_json_writes`` checks the bytes are the same)."""
    return orjson.dumps(body)


def error_response(fail: ApiFail) -> Response:
    """Spotify's error body; an empty message is left out (``{"error":{"status":403}}``)."""
    error: JSON = {"status": fail.status}
    if fail.message:
        error["message"] = fail.message
    if fail.reason:
        error["reason"] = fail.reason
    headers = {"content-type": JSON_TYPE, **fail.headers}
    if fail.status != 401:
        headers.setdefault("cache-control", PRIVATE_CACHE)
    return Response(encode({"error": error}), status_code=fail.status, headers=headers)


PREMIUM_REQUIRED = (
    "Active premium subscription required for the owner of the app. When the subscription status "
    "changes, it can take a few hours before requests are allowed again."
)


def premium_required() -> Response:
    """Every Web API call while the app owner's Premium subscription has lapsed: a 403 whose body is
    this plain text, 159 bytes, not Spotify's JSON error (reference §1.11 and §12.2: zmb3/spotify#301,
    spotify2tidal#184)."""
    return Response(
        PREMIUM_REQUIRED.encode(),
        status_code=403,
        headers={"content-type": "text/plain", "cache-control": PRIVATE_CACHE},
    )


def etag_of(body: bytes) -> str:
    digest = hashlib.md5(body, usedforsecurity=False).hexdigest()
    return '"MC-' + base64.b64encode(f'"{digest}"'.encode()).decode() + '"'


def preflight() -> Response:
    """The answer to a CORS preflight (``OPTIONS``), on any path."""
    return Response(b"", status_code=200, headers=CORS)


def method_not_allowed() -> Response:
    """A Web API path asked with a method it does not answer."""
    response = error_response(ApiFail(405, "Method not allowed", {"allow": "GET, HEAD, OPTIONS"}))
    response.raw_headers.extend(CORS_RAW)
    return response


def not_found() -> Response:
    """A path the Web API does not have."""
    response = error_response(ApiFail(404, "Service not found"))
    response.raw_headers.extend(CORS_RAW)
    return response


class CatalogResponse(Response):
    """A 200 whose headers (CORS included) are prepared once per route: the common case, kept quick."""

    def __init__(self, body: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        # what Response.__init__ makes of it (content-length first), without its general machinery
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = [(b"content-length", str(len(body)).encode("latin-1")), *raw_headers]


@functools.cache
def success_headers(cache: str) -> list[tuple[bytes, bytes]]:
    """The headers of a :class:`CatalogResponse` with this Cache-Control."""
    return [
        (b"content-type", JSON_TYPE.encode()),
        (b"cache-control", cache.encode()),
        *ORIGIN_RAW,
    ]
