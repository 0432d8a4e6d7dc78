"""The busiest functions of a ``py-spy record --format raw`` profile, as a markdown table (not a benchmark:
``python -m benchmarks`` skips it).

    py-spy record -r 50 -f raw -o crawl.txt -- python -m benchmarks.load --only-ids --id-runs sqlite:8
    python -m benchmarks._pyspy_top crawl.txt [--top 15]

Samples whose innermost frame waits (a worker thread idle on its queue, a socket read, a lock) are left
out: what remains is where the process was busy. ``self``: samples in the function itself; ``total``:
samples with the function anywhere on the stack.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter

IDLE = re.compile(
    r"^(?:\w+\.)?(_worker|wait|select|poll|_recv_into|recv_into|read|readinto|acquire|sleep|"
    r"_wait_for_tstate_lock|accept|recv|get) "
)
FRAME = re.compile(r" \((.*?):\d+\)$")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._pyspy_top")
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    busy = 0
    with open(args.profile) as lines:
        for line in lines:
            stack, _, count = line.rstrip().rpartition(" ")
            if not stack or IDLE.match(stack.split(";")[-1]):
                continue
            busy += int(count)
            frames = [FRAME.sub(r" (\1)", f) for f in stack.split(";")]
            own[frames[-1]] += int(count)
            for frame in set(frames):
                total[frame] += int(count)
    print(f"{busy} busy samples\n")
    print("| function (file) | self | total |\n|---|---:|---:|")
    for frame, count in own.most_common(args.top):
        print(f"| `{frame}` | {100 * count / busy:.1f} % | {100 * total[frame] / busy:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
