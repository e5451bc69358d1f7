"""How long `lab up` takes, step by step, and `lab down`.

    sudo .venv/bin/python -m bench.lab_up [--topology three-rack] [--runs 3] [--fabric-only]

Prints each run's total and per-step durations, then the median. Uses lab prefix `ofbu`.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

from ovn_fabric.lab import lab as labmod

PREFIX = "ofbu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--topology", default="three-rack")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fabric-only", action="store_true")
    args = parser.parse_args()
    labmod.down(PREFIX)
    ups, downs = [], []
    steps: dict[str, list[float]] = {}
    for run in range(args.runs):
        lines: list[str] = []
        start = time.monotonic()
        try:
            labmod.up(args.topology, PREFIX, lines.append, with_ovn=not args.fabric_only)
            ups.append(time.monotonic() - start)
        finally:
            start = time.monotonic()
            labmod.down(PREFIX)
            downs.append(time.monotonic() - start)
        for line in lines:
            m = re.match(r"(.*): done in ([\d.]+) s$", line)
            if m:
                steps.setdefault(m.group(1), []).append(float(m.group(2)))
        print(f"run {run + 1}: up {ups[-1]:.2f} s, down {downs[-1]:.2f} s", flush=True)
    print(f"\n{args.topology}{' (fabric only)' if args.fabric_only else ''}, "
          f"{args.runs} runs, medians:")
    for step, values in steps.items():
        print(f"  {statistics.median(values):6.2f} s  {step}")
    print(f"  {statistics.median(ups):6.2f} s  lab up, total "
          f"(min {min(ups):.2f}, max {max(ups):.2f})")
    print(f"  {statistics.median(downs):6.2f} s  lab down")


if __name__ == "__main__":
    main()
