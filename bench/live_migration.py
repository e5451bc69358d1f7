"""Live migration under a 10 ms ping: lost packets and longest gap, and where they fall.

    sudo PYTHONPATH=src .venv/bin/python -m bench.live_migration [--runs 5] [--prefix ofm]

Builds the three-rack lab, a VM `mig` on compute1 (rack 1, provider network), a VM `peer` on
compute2 (rack 2) and an external client behind spine1. Each run migrates `mig` to compute3
(rack 3) and back (lab/migration.py: Nova + Neutron's steps, activation by RARP) while the
client pings its IPv4 address and `peer` its IPv6 address, every 10 ms. Prints per migration:
lost requests and the longest gap for each family, how many of the lost requests left inside
OVN's switch-over (the VM's interface moving until OVN activates the port on the destination,
+-100 ms) and the send times of any outside it; when the destination's leaves joined the spines'
route and when the source's left it (relative to the migration's start); then totals.
"""

from __future__ import annotations

import argparse
import functools
import statistics

from ovn_fabric.lab import external, probe
from ovn_fabric.lab import lab as labmod
from ovn_fabric.lab import vm as vmmod
from ovn_fabric.lab.migration_watch import (
    Outcome,
    joined,
    left,
    missing_since,
    via,
    watch_migration,
)
from ovn_fabric.lab.sh import run, wait_until

SOURCE, DESTINATION, PEER_NODE = "compute1", "compute3", "compute2"
TIMEOUT_S = 20.0


def _settled(lab: labmod.Lab, vm: vmmod.Vm, node: str, peer: vmmod.Vm,
             client: external.Client) -> None:
    for address in (str(vm.ip4.ip), str(vm.ip6.ip)):
        wait_until(functools.partial(probe.at_spines_via, lab, address, node),
                   timeout=TIMEOUT_S, what=f"{address} at both spines via the leaves of {node}")
    wait_until(lambda: run(["ping", "-c", "1", "-W", "1", str(vm.ip4.ip)], netns=client.netns,
                           check=False).returncode == 0, timeout=TIMEOUT_S, what="IPv4 ping")
    wait_until(lambda: run(["ping", "-c", "1", "-W", "1", str(vm.ip6.ip)], netns=peer.netns,
                           check=False).returncode == 0, timeout=TIMEOUT_S, what="IPv6 ping")


def _report(lab: labmod.Lab, outcome: Outcome, src: str, dst: str) -> list[str]:
    m = outcome.migration
    lines = [f"{src} -> {dst}: switch-over {1000 * (m.switched - m.started):.0f}.."
             f"{1000 * (m.activated - m.started):.0f} ms, requested-chassis=dst "
             f"{1000 * (m.rebound - m.started):.0f} ms, done "
             f"{1000 * (m.finished - m.started):.0f} ms"]
    hand_over = outcome.hand_over(lab)
    for address, ping in outcome.pings.items():
        lines.append(f"  ping {address:18}: {ping.lost:2} lost, longest gap "
                     f"{ping.longest_gap_ms:4.0f} ms; {outcome.lost_seqs_in_window(address)} in "
                     f"OVN's switch-over, {outcome.lost_in(address, hand_over)} in the "
                     f"hand-over ({1000 * (hand_over[1] - hand_over[0]):.0f} ms)")
    for spine in probe.spines(lab):
        for address, changes in outcome.routes[spine].items():
            new = joined(changes, via(lab, spine, dst), m.started)
            old = left(changes, via(lab, spine, src), m.started)
            gaps = missing_since(changes, m.started)
            rel = [None if t is None else round(1000 * (t - m.started)) for t in (new, old)]
            lines.append(f"  {spine} {address:18}: {dst} joined {rel[0]} ms, {src} left "
                         f"{rel[1]} ms, route missing {len(gaps)} times")
    return lines


def measure(runs: int, prefix: str) -> tuple[labmod.Lab, list[tuple[str, Outcome]]]:
    outcomes: list[tuple[str, Outcome]] = []
    labmod.down(prefix)
    lab = labmod.up("three-rack", prefix)
    try:
        vm = vmmod.add_vm(lab.paths, lab.topology, name="mig", node=SOURCE)
        peer = vmmod.add_vm(lab.paths, lab.topology, name="peer", node=PEER_NODE)
        client = external.add_client(lab, "ext")
        for node in (SOURCE, DESTINATION):
            probe.wait_learnt(lab, node, str(client.cidr), TIMEOUT_S)
        pingers = {str(vm.ip4.ip): client.netns, str(vm.ip6.ip): peer.netns}
        for _ in range(runs):
            for src, dst in ((SOURCE, DESTINATION), (DESTINATION, SOURCE)):
                _settled(lab, vm, src, peer, client)
                outcome = watch_migration(lab, "mig", dst, pingers)
                outcomes.append((f"{src}->{dst}", outcome))
                print("\n".join(_report(lab, outcome, src, dst)), flush=True)
        _settled(lab, vm, SOURCE, peer, client)
    finally:
        labmod.down(prefix)
    return lab, outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="round trips (2 migrations each)")
    parser.add_argument("--prefix", default="ofm")
    args = parser.parse_args()
    lab, outcomes = measure(args.runs, args.prefix)
    print(f"\n{len(outcomes)} migrations between {SOURCE} and {DESTINATION}, 10 ms pings:")
    for family, index in (("IPv4", 0), ("IPv6", 1)):
        lost = [list(o.pings.values())[index].lost for _, o in outcomes]
        gaps = [list(o.pings.values())[index].longest_gap_ms for _, o in outcomes]
        address = [list(o.pings)[index] for _, o in outcomes]
        switch = [o.lost_seqs_in_window(a) for (_, o), a in zip(outcomes, address, strict=True)]
        hand = [o.lost_in(a, o.hand_over(lab)) for (_, o), a in zip(outcomes, address,
                                                                    strict=True)]
        print(f"  {family}: lost median {statistics.median(lost)} max {max(lost)} (per run "
              f"{lost}); longest gap median {statistics.median(gaps):.0f} ms max "
              f"{max(gaps):.0f} ms; in OVN's switch-over {switch}, in the hand-over {hand}")
    took = [1000 * (o.migration.activated - o.migration.switched) for _, o in outcomes]
    print(f"  OVN switch-over (interface moved -> port activated): median "
          f"{statistics.median(took):.0f} ms, max {max(took):.0f} ms")


if __name__ == "__main__":
    main()
