"""The kernel driver against a real kernel, in a fresh namespace with a Linux bridge br-ex.

Every check reads the kernel back with iproute2 (`ip -j`), independently of the driver's own
netlink code.
"""

from __future__ import annotations

import errno
import json
import time
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any

import pytest

from ovn_fabric.dataplane._netns import NamespaceNotFoundError
from ovn_fabric.dataplane.kernel import KernelDriver, diff
from ovn_fabric.lab.sh import output, run
from ovn_fabric.model import (
    DRAINING_METRIC,
    RTPROT_OVN_FABRIC,
    BridgeSetup,
    DesiredState,
    HostRoute,
    IPAddress,
    Neighbour,
)

pytestmark = pytest.mark.lab

PROTO = str(RTPROT_OVN_FABRIC)
BR_EX = BridgeSetup("br-ex", ("172.24.4.1/24", "2001:db8:ff::1/64"))


def ip_json(netns: str, *args: str) -> list[dict[str, Any]]:
    out = output(["ip", "-n", netns, "-j", *args])
    return json.loads(out) if out.strip() else []


def routes_of(netns: str, proto: str = PROTO) -> set[tuple[str, str, str | None]]:
    """(dst, dev, gateway) of the main-table routes with a given protocol, both families."""
    found = set()
    for family in ("-4", "-6"):
        for r in ip_json(netns, family, "route", "show", "table", "main", "proto", proto):
            dst = r["dst"] if "/" in r["dst"] else f"{r['dst']}/{32 if family == '-4' else 128}"
            found.add((str(ip_network(dst)), r["dev"], r.get("gateway")))
    return found


def neighbours_of(netns: str, proto: str = PROTO) -> set[tuple[str, str, str, str]]:
    """(ip, mac, dev, state) of the neighbour entries with a given protocol."""
    return {(n["dst"], n.get("lladdr", ""), n["dev"], ",".join(n["state"]))
            for n in ip_json(netns, "neigh", "show", "proto", proto)}


def addresses_of(netns: str, dev: str = "br-ex") -> set[str]:
    return {f"{a['local']}/{a['prefixlen']}"
            for link in ip_json(netns, "addr", "show", "dev", dev)
            for a in link["addr_info"] if a.get("scope") == "global"}


def sysctl(netns: str, name: str) -> str:
    return output(["sysctl", "-n", name], netns=netns).strip()


def workload(i: int) -> IPAddress:
    return IPv4Address(f"10.{i // 250}.{i % 250}.7") if i % 2 else IPv6Address(f"2001:db8::{i:x}")


def workloads(n: int, bridges: frozenset[BridgeSetup] = frozenset({BR_EX})) -> DesiredState:
    ips = [workload(i) for i in range(n)]
    return DesiredState(
        routes=frozenset(HostRoute(ip_network(ip), "br-ex") for ip in ips),
        neighbours=frozenset(Neighbour(ip, f"02:00:00:00:{i // 256:02x}:{i % 256:02x}", "br-ex")
                             for i, ip in enumerate(ips)),
        bridges=bridges,
    )


def expected_routes(desired: DesiredState) -> set[tuple[str, str, str | None]]:
    return {(str(r.dst), r.dev, str(r.via) if r.via else None) for r in desired.routes}


def expected_neighbours(desired: DesiredState) -> set[tuple[str, str, str, str]]:
    return {(str(n.ip), n.mac, n.dev, "PERMANENT") for n in desired.neighbours}


def test_programs_routes_neighbours_addresses_and_sysctls(kern_ns: str) -> None:
    desired = workloads(6)
    via_v4 = HostRoute(ip_network("192.0.2.0/24"), "br-ex", ip_address("172.24.4.20"))
    via_v6 = HostRoute(ip_network("2001:db8:77::/64"), "br-ex", ip_address("2001:db8:ff::20"))
    desired = DesiredState(routes=desired.routes | {via_v4, via_v6},
                           neighbours=desired.neighbours, bridges=desired.bridges)
    with KernelDriver(kern_ns) as kernel:
        result = kernel.sync(desired)
    assert result.report.ok, result.report.failures
    assert result.changes.blocked == ()
    assert routes_of(kern_ns) == expected_routes(desired)
    assert neighbours_of(kern_ns) == expected_neighbours(desired)
    assert addresses_of(kern_ns) == {"172.24.4.1/24", "2001:db8:ff::1/64"}
    # The addresses carry our marker (IFA_PROTO), so no one else's is ever mistaken for ours.
    with KernelDriver(kern_ns) as kernel:
        assert {a.address for a in kernel.read().addresses} == addresses_of(kern_ns)
    # Dev routes are scope link, as `ip route add IP/32 dev br-ex proto 247` makes them.
    v4 = ip_json(kern_ns, "-4", "route", "show", "table", "main", "proto", PROTO)
    assert {r["scope"] for r in v4 if "gateway" not in r} == {"link"}
    for name, value in [
        ("net.ipv4.conf.br-ex.proxy_arp", "1"), ("net.ipv6.conf.br-ex.proxy_ndp", "1"),
        ("net.ipv4.neigh.br-ex.proxy_delay", "0"), ("net.ipv6.neigh.br-ex.proxy_delay", "0"),
        ("net.ipv4.ip_forward", "1"), ("net.ipv6.conf.all.forwarding", "1"),
        ("net.ipv4.conf.br-ex.forwarding", "1"), ("net.ipv6.conf.br-ex.forwarding", "1"),
    ]:
        assert sysctl(kern_ns, name) == value, name


def test_second_sync_changes_nothing_and_same_changes_reapply_cleanly(kern_ns: str) -> None:
    desired = workloads(20)
    with KernelDriver(kern_ns) as kernel:
        first = kernel.read(["br-ex"])
        changes = diff(desired, first)
        assert kernel.apply(changes).ok
        again = kernel.sync(desired)
        assert again.changes.operations == 0
        assert again.report.attempted == 0
        # The very same change set once more: exclusive creates meet EEXIST on what is now
        # ours and equal, deletes meet ENOENT; all of it counts as done.
        assert kernel.apply(changes).failures == ()
    assert routes_of(kern_ns) == expected_routes(desired)


def test_state_of_other_owners_is_left_alone(kern_ns: str) -> None:
    ns = ["ip", "-n", kern_ns]
    run([*ns, "route", "add", "10.77.0.1/32", "dev", "br-ex", "proto", "static"])
    run([*ns, "route", "add", "10.77.0.2/32", "dev", "br-ex"])           # proto boot
    run([*ns, "-6", "route", "add", "2001:db8:77::1/128", "dev", "br-ex", "proto", "bgp"])
    run([*ns, "neigh", "add", "10.77.0.1", "lladdr", "02:77:00:00:00:01", "dev", "br-ex",
         "nud", "permanent"])
    run([*ns, "addr", "add", "10.77.0.254/24", "dev", "br-ex"])
    foreign_routes = {*routes_of(kern_ns, "static"), *routes_of(kern_ns, "boot"),
                      *routes_of(kern_ns, "bgp")}
    foreign_neigh = ip_json(kern_ns, "neigh", "show", "10.77.0.1", "dev", "br-ex")

    # Wanted: ours, plus a route and a neighbour whose keys other owners hold.
    clash_route = HostRoute(ip_network("10.77.0.2/32"), "br-ex")
    clash_neigh = Neighbour(IPv4Address("10.77.0.1"), "02:00:00:00:00:99", "br-ex")
    base = workloads(4)
    desired = DesiredState(routes=base.routes | {clash_route},
                           neighbours=base.neighbours | {clash_neigh}, bridges=base.bridges)
    with KernelDriver(kern_ns) as kernel:
        result = kernel.sync(desired)
        # Then withdraw everything of ours.
        withdraw = kernel.sync(DesiredState())

    failures = {(f.what, f.error) for f in result.report.failures}
    assert failures == {("route 10.77.0.2/32 dev br-ex", errno.EEXIST)}
    assert [b.what for b in result.changes.blocked] == [
        "neighbour 10.77.0.1 lladdr 02:00:00:00:00:99 dev br-ex"]
    assert withdraw.report.ok
    assert routes_of(kern_ns) == set()
    assert neighbours_of(kern_ns) == set()
    assert addresses_of(kern_ns) == {"10.77.0.254/24"}
    assert {*routes_of(kern_ns, "static"), *routes_of(kern_ns, "boot"),
            *routes_of(kern_ns, "bgp")} == foreign_routes
    assert ip_json(kern_ns, "neigh", "show", "10.77.0.1", "dev", "br-ex") == foreign_neigh


def test_state_deleted_by_hand_is_restored(kern_ns: str) -> None:
    desired = workloads(10)
    ns = ["ip", "-n", kern_ns]
    with KernelDriver(kern_ns) as kernel:
        assert kernel.sync(desired).report.ok
        victim_route = sorted(expected_routes(desired))[0][0]
        victim_neigh = sorted(expected_neighbours(desired))[0][0]
        run([*ns, "route", "del", victim_route, "dev", "br-ex"])
        run([*ns, "neigh", "del", victim_neigh, "dev", "br-ex"])
        run([*ns, "addr", "del", "2001:db8:ff::1/64", "dev", "br-ex"])
        run(["sysctl", "-qw", "net.ipv4.conf.br-ex.proxy_arp=0"], netns=kern_ns)
        # Nothing told the driver (no netlink watch here): a resync reads everything back.
        # (test_kernel_cache.py: the watch's touches make it read back by themselves.)
        repair = kernel.sync(desired, full=True)
        assert repair.report.ok, repair.report.failures
        # The sysctl, the address, the route, the neighbour; nothing else.
        assert repair.changes.operations == 4
        assert routes_of(kern_ns) == expected_routes(desired)
        assert neighbours_of(kern_ns) == expected_neighbours(desired)
        assert "2001:db8:ff::1/64" in addresses_of(kern_ns)
        assert sysctl(kern_ns, "net.ipv4.conf.br-ex.proxy_arp") == "1"

        # Deleting the bridge's last IPv4 address makes the kernel flush every IPv4 route and
        # neighbour on it: all of them come back.
        run([*ns, "addr", "del", "172.24.4.1/24", "dev", "br-ex"])
        assert routes_of(kern_ns) != expected_routes(desired)
        assert kernel.sync(desired, full=True).report.ok
        assert routes_of(kern_ns) == expected_routes(desired)
        assert neighbours_of(kern_ns) == expected_neighbours(desired)

        # A bridge set down loses its routes, neighbours and IPv6 addresses: all come back.
        run([*ns, "link", "set", "br-ex", "down"])
        assert routes_of(kern_ns) != expected_routes(desired)
        again = kernel.sync(desired, full=True)
    assert again.report.ok, again.report.failures
    assert "br-ex" in again.changes.set_up
    assert routes_of(kern_ns) == expected_routes(desired)
    assert neighbours_of(kern_ns) == expected_neighbours(desired)
    assert addresses_of(kern_ns) == {"172.24.4.1/24", "2001:db8:ff::1/64"}


def test_changing_the_gateways_keeps_the_routes(kern_ns: str) -> None:
    """New gateway addresses are added before the old ones go, so the bridge never loses its
    last IPv4 address (which would flush its routes and withdraw them from BGP)."""
    desired = workloads(10)
    moved = DesiredState(routes=desired.routes, neighbours=desired.neighbours,
                         bridges=frozenset({BridgeSetup("br-ex", ("172.24.5.1/24",
                                                                  "2001:db8:ff::1/56"))}))
    with KernelDriver(kern_ns) as kernel:
        assert kernel.sync(desired).report.ok
        result = kernel.sync(moved)
    assert result.report.ok, result.report.failures
    assert result.rounds == 1, "the kernel flushed routes: a second round was needed"
    assert addresses_of(kern_ns) == {"172.24.5.1/24", "2001:db8:ff::1/56"}
    assert routes_of(kern_ns) == expected_routes(desired)
    assert neighbours_of(kern_ns) == expected_neighbours(desired)


def test_a_missing_bridge_is_reported_and_the_others_applied(kern_ns: str) -> None:
    base = workloads(4)
    elsewhere = HostRoute(ip_network("10.88.0.1/32"), "br-missing")
    desired = DesiredState(
        routes=base.routes | {elsewhere},
        neighbours=base.neighbours | {Neighbour(IPv4Address("10.88.0.1"), "02:00:00:00:00:01",
                                                "br-missing")},
        bridges=base.bridges | {BridgeSetup("br-missing", ("10.88.0.254/24",))},
    )
    with KernelDriver(kern_ns) as kernel:
        result = kernel.sync(desired)
        assert result.report.ok
        assert {b.reason for b in result.changes.blocked} == {"device 'br-missing' does not exist"}
        assert len(result.changes.blocked) == 4
        assert routes_of(kern_ns) == expected_routes(base)

        # A bridge that disappears between read and apply: that bridge fails, the rest applies.
        run(["ip", "-n", kern_ns, "link", "add", "br-late", "type", "bridge"])
        run(["ip", "-n", kern_ns, "link", "set", "br-late", "up"])
        late = HostRoute(ip_network("10.99.0.1/32"), "br-late")
        more = HostRoute(ip_network("10.99.0.2/32"), "br-ex")
        wanted = DesiredState(routes=base.routes | {late, more}, neighbours=base.neighbours,
                              bridges=base.bridges)
        changes = diff(wanted, kernel.read(["br-ex"]))
        run(["ip", "-n", kern_ns, "link", "del", "br-late"])
        report = kernel.apply(changes)
    assert [(f.what, f.error) for f in report.failures] == [
        ("route 10.99.0.1/32 dev br-late", errno.ENODEV)]
    assert ("10.99.0.2/32", "br-ex", None) in routes_of(kern_ns)


def test_a_namespace_that_does_not_exist_is_an_error_not_created() -> None:
    with pytest.raises(NamespaceNotFoundError, match="hk-nonexistent"):
        KernelDriver("hk-nonexistent")
    assert "hk-nonexistent" not in output(["ip", "netns", "list"])


def test_three_thousand_workloads(kern_ns: str, capsys: pytest.CaptureFixture[str]) -> None:
    """3,000 workloads = 3,000 routes + 3,000 permanent neighbours (half IPv4, half IPv6).
    Times are reported, not asserted."""
    desired = workloads(3000)
    with KernelDriver(kern_ns) as kernel:
        t0 = time.perf_counter()
        actual = kernel.read(["br-ex"])
        t1 = time.perf_counter()
        changes = diff(desired, actual)
        t2 = time.perf_counter()
        report = kernel.apply(changes)
        t3 = time.perf_counter()
        full = kernel.read(["br-ex"])
        t4 = time.perf_counter()
        steady = diff(desired, full)
        t5 = time.perf_counter()
        withdraw = kernel.apply(diff(DesiredState(bridges=desired.bridges), full))
        t6 = time.perf_counter()
    assert report.ok, report.failures[:5]
    assert len(full.routes) == 3000
    assert len(full.neighbours) == 3000
    assert steady.operations == 0
    assert withdraw.ok
    with capsys.disabled():
        print(f"\n3,000 workloads: read(empty) {1e3 * (t1 - t0):.1f} ms, "
              f"diff {1e3 * (t2 - t1):.1f} ms, apply {changes.operations} ops "
              f"{1e3 * (t3 - t2):.1f} ms, read(full) {1e3 * (t4 - t3):.1f} ms, "
              f"diff(steady) {1e3 * (t5 - t4):.1f} ms, withdraw 6,000 "
              f"{1e3 * (t6 - t5):.1f} ms")
    assert routes_of(kern_ns) == set()
    assert neighbours_of(kern_ns) == set()


def test_a_route_drains_and_undrains_by_metric_without_a_gap(kern_ns: str) -> None:
    """Draining (live-migration source) is the same route at DRAINING_METRIC. The kernel counts
    another metric as another route: the driver adds the new one before deleting the old, so
    the destination always has a route (zebra, hence BGP, sees an update, not a withdrawal)."""
    plain = workloads(4)
    draining = DesiredState(
        routes=frozenset(HostRoute(r.dst, r.dev, r.via, draining=True) for r in plain.routes),
        neighbours=plain.neighbours, bridges=plain.bridges)

    def metrics() -> dict[str, set[int]]:
        found: dict[str, set[int]] = {}
        for family in ("-4", "-6"):
            for r in ip_json(kern_ns, family, "route", "show", "table", "main", "proto", PROTO):
                found.setdefault(r["dst"], set()).add(int(r.get("metric", 0)))
        return found

    with KernelDriver(kern_ns) as kernel:
        assert kernel.sync(plain).report.ok
        plain_metrics = metrics()
        assert {m for ms in plain_metrics.values() for m in ms} <= {0, 1024}   # v4 0, v6 1024
        drained = kernel.sync(draining)
        assert drained.report.ok, drained.report.failures
        assert len(drained.changes.add_routes) == len(drained.changes.retire_routes) == 4
        assert drained.changes.delete_routes == ()
        assert metrics() == {dst: {DRAINING_METRIC} for dst in plain_metrics}
        assert kernel.read().routes == draining.routes
        assert kernel.sync(draining).changes.operations == 0
        assert kernel.sync(plain).report.ok
        assert metrics() == plain_metrics
