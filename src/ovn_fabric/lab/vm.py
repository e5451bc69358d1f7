"""Lab "VMs": network namespaces plugged into a chassis's br-int the way Nova and Neutron plug one.

A VM is a namespace `<prefix>-vm-<name>` whose `eth0` is one end of a veth pair; the other end,
named like Nova names it (`tap<first 11 characters of the port id>`), sits in the chassis
namespace and is an OVS port of br-int with `external_ids:iface-id=<port id>`. The switch port is
created first in the NB, on the provider network or on a tenant network (neutron.py), exactly as
Neutron creates a bound VM port (docs: shared/OVN_DATA.md, section (a)); ovn-controller then
claims it and OVN marks it up.

A VM on a tenant network gets the network's MTU (1442: Geneve costs 58 bytes on a 1500-byte
fabric) on both ends of its veth, and transmit offloads off in its namespace: OVS 3.1 cannot
put into a tunnel a packet that still carries offload flags (LAB_NOTES.md).

Veth rather than an OVS internal port moved into the VM namespace: an internal port is cut off
for good when ovs-vswitchd restarts. TCP through the userspace datapath works because
`start_chassis` enables `userspace-tso-enable` (otherwise checksums of TCP/UDP from a veth are
left unfilled). IPv6 DAD is off in the VM so addresses are usable at once.

What a VM was given (port id, MAC, addresses, node) is recorded in `<vm_dir>/vm.json`, so that
`del_vm`, the CLI and the address allocator find it without asking OVN.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import asdict, dataclass
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)
from pathlib import Path

from ovn_fabric.lab import neutron, ovn, vlan
from ovn_fabric.lab.paths import LabPaths
from ovn_fabric.lab.procs import netns_pids, terminate
from ovn_fabric.lab.sh import CommandError, output, run, wait_until
from ovn_fabric.lab.topology import Topology

VM_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,15}$")
FIRST_HOST = 10          # addresses are allocated from the 10th host of the subnet upwards
UP_TIMEOUT = 15.0
STATE_FILE = "vm.json"


class VmError(RuntimeError):
    """A VM that cannot be created, found or removed as asked."""


@dataclass(frozen=True, slots=True)
class Vm:
    """One lab VM and its Neutron identity."""

    name: str
    node: str           # the chassis device it is plugged into
    hostname: str       # that chassis's hostname (Neutron's binding host)
    netns: str
    port_id: str        # Neutron port id = NB Logical_Switch_Port name = iface-id
    device_id: str      # Nova instance id
    mac: str
    ip4: IPv4Interface
    ip6: IPv6Interface
    network: str | None = None    # a tenant network (neutron.py), or None: the provider network

    @property
    def tap(self) -> str:
        """The OVS port on br-int, named as Nova names it."""
        return tap_name(self.port_id)

    @property
    def addresses(self) -> str:
        """The LSP `addresses` entry: `MAC IP4 IP6`."""
        return f"{self.mac} {self.ip4.ip} {self.ip6.ip}"

    def to_json(self) -> str:
        data = asdict(self)
        data["ip4"], data["ip6"] = str(self.ip4), str(self.ip6)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Vm:
        data = json.loads(text)
        data.setdefault("network", None)      # recorded before tenant networks existed
        data["ip4"] = IPv4Interface(data["ip4"])
        data["ip6"] = IPv6Interface(data["ip6"])
        return cls(**data)


# --- the network a VM is plugged into ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Segment:
    """What plugging a VM needs to know of its network, provider or tenant."""

    name: str | None        # the tenant network's name; None for the provider network
    network_name: str       # the Neutron network's name (`public`, ...)
    switch: str             # its Logical_Switch
    cidr4: IPv4Network
    gateway4: IPv4Address
    cidr6: IPv6Network
    gateway6: IPv6Address
    subnet4_id: str
    subnet6_id: str
    mtu: int | None         # the VM's MTU, or None to leave the default
    overlay: bool           # reached over Geneve: offloads off in the VM


def eth0_setup(vm: Vm, seg: Segment) -> list[str]:
    """The `ip -batch` lines that bring a VM's eth0 up on its segment: MTU, addresses and
    default routes (as cloud-init and DHCP would)."""
    mtu = [f"link set dev eth0 mtu {seg.mtu}"] if seg.mtu else []
    return [
        *mtu,
        "link set dev eth0 up",
        f"address add {vm.ip4} dev eth0",
        f"address add {vm.ip6} dev eth0 nodad",
        f"route add default via {seg.gateway4} dev eth0",
        f"route add default via {seg.gateway6} dev eth0",
    ]


def segment(paths: LabPaths, topology: Topology, network: str | None) -> Segment:
    """The provider network (None or its name), a VLAN provider network created with vlan.py
    or a tenant network created with neutron.py."""
    provider = topology.provider
    if network is None or network == provider.name:
        ids = ovn.provider_ids(paths, provider)
        return Segment(None, provider.name, ids.switch, provider.cidr4, provider.gateway4,
                       provider.cidr6, provider.gateway6, ids.subnet4_id, ids.subnet6_id,
                       None, overlay=False)
    vlan_network = vlan.load_network(paths, network)
    if vlan_network is not None:
        ids = ovn.provider_ids(paths, vlan_network.provider())
        return Segment(vlan_network.name, vlan_network.name, ids.switch, vlan_network.cidr4,
                       vlan_network.gateway4, vlan_network.cidr6, vlan_network.gateway6,
                       ids.subnet4_id, ids.subnet6_id, None, overlay=False)
    try:
        tenant = neutron.load_network(paths, network)
    except neutron.NeutronError as exc:
        raise VmError(str(exc)) from None
    return Segment(tenant.name, tenant.name, tenant.switch, tenant.cidr4, tenant.gateway4,
                   tenant.cidr6, tenant.gateway6, tenant.subnet4_id, tenant.subnet6_id,
                   tenant.mtu, overlay=True)


# --- names, MACs, addresses -------------------------------------------------------------------


def tap_name(port_id: str) -> str:
    """Nova's OVS port name for a Neutron port: `tap` + the first 11 characters of its id."""
    return f"tap{port_id[:11]}"


def vm_mac(name: str) -> str:
    """A MAC in Neutron's default base `fa:16:3e`, derived from the VM name."""
    digest = hashlib.sha256(f"vm/{name}".encode()).digest()
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in digest[:3])


def _state_path(paths: LabPaths, name: str) -> Path:
    return paths.vm_dir(name) / STATE_FILE


def load_vm(paths: LabPaths, name: str) -> Vm:
    """The VM `name` as recorded by add_vm; VmError if there is none."""
    try:
        return Vm.from_json(_state_path(paths, name).read_text())
    except FileNotFoundError:
        raise VmError(f"no VM named {name!r} in lab {paths.prefix!r}") from None


def list_vms(paths: LabPaths) -> list[Vm]:
    """Every VM recorded in the lab, by name."""
    root = paths.lab_dir / "vms"
    if not root.is_dir():
        return []
    return [Vm.from_json(p.read_text()) for p in sorted(root.glob(f"*/{STATE_FILE}"))]


def _pick4(seg: Segment, used: set[IPv4Address], wanted: IPv4Address | None) -> IPv4Address:
    net = seg.cidr4
    if wanted is not None:
        if wanted not in net or wanted in (net.network_address, net.broadcast_address):
            raise VmError(f"{wanted} is not a host address of {net}")
        if wanted == seg.gateway4 or wanted in used:
            raise VmError(f"{wanted} is already in use")
        return wanted
    for n in range(FIRST_HOST, net.num_addresses - 1):
        candidate = net.network_address + n
        if candidate != seg.gateway4 and candidate not in used:
            return candidate
    raise VmError(f"no free address left in {net}")


def _pick6(seg: Segment, used: set[IPv6Address], wanted: IPv6Address | None) -> IPv6Address:
    net = seg.cidr6
    if wanted is not None:
        if wanted not in net or wanted == net.network_address:
            raise VmError(f"{wanted} is not a host address of {net}")
        if wanted == seg.gateway6 or wanted in used:
            raise VmError(f"{wanted} is already in use")
        return wanted
    n = FIRST_HOST
    while True:
        candidate = net.network_address + n
        if candidate not in net:
            raise VmError(f"no free address left in {net}")
        if candidate != seg.gateway6 and candidate not in used:
            return candidate
        n += 1


def _plan(paths: LabPaths, topology: Topology, name: str, node: str, *,
          ip4: IPv4Address | None, ip6: IPv6Address | None, network: str | None) -> Vm:
    """Every identity and address of a new VM; nothing is created yet."""
    if not VM_NAME_RE.match(name):
        raise VmError(f"VM name {name!r}: 1-16 lower-case letters, digits and '-', "
                      "starting with a letter")
    if _state_path(paths, name).exists():
        raise VmError(f"VM {name!r} already exists in lab {paths.prefix!r}")
    if not topology.device(node).is_chassis:
        raise VmError(f"{node!r} is not a chassis (compute or gateway) of the topology")
    seg = segment(paths, topology, network)
    others = [vm for vm in list_vms(paths) if vm.network == seg.name]
    taken = neutron.provider_addresses_in_use(paths) if seg.name is None else set()
    addr4 = _pick4(seg, {vm.ip4.ip for vm in others} | {a for a in taken
                                                          if isinstance(a, IPv4Address)}, ip4)
    addr6 = _pick6(seg, {vm.ip6.ip for vm in others} | {a for a in taken
                                                          if isinstance(a, IPv6Address)}, ip6)
    hostname = ovn.chassis_external_ids(paths, node).get("hostname")
    if not hostname:
        raise VmError(f"chassis {node!r} has no external_ids:hostname: is it started?")
    return Vm(
        name=name,
        node=node,
        hostname=hostname,
        netns=paths.vm_netns(name),
        port_id=ovn.lab_uuid(paths, "port", name),
        device_id=ovn.lab_uuid(paths, "instance", name),
        mac=vm_mac(name),
        ip4=IPv4Interface(f"{addr4}/{seg.cidr4.prefixlen}"),
        ip6=IPv6Interface(f"{addr6}/{seg.cidr6.prefixlen}"),
        network=seg.name,
    )


# --- the switch port, Neutron-style -----------------------------------------------------------


def port_external_ids(paths: LabPaths, topology: Topology, vm: Vm) -> dict[str, str]:
    """The LSP external_ids Neutron writes for a bound `compute:nova` port."""
    seg = segment(paths, topology, vm.network)
    return {
        "neutron:cidrs": f"{vm.ip4} {vm.ip6}",
        "neutron:device_id": vm.device_id,
        "neutron:device_owner": "compute:nova",
        "neutron:host_id": vm.hostname,
        "neutron:mtu": "",
        "neutron:network_name": seg.switch,
        "neutron:port_capabilities": "",
        "neutron:port_name": vm.name,
        "neutron:project_id": neutron.project_id(paths),
        "neutron:revision_number": "4",
        "neutron:security_group_ids": "",
        "neutron:subnet_pool_addr_scope4": "",
        "neutron:subnet_pool_addr_scope6": "",
        "neutron:vnic_type": "normal",
    }


def _create_port(paths: LabPaths, topology: Topology, vm: Vm) -> None:
    central = topology.controller.name
    seg = segment(paths, topology, vm.network)
    columns = [
        f"addresses={ovn.ovsdb_set([vm.addresses])}",
        f"port_security={ovn.ovsdb_set([vm.addresses])}",
        "enabled=true",
        f"options={ovn.ovsdb_map({'requested-chassis': vm.hostname})}",
        f"external_ids={ovn.ovsdb_map(port_external_ids(paths, topology, vm))}",
    ]
    for column, subnet_id in (("dhcpv4_options", seg.subnet4_id),
                              ("dhcpv6_options", seg.subnet6_id)):
        dhcp = ovn.dhcp_options_uuid(paths, central, subnet_id)
        if dhcp:
            columns.append(f"{column}={dhcp}")
    ovn.nbctl(paths, central, "lsp-add", seg.switch, vm.port_id,
              "--", "set", "Logical_Switch_Port", vm.port_id, *columns)


def _port_up(paths: LabPaths, central: str, port_id: str) -> bool:
    return ovn.nbctl(paths, central, "get", "Logical_Switch_Port", port_id, "up").strip() == "true"


# --- the namespace and the veth ---------------------------------------------------------------


def _create_namespace(paths: LabPaths, topology: Topology, vm: Vm) -> None:
    node_ns = paths.netns(vm.node)
    run(["ip", "netns", "add", vm.netns])
    tap_mac = "fe" + vm.mac[2:]     # libvirt's convention for the host side of a VIF
    run(["ip", "-n", node_ns, "link", "add", vm.tap, "address", tap_mac, "type", "veth",
         "peer", "name", "eth0", "address", vm.mac, "netns", vm.netns])
    run(["ip", "-n", node_ns, "link", "set", "dev", vm.tap, "up"])
    run(["sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0",
         "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.eth0.accept_dad=0"],
        netns=vm.netns)
    seg = segment(paths, topology, vm.network)
    if seg.mtu:
        run(["ip", "-n", node_ns, "link", "set", "dev", vm.tap, "mtu", str(seg.mtu)])
    batch = "\n".join(["link set dev lo up", *eth0_setup(vm, seg)]) + "\n"
    run(["ip", "-n", vm.netns, "-batch", "-"], input_text=batch)
    if seg.overlay:
        run(["ethtool", "-K", "eth0", "tx", "off"], netns=vm.netns)


def _plug(paths: LabPaths, vm: Vm) -> None:
    """Add the tap to br-int as os-vif does, which is what makes ovn-controller claim the port."""
    iface_ids = {"iface-id": vm.port_id, "attached-mac": vm.mac, "iface-status": "active",
                 "vm-uuid": vm.device_id}
    ovn.vsctl(paths, vm.node, "--may-exist", "add-port", ovn.INTEGRATION_BRIDGE, vm.tap,
              "--", "set", "Interface", vm.tap, f"external_ids={ovn.ovsdb_map(iface_ids)}")


def add_vm(
    paths: LabPaths,
    topology: Topology,
    *,
    name: str,
    node: str,
    ip4: IPv4Address | str | None = None,
    ip6: IPv6Address | str | None = None,
    network: str | None = None,
) -> Vm:
    """Create VM `name` on chassis `node`, on the provider network or on the tenant network
    `network`; return once OVN has bound its port (the LSP is up). Addresses not given are the
    lowest free ones of the network from the 10th host on.
    """
    vm = _plan(paths, topology, name, node,
               ip4=IPv4Address(ip4) if ip4 is not None else None,
               ip6=IPv6Address(ip6) if ip6 is not None else None, network=network)
    state = _state_path(paths, name)
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(vm.to_json())      # first, so that del_vm can undo a half-made VM
    _create_port(paths, topology, vm)
    _create_namespace(paths, topology, vm)
    _plug(paths, vm)
    central = topology.controller.name
    wait_until(lambda: _port_up(paths, central, vm.port_id), timeout=UP_TIMEOUT,
               what=f"OVN to bind the port of VM {name} on {node}")
    return vm


# --- removal ----------------------------------------------------------------------------------


def _netns_exists(netns: str) -> bool:
    return netns in output(["ip", "netns", "list"]).split()


def _kill_namespace_processes(netns: str) -> None:
    terminate(netns_pids(netns), grace=0.5)


def unplug(paths: LabPaths, vm: Vm) -> None:
    """Take the VM's tap out of its node's br-int and delete it (as os-vif does when the
    instance goes); a node whose OVS is gone already is no error."""
    try:
        ovn.vsctl(paths, vm.node, "--if-exists", "del-port", ovn.INTEGRATION_BRIDGE, vm.tap)
    except CommandError:
        if ovn.ovs_socket(paths, vm.node).exists():
            raise
    # Delete the veth by its host end: both ends go at once. Deleting the namespace alone
    # would leave the tap behind for a while (the kernel dismantles a namespace in the
    # background; seen taking over a second on a busy machine), and adding a VM of the same
    # name in the meantime fails with "File exists".
    run(["ip", "-n", paths.netns(vm.node), "link", "del", "dev", vm.tap], check=False)


def del_vm(paths: LabPaths, topology: Topology, name: str) -> None:
    """Remove VM `name`: its switch port, its OVS port, its namespace (and anything running in
    it) and its record. Parts already gone are skipped."""
    vm = load_vm(paths, name)
    ovn.nbctl(paths, topology.controller.name, "--if-exists", "lsp-del", vm.port_id)
    unplug(paths, vm)
    if _netns_exists(vm.netns):
        _kill_namespace_processes(vm.netns)
        run(["ip", "netns", "delete", vm.netns])
    shutil.rmtree(paths.vm_dir(name))


__all__ = ["Segment", "Vm", "VmError", "add_vm", "del_vm", "eth0_setup", "list_vms", "load_vm",
           "port_external_ids", "segment", "tap_name", "unplug", "vm_mac"]
