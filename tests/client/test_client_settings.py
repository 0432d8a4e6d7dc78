"""Settings: precedence of flags, environment, settings file and .env; the redacted secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from spotify_catalog.errors import ConfigError
from spotify_catalog.settings import DEFAULT_API_URL, ApiMode, Secret, Settings


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_precedence_flags_environment_file_dotenv(tmp_path: Path) -> None:
    config = _write(
        tmp_path / "settings.toml",
        '[spotify]\nclient_id = "from-file"\nclient_secret = "file-secret"\nmax_wait = 30\nrate = 4\n',
    )
    dotenv = _write(
        tmp_path / ".env",
        "SPOTIFY_CLIENT_ID=from-dotenv\nSPOTIFY_CLIENT_SECRET=dotenv-secret\n"
        "SPOTIFY_TOKEN_URL=http://dotenv/token\nSPOTIFY_CATALOG_RATE=9\n",
    )
    environ = {"SPOTIFY_CLIENT_ID": "from-env", "SPOTIFY_CATALOG_MODE": "extended"}
    settings = Settings.load(
        {"max_wait": 5, "client_id": None}, config_path=config, environ=environ, dotenv_path=dotenv
    )
    assert settings.client_id == "from-env"  # environment beats file and .env; a None flag is ignored
    assert settings.client_secret == Secret("file-secret")  # file beats .env
    assert settings.token_url == "http://dotenv/token"  # only .env has it
    assert settings.max_wait == 5.0  # flag beats file
    assert settings.rate == 4.0  # file beats .env
    assert settings.mode is ApiMode.EXTENDED
    assert settings.api_url == DEFAULT_API_URL


def test_config_path_from_environment(tmp_path: Path) -> None:
    config = _write(tmp_path / "c.toml", '[spotify]\napi_url = "http://127.0.0.1:9/v1/"\nmode = "auto"\n')
    settings = Settings.load(environ={"SPOTIFY_CATALOG_CONFIG": str(config)}, dotenv_path=tmp_path / "none")
    assert settings.api_url == "http://127.0.0.1:9/v1"
    assert settings.mode is None


def test_dotenv_does_not_touch_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPOTIFY_CLIENT_ID", raising=False)
    _write(tmp_path / ".env", "SPOTIFY_CLIENT_ID=dot\n")
    assert Settings.load().client_id == "dot"
    import os

    assert "SPOTIFY_CLIENT_ID" not in os.environ


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"max_wait": "soon"}, "max_wait"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"mode": "turbo"}, "mode"),
        ({"api_url": "ftp://x"}, "api_url"),
        ({"nonsense": 1}, "nonsense"),
        ({"account": " "}, "account"),
        ({"account": "x" * 256}, "account"),
        ({"ledger": ""}, "ledger"),
    ],
)
def test_bad_values_are_config_errors(overrides: dict[str, object], fragment: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Settings.load(overrides, environ={}, dotenv_path=tmp_path / "none")


def test_the_account_and_its_ledger(tmp_path: Path) -> None:
    """The account defaults to the client id; both it and the ledger come from flags, the environment or
    the settings file; the ledger URL (it may hold a password) is not in the settings' repr."""
    none = tmp_path / "none"
    assert Settings.load({"client_id": "app-1"}, environ={}, dotenv_path=none).account_name() == "app-1"
    assert Settings.load(environ={}, dotenv_path=none).account_name() is None
    environ = {"SPOTIFY_CATALOG_ACCOUNT": "team", "SPOTIFY_CATALOG_LEDGER": "postgresql://u:pw9@h/l"}
    from_env = Settings.load({"client_id": "app-1"}, environ=environ, dotenv_path=none)
    assert (from_env.account_name(), from_env.ledger) == ("team", "postgresql://u:pw9@h/l")
    assert "pw9" not in repr(from_env)
    config = _write(
        tmp_path / "settings.toml", '[spotify]\naccount = "file-team"\nledger = "sqlite:///l.db"\n'
    )
    from_file = Settings.load({"account": "flag-team"}, config_path=config, environ={}, dotenv_path=none)
    assert (from_file.account_name(), from_file.ledger) == ("flag-team", "sqlite:///l.db")
    assert Settings.load(config_path=config, environ={}, dotenv_path=none).account_name() == "file-team"


def test_bad_settings_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        Settings.load(config_path=tmp_path / "missing.toml", environ={})
    broken = _write(tmp_path / "broken.toml", "[spotify\n")
    with pytest.raises(ConfigError, match="cannot read"):
        Settings.load(config_path=broken, environ={})
    typo = _write(tmp_path / "typo.toml", '[spotify]\nclient_secrett = "x"\n')
    with pytest.raises(ConfigError, match="client_secrett"):
        Settings.load(config_path=typo, environ={})


def test_missing_credentials_name_the_variables(tmp_path: Path) -> None:
    settings = Settings.load(environ={"SPOTIFY_CLIENT_ID": "id"}, dotenv_path=tmp_path / "none")
    with pytest.raises(ConfigError, match="SPOTIFY_CLIENT_SECRET") as info:
        settings.credentials()
    assert "SPOTIFY_CLIENT_ID" not in str(info.value)
    with pytest.raises(ConfigError, match="SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET"):
        Settings.load(environ={}, dotenv_path=tmp_path / "none").credentials()


def test_secret_is_redacted_everywhere(tmp_path: Path) -> None:
    secret_text = "s3cr3t-value-123"
    settings = Settings.load(
        {"client_id": "id", "client_secret": secret_text}, environ={}, dotenv_path=tmp_path / "x"
    )
    shown = [
        repr(settings),
        str(settings),
        f"{settings.client_secret}",
        repr(settings.client_secret),
        str(settings.client_secret),
    ]
    assert all(secret_text not in text for text in shown)
    assert settings.credentials()[1].reveal() == secret_text
    with pytest.raises(ConfigError) as info:
        Settings.load({"client_secret": secret_text, "timeout": "x"}, environ={})
    assert secret_text not in str(info.value)


def test_redacting_filter_hides_registered_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from spotify_catalog.cli import configure_logging
    from spotify_catalog.redaction import scrub

    secret = Secret("another-s3cret-value")
    assert scrub("x another-s3cret-value y") == "x ********** y"
    configure_logging(2, False)
    logging.getLogger("spotify_catalog.test").warning("careless %s line", secret.reveal())
    err = capsys.readouterr().err
    assert "careless ********** line" in err
    assert secret.reveal() not in err
