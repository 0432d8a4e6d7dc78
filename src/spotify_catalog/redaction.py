"""Secrets kept out of every line the program shows: the registry of the secrets it knows, the
credentials of a URL masked, any text scrubbed of the registered secrets.

Two masks: a secret of the program (the client secret, an access token) is shown as :data:`REDACTED`
(its ``repr``, log lines, error messages), a credential masked in a database URL or in a database's
error message as :data:`MASK`. The log filter (:class:`RedactingFilter`) is the safety net of the
log handlers the command line installs.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import TYPE_CHECKING
from urllib.parse import unquote, unquote_plus

if TYPE_CHECKING:  # this module is imported without SQLAlchemy (settings, the client)
    import sqlalchemy as sa

REDACTED = "**********"
MASK = "***"
# query parameters whose value is a credential (names compared in lower case without "_", "-", spaces)
SECRET_PARAMETERS = frozenset(
    {
        "password",
        "pass",
        "pwd",
        "passwd",
        "secret",
        "token",
        "sslpassword",
        "sslkey",
        "privatekey",
        "awssecretaccesskey",
        "passfile",
        "service",
    }
)
_SECRET_WORDS = ("password", "passwd", "secret", "token", "privatekey")  # e.g. client_secret, auth_token
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_PARAMETER = re.compile(r"([^=&]*)=([^&]*)")

_known_secrets: set[str] = set()
_known_lock = threading.Lock()


# ------------------------------------------------------------------------------- the registry


def register_secret(value: str) -> None:
    """Remember a secret (client secret, access token, a database password or key file) so that
    :func:`scrub` hides it from log lines and messages; one of fewer than 3 characters is not
    remembered (it would hide ordinary text)."""
    if len(value) >= 3:
        with _known_lock:
            _known_secrets.add(value)


def scrub(text: str, mask: str = REDACTED) -> str:
    """``text`` with every registered secret replaced by ``mask``, the longest first."""
    with _known_lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, mask)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter: a safety net that hides registered secrets in any log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


# ------------------------------------------------------------------------------------- URLs


def is_secret_parameter(name: str) -> bool:
    """Whether a URL query parameter of that name carries a credential."""
    key = re.sub(r"[^0-9a-z]", "", unquote_plus(name).lower())
    return key in SECRET_PARAMETERS or any(word in key for word in _SECRET_WORDS)


def _secret_spans(text: str) -> list[tuple[int, int]]:
    """Where ``text`` (a URL) holds credentials: the userinfo password as SQLAlchemy reads it (up to the
    next ``@``) and as RFC 3986 reads it (up to the last ``@`` of the authority), and the value of every
    secret query parameter after any ``?``, ``&`` or ``;``. Generous on purpose: masking too much is safe."""
    spans: list[tuple[int, int]] = []
    for scheme in _SCHEME.finditer(text):
        start = scheme.end()
        sa_user = re.match(r"[^:/]*:", text[start:])
        if sa_user is not None:
            colon = start + sa_user.end()
            at = text.find("@", colon)
            if at >= 0:
                spans.append((colon, at))
        authority = re.match(r"[^/?#]*", text[start:])
        userinfo, at_sign, _ = (authority.group() if authority else "").rpartition("@")
        if at_sign and ":" in userinfo:
            spans.append((start + userinfo.index(":") + 1, start + len(userinfo)))
    for index, char in enumerate(text):
        if char in "?&;":
            parameter = _PARAMETER.match(text, index + 1)
            if parameter is not None and is_secret_parameter(parameter.group(1)):
                spans.append(parameter.span(2))
    return spans


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _text(url: str | sa.URL) -> str:
    """A URL as text, its password included (a SQLAlchemy ``URL`` hides it in ``str``)."""
    return url if isinstance(url, str) else url.render_as_string(hide_password=False)


def redact_url(url: str | sa.URL) -> str:
    """The URL with every credential it can carry replaced by :data:`MASK`: the userinfo password and
    the values of the secret query parameters (``password``, ``pwd``, ``sslkey``, ``passfile``,
    ``service`` ... in any case). For messages, ``_runs`` and logs; works on URLs SQLAlchemy cannot
    parse too."""
    text = _text(url)
    pieces: list[str] = []
    last = 0
    for start, end in _merged(_secret_spans(text)):
        pieces += [text[last:start], MASK]
        last = end
    pieces.append(text[last:])
    return "".join(pieces)


def register_url_secrets(url: str | sa.URL) -> None:
    """Register the credentials of a database URL, so that :func:`scrub` hides them should a driver's
    message repeat one (a key file's path, a service name, a password)."""
    text = _text(url)
    values: set[str] = set()
    for start, end in _merged(_secret_spans(text)):
        raw = text[start:end]
        values |= {raw, unquote(raw), unquote_plus(raw)}
    password = None if isinstance(url, str) else url.password
    if password:
        values.add(str(password))
    for value in values:
        register_secret(value)
