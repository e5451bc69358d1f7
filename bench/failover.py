"""Traffic outage when a server-to-leaf link fails, as a 10 ms ping from rack 1 to rack 3 sees it.

    sudo .venv/bin/python -m bench.failover [--runs 3] [--bfd 100x3 300x3 50x3]

For each BFD setting it builds the three-rack fabric (prefix `ofbf`) with those timers and, per
run, breaks the uplink that carries the flow in two ways: carrier down (`ip link set down`) and a
silent failure (carrier up, nftables drops every frame on both ends, so only BFD can tell). It
prints the longest run of lost pings (ms) and the lost-packet count, then the medians.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from ovn_fabric.lab import lab as labmod
from ovn_fabric.lab.probe import busy_uplink, ping_through
from ovn_fabric.lab.topology import Link, builtin_path

PREFIX = "ofbf"


def measure(timers: str, runs: int) -> dict[str, list[tuple[float, int]]]:
    interval, mult = (int(x) for x in timers.split("x"))
    text = builtin_path("three-rack").read_text().replace(
        "interval_ms = 100\nmultiplier = 3", f"interval_ms = {interval}\nmultiplier = {mult}")
    results: dict[str, list[tuple[float, int]]] = {"carrier": [], "silent": []}
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as topo:
        topo.write(text)
        topo.flush()
        labmod.down(PREFIX)
        lab = labmod.up(topo.name, PREFIX, with_ovn=False)
        try:
            target = str(lab.topology.device("compute3").loopback4)
            for _ in range(runs):
                for kind in ("carrier", "silent"):
                    link = labmod.find_link(lab, "compute1", busy_uplink(lab, "compute1", target))

                    def fail(link: Link = link, silent: bool = kind == "silent") -> None:
                        labmod.cut_link(lab, link, silent=silent)

                    outage = ping_through(lab.netns("compute1"), target, fail)
                    labmod.restore_link(lab, link)
                    labmod.wait_fabric_converged(lab, timeout=30)
                    results[kind].append((outage.longest_gap_ms, outage.lost))
                    print(f"  BFD {timers} {kind:7}: longest gap {outage.longest_gap_ms:5.0f} ms,"
                          f" {outage.lost} lost", flush=True)
        finally:
            labmod.down(PREFIX)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bfd", nargs="+", default=["100x3"],
                        help="BFD timers as INTERVALxMULTIPLIER")
    args = parser.parse_args()
    summary = []
    for timers in args.bfd:
        for kind, values in measure(timers, args.runs).items():
            gaps = [g for g, _ in values]
            summary.append(f"  BFD {timers:6} {kind:7}: median outage "
                           f"{statistics.median(gaps):5.0f} ms (max {max(gaps):.0f}) "
                           f"over {len(values)} runs")
    print("\n10 ms ping compute1 -> compute3, failing the uplink that carries it:")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
