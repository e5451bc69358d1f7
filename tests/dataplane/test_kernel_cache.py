"""The kernel driver's belief (dataplane/kernel_cache.py): between read-backs it diffs only what
changed, and it must never let a wrong belief skip a wanted change, hide a touch from outside,
or overwrite another owner's state. Pure tests run BeliefSync on the in-memory kernel; the last
test runs the real driver and the real netlink watch in a namespace."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, ip_network

from hypothesis import given, settings
from hypothesis import strategies as st

from ovn_fabric.agent.kernel_watch import KernelWatch, touch_of
from ovn_fabric.dataplane import _rtnl
from ovn_fabric.dataplane._netns import run_in_netns
from ovn_fabric.dataplane.kernel import ApplyReport, BeliefSync, Failure, KernelDriver
from ovn_fabric.dataplane.kernel_cache import Touch, TouchKind
from ovn_fabric.dataplane.kernel_state import KernelChanges, KernelState
from ovn_fabric.lab.sh import run, wait_until
from ovn_fabric.model import DRAINING_METRIC, BridgeSetup, DesiredState, HostRoute, Neighbour

from .memkernel import OURS, MemKernel, route_key

BRIDGES = frozenset({BridgeSetup("br-ex", ("172.24.4.1/24",))})


@dataclass
class MemIO:
    """The in-memory kernel behind BeliefSync, counting read-backs."""

    mem: MemKernel = field(default_factory=lambda: MemKernel(devices={"br-ex", "lo"}))
    reads: int = 0

    def read(self, bridges: Iterable[str] = ()) -> KernelState:
        self.reads += 1
        return self.mem.read()

    def apply(self, changes: KernelChanges) -> ApplyReport:
        before = len(self.mem.failures)
        self.mem.apply(changes)
        failures = tuple(Failure(f, 1, "refused") for f in self.mem.failures[before:])
        return ApplyReport(attempted=changes.operations, failures=failures)

    def ours(self) -> tuple[frozenset[HostRoute], frozenset[Neighbour]]:
        state = self.mem.read()
        return state.routes, state.neighbours


def route(i: int, via: str | None = None, *, draining: bool = False) -> HostRoute:
    return HostRoute(ip_network(f"172.24.4.{10 + i}/32"), "br-ex",
                     IPv4Address(via) if via else None, draining=draining)


def neighbour(i: int, mac_byte: int = 0) -> Neighbour:
    return Neighbour(IPv4Address(f"172.24.4.{10 + i}"), f"fa:16:3e:00:{mac_byte:02x}:{i:02x}",
                     "br-ex")


def workloads(indexes: Iterable[int], mac_byte: int = 0, *,
              draining: bool = False) -> DesiredState:
    wanted = sorted(set(indexes))
    return DesiredState(routes=frozenset(route(i, draining=draining) for i in wanted),
                        neighbours=frozenset(neighbour(i, mac_byte) for i in wanted),
                        bridges=BRIDGES)


def synced(io: MemIO, desired: DesiredState) -> bool:
    return io.ours() == (desired.routes, desired.neighbours)


def test_after_a_complete_round_only_what_changed_is_diffed_and_nothing_is_read() -> None:
    io = MemIO()
    driver = BeliefSync(io)
    first = driver.sync(workloads(range(50)))
    assert first.report.ok
    assert io.reads == 1
    result = driver.sync(workloads([*range(1, 50), 60]))
    assert io.reads == 1                               # no read-back
    assert result.changes.delete_routes == (route(0),)
    assert result.changes.add_routes == (route(60),)
    assert result.changes.delete_neighbours == (neighbour(0),)
    assert result.changes.set_neighbours == (neighbour(60),)
    assert synced(io, workloads([*range(1, 50), 60]))
    assert driver.sync(workloads([*range(1, 50), 60])).changes.operations == 0
    assert io.reads == 1


def test_a_changed_next_hop_or_mac_is_replaced_not_added() -> None:
    io = MemIO()
    driver = BeliefSync(io)
    driver.sync(workloads(range(5)))
    moved = DesiredState(routes=frozenset({route(0, "172.24.4.200"), *map(route, range(1, 5))}),
                         neighbours=workloads(range(5), mac_byte=7).neighbours, bridges=BRIDGES)
    result = driver.sync(moved)
    assert io.reads == 1
    assert result.changes.replace_routes == (route(0, "172.24.4.200"),)
    assert result.changes.add_routes == ()
    assert len(result.changes.set_neighbours) == 5
    assert synced(io, moved)


def test_a_stale_belief_never_skips_a_wanted_change_and_a_resync_repairs_it() -> None:
    """The belief deliberately made wrong: route 3 and neighbour 4 vanish from the kernel and
    nothing says so. Wanted changes are still applied; a resync (full) repairs the rest."""
    io = MemIO()
    driver = BeliefSync(io)
    driver.sync(workloads(range(10)))
    del io.mem.routes[route_key(route(3))]
    del io.mem.neighbours[(neighbour(4).ip, "br-ex")]
    io.mem.routes[route_key(route(20))] = (OURS, route(20))   # and one of ours appears, unwanted
    wanted = workloads([*range(10), 11])
    driver.sync(wanted)
    assert route(11) in io.ours()[0]                   # the change was applied
    assert neighbour(11) in io.ours()[1]
    assert not synced(io, wanted)                      # what nobody reported is still wrong
    repair = driver.sync(wanted, full=True)
    assert repair.report.ok
    assert set(repair.changes.add_routes) == {route(3)}
    assert repair.changes.delete_routes == (route(20),)
    assert repair.changes.set_neighbours == (neighbour(4),)
    assert synced(io, wanted)
    assert driver.full_rounds == 2


def test_a_touch_the_belief_does_not_explain_makes_it_read_back_and_repair() -> None:
    io = MemIO()
    driver = BeliefSync(io)
    wanted = workloads(range(10))
    driver.sync(wanted)
    del io.mem.routes[route_key(route(3))]
    driver.note([Touch(TouchKind.ROUTE_DELETED, dst=route(3).dst)])
    assert driver.sync(wanted).changes.add_routes == (route(3),)
    assert driver.full_rounds == 2
    assert synced(io, wanted)
    io.mem.neighbours[(neighbour(5).ip, "br-ex")] = ("static", neighbour(5, mac_byte=9))
    driver.note([Touch(TouchKind.NEIGHBOUR_SET_BY_OTHER, ip=neighbour(5).ip, dev="br-ex",
                       static=True)])
    result = driver.sync(wanted)
    assert driver.full_rounds == 3
    # another owner's static entry is never overwritten: reported, and the belief dropped
    assert [b.what for b in result.changes.blocked] == [
        f"neighbour {neighbour(5).ip} lladdr {neighbour(5).mac} dev br-ex"]
    driver.sync(wanted)
    assert driver.full_rounds == 4


def test_echoes_of_our_own_changes_cost_no_read_back() -> None:
    io = MemIO()
    driver = BeliefSync(io)
    driver.sync(workloads(range(10)))
    driver.sync(workloads(range(5)))          # withdraws 5..9: the kernel echoes deletions
    driver.note([Touch(TouchKind.ROUTE_DELETED, dst=route(i).dst) for i in range(5, 10)])
    driver.note([Touch(TouchKind.NEIGHBOUR_DELETED, ip=neighbour(i).ip, dev="br-ex")
                 for i in range(5, 10)])
    driver.note([Touch(TouchKind.NEIGHBOUR_SET_BY_OTHER, ip=neighbour(7).ip, dev="br-ex")])
    assert driver.sync(workloads(range(5))).changes.operations == 0
    assert driver.full_rounds == 1
    # a route that starts draining is re-made with another metric, the old one retired: the
    # retired one's deletion echoes, with the plain metric, and agrees with the belief
    driver.sync(workloads(range(5), draining=True))
    driver.note([Touch(TouchKind.ROUTE_DELETED, dst=route(i).dst, draining=False)
                 for i in range(5)])
    assert driver.sync(workloads(range(5), draining=True)).changes.operations == 0
    assert driver.full_rounds == 1
    driver.note([Touch(TouchKind.ROUTE_DELETED, dst=route(0).dst, draining=True)])
    driver.sync(workloads(range(5), draining=True))
    assert driver.full_rounds == 2                      # the draining one itself: read back
    driver.sync(workloads(range(5)))
    # an echo that arrives after the route came back contradicts: one needless read-back
    driver.sync(workloads(range(6)))
    driver.note([Touch(TouchKind.ROUTE_DELETED, dst=route(5).dst)])
    assert driver.sync(workloads(range(6))).changes.operations == 0
    assert driver.full_rounds == 3


def test_a_failed_round_or_new_bridge_settings_make_the_next_round_read_back() -> None:
    io = MemIO()
    driver = BeliefSync(io)
    driver.sync(workloads(range(3)))
    io.mem.routes[route_key(route(7))] = ("static", route(7))  # another owner holds route 7's key
    refused = driver.sync(workloads(range(8)))
    assert not refused.report.ok
    assert driver.full_rounds == 1
    driver.sync(workloads(range(8)))
    assert driver.full_rounds == 2
    moved = DesiredState(routes=workloads(range(3)).routes,
                         neighbours=workloads(range(3)).neighbours,
                         bridges=frozenset({BridgeSetup("br-ex", ("172.24.4.2/24",))}))
    del io.mem.routes[route_key(route(7))]
    driver.sync(workloads(range(3)))
    rounds = driver.full_rounds
    driver.sync(moved)
    assert driver.full_rounds == rounds + 1


tampering = st.sampled_from(["delete route", "delete neighbour", "foreign neighbour",
                             "foreign route", "nothing"])


@given(st.lists(st.tuples(st.frozensets(st.integers(0, 12), max_size=10),
                          st.integers(0, 2), tampering, st.integers(0, 12)),
                min_size=1, max_size=12))
@settings(max_examples=300)
def test_with_every_outside_change_reported_a_round_leaves_what_a_full_round_would(
        steps: list[tuple[frozenset[int], int, str, int]]) -> None:
    """Random desired states, with random changes from outside between rounds, each reported
    as the watch would. After every round, the kernel holds what a driver that reads
    everything back every time leaves in an identical kernel."""
    io, reference = MemIO(), MemIO()
    driver, full = BeliefSync(io), BeliefSync(reference)
    for indexes, mac_byte, tamper, victim in steps:
        for kernel in (io, reference):
            touch = _tamper(kernel.mem, tamper, victim)
        if touch is not None:
            driver.note([touch])
        wanted = workloads(indexes, mac_byte, draining=mac_byte == 2)   # a live migration
        driver.sync(wanted)
        full.sync(wanted, full=True)
        assert io.mem.routes == reference.mem.routes
        assert io.mem.neighbours == reference.mem.neighbours


def _tamper(mem: MemKernel, how: str, i: int) -> Touch | None:
    dst, key = route(i).dst, (neighbour(i).ip, "br-ex")
    if how == "delete route" and mem.routes.get(route_key(route(i)), ("", None))[0] == OURS:
        del mem.routes[route_key(route(i))]
        return Touch(TouchKind.ROUTE_DELETED, dst=dst)
    if how == "delete neighbour" and mem.neighbours.get(key, ("", None))[0] == OURS:
        del mem.neighbours[key]
        return Touch(TouchKind.NEIGHBOUR_DELETED, ip=key[0], dev="br-ex")
    if how == "foreign neighbour":
        mem.neighbours[key] = ("static", neighbour(i, mac_byte=0xEE))
        return Touch(TouchKind.NEIGHBOUR_SET_BY_OTHER, ip=key[0], dev="br-ex", static=True)
    if how == "foreign route":
        mem.routes[route_key(route(i))] = ("static", route(i))
        return Touch(TouchKind.ROUTE_SET_BY_OTHER, dst=dst)
    return None


def test_the_real_watch_and_driver_repair_a_hand_deletion_without_a_resync(
        kern_ns: str) -> None:
    """In a namespace: the driver programs 20 workloads, then a route and a neighbour of
    ours are deleted by hand. The netlink watch hands the events to the driver, whose next
    round (not a resync) reads back and puts them back."""
    desired = DesiredState(routes=frozenset(route(i) for i in range(20)),
                           neighbours=frozenset(neighbour(i) for i in range(20)),
                           bridges=frozenset({BridgeSetup("br-ex", ("172.24.4.1/24",))}))
    with KernelDriver(kern_ns) as kernel:
        watch = run_in_netns(kern_ns, lambda: KernelWatch(["br-ex"], lambda: None,
                                                          on_touches=kernel.note))
        run_in_netns(kern_ns, watch.start)
        try:
            assert kernel.sync(desired).report.ok
            assert kernel.sync(desired).changes.operations == 0
            ns = ["ip", "-n", kern_ns]
            run([*ns, "route", "del", str(route(3).dst), "dev", "br-ex"])
            run([*ns, "neigh", "del", str(neighbour(4).ip), "dev", "br-ex"])
            repaired: list[KernelChanges] = []

            def repair() -> bool:
                repaired.append(kernel.sync(desired).changes)
                state = kernel.read(["br-ex"])
                return state.routes == desired.routes and state.neighbours == desired.neighbours

            wait_until(repair, timeout=5, what="the hand deletions repaired by a round")
            assert route(3) in {r for c in repaired for r in c.add_routes}
        finally:
            watch.close()


def _route_body(proto: int, dst: str, length: int = 32) -> memoryview:
    header = _rtnl.rtmsg(2, length, table=254, protocol=proto, scope=0, rtype=1)
    return memoryview(header + _rtnl.attr(_rtnl.RTA_DST, IPv4Address(dst).packed))


def _neigh_body(ifindex: int, state: int, proto: int | None, ip: str) -> memoryview:
    body = _rtnl.ndmsg(2, ifindex, state) + _rtnl.attr(_rtnl.NDA_DST, IPv4Address(ip).packed)
    if proto is not None:
        body += _rtnl.attr(_rtnl.NDA_PROTOCOL, _rtnl.u8(proto))
    return memoryview(body)


def test_the_watch_reads_touches_out_of_raw_netlink_messages() -> None:
    bridges, names = frozenset({"br-ex"}), {5: "br-ex", 6: "eth0"}
    assert touch_of(_rtnl.RTM_DELROUTE, _route_body(247, "10.9.0.1"), bridges, names) == Touch(
        TouchKind.ROUTE_DELETED, dst=ip_network("10.9.0.1/32"), draining=False)
    draining = memoryview(bytes(_route_body(247, "10.9.0.1"))
                          + _rtnl.attr(_rtnl.RTA_PRIORITY, _rtnl.u32(DRAINING_METRIC)))
    assert touch_of(_rtnl.RTM_DELROUTE, draining, bridges, names) == Touch(
        TouchKind.ROUTE_DELETED, dst=ip_network("10.9.0.1/32"), draining=True)
    assert touch_of(_rtnl.RTM_DELROUTE, _route_body(186, "10.9.0.1"), bridges, names) is None
    assert touch_of(_rtnl.RTM_NEWROUTE, _route_body(186, "10.9.0.1"), bridges, names) is None
    assert touch_of(_rtnl.RTM_NEWROUTE, _route_body(4, "10.9.0.1"), bridges, names) == Touch(
        TouchKind.ROUTE_SET_BY_OTHER, dst=ip_network("10.9.0.1/32"))
    assert touch_of(_rtnl.RTM_NEWROUTE, _route_body(4, "10.9.0.0", 24), bridges, names) is None
    assert touch_of(_rtnl.RTM_DELNEIGH, _neigh_body(5, 0x80, 247, "10.9.0.1"), bridges,
                    names) == Touch(TouchKind.NEIGHBOUR_DELETED, ip=IPv4Address("10.9.0.1"),
                                    dev="br-ex")
    assert touch_of(_rtnl.RTM_NEWNEIGH, _neigh_body(5, 0x80, None, "10.9.0.1"), bridges,
                    names) == Touch(TouchKind.NEIGHBOUR_SET_BY_OTHER,
                                    ip=IPv4Address("10.9.0.1"), dev="br-ex", static=True)
    assert touch_of(_rtnl.RTM_NEWNEIGH, _neigh_body(5, 0x02, None, "10.9.0.1"), bridges,
                    names) == Touch(TouchKind.NEIGHBOUR_SET_BY_OTHER,
                                    ip=IPv4Address("10.9.0.1"), dev="br-ex", static=False)
    assert touch_of(_rtnl.RTM_NEWNEIGH, _neigh_body(6, 0x80, None, "10.9.0.1"), bridges,
                    names) is None
    assert touch_of(_rtnl.RTM_NEWNEIGH, _neigh_body(5, 0x80, 247, "10.9.0.1"), bridges,
                    names) is None
    link = memoryview(_rtnl.ifinfomsg(7) + _rtnl.attr(_rtnl.IFLA_IFNAME, b"br-ex\0"))
    assert touch_of(_rtnl.RTM_NEWLINK, link, bridges, names) == Touch(
        TouchKind.BRIDGE_CHANGED, dev="br-ex")
    assert names[7] == "br-ex"
