"""A pytest plugin: the Spotify Web API emulator as fixtures, for anyone's Spotify code (docs/testing.md).

Registered as the ``pytest11`` entry point ``spotify_catalog``, so pytest loads it wherever
``spotify-catalog`` is installed. Loading it imports nothing but pytest: the emulator (the ``emulator``
extra) is imported when a fixture is first used, and a test that uses one without the extra is
skipped with the command that installs it.

Fixtures:

- ``spotify_emulator``: one emulator for the whole run (session scope; settings from the
  ``spotify_emulator_config`` fixture, which a conftest.py may override);
- ``spotify_emulator_factory(**config)``: a fresh emulator with its own settings, stopped at test end;
- ``spotify_env``: points the usual environment variables at ``spotify_emulator`` (and spotipy, when
  installed, at its URLs) for one test; gives the emulator.
- ``spotify_user``: a test user of ``spotify_emulator`` logged in (Authorization Code with PKCE, every
  scope the collection of a user's data needs): ``.access_token``, ``.refresh_token``, ``.user_id``,
  ``.scopes``, ``.headers``; ``spotify_emulator.login(user, scopes)`` logs in others.

In a test that uses one of them, every spotipy auth manager keeps its tokens in memory, whatever cache
handler it is given (an emulator's token in spotipy's ``.cache`` outlives the emulator: every later
test and run sends it to another emulator and gets 401). tekore keeps tokens in memory anyway.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from spotify_catalog.emulator import RunningEmulator, UserLogin

INSTALL_HINT = "pip install 'spotify-catalog[emulator]'"
CLIENT_ID = "emulator-client-id"
CLIENT_SECRET = "emulator-client-secret"  # noqa: S105 - the emulator's well-known test secret


def _emulator_module() -> Any:
    try:
        from spotify_catalog import emulator
    except ImportError as exc:  # starlette/uvicorn missing
        pytest.skip(f"the Spotify emulator needs the emulator extra ({INSTALL_HINT}): {exc}")
    return emulator


def _start(stack: ExitStack, settings: dict[str, Any]) -> RunningEmulator:
    emulator = _emulator_module()
    settings = dict(settings)
    clock = settings.pop("clock", None)
    kwargs = {"clock": clock} if clock is not None else {}
    if isinstance(settings.get("fault_kinds"), list):
        settings["fault_kinds"] = tuple(settings["fault_kinds"])
    running: RunningEmulator = stack.enter_context(
        emulator.serve_in_thread(emulator.EmulatorConfig(**settings), **kwargs)
    )
    return running


@pytest.fixture(scope="session")
def spotify_emulator_config() -> dict[str, Any]:
    """Settings of ``spotify_emulator`` (``EmulatorConfig`` fields); override it in a conftest.py."""
    return {}


@pytest.fixture(scope="session")
def spotify_emulator(spotify_emulator_config: dict[str, Any]) -> Iterator[RunningEmulator]:
    """A running emulator shared by the whole test run: ``.url``, ``.requests()``, ``.reset()``,
    ``.configure(...)``, ``.catalog``, ``.transport()`` (see docs/emulator.md)."""
    with ExitStack() as stack:
        yield _start(stack, spotify_emulator_config)


@pytest.fixture
def spotify_emulator_factory() -> Iterator[Callable[..., RunningEmulator]]:
    """``spotify_emulator_factory(profile="extended", rate_limit=10, ...)``: a fresh emulator of this
    test's own (``EmulatorConfig`` fields, and ``clock=``); every one is stopped at test end."""
    with ExitStack() as stack:

        def start(**config: Any) -> RunningEmulator:
            return _start(stack, config)

        yield start


@pytest.fixture
def spotify_env(spotify_emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> RunningEmulator:
    """Point code at ``spotify_emulator`` for one test: ``SPOTIFY_CLIENT_ID``/``_SECRET``,
    ``SPOTIFY_API_URL``, ``SPOTIFY_TOKEN_URL``, ``SPOTIPY_CLIENT_ID``/``_SECRET``; when spotipy is
    installed, its client-credentials token URL and every new ``spotipy.Spotify``'s prefix too."""
    url = spotify_emulator.url
    config = spotify_emulator.config
    for name, value in {
        "SPOTIFY_CLIENT_ID": config.client_id,
        "SPOTIFY_CLIENT_SECRET": config.client_secret,
        "SPOTIFY_API_URL": f"{url}/v1",
        "SPOTIFY_TOKEN_URL": f"{url}/api/token",
        "SPOTIPY_CLIENT_ID": config.client_id,
        "SPOTIPY_CLIENT_SECRET": config.client_secret,
    }.items():
        monkeypatch.setenv(name, value)
    if importlib.util.find_spec("spotipy") is not None:
        _point_spotipy(url, monkeypatch)
    return spotify_emulator


@pytest.fixture
def spotify_user(spotify_emulator: RunningEmulator) -> UserLogin:
    """The first test user of ``spotify_emulator`` (``alice`` unless ``spotify_emulator_config`` names
    ``users``) logged in through ``GET /authorize`` and the code exchange, for this test: a fresh
    access token and refresh token (the refresh token is rotated at each refresh, as a PKCE login's)."""
    return spotify_emulator.login()


EMULATOR_FIXTURES = frozenset({"spotify_emulator", "spotify_emulator_factory", "spotify_env", "spotify_user"})


@pytest.fixture(autouse=True)
def _spotify_tokens_in_memory(request: pytest.FixtureRequest) -> Iterator[None]:
    """In a test that uses an emulator fixture, spotipy keeps every token in memory
    (:func:`_spotipy_tokens_in_memory`); other tests are left alone."""
    if EMULATOR_FIXTURES.isdisjoint(request.fixturenames) or importlib.util.find_spec("spotipy") is None:
        yield
        return
    with pytest.MonkeyPatch.context() as monkeypatch:
        _spotipy_tokens_in_memory(monkeypatch)
        yield


def _spotipy_tokens_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every spotipy auth manager (client credentials, OAuth, PKCE, ...) gets a ``MemoryCacheHandler``
    of its own instead of the handler it is given or makes: spotipy's default, also when
    ``cache_handler=None`` is passed, is a ``CacheFileHandler`` writing ``.cache`` in the working
    directory. A ``MemoryCacheHandler`` the caller passes is kept."""
    from spotipy import MemoryCacheHandler
    from spotipy.oauth2 import SpotifyAuthBase

    def set_(self: Any, handler: Any) -> None:
        if not isinstance(handler, MemoryCacheHandler):
            handler = MemoryCacheHandler()
        self.__dict__["cache_handler"] = handler  # the instance's own: kept once the patch is undone

    def get(self: Any) -> Any:
        set_(self, self.__dict__.get("cache_handler"))  # an auth manager made before the test began
        return self.__dict__["cache_handler"]

    monkeypatch.setattr(SpotifyAuthBase, "cache_handler", property(get, set_), raising=False)


def _point_spotipy(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """spotipy reads no URL from the environment: its token URL is a class attribute and each client
    sets ``prefix`` in ``__init__``."""
    import spotipy

    monkeypatch.setattr(spotipy.SpotifyClientCredentials, "OAUTH_TOKEN_URL", f"{url}/api/token")
    original = spotipy.Spotify.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.prefix = f"{url}/v1/"

    monkeypatch.setattr(spotipy.Spotify, "__init__", init)


__all__ = [
    "spotify_emulator",
    "spotify_emulator_config",
    "spotify_emulator_factory",
    "spotify_env",
    "spotify_user",
]
