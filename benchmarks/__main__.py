"""Run every benchmark module (or the ones named): ``python -m benchmarks [name ...]``."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = argv or sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"\n## {name}", flush=True)
        started = time.perf_counter()
        module.main([])
        print(f"({name} took {time.perf_counter() - started:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
