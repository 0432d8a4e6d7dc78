"""What the account's ledger adds to each request: CPU and wall time of ``AccountBudget.take``.

In this process, one thread: ``--requests`` takes of one account from a new ledger in a SQLite file, and
in a fresh PostgreSQL and MariaDB database (the tests' servers; skipped when they cannot be reached),
without a daily budget (blocks only recorded) and with one it never reaches (every block reserved under
the account's lock). CPU is ``time.thread_time``; a reservation's transaction is shared by the block's
requests. ``python -m benchmarks ledger`` (``--requests``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import _servers
from spotify_catalog import ledger


def per_request(url: str, limit: int | None, requests: int) -> tuple[float, float]:
    """(CPU us, wall us) a request of ``requests`` takes from a new budget of the ledger at ``url``."""
    book = ledger.Ledger(url)
    budget = ledger.AccountBudget(book, f"bench-{limit}", limit=limit)
    budget.take("/tracks")  # the ledger opened, its tables created
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(requests):
        budget.take("/tracks")
    budget.release()
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    book.close()
    return 1e6 * cpu / requests, 1e6 * wall / requests


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks ledger")
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args(argv)
    print("| ledger | daily budget | CPU a request | wall a request |")
    print("|---|---|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("sqlite", "postgresql", "mariadb"):
            if backend != "sqlite" and (why := _servers.unreachable(backend)):
                print(f"| {backend} | skipped: {why} | | |")
                continue
            for limit in (None, 10 * args.requests):
                if backend == "sqlite":
                    url = f"sqlite:///{Path(tmp) / f'ledger-{limit}.db'}"
                    cpu, wall = per_request(url, limit, args.requests)
                else:
                    with _servers.fresh_database(backend) as url:
                        cpu, wall = per_request(url, limit, args.requests)
                budget = "none" if limit is None else f"{limit:,} (never reached)"
                print(f"| {backend} | {budget} | {cpu:.0f} us | {wall:.0f} us |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
