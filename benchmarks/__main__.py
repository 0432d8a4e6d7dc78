"""Run every benchmark module, or the ones named, each with its own options:

    python -m benchmarks [--out docs/benchmarks.md] [NAME | 'NAME OPTIONS' ...]
    python -m benchmarks --out docs/benchmarks.md client 'load --only-ids --id-runs sqlite:8'

Each benchmark's printed output goes to stdout as it comes. With ``--out PATH`` it is also written to
PATH (markdown, rewritten after each benchmark): the machine (CPU model and count, memory, OS, Python,
the load average at the start and end), the date, the commit, the crawl's CPU guard, and one section
per benchmark with the command that repeats it. A run of some benchmarks, or with options, says so.
A benchmark that fails is reported in its section and on stderr; the others still run (exit 1).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import pkgutil
import platform
import shlex
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TextIO

from benchmarks.load import GUARD_MS, GUARD_PREFIX

HERE = Path(__file__).parent
CODE = ("src", "benchmarks", "pyproject.toml")  # what the figures depend on (not docs/benchmarks.md)
LIBRARIES = ("httpx", "orjson", "SQLAlchemy", "pyarrow", "adbc-driver-sqlite", "adbc-driver-postgresql",
             "psycopg", "PyMySQL", "uvicorn", "starlette")  # fmt: skip


LOAD = "load average (1, 5, 15 min: what else was running)"


BUSY = (
    "**A busy machine**: other work kept every CPU busy when the run started (its load average at least "
    "the number of CPUs). Wall times are longer and CPU times higher than on a quiet machine (the crawl's "
    "CPU per request about twice as high on the project's 2-core machine): compare code in runs one "
    "after the other ([performance.md](performance.md#measuring))."
)


@dataclass
class Section:
    name: str
    options: list[str]
    output: str = ""
    seconds: float = 0.0
    failure: str | None = None

    @property
    def command(self) -> str:
        return shlex.join(["python", "-m", f"benchmarks.{self.name}", *self.options])


class _Tee(io.TextIOBase):
    """Writes to ``stream`` and keeps a copy."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.kept = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.stream.write(text)
        return self.kept.write(text)

    def flush(self) -> None:
        self.stream.flush()


def all_names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if not m.name.startswith("_"))


def _first(path: str, prefix: str) -> str | None:
    """The rest of the first line of the text file ``path`` that starts with ``prefix``."""
    try:
        with open(path, encoding="utf-8") as lines:
            return next((line[len(prefix) :].strip() for line in lines if line.startswith(prefix)), None)
    except OSError:
        return None


def _git(*args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def machine() -> dict[str, str]:
    """What the figures were measured on, as label -> text."""
    cpus = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    model = (_first("/proc/cpuinfo", "model name") or platform.processor() or "unknown").lstrip(": ")
    total = _first("/proc/meminfo", "MemTotal:")
    available = _first("/proc/meminfo", "MemAvailable:")
    memory = "unknown"
    if total:
        memory = f"{int(total.split()[0]) / 2**20:.1f} GiB"
        if available:
            memory += f" ({int(available.split()[0]) / 2**20:.1f} GiB available at the start)"
    system = (_first("/etc/os-release", "PRETTY_NAME=") or platform.system()).strip('"')
    commit = _git("rev-parse", "--short", "HEAD")
    if commit and _git("status", "--porcelain", "--untracked-files=no", "--", *CODE):
        commit += " with uncommitted changes"
    versions = []
    for name in LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{name} {metadata.version(name)}")
    cpu = f"{model}, {cpus} logical CPUs" + (f" ({usable} usable by this process)" if usable != cpus else "")
    return {
        "CPU": cpu,
        "memory": memory,
        "OS": f"{system}, {platform.system()} {platform.release()} ({platform.machine()})",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "libraries": ", ".join(versions),
        "commit": commit or "unknown",
    }


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def as_markdown(text: str) -> str:
    """A benchmark's output as markdown: its markdown tables as they are, every other run of lines in a
    code block (fixed-width columns stay aligned)."""
    blocks: list[tuple[bool, list[str]]] = []
    for line in text.rstrip().splitlines():
        table = line.startswith("|")
        if blocks and blocks[-1][0] == table:
            blocks[-1][1].append(line)
        else:
            blocks.append((table, [line]))
    parts = []
    for table, lines in blocks:
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        if lines:
            parts.append("\n".join(lines) if table else "```\n" + "\n".join(lines) + "\n```")
    return "\n\n".join(parts)


def _scope(done: list[Section], asked: list[Section]) -> list[str]:
    """What the run covers, when it is not every benchmark with its defaults, run to the end."""
    every = all_names()
    lines = []
    if len(done) < len(asked):
        lines += [
            f"**Incomplete run**: {len(done)} of the {len(asked)} benchmarks asked for have run (it "
            "stopped, or was still running when this file was written).",
            "",
        ]
    if [s.name for s in asked] != every or any(s.options for s in asked):
        ran = ", ".join(f"`{shlex.join([s.name, *s.options])}`" for s in asked)
        lines += [
            f"**Partial run**: {ran}; not every benchmark with its defaults (`make bench` runs "
            f"{', '.join(f'`{n}`' for n in every)}).",
            "",
        ]
    return lines


def _guard(done: list[Section]) -> list[str]:
    measured = [
        line.removeprefix(GUARD_PREFIX).strip()
        for s in done
        for line in s.output.splitlines()
        if line.startswith(GUARD_PREFIX)
    ]
    return [
        "## Guard: the crawl's CPU per request",
        "",
        f"A change that raises the crawl's CPU per request above {GUARD_MS:g} ms (SQLite, 8 workers, "
        "`python -m benchmarks.load --only-ids`) needs a reason in its commit message.",
        f"This run: {'; '.join(measured)}." if measured else "This run did not measure it.",
        "",
    ]


def render(done: list[Section], asked: list[Section], about: dict[str, str], when: str, busy: bool) -> str:
    """The markdown file of a run: the ``done`` sections of the ``asked`` ones; ``about``: the machine
    and the load (label -> text); ``when``: the run's dates; ``busy``: whether other work was keeping
    every CPU busy at the start."""
    lines = [
        "# Benchmark figures",
        "",
        "Written by `make bench` (`python -m benchmarks --out docs/benchmarks.md`): the figures of its "
        "last run, on the machine below. How the crawl, the lake export and the emulator spend their "
        "time, and what was tried: [performance.md](performance.md).",
        "",
        *_scope(done, asked),
        "## The machine",
        "",
        f"- date: {when}",
        *(f"- {label}: {text}" for label, text in about.items()),
        "",
        *([BUSY, ""] if busy else []),
        *_guard(done),
    ]
    for s in done:
        lines += [f"## {s.name}", "", f"`{s.command}` ({s.seconds:.1f} s)", ""]
        if s.output.strip():
            lines += [as_markdown(s.output), ""]
        if s.failure:
            lines += [f"**Failed**: {s.failure}", ""]
    return "\n".join(lines).rstrip() + "\n"


def _dates(started: datetime, now: datetime) -> str:
    end = f"{now:%H:%M}" if now.date() == started.date() else f"{now:%Y-%m-%d %H:%M}"
    return f"{started:%Y-%m-%d %H:%M} to {end} UTC"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def parse(argv: list[str]) -> tuple[Path | None, list[Section]]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, metavar="PATH", help="also write the figures here (markdown)")
    parser.add_argument("runs", nargs="*", metavar="NAME", help="a benchmark, or 'NAME OPTIONS' (quoted)")
    args = parser.parse_args(argv)
    every = all_names()
    asked = [Section(words[0], words[1:]) for words in map(shlex.split, args.runs) if words]
    unknown = [s.name for s in asked if s.name not in every]
    if unknown:
        parser.error(f"no benchmark {', '.join(unknown)} (there are: {', '.join(every)})")
    return args.out, asked or [Section(name, []) for name in every]


def main(argv: list[str]) -> int:
    out, asked = parse(argv)
    started, start_load = datetime.now(UTC), _load()
    busy = os.getloadavg()[0] >= (os.cpu_count() or 1)
    about = machine() if out else {}
    done: list[Section] = []
    for section in asked:
        print(f"\n## {section.name}", flush=True)
        module = importlib.import_module(f"benchmarks.{section.name}")
        tee = _Tee(sys.stdout)
        clock = time.perf_counter()
        try:
            with contextlib.redirect_stdout(tee):
                module.main(section.options)
        except Exception as exc:
            traceback.print_exc()
            section.failure = traceback.format_exception_only(exc)[-1].strip()
        section.seconds = time.perf_counter() - clock
        section.output = tee.kept.getvalue()
        print(f"({section.name} took {section.seconds:.1f} s)", flush=True)
        done.append(section)
        if out:
            about[LOAD] = f"{start_load} at the start, {_load()} after the last benchmark"
            _write(out, render(done, asked, about, _dates(started, datetime.now(UTC)), busy))
    if out:
        print(f"\nfigures written to {out}", file=sys.stderr)
    return 1 if any(s.failure for s in done) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
