"""Rules 1 and 2, and what every workload reads: the provider networks this node serves, their
plumbing (egress flows, bridge setup), the routers with a gateway on them, and where OVN
delivers a port (is_active_on, is_draining_from). Pure."""

from __future__ import annotations

import operator
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ovn_fabric.config import Settings
from ovn_fabric.model import (
    BridgeSetup,
    EgressFlow,
)
from ovn_fabric.ovn.view import (
    IPInterface,
    OvnView,
    PortBinding,
    parse_address_entry,
    parse_interface,
)
from ovn_fabric.plan.draft import (
    CHASSIS_REDIRECT_PORT,
    CHASSISREDIRECT,
    DISTRIBUTED_PORT,
    PEER,
    VM_PORT,
    Draft,
    Router,
    ServedNetwork,
)


@dataclass(frozen=True, slots=True)
class Context:
    """What every workload function reads: the view, the settings, and indexes built once."""

    view: OvnView
    settings: Settings
    networks: tuple[ServedNetwork, ...]
    bindings_by_datapath: Mapping[str, tuple[PortBinding, ...]]
    datapath_names: Mapping[str, str] = field(default_factory=dict)
    routers: tuple[Router, ...] = ()
    # tenant switch datapath -> datapaths of the routers it is an interface of
    router_links: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, view: OvnView, settings: Settings,
           networks: tuple[ServedNetwork, ...]) -> Context:
        by_datapath = _bindings_by_datapath(view.port_bindings)
        routers = find_routers(view, networks)
        return cls(view=view, settings=settings, networks=networks,
                   bindings_by_datapath=by_datapath,
                   datapath_names={dp.uuid: dp.name for dp in view.datapaths},
                   routers=routers, router_links=router_links(view, routers))

    @property
    def local(self) -> str:
        return self.view.local_chassis

    def binding_named(self, name: str) -> PortBinding | None:
        """The Port_Binding whose `logical_port` is `name`. Bisected in the view's rows, which
        are sorted by it (OvnView), rather than looked up in an index of every port: at 3,000
        ports, building that index was a quarter of a bind's plan. Of rows sharing a name (bad
        data), the last in the view's order, as before."""
        return binding_named(self.view.port_bindings, name)

    def bindings_on(self, network: ServedNetwork) -> tuple[PortBinding, ...]:
        return self.bindings_by_datapath.get(network.datapath, ())

    def datapath_name(self, datapath: str | None) -> str:
        """The most readable name of a datapath (its UUID when it is not in the view)."""
        return self.datapath_names.get(datapath or "", datapath or "?")


Workload = Callable[[Context, Draft], None]


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
        # A VM port (type "") has no peer; skipping it before reading `options` (a bisect in
        # Python) keeps this walk cheap on a node with thousands of them.
        if binding.type != VM_PORT and binding.options.get(PEER):
            peers[binding.options[PEER]].append(binding)
    routers = []
    for redirect in view.port_bindings:
        if redirect.type != CHASSISREDIRECT or redirect.datapath is None:
            continue
        gateway_port = redirect.options.get(DISTRIBUTED_PORT, "")
        uplinks = {served[b.datapath] for b in peers.get(gateway_port, ())
                   if b.datapath in served and b.datapath != redirect.datapath}
        mac, interfaces = gateway_addresses(redirect)
        routers.append(Router(
            datapath=redirect.datapath, name=names.get(redirect.datapath, redirect.datapath),
            redirect=redirect, gateway_port=gateway_port,
            uplinks=tuple(sorted(uplinks, key=lambda n: n.datapath)),
            mac=mac, interfaces=interfaces,
        ))
    return tuple(routers)


def gateway_addresses(redirect: PortBinding) -> tuple[str | None, tuple[IPInterface, ...]]:
    """The gateway MAC and addresses of a cr-lrp's `mac` ("MAC IP/len IP6/len")."""
    mac = None
    interfaces = []
    for entry in redirect.mac:
        parsed = parse_address_entry(entry)
        mac = mac or parsed.mac
        interfaces += [iface for address in parsed.addresses
                       if (iface := parse_interface(address.token)) is not None]
    return mac, tuple(sorted(set(interfaces), key=lambda i: (i.version, int(i.ip), str(i))))


def router_links(view: OvnView, routers: tuple[Router, ...]) -> dict[str, frozenset[str]]:
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
        peer = binding_named(view.port_bindings, binding.options.get(PEER, ""))
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


def binding_named(bindings: Sequence[PortBinding], name: str) -> PortBinding | None:
    """The last of `bindings` (sorted by logical_port) named `name`, or None."""
    index = bisect_right(bindings, name, key=_logical_port) - 1
    if index >= 0 and bindings[index].logical_port == name:
        return bindings[index]
    return None


_logical_port: Callable[[PortBinding], str] = operator.attrgetter("logical_port")


def _bindings_by_datapath(
    bindings: Iterable[PortBinding],
) -> dict[str, tuple[PortBinding, ...]]:
    grouped: dict[str, list[PortBinding]] = defaultdict(list)
    for binding in bindings:
        if binding.datapath is not None:
            grouped[binding.datapath].append(binding)
    return {datapath: tuple(found) for datapath, found in grouped.items()}
