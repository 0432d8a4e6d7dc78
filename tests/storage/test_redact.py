"""Database URL credentials: ``redact_url`` masks every one a URL can carry (property test over generated
URLs), and ``describe_error`` hides them when a driver's message repeats one."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, quote_plus

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from spotify_catalog.redaction import MASK, redact_url, register_url_secrets
from spotify_catalog.storage.engine import create_engine, describe_error

MARK = "§"  # every generated secret starts and ends with it; nothing else in a generated URL has it
SECRET_NAMES = [
    "password",
    "pass",
    "pwd",
    "passwd",
    "secret",
    "token",
    "sslpassword",
    "sslkey",
    "private_key",
    "aws_secret_access_key",
    "passfile",
    "service",
]
PLAIN_NAMES = ["sslmode", "charset", "connect_timeout", "application_name", "options", "target_session_attrs"]

_printable = st.characters(codec="utf-8", exclude_characters=MARK, exclude_categories=["Cs"])
plain_text = st.text(_printable, min_size=1, max_size=12)
hosts = st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?", fullmatch=True) | st.sampled_from(
    ["127.0.0.1", "localhost", "db.example.com"]
)
schemes = st.sampled_from(
    ["postgresql", "postgresql+psycopg", "postgres", "mysql+pymysql", "mariadb+pymysql", "mssql+pyodbc"]
) | st.from_regex(r"[a-z][a-z0-9]{0,8}(\+[a-z0-9]{1,8})?", fullmatch=True)
secrets = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=0, max_size=20).map(
    lambda body: MARK + body + MARK
)
raw_secrets = secrets.filter(lambda s: "&" not in s and "@" not in s)  # as typed, unencoded


def _any_case(name: str) -> st.SearchStrategy[str]:
    return st.tuples(*(st.sampled_from([c.lower(), c.upper()]) for c in name)).map("".join)


secret_names = st.sampled_from(SECRET_NAMES).flatmap(_any_case)


def _leaked(text: str) -> bool:
    lowered = text.lower()
    return MARK in text or quote(MARK).lower() in lowered or MARK.encode("unicode_escape").decode() in lowered


@st.composite
def urls(draw: Any) -> tuple[str, dict[str, Any]]:
    """A database URL with credentials in random places, and what it should still show."""
    scheme, host = draw(schemes), draw(hosts)
    port = draw(st.none() | st.integers(1, 65535))
    database = draw(st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True))
    user = draw(st.none() | plain_text)
    password = draw(st.none() | secrets)
    encode = draw(st.booleans())
    userinfo = ""
    if user is not None or password is not None:
        userinfo = quote(user or "", safe="")
        if password is not None:
            userinfo += ":" + (quote(password, safe="") if encode else draw(raw_secrets))
        userinfo += "@"
    plain = draw(
        st.lists(st.tuples(st.sampled_from(PLAIN_NAMES), plain_text), max_size=3, unique_by=lambda p: p[0])
    )
    hidden = draw(st.lists(st.tuples(secret_names, secrets), max_size=4, unique_by=lambda p: p[0].lower()))
    if password is None and not hidden:
        hidden = [(draw(secret_names), draw(secrets))]
    hidden = [(name, value if encode else draw(raw_secrets)) for name, value in hidden]
    params = draw(st.permutations([*plain, *hidden]))
    query = "&".join(
        f"{name}={quote_plus(value) if encode or (name, value) in plain else value}" for name, value in params
    )
    authority = host + (f":{port}" if port is not None else "")
    url = f"{scheme}://{userinfo}{authority}/{database}" + (f"?{query}" if query else "")
    return url, {"host": host, "port": port, "database": database, "plain": dict(plain), "encoded": encode}


@settings(max_examples=400, deadline=None)
@given(urls())
def test_no_credential_survives_redact(case: tuple[str, dict[str, Any]]) -> None:
    url, expected = case
    shown = redact_url(url)
    assert not _leaked(shown), (url, shown)
    if not expected["encoded"]:
        return
    # a well-formed URL stays the same URL, credentials aside
    parsed = sa.engine.make_url(shown)
    assert (parsed.host, parsed.port, parsed.database) == (
        expected["host"],
        expected["port"],
        expected["database"],
    )
    for name, value in expected["plain"].items():
        assert parsed.query[name] == value
    for name, value in parsed.query.items():
        if name not in expected["plain"]:
            assert value == MASK
    original = sa.engine.make_url(url)
    assert not _leaked(redact_url(original))  # a SQLAlchemy URL object (engine.url) too
    assert not _leaked(repr(sa.engine.make_url(shown)))


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=60), secrets, secret_names)
def test_any_text_after_a_question_mark_or_ampersand_is_masked(prefix: str, secret: str, name: str) -> None:
    """Whatever precedes it (a URL SQLAlchemy cannot parse, a second URL), a secret parameter is masked."""
    for separator in "?&":
        assert not _leaked(
            redact_url(f"{prefix.replace(MARK, '')}{separator}{name}={secret.replace('&', '')}")
        )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql+psycopg://postgres@127.0.0.1:5432/db?password=S3cret",
            "postgresql+psycopg://postgres@127.0.0.1:5432/db?password=***",
        ),
        (
            "mysql+pymysql://root@127.0.0.1:3306/db?charset=utf8mb4&PassWord=S3cret&pwd=S3cret",
            "mysql+pymysql://root@127.0.0.1:3306/db?charset=utf8mb4&PassWord=***&pwd=***",
        ),
        ("postgresql://u:S3cret@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:p%40S3cret@h/db?sslmode=require", "postgresql://u:***@h/db?sslmode=require"),
        (
            "postgresql://h/db?sslkey=/home/me/.ssl/S3cret.key&passfile=/home/me/.pgpass&service=S3cret",
            "postgresql://h/db?sslkey=***&passfile=***&service=***",
        ),
        (
            "postgresql://h/db?AWS_SECRET_ACCESS_KEY=S3cret&Private_Key=S3cret",
            "postgresql://h/db?AWS_SECRET_ACCESS_KEY=***&Private_Key=***",
        ),
        ("postgresql://u:S3c@ret@h/db", "postgresql://u:***@h/db"),  # an unencoded @: all of it hidden
        ("postgresql://u:S3cret@h:notaport/db", "postgresql://u:***@h:notaport/db"),  # SQLAlchemy refuses it
        ("sqlite:////tmp/a:b@c.db", "sqlite:////tmp/a:b@c.db"),  # a path, not credentials
        ("sqlite:///catalog.db", "sqlite:///catalog.db"),
    ],
)
def test_redact_examples(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_driver_message_repeating_a_credential_is_scrubbed() -> None:
    url = "postgresql+psycopg://u@127.0.0.1:1/db?sslkey=/srv/keys/Very-Private.key&service=S3cretSvcXYZ"
    register_url_secrets(url)
    message = 'connection failed: could not open private key file "/srv/keys/Very-Private.key": no such file'
    assert (
        describe_error(Exception(message))
        == 'connection failed: could not open private key file "***": no such file'
    )
    assert "S3cretSvcXYZ" not in describe_error(Exception('definition of service "S3cretSvcXYZ" not found'))


def test_a_url_sqlalchemy_cannot_parse_is_refused_without_its_password() -> None:
    from spotify_catalog.errors import UsageError

    for url in ("postgresql://u:S3cretXYZ@h:notaport/db", "postgresql://u@h:notaport/db?password=S3cretXYZ"):
        with pytest.raises(UsageError, match="not a database URL") as caught:
            create_engine(url)
        assert "S3cretXYZ" not in str(caught.value)


def test_a_short_database_password_is_hidden_from_log_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """One registry of secrets: what ``describe_error`` hides, the log filter hides too, a password of
    3-5 characters included."""
    import logging

    from spotify_catalog.cli import configure_logging

    register_url_secrets("mysql+pymysql://root:Qz7w@127.0.0.1:3306/catalog")
    assert describe_error(Exception("access denied for Qz7w")) == "access denied for ***"
    configure_logging(2, False)
    logging.getLogger("spotify_catalog.test").warning("a driver said %s", "password Qz7w refused")
    err = capsys.readouterr().err
    assert "a driver said password ********** refused" in err
    assert "Qz7w" not in err
