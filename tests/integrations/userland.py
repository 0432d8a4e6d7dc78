"""What the integrations suite does as a user does: a clone of the checkout, commands run in it, the
wheel and sdist it builds, empty virtual environments."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import envs
import pytest


def checkout_copy(target: Path) -> Path:
    """The checkout's files as a clone has them (tracked, and new ones not ignored; uncommitted
    changes included), copied to ``target``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=envs.REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = envs.REPO / name
        if source.is_file():  # a tracked file deleted in the checkout is not copied
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def run(command: list[str], *, timeout: float = 600, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``command``, its output captured; a failure fails the test with the output's last lines."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        pytest.fail(f"{' '.join(map(str, command))} failed (exit {done.returncode}):\n{tail}")
    return done


@dataclass(frozen=True)
class Dist:
    wheel: Path
    sdist: Path


def new_venv(where: Path) -> Path:
    """An empty virtual environment (pip only); its ``bin`` directory."""
    run([sys.executable, "-m", "venv", str(where)])
    return where / "bin"
