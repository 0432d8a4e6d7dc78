"""The example DAG for real (docs/airflow.md): ``airflow dags test`` of
``examples/airflow/spotify_catalog_daily.py`` in Apache Airflow 3 (the ``airflow`` environment of
:mod:`envs`) against the emulator, with a quota small enough that the crawl stops. The quota's
window is 20 s of the emulator's clock, so that the time the 429 gives comes within the test: the
crawl task defers until that time (a ``DateTimeTrigger``), resumes, and goes on where it stopped;
the DAG ends with the day's partition of the lake, the report, and a database identical to one
uninterrupted crawl's, made with the requests of one crawl. A connection without its secret fails
the crawl task at once (exit 2: no retry) and nothing after it runs; each exit code of an error
becomes its failure (exit 2: without retries)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from envs import REPO
from userland import run

from emulated import CLIENT_ID, CLIENT_SECRET, contents, web_requests
from spotify_catalog import scheduling
from spotify_catalog.storage import schema
from spotify_catalog.storage.migrate import open_database

pytestmark = pytest.mark.integrations

DAG_ID = "spotify_catalog_daily"
DAY = "2026-12-01"
QUOTA = 40  # of each bucket: the 66 album requests of the crawl spend it once
WINDOW = 20.0  # seconds of the emulator's rolling quota window


@dataclass
class Airflow:
    """The example DAG run in an Airflow home of its own, with the variables that say where its files
    go (``work``)."""

    python: Path
    work: Path
    env: dict[str, str]

    def dags_test(self, day: str, connection: dict[str, Any]) -> tuple[int, str]:
        """``airflow dags test`` of the day: its exit code (1 when the DAG run failed), its output."""
        env = {**self.env, "AIRFLOW_CONN_SPOTIFY_DEFAULT": json.dumps(connection)}
        command = [str(self.python.parent / "airflow"), "dags", "test", DAG_ID, day]
        done = subprocess.run(
            command, capture_output=True, text=True, cwd=self.work, env=env, timeout=200, check=False
        )
        return done.returncode, done.stdout + done.stderr

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.work / 'catalog.db'}"


@pytest.fixture(scope="module")
def airflow_home(airflow_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of an Airflow home of its own, its database migrated once for the module's
    DAG runs (each of another logical date)."""
    home = tmp_path_factory.mktemp("airflow")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VIRTUAL_ENV", "AIRFLOW", "SPOTIFY_", "PYTHONPATH"))
    }
    env.update(
        PYTHONPATH=str(REPO / "src"),
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "examples" / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
    )
    run([str(airflow_python.parent / "airflow"), "db", "migrate"], cwd=home, env=env, timeout=240)
    return env


@pytest.fixture
def airflow(airflow_python: Path, airflow_home: dict[str, str], tmp_path: Path) -> Airflow:
    """The example DAG's files in ``tmp_path/work``, as the variables say."""
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **airflow_home,
        "XDG_DATA_HOME": str(tmp_path / "data"),  # the account's ledger
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "AIRFLOW_VAR_SPOTIFY_CATALOG_DB": f"sqlite:///{work / 'catalog.db'}",
        "AIRFLOW_VAR_SPOTIFY_CATALOG_ARTISTS_FILE": str(work / "artists.txt"),
        "AIRFLOW_VAR_SPOTIFY_CATALOG_LAKE": str(work / "lake"),
        "AIRFLOW_VAR_SPOTIFY_CATALOG_REPORTS": str(work),
    }
    return Airflow(airflow_python, work, env)


def connection(emu: Any, **changes: Any) -> dict[str, Any]:
    """The ``spotify_default`` connection (Airflow's JSON form): the emulator's origin as host."""
    host, _, port = emu.url.rpartition(":")
    return {
        "conn_type": "generic",
        "login": CLIENT_ID,
        "password": CLIENT_SECRET,
        "host": host,
        "port": int(port),
        **changes,
    }


def runs(db_url: str) -> list[Any]:
    engine = sa.create_engine(db_url)
    r = schema.runs
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(r.c.status, r.c.reason, r.c.started_at, r.c.ended_at, r.c.retry_at, r.c.command)
            .add_columns(r.c.requests)
            .order_by(r.c.id)
        ).all()
    engine.dispose()
    return list(rows)


def lake_rows(lake: Path) -> dict[str, int]:
    """The rows of each table's partitions, by ``dt=`` directory."""
    found: dict[str, int] = {}
    for part in sorted(lake.glob("*/dt=*/part-*.parquet")):
        found[f"{part.parent.parent.name}/{part.parent.name}"] = pq.read_metadata(part).num_rows
    return found


def test_a_quota_stop_defers_the_crawl_until_its_time_then_the_dag_ends(
    airflow: Airflow, make_emulator: Any, tmp_path: Path
) -> None:
    whole = make_emulator()
    artists = [whole.catalog.artist(i).id for i in whole.catalog.by_popularity()[:3]]
    (airflow.work / "artists.txt").write_text("\n".join(artists) + "\n")
    one_go = open_database(f"sqlite:///{tmp_path / 'one-go.db'}")
    settings = scheduling.connection_settings(
        login=CLIENT_ID,
        password=CLIENT_SECRET,
        host=whole.url,
        extra={"ledger": f"sqlite:///{tmp_path}/l.db"},
    )
    reference = scheduling.crawl(str(one_go.url), settings, scheduling.crawl_options(artists=artists))
    assert not isinstance(reference, scheduling.Stop)

    emu = make_emulator(quota=QUOTA, quota_window=WINDOW)
    started = time.monotonic()
    # the ledger counts in the emulator's window, as it counts in Spotify's 24 h
    code, output = airflow.dags_test(DAY, connection(emu, extra={"quota_window": WINDOW}))
    seconds = time.monotonic() - started
    assert code == 0, output[-3000:]
    assert CLIENT_SECRET not in output

    # the bucket parked at Spotify's time; a run resumed then may find it full by the ledger's reckoning
    # (each block counts until its last request's time in flight is over) and defer once more
    stopped, *again, resumed = runs(airflow.db_url)
    assert all(run.status == "stopped" and run.reason.startswith("quota bucket full") for run in again), again
    assert stopped.status == "stopped"
    assert stopped.reason.startswith("quota bucket parked (Spotify answered 429 QUOTA_EXCEEDED)")
    assert stopped.command == f"airflow task {DAG_ID}.crawl"
    wait = (stopped.retry_at - stopped.ended_at).total_seconds()
    assert 0 < wait <= WINDOW + 1
    assert f"deferred until {stopped.retry_at:%Y-%m-%d %H:%M:%S} UTC" in output
    assert "Pausing task as DEFERRED" in output
    assert "resuming the crawl" in output
    assert resumed.status == "done"
    assert resumed.started_at >= (again[-1] if again else stopped).retry_at  # the trigger's time came first
    assert re.search(rf"DagRun Finished: dag_id={DAG_ID}, logical_date={DAY} .*state=success", output)

    engine = sa.create_engine(airflow.db_url)
    assert contents(engine, emu.url) == contents(one_go, whole.url)
    assert web_requests(emu) == reference.requests + 1  # the one the quota refused, sent again
    assert emu.stats()["by_status"]["429"] == 1
    with engine.connect() as conn:
        counts = {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in schema.CATALOG_TABLES
        }
    engine.dispose()
    one_go.dispose()
    exported = lake_rows(airflow.work / "lake")
    assert exported == {f"{name}/dt={DAY}": n for name, n in counts.items()}
    report = airflow.work / f"spotify-catalog-{DAY}.html"
    assert "<html" in report.read_text()[:500].lower()
    print(
        f"\nairflow dags test: {seconds:.0f} s; the crawl stopped after {stopped.requests} requests, "
        f"deferred {wait:.0f} s, resumed and made {resumed.requests}; {web_requests(emu)} requests "
        f"(one 429); rows exported {json.dumps({k: v for k, v in counts.items() if v})}"
    )


def test_a_connection_without_its_secret_fails_the_crawl_and_nothing_after_it(
    airflow: Airflow, emulator: Any
) -> None:
    (airflow.work / "artists.txt").write_text("BTS\n")
    code, output = airflow.dags_test("2026-12-02", connection(emulator, password=None))
    assert code == 1
    assert "exit 2: the connection has no client id (login) or no client secret (password)" in output
    assert re.search(rf"DagRun Finished: dag_id={DAG_ID}, logical_date=2026-12-02 .*state=failed", output)
    assert web_requests(emulator) == 0
    assert not (airflow.work / "catalog.db").exists()
    assert not (airflow.work / "lake").exists()
    assert "up_for_retry" not in output  # exit 2: failed at once, no retry


CHECK_FAILURES = """
import json
from spotify_catalog.airflow import SpotifyCrawlOperator, failure
from spotify_catalog.errors import AuthenticationError, Interrupted, StorageError, UsageError
from spotify_catalog.settings import Secret
from airflow.sdk.exceptions import AirflowFailException

Secret("the-client-secret")  # registered, as the connection's is
errors = [
    AuthenticationError("Invalid client secret the-client-secret"),
    StorageError("database error: gone"),
    UsageError("unknown depth 'all'"),
    Interrupted("interrupted by Ctrl-C; run it again"),
]
made = [failure(e) for e in errors]
crawl = SpotifyCrawlOperator(task_id="crawl", db_url="sqlite:///c.db", artists=["BTS"])
print(json.dumps({
    "failures": [[type(f).__name__, isinstance(f, AirflowFailException), str(f)] for f in made],
    "template_fields": list(crawl.template_fields),
    "conn_id": crawl.spotify_conn_id,
}))
"""


def test_the_crawls_errors_fail_the_task_by_their_exit_code(airflow_python: Path, tmp_path: Path) -> None:
    """Exit 1 (and 130) may be retried, exit 2 fails without retries; one line, the secret hidden."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = run([str(airflow_python), "-c", CHECK_FAILURES], cwd=tmp_path, env=env, timeout=120)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["failures"] == [
        ["AirflowException", False, "exit 1: Invalid client secret **********"],
        ["AirflowException", False, "exit 1: database error: gone"],
        ["AirflowFailException", True, "exit 2: unknown depth 'all'"],
        ["AirflowException", False, "exit 130: interrupted by Ctrl-C; run it again"],
    ]
    templated = {"db_url", "artists", "artists_file", "depth", "market", "daily_budget"}
    assert templated <= set(found["template_fields"])
    assert found["conn_id"] == "spotify_default"
