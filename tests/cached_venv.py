"""Virtual environments of their own for the suites that run other tools (the engines suite, the
integrations suite), made once and kept between runs in the user's cache: one folder per pinned set of
packages, complete once it holds ``.ready``, made under a lock so that runs side by side wait for
each other instead of making it twice."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import venv
from pathlib import Path


class Missing(Exception):
    """A tool is not there (and was not, or could not be, installed): the message says which."""


def run(command: list[str], what: str, timeout: float) -> None:
    """Run ``command``; a failure is :class:`Missing` with the last lines of its output."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Missing(f"{what} failed: {exc}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise Missing(f"{what} failed (exit {done.returncode}): {' | '.join(tail)}")


def cached_venv(where: Path, name: str, packages: tuple[str, ...], *, install: bool, timeout: float) -> Path:
    """The python of the ready virtual environment ``where`` holding ``packages`` (plain ``pip
    install``), made if missing when ``install``; else :class:`Missing` says it is not there."""
    python = where / "bin" / "python"
    if (where / ".ready").is_file():
        return python
    if not install:
        raise Missing(f"no {name} environment at {where}")
    where.parent.mkdir(parents=True, exist_ok=True)
    with open(where.parent / f".{where.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run preparing the same one: wait for it
        if (where / ".ready").is_file():
            return python
        shutil.rmtree(where, ignore_errors=True)  # a half-made one
        venv.EnvBuilder(with_pip=True, clear=True).create(where)
        run(
            [str(python), "-m", "pip", "install", "-q", *packages],
            f"pip install {' '.join(packages)}",
            timeout,
        )
        (where / ".ready").write_text("\n".join(packages) + "\n")
    return python
