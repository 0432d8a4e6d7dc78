"""A missing extra (docs/install.md): the command that needs it says which in one line and exits 2
before it writes anything; ``--help`` still lists every command; without boto3 a local export works
and ``--to s3://`` names the ``s3`` extra; ``import spotify_catalog.dlt`` names the ``dlt`` extra.
Each case runs the command line in a process where the modules of the extra cannot be imported
(``sys.modules[name] = None``), as in an environment without it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from spotify_catalog import extras


def without(modules: list[str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``spotify-catalog ARGS`` where ``import`` of each of ``modules`` fails."""
    hide = "".join(f"sys.modules[{m!r}] = None; " for m in modules)
    code = f"import sys; {hide}from spotify_catalog.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )


def test_without_pyarrow_export_names_the_parquet_extra_and_help_lists_it(tmp_path: Path) -> None:
    done = without(["pyarrow"], "export", "--db", "sqlite:///c.db", "--to", "lake", cwd=tmp_path)
    assert (done.returncode, done.stderr.splitlines()) == (
        2,
        ["Error: 'export' needs pyarrow (the parquet extra): pip install 'spotify-catalog[parquet]'"],
    )
    listed = without(["pyarrow"], "--help", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "export    needs pyarrow (the parquet extra)" in listed.stdout
    assert "status    " in listed.stdout
    assert list(tmp_path.iterdir()) == []


def test_a_database_url_without_its_driver_names_the_extra(tmp_path: Path) -> None:
    for module, url, extra in (
        ("psycopg", "postgresql://me:secret@127.0.0.1:9/x", "postgresql"),
        ("pymysql", "mariadb://me@127.0.0.1:9/x", "mysql"),
    ):
        done = without([module], "status", "--db", url, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stderr.splitlines() == [
            f"Error: {url.replace('secret', '***')} needs {module} (the {extra} extra): "
            f"pip install 'spotify-catalog[{extra}]'"
        ]


def test_without_boto3_a_local_export_works_and_s3_names_the_s3_extra(tmp_path: Path) -> None:
    from spotify_catalog.storage.migrate import open_database

    engine = open_database(f"sqlite:///{tmp_path / 'c.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO artists (id, name, detail) VALUES ('a1', 'Someone', 'full')")
    engine.dispose()
    hidden = ["boto3", "botocore", "botocore.exceptions"]
    local = without(hidden, "export", "--db", "sqlite:///c.db", "--to", "lake", cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    assert list((tmp_path / "lake" / "artists").glob("dt=*/part-00000.parquet"))
    s3 = without(hidden, "export", "--db", "sqlite:///c.db", "--to", "s3://bucket/lake", cwd=tmp_path)
    assert (s3.returncode, s3.stderr.splitlines()) == (
        2,
        ["Error: --to s3://bucket/lake needs boto3 (the s3 extra): pip install 'spotify-catalog[s3]'"],
    )


@pytest.mark.skipif(importlib.util.find_spec("dlt") is not None, reason="dlt is installed here")
def test_importing_the_dlt_source_without_dlt_names_the_extra() -> None:
    with pytest.raises(ModuleNotFoundError) as raised:
        import spotify_catalog.dlt  # noqa: F401
    assert (
        str(raised.value)
        == "spotify_catalog.dlt needs dlt (the dlt extra): pip install 'spotify-catalog[dlt]'"
    )


@pytest.mark.skipif(importlib.util.find_spec("airflow") is not None, reason="Airflow is installed here")
def test_importing_the_airflow_operators_without_airflow_names_the_extra() -> None:
    with pytest.raises(ModuleNotFoundError) as raised:
        import spotify_catalog.airflow  # noqa: F401
    assert str(raised.value) == (
        "spotify_catalog.airflow needs airflow (the airflow extra): pip install 'spotify-catalog[airflow]'"
    )


def test_needs_names_the_extra_of_a_submodule_and_several_extras() -> None:
    assert extras.needs("demo", "jinja2.environment", ["emulator", "report"]) == (
        "demo needs jinja2 (extras emulator, report): pip install 'spotify-catalog[emulator,report]'"
    )
    assert (
        extras.needs("'x'", "nothing_we_know")
        == "'x' needs the module 'nothing_we_know', which is not installed"
    )
