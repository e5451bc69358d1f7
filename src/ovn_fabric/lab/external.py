"""The world outside the cloud, and floating IPs that let it in (issue 4, item 1).

- An external client: a namespace `<prefix>-<name>` (so `lab down` removes it with the rest)
  attached to a spine by a veth with a documentation-range /29; the spine holds the first host,
  the client the second and routes everything via the spine. The spine advertises the /29 into
  the fabric with a BGP `network` statement pushed through vtysh at run time: the servers accept
  every route from their leaves, so the compute and gateway nodes learn the way back.
- Floating IPs as Neutron writes them (shared/OVN_DATA.md (b)): one NB NAT row
  `dnat_and_snat` on the router, `external_ip` from the provider subnet, `logical_ip` and
  `logical_port` the VM's, `external_mac` (the FIP port's MAC) only in distributed mode, and
  NB_Global `external_ids:neutron:fip-distributed` saying which mode Neutron runs in. The VM's
  LSP gets `neutron:port_fip`. Rows follow Neutron 27-28 (DVR): `gateway_port` is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface, IPv6Network

from ovn_fabric.lab import fabric, neutron, ovn
from ovn_fabric.lab import vm as vmmod
from ovn_fabric.lab.lab import Lab
from ovn_fabric.lab.sh import run
from ovn_fabric.lab.vm import Vm

DEFAULT_CIDR = IPv4Network("203.0.113.0/29")     # TEST-NET-3 (RFC 5737)
FIRST_FIP_HOST = 200                              # FIPs from .200 of the provider /24 upwards


class ExternalError(RuntimeError):
    """An external client or floating IP that cannot be made as asked."""


# --- the external client ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Client:
    """A host of an external network, attached to `spine`."""

    name: str
    netns: str
    spine: str
    cidr: IPv4Network
    spine_ip: IPv4Interface
    ip: IPv4Interface

    @property
    def spine_ifname(self) -> str:
        return f"x-{self.name}"[:15]


def add_client(lab: Lab, name: str = "ext", *, spine: str = "spine1",
               cidr: IPv4Network = DEFAULT_CIDR) -> Client:
    """Create the client namespace, its veth to `spine`, and the spine's advertisement of
    `cidr` (its connected route, as a BGP `network`)."""
    device = lab.topology.device(spine)
    if cidr.num_addresses < 4:
        raise ExternalError(f"{cidr}: at least a /30, please")
    client = Client(name=name, netns=lab.paths.netns(name), spine=spine, cidr=cidr,
                    spine_ip=IPv4Interface(f"{cidr.network_address + 1}/{cidr.prefixlen}"),
                    ip=IPv4Interface(f"{cidr.network_address + 2}/{cidr.prefixlen}"))
    spine_ns = lab.netns(spine)
    run(["ip", "netns", "add", client.netns])
    run(["ip", "-n", spine_ns, "link", "add", client.spine_ifname, "type", "veth",
         "peer", "name", "eth0", "netns", client.netns])
    run(["ip", "-n", spine_ns, "-batch", "-"], input_text="\n".join([
        f"address add {client.spine_ip} dev {client.spine_ifname}",
        f"link set dev {client.spine_ifname} up"]) + "\n")
    run(["ip", "-n", client.netns, "-batch", "-"], input_text="\n".join([
        "link set dev lo up",
        f"address add {client.ip} dev eth0",
        "link set dev eth0 up",
        f"route add default via {client.spine_ip.ip} dev eth0"]) + "\n")
    # Transmit offloads off, as on the lab's tenant VMs: with them on, the client pinged a FIP
    # but its TCP to it timed out (packets whose checksum is left to offload reach OVS's
    # userspace datapath, and OVN's NAT, unfinished).
    run(["ethtool", "-K", "eth0", "tx", "off"], netns=client.netns)
    fabric.vtysh(lab.paths, spine, "-c", "configure terminal",
                 "-c", f"router bgp {device.asn}",
                 "-c", "address-family ipv4 unicast",
                 "-c", f"network {cidr}")
    return client


DEFAULT_CIDR6 = IPv6Network("2001:db8:113::/64")   # in the documentation prefix (RFC 3849)


@dataclass(frozen=True, slots=True)
class Client6:
    """The IPv6 side of an external client: `cidr` on the same veth, advertised by its spine."""

    client: Client
    cidr: IPv6Network
    spine_ip: IPv6Interface
    ip: IPv6Interface


def add_client_ipv6(lab: Lab, client: Client, *,
                    cidr: IPv6Network = DEFAULT_CIDR6) -> Client6:
    """Give an external client an IPv6 subnet too: the spine holds `::1`, the client `::2`
    with its default route via the spine, and the spine advertises `cidr` (a BGP `network` in
    its IPv6 unicast family)."""
    device = lab.topology.device(client.spine)
    six = Client6(client=client, cidr=cidr,
                  spine_ip=IPv6Interface(f"{cidr.network_address + 1}/{cidr.prefixlen}"),
                  ip=IPv6Interface(f"{cidr.network_address + 2}/{cidr.prefixlen}"))
    run(["ip", "-n", lab.netns(client.spine), "address", "add", str(six.spine_ip), "dev",
         client.spine_ifname, "nodad"])
    run(["ip", "-n", client.netns, "-batch", "-"], input_text="\n".join([
        f"address add {six.ip} dev eth0 nodad",
        f"route add default via {six.spine_ip.ip} dev eth0"]) + "\n")
    fabric.vtysh(lab.paths, client.spine, "-c", "configure terminal",
                 "-c", f"router bgp {device.asn}",
                 "-c", "address-family ipv6 unicast",
                 "-c", f"network {cidr}")
    return six


def del_client_ipv6(lab: Lab, six: Client6) -> None:
    """Withdraw the IPv6 subnet (the addresses go with the client's namespace)."""
    device = lab.topology.device(six.client.spine)
    fabric.vtysh(lab.paths, six.client.spine, "-c", "configure terminal",
                 "-c", f"router bgp {device.asn}",
                 "-c", "address-family ipv6 unicast",
                 "-c", f"no network {six.cidr}")


def del_client(lab: Lab, client: Client) -> None:
    """Withdraw the prefix and remove the client (its veth goes with its namespace)."""
    device = lab.topology.device(client.spine)
    fabric.vtysh(lab.paths, client.spine, "-c", "configure terminal",
                 "-c", f"router bgp {device.asn}",
                 "-c", "address-family ipv4 unicast",
                 "-c", f"no network {client.cidr}")
    run(["ip", "netns", "delete", client.netns], check=False)


# --- floating IPs -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FloatingIp:
    """A Neutron floating IP: its FIP port (id, MAC) on the provider network, and the VM port
    it is associated with."""

    fip_id: str
    fip_port_id: str
    external_ip: IPv4Address
    external_mac: str
    vm: Vm
    router: str


def set_fip_distributed(lab: Lab, distributed: bool) -> None:
    """NB_Global `external_ids:neutron:fip-distributed`, as Neutron's maintenance task sets it
    from `enable_distributed_floating_ip`."""
    value = "True" if distributed else "False"
    ovn.nbctl(lab.paths, lab.topology.controller.name, "set", "NB_Global", ".",
              f'external_ids:"neutron:fip-distributed"="{value}"')


def fip_distributed(lab: Lab) -> bool:
    text = ovn.nbctl(lab.paths, lab.topology.controller.name, "--if-exists", "get",
                     "NB_Global", ".", 'external_ids:"neutron:fip-distributed"')
    return text.strip().strip('"') == "True"


def _nat_uuids(lab: Lab, external_ip: IPv4Address) -> list[str]:
    text = ovn.nbctl(lab.paths, lab.topology.controller.name, "--bare", "--columns=_uuid",
                     "find", "NAT", "type=dnat_and_snat", f'external_ip="{external_ip}"')
    return text.split()


def free_fip_address(lab: Lab) -> IPv4Address:
    """The lowest provider address from .200 up that no router, VM or FIP holds."""
    provider = lab.topology.provider
    used: set[object] = set(neutron.provider_addresses_in_use(lab.paths))
    used |= {v.ip4.ip for v in vmmod.list_vms(lab.paths) if v.network is None}
    for host in range(FIRST_FIP_HOST, provider.cidr4.num_addresses - 1):
        address = provider.cidr4.network_address + host
        if address not in used and not _nat_uuids(lab, address):
            return address
    raise ExternalError(f"no free floating IP left in {provider.cidr4}")


def add_floating_ip(lab: Lab, router_name: str, vm: Vm, *,
                    external_ip: IPv4Address | None = None) -> FloatingIp:
    """Associate a floating IP with `vm` as Neutron's `_create_or_update_floatingip` does,
    in the mode NB_Global says: `external_mac` only when FIPs are distributed."""
    router = neutron.load_router(lab.paths, router_name)
    if vm.network is None or router.interface(vm.network) is None:
        raise ExternalError(f"VM {vm.name} is not on a network of router {router_name!r}")
    address = external_ip or free_fip_address(lab)
    fip = FloatingIp(
        fip_id=ovn.lab_uuid(lab.paths, "floating-ip", str(address)),
        fip_port_id=ovn.lab_uuid(lab.paths, "floating-ip-port", str(address)),
        external_ip=address,
        external_mac=neutron.neutron_mac(lab.paths, "floating-ip", str(address)),
        vm=vm, router=router_name)
    distributed = fip_distributed(lab)
    provider = ovn.provider_ids(lab.paths, lab.topology.provider)
    ids = {
        "neutron:fip_id": fip.fip_id,
        "neutron:fip_port_id": fip.fip_port_id,
        "neutron:fip_external_mac": fip.external_mac,
        "neutron:fip_network_id": provider.network_id,
        "neutron:revision_number": "1",
        "neutron:router_name": router.lr,
    }
    columns = ["type=dnat_and_snat", f'external_ip="{address}"',
               f'logical_ip="{vm.ip4.ip}"', f'logical_port="{vm.port_id}"',
               f"options={ovn.ovsdb_map({'stateless': 'false'})}",
               f"external_ids={ovn.ovsdb_map(ids)}", "gateway_port=@gw"]
    if distributed:
        columns.append(f'external_mac="{fip.external_mac}"')
    ovn.nbctl(lab.paths, lab.topology.controller.name,
              "--", "--id=@gw", "get", "Logical_Router_Port", router.gw_lrp, "_uuid",
              "--", "--id=@fip", "create", "NAT", *columns,
              "--", "add", "Logical_Router", router.lr, "nat", "@fip",
              "--", "set", "Logical_Switch_Port", vm.port_id,
              f'external_ids:"neutron:port_fip"="{address}"')
    return fip


def del_floating_ip(lab: Lab, fip: FloatingIp) -> None:
    """Disassociate: remove the NAT row from the router and the VM port's `neutron:port_fip`."""
    router = neutron.load_router(lab.paths, fip.router)
    args: list[str] = []
    for nat in _nat_uuids(lab, fip.external_ip):
        args += ["--", "remove", "Logical_Router", router.lr, "nat", nat]
    args += ["--", "--if-exists", "remove", "Logical_Switch_Port", fip.vm.port_id,
             "external_ids", '"neutron:port_fip"']
    ovn.nbctl(lab.paths, lab.topology.controller.name, *args)


__all__ = ["DEFAULT_CIDR", "DEFAULT_CIDR6", "Client", "Client6", "ExternalError", "FloatingIp",
           "add_client", "add_client_ipv6", "add_floating_ip", "del_client", "del_client_ipv6",
           "del_floating_ip", "fip_distributed", "free_fip_address", "set_fip_distributed"]
