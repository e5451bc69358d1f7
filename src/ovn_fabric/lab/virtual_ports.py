"""Allowed-address-pair VIPs (keepalived-style) on the provider network, written to the OVN NB
as Neutron writes them (shared/OVN_DATA.md (f)).

- Each parent VM's port gets the VIP in its `port_security` (Neutron's allowed_address_pairs
  with the port's own MAC: one entry "MAC IP4 IP6 VIP...").
- The VIP's own Neutron port (fixed IP = the VIP, no device) becomes an LSP `type=virtual`
  with `options:virtual-ip=<VIP>` and `options:virtual-parents=<parent port ids>`, its own
  MAC and address in `addresses` and `port_security`, and no `requested-chassis`. OVN's
  virtual-ip is one address, so a dual-stack VIP is two virtual ports.
- A parent takes the VIP by holding the address and announcing it (`announce.py`: a
  gratuitous ARP, or an unsolicited NA); ovn-controller on its chassis then binds the virtual
  port there (SB `chassis` and `virtual_parent`).
- On a tenant network the VIP is reached through a floating IP (`add_floating_ip`); in
  Neutron's distributed mode its NAT runs where the virtual port is bound.
- Neutron <= 28 then writes the parent's host into the virtual LSP's `neutron:host_id`
  (`record_parent_host`); the agent does not need it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from ovn_fabric.lab import external, neutron, ovn
from ovn_fabric.lab import vm as vmmod
from ovn_fabric.lab.lab import Lab
from ovn_fabric.lab.sh import run
from ovn_fabric.lab.vm import Vm

Address = IPv4Address | IPv6Address


class VirtualPortError(RuntimeError):
    """A virtual port that cannot be made as asked."""


@dataclass(frozen=True, slots=True)
class VirtualPort:
    """A Neutron port whose fixed IP is other ports' allowed-address pair."""

    name: str
    port_id: str
    mac: str
    ip: Address
    parents: tuple[Vm, ...]
    switch: str

    @property
    def prefixlen(self) -> int:
        return self.ip.max_prefixlen


def allow_address_pairs(lab: Lab, vm: Vm, addresses: Sequence[Address]) -> None:
    """Neutron's allowed_address_pairs on `vm`'s port (same MAC): the addresses join the
    port's `port_security` entry; `addresses` stays the port's own."""
    entry = " ".join([vm.addresses, *(str(a) for a in addresses)])
    ovn.nbctl(lab.paths, lab.topology.controller.name, "set", "Logical_Switch_Port",
              vm.port_id, f"port_security={ovn.ovsdb_set([entry])}")


def add_virtual_port(lab: Lab, name: str, ip: Address | str, parents: Sequence[Vm]) -> VirtualPort:
    """Create the VIP's port on the parents' network (the provider network): Neutron makes it
    `type=virtual` because its fixed IP is an allowed-address pair of `parents`."""
    address = ip_address(ip)
    networks = {vm.network for vm in parents}
    if not parents or len(networks) != 1:
        raise VirtualPortError(f"virtual port {name!r}: parents on one network, please")
    seg = vmmod.segment(lab.paths, lab.topology, parents[0].network)
    cidr = seg.cidr4 if address.version == 4 else seg.cidr6
    if address not in cidr:
        raise VirtualPortError(f"virtual port {name!r}: {address} is not in {cidr}")
    port = VirtualPort(name=name, port_id=ovn.lab_uuid(lab.paths, "virtual-port", name),
                       mac=neutron.neutron_mac(lab.paths, "virtual-port", name), ip=address,
                       parents=tuple(parents), switch=seg.switch)
    entry = f"{port.mac} {address}"
    ids = {
        "neutron:cidrs": f"{address}/{cidr.prefixlen}",
        "neutron:device_id": "",
        "neutron:device_owner": "",
        "neutron:mtu": "",
        "neutron:network_name": seg.switch,
        "neutron:port_capabilities": "",
        "neutron:port_name": name,
        "neutron:project_id": neutron.project_id(lab.paths),
        "neutron:revision_number": "2",
        "neutron:security_group_ids": "",
        "neutron:subnet_pool_addr_scope4": "",
        "neutron:subnet_pool_addr_scope6": "",
        "neutron:vnic_type": "normal",
    }
    options = {"virtual-ip": str(address),
               "virtual-parents": ",".join(vm.port_id for vm in parents)}
    ovn.nbctl(lab.paths, lab.topology.controller.name,
              "lsp-add", seg.switch, port.port_id,
              "--", "set", "Logical_Switch_Port", port.port_id, "type=virtual",
              f"addresses={ovn.ovsdb_set([entry])}", f"port_security={ovn.ovsdb_set([entry])}",
              "enabled=true", f"options={ovn.ovsdb_map(options)}",
              f"external_ids={ovn.ovsdb_map(ids)}")
    return port


@dataclass(frozen=True, slots=True)
class VipFloatingIp:
    """A floating IP associated with a virtual port (keepalived's VIP on a tenant network)."""

    external_ip: IPv4Address
    external_mac: str | None       # set: distributed (NATed where the virtual port is bound)
    port: VirtualPort
    router: str


def add_floating_ip(lab: Lab, router_name: str, port: VirtualPort, *,
                    external_ip: IPv4Address | None = None) -> VipFloatingIp:
    """Associate a floating IP with the virtual port as Neutron's
    `_create_or_update_floatingip` does: `external_mac` (the FIP port's MAC) only when FIPs are
    distributed and the port's LSP is up, which a virtual port is once a parent has claimed it
    (then northd makes the NAT resident where the virtual port is bound)."""
    router = neutron.load_router(lab.paths, router_name)
    if not isinstance(port.ip, IPv4Address):
        raise VirtualPortError(f"{port.name}: floating IPs are IPv4")
    address = external_ip or external.free_fip_address(lab)
    central = lab.topology.controller.name
    up = ovn.nbctl(lab.paths, central, "get", "Logical_Switch_Port", port.port_id,
                   "up").strip() == "true"
    mac = neutron.neutron_mac(lab.paths, "floating-ip", str(address))
    provider = ovn.provider_ids(lab.paths, lab.topology.provider)
    ids = {
        "neutron:fip_external_mac": mac,
        "neutron:fip_id": ovn.lab_uuid(lab.paths, "floating-ip", str(address)),
        "neutron:fip_network_id": provider.network_id,
        "neutron:fip_port_id": ovn.lab_uuid(lab.paths, "floating-ip-port", str(address)),
        "neutron:revision_number": "1",
        "neutron:router_name": router.lr,
    }
    distributed = external.fip_distributed(lab) and up
    columns = ["type=dnat_and_snat", f'external_ip="{address}"', f'logical_ip="{port.ip}"',
               f'logical_port="{port.port_id}"',
               f"options={ovn.ovsdb_map({'stateless': 'false'})}",
               f"external_ids={ovn.ovsdb_map(ids)}", "gateway_port=@gw",
               *([f'external_mac="{mac}"'] if distributed else [])]
    ovn.nbctl(lab.paths, central,
              "--", "--id=@gw", "get", "Logical_Router_Port", router.gw_lrp, "_uuid",
              "--", "--id=@fip", "create", "NAT", *columns,
              "--", "add", "Logical_Router", router.lr, "nat", "@fip",
              "--", "set", "Logical_Switch_Port", port.port_id,
              f'external_ids:"neutron:port_fip"="{address}"')
    return VipFloatingIp(address, mac if distributed else None, port, router_name)


def del_floating_ip(lab: Lab, fip: VipFloatingIp) -> None:
    central = lab.topology.controller.name
    router = neutron.load_router(lab.paths, fip.router)
    nats = ovn.nbctl(lab.paths, central, "--bare", "--columns=_uuid", "find", "NAT",
                     "type=dnat_and_snat", f'external_ip="{fip.external_ip}"').split()
    args = [arg for nat in nats for arg in ("--", "remove", "Logical_Router", router.lr, "nat",
                                            nat)]
    args += ["--", "--if-exists", "remove", "Logical_Switch_Port", fip.port.port_id,
             "external_ids", '"neutron:port_fip"']
    ovn.nbctl(lab.paths, central, *args)


def del_virtual_port(lab: Lab, port: VirtualPort) -> None:
    ovn.nbctl(lab.paths, lab.topology.controller.name, "--if-exists", "lsp-del", port.port_id)


def take(vm: Vm, address: Address) -> None:
    """`vm` holds `address` (a /32 or /128 on eth0) and announces it, as keepalived's new
    master does."""
    run(["ip", "address", "replace", f"{address}/{address.max_prefixlen}", "dev", "eth0",
         *(["nodad"] if address.version == 6 else [])], netns=vm.netns)
    run([sys.executable, "-m", "ovn_fabric.lab.announce", "eth0", str(address)],
        netns=vm.netns)


def release(vm: Vm, address: Address) -> None:
    """`vm` gives `address` up (silently, as a keepalived backup does)."""
    run(["ip", "address", "del", f"{address}/{address.max_prefixlen}", "dev", "eth0"],
        netns=vm.netns, check=False)


def binding(lab: Lab, port: VirtualPort) -> tuple[str, str]:
    """The SB binding of the virtual port: (its chassis name, its virtual_parent), each ""
    when unset."""
    central = lab.topology.controller.name
    text = ovn.sbctl(lab.paths, central, "--format=json", "--columns=chassis,virtual_parent",
                     "find", "Port_Binding", f"logical_port={port.port_id}")
    rows = json.loads(text)["data"]
    if not rows:
        return "", ""
    chassis_uuid, parent = (_scalar(value) for value in rows[0])
    name = ""
    if chassis_uuid:
        name = ovn.sbctl(lab.paths, central, "get", "Chassis", chassis_uuid,
                         "name").strip().strip('"')
    return name, parent


def _scalar(value: object) -> str:
    """An OVSDB JSON value that is a string, a ["uuid", U] or an empty ["set", []]."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 2 and value[0] == "uuid":
        return str(value[1])
    return ""


def record_parent_host(lab: Lab, port: VirtualPort) -> str:
    """What Neutron <= 28 does when ovn-controller binds a virtual port: write the parent's
    host into the virtual LSP's `neutron:host_id` (removed when no parent holds it). Returns
    the host written, or ""."""
    _, parent = binding(lab, port)
    host = next((vm.hostname for vm in port.parents if vm.port_id == parent), "")
    central = lab.topology.controller.name
    if host:
        ovn.nbctl(lab.paths, central, "set", "Logical_Switch_Port", port.port_id,
                  f'external_ids:"neutron:host_id"="{host}"')
    else:
        ovn.nbctl(lab.paths, central, "remove", "Logical_Switch_Port", port.port_id,
                  "external_ids", '"neutron:host_id"')
    return host


__all__ = ["VipFloatingIp", "VirtualPort", "VirtualPortError", "add_floating_ip",
           "add_virtual_port", "allow_address_pairs", "binding", "del_floating_ip",
           "del_virtual_port", "record_parent_host", "release", "take"]
