"""Fault kinds the emulator inflicts at ``fault_rate``; each turns a request into a bad answer.

``500``/``502``/``503``: an error status with Spotify's error body. ``drop``: the response starts
(status 200 and a ``Content-Length``) and the connection closes before the body is complete.
``truncated``: 200 with the first half of the real JSON body (its own, consistent Content-Length).
``html``: 200 with an HTML error page. ``content_type``: the real body labelled ``text/html``.
``missing_field``: the real JSON with the ``id`` of its first object that has one removed (a top-level
object, the first item of a list or page). ``extra_field``: the real JSON with an unknown field added to
the top-level object and to every object that has an ``id``. ``null_items``: the real JSON with a ``null``
put first in the ``items`` of every paging object, ``total`` and ``limit`` unchanged: one item more than
the page holds (Spotify's own ``null`` items, in playlists and show episodes, take an item's place).
Error answers keep their body for these three.
``plain_text_error``: ``429`` with the ``text/plain`` body ``Too many requests`` and ``Retry-After: 1``
(spotify/web-api#1267). ``empty_429``: ``429`` with an empty body, no content type, ``Retry-After: 1``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

STATUS_BODIES = {
    "500": (500, "Server error"),
    "502": (502, "Bad gateway."),
    "503": (503, "Service unavailable"),
}
HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Spotify - Error</title></head>"
    b"<body><h1>Oops! Something went wrong.</h1></body></html>"
)


class DroppedResponse(Response):
    """Sends the start of a response, then lets the server close the connection mid-body."""

    def __init__(self) -> None:
        super().__init__(b"", status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json; charset=utf-8"),
                    (b"content-length", b"4096"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b'{"error": {"sta', "more_body": True})
        # returning without the rest makes the server close the transport


class _QuietDrops(logging.Filter):
    """Hides the server's complaint about the responses dropped on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


def quiet_server_logs() -> None:
    """Install the filter on uvicorn's error logger (once)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


EXTRA_FIELD = "x_emulator_extra"


def _drop_first_id(data: Any) -> bool:
    """Remove the ``id`` of the first object (depth first) that has one; whether one was found."""
    if isinstance(data, dict):
        if "id" in data:
            del data["id"]
            return True
        return any(_drop_first_id(value) for value in data.values())
    if isinstance(data, list):
        return any(_drop_first_id(item) for item in data)
    return False


def _add_extra(data: Any, top: bool = True) -> None:
    if isinstance(data, dict):
        if top or "id" in data:
            data[EXTRA_FIELD] = {"note": "a field this client does not know", "values": [1, "two"]}
        for value in list(data.values()):
            _add_extra(value, top=False)
    elif isinstance(data, list):
        for item in data:
            _add_extra(item, top=False)


def _null_items(data: Any) -> None:
    if isinstance(data, dict):
        items = data.get("items")
        if isinstance(items, list) and "total" in data:
            items.insert(0, None)
        for value in data.values():
            _null_items(value)
    elif isinstance(data, list):
        for item in data:
            _null_items(item)


def _edit_json(kind: str, body: bytes) -> bytes:
    data = json.loads(body)
    if kind == "missing_field":
        _drop_first_id(data)
    elif kind == "null_items":
        _null_items(data)
    else:
        _add_extra(data)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def mangle(kind: str, body: bytes, status: int, headers: dict[str, str]) -> Response:
    """A body-bearing fault applied to the response the request would have had."""
    if kind in ("missing_field", "extra_field", "null_items"):
        edited = _edit_json(kind, body) if status == 200 else body
        return Response(edited, status_code=status, headers=headers)
    if kind == "truncated":
        return Response(body[: max(1, len(body) // 2)], status_code=200, headers=headers)
    if kind == "html":
        return Response(HTML_PAGE, status_code=200, headers={"content-type": "text/html; charset=utf-8"})
    return Response(body, status_code=status, headers={**headers, "content-type": "text/html; charset=utf-8"})


def raw_answer(kind: str, headers: dict[str, str]) -> Response:
    """A fault answered instead of the request: an error whose body is not JSON."""
    headers = {**headers, "retry-after": "1"}
    if kind == "plain_text_error":
        return Response(
            b"Too many requests", status_code=429, headers={**headers, "content-type": "text/plain"}
        )
    return Response(b"", status_code=429, headers=headers)
