"""What the planner's workload functions produce and share: the networks and routers this
node serves, Claims ("make this prefix reachable here, because of this port") and the Draft
that collects them with Refusals. Pure values."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field

from ovn_fabric.model import (
    BridgeSetup,
    EgressFlow,
    IPAddress,
    IPNetwork,
    Reason,
    Refusal,
)
from ovn_fabric.ovn.view import (
    PARSER_CACHE,
    IPInterface,
    PortBinding,
)

# Port_Binding types and keys written by northd and ovn-controller.
VM_PORT = ""                                   # a VIF: a VM's port (Neutron's compute:*)
CHASSISREDIRECT = "chassisredirect"
PATCH = "patch"
VIRTUAL = "virtual"
DISTRIBUTED_PORT = "distributed-port"          # cr-lrp options: its router port, lrp-<gw>
CHASSIS_REDIRECT_PORT = "chassis-redirect-port"  # the gateway LRP's options: its cr-lrp
PEER = "peer"                                  # patch ports: the port at the other end
# Neutron's keys on a router-interface LSP (copied to its Port_Binding's external_ids).
ADDRESS_SCOPE_KEYS = {4: "neutron:subnet_pool_addr_scope4", 6: "neutron:subnet_pool_addr_scope6"}
# Keys of NB Load_Balancer rows naming routers ("neutron-<id>", or the bare id before Neutron
# 27): Neutron port forwarding's `neutron:router_name`, Octavia's comma-separated `lr_ref`.
LB_ROUTER_KEYS = ("neutron:router_name", "lr_ref")
NEUTRON_PREFIX = "neutron-"


@dataclass(frozen=True, slots=True)
class ServedNetwork:
    """A provider network this node serves: traffic of its local ports is routed on `bridge`."""

    datapath: str                 # Datapath_Binding UUID
    name: str                     # for people: Neutron's name, else the switch name
    localnet: str                 # the localnet port's logical_port ("provnet-<segment>")
    bridge: str
    vlan: int | None


@dataclass(frozen=True, slots=True)
class Router:
    """A router with a distributed gateway port, as the SB shows it: its chassisredirect port
    `cr-lrp-<gw>` (on the router's datapath; `chassis` is the active gateway, `mac` is
    "MAC IP/len IP6/len"), and the served provider networks its gateway port is patched to (the
    patch Port_Bindings whose `options:peer` is the cr-lrp's `options:distributed-port`)."""

    datapath: str
    name: str                               # for people: the router's name, else the datapath
    redirect: PortBinding                   # cr-lrp-<gw>
    gateway_port: str                       # lrp-<gw> ("" when the cr-lrp does not say)
    uplinks: tuple[ServedNetwork, ...]      # normally one; none when not served here
    mac: str | None                         # the gateway MAC
    interfaces: tuple[IPInterface, ...]     # the gateway addresses with their prefix

    def active_on(self, chassis: str) -> bool:
        return bool(chassis) and self.redirect.chassis == chassis

    @property
    def uplink(self) -> ServedNetwork | None:
        """The provider network of the gateway, if it is one and only one served here."""
        return self.uplinks[0] if len(self.uplinks) == 1 else None


@dataclass(frozen=True, slots=True)
class Claim:
    """A workload's wish to be reachable at `prefix` through `bridge` of this node."""

    prefix: IPNetwork
    token: str                    # the address as seen in OVN, for refusals
    bridge: str
    mac: str | None               # neighbour entry to add (None for a prefix behind a next hop)
    via: IPAddress | None
    reason: Reason
    port: str
    network: str
    draining: bool = False        # see HostRoute.draining


@dataclass(slots=True)
class Draft:
    """What one plan() call has found so far; workload functions add to it."""

    claims: list[Claim] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    flows: set[EgressFlow] = field(default_factory=set)
    bridges: set[BridgeSetup] = field(default_factory=set)

    def refuse(self, what: str, port: str, why: str) -> None:
        self.refusals.append(Refusal(what=what, port=port, why=why))

    def claim(self, ip: IPAddress, token: str, network: ServedNetwork, *, mac: str | None,
              reason: Reason, port: str, draining: bool = False) -> None:
        """Make one address reachable on the network's bridge, with a neighbour entry."""
        self.claims.append(Claim(prefix=host_network(ip), token=token,
                                 bridge=network.bridge, mac=mac, via=None, reason=reason,
                                 port=port, network=network.name, draining=draining))


@functools.lru_cache(maxsize=PARSER_CACHE)
def host_network(ip: IPAddress) -> IPNetwork:
    """The /32 or /128 of an address (cached: the same addresses come back on every pass;
    built from the integer, 3x cheaper than from the address object)."""
    if ip.version == 4:
        return ipaddress.IPv4Network((int(ip), 32))
    return ipaddress.IPv6Network((int(ip), 128))
