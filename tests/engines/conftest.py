"""Fixtures of the engines suite: the tools (Java, pyspark, DuckDB + httpfs), the lake they read, an S3
server (moto) on 127.0.0.1, and each engine's reading of the lake, done once per session.

Without the tools the suite skips with one line, unless ``SPOTIFY_CATALOG_REQUIRE_ENGINES=1`` (set by
``make test-engines`` and ``.ci/run``): then it installs what is missing, and a tool it cannot have is a
failure.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import engine_lake
import tools

HERE = Path(__file__).parent

CHECK_TIMEOUT = 240  # seconds for one engine's whole check
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.engines)


@pytest.fixture(scope="session")
def engine_tools() -> tools.Tools:
    try:
        return tools.prepare(install=tools.required())
    except tools.Missing as exc:
        if tools.required():
            pytest.fail(f"engines: {exc} (SPOTIFY_CATALOG_REQUIRE_ENGINES=1)")
        pytest.skip(f"engines: {exc}")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def lake(engine_tools: tools.Tools, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    import boto3

    bucket = f"engines-{uuid.uuid4().hex[:8]}"
    env = {**S3_ENV, "AWS_ENDPOINT_URL": s3_endpoint, "AWS_ENDPOINT_URL_S3": None, "AWS_PROFILE": None}
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name=S3_ENV["AWS_DEFAULT_REGION"],
        aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
    ).create_bucket(Bucket=bucket)
    return engine_lake.build(tmp_path_factory.mktemp("engines"), f"s3://{bucket}/lake", env)


def _spec(work: Path, **extra: Any) -> Path:
    spec = {
        "work": str(work),
        "tables": engine_lake.TABLES,
        "timestamps": engine_lake.timestamp_columns(),
        "lists": engine_lake.LISTS,
        "join": engine_lake.JOIN,
        **extra,
    }
    path = work / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def printed_ddl(to: str, dialect: str) -> str:
    from click.testing import CliRunner

    from spotify_catalog.cli import main

    result = CliRunner().invoke(main, ["export", "--to", to, "--print-ddl", dialect])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def run_check(python: Path, script: str, args: list[str], work: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run an engine's check script in its own environment; its JSON result."""
    out = work / "result.json"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYSPARK", "SPARK", "VIRTUAL_ENV"))}
    try:
        done = subprocess.run(
            [str(python), str(HERE / script), *args, str(out)],
            cwd=work,
            env={**clean, **env},
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{script} {args[0]} took more than {CHECK_TIMEOUT} s")
    if done.returncode != 0:
        errors = [
            line.strip()
            for line in done.stderr.splitlines()
            if ("Error" in line or "Exception" in line) and not line.lstrip().startswith("at ")
        ]
        pytest.fail(f"{script} failed (exit {done.returncode}): {' | '.join(errors[-5:]) or done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


@pytest.fixture(scope="session")
def spark_read(engine_tools: tools.Tools, lake: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The printed Spark SQL DDL for the local lake, run in a plain Spark session (JVM in Tokyo)."""
    work = tmp_path_factory.mktemp("spark")
    (work / "ddl.sql").write_text(printed_ddl(str(lake.root), "spark"))
    env = {"TZ": "Asia/Tokyo", "SPARK_LOCAL_IP": "127.0.0.1"}
    return run_check(engine_tools.spark_python, "spark_check.py", ["spark", "ddl.sql", str(_spec(work))], work, env)


@pytest.fixture(scope="session")
def athena_read(engine_tools: tools.Tools, lake: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The printed Athena DDL for the S3 lake, its ``s3://`` location rewritten to the local copy, run in
    a Spark session with Hive support (JVM in New York)."""
    work = tmp_path_factory.mktemp("athena")
    ddl = printed_ddl(lake.s3, "athena")
    assert lake.s3 + "/" in ddl
    (work / "ddl.sql").write_text(ddl.replace(lake.s3 + "/", lake.root.as_uri() + "/"))
    env = {"TZ": "America/New_York", "SPARK_LOCAL_IP": "127.0.0.1"}
    return run_check(engine_tools.spark_python, "spark_check.py", ["athena", "ddl.sql", str(_spec(work))], work, env)


@pytest.fixture(scope="session")
def duckdb_read(
    engine_tools: tools.Tools, lake: Any, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The printed DuckDB DDL for the S3 lake, run by DuckDB with httpfs against the moto server."""
    work = tmp_path_factory.mktemp("duckdb")
    (work / "ddl.sql").write_text(printed_ddl(lake.s3, "duckdb"))
    s3 = {
        "endpoint": s3_endpoint.removeprefix("http://"),
        "key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "secret": S3_ENV["AWS_SECRET_ACCESS_KEY"],
        "region": S3_ENV["AWS_DEFAULT_REGION"],
    }
    env = {"HOME": str(work)}  # no ~/.duckdb from elsewhere: httpfs comes from its package only
    return run_check(engine_tools.duckdb_python, "duckdb_check.py", ["ddl.sql", str(_spec(work, s3=s3))], work, env)
