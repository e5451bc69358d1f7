"""The kernel diff, by properties on an in-memory kernel: one apply reaches the desired state,
a second diff is empty, and state of other owners is never in a change set."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address, ip_network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ovn_fabric.dataplane.kernel_state import (
    BridgeAddress,
    KernelState,
    Sysctl,
    bridge_sysctls,
    canonical_address,
    canonical_mac,
    diff,
    neighbour_order,
    route_order,
)
from ovn_fabric.model import (
    DRAINING_METRIC,
    BridgeSetup,
    DesiredState,
    HostRoute,
    IPAddress,
    Neighbour,
)
from tests.dataplane.memkernel import OURS, MemKernel, route_key

DEVICES = ("br-ex", "br-vlan")
MISSING = "br-gone"

v4 = st.integers(0, 15).map(lambda i: IPv4Address(f"10.0.0.{i}"))
v6 = st.integers(0, 15).map(lambda i: IPv6Address(f"2001:db8::{i:x}"))
addresses = st.one_of(v4, v6)
macs = st.integers(0, 3).map(lambda i: f"02:00:00:00:00:{i:02x}")
devices = st.sampled_from(DEVICES)


@st.composite
def host_routes(draw: st.DrawFn, devs: st.SearchStrategy[str] = devices) -> HostRoute:
    ip: IPAddress = draw(addresses)
    gateway: IPAddress = IPv4Address("172.24.4.9") if ip.version == 4 else IPv6Address(
        "2001:db8:ff::9")
    via = draw(st.sampled_from([None, gateway]))
    return HostRoute(ip_network(ip), draw(devs), via, draining=draw(st.booleans()))


@st.composite
def neighbours(draw: st.DrawFn, devs: st.SearchStrategy[str] = devices) -> Neighbour:
    return Neighbour(draw(addresses), draw(macs), draw(devs))


gateways = st.sampled_from(["172.24.4.1/24", "172.24.4.1/25", "2001:db8:ff::1/64", "10.9.9.1/30"])


@st.composite
def desired_states(draw: st.DrawFn, devs: st.SearchStrategy[str] = devices) -> DesiredState:
    bridges = draw(st.lists(st.builds(
        BridgeSetup, devs, st.lists(gateways, max_size=2, unique=True).map(tuple)),
        max_size=2, unique_by=lambda b: b.bridge))
    return DesiredState(
        routes=frozenset(draw(st.lists(host_routes(devs), max_size=12))),
        neighbours=frozenset(draw(st.lists(neighbours(devs), max_size=12))),
        bridges=frozenset(bridges),
    )


@st.composite
def kernels(draw: st.DrawFn, foreign: bool = True) -> MemKernel:
    """A kernel holding state of ours and, optionally, of others, plus dynamic ARP cache."""
    kernel = MemKernel(devices=set(DEVICES), down=set(draw(st.lists(devices, max_size=2))))
    for route in draw(st.lists(host_routes(), max_size=12)):
        kernel.put_route(OURS, route)
    for n in draw(st.lists(neighbours(), max_size=12)):
        kernel.neighbours[(n.ip, n.dev)] = (OURS, n)
    for n in draw(st.lists(neighbours(), max_size=4)):
        kernel.neighbours.setdefault((n.ip, n.dev), ("dynamic", n))
    for dev, gw in draw(st.lists(st.tuples(devices, gateways), max_size=3)):
        kernel.addresses[BridgeAddress(dev, gw)] = OURS
    for sysctl in draw(st.sets(st.sampled_from(sorted(bridge_sysctls(DEVICES))))):
        kernel.sysctls[sysctl.path] = "7"   # a wrong value to be fixed
    if foreign:
        for route in draw(st.lists(host_routes(), max_size=4)):
            kernel.put_route("static", route)
        for n in draw(st.lists(neighbours(), max_size=4)):
            kernel.neighbours[(n.ip, n.dev)] = ("static", n)
        for dev, gw in draw(st.lists(st.tuples(devices, gateways), max_size=2)):
            kernel.addresses.setdefault(BridgeAddress(dev, gw), "static")
    return kernel


def expected_ours(desired: DesiredState) -> KernelState:
    """What a kernel with every device and no other owner holds after a sync."""
    routes: dict[object, HostRoute] = {}
    for route in sorted(desired.routes, key=route_order):
        routes.setdefault(route.dst, route)
    neighs: dict[object, Neighbour] = {}
    for n in sorted(desired.neighbours, key=neighbour_order):
        neighs.setdefault((n.ip, n.dev), n)
    return KernelState(
        routes=frozenset(routes.values()),
        neighbours=frozenset(neighs.values()),
        addresses=frozenset(BridgeAddress(b.bridge, g) for b in desired.bridges
                            for g in b.gateways),
    )


@settings(max_examples=300)
@given(desired_states(), kernels(foreign=False))
def test_one_apply_reaches_the_desired_state(desired: DesiredState, kernel: MemKernel) -> None:
    kernel.apply(diff(desired, kernel.read()))
    after = kernel.read()
    want = expected_ours(desired)
    assert not kernel.failures
    assert after.routes == want.routes
    assert after.neighbours == want.neighbours
    assert after.addresses == want.addresses
    wanted_bridges = {b.bridge for b in desired.bridges}
    assert bridge_sysctls(wanted_bridges) <= after.sysctls
    assert not (after.down & wanted_bridges)
    assert diff(desired, after).operations == 0


@settings(max_examples=300)
@given(desired_states(), kernels())
def test_state_of_other_owners_is_never_touched(desired: DesiredState,
                                                 kernel: MemKernel) -> None:
    before = kernel.foreign()
    actual = kernel.read()
    changes = diff(desired, actual)
    assert set(changes.delete_routes) <= actual.routes
    assert set(changes.delete_neighbours) <= actual.neighbours
    assert set(changes.delete_addresses) <= actual.addresses
    pinned = {(n.ip, n.dev) for n in actual.foreign_neighbours}
    assert not {(n.ip, n.dev) for n in changes.set_neighbours} & pinned
    assert {r.dst for r in changes.replace_routes} <= {r.dst for r in actual.routes}
    kernel.apply(changes)
    assert kernel.foreign() == before
    # What is left to do after one round is exactly what other owners hold.
    again = diff(desired, kernel.read())
    assert not again.delete_routes
    assert not again.delete_neighbours
    assert not again.replace_routes
    assert not again.set_neighbours
    foreign_keys = {key for key, (owner, _) in kernel.routes.items() if owner != OURS}
    assert {route_key(r) for r in again.add_routes} <= foreign_keys


@given(desired_states(devs=st.sampled_from((*DEVICES, MISSING))), kernels(foreign=False))
def test_missing_device_is_blocked_and_the_rest_applied(desired: DesiredState,
                                                         kernel: MemKernel) -> None:
    changes = diff(desired, kernel.read())
    every: list[HostRoute | Neighbour | BridgeAddress] = [
        *changes.add_routes, *changes.replace_routes, *changes.set_neighbours,
        *changes.add_addresses]
    assert all(item.dev != MISSING for item in every)
    mentions_missing = any(r.dev == MISSING for r in desired.routes) or any(
        n.dev == MISSING for n in desired.neighbours) or any(
        b.bridge == MISSING for b in desired.bridges)
    assert mentions_missing == any(MISSING in b.reason for b in changes.blocked)
    kernel.apply(changes)
    assert not kernel.failures
    present = DesiredState(
        routes=frozenset(r for r in desired.routes if r.dev != MISSING),
        neighbours=frozenset(n for n in desired.neighbours if n.dev != MISSING),
        bridges=frozenset(b for b in desired.bridges if b.bridge != MISSING),
    )
    assert kernel.read().routes == expected_ours(present).routes
    assert kernel.read().neighbours == expected_ours(present).neighbours


def test_a_changed_next_hop_is_replaced_not_withdrawn() -> None:
    dst = ip_network("10.1.2.3/32")
    old = HostRoute(dst, "br-ex")
    new = HostRoute(dst, "br-ex", IPv4Address("172.24.4.9"))
    changes = diff(DesiredState(routes=frozenset({new})),
                   KernelState(routes=frozenset({old}), devices=frozenset({"br-ex"})))
    assert changes.replace_routes == (new,)
    assert changes.delete_routes == ()
    assert changes.add_routes == ()


@pytest.mark.parametrize("to_draining", [True, False], ids=["drain", "undrain"])
def test_a_route_that_starts_or_stops_draining_is_made_before_the_old_one_goes(
        to_draining: bool) -> None:
    """Another metric is another route to the kernel: add the new one, then retire the old."""
    dst = ip_network("10.1.2.3/32")
    old = HostRoute(dst, "br-ex", draining=not to_draining)
    new = HostRoute(dst, "br-ex", draining=to_draining)
    changes = diff(DesiredState(routes=frozenset({new})),
                   KernelState(routes=frozenset({old}), devices=frozenset({"br-ex"})))
    assert (changes.add_routes, changes.retire_routes) == ((new,), (old,))
    assert changes.delete_routes == changes.replace_routes == ()


def test_several_routes_of_ours_for_one_destination_collapse_to_the_wanted_one() -> None:
    dst = ip_network("10.1.2.3/32")
    a, b = HostRoute(dst, "br-ex"), HostRoute(dst, "br-vlan")
    wanted = HostRoute(dst, "br-ex", IPv4Address("172.24.4.9"))
    actual = KernelState(routes=frozenset({a, b}), devices=frozenset(DEVICES))
    changes = diff(DesiredState(routes=frozenset({wanted})), actual)
    assert set(changes.delete_routes) == {a, b}
    assert changes.add_routes == (wanted,)
    keep = diff(DesiredState(routes=frozenset({a})), actual)
    assert keep.delete_routes == (b,)
    assert keep.operations == 1


def test_a_route_of_ours_in_a_foreign_shape_is_deleted() -> None:
    stray = HostRoute(ip_network("10.1.2.3/32"), "")   # e.g. multipath: never wanted
    changes = diff(DesiredState(), KernelState(routes=frozenset({stray})))
    assert changes.delete_routes == (stray,)


def test_neighbour_mac_is_compared_canonically() -> None:
    ip = IPv4Address("10.0.0.5")
    actual = KernelState(neighbours=frozenset({Neighbour(ip, "02:aa:00:00:00:01", "br-ex")}),
                         devices=frozenset({"br-ex"}))
    desired = DesiredState(neighbours=frozenset({Neighbour(ip, "02:AA:00:00:00:01", "br-ex")}))
    assert diff(desired, actual).operations == 0
    bad = DesiredState(neighbours=frozenset({Neighbour(ip, "not-a-mac", "br-ex")}))
    changes = diff(bad, actual)
    assert changes.set_neighbours == ()
    assert changes.blocked[0].reason == "not a MAC address"


def test_sysctls_are_set_only_when_they_differ() -> None:
    wanted = bridge_sysctls(["br-ex"])
    assert Sysctl("net/ipv4/conf/br-ex/proxy_arp", "1") in wanted
    assert Sysctl("net/ipv6/neigh/br-ex/proxy_delay", "0") in wanted
    assert Sysctl("net/ipv4/ip_forward", "1") in wanted
    actual = KernelState(sysctls=wanted, devices=frozenset({"br-ex"}))
    desired = DesiredState(bridges=frozenset({BridgeSetup("br-ex")}))
    assert diff(desired, actual).operations == 0
    assert bridge_sysctls([]) == frozenset()


def test_canonical_forms() -> None:
    assert canonical_mac("02-AA-0b-00-00-01") == "02:aa:0b:00:00:01"
    assert canonical_mac("02:aa:0b:00:00") is None
    assert canonical_address("2001:DB8:0::1/64") == "2001:db8::1/64"
    assert canonical_address("172.24.4.1") is None
    assert canonical_address("172.24.4.300/24") is None


def test_a_destination_wanted_plain_and_draining_settles_on_the_plain_route() -> None:
    """Which twin wins must not hang on a set's iteration order (hypothesis found a case where
    the diff and a check over a subset of the same routes picked different ones). 32 pairs, so
    that an order-dependent pick would lose at least one of them."""
    plain = [HostRoute(ip_network(f"10.0.0.{i}/32"), "br-ex") for i in range(32)]
    draining = [replace(route, draining=True) for route in plain]
    changes = diff(DesiredState(routes=frozenset(plain + draining)),
                   KernelState(devices=frozenset(DEVICES)))
    assert changes.add_routes == tuple(plain)
    assert {b.what for b in changes.blocked} == {
        f"route {r.dst} dev br-ex metric {DRAINING_METRIC} (draining)" for r in draining}
