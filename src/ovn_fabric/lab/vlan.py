"""A VLAN provider network on a second physical network and bridge (issue 4, item 8).

The lab's topology has one flat provider network (`public` on br-ex). This module adds, at run
time, another one as Neutron writes a VLAN segment (OVN_DATA.md (a)): physnet `vlannet` mapped
to `br-vlan` on every chassis (`ovn-bridge-mappings` gains `vlannet:br-vlan`), a Logical_Switch
with `neutron:provnet-network-type=vlan`, and a localnet port with `tag_request`, which northd
copies to `tag`. br-vlan has no NIC, like br-ex; its gateway addresses are written into the
agents' settings by agents.render_config (restart the agents to apply them).

The record `<lab dir>/vlan/<name>.json` lets VMs (`vm.add_vm(network=<name>)`) and the agents'
settings find the network.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

from ovn_fabric.lab import ovn
from ovn_fabric.lab.paths import LabPaths
from ovn_fabric.lab.sh import run, wait_until
from ovn_fabric.lab.topology import ProviderNetwork, Topology


@dataclass(frozen=True, slots=True)
class VlanNetwork:
    name: str
    physnet: str
    bridge: str
    tag: int
    cidr4: IPv4Network
    cidr6: IPv6Network

    @property
    def gateway4(self) -> IPv4Address:
        return self.cidr4.network_address + 1

    @property
    def gateway6(self) -> IPv6Address:
        return self.cidr6.network_address + 1

    @property
    def gateways(self) -> list[str]:
        """As the agent's `[bridges.<bridge>] gateways` take them."""
        return [f"{self.gateway4}/{self.cidr4.prefixlen}",
                f"{self.gateway6}/{self.cidr6.prefixlen}"]

    def provider(self) -> ProviderNetwork:
        return ProviderNetwork(name=self.name, physnet=self.physnet, bridge=self.bridge,
                               cidr4=self.cidr4, cidr6=self.cidr6,
                               gateway4=self.gateway4, gateway6=self.gateway6)

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "physnet": self.physnet, "bridge": self.bridge,
                           "tag": self.tag, "cidr4": str(self.cidr4), "cidr6": str(self.cidr6)})

    @classmethod
    def from_json(cls, text: str) -> VlanNetwork:
        data = json.loads(text)
        return cls(data["name"], data["physnet"], data["bridge"], int(data["tag"]),
                   IPv4Network(data["cidr4"]), IPv6Network(data["cidr6"]))


def _record(paths: LabPaths, name: str) -> Path:
    return paths.lab_dir / "vlan" / f"{name}.json"


def load_network(paths: LabPaths, name: str) -> VlanNetwork | None:
    try:
        return VlanNetwork.from_json(_record(paths, name).read_text())
    except FileNotFoundError:
        return None


def list_networks(paths: LabPaths) -> list[VlanNetwork]:
    directory = paths.lab_dir / "vlan"
    if not directory.is_dir():
        return []
    return [VlanNetwork.from_json(p.read_text()) for p in sorted(directory.glob("*.json"))]


def add_bridge_mapping(paths: LabPaths, node: str, physnet: str, bridge: str) -> None:
    """Create `bridge` on the chassis `node` (no NIC, as br-ex) and map `physnet` to it;
    ovn-controller follows the new mapping without a restart."""
    mappings = dict(item.split(":", 1) for item in ovn.chassis_external_ids(paths, node)
                    .get("ovn-bridge-mappings", "").split(",") if ":" in item)
    mappings[physnet] = bridge
    ovn.vsctl(paths, node,
              "--", "--may-exist", "add-br", bridge,
              "--", "set", "Bridge", bridge, "datapath_type=netdev",
              f"other-config:hwaddr={json.dumps(ovn.bridge_mac(node, bridge))}",
              "--", "set", "Open_vSwitch", ".",
              "external_ids:ovn-bridge-mappings="
              + json.dumps(",".join(f"{n}:{b}" for n, b in mappings.items())))
    netns = paths.netns(node)
    wait_until(functools.partial(ovn._link_exists, netns, bridge),
               timeout=ovn.DAEMON_TIMEOUT, what=f"the tap of {bridge} on {node}")
    run(["ip", "-n", netns, "link", "set", "dev", bridge, "up"])


def add_vlan_network(paths: LabPaths, topology: Topology, name: str = "vlan100", *,
                     physnet: str = "vlannet", bridge: str = "br-vlan", tag: int = 100,
                     cidr4: str = "10.100.0.0/24",
                     cidr6: str = "2001:db8:100::/64") -> VlanNetwork:
    """Map `physnet` to `bridge` on every chassis and create the VLAN network in the NB."""
    network = VlanNetwork(name, physnet, bridge, tag, IPv4Network(cidr4), IPv6Network(cidr6))
    if name == topology.provider.name or bridge == topology.provider.bridge:
        raise ValueError(f"VLAN network {name} on {bridge}: taken by the flat provider network")
    for device in topology.chassis:
        add_bridge_mapping(paths, device.name, physnet, bridge)
    central = topology.controller.name
    ids = ovn.create_provider_network(paths, central, network.provider())
    ovn.nbctl(paths, central,
              "--", "set", "Logical_Switch", ids.switch,
              'external_ids:"neutron:provnet-network-type"=vlan',
              "--", "set", "Logical_Switch_Port", ids.localnet_port, f"tag_request={tag}")
    record = _record(paths, name)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(network.to_json())
    return network


__all__ = ["VlanNetwork", "add_bridge_mapping", "add_vlan_network", "list_networks",
           "load_network"]
