"""`make bench`'s runner: every benchmark's output printed and written, with the machine, into one file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_run_writes_what_it_printed_with_the_machine_and_the_guard(tmp_path: Path) -> None:
    out = tmp_path / "docs" / "benchmarks.md"
    crawl = "load --only-ids --ids 3 --id-runs sqlite:8 --latency-ms 0"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--out", str(out), "client --requests 40", crawl],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = out.read_text(encoding="utf-8")
    for label in ("date", "CPU", "memory", "OS", "Python", "commit", "load average"):
        assert re.search(rf"^- {label}[ :(]", text, re.MULTILINE), label
    assert f"**Partial run**: `client --requests 40`, `{crawl}`" in text
    assert "`python -m benchmarks.client --requests 40`" in text
    # every line a benchmark printed is in the file, in its section
    client = text.index("## client\n")
    load = text.index("## load\n")
    printed = proc.stdout.splitlines()
    client_lines = printed[printed.index("## client") + 1 : printed.index("## load")]
    assert any("SpotifyClient, 8 threads" in line for line in client_lines)
    for line in client_lines:
        if line.strip() and not line.startswith("(client took"):
            assert client < text.index(line) < load, line
    # the guard: stated, and the crawl's figure repeated from the load section
    guard = next(line for line in printed if line.startswith("guard:"))
    figure = re.search(r"SQLite, 8 workers: (\d+\.\d) ms", guard)
    assert figure, guard
    assert "above 8 ms (SQLite, 8 workers, `python -m benchmarks.load --only-ids`)" in text
    assert f"This run: CPU per request, SQLite, 8 workers: {figure[1]} ms (not the guarded crawl" in text
    assert re.search(rf"\| sqlite \| 8 \| \d+ \| .* \| {figure[1]} ms \|", text)


def test_an_unknown_benchmark_is_refused_before_anything_runs(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--out", str(out), "client", "nonesuch --fast"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "no benchmark nonesuch (there are: client, crawl_stages," in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert proc.stdout == ""


@pytest.mark.slow
def test_the_rate_limit_benchmark_prints_429s_wall_time_and_the_bound() -> None:
    small = ["--ids", "5", "--rate-limit", "10", "--workers", "4", "--processes", "0", "--cold", ""]
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.rate_limit", *small],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    row = re.search(
        r"^\| 4 worker\(s\) \| (\d+) \| (\d+) \| (\d+) \| [\d.]+ s \| [\d.]+ s \| ([\d.]+) s \|",
        proc.stdout,
        re.M,
    )
    assert row, proc.stdout
    admitted, refused, busiest, bound = int(row[1]), int(row[2]), int(row[3]), float(row[4])
    assert admitted > 10  # the limit was met: one window waited for
    assert bound >= 30.0
    assert busiest <= refused <= 4  # the requests in flight when the window filled, nothing learnt before
