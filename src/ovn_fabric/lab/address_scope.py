"""Neutron address scopes in the lab: tenant subnets routed into the fabric without NAT
(issue 4, item 3).

In Neutron an address scope (one per IP version) groups subnet pools. Every port on a subnet
allocated from a pool of a scope carries the scope's UUID in its `neutron:subnet_pool_addr_scope4`
/ `...6` external_ids, the router interface's LSP included (shared/OVN_DATA.md (d)). When a
router's internal subnet is in the same scope as its external network, Neutron adds no SNAT for
it: the subnet is routed as it is, and the agents (`[tenant_networks]`) advertise it from the
router's active gateway.

What the lab does here, next to neutron.py's rows:
- `add_scope`: an address scope, recorded under `<lab dir>/neutron/address_scopes/`. Once one
  exists, `agent_settings` gives every agent `[tenant_networks]` with the lab's scopes and an
  `[exposure] allow` that adds the topology's tenant pools to the bridges' subnets (agents read
  it when they start: restart them, agents.restart_all).
- `attach_in_scope`: a router interface as Neutron writes it for a subnet from a scoped pool:
  the scope on the interface LSP (and on the router's gateway LSP, whose external subnet is in
  the same scope), and no SNAT row.
- `detach`: Neutron's remove_router_interface: the LRP, the LSP and the subnet's SNAT row go.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address, ip_interface
from pathlib import Path

from ovn_fabric.lab import neutron, ovn
from ovn_fabric.lab.neutron import NeutronError, Router, RouterInterface
from ovn_fabric.lab.paths import LabPaths
from ovn_fabric.lab.topology import Topology

SCOPE_KEYS = {4: "neutron:subnet_pool_addr_scope4", 6: "neutron:subnet_pool_addr_scope6"}


@dataclass(frozen=True, slots=True)
class AddressScope:
    name: str
    scope_id: str
    version: int


def _root(paths: LabPaths) -> Path:
    return paths.lab_dir / "neutron" / "address_scopes"


def add_scope(paths: LabPaths, name: str, version: int) -> AddressScope:
    """An address scope of one IP version (Neutron keeps scopes in its own database only)."""
    if version not in SCOPE_KEYS:
        raise NeutronError(f"address scope {name!r}: IP version 4 or 6, not {version}")
    record = _root(paths) / f"{name}.json"
    if record.exists():
        raise NeutronError(f"address scope {name!r} already exists in lab {paths.prefix!r}")
    scope = AddressScope(name, ovn.lab_uuid(paths, "address-scope", name), version)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"name": name, "scope_id": scope.scope_id,
                                  "version": version}, indent=2, sort_keys=True) + "\n")
    return scope


def list_scopes(paths: LabPaths) -> list[AddressScope]:
    root = _root(paths)
    if not root.is_dir():
        return []
    return [AddressScope(**json.loads(p.read_text())) for p in sorted(root.glob("*.json"))]


def agent_settings(paths: LabPaths, topology: Topology, bridge_gateways: list[str]) -> list[str]:
    """The agents' `[exposure]` and `[tenant_networks]` lines once the lab has address scopes
    (none before: tenant networks are opt-in). `bridge_gateways` are the managed bridges'
    gateway interfaces ("addr/len"), whose subnets stay allowed."""
    scopes = list_scopes(paths)
    if not scopes:
        return []
    allow = sorted({str(ip_interface(gw).network) for gw in bridge_gateways}
                   | {str(pool) for pool in topology.tenant_pools})
    return [
        "[exposure]",
        f"allow = {json.dumps(allow)}",
        "",
        "[tenant_networks]",
        "enabled = true",
        f"address_scopes = {json.dumps(sorted(s.scope_id for s in scopes))}",
        "",
    ]


def attach_in_scope(paths: LabPaths, topology: Topology, router_name: str, network_name: str,
                    *, scope4: AddressScope, scope6: AddressScope,
                    address4: IPv4Address | None = None,
                    address6: IPv6Address | None = None) -> Router:
    """Add a router interface on a tenant network whose subnets come from pools in `scope4`
    and `scope6`: as neutron.attach, with the scopes on the LSPs and no SNAT. The interface
    takes the subnets' gateways, or `address4`/`address6` (a second router on the network)."""
    router = neutron.load_router(paths, router_name)
    network = neutron.load_network(paths, network_name)
    if (scope4.version, scope6.version) != (4, 6):
        raise NeutronError("scope4 must be an IPv4 address scope and scope6 an IPv6 one")
    if router.interface(network_name) is not None:
        raise NeutronError(f"router {router_name!r} already has an interface on "
                           f"{network_name!r}")
    ip4, ip6 = address4 or network.gateway4, address6 or network.gateway6
    if ip4 not in network.cidr4 or ip6 not in network.cidr6:
        raise NeutronError(f"{ip4} and {ip6} must lie inside the subnets of {network_name!r}")
    iface = RouterInterface(
        network=network_name,
        port_id=ovn.lab_uuid(paths, "router-interface", f"{router_name}/{network_name}"),
        mac=neutron.neutron_mac(paths, "router-interface", f"{router_name}/{network_name}"),
    )
    cidr4, cidr6 = f"{ip4}/{network.cidr4.prefixlen}", f"{ip6}/{network.cidr6.prefixlen}"
    lrp_columns, lsp_columns = neutron.interface_columns(paths, router, network, iface)
    scoped = [f'external_ids:"{SCOPE_KEYS[4]}"="{scope4.scope_id}"',
              f'external_ids:"{SCOPE_KEYS[6]}"="{scope6.scope_id}"']
    commands = [
        ["lrp-add", router.lr, iface.lrp, iface.mac, cidr4, cidr6],
        ["set", "Logical_Router_Port", iface.lrp, *lrp_columns],
        ["lsp-add", network.switch, iface.port_id],
        ["set", "Logical_Switch_Port", iface.port_id, *lsp_columns],
        ["set", "Logical_Switch_Port", iface.port_id, *scoped,
         f'external_ids:"neutron:cidrs"="{cidr4} {cidr6}"'],
        ["set", "Logical_Switch_Port", router.gw_port_id, *scoped],
    ]
    ovn.nbctl(paths, topology.controller.name,
              *[arg for command in commands for arg in ("--", *command)])
    updated = replace(router, interfaces=(*router.interfaces, iface))
    (paths.lab_dir / "neutron" / "routers" / f"{router_name}.json").write_text(
        updated.to_json())
    return updated


def detach(paths: LabPaths, topology: Topology, router_name: str, network_name: str) -> Router:
    """Remove the router's interface on the network, as Neutron's remove_router_interface
    does: its LRP, its LSP and the SNAT row of the subnet (if there is one)."""
    router = neutron.load_router(paths, router_name)
    network = neutron.load_network(paths, network_name)
    iface = router.interface(network_name)
    if iface is None:
        raise NeutronError(f"router {router_name!r} has no interface on {network_name!r}")
    central = topology.controller.name
    snat = ovn.nbctl(paths, central, "--bare", "--columns=_uuid", "find", "NAT", "type=snat",
                     f'logical_ip="{network.cidr4}"',
                     f'external_ids:"neutron:router_name"="{router.lr}"').split()
    args = ["--", "--if-exists", "lrp-del", iface.lrp,
            "--", "--if-exists", "lsp-del", iface.port_id]
    for nat in snat:
        args += ["--", "remove", "Logical_Router", router.lr, "nat", nat]
    ovn.nbctl(paths, central, *args)
    updated = replace(router, interfaces=tuple(i for i in router.interfaces if i != iface))
    (paths.lab_dir / "neutron" / "routers" / f"{router_name}.json").write_text(
        updated.to_json())
    return updated


__all__ = ["AddressScope", "add_scope", "agent_settings",
           "attach_in_scope", "detach", "list_scopes"]
