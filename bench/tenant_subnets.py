"""Tenant subnets (issue 4, item 3): how soon one is at both spines, and why the agent syncs
FRR before the kernel.

    sudo .venv/bin/python -m bench.tenant_subnets [--runs 3]

Three-rack lab (prefix `ofn`, the tenant work's prefix: do not run it next to
tests/lab/test_tenant_networks.py). Two measurements, each `--runs` times:
- attach / detach: router r1 (gateway active on compute2) gets an interface on net1 in the lab's
  address scopes (address_scope.attach_in_scope), until 10.0.1.0/24 and fd00:10:1::/64 are at
  both spines via rack 2's leaves; then the interface is removed, until both are gone;
- order: with compute2's agent stopped (its FRR block stays), a /24 routed into br-ex by hand
  becomes advertised (seen at spine1) either when its prefix-list entry is added after the
  kernel route, or when the kernel route is added after the entry.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

from ovn_fabric.lab import address_scope, agents, fabric, neutron, probe
from ovn_fabric.lab import lab as labmod
from ovn_fabric.lab.lab import Lab, route_to
from ovn_fabric.lab.sh import run, wait_until

PREFIX = "ofn"
NET1 = ("net1", "10.0.1.0/24", "fd00:10:1::/64")
SUBNETS = NET1[1:]
GATEWAY = "compute2"
TIMEOUT_S = 30.0


def _timed(action: Callable[[], None], done: Callable[[], bool], what: str) -> float:
    start = time.monotonic()
    action()
    wait_until(done, timeout=TIMEOUT_S, interval=0.02, what=what)
    return time.monotonic() - start


def attach_detach(lab: Lab, runs: int) -> tuple[list[float], list[float]]:
    scope4 = address_scope.add_scope(lab.paths, "fabric4", 4)
    scope6 = address_scope.add_scope(lab.paths, "fabric6", 6)
    agents.restart_all(lab)
    neutron.add_network(lab.paths, lab.topology, NET1[0], cidr4=NET1[1], cidr6=NET1[2])
    neutron.add_router(lab.paths, lab.topology, "r1", gateway_chassis=(GATEWAY, "compute3"))

    def attach() -> None:
        address_scope.attach_in_scope(lab.paths, lab.topology, "r1", NET1[0],
                                      scope4=scope4, scope6=scope6)

    def detach() -> None:
        address_scope.detach(lab.paths, lab.topology, "r1", NET1[0])

    ups, downs = [], []
    for _ in range(runs):
        ups.append(_timed(attach,
                          lambda: all(probe.at_spines_via(lab, s, GATEWAY) for s in SUBNETS),
                          "the subnets at both spines"))
        downs.append(_timed(detach,
                            lambda: all(route_to(lab, spine, s) is None
                                        for spine in probe.spines(lab) for s in SUBNETS),
                            "the subnets gone from both spines"))
        print(f"attach -> both spines {ups[-1]:.2f} s, detach -> gone {downs[-1]:.2f} s",
              flush=True)
    return ups, downs


def order(lab: Lab, runs: int) -> tuple[list[float], list[float]]:
    agents.stop(lab, GATEWAY)
    ns = lab.netns(GATEWAY)

    def entry(prefix: str, seq: int) -> None:
        fabric.vtysh(lab.paths, GATEWAY, "-c", "configure terminal",
                     "-c", f"ip prefix-list OVN-FABRIC-ALLOW4 seq {seq} permit {prefix}")

    def at_spine(prefix: str) -> Callable[[], bool]:
        return lambda: route_to(lab, "spine1", prefix) is not None

    def route(prefix: str) -> None:
        run(["ip", "route", "add", prefix, "dev", "br-ex"], netns=ns)

    late, early = [], []
    for index in range(runs):
        route_first, entry_first = f"10.0.{70 + index}.0/24", f"10.0.{80 + index}.0/24"
        route(route_first)
        time.sleep(2)     # let zebra hand it to bgpd, which must not advertise it yet
        if route_to(lab, "spine1", route_first) is not None:
            raise RuntimeError(f"{route_first} advertised without a prefix-list entry")
        late.append(_timed(functools.partial(entry, route_first, 200005 + 10 * index),
                           at_spine(route_first), f"{route_first} at spine1"))
        entry(entry_first, 200105 + 10 * index)
        time.sleep(6)     # longer than bgpd's route-map delay timer (5 s)
        early.append(_timed(functools.partial(route, entry_first), at_spine(entry_first),
                            f"{entry_first} at spine1"))
        print(f"entry after the route {late[-1]:.2f} s, route after the entry {early[-1]:.2f} s",
              flush=True)
    return late, early


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    labmod.down(PREFIX)
    try:
        lab = labmod.up("three-rack", PREFIX)
        ups, downs = attach_detach(lab, args.runs)
        late, early = order(lab, args.runs)
    finally:
        labmod.down(PREFIX)
    for what, values in (("attach -> at both spines", ups), ("detach -> gone", downs),
                         ("prefix-list entry added after the route", late),
                         ("kernel route added after the entry", early)):
        print(f"{what}: median {statistics.median(values):.2f} s "
              f"(min {min(values):.2f}, max {max(values):.2f})")


if __name__ == "__main__":
    main()
