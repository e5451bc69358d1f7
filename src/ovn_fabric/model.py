"""Value types of the agent: what a node must look like (DesiredState) and why.

The planner produces these from a frozen view of OVN; the drivers compare them with what they read
back from the kernel, OVS and FRR. All are frozen, hashable and ordered, so desired and actual
state are plain sets and a diff is set arithmetic.

Ownership markers live here because every layer must agree on them: a driver touches only state
carrying its marker, and withdrawal is simply absence from the desired set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

# Kernel routes and neighbour entries the agent owns carry this protocol number
# (rtnetlink `rtm_protocol` / `NDA_PROTOCOL`). Nothing else on a node uses it.
RTPROT_OVN_FABRIC = 247
# The agent's OpenFlow rules on provider bridges carry this cookie (in the high 32 bits of the
# 64-bit cookie, so that the low bits stay free for a per-rule hash).
FLOW_COOKIE = 0x0F4B0000_00000000
FLOW_COOKIE_MASK = 0xFFFFFFFF_00000000
# Priority of the egress MAC-rewrite rule on a provider bridge (above NORMAL's 0).
EGRESS_FLOW_PRIORITY = 1000


# The kernel metric of a draining route (HostRoute.draining). FRR's redistribution carries a
# kernel route's metric as the BGP MED; the fabric compares MEDs across neighbour ASes, so any
# other path to the prefix (plain routes have metric 0, IPv6 1024) is preferred.
DRAINING_METRIC = 2470


@dataclass(frozen=True, slots=True, order=True)
class HostRoute:
    """An ingress route towards a provider bridge. It is also what the node advertises:
    FRR redistributes kernel routes that point into a provider bridge and lie inside the
    allowed prefixes, so the kernel route is the single source of truth for both."""

    dst: IPNetwork            # a /32 or /128 (a subnet only for tenant networks behind a gateway)
    dev: str                  # the provider bridge, e.g. "br-ex"
    via: IPAddress | None = None
    # Still delivered here, but to be left: the source of a live migration once the destination
    # is active. The kernel route gets DRAINING_METRIC, which FRR advertises as a higher MED,
    # so the fabric moves to the destination before the source withdraws.
    draining: bool = False


@dataclass(frozen=True, slots=True, order=True)
class Neighbour:
    """A permanent neighbour entry on a provider bridge, as Neutron DVR populates static ARP."""

    ip: IPAddress
    mac: str                  # lower case, colon separated
    dev: str


@dataclass(frozen=True, slots=True, order=True)
class EgressFlow:
    """Rewrite the destination MAC of routed unicast IP/IPv6 arriving from OVN's patch port
    to the bridge's own MAC, so the node's kernel routes it over the fabric."""

    bridge: str
    patch_port: str           # the OVS port name of OVN's localnet patch port on this bridge
    vlan: int | None = None   # VLAN provider networks (the localnet `tag`)


@dataclass(frozen=True, slots=True, order=True)
class BridgeSetup:
    """Routing-layer settings of a provider bridge: the segment's gateway addresses (identical on
    every node) and proxy ARP/NDP."""

    bridge: str
    # Gateway addresses with their prefix length, as text "addr/len" (e.g. "172.24.4.1/24"):
    # ipaddress's interface types do not order across families; netlink takes this form as is.
    gateways: tuple[str, ...] = ()


class Reason(StrEnum):
    """Why something is advertised (or refused): what kind of workload it belongs to."""

    PROVIDER_PORT = "provider-port"
    FLOATING_IP = "floating-ip"
    ROUTER_GATEWAY = "router-gateway"
    TENANT_SUBNET = "tenant-subnet"
    LOAD_BALANCER_VIP = "lb-vip"
    VIRTUAL_IP = "virtual-ip"


@dataclass(frozen=True, slots=True, order=True)
class Exposure:
    """One advertised prefix and its provenance, for `ovn-fabric status`."""

    prefix: IPNetwork
    reason: Reason
    port: str                 # logical port (or NAT / LB name) it comes from
    network: str              # datapath / logical switch name
    rule: str                 # the exposure-policy rule that allowed it


@dataclass(frozen=True, slots=True, order=True)
class Refusal:
    """Something the planner would have exposed but must not, and why."""

    what: str                 # the address or row as seen
    port: str
    why: str


@dataclass(frozen=True, slots=True)
class DesiredState:
    """Everything the agent wants on its node. Equal inputs give equal states."""

    routes: frozenset[HostRoute] = frozenset()
    neighbours: frozenset[Neighbour] = frozenset()
    flows: frozenset[EgressFlow] = frozenset()
    bridges: frozenset[BridgeSetup] = frozenset()
    exposures: tuple[Exposure, ...] = field(default=())
    refusals: tuple[Refusal, ...] = field(default=())
