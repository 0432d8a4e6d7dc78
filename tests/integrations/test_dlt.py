"""The dlt source for real (docs/dlt.md): ``examples/dlt/pipeline.py``, in the dlt environment, loads a
crawl database three times as it changes (:mod:`refresh_scenario`: a first crawl, a refresh of a
changed catalog stopped in the middle of a discography, the rest of that refresh), from SQLite into
DuckDB and from MariaDB into PostgreSQL. After each load the destination holds every row of the
source once (no duplicate key), as last written; each load after the first adds only the rows
written since the load before; rows the crawls never wrote again keep the first load's id; links the
crawl deleted are deleted."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from envs import REPO
from userland import run

import refresh_scenario as scenario
from spotify_catalog import increments
from spotify_catalog.increments import WRITTEN_AT
from spotify_catalog.storage.migrate import open_database

pytestmark = pytest.mark.integrations

EXAMPLE = REPO / "examples" / "dlt" / "pipeline.py"
DUMP = Path(__file__).with_name("dlt_dump.py")
MOMENT = timedelta(microseconds=1)


@dataclass
class Loads:
    """The example pipeline run again and again in one directory, as a daily job would."""

    python: Path
    source_url: str
    destination: str
    work: Path
    env: dict[str, str]

    def load(self) -> dict[str, int]:
        command = [str(self.python), str(EXAMPLE), "--db", self.source_url, "--destination", self.destination]
        done = run(command, cwd=self.work, env=self.env)
        loaded: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
        return loaded

    def destination_rows(self) -> dict[str, list[list[Any]]]:
        spec = self.work / "spec.json"
        spec.write_text(json.dumps({i.name: list(i.key) for i in increments.increments()}))
        rows: dict[str, list[list[Any]]] = json.loads(
            run([str(self.python), str(DUMP), str(spec)], cwd=self.work, env=self.env).stdout
        )
        return rows


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def source_rows(engine: sa.Engine, since: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
    """Each table's rows as the source gives them to a loader, written at or after ``since``."""
    with engine.connect() as conn:
        return {
            i.name: [row for batch in increments.written_since(conn, i, since) for row in batch]
            for i in increments.increments()
        }


def check_destination(loads: Loads, engine: sa.Engine) -> dict[str, list[list[Any]]]:
    """The destination holds each row of the source once, with the source's ``written_at`` (and
    ``gone_at``): returns what it holds."""
    held = loads.destination_rows()
    for increment in increments.increments():
        width = len(increment.key)
        rows = held[increment.name]
        keys = [tuple(r[:width]) for r in rows]
        assert len(keys) == len(set(keys)), f"{increment.name}: duplicate keys"
        got = {tuple(r[:width]): (r[width], r[width + 1]) for r in rows}
        want = {
            tuple(row[k] for k in increment.key): (iso(row[WRITTEN_AT]), iso(row.get("gone_at")))
            for row in source_rows(engine)[increment.name]
        }
        assert got == {tuple(map(_plain, k)): v for k, v in want.items()}, increment.name
    return held


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def expected_loaded(engine: sa.Engine, after: datetime) -> dict[str, int]:
    """The rows a load finds written since the load before, whose rows were all written at ``after``."""
    counts = {name: len(rows) for name, rows in source_rows(engine, after + MOMENT).items()}
    return {name: n for name, n in counts.items() if n}


@pytest.fixture(params=["sqlite-duckdb", "mariadb-postgresql"])
def loads(request: pytest.FixtureRequest, dlt_python: Path, tmp_path: Path) -> Iterator[Loads]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "DESTINATION__"))}
    env.update(
        PYTHONPATH=str(REPO / "src"),
        DLT_DATA_DIR=str(tmp_path / "dlt"),
        RUNTIME__DLTHUB_TELEMETRY="false",
    )
    work = tmp_path / "work"
    work.mkdir()
    if request.param == "sqlite-duckdb":
        yield Loads(dlt_python, f"sqlite:///{tmp_path / 'catalog.db'}", "duckdb", work, env)
        return
    source = str(request.getfixturevalue("mysql_url"))
    destination = sa.engine.make_url(str(request.getfixturevalue("postgres_url")))
    # dlt wants a password; the test server (trust authentication) takes any
    credentials = destination.set(drivername="postgresql", password=destination.password or "unused")
    env["DESTINATION__POSTGRES__CREDENTIALS"] = credentials.render_as_string(hide_password=False)
    yield Loads(dlt_python, source, "postgres", work, env)


def test_each_load_adds_what_the_crawls_wrote_since_the_one_before(loads: Loads, make_emulator: Any) -> None:
    engine = open_database(loads.source_url)
    who = scenario.artists()
    figures = []

    scenario.first(make_emulator, engine, who)
    first = loads.load()
    assert first == {name: len(rows) for name, rows in source_rows(engine).items() if rows}
    held = check_destination(loads, engine)
    first_load = {r[-1] for r in held["albums"]}
    assert len(first_load) == 1
    figures.append(first)

    emu = scenario.refreshed(make_emulator)
    scenario.second(emu, engine, who)
    second = loads.load()
    assert second == expected_loaded(engine, scenario.T0)
    assert second["artist_albums"] == len(scenario.links(engine, scenario.BTS)) + 1  # and Y's: none left
    check_destination(loads, engine)
    figures.append(second)

    scenario.third(emu, engine, who)
    third = loads.load()
    assert third == expected_loaded(engine, scenario.T1)
    held = check_destination(loads, engine)
    x_albums = scenario.links(engine, who.x)
    assert x_albums
    assert {r[-1] for r in held["albums"] if r[0] in x_albums} == first_load  # never loaded again
    assert {r[1] for r in held["artist_albums"] if r[0] == scenario.BTS} == scenario.links(
        engine, scenario.BTS
    )
    assert [r for r in held["artist_albums"] if r[0] == who.y] == []
    figures.append(third)
    print(f"\n{loads.destination}: rows loaded per load: {json.dumps(figures)}")
    engine.dispose()


def test_the_example_says_in_one_line_what_is_wrong_with_its_database(
    dlt_python: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "RUNTIME__DLTHUB_TELEMETRY": "false"}
    command = [str(dlt_python), str(EXAMPLE), "--db", f"sqlite:///{tmp_path / 'missing.db'}"]
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False
    )
    assert (done.returncode, done.stderr.splitlines()) == (
        2,
        [f"Error: no database at sqlite:///{tmp_path / 'missing.db'} (nothing crawled there: check --db)"],
    )
    assert list(tmp_path.iterdir()) == []  # no pipeline, no DuckDB file
