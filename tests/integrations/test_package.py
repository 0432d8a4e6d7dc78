"""spotify-catalog as a user installs it (docs/install.md): ``python -m build`` in a clone makes the
wheel and the sdist, each carrying what it must and nothing of the developer's checkout; the wheel
installed into an empty virtual environment runs ``spotify-catalog demo`` once its extras are added,
and before that every command whose extra is missing says which in one line; the other install lines
(``pipx install .``, ``pip install '.[postgresql]'``, an extra added later, ``make demo``) work."""

from __future__ import annotations

import email
import os
import re
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from envs import package_requirements
from packaging.version import Version
from userland import Dist, checkout_copy, new_venv, run

from emulated import CLIENT_ID, CLIENT_SECRET

pytestmark = pytest.mark.integrations

EXTRAS = {"emulator", "postgresql", "mysql", "parquet", "s3", "report", "dlt", "airflow", "all", "dev"}
DEMO_GOAL_BYTES = 300 * 2**20  # make demo's virtual environment (the goal: under 300 MB)


def package_files(tree: Path) -> set[str]:
    """The files of the package in a source tree, as paths inside the wheel."""
    src = tree / "src"
    return {
        str(p.relative_to(src))
        for p in (src / "spotify_catalog").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def user_env(tmp_path: Path, **more: str) -> dict[str, str]:
    """The environment of a user's shell: the ledger and the caches in ``tmp_path``, no virtual
    environment active."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    for name in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
        env[name] = str(tmp_path / name.lower())
    return {**env, **more}


def emulator_env(emu: Any, tmp_path: Path) -> dict[str, str]:
    return user_env(
        tmp_path,
        SPOTIFY_CLIENT_ID=CLIENT_ID,
        SPOTIFY_CLIENT_SECRET=CLIENT_SECRET,
        SPOTIFY_API_URL=emu.url + "/v1",
        SPOTIFY_TOKEN_URL=emu.url + "/api/token",
    )


def bts(db_url: str) -> Any:
    """The name of BTS's row in the crawl database at ``db_url``."""
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        name = conn.execute(sa.text("SELECT name FROM artists WHERE id = '3Nrfpe0tUJi4K4DXYWgMUX'")).scalar()
    engine.dispose()
    return name


def failing(command: list[str], **kwargs: Any) -> tuple[int, list[str]]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, **kwargs)
    return done.returncode, done.stderr.strip().splitlines()


def test_the_wheel_carries_the_package_its_data_and_its_metadata(dist: Dist, clone: Path) -> None:
    with zipfile.ZipFile(dist.wheel) as wheel:
        names = set(wheel.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(wheel.read(info))
        entry_points = wheel.read(info.replace("METADATA", "entry_points.txt")).decode()
    package = {n for n in names if not n.startswith("spotify_catalog-")}
    assert package == package_files(clone)
    assert {
        "spotify_catalog/py.typed",
        "spotify_catalog/report/templates/page.html",
        "spotify_catalog/report/templates/report.html",
    } <= package
    assert set(metadata.get_all("Provides-Extra")) == EXTRAS
    requirements = metadata.get_all("Requires-Dist")
    unbounded = [r for r in requirements if ">=" not in r and "spotify-catalog" not in r]
    assert unbounded == []  # every dependency has its lower bound
    assert "Typing :: Typed" in metadata.get_all("Classifier")
    assert "spotify-catalog = spotify_catalog.cli:main" in entry_points
    assert "spotify_catalog = spotify_catalog.testing" in entry_points  # the pytest plugin


def test_the_sdist_carries_what_a_build_needs_and_nothing_of_the_checkout(dist: Dist, clone: Path) -> None:
    with tarfile.open(dist.sdist) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert {"pyproject.toml", "README.md", "PKG-INFO"} <= names
    assert {f"src/{n}" for n in package_files(clone) if "__pycache__" not in n} <= names
    assert (clone / "spotify-demo.db").is_file()  # in the clone, not in the sdist
    assert (clone / ".venv").is_dir()
    leaked = [n for n in names if n.startswith((".venv/", "dist/")) or n.endswith((".db", ".pyc"))]
    assert leaked == []


def test_the_wheel_in_an_empty_environment_says_which_extra_each_command_needs_then_runs_the_demo(
    dist: Dist, tmp_path: Path
) -> None:
    bin_ = new_venv(tmp_path / "venv")
    env = user_env(tmp_path)
    run([str(bin_ / "pip"), "install", "-q", str(dist.wheel)], env=env)
    cli = str(bin_ / "spotify-catalog")
    work = tmp_path / "work"
    work.mkdir()
    missing = {
        ("demo",): "pip install 'spotify-catalog[emulator,report]'",
        ("emulator",): "pip install 'spotify-catalog[emulator]'",
        ("report", "--db", "sqlite:///x.db"): "pip install 'spotify-catalog[report]'",
        ("export", "--db", "sqlite:///x.db", "--to", "lake"): "pip install 'spotify-catalog[parquet]'",
        ("status", "--db", "postgresql://u@127.0.0.1:9/x"): "pip install 'spotify-catalog[postgresql]'",
        ("status", "--db", "mysql://u@127.0.0.1:9/x"): "pip install 'spotify-catalog[mysql]'",
    }
    for args, install in missing.items():
        code, lines = failing([cli, *args], cwd=work, env=env)
        assert (code, len(lines)) == (2, 1), (args, lines)
        assert re.fullmatch(rf"Error: \S.* needs \w+ \(.+\): {re.escape(install)}", lines[0]), lines
    for module in ("dlt", "airflow"):
        code, lines = failing([str(bin_ / "python"), "-c", f"import spotify_catalog.{module}"], env=env)
        assert code == 1
        assert lines[-1] == (
            f"ModuleNotFoundError: spotify_catalog.{module} needs {module} (the {module} extra): "
            f"pip install 'spotify-catalog[{module}]'"
        )
    listed = run([cli, "--help"], env=env).stdout  # --help lists every command, installed or not
    assert "needs pyarrow (the parquet extra)" in " ".join(listed.split())
    assert not any(work.iterdir())  # nothing written by a command that could not run

    run([str(bin_ / "pip"), "install", "-q", f"{dist.wheel}[emulator,report]"], env=env)
    demo = run([cli, "demo"], cwd=work, env=env)
    assert "Report: spotify-demo.html" in demo.stdout
    assert bts(f"sqlite:///{work / 'spotify-demo.db'}") == "BTS"

    run([str(bin_ / "pip"), "install", "-q", "spotify-catalog[parquet]"], env=env)  # an extra added later
    run([cli, "export", "--db", "sqlite:///spotify-demo.db", "--to", "lake"], cwd=work, env=env)
    assert list((work / "lake" / "artists").glob("dt=*/part-00000.parquet"))
    code, lines = failing(
        [cli, "export", "--db", "sqlite:///spotify-demo.db", "--to", "s3://bucket/lake"], cwd=work, env=env
    )
    assert (code, lines) == (2, ["Error: --to s3://bucket/lake needs boto3 (the s3 extra): "
                                 "pip install 'spotify-catalog[s3]'"])  # fmt: skip


def test_the_lower_bounds_of_the_demo_s_dependencies_run_the_demo(dist: Dist, tmp_path: Path) -> None:
    """Every dependency of the package, the emulator and the report at the lowest version its bound
    allows: the demo runs (the bounds are versions the project works with, not guesses)."""
    lowest = []
    for requirement in package_requirements("emulator", "report"):
        name, _, version = requirement.partition(">=")
        assert version, requirement  # every one has a lower bound
        lowest.append(f"{name.split('[')[0]}=={version}")
    constraints = tmp_path / "lowest.txt"
    constraints.write_text("\n".join(lowest) + "\n")
    bin_ = new_venv(tmp_path / "venv")
    env = user_env(tmp_path)
    run(
        [str(bin_ / "pip"), "install", "-q", "-c", str(constraints), f"{dist.wheel}[emulator,report]"],
        env=env,
    )
    listed = run([str(bin_ / "pip"), "list", "--format", "freeze"], env=env).stdout.lower().split()
    installed = {name: Version(version) for name, _, version in (line.partition("==") for line in listed)}
    for pin in lowest:
        name, _, version = pin.lower().partition("==")
        assert installed[name.replace("_", "-")] == Version(version), pin
    work = tmp_path / "work"
    work.mkdir()
    run([str(bin_ / "spotify-catalog"), "demo", "--quiet"], cwd=work, env=env)
    assert bts(f"sqlite:///{work / 'spotify-demo.db'}") == "BTS"


def test_pipx_install_from_a_clone_crawls(
    clone: Path, tools_python: Path, tmp_path: Path, make_emulator: Any
) -> None:
    pipx = {"PIPX_HOME": str(tmp_path / "pipx"), "PIPX_BIN_DIR": str(tmp_path / "bin")}
    run([str(tools_python), "-m", "pipx", "install", "."], cwd=clone, env=user_env(tmp_path, **pipx))
    emu = make_emulator()
    database = tmp_path / "catalog.db"
    command = [str(tmp_path / "bin" / "spotify-catalog"), "crawl", "--db", f"sqlite:///{database}"]
    run([*command, "--artist", "BTS", "--depth", "artists"], cwd=tmp_path, env=emulator_env(emu, tmp_path))
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT name FROM artists WHERE id = '3Nrfpe0tUJi4K4DXYWgMUX'")).scalar()
            == "BTS"
        )
    engine.dispose()


def test_pip_install_the_postgresql_extra_from_a_clone_crawls_into_postgresql(
    clone: Path, tmp_path: Path, make_emulator: Any, postgres_url: str
) -> None:
    bin_ = new_venv(tmp_path / "venv")
    run([str(bin_ / "pip"), "install", "-q", ".[postgresql]"], cwd=clone, env=user_env(tmp_path))
    emu = make_emulator()
    command = [str(bin_ / "spotify-catalog"), "crawl", "--db", postgres_url, "--artist", "BTS"]
    run([*command, "--depth", "artists"], cwd=tmp_path, env=emulator_env(emu, tmp_path))
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT name FROM artists WHERE id = '3Nrfpe0tUJi4K4DXYWgMUX'")).scalar()
            == "BTS"
        )
    engine.dispose()


def test_make_demo_from_a_fresh_clone_installs_the_demo_only(tmp_path: Path) -> None:
    """The README's first command in a fresh clone: the package with the emulator and the report, no
    dev tools, in less than 300 MB; the time is shown (the goal, 45 s, depends on the machine)."""
    tree = checkout_copy(tmp_path / "spotify-catalog")
    started = time.monotonic()
    run(["make", "demo"], cwd=tree, env=user_env(tmp_path), timeout=900)
    seconds = time.monotonic() - started
    assert (tree / "spotify-demo.html").is_file()
    venv = tree / ".venv"
    size = sum(p.stat().st_size for p in venv.rglob("*") if p.is_file() and not p.is_symlink())
    listed = run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "freeze"]).stdout.split()
    installed = {line.split("==")[0].lower() for line in listed}
    print(f"make demo: {seconds:.0f} s, {size / 2**20:.0f} MiB, {len(installed)} packages")
    assert {"starlette", "vl-convert-python", "jinja2"} <= installed
    assert not installed & {"pytest", "mypy", "ruff", "pyarrow", "moto", "duckdb"}
    assert size < DEMO_GOAL_BYTES
