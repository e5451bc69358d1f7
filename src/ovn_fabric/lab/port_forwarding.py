"""Neutron floating-IP port forwarding, written to the OVN NB as Neutron's OVN port-forwarding
driver writes it (shared/OVN_DATA.md (e), "Port-forwarding LBs"): one Load_Balancer per
floating IP and protocol, `name=pf-floatingip-<fip id>-<protocol>`, `vips
{"FIP:EXT_PORT"="INTERNAL_IP:INTERNAL_PORT"}`, Neutron's external_ids, applied to the router
only. The floating IP itself has no NAT row (it is associated with no port).

Before OVN 24.03 northd does not copy a router-only load balancer into the Southbound (it has
no `lr_datapath_group`), so an agent reading the Southbound cannot see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address

from ovn_fabric.lab import neutron, ovn
from ovn_fabric.lab.lab import Lab
from ovn_fabric.lab.vm import Vm

PORT_FORWARDING_PLUGIN = "port_forwarding_plugin"


@dataclass(frozen=True, slots=True)
class PortForwarding:
    fip: IPv4Address
    fip_id: str
    external_port: int
    vm: Vm
    internal_port: int
    router: str
    protocol: str = "tcp"

    @property
    def name(self) -> str:
        return f"pf-floatingip-{self.fip_id}-{self.protocol}"


def add_port_forwarding(lab: Lab, router: str, fip: IPv4Address | str, *, external_port: int,
                        vm: Vm, internal_port: int) -> PortForwarding:
    """Forward TCP `fip`:`external_port` to `vm`:`internal_port`, as Neutron does."""
    address = IPv4Address(fip)
    lab_router = neutron.load_router(lab.paths, router)
    forwarding = PortForwarding(fip=address,
                                fip_id=ovn.lab_uuid(lab.paths, "floating-ip", str(address)),
                                external_port=external_port, vm=vm,
                                internal_port=internal_port, router=router)
    ids = {"neutron:device_owner": PORT_FORWARDING_PLUGIN,
           "neutron:fip_id": forwarding.fip_id,
           "neutron:revision_number": "1",
           "neutron:router_name": lab_router.lr}
    vips = {f"{address}:{external_port}": f"{vm.ip4.ip}:{internal_port}"}
    ovn.nbctl(lab.paths, lab.topology.controller.name,
              "--", "--id=@lb", "create", "Load_Balancer", f"name={forwarding.name}",
              "protocol=tcp", f"vips={ovn.ovsdb_map(vips)}",
              f"external_ids={ovn.ovsdb_map(ids)}",
              "--", "add", "Logical_Router", lab_router.lr, "load_balancer", "@lb")
    return forwarding


def del_port_forwarding(lab: Lab, forwarding: PortForwarding) -> None:
    ovn.nbctl(lab.paths, lab.topology.controller.name, "--if-exists", "lb-del",
              forwarding.name)


__all__ = ["PortForwarding", "add_port_forwarding", "del_port_forwarding"]
