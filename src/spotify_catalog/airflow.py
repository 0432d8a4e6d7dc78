"""Operators for Apache Airflow 3 (the ``airflow`` extra; docs/airflow.md).

- :class:`SpotifyCrawlOperator` crawls in the worker, with the crawl's options as templated fields and
  the credentials of an Airflow connection (``spotify_conn_id``: client id = login, client secret =
  password, an emulator's or another API's origin = host; tuning in its extra). A stop on purpose
  (exit 75: the quota, the daily budget, a long ``Retry-After``) defers the task with a
  :class:`DateTimeTrigger` until the time it names, then runs the same crawl again, which goes on
  where it stopped; only what the crawl calls an error fails the task (exit 1: may be retried; exit
  2, usage or settings: fails without retries).
- :class:`SpotifyExportOperator` exports the database to the lake's partition of the run's logical
  date (``{{ ds }}``), so that a backfill writes the partitions of the dates it covers.
- :class:`SpotifyReportOperator` writes the HTML report.

::

    crawl = SpotifyCrawlOperator(task_id="crawl", db_url="sqlite:///catalog.db", artists=["BTS"])
    export = SpotifyExportOperator(task_id="export", db_url="sqlite:///catalog.db", to="/data/lake")
    crawl >> export

Importing this module without Airflow raises ``ModuleNotFoundError`` with the line that installs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from spotify_catalog import extras, scheduling
from spotify_catalog.crawl import DEFAULT_GROUPS
from spotify_catalog.errors import EXIT_USAGE, SpotifyCatalogError, first_line
from spotify_catalog.redaction import scrub
from spotify_catalog.settings import Settings

try:
    from airflow.providers.standard.triggers.temporal import DateTimeTrigger
    from airflow.sdk import BaseHook, BaseOperator, Context
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, TaskDeferred
except ModuleNotFoundError as exc:
    raise ModuleNotFoundError(extras.needs("spotify_catalog.airflow", exc.name), name=exc.name) from None

DEFAULT_CONN_ID = "spotify_default"
RESUME = "execute_complete"


def failure(exc: SpotifyCatalogError) -> AirflowException:
    """The task's failure for a crawl's error, in one line without a secret: exit 2 (usage, settings)
    fails without retries, exit 1 may be retried."""
    kind = AirflowFailException if exc.exit_code == EXIT_USAGE else AirflowException
    return kind(f"exit {exc.exit_code}: {scrub(first_line(exc))}")


class SpotifyCrawlOperator(BaseOperator):  # type: ignore[misc]
    """``spotify-catalog crawl`` in the worker; returns (to XCom) the run's id, requests and rows
    written. ``untimed_wait``: the deferral of a stop that names no time."""

    template_fields: Sequence[str] = (
        "db_url",
        "db_schema",
        "artists",
        "artists_file",
        "playlists",
        "shows",
        "audiobooks",
        "depth",
        "include_groups",
        "market",
        "refresh_after",
        "mode",
        "daily_budget",
    )
    ui_color = "#1db954"

    def __init__(
        self,
        *,
        db_url: str,
        db_schema: str | None = None,
        artists: Sequence[str] = (),
        artists_file: str | None = None,
        playlists: Sequence[str] = (),
        shows: Sequence[str] = (),
        audiobooks: Sequence[str] = (),
        depth: str = "tracks",
        include_groups: str | Sequence[str] = ",".join(DEFAULT_GROUPS),
        market: str | None = None,
        refresh_after: str = "7d",
        workers: int = 1,
        top_tracks: bool = False,
        mode: str | None = None,
        daily_budget: int | str | None = None,
        spotify_conn_id: str = DEFAULT_CONN_ID,
        untimed_wait: timedelta = scheduling.UNTIMED_WAIT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.db_url, self.db_schema = db_url, db_schema
        self.artists, self.artists_file = list(artists), artists_file
        self.playlists, self.shows, self.audiobooks = list(playlists), list(shows), list(audiobooks)
        self.depth, self.include_groups, self.market = depth, include_groups, market
        self.refresh_after, self.workers, self.top_tracks = refresh_after, workers, top_tracks
        self.mode, self.daily_budget = mode, daily_budget
        self.spotify_conn_id, self.untimed_wait = spotify_conn_id, untimed_wait

    def execute(self, context: Context) -> dict[str, Any]:
        return self._crawl()

    def execute_complete(self, context: Context, event: Any = None) -> dict[str, Any]:
        """The trigger's time has come: the same crawl again, from where it stopped."""
        self.log.info("resuming the crawl (the wait ended at %s)", event)
        return self._crawl()

    def _crawl(self) -> dict[str, Any]:
        try:
            settings = self._settings()
            options = scheduling.crawl_options(
                artists=self.artists,
                artists_file=self.artists_file or None,
                playlists=self.playlists,
                shows=self.shows,
                audiobooks=self.audiobooks,
                depth=self.depth,
                include_groups=self.include_groups,
                market=self.market,
                refresh_after=self.refresh_after,
                workers=self.workers,
                top_tracks=self.top_tracks,
            )
            command = f"airflow task {self.dag_id}.{self.task_id}"
            outcome = scheduling.crawl(
                self.db_url, settings, options, db_schema=self.db_schema, command=command
            )
        except SpotifyCatalogError as exc:
            raise failure(exc) from None
        if isinstance(outcome, scheduling.Stop):
            self.log.info("%s", scrub(scheduling.describe_stop(outcome)))
            raise TaskDeferred(trigger=DateTimeTrigger(moment=outcome.retry_at), method_name=RESUME)
        return {"run_id": outcome.run_id, "requests": outcome.requests, "rows_written": outcome.rows_written}

    def _settings(self) -> Settings:
        """The connection's credentials and settings, this operator's ``mode`` and ``daily_budget``
        over its extra."""
        conn = BaseHook.get_connection(self.spotify_conn_id)
        return scheduling.connection_settings(
            login=conn.login,
            password=conn.password,
            host=conn.host,
            port=conn.port,
            extra=conn.extra_dejson,
            overrides={"mode": self.mode or None, "daily_budget": self.daily_budget or None},
        )


class SpotifyExportOperator(BaseOperator):  # type: ignore[misc]
    """``spotify-catalog export --snapshot-date {{ ds }}``: the run's logical date is the partition;
    returns the rows written per table."""

    template_fields: Sequence[str] = ("db_url", "db_schema", "to", "snapshot_date", "tables")
    ui_color = "#1ed760"

    def __init__(
        self,
        *,
        db_url: str,
        to: str,
        db_schema: str | None = None,
        snapshot_date: str = "{{ ds }}",
        fmt: str = "parquet",
        tables: Sequence[str] | None = None,
        compression: str | None = None,
        with_raw: bool = False,
        include_gone: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.db_url, self.db_schema, self.to, self.snapshot_date = db_url, db_schema, to, snapshot_date
        self.fmt, self.tables, self.compression = fmt, tables, compression
        self.with_raw, self.include_gone = with_raw, include_gone

    def execute(self, context: Context) -> dict[str, int]:
        try:
            day = scheduling.snapshot_date(self.snapshot_date)
            done = scheduling.export_lake(
                self.db_url,
                self.to,
                day,
                db_schema=self.db_schema,
                fmt=self.fmt,
                tables=self.tables,
                compression=self.compression,
                with_raw=self.with_raw,
                include_gone=self.include_gone,
            )
        except SpotifyCatalogError as exc:
            raise failure(exc) from None
        for item in done:
            self.log.info("%s: %d rows -> %s", item.table, item.rows, item.uri)
        return {item.table: item.rows for item in done}


class SpotifyReportOperator(BaseOperator):  # type: ignore[misc]
    """``spotify-catalog report --out OUT``: the HTML report of the database; returns its path."""

    template_fields: Sequence[str] = ("db_url", "db_schema", "out", "title")

    def __init__(
        self,
        *,
        db_url: str,
        out: str,
        db_schema: str | None = None,
        title: str = "spotify-catalog report",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.db_url, self.db_schema, self.out, self.title = db_url, db_schema, out, title

    def execute(self, context: Context) -> str:
        try:
            from spotify_catalog.cli.report import write_report

            write_report(self.db_url, Path(self.out), db_schema=self.db_schema, title=self.title)
        except ModuleNotFoundError as exc:
            raise failure(extras.missing("report", exc)) from None
        except SpotifyCatalogError as exc:
            raise failure(exc) from None
        self.log.info("report: %s", self.out)
        return str(self.out)
