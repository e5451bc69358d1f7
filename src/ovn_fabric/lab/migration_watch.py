"""A live migration watched from outside: pings at the VM, and the routes to it at the spines and
on the two nodes, all on one clock (time.monotonic()). Shared by tests/lab/test_live_migration.py
and bench/live_migration.py, so that the figures and the assertions come from one measurement.

What it tells apart (see `Outcome`):
- make-before-break at the spines: when the destination rack's leaves joined the route, when the
  source rack's leaves left it, and whether the route was ever missing in between;
- where each lost ping request sits on the timeline: inside OVN's switch-over (from the moment
  the VM's interface moves to the destination until OVN has activated the port there, plus one
  ping round), or outside it (which would be a cost of the fabric or the agent).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ovn_fabric.lab import probe
from ovn_fabric.lab.lab import Lab
from ovn_fabric.lab.migration import Migration, migrate_vm
from ovn_fabric.lab.ping_log import Pinger, PingResult
from ovn_fabric.lab.route_log import Change, RouteLog
from ovn_fabric.lab.vm import load_vm

LEAD_IN_REPLIES = 30
# A request sent this long before the switch-over can still be lost by it: its reply was on
# its way back through the source when the VM's interface moved (a round trip here is < 5 ms
# unloaded; under load tens of ms were seen).
IN_FLIGHT_S = 0.1


@dataclass(frozen=True, slots=True)
class Outcome:
    migration: Migration
    pings: dict[str, PingResult]                       # by address pinged
    routes: dict[str, dict[str, list[Change]]]         # device -> address -> changes

    @property
    def switch_over(self) -> tuple[float, float]:
        """OVN's switch-over: from the VM's interface moving to the destination until OVN
        has activated the port there, widened by IN_FLIGHT_S on both sides."""
        m = self.migration
        return m.switched - IN_FLIGHT_S, m.activated + IN_FLIGHT_S

    def lost_outside_switch_over(self, address: str) -> tuple[float, ...]:
        """Send times (relative to the migration's start) of lost requests outside it."""
        start, end = self.switch_over
        ping = self.pings[address]
        return tuple(round(ping.send_time(s) - self.migration.started, 3)
                     for s in ping.lost_seqs
                     if not start <= ping.send_time(s) < end
                     and ping.send_time(s) >= self.migration.started - IN_FLIGHT_S)

    def lost_seqs_in_window(self, address: str) -> int:
        start, end = self.switch_over
        return self.pings[address].lost_between(start, end)

    def hand_over(self, lab: Lab) -> tuple[float, float]:
        """The end of the migration: from OVN making the destination the port's only chassis
        (the source stops delivering) until the last spine stopped routing to the source's
        leaves, widened by IN_FLIGHT_S. Flows still routed to the source's leaves then are
        lost. The source drains once the destination is active (a higher MED), so the spines
        normally leave it before Neutron's rebind: then the window is empty (end == start)."""
        m = self.migration
        ends = [left(self.routes[spine][a], via(lab, spine, m.source), m.started)
                for spine in probe.spines(lab) for a in self.routes[spine]]
        end = max((t for t in ends if t is not None), default=m.unplugged)
        start = m.rebound - IN_FLIGHT_S
        return start, max(start, end + IN_FLIGHT_S)

    def lost_in(self, address: str, window: tuple[float, float]) -> int:
        return self.pings[address].lost_between(*window)


def via(lab: Lab, device: str, node: str) -> frozenset[str]:
    """`device`'s interfaces towards `node`'s leaves (the leaves themselves if `device` is one
    of the leaves' neighbours, i.e. a spine)."""
    leaves = set(probe.leaves_of(lab, node))
    return frozenset(i.ifname for i in lab.topology.interfaces(device) if i.peer.name in leaves)


def joined(changes: list[Change], wanted: frozenset[str], since: float) -> float | None:
    """When the route first included every interface of `wanted`, at or after `since`."""
    return next((t for t, devs in changes if t >= since and wanted <= devs), None)


def left(changes: list[Change], gone: frozenset[str], since: float) -> float | None:
    """When the route first had none of `gone` while still existing, at or after `since`."""
    return next((t for t, devs in changes if t >= since and devs and not devs & gone), None)


def missing_since(changes: list[Change], since: float) -> list[float]:
    """Times at or after `since` when the route was gone altogether."""
    return [t for t, devs in changes if t >= since and not devs]


def watch_migration(lab: Lab, name: str, to_node: str, pingers: Mapping[str, str], *,
                    seconds: float = 8.0) -> Outcome:
    """Migrate VM `name` to `to_node` while each `pingers` namespace pings its address (every
    10 ms for `seconds`), and the routes to the VM's two addresses are logged at the spines and
    on both nodes."""
    vm = load_vm(lab.paths, name)
    addresses = [str(vm.ip4.ip), str(vm.ip6.ip)]
    devices = [*probe.spines(lab), vm.node, to_node]
    logs = [RouteLog(lab, device, addresses) for device in devices]
    pings = [Pinger(netns, address, seconds=seconds) for address, netns in pingers.items()]
    for log in logs:
        log.start()
    try:
        for ping in pings:
            ping.start()
        for ping in pings:
            ping.wait_replies(LEAD_IN_REPLIES)
        migration = migrate_vm(lab.paths, lab.topology, name, to_node)
        results = {ping.address: ping.result() for ping in pings}
    finally:
        for ping in pings:
            ping.stop()
        for log in logs:
            log.stop()
    return Outcome(migration, results,
                   {log.device: {a: log.changes(a) for a in addresses} for log in logs})


__all__ = ["Outcome", "joined", "left", "missing_since", "via", "watch_migration"]
