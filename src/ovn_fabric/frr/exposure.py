"""The agent's part of a node's FRR configuration, rendered from its settings. Pure.

The agent advertises nothing by talking to bgpd per prefix. FRR redistributes the kernel routes
that point into a managed provider bridge and lie inside the allowed prefixes. The agent's
kernel routes (proto 247, `IP/32 dev br-ex`) are therefore the advertisements: they survive agent
and FRR restarts (zebra reads kernel routes back when it starts), and 10,000 of them cost no more
FRR configuration than one. Measured in LAB_NOTES.md: kernel routes + `redistribute kernel`
programs 10,000 prefixes in about 1 s, where one vtysh call per prefix takes 335 s.

The block is the same on every node with the same settings. Everything in it is named
`OVN-FABRIC-...`, which is how the driver recognises what it owns in a running config that also
holds the operator's (or the lab's) fabric configuration:

    ip prefix-list OVN-FABRIC-ALLOW4 seq 5 deny 10.255.0.0/16 le 32      <- exposure.deny
    ip prefix-list OVN-FABRIC-ALLOW4 seq 10 permit 172.24.4.0/24 ge 32   <- exposure.allow
    route-map OVN-FABRIC-EXPOSE4 permit 10                               <- one per bridge
     match interface br-ex
     match ip address prefix-list OVN-FABRIC-ALLOW4
    router bgp <the node's AS>
     address-family ipv4 unicast
      redistribute kernel route-map OVN-FABRIC-EXPOSE4

The prefix-list repeats the planner's exposure policy as a second, independent guard: a route
added to br-ex by hand outside the allowed prefixes is not advertised either.

A draining route (the source of a live migration once the destination is active, see
model.HostRoute.draining) has kernel metric 2470, and redistribution carries a kernel route's
metric as the BGP MED: nothing here needs to know about it. The fabric compares MEDs across
neighbour ASes (`bgp always-compare-med`, docs/FABRIC.md), so the spines prefer the
destination's path (MED 0, or 1024 for IPv6), while the source's leaves keep forwarding to the
source, which still delivers, until it withdraws.

Tenant subnets ([tenant_networks], opt-in) are the one kind of prefix that is not a host route.
Each subnet the plan advertises gets an exact-match entry of its own, in a range of sequence
numbers after the host-route entries (so adding one never renumbers those):

    ip prefix-list OVN-FABRIC-ALLOW4 seq 100005 permit 10.0.1.0/24      <- a planned subnet

Exact entries, not the address scopes' prefixes: OVN carries only a scope's UUID, never its
prefixes (they live in Neutron's subnet pools), and an exact entry permits only what the planner
allowed after its scope, overlap and exposure checks. A subnet it refused, or any other subnet
routed into br-ex by hand, stays unadvertised; the deny entries still come first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network

from ovn_fabric.config import ExposurePolicy

NAME_PREFIX = "OVN-FABRIC-"
FAMILIES = (4, 6)
# Tenant subnets' exact-match entries start here: after any number of deny and allow entries.
TENANT_FIRST_SEQ = 100005
SEQ_STEP = 5


@dataclass(frozen=True, slots=True)
class ExposureConfig:
    """The agent's FRR lines: global lines (prefix-lists, route-maps, in vtysh's own form) and
    the lines it needs inside `router bgp` per address family."""

    global_lines: tuple[str, ...]
    bgp_lines: tuple[tuple[str, str], ...]    # (address family, line)

    def render(self, asn: int) -> str:
        """As a block of frr.conf text, for a node whose BGP instance is `asn`."""
        lines = [*self.global_lines, f"router bgp {asn}"]
        for family in ("ipv4", "ipv6"):
            lines.append(f" address-family {family} unicast")
            lines += [f"  {line}" for fam, line in self.bgp_lines if fam == family]
            lines.append(" exit-address-family")
        lines.append("exit")
        return "\n".join(lines) + "\n"


def prefix_list_name(version: int) -> str:
    return f"{NAME_PREFIX}ALLOW{version}"


def route_map_name(version: int) -> str:
    return f"{NAME_PREFIX}EXPOSE{version}"


def _family_keyword(version: int) -> str:
    return "ip" if version == 4 else "ipv6"


def _host_len(version: int) -> int:
    return 32 if version == 4 else 128


def _prefix_list(version: int, policy: ExposurePolicy,
                 tenant_subnets: frozenset[IPv4Network | IPv6Network]) -> list[str]:
    kw, name, host = _family_keyword(version), prefix_list_name(version), _host_len(version)
    lines = []
    seq = SEQ_STEP
    deny = sorted({r.prefix for r in policy.deny if r.prefix.version == version},
                  key=_net_key)
    allow = sorted({r.prefix for r in policy.allow if r.prefix.version == version},
                   key=_net_key)
    for prefix in deny:
        lines.append(f"{kw} prefix-list {name} seq {seq} deny {prefix} le {host}")
        seq += 5
    for prefix in allow:
        suffix = "" if prefix.prefixlen == host else f" ge {host}"
        lines.append(f"{kw} prefix-list {name} seq {seq} permit {prefix}{suffix}")
        seq += 5
    if not allow:  # an empty prefix-list permits nothing, but say so explicitly
        zero = "0.0.0.0/0" if version == 4 else "::/0"
        lines.append(f"{kw} prefix-list {name} seq {seq} deny {zero} le {host}")
    if seq >= TENANT_FIRST_SEQ:
        raise ValueError(f"{len(lines)} allow and deny prefixes of IPv{version}: at most "
                         f"{TENANT_FIRST_SEQ // SEQ_STEP - 2} fit before the tenant subnets")
    subnets = sorted((net for net in tenant_subnets if net.version == version), key=_net_key)
    for index, subnet in enumerate(subnets):
        lines.append(f"{kw} prefix-list {name} seq {TENANT_FIRST_SEQ + SEQ_STEP * index} "
                     f"permit {subnet}")
    return lines


def _net_key(net: IPv4Network | IPv6Network) -> tuple[int, int]:
    return int(net.network_address), net.prefixlen


def exposure_config(bridges: Sequence[str], policy: ExposurePolicy,
                    tenant_subnets: Iterable[IPv4Network | IPv6Network] = ()) -> ExposureConfig:
    """The agent's FRR lines for these managed bridges and this exposure policy, permitting
    exactly `tenant_subnets` besides host routes (the subnets the plan advertises)."""
    subnets = frozenset(tenant_subnets)
    for subnet in subnets:
        if subnet.prefixlen in (0, _host_len(subnet.version)):
            raise ValueError(f"{subnet}: a tenant subnet is neither a host route nor a default")
    global_lines: list[str] = []
    bgp_lines: list[tuple[str, str]] = []
    for version in FAMILIES:
        global_lines += _prefix_list(version, policy, subnets)
    for version in FAMILIES:
        kw, rmap = _family_keyword(version), route_map_name(version)
        for index, bridge in enumerate(sorted(bridges)):
            global_lines += [
                f"route-map {rmap} permit {10 * (index + 1)}",
                f" match interface {bridge}",
                f" match {kw} address prefix-list {prefix_list_name(version)}",
                "exit",
            ]
        if not bridges:
            global_lines += [f"route-map {rmap} deny 10", "exit"]
        family = "ipv4" if version == 4 else "ipv6"
        bgp_lines.append((family, f"redistribute kernel route-map {rmap}"))
    return ExposureConfig(tuple(global_lines), tuple(bgp_lines))
