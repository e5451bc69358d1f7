"""Render a device's whole FRR configuration from the topology. Pure and deterministic.

How the RHOSP 17 BGP design maps onto sessions (docs/FABRIC.md explains the why):
- Every fabric link is a BGP unnumbered session over IPv6 link-local (`neighbor IFNAME interface`),
  carrying IPv4 and IPv6 (RFC 5549 next hops); no IPv4 address on any fabric link.
- Same AS on both ends -> iBGP (`remote-as internal`): servers and the leaves of their rack. The
  leaf is then a route reflector for its servers, with `next-hop-self force` so servers need no
  route to each other's link-locals. Different AS -> eBGP (`remote-as external`): leaf-spine.
- Peers are grouped by what they are (SPINES, LEAVES, ROUTERS, SERVERS): one policy per group.
- Servers send only host routes (/32, /128); leaves and routers accept only host routes from them.
  The one exception, when the topology has tenant pools (`[addressing] tenant4/tenant6`): gateway
  chassis (peer group GATEWAYS) may also send, and their leaves accept, prefixes inside those
  pools: tenant subnets routed without NAT, advertised from a router's active gateway.
- When a device's AS is reused by devices it has no link to (every rack is AS 64999 in RHOSP 17),
  its sessions towards the upper tier carry `allowas-in origin`, so routes originated in another
  rack of the same AS are accepted, while a route that merely transits that AS is still refused.
- Every session has BFD with the topology's timers; `maximum-paths` (eBGP and iBGP) gives ECMP.
- Loopback addresses (and the control-plane VIP when it is there) are announced by redistributing
  the connected routes of `lo`, so adding or removing an address on `lo` is advertised or
  withdrawn at once.
- A chassis also announces its Geneve tunnel endpoint (ovn-encap-ip): the connected /32 of its
  br-phy, and only that address (prefix-list ENCAP4), so OVN's overlay runs over the fabric.
"""

from __future__ import annotations

from dataclasses import dataclass

from ovn_fabric.lab.topology import (
    ENCAP_BRIDGE,
    FABRIC_ROLES,
    Device,
    Interface,
    Role,
    Topology,
)

MAXIMUM_PATHS = 16
BFD_PROFILE = "fabric"


class FrrConfigError(ValueError):
    """The topology cannot be turned into a consistent FRR configuration."""


@dataclass(frozen=True, slots=True)
class PeerGroup:
    name: str
    ibgp: bool
    members: tuple[str, ...]       # interface names
    reflect: bool                  # we are route reflector, they are clients
    from_hosts: bool               # accept only host routes from them
    to_upper_tier: bool            # we are a server talking to a leaf/router, or a leaf to a spine
    tenant_routes: bool = False    # from_hosts: they are gateways, so tenant subnets too


def _group_name(topology: Topology, peer: Device) -> str:
    if Role.SPINE in peer.roles:
        return "SPINES"
    if Role.LEAF in peer.roles:
        return "LEAVES"
    if Role.ROUTER in peer.roles:
        return "ROUTERS"
    if sends_tenant_routes(topology, peer):
        return "GATEWAYS"
    return "SERVERS"


def sends_tenant_routes(topology: Topology, device: Device) -> bool:
    """Whether the device may advertise tenant subnets: a gateway chassis (it may hold a
    router's active gateway), in a topology with tenant pools."""
    return Role.GATEWAY in device.roles and bool(topology.tenant_pools)


def _zebra_work_queue(device: Device) -> list[str]:
    """A switch's zebra installs what its bgpd hands it, and on a spine that is on every host
    route's way: it works its queue at once instead of holding it 10 ms (PERFORMANCE.md). A
    server's zebra keeps the hold: it learns the agent's routes from the kernel, thousands at a
    time, and without the hold the agent's 3,000-port bind took longer (PERFORMANCE.md)."""
    if not device.roles & FABRIC_ROLES:
        return []
    return ["! a host route's way to a spine waits 10 ms less (PERFORMANCE.md)",
            "zebra work-queue 0"]


def _tier(device: Device) -> int:
    if Role.SPINE in device.roles:
        return 3
    if device.roles & {Role.LEAF, Role.ROUTER}:
        return 2
    return 1


def peer_groups(topology: Topology, name: str) -> tuple[PeerGroup, ...]:
    """The device's BGP peer groups, in a stable order."""
    me = topology.device(name)
    by_group: dict[str, list[Interface]] = {}
    for iface in topology.interfaces(name):
        by_group.setdefault(_group_name(topology, iface.peer), []).append(iface)
    groups = []
    for group, ifaces in sorted(by_group.items()):
        kinds = {i.ibgp for i in ifaces}
        if len(kinds) != 1:
            raise FrrConfigError(
                f"{name}: peers in group {group} mix iBGP and eBGP; give them one AS relation")
        groups.append(
            PeerGroup(
                name=group,
                ibgp=kinds.pop(),
                members=tuple(i.ifname for i in ifaces),
                reflect=all(i.reflect_to_peer for i in ifaces),
                from_hosts=all(i.peer_is_host for i in ifaces) and not me.is_host,
                to_upper_tier=all(_tier(i.peer) > _tier(me) for i in ifaces),
                tenant_routes=group == "GATEWAYS" and not me.is_host,
            )
        )
    return tuple(groups)


def as_reused_elsewhere(topology: Topology, name: str) -> bool:
    """True when a device this one has no link to shares its AS (RHOSP 17: one AS per rack,
    reused by every rack), which calls for `allowas-in origin` on upward sessions."""
    me = topology.device(name)
    neighbours = {i.peer.name for i in topology.interfaces(name)}
    return any(
        d.asn == me.asn and d.name != name and d.name not in neighbours for d in topology.devices
    )


def render(topology: Topology, name: str, *, log_file: str) -> str:
    """The complete frr.conf of one device."""
    me = topology.device(name)
    groups = peer_groups(topology, name)
    allowas = as_reused_elsewhere(topology, name)
    bfd = topology.bfd
    lines = [
        "frr version 8.4",
        "frr defaults datacenter",
        f"hostname {me.name}",
        f"log file {log_file} informational",
        "log timestamp precision 3",
        "service integrated-vtysh-config",
        "!",
        "! FRR 8.4 loses ECMP legs in kernel nexthop groups after link flaps (fixed in 9.0).",
        "no zebra nexthop kernel enable",
        *_zebra_work_queue(me),
        "ip forwarding",
        "ipv6 forwarding",
        "!",
        "ip prefix-list LOOPBACK4 seq 5 deny 127.0.0.0/8 le 32",
        "ip prefix-list LOOPBACK4 seq 10 permit 0.0.0.0/0 ge 32",
        "ip prefix-list HOST-ROUTES4 seq 10 permit 0.0.0.0/0 ge 32",
        *_encap_prefix_list(me),
        *_gateway_prefix_list(topology, me, groups, 4),
        "ipv6 prefix-list LOOPBACK6 seq 5 deny ::1/128",
        "ipv6 prefix-list LOOPBACK6 seq 10 permit ::/0 ge 128",
        "ipv6 prefix-list HOST-ROUTES6 seq 10 permit ::/0 ge 128",
        *_gateway_prefix_list(topology, me, groups, 6),
        "!",
        "route-map LOOPBACKS4 permit 10",
        " match interface lo",
        " match ip address prefix-list LOOPBACK4",
        "exit",
        *_encap_route_map(me),
        "route-map LOOPBACKS6 permit 10",
        " match interface lo",
        " match ipv6 address prefix-list LOOPBACK6",
        "exit",
        "!",
        "! Traffic this box originates leaves from its loopback, not from whatever address the",
        "! kernel would pick for an unnumbered link.",
        "route-map SOURCE-LOOPBACK4 permit 10",
        f" set src {me.loopback4}",
        "exit",
        "route-map SOURCE-LOOPBACK6 permit 10",
        f" set src {me.loopback6}",
        "exit",
        "ip protocol bgp route-map SOURCE-LOOPBACK4",
        "ipv6 protocol bgp route-map SOURCE-LOOPBACK6",
        "!",
        "bfd",
        f" profile {BFD_PROFILE}",
        f"  detect-multiplier {bfd.multiplier}",
        f"  receive-interval {bfd.interval_ms}",
        f"  transmit-interval {bfd.interval_ms}",
        " exit",
        "exit",
        "!",
        f"router bgp {me.asn}",
        f" bgp router-id {me.loopback4}",
        " no bgp ebgp-requires-policy",
        " no bgp default ipv4-unicast",
        " bgp bestpath as-path multipath-relax",
        # MEDs compared across neighbour ASes: a server marks a route it is leaving (a live
        # migration's source) with a higher MED, and the tiers above prefer the other path,
        # while the source's own leaves keep forwarding to it (docs/FABRIC.md, "Draining").
        " bgp always-compare-med",
    ]
    for group in groups:
        lines += [
            f" neighbor {group.name} peer-group",
            f" neighbor {group.name} remote-as {'internal' if group.ibgp else 'external'}",
            f" neighbor {group.name} bfd",
            f" neighbor {group.name} bfd profile {BFD_PROFILE}",
            f" neighbor {group.name} timers connect 1",
        ]
        lines += [f" neighbor {member} interface peer-group {group.name}"
                  for member in group.members]
    for family, v in (("ipv4", "4"), ("ipv6", "6")):
        lines += ["!", f" address-family {family} unicast",
                  f"  redistribute connected route-map LOOPBACKS{v}"]
        for group in groups:
            lines += _family_policy(group, me, v, allowas,
                                    gateway=sends_tenant_routes(topology, me))
        lines += [f"  maximum-paths {MAXIMUM_PATHS}", f"  maximum-paths ibgp {MAXIMUM_PATHS}",
                  " exit-address-family"]
    lines += ["exit", "!", "end", ""]
    return "\n".join(lines)


def _encap_prefix_list(me: Device) -> list[str]:
    if me.encap4 is None:
        return []
    return [f"ip prefix-list ENCAP4 seq 10 permit {me.encap4}/32"]


def _encap_route_map(me: Device) -> list[str]:
    """A chassis' tunnel endpoint: the connected /32 of br-phy (docs/FABRIC.md)."""
    if me.encap4 is None:
        return []
    return [
        "! This chassis' Geneve tunnel endpoint (ovn-encap-ip), held by its bridge "
        f"{ENCAP_BRIDGE}.",
        "route-map LOOPBACKS4 permit 20",
        f" match interface {ENCAP_BRIDGE}",
        " match ip address prefix-list ENCAP4",
        "exit",
    ]


def _gateway_prefix_list(topology: Topology, me: Device, groups: tuple[PeerGroup, ...],
                         version: int) -> list[str]:
    """GATEWAY-ROUTES: host routes, and subnets inside the tenant pools (docs/FABRIC.md). On a
    gateway chassis (sent) and on the switches it talks to (accepted)."""
    if not (sends_tenant_routes(topology, me) or any(g.tenant_routes for g in groups)):
        return []
    kw, host = ("ip", 32) if version == 4 else ("ipv6", 128)
    zero = "0.0.0.0/0" if version == 4 else "::/0"
    pools = topology.tenant_pools4 if version == 4 else topology.tenant_pools6
    return [f"{kw} prefix-list GATEWAY-ROUTES{version} seq 10 permit {zero} ge {host}",
            *(f"{kw} prefix-list GATEWAY-ROUTES{version} seq {20 + 10 * index} permit {pool} "
              f"le {host}" for index, pool in enumerate(pools))]


def _family_policy(group: PeerGroup, me: Device, v: str, allowas: bool, *,
                   gateway: bool) -> list[str]:
    n = f"  neighbor {group.name}"
    lines = [f"{n} activate"]
    if group.reflect:
        lines += [f"{n} route-reflector-client", f"{n} next-hop-self force"]
    if group.from_hosts:
        accepted = "GATEWAY-ROUTES" if group.tenant_routes else "HOST-ROUTES"
        lines.append(f"{n} prefix-list {accepted}{v} in")
    if me.is_host:
        lines.append(f"{n} prefix-list {'GATEWAY-ROUTES' if gateway else 'HOST-ROUTES'}{v} out")
    if allowas and group.to_upper_tier:
        lines.append(f"{n} allowas-in origin")
    if group.to_upper_tier and not me.is_host:
        # Pass the servers' MEDs up: a draining route (a live migration's source) must reach
        # the spines with its higher MED, which eBGP would otherwise drop at the leaf.
        lines.append(f"{n} attribute-unchanged med")
    return lines
