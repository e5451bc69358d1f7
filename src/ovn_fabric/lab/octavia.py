"""Load balancers as Octavia's OVN provider writes them (shared/OVN_DATA.md (e)), with a VIP
floating IP as Neutron writes it (OVN_DATA.md (b)).

One listener (TCP) with one pool of members on one tenant network behind a lab router:
- the VIP port: a Neutron port on the VIP's network, never bound (`addresses=[]`, so its SB
  Port_Binding has no MAC, no chassis and is down), named `ovn-lb-vip-<lb id>`;
- the NB Load_Balancer `name=<lb id>`, `protocol=tcp`, SOURCE_IP_PORT `selection_fields`,
  `vips {"VIP:PORT"="M1:PORT,M2:PORT"}` and Octavia's external_ids (`neutron:vip`,
  `neutron:vip_port_id`, `enabled`, `lr_ref`, `ls_refs`, `listener_<id>`, `pool_<id>`);
- applied to the members' router (`lr_ref`) and to the switches of that router (`ls_refs`),
  which is how Octavia's provider reaches members behind a router. A VIP on the provider
  network is not applied to the provider switch (Octavia skips provider networks);
- a VIP floating IP: Neutron's NAT row `dnat_and_snat` FIP -> VIP on the VIP port, with no
  `external_mac` (the VIP port is never up, so it is centralized in both of Neutron's modes),
  and Octavia's provider adds `"FIP:PORT"` to `vips` and `neutron:vip_fip` to external_ids.

OVN 23.03 serves such a VIP in the load-balancing stage of the router, on the chassis where
its gateway (cr-lrp) is bound; the agent there advertises it (plan.add_load_balancer_vips).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from ovn_fabric.lab import neutron, ovn
from ovn_fabric.lab.lab import Lab
from ovn_fabric.lab.vm import Vm

Address = IPv4Address | IPv6Address
SOURCE_IP_PORT = ("ip_dst", "ip_src", "tp_dst", "tp_src")


class OctaviaError(RuntimeError):
    """A load balancer that cannot be made as asked."""


@dataclass(frozen=True, slots=True)
class LoadBalancer:
    """One Octavia load balancer with one TCP listener and one pool."""

    name: str
    lb_id: str                  # Octavia's id: the NB Load_Balancer's name
    vip: Address
    vip_port_id: str
    vip_switch: str             # the Logical_Switch of the VIP's network
    router: str                 # the lab router of the members' network
    listener_port: int
    member_port: int
    members: tuple[Vm, ...]
    fip: IPv4Address | None = None

    @property
    def version(self) -> int:
        return self.vip.version

    def key(self, address: Address) -> str:
        """A `vips` key (or backend) as OVN writes it: `IP:PORT`, `[IP6]:PORT`."""
        return endpoint(address, self.listener_port)

    def backends(self) -> str:
        return ",".join(endpoint(_member_ip(vm, self.version), self.member_port)
                        for vm in self.members)


def endpoint(address: Address, port: int) -> str:
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def _member_ip(vm: Vm, version: int) -> Address:
    return vm.ip4.ip if version == 4 else vm.ip6.ip


def _octavia_ids(lab: Lab, name: str) -> tuple[str, str, str]:
    return (ovn.lab_uuid(lab.paths, "octavia-lb", name),
            ovn.lab_uuid(lab.paths, "octavia-listener", name),
            ovn.lab_uuid(lab.paths, "octavia-pool", name))


def external_ids(lab: Lab, balancer: LoadBalancer, member_switches: Sequence[str],
                 member_subnet_id: str) -> dict[str, str]:
    """The Load_Balancer external_ids ovn-octavia-provider writes."""
    _, listener_id, pool_id = _octavia_ids(lab, balancer.name)
    members = ",".join(
        f"member_{ovn.lab_uuid(lab.paths, 'octavia-member', f'{balancer.name}/{vm.name}')}_"
        f"{_member_ip(vm, balancer.version)}:{balancer.member_port}_{member_subnet_id}"
        for vm in balancer.members)
    router = neutron.load_router(lab.paths, balancer.router)
    ids = {
        "enabled": "True",
        "lr_ref": router.lr,
        "ls_refs": json.dumps({switch: 1 for switch in member_switches}),
        "neutron:vip": str(balancer.vip),
        "neutron:vip_port_id": balancer.vip_port_id,
        f"listener_{listener_id}": f"{balancer.listener_port}:pool_{pool_id}",
        f"pool_{pool_id}": members,
    }
    if balancer.fip is not None:
        ids["neutron:vip_fip"] = str(balancer.fip)
    return ids


def add_load_balancer(lab: Lab, name: str, *, router: str, vip: Address | str,
                      members: Sequence[Vm], vip_network: str | None = None,
                      listener_port: int = 80, member_port: int = 8080,
                      fip: IPv4Address | str | None = None) -> LoadBalancer:
    """Create the load balancer `name` of `members` (VMs on one tenant network of `router`)
    with its VIP on `vip_network` (a tenant network of the router, or None for the provider
    network), and a floating IP `fip` for the VIP if given."""
    address = ip_address(vip)
    if not members or len({vm.network for vm in members}) != 1 or members[0].network is None:
        raise OctaviaError(f"load balancer {name!r}: members on one tenant network, please")
    member_net = neutron.load_network(lab.paths, members[0].network)
    lab_router = neutron.load_router(lab.paths, router)
    if lab_router.interface(member_net.name) is None:
        raise OctaviaError(f"router {router!r} has no interface on {member_net.name!r}")
    provider = ovn.provider_ids(lab.paths, lab.topology.provider)
    if vip_network is None:
        vip_switch = provider.switch
        vip_cidr = (lab.topology.provider.cidr4 if address.version == 4
                    else lab.topology.provider.cidr6)
    else:
        net = neutron.load_network(lab.paths, vip_network)
        vip_switch, vip_cidr = net.switch, net.cidr4 if address.version == 4 else net.cidr6
    if address not in vip_cidr:
        raise OctaviaError(f"VIP {address} is not in {vip_cidr}")
    floating = IPv4Address(fip) if fip is not None else None
    if floating is not None and (address.version != 4 or vip_network is None):
        raise OctaviaError("a floating IP is for an IPv4 VIP on a tenant network")
    lb_id, _, _ = _octavia_ids(lab, name)
    balancer = LoadBalancer(
        name=name, lb_id=lb_id, vip=address,
        vip_port_id=ovn.lab_uuid(lab.paths, "octavia-vip-port", name), vip_switch=vip_switch,
        router=router, listener_port=listener_port, member_port=member_port,
        members=tuple(members), fip=floating)
    subnet_id = member_net.subnet4_id if address.version == 4 else member_net.subnet6_id
    # Octavia's provider applies the LB to the members' router and every switch of it, but
    # never to a provider network's switch.
    switches = sorted({member_net.switch} | ({vip_switch} if vip_network else set()))
    vips = {balancer.key(address): balancer.backends()}
    if floating is not None:
        vips[balancer.key(floating)] = balancer.backends()
    ids = external_ids(lab, balancer, switches, subnet_id)
    commands = [
        *_vip_port_commands(lab, balancer, vip_cidr.prefixlen),
        ["--id=@lb", "create", "Load_Balancer", f"name={lb_id}", "protocol=tcp",
         f"selection_fields={ovn.ovsdb_set(SOURCE_IP_PORT)}",
         f"vips={ovn.ovsdb_map(vips)}", f"external_ids={ovn.ovsdb_map(ids)}"],
        ["add", "Logical_Router", lab_router.lr, "load_balancer", "@lb"],
        *(["add", "Logical_Switch", switch, "load_balancer", "@lb"] for switch in switches),
    ]
    if floating is not None:
        commands += _fip_commands(lab, balancer, lab_router, floating)
    ovn.nbctl(lab.paths, lab.topology.controller.name, *_transaction(commands))
    return balancer


def _vip_port_commands(lab: Lab, balancer: LoadBalancer, prefixlen: int) -> list[list[str]]:
    """The VIP port as Neutron writes it for Octavia: unbound, no addresses."""
    ids = {
        "neutron:cidrs": f"{balancer.vip}/{prefixlen}",
        "neutron:device_id": f"lb-{balancer.lb_id}",
        "neutron:device_owner": "ovn-lb:vip",
        "neutron:network_name": balancer.vip_switch,
        "neutron:port_name": f"ovn-lb-vip-{balancer.lb_id}",
        "neutron:project_id": neutron.project_id(lab.paths),
        "neutron:revision_number": "1",
        "neutron:security_group_ids": "",
        "neutron:subnet_pool_addr_scope4": "",
        "neutron:subnet_pool_addr_scope6": "",
        "neutron:vnic_type": "normal",
    }
    if balancer.fip is not None:
        ids["neutron:port_fip"] = str(balancer.fip)
    return [["lsp-add", balancer.vip_switch, balancer.vip_port_id],
            ["set", "Logical_Switch_Port", balancer.vip_port_id, "addresses=[]",
             "port_security=[]", f"external_ids={ovn.ovsdb_map(ids)}"]]


def _fip_commands(lab: Lab, balancer: LoadBalancer, router: neutron.Router,
                  floating: IPv4Address) -> list[list[str]]:
    """Neutron's NAT row for the VIP's floating IP: centralized (no external_mac), since the
    VIP port is never up."""
    provider = ovn.provider_ids(lab.paths, lab.topology.provider)
    ids = {
        "neutron:fip_external_mac": neutron.neutron_mac(lab.paths, "floating-ip",
                                                        str(floating)),
        "neutron:fip_id": ovn.lab_uuid(lab.paths, "floating-ip", str(floating)),
        "neutron:fip_network_id": provider.network_id,
        "neutron:fip_port_id": balancer.vip_port_id,
        "neutron:revision_number": "1",
        "neutron:router_name": router.lr,
    }
    return [
        ["--id=@gw", "get", "Logical_Router_Port", router.gw_lrp, "_uuid"],
        ["--id=@fip", "create", "NAT", "type=dnat_and_snat", f'external_ip="{floating}"',
         f'logical_ip="{balancer.vip}"', f'logical_port="{balancer.vip_port_id}"',
         f"options={ovn.ovsdb_map({'stateless': 'false'})}",
         f"external_ids={ovn.ovsdb_map(ids)}", "gateway_port=@gw"],
        ["add", "Logical_Router", router.lr, "nat", "@fip"],
    ]


def del_load_balancer(lab: Lab, balancer: LoadBalancer) -> None:
    """Delete as Octavia and Neutron do: the Load_Balancer (and its references from the router
    and switches), the VIP's floating IP, the VIP port."""
    central = lab.topology.controller.name
    router = neutron.load_router(lab.paths, balancer.router)
    commands: list[list[str]] = [["--if-exists", "lb-del", balancer.lb_id]]
    if balancer.fip is not None:
        nats = ovn.nbctl(lab.paths, central, "--bare", "--columns=_uuid", "find", "NAT",
                         "type=dnat_and_snat", f'external_ip="{balancer.fip}"').split()
        commands += [["remove", "Logical_Router", router.lr, "nat", nat] for nat in nats]
    commands.append(["--if-exists", "lsp-del", balancer.vip_port_id])
    ovn.nbctl(lab.paths, central, *_transaction(commands))


def _transaction(commands: Sequence[Sequence[str]]) -> list[str]:
    return [arg for command in commands for arg in ("--", *command)]


__all__ = ["LoadBalancer", "OctaviaError", "add_load_balancer", "del_load_balancer",
           "endpoint", "external_ids"]
