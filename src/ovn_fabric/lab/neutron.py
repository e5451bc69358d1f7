"""Tenant networks behind a distributed router, written to the OVN NB exactly as Neutron writes
them (shared/OVN_DATA.md, sections (c) and (d)); the overlay carries their traffic.

Which Neutron: the rows follow Neutron 27.x-28.x (2025.2-2026.1) with DVR on:
- the router's gateway port is scheduled on every gateway-capable chassis (role `gateway`,
  `ovn-cms-options=enable-chassis-as-gw`), in topology order, with priorities N..1, so the first
  is active and the next takes over. By default as Neutron <= 28 writes it, one
  `Gateway_Chassis` row `lrp-<gw>_<chassis>` per chassis; with `scheduling="ha_chassis_group"`
  as Neutron >= 29 does, one `HA_Chassis_Group` `neutron-<router id>` with an `HA_Chassis` per
  chassis, referenced by the gateway port's `ha_chassis_group`;
- `neutron:router_name` on router ports holds `neutron-<router id>` (from 27.0.0);
- the gateway port has `reside-on-redirect-chassis=false` (DVR) and no `redirect-type=bridged`,
  since the tenant networks are Geneve, not flat or VLAN.

What runs where: OVN distributes a router's pipeline to every chassis that hosts one of its
ports, so a packet from a tenant VM to another subnet of the same router is routed on the VM's
own chassis and leaves it already addressed to the destination subnet, in a Geneve tunnel
straight to the destination's chassis (east/west). Only what needs the gateway (SNAT, the
gateway address) goes through the active gateway chassis (`cr-lrp-<gw>`).

UUIDs are derived from the lab prefix and the object's name (ovn.lab_uuid), so a run is
repeatable. What each network and router was given is recorded under
`<lab dir>/neutron/{networks,routers}/<name>.json`, so that VMs, the CLI and the address
allocator find it without asking OVN.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import asdict, dataclass, field, replace
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_network,
)
from pathlib import Path
from typing import Any, Literal

from ovn_fabric.lab import ovn
from ovn_fabric.lab.paths import LabPaths
from ovn_fabric.lab.topology import Role, Topology

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,15}$")
PHYSICAL_MTU = 1500
GENEVE_OVERHEAD = 58           # outer IPv4 20 + UDP 8 + Geneve 8 + OVN's option 8 + inner L2 14
TENANT_MTU = PHYSICAL_MTU - GENEVE_OVERHEAD    # 1442, what Neutron gives a Geneve network
STATE_FILE_SUFFIX = ".json"


class NeutronError(RuntimeError):
    """A tenant network or router that cannot be created, found or removed as asked."""


# --- identities -------------------------------------------------------------------------------


def neutron_mac(paths: LabPaths, kind: str, name: str) -> str:
    """A MAC in Neutron's default base `fa:16:3e`, derived from the lab, the kind and the name."""
    digest = hashlib.sha256(f"{paths.prefix}/{kind}/{name}".encode()).digest()
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in digest[:3])


def project_id(paths: LabPaths) -> str:
    """The Keystone project of everything the lab creates (32 hex digits, no dashes)."""
    return uuid.UUID(ovn.lab_uuid(paths, "project", "admin")).hex


def _root(paths: LabPaths, kind: str) -> Path:
    return paths.lab_dir / "neutron" / kind


def _record(paths: LabPaths, kind: str, name: str) -> Path:
    return _root(paths, kind) / f"{name}{STATE_FILE_SUFFIX}"


def _check_name(what: str, name: str) -> None:
    if not NAME_RE.match(name):
        raise NeutronError(f"{what} name {name!r}: 1-16 lower-case letters, digits and '-', "
                           "starting with a letter")


# --- tenant networks --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TenantNetwork:
    """A Neutron tenant (Geneve) network with one IPv4 and one IPv6 subnet."""

    name: str
    network_id: str
    subnet4_id: str
    subnet6_id: str
    cidr4: IPv4Network
    gateway4: IPv4Address
    cidr6: IPv6Network
    gateway6: IPv6Address
    mtu: int = TENANT_MTU

    @property
    def switch(self) -> str:
        """The Logical_Switch: `neutron-<network id>`."""
        return f"neutron-{self.network_id}"

    def to_json(self) -> str:
        return json.dumps({k: str(v) if not isinstance(v, int) else v
                           for k, v in asdict(self).items()}, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> TenantNetwork:
        data = json.loads(text)
        return cls(
            name=data["name"], network_id=data["network_id"], subnet4_id=data["subnet4_id"],
            subnet6_id=data["subnet6_id"], cidr4=IPv4Network(data["cidr4"]),
            gateway4=IPv4Address(data["gateway4"]), cidr6=IPv6Network(data["cidr6"]),
            gateway6=IPv6Address(data["gateway6"]), mtu=int(data["mtu"]),
        )


def plan_network(paths: LabPaths, topology: Topology, name: str, *, cidr4: str, cidr6: str,
                 gateway4: str | None = None, gateway6: str | None = None) -> TenantNetwork:
    """A tenant network's identities and subnets, checked; nothing is created. The gateways
    default to the first host of each subnet, as Neutron's do."""
    _check_name("network", name)
    if name == topology.provider.name:
        raise NeutronError(f"{name!r} is the provider network's name")
    try:
        net4, net6 = ip_network(cidr4), ip_network(cidr6)
    except ValueError as exc:
        raise NeutronError(f"network {name!r}: {exc}") from None
    if not isinstance(net4, IPv4Network) or not isinstance(net6, IPv6Network):
        raise NeutronError(f"network {name!r}: --cidr4 takes an IPv4 prefix, --cidr6 an IPv6 one")
    if net4.prefixlen > 29 or net6.prefixlen > 120:
        raise NeutronError(f"network {name!r}: subnets of at least 8 addresses, please")
    gw4 = IPv4Address(gateway4) if gateway4 else net4.network_address + 1
    gw6 = IPv6Address(gateway6) if gateway6 else net6.network_address + 1
    if gw4 not in net4 or gw6 not in net6:
        raise NeutronError(f"network {name!r}: the gateways must lie inside the subnets")
    fabric = [topology.provider.cidr4, topology.loopback_pool4, topology.encap_pool4]
    for other in fabric + [n.cidr4 for n in list_networks(paths)]:
        if net4.overlaps(other):
            raise NeutronError(f"network {name!r}: {net4} overlaps {other}, already in use")
    for other6 in [topology.provider.cidr6, topology.loopback_pool6,
                   *(n.cidr6 for n in list_networks(paths))]:
        if net6.overlaps(other6):
            raise NeutronError(f"network {name!r}: {net6} overlaps {other6}, already in use")
    return TenantNetwork(
        name=name,
        network_id=ovn.lab_uuid(paths, "network", name),
        subnet4_id=ovn.lab_uuid(paths, "subnet4", name),
        subnet6_id=ovn.lab_uuid(paths, "subnet6", name),
        cidr4=net4, gateway4=gw4, cidr6=net6, gateway6=gw6,
    )


def network_external_ids(network: TenantNetwork) -> dict[str, str]:
    """The Logical_Switch external_ids Neutron writes for a tenant network."""
    return {
        "neutron:availability_zone_hints": "",
        "neutron:mtu": str(network.mtu),
        "neutron:network_name": network.name,
        "neutron:revision_number": "1",
    }


def dhcp_rows(paths: LabPaths, network: TenantNetwork) -> tuple[ovn.DhcpOptionsRow, ...]:
    """The subnets' DHCP_Options rows (IPv4 with the network's MTU, IPv6 DHCPv6-stateful)."""
    return (
        ovn.DhcpOptionsRow(
            cidr=str(network.cidr4),
            options={
                "lease_time": str(ovn.NEUTRON_DHCP_LEASE_TIME),
                "mtu": str(network.mtu),
                "router": str(network.gateway4),
                "server_id": str(network.gateway4),
                "server_mac": neutron_mac(paths, "dhcp4", network.name),
            },
            external_ids={"subnet_id": network.subnet4_id, "neutron:revision_number": "0"},
        ),
        ovn.DhcpOptionsRow(
            cidr=str(network.cidr6),
            options={"server_id": neutron_mac(paths, "dhcp6", network.name)},
            external_ids={"subnet_id": network.subnet6_id, "neutron:revision_number": "0"},
        ),
    )


def add_network(paths: LabPaths, topology: Topology, name: str, *, cidr4: str, cidr6: str,
                gateway4: str | None = None, gateway6: str | None = None) -> TenantNetwork:
    """Create a tenant network as Neutron does: a Logical_Switch with no localnet port (its
    traffic between chassis rides Geneve) and the DHCP_Options of its two subnets."""
    network = plan_network(paths, topology, name, cidr4=cidr4, cidr6=cidr6,
                           gateway4=gateway4, gateway6=gateway6)
    record = _record(paths, "networks", name)
    if record.exists():
        raise NeutronError(f"network {name!r} already exists in lab {paths.prefix!r}")
    args = [
        "--", "--may-exist", "ls-add", network.switch,
        "--", "set", "Logical_Switch", network.switch,
        f"external_ids={ovn.ovsdb_map(network_external_ids(network))}",
        "other_config=" + ovn.ovsdb_map({
            "fdb_age_threshold": "0", "mcast_flood_unregistered": "false",
            "mcast_snoop": "false", "vlan-passthru": "false"}),
    ]
    for row in dhcp_rows(paths, network):
        args += ["--", "create", "DHCP_Options", *row.columns()]
    record.parent.mkdir(parents=True, exist_ok=True)
    ovn.nbctl(paths, topology.controller.name, *args)
    record.write_text(network.to_json())
    return network


def load_network(paths: LabPaths, name: str) -> TenantNetwork:
    try:
        return TenantNetwork.from_json(_record(paths, "networks", name).read_text())
    except FileNotFoundError:
        raise NeutronError(f"no tenant network named {name!r} in lab {paths.prefix!r}") from None


def list_networks(paths: LabPaths) -> list[TenantNetwork]:
    root = _root(paths, "networks")
    if not root.is_dir():
        return []
    return [TenantNetwork.from_json(p.read_text())
            for p in sorted(root.glob(f"*{STATE_FILE_SUFFIX}"))]


def del_network(paths: LabPaths, topology: Topology, name: str) -> None:
    """Remove a tenant network that no router interface and no VM uses any more."""
    from ovn_fabric.lab import vm as vmmod  # noqa: PLC0415  (vm.py imports this module)

    network = load_network(paths, name)
    users = [r.name for r in list_routers(paths) if r.interface(name) is not None]
    users += [f"VM {v.name}" for v in vmmod.list_vms(paths) if v.network == name]
    if users:
        raise NeutronError(f"network {name!r} is still used by {', '.join(users)}")
    central = topology.controller.name
    args = ["--", "--if-exists", "ls-del", network.switch]
    for subnet_id in (network.subnet4_id, network.subnet6_id):
        existing = ovn.dhcp_options_uuid(paths, central, subnet_id)
        if existing:
            args += ["--", "destroy", "DHCP_Options", existing]
    ovn.nbctl(paths, central, *args)
    _record(paths, "networks", name).unlink()


# --- routers ----------------------------------------------------------------------------------


# How the gateway port is scheduled: Neutron <= 28 (Gateway_Chassis) or >= 29 (HA_Chassis_Group).
Scheduling = Literal["gateway_chassis", "ha_chassis_group"]


@dataclass(frozen=True, slots=True)
class RouterInterface:
    """A router interface on a tenant network: LRP `lrp-<port id>` and LSP `<port id>`."""

    network: str
    port_id: str
    mac: str

    @property
    def lrp(self) -> str:
        return f"lrp-{self.port_id}"


@dataclass(frozen=True, slots=True)
class Router:
    """A Neutron router with its gateway on the provider network, and its interfaces."""

    name: str
    router_id: str
    gw_port_id: str
    gw_mac: str
    gw_ip4: IPv4Interface
    gw_ip6: IPv6Interface
    gateway_chassis: tuple[str, ...]      # system-ids, highest priority first
    interfaces: tuple[RouterInterface, ...] = field(default=())
    scheduling: Scheduling = "gateway_chassis"

    @property
    def ha_chassis_group(self) -> str:
        """The NB HA_Chassis_Group's name when scheduled the Neutron >= 29 way."""
        return f"neutron-{self.router_id}"

    @property
    def lr(self) -> str:
        """The Logical_Router: `neutron-<router id>`."""
        return f"neutron-{self.router_id}"

    @property
    def gw_lrp(self) -> str:
        return f"lrp-{self.gw_port_id}"

    @property
    def redirect_port(self) -> str:
        """The SB chassisredirect port northd makes of the gateway port."""
        return f"cr-lrp-{self.gw_port_id}"

    def interface(self, network: str) -> RouterInterface | None:
        return next((i for i in self.interfaces if i.network == network), None)

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["gw_ip4"], data["gw_ip6"] = str(self.gw_ip4), str(self.gw_ip6)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Router:
        data = json.loads(text)
        return cls(
            name=data["name"], router_id=data["router_id"], gw_port_id=data["gw_port_id"],
            gw_mac=data["gw_mac"], gw_ip4=IPv4Interface(data["gw_ip4"]),
            gw_ip6=IPv6Interface(data["gw_ip6"]),
            gateway_chassis=tuple(data["gateway_chassis"]),
            interfaces=tuple(RouterInterface(**i) for i in data["interfaces"]),
            scheduling=data.get("scheduling", "gateway_chassis"),
        )


def load_router(paths: LabPaths, name: str) -> Router:
    try:
        return Router.from_json(_record(paths, "routers", name).read_text())
    except FileNotFoundError:
        raise NeutronError(f"no router named {name!r} in lab {paths.prefix!r}") from None


def list_routers(paths: LabPaths) -> list[Router]:
    root = _root(paths, "routers")
    if not root.is_dir():
        return []
    return [Router.from_json(p.read_text()) for p in sorted(root.glob(f"*{STATE_FILE_SUFFIX}"))]


def provider_addresses_in_use(paths: LabPaths) -> set[IPv4Address | IPv6Address]:
    """The provider-network addresses the lab's routers hold (their gateway ports)."""
    used: set[IPv4Address | IPv6Address] = set()
    for router in list_routers(paths):
        used |= {router.gw_ip4.ip, router.gw_ip6.ip}
    return used


def _gateway_addresses(paths: LabPaths, topology: Topology) -> tuple[IPv4Interface,
                                                                      IPv6Interface]:
    """The highest free host number of the provider subnets (VMs are given the lowest), the same
    in IPv4 and IPv6."""
    from ovn_fabric.lab import vm as vmmod  # noqa: PLC0415  (vm.py imports this module)

    provider = topology.provider
    used: set[IPv4Address | IPv6Address] = provider_addresses_in_use(paths)
    used |= {provider.gateway4, provider.gateway6}
    for made in vmmod.list_vms(paths):
        if made.network is None:
            used |= {made.ip4.ip, made.ip6.ip}
    for host in range(provider.cidr4.num_addresses - 2, 0, -1):
        a4 = provider.cidr4.network_address + host
        a6 = provider.cidr6.network_address + host
        if a4 not in used and a6 not in used:
            return (IPv4Interface(f"{a4}/{provider.cidr4.prefixlen}"),
                    IPv6Interface(f"{a6}/{provider.cidr6.prefixlen}"))
    raise NeutronError(f"no free address left in {provider.cidr4} for a router gateway")


def default_gateway_chassis(topology: Topology) -> tuple[str, ...]:
    """Every gateway-capable chassis, in topology order (the first gets the highest priority)."""
    return tuple(d.name for d in topology.chassis if Role.GATEWAY in d.roles)


def router_external_ids(paths: LabPaths, topology: Topology, router: Router) -> dict[str, str]:
    provider = ovn.provider_ids(paths, topology.provider)
    return {
        "neutron:availability_zone_hints": "",
        "neutron:gw_network_id": provider.network_id,
        "neutron:gw_port_id": router.gw_port_id,
        "neutron:revision_number": "3",
        "neutron:router_name": router.name,
    }


def gateway_lrp_columns(paths: LabPaths, topology: Topology, router: Router) -> list[str]:
    """OVN_DATA.md (c): the gateway LRP's options and external_ids, DVR flavour."""
    provider = ovn.provider_ids(paths, topology.provider)
    return [
        "options=" + ovn.ovsdb_map({"gateway_mtu": str(PHYSICAL_MTU),
                                    "reside-on-redirect-chassis": "false"}),
        "external_ids=" + ovn.ovsdb_map({
            "neutron:is_ext_gw": "True",
            "neutron:network_name": provider.switch,
            "neutron:revision_number": "3",
            "neutron:router_name": router.lr,
            "neutron:subnet_ids": f"{provider.subnet4_id} {provider.subnet6_id}",
        }),
    ]


def gateway_lsp_columns(paths: LabPaths, topology: Topology, router: Router) -> list[str]:
    """OVN_DATA.md (c): the router gateway's port on the provider switch."""
    provider = ovn.provider_ids(paths, topology.provider)
    return [
        "type=router",
        f"addresses={ovn.ovsdb_set(['router'])}",
        "options=" + ovn.ovsdb_map({"exclude-lb-vips-from-garp": "true",
                                    "nat-addresses": "router",
                                    "router-port": router.gw_lrp}),
        "external_ids=" + ovn.ovsdb_map({
            "neutron:cidrs": f"{router.gw_ip4} {router.gw_ip6}",
            "neutron:device_id": router.router_id,
            "neutron:device_owner": "network:router_gateway",
            "neutron:network_name": provider.switch,
            "neutron:port_name": "",
            "neutron:project_id": "",
            "neutron:revision_number": "3",
            "neutron:subnet_pool_addr_scope4": "",
            "neutron:subnet_pool_addr_scope6": "",
        }),
    ]


def add_router(paths: LabPaths, topology: Topology, name: str, *,
               gateway_chassis: tuple[str, ...] | None = None,
               scheduling: Scheduling = "gateway_chassis") -> Router:
    """Create a distributed router with its gateway port on the provider network, as Neutron
    does in one transaction: the Logical_Router, the gateway LRP and its scheduling rows
    (`scheduling`: Gateway_Chassis rows as Neutron <= 28, or an HA_Chassis_Group as Neutron
    >= 29), the gateway LSP on the provider switch, and default routes via the provider's
    gateways."""
    _check_name("router", name)
    record = _record(paths, "routers", name)
    if record.exists():
        raise NeutronError(f"router {name!r} already exists in lab {paths.prefix!r}")
    chassis = default_gateway_chassis(topology) if gateway_chassis is None else gateway_chassis
    for system_id in chassis:
        if not topology.device(system_id).is_chassis:
            raise NeutronError(f"{system_id!r} is not a chassis of the topology")
    gw4, gw6 = _gateway_addresses(paths, topology)
    router_id = ovn.lab_uuid(paths, "router", name)
    gw_port_id = ovn.lab_uuid(paths, "router-gateway", name)
    router = Router(name=name, router_id=router_id, gw_port_id=gw_port_id,
                    gw_mac=neutron_mac(paths, "router-gateway", name), gw_ip4=gw4, gw_ip6=gw6,
                    gateway_chassis=tuple(chassis), scheduling=scheduling)
    provider, ids = topology.provider, ovn.provider_ids(paths, topology.provider)
    lr = router.lr
    commands = [
        ["lr-add", lr],
        ["set", "Logical_Router", lr,
         f"external_ids={ovn.ovsdb_map(router_external_ids(paths, topology, router))}",
         "options=" + ovn.ovsdb_map({"always_learn_from_arp_request": "false",
                                     "dynamic_neigh_routers": "true",
                                     "mac_binding_age_threshold": "0"}),
         "enabled=true"],
        ["lrp-add", lr, router.gw_lrp, router.gw_mac, str(gw4), str(gw6)],
        ["set", "Logical_Router_Port", router.gw_lrp,
         *gateway_lrp_columns(paths, topology, router)],
        ["lsp-add", ids.switch, gw_port_id],
        ["set", "Logical_Switch_Port", gw_port_id, *gateway_lsp_columns(paths, topology, router)],
    ]
    commands += _scheduling_commands(router)
    for index, (prefix, nexthop, subnet_id) in enumerate((
            ("0.0.0.0/0", provider.gateway4, ids.subnet4_id),
            ("::/0", provider.gateway6, ids.subnet6_id))):
        route_ids = {"neutron:is_ext_gw": "true", "neutron:subnet_id": subnet_id}
        commands += [
            [f"--id=@route{index}", "create", "Logical_Router_Static_Route",
             f'ip_prefix="{prefix}"', f'nexthop="{nexthop}"',
             f"external_ids={ovn.ovsdb_map(route_ids)}"],
            ["add", "Logical_Router", lr, "static_routes", f"@route{index}"],
        ]
    record.parent.mkdir(parents=True, exist_ok=True)
    ovn.nbctl(paths, topology.controller.name, *_transaction(commands))
    record.write_text(router.to_json())
    return router


def _scheduling_commands(router: Router) -> list[list[str]]:
    """The rows that schedule the gateway port on `router.gateway_chassis`, highest priority
    first, the way the router's Neutron release writes them (shared/OVN_DATA.md (c))."""
    chassis = router.gateway_chassis
    commands: list[list[str]] = []
    if router.scheduling == "gateway_chassis":
        for index, system_id in enumerate(chassis):
            commands += [
                [f"--id=@gc{index}", "create", "Gateway_Chassis",
                 f"name={router.gw_lrp}_{system_id}", f"chassis_name={system_id}",
                 f"priority={len(chassis) - index}"],
                ["add", "Logical_Router_Port", router.gw_lrp, "gateway_chassis", f"@gc{index}"],
            ]
        return commands
    group_ids = {"neutron:availability_zone_hints": "", "neutron:router_id": router.router_id}
    members = [f"@hc{index}" for index in range(len(chassis))]
    for index, system_id in enumerate(chassis):
        commands.append([f"--id={members[index]}", "create", "HA_Chassis",
                         f"chassis_name={system_id}", f"priority={len(chassis) - index}"])
    commands.append(["--id=@group", "create", "HA_Chassis_Group",
                     f"name={router.ha_chassis_group}", f"ha_chassis=[{','.join(members)}]",
                     f"external_ids={ovn.ovsdb_map(group_ids)}"])
    commands.append(["set", "Logical_Router_Port", router.gw_lrp, "ha_chassis_group=@group"])
    return commands


def _transaction(commands: list[list[str]]) -> list[str]:
    """ovn-nbctl arguments running `commands` in one transaction: `-- CMD -- CMD ...`."""
    return [arg for command in commands for arg in ("--", *command)]


def interface_columns(paths: LabPaths, router: Router, network: TenantNetwork,
                      iface: RouterInterface) -> tuple[list[str], list[str]]:
    """OVN_DATA.md (d): the interface LRP's and LSP's columns."""
    cidrs = (f"{network.gateway4}/{network.cidr4.prefixlen} "
             f"{network.gateway6}/{network.cidr6.prefixlen}")
    lrp = ["external_ids=" + ovn.ovsdb_map({
        "neutron:is_ext_gw": "False",
        "neutron:network_name": network.switch,
        "neutron:revision_number": "3",
        "neutron:router_name": router.lr,
        "neutron:subnet_ids": f"{network.subnet4_id} {network.subnet6_id}",
    })]
    lsp = [
        "type=router",
        f"addresses={ovn.ovsdb_set(['router'])}",
        f"options={ovn.ovsdb_map({'router-port': iface.lrp})}",
        "external_ids=" + ovn.ovsdb_map({
            "neutron:cidrs": cidrs,
            "neutron:device_id": router.router_id,
            "neutron:device_owner": "network:router_interface",
            "neutron:network_name": network.switch,
            "neutron:port_name": "",
            "neutron:project_id": project_id(paths),
            "neutron:revision_number": "3",
            "neutron:subnet_pool_addr_scope4": "",
            "neutron:subnet_pool_addr_scope6": "",
        }),
    ]
    return lrp, lsp


def attach(paths: LabPaths, topology: Topology, router_name: str, network_name: str) -> Router:
    """Add a router interface on a tenant network (both subnets), as Neutron's
    add_router_interface does: LRP, LSP, and the SNAT of the IPv4 subnet to the gateway
    address."""
    router = load_router(paths, router_name)
    network = load_network(paths, network_name)
    if router.interface(network_name) is not None:
        raise NeutronError(f"router {router_name!r} already has an interface on "
                           f"{network_name!r}")
    iface = RouterInterface(
        network=network_name,
        port_id=ovn.lab_uuid(paths, "router-interface", f"{router_name}/{network_name}"),
        mac=neutron_mac(paths, "router-interface", f"{router_name}/{network_name}"),
    )
    lrp_columns, lsp_columns = interface_columns(paths, router, network, iface)
    nat_ids = {"neutron:router_name": router.lr}
    commands = [
        ["lrp-add", router.lr, iface.lrp, iface.mac,
         f"{network.gateway4}/{network.cidr4.prefixlen}",
         f"{network.gateway6}/{network.cidr6.prefixlen}"],
        ["set", "Logical_Router_Port", iface.lrp, *lrp_columns],
        ["lsp-add", network.switch, iface.port_id],
        ["set", "Logical_Switch_Port", iface.port_id, *lsp_columns],
        ["--id=@snat", "create", "NAT", "type=snat", f'external_ip="{router.gw_ip4.ip}"',
         f'logical_ip="{network.cidr4}"', f"external_ids={ovn.ovsdb_map(nat_ids)}"],
        ["add", "Logical_Router", router.lr, "nat", "@snat"],
    ]
    ovn.nbctl(paths, topology.controller.name, *_transaction(commands))
    updated = replace(router, interfaces=(*router.interfaces, iface))
    _record(paths, "routers", router_name).write_text(updated.to_json())
    return updated


def del_router(paths: LabPaths, topology: Topology, name: str) -> None:
    """Remove a router: its interfaces' switch ports, its gateway port on the provider switch,
    and the Logical_Router (which takes its LRPs, NAT rows, routes and Gateway_Chassis). An
    HA_Chassis_Group is a root row of its own: it goes too, as Neutron deletes it."""
    router = load_router(paths, name)
    commands = [["--if-exists", "lsp-del", router.gw_port_id]]
    commands += [["--if-exists", "lsp-del", i.port_id] for i in router.interfaces]
    commands += [["--if-exists", "lr-del", router.lr]]
    ovn.nbctl(paths, topology.controller.name, *_transaction(commands))
    if router.scheduling == "ha_chassis_group":
        # In a transaction of its own: within the one above, the gateway port being deleted
        # still counts as a reference to the group.
        ovn.nbctl(paths, topology.controller.name, "--if-exists", "destroy", "HA_Chassis_Group",
                  router.ha_chassis_group)
    _record(paths, "routers", name).unlink()


__all__ = ["GENEVE_OVERHEAD", "TENANT_MTU", "NeutronError", "Router", "RouterInterface",
           "Scheduling", "TenantNetwork", "add_network", "add_router", "attach",
           "default_gateway_chassis",
           "del_network", "del_router", "list_networks", "list_routers", "load_network",
           "load_router", "plan_network", "provider_addresses_in_use"]
