"""Fixtures of the engines suite: the tools (Java, pyspark, DuckDB + httpfs), the lake they read, an S3
server (moto) on 127.0.0.1, and each engine's reading of the lake, done once per session.

The suite runs when ``SPOTIFY_CATALOG_REQUIRE_ENGINES=1`` (set by ``make test-engines`` and ``.ci/run``):
it installs what is missing, and a tool it cannot have is a failure. Otherwise (a plain ``make test``)
it skips with one line saying why.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import engine_lake
import pytest
import tools

HERE = Path(__file__).parent

CHECK_TIMEOUT = 420  # seconds for the three checks side by side (under two minutes on the shared 2-core box)
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


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
        "releases": engine_lake.RELEASES,
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


@dataclass
class Check:
    """One engine's check, started in the background: its script in its own environment."""

    name: str
    process: subprocess.Popen[str]
    out: Path

    @classmethod
    def start(
        cls, name: str, python: Path, script: str, args: list[str], work: Path, env: dict[str, str]
    ) -> Check:
        inherited = ("PYTHON", "PYSPARK", "SPARK", "VIRTUAL_ENV")
        clean = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}
        out = work / "result.json"
        command = [str(python), str(HERE / script), *args, str(out)]
        with open(work / "output.log", "w") as log:  # a file, not a pipe: nothing waits on a reader
            process = subprocess.Popen(
                command, cwd=work, env={**clean, **env}, stdout=log, stderr=subprocess.STDOUT, text=True
            )
        return cls(name, process, out)

    def result(self, deadline: float) -> dict[str, Any]:
        """Wait (until the ``time.monotonic()`` ``deadline``) for the JSON result; fail with the engine's
        own error lines."""
        try:
            self.process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"{self.name}: no result within {CHECK_TIMEOUT} s")
        if self.process.returncode != 0:
            output = (self.out.parent / "output.log").read_text(errors="replace")
            errors = [
                line.strip()
                for line in output.splitlines()
                if ("Error" in line or "Exception" in line) and not line.lstrip().startswith("at ")
            ]
            detail = " | ".join(errors[-5:]) or output[-2000:]
            pytest.fail(f"{self.name} failed (exit {self.process.returncode}): {detail}")
        result: dict[str, Any] = json.loads(self.out.read_text())
        return result


@pytest.fixture(scope="session")
def checks(
    engine_tools: tools.Tools, lake: Any, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Check]]:
    """The three checks, run side by side (each is mostly waiting on one JVM or on S3):

    - ``spark``: the printed Spark SQL DDL for the local lake, a plain Spark session, JVM in Tokyo;
    - ``athena``: the printed Athena DDL for the S3 lake with ``s3://`` rewritten to the local copy, a
      Spark session with Hive support (Derby), JVM in New York; read by Spark's and by Hive's reader;
    - ``duckdb``: the printed DuckDB DDL for the S3 lake, DuckDB with httpfs against the moto server.
    """
    started: dict[str, Check] = {}
    spark_env = {"SPARK_LOCAL_IP": "127.0.0.1"}
    work = tmp_path_factory.mktemp("spark")
    (work / "ddl.sql").write_text(printed_ddl(str(lake.root), "spark"))
    started["spark"] = Check.start(
        "spark", engine_tools.spark_python, "spark_check.py", ["spark", "ddl.sql", str(_spec(work))], work,
        {**spark_env, "TZ": "Asia/Tokyo"},
    )  # fmt: skip
    work = tmp_path_factory.mktemp("athena")
    ddl = printed_ddl(lake.s3, "athena")
    assert lake.s3 + "/" in ddl
    (work / "ddl.sql").write_text(ddl.replace(lake.s3 + "/", lake.root.as_uri() + "/"))
    started["athena"] = Check.start(
        "athena", engine_tools.spark_python, "spark_check.py", ["athena", "ddl.sql", str(_spec(work))], work,
        {**spark_env, "TZ": "America/New_York"},
    )  # fmt: skip
    work = tmp_path_factory.mktemp("duckdb")
    (work / "ddl.sql").write_text(printed_ddl(lake.s3, "duckdb"))
    s3 = {
        "endpoint": s3_endpoint.removeprefix("http://"),
        "key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "secret": S3_ENV["AWS_SECRET_ACCESS_KEY"],
        "region": S3_ENV["AWS_DEFAULT_REGION"],
    }
    started["duckdb"] = Check.start(
        "duckdb", engine_tools.duckdb_python, "duckdb_check.py", ["ddl.sql", str(_spec(work, s3=s3))], work,
        {"HOME": str(work)},  # no ~/.duckdb from elsewhere: httpfs comes from its package only
    )  # fmt: skip
    try:
        yield started
    finally:
        for check in started.values():
            if check.process.poll() is None:
                check.process.kill()
                check.process.wait()


@pytest.fixture(scope="session")
def deadline(checks: dict[str, Check]) -> float:
    return time.monotonic() + CHECK_TIMEOUT


@pytest.fixture(scope="session")
def spark_read(checks: dict[str, Check], deadline: float) -> dict[str, Any]:
    return checks["spark"].result(deadline)


@pytest.fixture(scope="session")
def athena_read(checks: dict[str, Check], deadline: float) -> dict[str, Any]:
    return checks["athena"].result(deadline)


@pytest.fixture(scope="session")
def duckdb_read(checks: dict[str, Check], deadline: float) -> dict[str, Any]:
    return checks["duckdb"].result(deadline)
