"""Live migration, make-before-break (issue 4, item 7), in a three-rack lab of its own (prefix
`ofm`).

VM `mig` (provider network) starts on compute1 (rack 1). An external client behind spine1 pings
its IPv4 address and VM `peer` on compute2 (rack 2) its IPv6 address, both every 10 ms, while
`mig` is migrated the way Nova and Neutron do it (lab/migration.py: requested-chassis "src,dst"
with activation-strategy=rarp, the destination's tap plugged, the VM's interface switched over,
RARP, requested-chassis "dst", unplug on the source) to compute3 (rack 3), then back. The
routes to the VM at both spines and on both nodes are logged from rtnetlink events
(lab/route_log.py), on the same clock as the pings' send times (lab/ping_log.py).

Asserted after each migration:
- the /32 and /128 end at both spines via the destination's leaves only; the source's agent
  removed its ingress routes and neighbours, the destination's has them;
- make-before-break at the spines: the destination's leaves joined the route before the
  source's left it, and the route never went missing;
- the pings resumed;
- the lost requests: all of them fall in one of two windows, and each window loses no more
  than its length allows (one request per 10 ms, plus two for requests in flight):
  1. OVN's switch-over, from the VM's interface moving until OVN on the destination has
     activated the port (RARP). Nothing can deliver to the VM in between: the source's tap is
     gone and the destination drops the port's traffic until activated. This is OVN's cost
     (measured: 60-120 ms, 3-4 requests lost);
  2. the hand-over, from Neutron's final `requested-chassis=dst` until the spines stop routing
     to the source. OVN on the source stops delivering at once, but the source's agent
     withdraws only when the SB says `chassis` is no longer it, and BGP takes its time: flows
     ECMP-hashed onto the source's leaves are lost meanwhile. This is the fabric's cost
     (measured: 0 or 9-10 requests, depending on where the flow hashes).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pytest

from ovn_fabric.lab import external, probe
from ovn_fabric.lab import vm as vmmod
from ovn_fabric.lab.lab import Lab
from ovn_fabric.lab.migration_watch import (
    IN_FLIGHT_S,
    Outcome,
    joined,
    left,
    missing_since,
    via,
    watch_migration,
)
from ovn_fabric.lab.sh import run, wait_until
from ovn_fabric.lab.vm import Vm

pytestmark = pytest.mark.lab

PREFIX = "ofm"
SOURCE, DESTINATION, PEER_NODE = "compute1", "compute3", "compute2"
CONVERGE_S = 15.0
PING_S = 8.0
IN_FLIGHT = 2       # requests that may be lost beyond a window's length (sent just before it)


@dataclass(frozen=True)
class World:
    vm: Vm
    peer: Vm
    client: external.Client

    @property
    def addresses(self) -> tuple[str, str]:
        return str(self.vm.ip4.ip), str(self.vm.ip6.ip)

    @property
    def pingers(self) -> dict[str, str]:
        """Who pings which address: the client the IPv4 one, the peer VM the IPv6 one."""
        return {str(self.vm.ip4.ip): self.client.netns, str(self.vm.ip6.ip): self.peer.netns}


def _pings(netns: str, address: str) -> bool:
    return run(["ping", "-n", "-c", "1", "-W", "1", address], netns=netns,
               check=False).returncode == 0


def _wait_served_by(lab: Lab, world: World, node: str) -> None:
    for address in world.addresses:
        wait_until(functools.partial(probe.at_spines_via, lab, address, node),
                   timeout=CONVERGE_S, what=f"{address} at both spines via {node}'s leaves only")
    for address, netns in world.pingers.items():
        wait_until(functools.partial(_pings, netns, address), timeout=CONVERGE_S,
                   interval=0.05, what=f"{address} to answer pings")


@pytest.fixture(scope="module")
def world(lab: Lab) -> World:
    vm = vmmod.add_vm(lab.paths, lab.topology, name="mig", node=SOURCE)
    peer = vmmod.add_vm(lab.paths, lab.topology, name="peer", node=PEER_NODE)
    client = external.add_client(lab, "ext")
    for node in (SOURCE, DESTINATION):
        probe.wait_learnt(lab, node, str(client.cidr), CONVERGE_S)
    made = World(vm, peer, client)
    _wait_served_by(lab, made, SOURCE)
    return made


def _ingress(lab: Lab, node: str, address: str) -> tuple[bool, bool]:
    """Whether `node` has the agent's route (proto 247, dev br-ex) and neighbour for
    `address`."""
    family = "-6" if ":" in address else "-4"
    netns = lab.netns(node)
    route = run(["ip", family, "route", "show", "exact", address, "proto", "247"],
                netns=netns).stdout.strip()
    neigh = run(["ip", family, "neigh", "show", address, "proto", "247"],
                netns=netns).stdout.strip()
    return bool(route), bool(neigh)


def _ingress_is(lab: Lab, node: str, address: str, present: bool) -> bool:
    return _ingress(lab, node, address) == (present, present)


def _check(lab: Lab, world: World, outcome: Outcome, src: str, dst: str) -> None:
    m = outcome.migration
    assert (m.source, m.vm.node) == (src, dst)
    print(f"\n{src} -> {dst}: interface moved {1000 * (m.switched - m.started):.0f} ms, "
          f"activated {1000 * (m.activated - m.started):.0f} ms, requested-chassis=dst "
          f"{1000 * (m.rebound - m.started):.0f} ms after the start")
    # Where it ends: the destination's leaves only, at both spines; the source's agent has
    # withdrawn its ingress route and neighbour, the destination's agent has them.
    _wait_served_by(lab, world, dst)
    for address in world.addresses:
        wait_until(functools.partial(_ingress_is, lab, src, address, False),
                   timeout=CONVERGE_S, what=f"{src}'s agent to withdraw {address}")
        wait_until(functools.partial(_ingress_is, lab, dst, address, True),
                   timeout=CONVERGE_S, what=f"{dst}'s agent to hold {address}")
    # Make-before-break, from the spines' own kernel events.
    for spine in probe.spines(lab):
        for address in world.addresses:
            changes = outcome.routes[spine][address]
            new = joined(changes, via(lab, spine, dst), m.started)
            old = left(changes, via(lab, spine, src), m.started)
            steps = [(round(1000 * (t - m.started)), sorted(d)) for t, d in changes]
            print(f"  {spine} {address}: {steps}")
            assert new is not None, steps
            assert old is not None, steps
            # The destination joins no later than the source leaves. With the source draining
            # (a higher MED once the destination is active), a spine swaps one for the other
            # in a single FIB update: equal times, never a gap.
            assert new <= old, f"{spine}: {src} withdrawn before {dst} advertised: {steps}"
            assert new >= m.activated, f"{spine}: {dst} advertised before activation: {steps}"
            # The source drained (a higher MED from activation on), so the spines left it
            # before Neutron's rebind, while it still delivered: the hand-over loses nothing.
            assert old < m.rebound, f"{spine}: {src} still preferred at the rebind: {steps}"
            assert not missing_since(changes, m.started), f"{spine}: route missing: {steps}"
    # The pings: resumed, and every loss explained by one of the two windows.
    switch_over, hand_over = outcome.switch_over, outcome.hand_over(lab)
    for address, ping in outcome.pings.items():
        in_switch = ping.lost_between(*switch_over)
        in_hand = ping.lost_between(*hand_over) if hand_over[0] >= switch_over[1] else 0
        print(f"  ping {address}: {ping.lost} lost of {ping.sent}, longest gap "
              f"{ping.longest_gap_ms:.0f} ms; {in_switch} in OVN's switch-over "
              f"({1000 * (switch_over[1] - switch_over[0]):.0f} ms), {in_hand} in the "
              f"hand-over ({1000 * (hand_over[1] - hand_over[0]):.0f} ms)")
        assert ping.sent in ping.sent_at, f"{address}: the ping did not resume"
        late = [s for s in ping.lost_seqs if ping.send_time(s) >= m.started - IN_FLIGHT_S]
        assert len(late) == in_switch + in_hand, (
            f"{address}: lost requests outside both windows, sent at "
            f"{outcome.lost_outside_switch_over(address)} s after the start")
        for count, (start, end) in ((in_switch, switch_over), (in_hand, hand_over)):
            assert count <= (end - start) / ping.interval_s + IN_FLIGHT, (address, count)


def test_migrates_to_another_rack_and_back_make_before_break(lab: Lab, world: World) -> None:
    for src, dst in ((SOURCE, DESTINATION), (DESTINATION, SOURCE)):
        _wait_served_by(lab, world, src)
        outcome = watch_migration(lab, world.vm.name, dst, world.pingers, seconds=PING_S)
        _check(lab, world, outcome, src, dst)


def test_a_vm_cannot_migrate_to_where_it_is(lab: Lab, world: World) -> None:
    from ovn_fabric.lab.migration import MigrationError, migrate_vm  # noqa: PLC0415

    node = vmmod.load_vm(lab.paths, world.vm.name).node
    with pytest.raises(MigrationError, match="already on"):
        migrate_vm(lab.paths, lab.topology, world.vm.name, node)
    with pytest.raises(MigrationError, match="not a chassis"):
        migrate_vm(lab.paths, lab.topology, world.vm.name, "spine1")
