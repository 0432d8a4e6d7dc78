"""A daily Airflow 3 DAG: crawl, then export the day's partition of the lake, then the report
(docs/airflow.md).

    pip install 'spotify-catalog[airflow]'          # Apache Airflow 3, the export and the report
    cp examples/airflow/spotify_catalog_daily.py "$AIRFLOW_HOME/dags/"
    airflow connections add spotify_default --conn-type generic \\
        --conn-login "$SPOTIFY_CLIENT_ID" --conn-password "$SPOTIFY_CLIENT_SECRET"

The credentials are the connection's (``spotify_default``: client id = login, client secret =
password; a host such as ``http://127.0.0.1:8080`` points it at an emulator), never this file's.
Where things go comes from Airflow variables, each with a default:

- ``spotify_catalog_db``: the crawl database (``sqlite:///spotify-catalog.db``);
- ``spotify_catalog_artists_file``: the artists, one name, id, URI or link a line (``artists.txt``);
- ``spotify_catalog_lake``: the lake, a directory or ``s3://bucket/prefix`` (``lake``);
- ``spotify_catalog_reports``: the directory of the reports, one a day (``.``).

A quota or budget stop defers the crawl until the time Spotify gave, then it goes on; the export
writes the partition ``dt=<the run's logical date>``, so a backfill writes the dates it covers.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from spotify_catalog.airflow import SpotifyCrawlOperator, SpotifyExportOperator, SpotifyReportOperator

DB = "{{ var.value.get('spotify_catalog_db', 'sqlite:///spotify-catalog.db') }}"

with DAG(
    dag_id="spotify_catalog_daily",
    schedule="@daily",
    start_date=datetime(2026, 12, 1),
    catchup=False,
    max_active_runs=1,  # one crawl at a time writes into the database
    default_args={"retries": 1, "retry_delay": timedelta(minutes=15)},
    tags=["spotify-catalog"],
):
    crawl = SpotifyCrawlOperator(
        task_id="crawl",
        db_url=DB,
        artists_file="{{ var.value.get('spotify_catalog_artists_file', 'artists.txt') }}",
        depth="tracks",
        refresh_after="7d",  # what is a week old is fetched again; the rest costs no request
    )
    export = SpotifyExportOperator(
        task_id="export",
        db_url=DB,
        to="{{ var.value.get('spotify_catalog_lake', 'lake') }}",
        snapshot_date="{{ ds }}",
    )
    report = SpotifyReportOperator(
        task_id="report",
        db_url=DB,
        out="{{ var.value.get('spotify_catalog_reports', '.') }}/spotify-catalog-{{ ds }}.html",
    )
    crawl >> export >> report
