"""Access tokens: fetched on first use, cached, renewed before they expire.

:class:`TokenManager` is shared by every thread of a client: one lock makes concurrent callers wait
for a single token request. A token is renewed ``RENEW_MARGIN`` seconds before ``expires_in`` runs
out, and on a 401 the caller hands the refused token back with :meth:`TokenManager.invalidate`.
What a token request sends, what its refusals mean and what the client may ask with the token is its
:class:`Grant`: :class:`ClientCredentials` here, a user's refresh token in
:class:`spotify_catalog.users.UserGrant`. Tokens and secrets are never logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, Protocol

import httpx

from spotify_catalog.errors import APIError, AuthenticationError, InvalidResponseError, SpotifyCatalogError
from spotify_catalog.redaction import register_secret
from spotify_catalog.retries import (
    Clock,
    OutageTracker,
    Retryable,
    RetryPolicy,
    Sleep,
    call_with_retries,
    json_body,
    network_failure,
    safe_url,
)
from spotify_catalog.settings import Secret

log = logging.getLogger(__name__)

RENEW_MARGIN = 60.0
"""Seconds before expiry at which a token is renewed (at most half its lifetime)."""

_MESSAGES = {
    "Invalid client": "Invalid client: Spotify does not know this client id, check SPOTIFY_CLIENT_ID",
    "Invalid client secret": "Invalid client secret: check SPOTIFY_CLIENT_SECRET",
}


class Grant(Protocol):
    """What a :class:`TokenManager` asks the token endpoint with, and what the client may ask the Web
    API with the tokens it gets."""

    def token_request(self) -> tuple[dict[str, str], httpx.Auth | None]:
        """The form of a token request and its authentication (``None``: none)."""

    def accepted(self, answer: Mapping[str, Any]) -> None:
        """A token answer came (its ``access_token`` already registered as a secret): keep what it
        changes (a rotated refresh token)."""

    def refused(self, response: httpx.Response, url: str) -> SpotifyCatalogError:
        """The error for a 4xx of the token endpoint."""

    def check(self, path: str) -> None:
        """Raise before a Web API request to ``path`` that this grant cannot make (a scope missing)."""

    def forbidden(self, error: APIError, path: str) -> SpotifyCatalogError:
        """The error to raise for a 403 of the Web API on ``path`` (``error`` when nothing better)."""


class ClientCredentials:
    """The Client Credentials grant: the client id and secret, Basic auth; no user, every catalog route."""

    def __init__(self, client_id: str, client_secret: Secret) -> None:
        self._auth = httpx.BasicAuth(client_id, client_secret.reveal())

    def __repr__(self) -> str:
        return "ClientCredentials()"

    def token_request(self) -> tuple[dict[str, str], httpx.Auth | None]:
        return {"grant_type": "client_credentials"}, self._auth

    def accepted(self, answer: Mapping[str, Any]) -> None:
        return None

    def refused(self, response: httpx.Response, url: str) -> SpotifyCatalogError:
        return refusal(response, url)

    def check(self, path: str) -> None:
        return None

    def forbidden(self, error: APIError, path: str) -> SpotifyCatalogError:
        return error


class TokenManager:
    """Hands out a valid access token; thread-safe."""

    def __init__(
        self,
        http: httpx.Client,
        token_url: str,
        grant: Grant,
        *,
        clock: Clock,
        sleep: Sleep,
        policy: RetryPolicy | None = None,
        outage: OutageTracker | None = None,
    ) -> None:
        self._http = http
        self._url = token_url
        self.grant = grant
        self._clock = clock
        self._sleep = sleep
        self._policy = policy or RetryPolicy()
        self._outage = outage
        """Shared with the client: token requests that get no answer count toward an outage."""
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self._recent: dict[str, float] = {}  # the last few tokens -> when each was due for renewal
        self.tokens_fetched = 0
        """Token requests that succeeded."""

    def __repr__(self) -> str:
        return f"TokenManager(token_url={safe_url(self._url)!r}, tokens_fetched={self.tokens_fetched})"

    def token(self) -> str:
        """A token valid for a while yet; fetches one when there is none or it is about to expire."""
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                self._fetch()
            assert self._token is not None
            return self._token

    def seed(self, token: str, expires_in: float) -> None:
        """Start from ``token``, valid ``expires_in`` seconds from now (a login's first token)."""
        register_secret(token)
        with self._lock:
            self._keep(token, float(expires_in))

    def _keep(self, token: str, expires_in: float) -> None:
        self._token = token
        self._renew_at = self._clock() + expires_in - min(RENEW_MARGIN, expires_in / 2)
        self._recent = {**dict(list(self._recent.items())[-3:]), token: self._renew_at}

    def invalidate(self, token: str) -> None:
        """The API refused ``token`` (401): the next :meth:`token` call fetches a new one.

        A token already replaced by another thread is left alone, so a burst of 401s costs one renewal.
        """
        with self._lock:
            if self._token == token:
                self._token = None

    def outlived(self, token: str) -> bool:
        """Whether ``token`` is due for renewal by this manager's clock: a 401 for it then says
        nothing about the credentials (it expired while a request waited), so renewing again is right."""
        with self._lock:
            renew_at = self._recent.get(token)
        return renew_at is not None and self._clock() >= renew_at

    def _fetch(self) -> None:
        url = safe_url(self._url)
        what = f"POST {url}"

        def attempt() -> tuple[str, float, dict[str, Any]]:
            started = self._clock()
            form, auth = self.grant.token_request()
            try:
                response = self._http.post(self._url, data=form, auth=auth or httpx.USE_CLIENT_DEFAULT)
            except httpx.HTTPError as exc:
                raise network_failure(exc, what, url, outage=self._outage, started=started) from None
            if self._outage is not None:
                self._outage.answered()
            if response.status_code >= 500 or response.status_code == 429:
                error = AuthenticationError(f"token endpoint answered HTTP {response.status_code}", url=url)
                raise Retryable("transient", f"token endpoint HTTP {response.status_code}", error)
            if response.status_code != 200:
                raise self.grant.refused(response, url)
            data = json_body(response, url)
            token = data.get("access_token")
            expires_in = data.get("expires_in", 3600)
            if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
                raise InvalidResponseError("token response without access_token/expires_in", url=url)
            return token, float(expires_in), data

        token, expires_in, answer = call_with_retries(
            attempt,
            policy=self._policy,
            clock=self._clock,
            sleep=self._sleep,
            what=what,
            outage=self._outage,
        )
        register_secret(token)
        self.grant.accepted(answer)
        self._keep(token, expires_in)
        self.tokens_fetched += 1
        log.info("access token obtained, expires in %.0f s", expires_in)


def token_error(response: httpx.Response) -> tuple[str | None, str]:
    """The ``error`` and ``error_description`` of a token endpoint's refusal (``None``, ``""`` when
    its body is not that JSON)."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return None, ""
    return str(data.get("error") or "") or None, str(data.get("error_description") or "")


def refusal(response: httpx.Response, url: str) -> AuthenticationError:
    """The error for a 4xx of the token endpoint, saying which credential was refused."""
    error, description = token_error(response)
    if error is None and not description:
        return AuthenticationError(
            f"token endpoint refused the request (HTTP {response.status_code})", url=url
        )
    if description in _MESSAGES:
        message = _MESSAGES[description]
    elif error == "invalid_client":
        message = (
            "Invalid client: no or unusable credentials (check SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET)"
        )
    else:
        message = f"token endpoint refused the request: {description or error or response.status_code}"
    return AuthenticationError(message, error=error, url=url)
