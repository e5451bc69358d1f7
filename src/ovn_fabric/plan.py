"""The planner: (OVN view, settings) -> DesiredState. Pure and deterministic: no I/O, no clock,
and the result depends only on the values passed in, never on the order of the rows.

The rules, in the order they are applied:

1. Served provider networks. A datapath is a provider network served by this node iff it has a
   localnet Port_Binding whose `options:network_name` is a physnet that the node's
   ovn-bridge-mappings map to a bridge listed under [bridges] in the settings. A physnet mapped
   to any other bridge is left alone (it stays plain layer 2). A datapath with several such
   localnet ports is ambiguous: the whole network is refused.
2. Each served network gets an EgressFlow on OVN's patch port of its bridge,
   `patch-<localnet port>-to-<integration bridge>`, with the localnet's VLAN tag; each bridge
   that serves at least one network gets a BridgeSetup with its configured gateways.
3. Workloads. Each kind of workload is one function that reads the view and adds Claims ("make
   this prefix reachable through this bridge, with this neighbour MAC or next hop, because of
   this port") and Refusals to a Draft. What matters for each is WHERE OVN serves it, because
   that node, and only that one, must advertise it:

   | workload | advertised from | neighbour / next hop |
   |---|---|---|
   | VM port on a served provider network | its `chassis` | the port's MAC |
   | live migration destination | an `additional_chassis` once activated | the port's MAC |
   | centralized floating IP | where its router's cr-lrp is bound | the gateway MAC |
   | distributed floating IP | where the VM's port is active | the FIP's external MAC |
   | router gateway address | where the cr-lrp is bound (the active gateway) | the gateway MAC |
   | tenant subnet (opt-in) | where the router's cr-lrp is bound | via the gateway address |
   | load-balancer VIP | where a router serving it has its cr-lrp | the gateway MAC |
   | virtual IP | where the virtual port is bound (its parent's chassis) | the parent's MAC |

   Each function's docstring says which rows and columns it reads and why. The bridge is always
   that of the served provider network the address lives on (for a router: the network its
   gateway port is on); nothing is claimed for a network this node does not serve.
4. Exposure policy, for each claimed prefix; the first rule that matches decides:
   refused: the default route; unspecified, loopback, link-local, multicast, broadcast,
   reserved (240.0.0.0/4) and IPv4-mapped addresses; the gateway address of a managed bridge
   and the network (and IPv4 broadcast) address of a gateway's subnet; anything overlapping a
   deny prefix; anything not inside an allow prefix.
   allowed: by the longest allow prefix that contains it (named in the Exposure's rule).
5. Conflicts. When the allowed claims of one prefix disagree on what the node must do (another
   bridge, neighbour MAC or next hop; e.g. two ports on this node claiming one IP), every one
   of them is refused: choosing one could hijack the other's traffic, and nothing says which
   is right. Claims that agree (an address listed twice, a floating IP that is also a
   load-balancer VIP) are merged, each keeping its Exposure.
6. Output. One HostRoute per allowed prefix, one Neighbour per allowed prefix with a MAC, one
   Exposure per (prefix, port), and a Refusal for everything refused; sets, or sorted tuples.

Facts of OVN these rules rest on (checked against ovn-northd 23.03.1 fed as Neutron writes;
/work/shared/OVN_DATA.md has the rows):
- A distributed gateway router (a cr-lrp) runs its NAT and load-balancer stages only on the
  chassis where the cr-lrp is resident: northd's lr_in_dnat flows carry
  `is_chassis_resident("cr-lrp-<gw>")`, except a distributed floating IP's, which carry
  `is_chassis_resident("<VM port>")`.
- northd writes the addresses a gateway answers for into the `nat_addresses` of the gateway's
  provider-side patch port (Neutron sets `nat-addresses=router` on the gateway LSP): the
  router's own IPv4 addresses in one entry, the centralized NAT addresses in another (several
  IPs in one entry), one entry per distributed floating IP with its external MAC.
  Neutron sets `exclude-lb-vips-from-garp=true`, so load-balancer VIPs are not listed there.
- A load balancer on a logical switch rewrites the destination address of traffic entering from
  the localnet port on whichever chassis it enters, but then delivers it by the frame's Ethernet
  destination, which would have to be the chosen backend's MAC (ovn-trace: any other MAC goes
  to `_MC_unknown` and is dropped). A routed frame carries one neighbour MAC, so a VIP of a
  load balancer on a provider switch cannot be served by every chassis of that network
  (anycast). A VIP is advertised only where a router serving its load balancer has its
  gateway: see add_load_balancer_vips.
- Before OVN 24.03 the SB Load_Balancer holds only load balancers applied to a switch, naming
  only switch datapaths; a load balancer applied only to a router (Neutron port forwarding) is
  not in the SB at all until 24.03 adds `lr_datapath_group`.
"""

from __future__ import annotations

import bisect
import functools
import ipaddress
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from ovn_fabric.config import PrefixRule, Settings, unusable_hosts
from ovn_fabric.model import (
    BridgeSetup,
    DesiredState,
    EgressFlow,
    Exposure,
    HostRoute,
    IPAddress,
    IPNetwork,
    Neighbour,
    Reason,
    Refusal,
)
from ovn_fabric.ovn.view import (
    PARSER_CACHE,
    IPInterface,
    LoadBalancer,
    OvnView,
    PortBinding,
    parse_address_entry,
    parse_interface,
    parse_ip,
    parse_nat_address,
    parse_vip,
)

# Addresses no workload may ever claim, whatever the exposure policy allows.
ALWAYS_REFUSED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(prefix), why) for prefix, why in (
        ("0.0.0.0/32", "the unspecified address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "the broadcast address"),
        ("240.0.0.0/4", "a reserved address (240.0.0.0/4)"),
        ("::/128", "the unspecified address"),
        ("::1/128", "a loopback address"),
        ("fe80::/10", "a link-local address"),
        ("ff00::/8", "a multicast address"),
        ("::ffff:0:0/96", "an IPv4-mapped IPv6 address"),
    )
)
# Port_Binding types and keys written by northd and ovn-controller.
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


@dataclass(frozen=True, slots=True)
class Context:
    """What every workload function reads: the view, the settings, and indexes built once."""

    view: OvnView
    settings: Settings
    networks: tuple[ServedNetwork, ...]
    bindings_by_datapath: Mapping[str, tuple[PortBinding, ...]]
    bindings_by_name: Mapping[str, PortBinding] = field(default_factory=dict)
    datapath_names: Mapping[str, str] = field(default_factory=dict)
    routers: tuple[Router, ...] = ()
    # tenant switch datapath -> datapaths of the routers it is an interface of
    router_links: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, view: OvnView, settings: Settings,
           networks: tuple[ServedNetwork, ...]) -> Context:
        by_datapath = _bindings_by_datapath(view.port_bindings)
        by_name = {binding.logical_port: binding for binding in view.port_bindings}
        routers = find_routers(view, networks)
        return cls(view=view, settings=settings, networks=networks,
                   bindings_by_datapath=by_datapath, bindings_by_name=by_name,
                   datapath_names={dp.uuid: dp.name for dp in view.datapaths},
                   routers=routers, router_links=router_links(view, routers, by_name))

    @property
    def local(self) -> str:
        return self.view.local_chassis

    def bindings_on(self, network: ServedNetwork) -> tuple[PortBinding, ...]:
        return self.bindings_by_datapath.get(network.datapath, ())

    def datapath_name(self, datapath: str | None) -> str:
        """The most readable name of a datapath (its UUID when it is not in the view)."""
        return self.datapath_names.get(datapath or "", datapath or "?")


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


Workload = Callable[[Context, Draft], None]


@functools.lru_cache(maxsize=PARSER_CACHE)
def host_network(ip: IPAddress) -> IPNetwork:
    """The /32 or /128 of an address (cached: the same addresses come back on every pass;
    built from the integer, 3x cheaper than from the address object)."""
    if ip.version == 4:
        return ipaddress.IPv4Network((int(ip), 32))
    return ipaddress.IPv6Network((int(ip), 128))


def plan(view: OvnView, settings: Settings, memo: PlanMemo | None = None) -> DesiredState:
    """Everything this node must have for the workloads it carries.

    With a `memo` (the reconciler keeps one), the work of the previous call is reused where
    its inputs are the same objects: the result is equal to what a call without it returns,
    only cheaper when little changed (see PlanMemo)."""
    draft = Draft()
    networks = served_networks(view, settings, draft)
    context = Context.of(view, settings, networks)
    add_network_plumbing(context, draft)
    for workload in WORKLOADS:
        workload(context, draft)
    memo = memo if memo is not None else PlanMemo()
    return resolve(draft, memo.gate(settings), memo)


# --- rules 1 and 2: provider networks ----------------------------------------------------------


def served_networks(view: OvnView, settings: Settings, draft: Draft) -> tuple[ServedNetwork, ...]:
    names = {datapath.uuid: datapath.name for datapath in view.datapaths}
    localnets: dict[str, list[tuple[PortBinding, str]]] = defaultdict(list)
    for binding in view.port_bindings:
        if binding.type != "localnet" or binding.datapath is None:
            continue
        bridge = view.bridge_mappings.get(binding.options.get("network_name", ""))
        if bridge is not None and settings.bridge(bridge) is not None:
            localnets[binding.datapath].append((binding, bridge))
    networks = []
    for datapath, found in sorted(localnets.items()):
        name = names.get(datapath, datapath)
        if len(found) > 1:
            draft.refuse(name, ", ".join(sorted(b.logical_port for b, _ in found)),
                         "several localnet ports of this network are mapped on this node; "
                         "serving none of them")
            continue
        localnet, bridge = found[0]
        networks.append(ServedNetwork(datapath=datapath, name=name,
                                      localnet=localnet.logical_port, bridge=bridge,
                                      vlan=localnet.tag))
    return _without_shared_vlan_bridges(networks, draft)


def _without_shared_vlan_bridges(networks: list[ServedNetwork],
                                 draft: Draft) -> tuple[ServedNetwork, ...]:
    """Refuse every VLAN network whose bridge also carries another network.

    A VLAN network's bridge is untagged towards the kernel: the agent strips the tag from OVN's
    frames and tags everything the kernel sends into the bridge (dataplane/flow_state.py). That
    is only right when the bridge carries that one network; with two, the kernel's frames would
    be tagged for the wrong one. Flat networks may share a bridge (their frames are untagged on
    both sides). Refusing here, rather than only in the flow driver, keeps the routes and the
    advertisements of a network that could not carry their traffic out of the fabric."""
    per_bridge: dict[str, list[ServedNetwork]] = defaultdict(list)
    for network in networks:
        per_bridge[network.bridge].append(network)
    kept = []
    for network in networks:
        sharing = per_bridge[network.bridge]
        if network.vlan is None or len(sharing) == 1:
            kept.append(network)
            continue
        others = ", ".join(sorted(n.name for n in sharing if n is not network))
        draft.refuse(network.name, network.localnet,
                     f"VLAN {network.vlan} on bridge {network.bridge}, which also carries "
                     f"{others}; a VLAN network needs a bridge of its own: serving it nowhere")
    return tuple(kept)


def add_network_plumbing(context: Context, draft: Draft) -> None:
    """The egress flow of every served network and the setup of every bridge that serves one."""
    for network in context.networks:
        patch_port = f"patch-{network.localnet}-to-{context.view.integration_bridge}"
        draft.flows.add(EgressFlow(bridge=network.bridge, patch_port=patch_port,
                                   vlan=network.vlan))
        bridge = context.settings.bridge(network.bridge)
        gateways = bridge.gateway_texts() if bridge is not None else ()
        draft.bridges.add(BridgeSetup(bridge=network.bridge, gateways=gateways))


# --- routers: how the SB ties a router to its gateway and its tenant networks -----------------


def find_routers(view: OvnView, networks: tuple[ServedNetwork, ...]) -> tuple[Router, ...]:
    """Every router with a gateway in the view: one per chassisredirect Port_Binding. Its
    uplink is found from the provider side alone: the patch Port_Binding on a served network
    whose `options:peer` is the cr-lrp's `options:distributed-port` (lrp-<gw>); the router-side
    patch binding lrp-<gw> is not needed."""
    served = {network.datapath: network for network in networks}
    names = {datapath.uuid: datapath.name for datapath in view.datapaths}
    peers: dict[str, list[PortBinding]] = defaultdict(list)
    for binding in view.port_bindings:
        if binding.options.get(PEER):
            peers[binding.options[PEER]].append(binding)
    routers = []
    for redirect in view.port_bindings:
        if redirect.type != CHASSISREDIRECT or redirect.datapath is None:
            continue
        gateway_port = redirect.options.get(DISTRIBUTED_PORT, "")
        uplinks = {served[b.datapath] for b in peers.get(gateway_port, ())
                   if b.datapath in served and b.datapath != redirect.datapath}
        mac, interfaces = _gateway_addresses(redirect)
        routers.append(Router(
            datapath=redirect.datapath, name=names.get(redirect.datapath, redirect.datapath),
            redirect=redirect, gateway_port=gateway_port,
            uplinks=tuple(sorted(uplinks, key=lambda n: n.datapath)),
            mac=mac, interfaces=interfaces,
        ))
    return tuple(routers)


def _gateway_addresses(redirect: PortBinding) -> tuple[str | None, tuple[IPInterface, ...]]:
    """The gateway MAC and addresses of a cr-lrp's `mac` ("MAC IP/len IP6/len")."""
    mac = None
    interfaces = []
    for entry in redirect.mac:
        parsed = parse_address_entry(entry)
        mac = mac or parsed.mac
        interfaces += [iface for address in parsed.addresses
                       if (iface := parse_interface(address.token)) is not None]
    return mac, tuple(sorted(set(interfaces), key=lambda i: (i.version, int(i.ip), str(i))))


def router_links(view: OvnView, routers: tuple[Router, ...],
                 bindings_by_name: Mapping[str, PortBinding]) -> dict[str, frozenset[str]]:
    """Tenant switch datapath -> the routers it is an interface of. A router interface is a
    pair of patch Port_Bindings naming each other in `options:peer`: lrp-<if> on the router's
    datapath and <if> on the switch's. The gateway port is not an interface."""
    gateway_ports = {router.datapath: router.gateway_port for router in routers}
    links: dict[str, set[str]] = defaultdict(set)
    for binding in view.port_bindings:
        router = binding.datapath
        if (router not in gateway_ports or binding.logical_port == gateway_ports[router]
                or CHASSIS_REDIRECT_PORT in binding.options):
            continue
        peer = bindings_by_name.get(binding.options.get(PEER, ""))
        if peer is not None and peer.datapath is not None and peer.datapath not in gateway_ports:
            links[peer.datapath].add(router)
    return {switch: frozenset(found) for switch, found in links.items()}


def is_active_on(binding: PortBinding, chassis: str) -> bool:
    """Whether OVN delivers a port's traffic on `chassis` (ovn-controller's rule, OVN >= 22.06):
    - on its main chassis, `chassis`, always;
    - on an additional chassis (`additional_chassis`: the destination of a live migration, Neutron
      having set `requested-chassis="src,dst"`), at once when the port has no
      `options:activation-strategy`, and with one (Neutron's default `rarp`) only once that
      chassis's name is in `options:additional-chassis-activated`, the comma-separated list
      ovn-controller extends when the migrated VM's first RARP reaches it. Until then OVN
      drops the port's traffic there. (northd keeps the key while Neutron's options stay the
      same and drops it when the migration ends and Neutron rewrites `requested-chassis`.)"""
    if not chassis:
        return False
    if binding.chassis == chassis:
        return True
    if chassis not in binding.additional_chassis:
        return False
    if not binding.options.get("activation-strategy"):
        return True
    return chassis in binding.options.get("additional-chassis-activated", "").split(",")


def is_draining_from(binding: PortBinding, chassis: str) -> bool:
    """Whether `chassis` is the source of a live migration whose destination is already active:
    it is the port's main `chassis`, and an additional chassis is active (is_active_on). OVN
    still delivers here until Neutron rebinds the port, but the VM now runs elsewhere: the
    source keeps its routes, marked draining, so the fabric moves to the destination before the
    source withdraws (make-before-break in BGP, not only in OVN)."""
    return (bool(chassis) and binding.chassis == chassis
            and any(other != chassis and is_active_on(binding, other)
                    for other in binding.additional_chassis))


# --- rule 3: workloads -------------------------------------------------------------------------


def add_provider_ports(context: Context, draft: Draft) -> None:
    """VM ports on a served provider network bound here.

    Reads Port_Binding `type` "" (a VM port), `datapath` (a served provider network), `chassis`
    (this node), `up` (not false) and `mac`: every address of every entry, with the entry's MAC
    as neighbour. The source of a live migration is such a port until ovn-controller on the
    destination becomes its main `chassis`: it keeps advertising through the whole overlap,
    draining (is_draining_from) once the destination is active."""
    for network in context.networks:
        for binding in context.bindings_on(network):
            if (binding.type == "" and binding.up is not False and context.local
                    and binding.chassis == context.local):
                _claim_mac_column(draft, binding, network, Reason.PROVIDER_PORT,
                                  draining=is_draining_from(binding, context.local))


def add_migration_targets(context: Context, draft: Draft) -> None:
    """The destination of a live migration, make-before-break.

    While Neutron migrates a VM, its port's Port_Binding has `chassis` = the source and
    `additional_chassis` = [the destination] (`options:requested-chassis="src,dst"`,
    `activation-strategy=rarp`). The destination advertises the port's addresses, exactly as
    add_provider_ports would, as soon as OVN delivers the port's traffic there (is_active_on:
    with rarp, once its name is in `options:additional-chassis-activated`); the source keeps
    advertising until `chassis` is no longer it. During the overlap the fabric has both paths,
    and either delivers: OVN sends a multi-chassis port's traffic to all of its chassis. When
    the migration ends, `chassis` is the destination, which add_provider_ports then covers."""
    for network in context.networks:
        for binding in context.bindings_on(network):
            if (binding.type == "" and binding.up is not False
                    and binding.chassis != context.local
                    and is_active_on(binding, context.local)):
                _claim_mac_column(draft, binding, network, Reason.PROVIDER_PORT)


def add_floating_ips(context: Context, draft: Draft) -> None:
    """Floating IPs, both modes, from what northd writes into the SB.

    Reads the `nat_addresses` of every Port_Binding on a served provider network (in practice
    the provider-side patch port of a router gateway), each entry
    `MAC IP [IP...] is_chassis_resident("PORT")`, and the Port_Binding named PORT:
    - PORT is a chassisredirect (`cr-lrp-<gw>`): centralized NAT. Advertised where that cr-lrp
      is bound, with the entry's MAC (the gateway MAC). The gateway's own addresses (in the
      cr-lrp's `mac`) are left to add_router_gateways.
    - PORT is any other port (the VM's): a distributed floating IP
      (`neutron:fip-distributed=True`). Advertised where that port is active (is_active_on:
      its chassis, or a live migration's activated destination), with the entry's MAC (the
      FIP's external MAC).
    - PORT is not in the view: it is not bound here, so nothing is advertised here.
    Neutron's variants give the same SB rows here: whether the NB NAT row has `gateway_port`
    changes nothing for a router with one gateway. An entry whose MAC or resident port cannot be
    read is refused by every node that sees it; a bad address only where the entry is served."""
    for network in context.networks:
        for holder in context.bindings_on(network):
            for entry in holder.nat_addresses:
                _claim_nat_entry(context, draft, holder, network, entry)


def _claim_nat_entry(context: Context, draft: Draft, holder: PortBinding,
                     network: ServedNetwork, entry: str) -> None:
    nat = parse_nat_address(entry)
    if nat.resident is None or nat.error:
        draft.refuse(entry, holder.logical_port, nat.error or "no resident port")
        return
    resident = context.bindings_by_name.get(nat.resident)
    if resident is None or not _serves_nat_here(resident, context.local):
        return
    own = _router_port_addresses(context, holder, resident)
    draining = is_draining_from(resident, context.local)    # a distributed FIP's VM migrating
    for token, why in nat.rejected:
        draft.refuse(token, nat.resident, why)
    for address in nat.addresses:
        if address.ip not in own:
            draft.claim(address.ip, address.token, network, mac=nat.mac,
                        reason=Reason.FLOATING_IP, port=nat.resident, draining=draining)


def _router_port_addresses(context: Context, holder: PortBinding,
                           resident: PortBinding) -> set[IPAddress]:
    """The router's own addresses, which northd lists in `nat_addresses` too (one entry, the
    router port's MAC and IPv4 addresses) and which are not floating IPs: those of the cr-lrp
    (add_router_gateways advertises them) and those of the router port the holder is patched
    to, when it is in the view."""
    ports = [resident] if resident.type == CHASSISREDIRECT else []
    peer = context.bindings_by_name.get(holder.options.get(PEER, ""))
    ports += [peer] if peer is not None else []
    return {iface.ip for port in ports for iface in _gateway_addresses(port)[1]}


def _serves_nat_here(resident: PortBinding, local: str) -> bool:
    """Whether `is_chassis_resident(resident)` holds on this chassis: a chassisredirect port
    where it is bound; any other port where it is active (and not marked down)."""
    if resident.type == CHASSISREDIRECT:
        return bool(local) and resident.chassis == local
    return resident.up is not False and is_active_on(resident, local)


def add_router_gateways(context: Context, draft: Draft) -> None:
    """Router gateway addresses, from the active gateway chassis only.

    Reads each chassisredirect Port_Binding (`cr-lrp-<gw>`) whose `chassis` is this node: the
    highest-priority live chassis of its HA chassis group has claimed it. (Neutron up to 28
    schedules with NB Gateway_Chassis, from 29 with an HA_Chassis_Group; either way northd
    gives the cr-lrp an SB `ha_chassis_group` and ovn-controller sets `chassis`, the only column
    read here.) Its `mac` ("MAC IP/len IP6/len") gives the addresses and the neighbour MAC; the
    bridge is that of the provider network its gateway port is patched to (Router.uplinks). A
    standby chassis advertises nothing; on failover `chassis` moves and the routes follow."""
    for router in context.routers:
        if not router.active_on(context.local):
            continue
        network = _uplink(router, draft)
        if network is not None:
            _claim_mac_column(draft, router.redirect, network, Reason.ROUTER_GATEWAY)


def _uplink(router: Router, draft: Draft) -> ServedNetwork | None:
    """The served network of a router active here, refusing what cannot be told apart."""
    port = router.redirect.logical_port
    if not router.gateway_port:
        draft.refuse(port, port, f"no options:{DISTRIBUTED_PORT}: its gateway port is unknown")
    elif len(router.uplinks) > 1:
        names = ", ".join(network.name for network in router.uplinks)
        draft.refuse(port, port, f"its gateway port {router.gateway_port} is patched to several "
                                 f"served networks ({names}); serving none of them")
    return router.uplink


@dataclass(frozen=True, slots=True)
class TenantSubnet:
    """A subnet on a router interface, in a configured address scope."""

    router: Router
    interface: str            # the router port, lrp-<if>
    network: str              # the tenant network's name
    prefix: IPNetwork
    scope: str                # its Neutron address scope (lower case; "" for none)


def add_tenant_subnets(context: Context, draft: Draft) -> None:
    """Tenant subnets behind a router, opt-in ([tenant_networks]).

    Reads, for each router whose gateway is on a served network: the patch Port_Bindings on
    the router's datapath other than its gateway port (lrp-<if>, `mac` "MAC 10.0.0.1/26 ...":
    the subnets), and the Port_Binding each one names in `options:peer` (the router-interface
    LSP on the tenant switch, whose `external_ids` carry Neutron's
    `neutron:subnet_pool_addr_scope4/6`). A subnet whose scope is not configured is refused,
    and so reported where the router's gateway is active (Neutron SNATs such a subnet, or it
    is routed in a scope this node was not told to expose). A subnet whose scope is configured
    is advertised from where the router's cr-lrp is bound, as `HostRoute(subnet, bridge,
    via=the router's gateway address of that family inside the bridge's gateway subnets)`: a
    tenant network is reachable from outside only through its router's active gateway. Subnets
    of different routers that overlap are all refused, by every node whose gateway would
    advertise one, and so are subnets overlapping a managed bridge's own subnets: advertised
    twice, traffic would be split between two networks."""
    tenant = context.settings.tenant_networks
    if not tenant.enabled:
        return
    found = {subnet for router in context.routers if router.uplink is not None
             for subnet in _tenant_subnets(context, router)}
    subnets = sorted((subnet for subnet in found if subnet.scope in tenant.address_scopes),
                     key=_subnet_order)
    overlaps = _overlapping(subnets)
    for subnet in sorted(found - set(subnets), key=_subnet_order):
        if subnet.router.active_on(context.local):
            draft.refuse(str(subnet.prefix), subnet.interface,
                         f"not in a configured address scope "
                         f"({ADDRESS_SCOPE_KEYS[subnet.prefix.version]}="
                         f"{subnet.scope or 'none'})")
    for subnet in subnets:
        router, network = subnet.router, subnet.router.uplink
        if network is None or not router.active_on(context.local):
            continue
        via = _next_hop(context, router, network, subnet.prefix.version)
        why = (overlaps.get(subnet) or _overlaps_bridges(context, subnet.prefix)
               or ("" if via is not None else
                   f"router {router.name} has no IPv{subnet.prefix.version} address inside "
                   f"the subnets of bridge {network.bridge} to route it through"))
        if why or via is None:
            draft.refuse(str(subnet.prefix), subnet.interface, why)
            continue
        draft.claims.append(Claim(prefix=subnet.prefix, token=str(subnet.prefix),
                                  bridge=network.bridge, mac=None, via=via,
                                  reason=Reason.TENANT_SUBNET, port=subnet.interface,
                                  network=subnet.network))


def _tenant_subnets(context: Context, router: Router) -> Iterator[TenantSubnet]:
    for interface in context.bindings_by_datapath.get(router.datapath, ()):
        if (interface.type != PATCH or interface.logical_port == router.gateway_port
                or CHASSIS_REDIRECT_PORT in interface.options):
            continue
        switch_port = context.bindings_by_name.get(interface.options.get(PEER, ""))
        if switch_port is None:
            continue
        for entry in interface.mac:
            for address in parse_address_entry(entry).addresses:
                iface = parse_interface(address.token)
                if iface is None or iface.network.prefixlen == iface.max_prefixlen:
                    continue
                scope = switch_port.external_ids.get(ADDRESS_SCOPE_KEYS[iface.version], "")
                yield TenantSubnet(router=router, interface=interface.logical_port,
                                   network=context.datapath_name(switch_port.datapath),
                                   prefix=iface.network, scope=scope.lower())


def _subnet_order(subnet: TenantSubnet) -> tuple[int, int, int, str, str]:
    prefix = subnet.prefix
    return (prefix.version, int(prefix.network_address), prefix.prefixlen,
            subnet.router.datapath, subnet.interface)


def _overlapping(subnets: list[TenantSubnet]) -> dict[TenantSubnet, str]:
    """Why each subnet that overlaps another is refused. `subnets` is sorted by address, so
    the overlapping ones form runs (one sweep, not every pair)."""
    runs: list[list[TenantSubnet]] = []
    end: tuple[int, int] = (0, -1)
    for subnet in subnets:
        span = Span.of(subnet.prefix)
        if runs and (span.version, span.first) <= end:
            runs[-1].append(subnet)
        else:
            runs.append([subnet])
        end = max(end, (span.version, span.last))
    why = {}
    for run in runs:
        for subnet in run if len(run) > 1 else ():
            others = ", ".join(f"{other.prefix} of router {other.router.name} "
                               f"({other.interface})" for other in run if other != subnet)
            why[subnet] = f"overlaps {others}; refusing all of them"
    return why


def _overlaps_bridges(context: Context, prefix: IPNetwork) -> str:
    for bridge in context.settings.bridges:
        for gateway in bridge.gateways:
            if Span.of(prefix).overlaps(Span.of(gateway.network)):
                return f"overlaps {gateway.network}, a subnet of bridge {bridge.name}"
    return ""


def _next_hop(context: Context, router: Router, network: ServedNetwork,
              version: int) -> IPAddress | None:
    """The router's gateway address of this family that the bridge reaches directly."""
    bridge = context.settings.bridge(network.bridge)
    on_link = [gateway.network for gateway in bridge.gateways] if bridge is not None else []
    found = sorted((iface.ip for iface in router.interfaces
                    if iface.version == version and any(iface.ip in net for net in on_link)),
                   key=int)
    return found[0] if found else None


def add_load_balancer_vips(context: Context, draft: Draft) -> None:
    """Load-balancer VIPs (Octavia's OVN provider, Neutron port forwarding), where OVN serves
    them: in the load-balancer stage of a router with a distributed gateway, which runs only
    where the router's cr-lrp is bound. So a VIP is advertised from the active gateway chassis
    of each router serving it, with that router's gateway MAC, on its uplink's bridge.

    A router serves a load balancer when
    - its datapath is among the Load_Balancer's datapaths (SB `lr_datapath_group`, OVN >= 24.03);
    - the row names it: Neutron's `neutron:router_name` (port forwarding) or Octavia's `lr_ref`
      in `external_ids` ("neutron-<id>", the bare id before Neutron 27), as NB rows carry them
      (the SB copies only `lb_id`), matched to the router datapath named "neutron-<id>";
    - or a switch among its datapaths is an interface of the router (router_links): before
      24.03 the SB names switches only, and Octavia applies a load balancer to the routers of
      its switches (`lr_ref`) as well as to the switches (`ls_refs`).
    Only VIPs on the provider side are advertised: inside the router's gateway subnets or the
    bridge's gateway subnets. A VIP inside a tenant subnet is reached through that subnet
    (add_tenant_subnets, opt-in), never exposed alone. A load balancer applied only to a
    provider switch is not advertised: OVN cannot deliver a routed frame to its backends (see
    the module docstring). A VIP floating IP (`neutron:vip_fip`) is also a floating IP: both
    claims agree (same gateway MAC) and are merged."""
    by_name = {datapath.external_ids.get("name", ""): datapath.uuid
               for datapath in context.view.datapaths}
    for balancer in context.view.load_balancers:
        routers = [router for router in _serving_routers(context, balancer, by_name)
                   if router.active_on(context.local) and router.uplink is not None]
        if not routers:
            continue
        for key in balancer.vips:
            ip, why = parse_vip(key)
            if ip is None:
                draft.refuse(key, balancer.name or balancer.uuid, why)
                continue
            for router in routers:
                network = router.uplink
                if network is not None and _on_provider_side(context, router, network, ip):
                    draft.claim(ip, key, network, mac=router.mac,
                                reason=Reason.LOAD_BALANCER_VIP,
                                port=balancer.name or balancer.uuid)


def _serving_routers(context: Context, balancer: LoadBalancer,
                     by_name: Mapping[str, str]) -> list[Router]:
    datapaths = set(balancer.datapaths)
    for key in LB_ROUTER_KEYS:
        for ref in filter(None, map(str.strip, balancer.external_ids.get(key, "").split(","))):
            name = ref if ref.startswith(NEUTRON_PREFIX) else NEUTRON_PREFIX + ref
            if name in by_name:
                datapaths.add(by_name[name])
    linked = set(datapaths)
    for datapath in datapaths:
        linked |= context.router_links.get(datapath, frozenset())
    return [router for router in context.routers if router.datapath in linked]


def _on_provider_side(context: Context, router: Router, network: ServedNetwork,
                      ip: IPAddress) -> bool:
    bridge = context.settings.bridge(network.bridge)
    subnets = [iface.network for iface in router.interfaces]
    subnets += [gateway.network for gateway in bridge.gateways] if bridge is not None else []
    return any(ip in subnet for subnet in subnets if subnet.prefixlen < subnet.max_prefixlen)


def add_virtual_ips(context: Context, draft: Draft) -> None:
    """Virtual IPs (Neutron allowed-address-pair VIPs) on a served provider network.

    Reads Port_Bindings of type "virtual" on a served network: `options:virtual-ip` (the VIP),
    `chassis` and `virtual_parent`, which ovn-controller sets when one of the
    `options:virtual-parents` announces the VIP (a GARP). Advertised from that `chassis`, with
    the parent's MAC: the MAC of the parent's Port_Binding `mac` if it is in the view (it is,
    being bound here), else the virtual port's own. When another parent takes the VIP over,
    `chassis` and `virtual_parent` move and the route follows. Neutron's variants differ only in
    the host name key it writes afterwards (`neutron:host_id` up to 28,
    `neutron:parent_hostname` from 29), which is not read: `chassis` says it first."""
    for network in context.networks:
        for binding in context.bindings_on(network):
            if binding.type == VIRTUAL and context.local and binding.chassis == context.local:
                _claim_virtual_ip(context, draft, binding, network)


def _claim_virtual_ip(context: Context, draft: Draft, binding: PortBinding,
                      network: ServedNetwork) -> None:
    parent = context.bindings_by_name.get(binding.virtual_parent or "")
    mac = (_single_mac(parent) if parent is not None else None) or _single_mac(binding)
    port = binding.logical_port
    tokens = [token.strip() for token in binding.options.get("virtual-ip", "").split(",")]
    if not any(tokens):
        draft.refuse(port, port, "a virtual port without options:virtual-ip")
    for token in filter(None, tokens):
        ip, why = parse_ip(token)
        if ip is None:
            draft.refuse(token, port, why)
        elif mac is None:
            draft.refuse(token, port, f"no MAC for it: neither its parent "
                                      f"({binding.virtual_parent or 'none'}) nor the virtual "
                                      f"port has exactly one in view")
        else:
            draft.claim(ip, token, network, mac=mac, reason=Reason.VIRTUAL_IP, port=port)


def _single_mac(binding: PortBinding) -> str | None:
    macs = {mac for entry in binding.mac if (mac := parse_address_entry(entry).mac)}
    return macs.pop() if len(macs) == 1 else None


def _claim_mac_column(draft: Draft, binding: PortBinding, network: ServedNetwork,
                      reason: Reason, *, draining: bool = False) -> None:
    """Every address of a Port_Binding's `mac` column, each with its entry's MAC."""
    claims, refusals = _mac_column_claims(binding.mac, binding.logical_port, network.bridge,
                                          network.name, reason, draining=draining)
    draft.claims.extend(claims)
    draft.refusals.extend(refusals)


@functools.lru_cache(maxsize=PARSER_CACHE)
def _mac_column_claims(mac: tuple[str, ...], port: str, bridge: str, network: str,
                       reason: Reason, *, draining: bool
                       ) -> tuple[tuple[Claim, ...], tuple[Refusal, ...]]:
    """The claims and refusals of a `mac` column (cached: a port that did not change gives the
    very same Claim objects on every pass, which lets resolve() reuse its work on them)."""
    claims: list[Claim] = []
    refusals: list[Refusal] = []
    for entry in mac:
        parsed = parse_address_entry(entry)
        refusals += [Refusal(what=token, port=port, why=why) for token, why in parsed.rejected]
        claims += [Claim(prefix=host_network(address.ip), token=address.token, bridge=bridge,
                         mac=parsed.mac, via=None, reason=reason, port=port, network=network,
                         draining=draining)
                   for address in parsed.addresses]
    return tuple(claims), tuple(refusals)


# Each kind of workload, in no particular order (the result does not depend on it).
WORKLOADS: tuple[Workload, ...] = (
    add_provider_ports,
    add_migration_targets,
    add_floating_ips,
    add_router_gateways,
    add_tenant_subnets,
    add_load_balancer_vips,
    add_virtual_ips,
)


# --- rule 4: the exposure policy ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Allowed:
    rule: str


@dataclass(frozen=True, slots=True)
class Refused:
    why: str


@dataclass(frozen=True, slots=True)
class Span:
    """A prefix as the range of addresses it covers: cheap to compare, whatever the family."""

    version: int
    first: int
    last: int

    @classmethod
    def of(cls, prefix: IPNetwork) -> Span:
        return cls(prefix.version, int(prefix.network_address), int(prefix.broadcast_address))

    @classmethod
    def of_slot(cls, slot: tuple[int, int, int]) -> Span:
        """The span of a prefix given as (version, first address, length): integer arithmetic
        only (a network's broadcast_address costs far more the first time it is asked)."""
        version, first, length = slot
        return cls(version, first, first + (1 << ((32 if version == 4 else 128) - length)) - 1)

    def overlaps(self, other: Span) -> bool:
        return (self.version == other.version
                and self.first <= other.last and other.first <= self.last)

    def within(self, other: Span) -> bool:
        return (self.version == other.version
                and other.first <= self.first and self.last <= other.last)


@dataclass(frozen=True, slots=True)
class ExposureGate:
    """The exposure policy of the settings, ready to judge prefixes."""

    refused: tuple[tuple[Span, str], ...]          # special addresses, first match wins
    deny: tuple[tuple[Span, PrefixRule], ...]
    allow: tuple[PrefixRule, ...]                  # as in the settings
    longest_first: tuple[tuple[Span, PrefixRule], ...]
    # verdicts given so far, by prefix (judging is pure; a gate lives as long as its settings)
    verdicts: dict[tuple[int, int, int], Allowed | Refused] = field(
        default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> ExposureGate:
        refused = list(ALWAYS_REFUSED)
        for bridge in settings.bridges:
            for gateway in bridge.gateways:
                refused.append((ipaddress.ip_network(gateway.ip),
                                f"the gateway address of bridge {bridge.name}"))
                for host in unusable_hosts(gateway.network):
                    kind = "network" if host == gateway.network.network_address else "broadcast"
                    refused.append((ipaddress.ip_network(host),
                                    f"the {kind} address of {gateway.network} "
                                    f"(bridge {bridge.name})"))
        allow = settings.exposure.allow
        longest_first = sorted(allow, key=lambda rule: -rule.prefix.prefixlen)
        return cls(
            refused=tuple((Span.of(prefix), why) for prefix, why in refused),
            deny=tuple((Span.of(rule.prefix), rule) for rule in settings.exposure.deny),
            allow=allow,
            longest_first=tuple((Span.of(rule.prefix), rule) for rule in longest_first),
        )

    def judge_slot(self, slot: tuple[int, int, int], prefix: IPNetwork) -> Allowed | Refused:
        """judge(prefix), remembered under `slot` (the prefix's (version, first, length))."""
        verdict = self.verdicts.get(slot)
        if verdict is None:
            verdict = self.verdicts[slot] = self.judge(prefix, Span.of_slot(slot))
        return verdict

    def judge(self, prefix: IPNetwork, span: Span | None = None) -> Allowed | Refused:
        if prefix.prefixlen == 0:
            return Refused("the default route")
        span = span or Span.of(prefix)
        for refused, why in self.refused:
            if span.overlaps(refused):
                return Refused(why)
        for denied, rule in self.deny:
            if span.overlaps(denied):
                return Refused(f"inside the denied prefix {rule}")
        for allowed, rule in self.longest_first:
            if span.within(allowed):
                return Allowed(f"allow {rule}")
        in_family = [str(rule.prefix) for rule in self.allow
                     if rule.prefix.version == prefix.version]
        if not in_family:
            return Refused(f"no IPv{prefix.version} prefix is allowed")
        return Refused(f"outside the allowed prefixes ({', '.join(in_family)})")


# --- rules 5 and 6: conflicts and the result ---------------------------------------------------


Slot = tuple[int, int, int]          # a prefix as (version, first address, length): hashed in C


def _slot(prefix: IPNetwork) -> Slot:
    return prefix.version, int(prefix.network_address), prefix.prefixlen


@dataclass(frozen=True, slots=True)
class Resolved:
    """What one claim resolves to on its own: refused, or the route, neighbour and exposure it
    gives if no other claim of its prefix disagrees."""

    claim: Claim
    gate: ExposureGate
    slot: Slot
    refusal: Refusal | None
    outcome: Outcome | None

    @classmethod
    def of(cls, claim: Claim, gate: ExposureGate) -> Resolved:
        slot = _slot(claim.prefix)
        verdict = gate.judge_slot(slot, claim.prefix)
        if isinstance(verdict, Refused):
            return cls(claim, gate, slot, Refusal(what=claim.token, port=claim.port,
                                                  why=verdict.why), None)
        exposure = Exposure(prefix=claim.prefix, reason=claim.reason, port=claim.port,
                            network=claim.network, rule=verdict.rule)
        return cls(claim, gate, slot, None, Outcome.of(
            HostRoute(dst=claim.prefix, dev=claim.bridge, via=claim.via,
                      draining=claim.draining),
            Neighbour(ip=claim.prefix.network_address, mac=claim.mac, dev=claim.bridge)
            if claim.mac is not None else None, [exposure]))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one allowed prefix puts in the desired state."""

    route: HostRoute
    neighbour: Neighbour | None
    exposures: tuple[tuple[ExposureKey, Exposure], ...]      # sorted by key

    @classmethod
    def of(cls, route: HostRoute, neighbour: Neighbour | None,
           exposures: Iterable[Exposure]) -> Outcome:
        return cls(route, neighbour, tuple(sorted((_exposure_order(e), e)
                                                  for e in set(exposures))))


class PlanMemo:
    """What plan() keeps from one call to the next (not thread-safe: one call at a time).

    - the exposure gate of the settings, and its verdict on each prefix;
    - each claim's resolution, by identity: unchanged ports give the very same Claim objects
      (`_mac_column_claims` is cached), so their route, neighbour and exposure objects are
      reused. The memo holds each claim it remembers, so an id is never reused meanwhile;
    - the previous result, per prefix: the new sets are the previous ones minus what changed
      plus what is new (Python keeps each element's hash in a set: only changed elements are
      hashed again), and the exposures are re-sorted only where they changed.
    A memo never changes the result: plan(view, settings, memo) == plan(view, settings)."""

    __slots__ = ("_current", "_gate", "_keyed", "_outcomes", "_previous", "_result",
                 "_settings")

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._gate: ExposureGate | None = None
        self._previous: dict[int, Resolved] = {}
        self._current: dict[int, Resolved] = {}
        self._outcomes: dict[Slot, Outcome] = {}
        self._result: DesiredState | None = None
        self._keyed: list[tuple[ExposureKey, Exposure]] = []     # the result's exposures

    def gate(self, settings: Settings) -> ExposureGate:
        if self._gate is None or settings is not self._settings:
            self._settings, self._gate = settings, ExposureGate.from_settings(settings)
        return self._gate

    def resolved(self, claim: Claim, gate: ExposureGate) -> Resolved:
        kept = self._previous.get(id(claim))
        if kept is None or kept.claim is not claim or kept.gate is not gate:
            kept = Resolved.of(claim, gate)
        self._current[id(claim)] = kept
        return kept

    def done(self, outcomes: dict[Slot, Outcome], result: DesiredState,
             keyed: list[tuple[ExposureKey, Exposure]]) -> None:
        self._previous, self._current = self._current, {}
        self._outcomes, self._result, self._keyed = outcomes, result, keyed

    def result_for(self, outcomes: dict[Slot, Outcome], draft: Draft, refusals: set[Refusal]
                   ) -> tuple[DesiredState, list[tuple[ExposureKey, Exposure]]]:
        """The desired state of `outcomes` (and its exposures with their sort keys), built
        from the previous one where it can be."""
        previous = self._result
        flows, bridges = frozenset(draft.flows), frozenset(draft.bridges)
        ordered_refusals = tuple(sorted(refusals))
        if previous is None:
            return _state_of(outcomes, flows, bridges, ordered_refusals)
        old = self._outcomes
        gone = [o for slot, o in old.items() if outcomes.get(slot) is not o]
        new = [o for slot, o in outcomes.items() if old.get(slot) is not o]
        if len(gone) + len(new) > len(outcomes) // 4 + 16:
            return _state_of(outcomes, flows, bridges, ordered_refusals)
        if not gone and not new and (flows, bridges, ordered_refusals) == (
                previous.flows, previous.bridges, previous.refusals):
            return previous, self._keyed
        routes = previous.routes.difference([o.route for o in gone]).union(
            [o.route for o in new])
        neighbours = previous.neighbours.difference(
            [o.neighbour for o in gone if o.neighbour is not None]).union(
            [o.neighbour for o in new if o.neighbour is not None])
        keyed = list(self._keyed)
        for outcome in gone:
            for pair in outcome.exposures:
                index = bisect.bisect_left(keyed, pair[0], key=_first)
                if index < len(keyed) and keyed[index][0] == pair[0]:
                    del keyed[index]
        for outcome in new:
            for pair in outcome.exposures:
                bisect.insort(keyed, pair, key=_first)
        state = DesiredState(routes=routes, neighbours=neighbours, flows=flows,
                             bridges=bridges, exposures=tuple(e for _, e in keyed),
                             refusals=ordered_refusals)
        if (len(routes), len(neighbours), len(keyed)) != _counts(outcomes):
            # two prefixes gave one equal element (never expected): build it whole
            return _state_of(outcomes, flows, bridges, ordered_refusals)
        return state, keyed


def _first(pair: tuple[ExposureKey, Exposure]) -> ExposureKey:
    return pair[0]


def _counts(outcomes: dict[Slot, Outcome]) -> tuple[int, int, int]:
    return (len(outcomes), sum(o.neighbour is not None for o in outcomes.values()),
            sum(len(o.exposures) for o in outcomes.values()))


def _state_of(outcomes: dict[Slot, Outcome], flows: frozenset[EgressFlow],
              bridges: frozenset[BridgeSetup], refusals: tuple[Refusal, ...]
              ) -> tuple[DesiredState, list[tuple[ExposureKey, Exposure]]]:
    values = outcomes.values()
    keyed = sorted({pair[0]: pair for o in values for pair in o.exposures}.values(), key=_first)
    return DesiredState(
        routes=frozenset(o.route for o in values),
        neighbours=frozenset(o.neighbour for o in values if o.neighbour is not None),
        flows=flows,
        bridges=bridges,
        exposures=tuple(e for _, e in keyed),
        refusals=refusals,
    ), keyed


def resolve(draft: Draft, gate: ExposureGate, memo: PlanMemo | None = None) -> DesiredState:
    memo = memo if memo is not None else PlanMemo()
    refusals = set(draft.refusals)
    by_slot: dict[Slot, list[Resolved]] = defaultdict(list)
    for claim in draft.claims:
        resolved = memo.resolved(claim, gate)
        if resolved.refusal is not None:
            refusals.add(resolved.refusal)
        else:
            by_slot[resolved.slot].append(resolved)

    outcomes: dict[Slot, Outcome] = {}
    for slot, found in by_slot.items():
        outcome = found[0].outcome if len(found) == 1 else _merged(found, refusals)
        if outcome is not None:
            outcomes[slot] = outcome
    result, keyed = memo.result_for(outcomes, draft, refusals)
    memo.done(outcomes, result, keyed)
    return result


def _merged(found: list[Resolved], refusals: set[Refusal]) -> Outcome | None:
    """The outcome of several allowed claims of one prefix: merged when they agree, all
    refused when they do not."""
    claims = [r.claim for r in found]
    if len({(claim.bridge, claim.mac, claim.via) for claim in claims}) > 1:
        why = _conflict(claims)
        refusals.update(Refusal(what=claim.token, port=claim.port, why=why) for claim in claims)
        return None
    first = found[0].outcome
    if first is None:              # never: `found` holds allowed claims only
        return None
    # Draining only when every claim is: another workload that still wants the address here
    # keeps it at full preference.
    route = replace(first.route, draining=all(claim.draining for claim in claims))
    return Outcome.of(route, first.neighbour,
                      (e for r in found if r.outcome is not None for _, e in r.outcome.exposures))


def _conflict(claims: Iterable[Claim]) -> str:
    claimants = sorted({
        f"{claim.port} ({claim.mac or 'no MAC'} on {claim.bridge}"
        + (f" via {claim.via})" if claim.via else ")")
        for claim in claims
    })
    return f"claimed differently on this node by {', '.join(claimants)}; refusing all of them"


ExposureKey = tuple[int, int, int, str, str, str, str]


def _exposure_order(exposure: Exposure) -> ExposureKey:
    prefix = exposure.prefix
    return (prefix.version, int(prefix.network_address), prefix.prefixlen, exposure.reason,
            exposure.port, exposure.network, exposure.rule)


def _bindings_by_datapath(
    bindings: Iterable[PortBinding],
) -> dict[str, tuple[PortBinding, ...]]:
    grouped: dict[str, list[PortBinding]] = defaultdict(list)
    for binding in bindings:
        if binding.datapath is not None:
            grouped[binding.datapath].append(binding)
    return {datapath: tuple(found) for datapath, found in grouped.items()}
