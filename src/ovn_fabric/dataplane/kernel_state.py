"""Kernel state the agent owns, and the pure diff between what is wanted and what is there.

No I/O here. The rules:

- Ours is what carries our marker: routes in the main table with protocol 247, neighbour entries
  with NDA_PROTOCOL 247, addresses with IFA_PROTO 247 (RTPROT_OVN_FABRIC). Anything of ours
  that is not wanted is deleted; withdrawal is absence from the desired set.
- Another owner's state is never overwritten: a new route or address is created exclusively
  (the kernel answers EEXIST if someone else's occupies the key), and a wanted neighbour whose
  (ip, dev) holds someone else's static entry (permanent, noarp or externally learned) is
  blocked. Dynamic entries the kernel learnt by ARP/ND are cache, not owned state: our permanent
  entry supersedes them, as Neutron DVR's static ARP does.
- Sysctls carry no marker: the driver sets the ones a managed bridge needs and never reverts them.
- Anything wanted on a device that does not exist is blocked with a reason; the rest goes on.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import ip_interface
from itertools import chain

from ovn_fabric.model import (
    DRAINING_METRIC,
    BridgeSetup,
    DesiredState,
    HostRoute,
    IPAddress,
    IPNetwork,
    Neighbour,
)

# Node-wide sysctls a routing provider bridge needs (set, never reverted).
GLOBAL_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("net/ipv4/ip_forward", "1"),
    ("net/ipv6/conf/all/forwarding", "1"),
)
# Per-bridge sysctls, "{dev}" replaced by the bridge name.
BRIDGE_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("net/ipv4/conf/{dev}/forwarding", "1"),
    ("net/ipv4/conf/{dev}/proxy_arp", "1"),
    ("net/ipv4/neigh/{dev}/proxy_delay", "0"),
    ("net/ipv6/conf/{dev}/forwarding", "1"),
    ("net/ipv6/conf/{dev}/proxy_ndp", "1"),
    ("net/ipv6/neigh/{dev}/proxy_delay", "0"),
)
_MAC_LEN = 6
_CANONICAL_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")


@dataclass(frozen=True, slots=True, order=True)
class BridgeAddress:
    """An address of ours on a bridge, canonical "addr/len" text (compressed for IPv6)."""

    dev: str
    address: str


@dataclass(frozen=True, slots=True, order=True)
class Sysctl:
    """A sysctl value; `path` is relative to /proc/sys, e.g. net/ipv4/conf/br-ex/proxy_arp."""

    path: str
    value: str


@dataclass(frozen=True, slots=True, order=True)
class Blocked:
    """Something wanted that cannot be applied, and why (reported, never silently dropped)."""

    what: str
    reason: str


@dataclass(frozen=True, slots=True)
class KernelState:
    """What the kernel holds of ours, plus the facts the diff needs to stay off others' state."""

    routes: frozenset[HostRoute] = frozenset()
    neighbours: frozenset[Neighbour] = frozenset()
    addresses: frozenset[BridgeAddress] = frozenset()
    sysctls: frozenset[Sysctl] = frozenset()          # only the paths that were asked for
    devices: frozenset[str] = frozenset()             # names of the links that exist
    down: frozenset[str] = frozenset()                # links that exist but are not admin-up
    foreign_neighbours: frozenset[Neighbour] = frozenset()  # others' static entries


@dataclass(frozen=True, slots=True)
class KernelChanges:
    """The minimal set of operations that turns the actual state into the desired one.

    Applied in this order: deletions, links up, sysctls, addresses, routes, retired routes,
    neighbours. `add_routes` are created exclusively (never overwriting another's route);
    `replace_routes` overwrite a route of ours whose next hop changed, atomically (no withdrawal
    gap). A route that starts or stops draining changes its metric, which the kernel counts as
    another route: the new one is added first and the old one (in `retire_routes`) deleted
    after, so the destination is never without a route, nor FRR without an advertisement.
    """

    delete_routes: tuple[HostRoute, ...] = ()
    delete_neighbours: tuple[Neighbour, ...] = ()
    delete_addresses: tuple[BridgeAddress, ...] = ()
    set_up: tuple[str, ...] = ()
    set_sysctls: tuple[Sysctl, ...] = ()
    add_addresses: tuple[BridgeAddress, ...] = ()
    add_routes: tuple[HostRoute, ...] = ()
    replace_routes: tuple[HostRoute, ...] = ()
    retire_routes: tuple[HostRoute, ...] = ()
    set_neighbours: tuple[Neighbour, ...] = ()
    blocked: tuple[Blocked, ...] = ()

    @property
    def operations(self) -> int:
        """How many kernel operations applying these changes takes (blocked ones excluded)."""
        return (len(self.delete_routes) + len(self.delete_neighbours)
                + len(self.delete_addresses) + len(self.set_up) + len(self.set_sysctls)
                + len(self.add_addresses) + len(self.add_routes) + len(self.replace_routes)
                + len(self.retire_routes) + len(self.set_neighbours))


def route_order(route: HostRoute) -> tuple[int, int, int, str, str, bool]:
    """A total sort key for routes of both families (the model's own ordering raises TypeError
    when it compares an IPv4 with an IPv6 value, or a next hop with None). Total, so that of two
    routes wanted for one destination the same one wins whatever the set's iteration order:
    the plain one before its draining twin."""
    via = "" if route.via is None else route.via.exploded
    return (route.dst.version, int(route.dst.network_address), route.dst.prefixlen, route.dev, via,
            route.draining)


def neighbour_order(neighbour: Neighbour) -> tuple[int, int, str, str]:
    """A sort key for neighbours of both families."""
    return (neighbour.ip.version, int(neighbour.ip), neighbour.dev, neighbour.mac)


def describe_route(route: HostRoute) -> str:
    via = f" via {route.via}" if route.via is not None else ""
    draining = f" metric {DRAINING_METRIC} (draining)" if route.draining else ""
    return f"route {route.dst}{via} dev {route.dev or '?'}{draining}"


def describe_neighbour(neighbour: Neighbour) -> str:
    return f"neighbour {neighbour.ip} lladdr {neighbour.mac} dev {neighbour.dev}"


def describe_address(address: BridgeAddress) -> str:
    return f"address {address.address} dev {address.dev}"


def bridge_sysctls(bridges: Iterable[str]) -> frozenset[Sysctl]:
    """The sysctls that managed bridges need (node-wide ones included when there is any)."""
    names = sorted(set(bridges))
    wanted = {Sysctl(p.format(dev=name), v) for name in names for p, v in BRIDGE_SYSCTLS}
    if names:
        wanted.update(Sysctl(p, v) for p, v in GLOBAL_SYSCTLS)
    return frozenset(wanted)


def canonical_mac(mac: str) -> str | None:
    """Lower-case colon-separated MAC, or None when `mac` is not one."""
    if _CANONICAL_MAC.fullmatch(mac):      # the planner's are already (one regex, not 6 ints)
        return mac
    parts = mac.replace("-", ":").split(":")
    if len(parts) != _MAC_LEN or not all(len(p) == 2 for p in parts):
        return None
    try:
        return ":".join(f"{int(p, 16):02x}" for p in parts)
    except ValueError:
        return None


def canonical_address(text: str) -> str | None:
    """ "addr/len" with the address as given (not the network) in canonical form, or None."""
    if "/" not in text:
        return None
    try:
        return ip_interface(text).with_prefixlen
    except ValueError:
        return None


def _missing(dev: str, actual: KernelState) -> str | None:
    if dev not in actual.devices:
        return f"device {dev!r} does not exist"
    return None


def _diff_routes(routes: Iterable[HostRoute], actual: KernelState,
                 blocked: list[Blocked]) -> tuple[list[HostRoute], list[HostRoute],
                                                  list[HostRoute], list[HostRoute]]:
    wanted: dict[IPNetwork, HostRoute] = {}
    for route in sorted(routes, key=route_order):
        reason = _missing(route.dev, actual)
        if reason is None and route.via is not None and route.via.version != route.dst.version:
            reason = "next hop and destination are of different families"
        if reason is None and route.dst in wanted:
            reason = f"destination already wanted as {describe_route(wanted[route.dst])}"
        if reason is not None:
            blocked.append(Blocked(describe_route(route), reason))
            continue
        wanted[route.dst] = route
    have: dict[IPNetwork, list[HostRoute]] = defaultdict(list)
    for route in actual.routes:
        have[route.dst].append(route)
    deletes: list[HostRoute] = []
    adds: list[HostRoute] = []
    replaces: list[HostRoute] = []
    retires: list[HostRoute] = []
    for dst, variants in have.items():
        want = wanted.get(dst)
        if want is None or want in variants or len(variants) > 1:
            deletes.extend(v for v in variants if v != want)
    for dst, want in wanted.items():
        variants = have.get(dst, [])
        if want in variants:
            continue
        if len(variants) == 1 and variants[0].draining != want.draining:
            adds.append(want)               # another metric: make, then break
            retires.append(variants[0])
        else:
            (replaces if len(variants) == 1 else adds).append(want)
    return (sorted(deletes, key=route_order), sorted(adds, key=route_order),
            sorted(replaces, key=route_order), sorted(retires, key=route_order))


def _diff_neighbours(neighbours: Iterable[Neighbour], actual: KernelState,
                     blocked: list[Blocked]) -> tuple[list[Neighbour], list[Neighbour]]:
    pinned = {(n.ip, n.dev): n for n in actual.foreign_neighbours}
    wanted: dict[tuple[IPAddress, str], Neighbour] = {}
    for raw in sorted(neighbours, key=neighbour_order):
        mac = canonical_mac(raw.mac)
        neighbour = Neighbour(raw.ip, mac or raw.mac, raw.dev)
        key = (neighbour.ip, neighbour.dev)
        reason = _missing(neighbour.dev, actual)
        if reason is None and mac is None:
            reason = "not a MAC address"
        if reason is None and key in wanted:
            reason = f"already wanted as {describe_neighbour(wanted[key])}"
        if reason is None and key in pinned:
            reason = f"held by another owner's static entry lladdr {pinned[key].mac}"
        if reason is not None:
            blocked.append(Blocked(describe_neighbour(neighbour), reason))
            continue
        wanted[key] = neighbour
    deletes = sorted((n for n in actual.neighbours if (n.ip, n.dev) not in wanted),
                     key=neighbour_order)
    sets = sorted((n for n in wanted.values() if n not in actual.neighbours),
                  key=neighbour_order)
    return deletes, sets


def _wanted_addresses(bridges: Iterable[BridgeSetup], actual: KernelState,
                      blocked: list[Blocked]) -> set[BridgeAddress]:
    wanted: set[BridgeAddress] = set()
    for bridge in sorted(bridges):
        for gateway in bridge.gateways:
            address = canonical_address(gateway)
            reason = _missing(bridge.bridge, actual)
            if address is None:
                reason = reason or "not an address with a prefix length"
            elif reason is None:
                wanted.add(BridgeAddress(bridge.bridge, address))
                continue
            blocked.append(Blocked(f"address {gateway} dev {bridge.bridge}", reason))
    return wanted


def diff(desired: DesiredState, actual: KernelState) -> KernelChanges:
    """The changes that make the kernel hold exactly the desired routes, neighbours, addresses
    and bridge settings of ours, touching nothing that is not ours."""
    blocked: list[Blocked] = []
    route_deletes, route_adds, route_replaces, route_retires = _diff_routes(
        desired.routes, actual, blocked)
    neigh_deletes, neigh_sets = _diff_neighbours(desired.neighbours, actual, blocked)
    addresses = _wanted_addresses(desired.bridges, actual, blocked)

    present = sorted({b.bridge for b in desired.bridges if b.bridge in actual.devices})
    for name in sorted({b.bridge for b in desired.bridges} - set(present)):
        blocked.append(Blocked(f"bridge {name} settings", f"device {name!r} does not exist"))
    sysctls = sorted(bridge_sysctls(present) - actual.sysctls)

    return KernelChanges(
        delete_routes=tuple(route_deletes),
        delete_neighbours=tuple(neigh_deletes),
        delete_addresses=tuple(sorted(actual.addresses - addresses)),
        set_up=tuple(name for name in present if name in actual.down),
        set_sysctls=tuple(sysctls),
        add_addresses=tuple(sorted(addresses - actual.addresses)),
        add_routes=tuple(route_adds),
        replace_routes=tuple(route_replaces),
        retire_routes=tuple(route_retires),
        set_neighbours=tuple(neigh_sets),
        blocked=tuple(sorted(set(blocked))),
    )


def sysctl_paths(bridges: Iterable[str]) -> tuple[str, ...]:
    """The sysctl paths `read` must look at for these managed bridges."""
    return tuple(sorted({s.path for s in bridge_sysctls(bridges)}))


def all_devices(desired: DesiredState) -> frozenset[str]:
    """Every device the desired state mentions."""
    return frozenset(chain((r.dev for r in desired.routes), (n.dev for n in desired.neighbours),
                           (b.bridge for b in desired.bridges)))
