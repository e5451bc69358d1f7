"""OVN nodes in network namespaces: central databases, chassis, the provider network, VMs.

Builds a tiny world of its own under lab prefix `hxo` (namespaces `hxo-*`, files under
/run/ovn-fabric/hxo): a central namespace holding the control-plane VIP on its `lo`, and two
chassis namespaces each joined to it by a veth with static IPv4 and IPv6 routes (no FRR: the
chassis only need to reach the SB). Checks that the chassis register with the right identity,
that the provider network and VM ports have exactly Neutron's shape, and that two VMs on the same
chassis reach each other with ping and TCP over IPv4 and IPv6.

The world is always torn down, even when setting it up fails: every process found by
`ip netns pids` in an `hxo-*` namespace is killed, those namespaces are deleted and the lab
directory removed. Nothing else on the machine is touched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from ovn_fabric.lab import ovn
from ovn_fabric.lab.paths import LabPaths
from ovn_fabric.lab.sh import CommandError, Timeout, output, run, wait_until
from ovn_fabric.lab.topology import Topology, parse
from ovn_fabric.lab.vm import Vm, add_vm, del_vm, list_vms, tap_name

from ..topologies import small_topology

pytestmark = pytest.mark.lab

PREFIX = "hxo"
CENTRAL = "central"
GATEWAY_NODE = "c2"
BINARIES = (
    "ip", "sysctl", "ping", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl",
    "ovs-ofctl", "ovn-northd", "ovn-controller", "ovn-nbctl", "ovn-sbctl", "ovn-appctl",
)

TOPOLOGY = small_topology("hxo-ovn-nodes", """
[[device]]
name = "central"
role = "controller"
asn = 64999
[[device]]
name = "c1"
role = "compute"
asn = 64999
[[device]]
name = "c2"
role = "gateway"
asn = 64999
[[link]]
ends = ["c1", "central"]
[[link]]
ends = ["c2", "central"]
""")


@dataclass
class World:
    paths: LabPaths
    topology: Topology
    encap_ip: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def system_id(node: str) -> str:
        return f"{node}-chassis-id"

    @staticmethod
    def hostname(node: str) -> str:
        return f"{node}.hxo.example.org"

    def nb(self, *args: str) -> str:
        return ovn.nbctl(self.paths, CENTRAL, *args)

    def sb(self, *args: str) -> str:
        return ovn.sbctl(self.paths, CENTRAL, *args)


# --- setting up and tearing down --------------------------------------------------------------


def _our_namespaces() -> list[str]:
    names = (line.split()[0] for line in output(["ip", "netns", "list"]).splitlines() if line)
    return [ns for ns in names if ns.startswith(f"{PREFIX}-")]


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            continue


def teardown_world(paths: LabPaths) -> None:
    """Kill what runs in our namespaces, delete them, remove our lab directory."""
    namespaces = _our_namespaces()
    pids = [int(p) for ns in namespaces for p in output(["ip", "netns", "pids", ns]).split()]
    _signal(pids, signal.SIGTERM)
    try:
        wait_until(lambda: all(_gone(p) for p in pids), timeout=3.0, what="daemons to exit")
    except Timeout:
        _signal(pids, signal.SIGKILL)
        wait_until(lambda: all(_gone(p) for p in pids), timeout=5.0, what="daemons to die")
    for ns in namespaces:
        run(["ip", "netns", "delete", ns], check=False)
    shutil.rmtree(paths.lab_dir, ignore_errors=True)


def _require_tools() -> None:
    if os.geteuid() != 0:
        pytest.fail("lab tests need root (network namespaces, OVS, OVN)")
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        pytest.fail(f"missing binaries: {', '.join(missing)} (run scripts/install)")


def _make_namespace(netns: str) -> None:
    run(["ip", "netns", "add", netns])
    # DAD off before any interface exists: tentative IPv6 addresses would fail for 1-2 s.
    run(["sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0",
         "net.ipv6.conf.default.accept_dad=0"], netns=netns)
    run(["ip", "-n", netns, "link", "set", "dev", "lo", "up"])


def _wire(paths: LabPaths, topology: Topology) -> dict[str, str]:
    """Veths from each chassis to central, static routes to the VIP; returns the encap IPs."""
    cp = topology.control_plane
    central_ns = paths.netns(CENTRAL)
    run(["ip", "-n", central_ns, "address", "add", f"{cp.vip4}/32", "dev", "lo"])
    run(["ip", "-n", central_ns, "address", "add", f"{cp.vip6}/128", "dev", "lo"])
    encap: dict[str, str] = {}
    for index, link in enumerate(topology.links, start=1):
        node, hub = link.a, link.b
        assert hub.device == CENTRAL
        node_ns = paths.netns(node.device)
        run(["ip", "-n", central_ns, "link", "add", hub.ifname, "type", "veth",
             "peer", "name", node.ifname, "netns", node_ns])
        for netns, ifname, host in ((central_ns, hub.ifname, 1), (node_ns, node.ifname, 2)):
            run(["ip", "-n", netns, "address", "add", f"10.200.{index}.{host}/24",
                 "dev", ifname])
            run(["ip", "-n", netns, "address", "add", f"fd00:200:{index}::{host}/64",
                 "dev", ifname])
            run(["ip", "-n", netns, "link", "set", "dev", ifname, "up"])
        run(["ip", "-n", node_ns, "route", "add", f"{cp.vip4}/32", "via", f"10.200.{index}.1"])
        run(["ip", "-n", node_ns, "route", "add", f"{cp.vip6}/128", "via",
             f"fd00:200:{index}::1"])
        encap[node.device] = f"10.200.{index}.2"
    return encap


def _build(paths: LabPaths, topology: Topology) -> World:
    for device in topology.devices:
        _make_namespace(paths.netns(device.name))
    world = World(paths, topology, _wire(paths, topology))
    started = time.monotonic()
    ovn.start_central(paths, CENTRAL)
    world.timings["start_central"] = time.monotonic() - started
    sb_remote = f"tcp:{topology.control_plane.vip4}:{ovn.SB_PORT}"
    for device in topology.chassis:
        started = time.monotonic()
        ovn.start_chassis(
            paths, device.name, system_id=world.system_id(device.name),
            hostname=world.hostname(device.name), encap_ip=world.encap_ip[device.name],
            sb_remote=sb_remote, bridge_mappings={"datacentre": "br-ex"},
            gateway=device.name == GATEWAY_NODE,
        )
        world.timings[f"start_chassis {device.name}"] = time.monotonic() - started
    started = time.monotonic()
    ovn.wait_chassis(paths, CENTRAL, [world.system_id(d.name) for d in topology.chassis],
                     timeout=20.0)
    world.timings["chassis registered in SB"] = time.monotonic() - started
    started = time.monotonic()
    ovn.create_provider_network(paths, CENTRAL, topology.provider)
    world.timings["create_provider_network"] = time.monotonic() - started
    return world


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    _require_tools()
    paths = LabPaths(PREFIX)
    topology = parse(TOPOLOGY)
    teardown_world(paths)          # leftovers of an earlier, killed run
    try:
        yield _build(paths, topology)
    finally:
        teardown_world(paths)


@pytest.fixture(scope="module")
def vm_pair(world: World) -> tuple[Vm, Vm]:
    """Two VMs on c1; they stay until the world goes away."""
    started = time.monotonic()
    first = add_vm(world.paths, world.topology, name="vma", node="c1")
    world.timings["add_vm"] = time.monotonic() - started
    second = add_vm(world.paths, world.topology, name="vmb", node="c1",
                    ip4="172.24.4.77", ip6="2001:db8:24:4::77")
    return first, second


# --- helpers ----------------------------------------------------------------------------------


def _json_rows(text: str) -> list[dict[str, object]]:
    data = json.loads(text)
    return [dict(zip(data["headings"], (_decode(v) for v in row), strict=True))
            for row in data["data"]]


def _decode(value: object) -> object:
    """An OVSDB JSON value as plain Python: maps as dicts, sets as lists, uuids as strings."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
        kind, body = value
        if kind == "map":
            return {k: _decode(v) for k, v in body}
        if kind == "set":
            return [_decode(v) for v in body]
        if kind in ("uuid", "named-uuid"):
            return body
    return value


def _row(world: World, db: str, table: str, record: str) -> dict[str, object]:
    ctl = world.nb if db == "nb" else world.sb
    (row,) = _json_rows(ctl("--format=json", "list", table, record))
    return row


def _find(world: World, db: str, table: str, *conditions: str) -> list[dict[str, object]]:
    ctl = world.nb if db == "nb" else world.sb
    return _json_rows(ctl("--format=json", "find", table, *conditions))


def _in_vm(vm: Vm, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(list(argv), netns=vm.netns, check=check, timeout=30)


# --- chassis and central ----------------------------------------------------------------------


def test_chassis_register_with_their_identity(world: World) -> None:
    for device in world.topology.chassis:
        name = world.system_id(device.name)
        chassis = _row(world, "sb", "Chassis", name)
        assert chassis["hostname"] == world.hostname(device.name)
        (encap,) = _find(world, "sb", "Encap", f"chassis_name={name}")
        assert encap["type"] == "geneve"
        assert encap["ip"] == world.encap_ip[device.name]
        other_config = chassis["other_config"]
        assert isinstance(other_config, dict)
        assert other_config["ovn-bridge-mappings"] == "datacentre:br-ex"
        is_gateway = device.name == GATEWAY_NODE
        assert (other_config.get("ovn-cms-options") == "enable-chassis-as-gw") is is_gateway


def test_chassis_bridges_are_netdev_with_fixed_macs_and_up(world: World) -> None:
    macs = set()
    for device in world.topology.chassis:
        paths, name = world.paths, device.name
        assert ovn.vsctl(paths, name, "get", "Open_vSwitch", ".",
                         "other_config:userspace-tso-enable").strip() == '"true"'
        ids = ovn.chassis_external_ids(paths, name)
        assert ids["system-id"] == world.system_id(name)
        assert ids["ovn-remote"] == "tcp:10.255.255.1:6642"
        assert ids["ovn-encap-ip"] == world.encap_ip[name]
        for bridge in ("br-int", "br-ex"):
            assert ovn.vsctl(paths, name, "get", "Bridge", bridge,
                             "datapath_type").strip() == "netdev"
            link = output(["ip", "-n", paths.netns(name), "-o", "link", "show", "dev", bridge])
            mac = ovn.bridge_mac(name, bridge)
            assert f"link/ether {mac} " in link
            assert ",UP," in link or "<UP" in link
            assert ovn.ofctl(paths, name, "show", bridge)  # the OpenFlow socket answers
            macs.add(mac)
    assert len(macs) == 4


def test_databases_listen_on_the_vip_over_ipv4_and_ipv6(world: World) -> None:
    cp = world.topology.control_plane
    node_ns = world.paths.netns("c1")
    for remote in (f"tcp:{cp.vip4}:{ovn.SB_PORT}", f"tcp:[{cp.vip6}]:{ovn.SB_PORT}"):
        names = output(["ovn-sbctl", f"--db={remote}", "--timeout=5", "--bare",
                        "--columns=name", "list", "Chassis"], netns=node_ns)
        assert world.system_id("c1") in names.split()
    for remote in (f"tcp:{cp.vip4}:{ovn.NB_PORT}", f"tcp:[{cp.vip6}]:{ovn.NB_PORT}"):
        output(["ovn-nbctl", f"--db={remote}", "--timeout=5", "show"], netns=node_ns)


def test_every_daemon_lives_in_a_lab_namespace(world: World) -> None:
    ours = {int(p) for ns in _our_namespaces()
            for p in output(["ip", "netns", "pids", ns]).split()}
    for pidfile in world.paths.lab_dir.glob("*/*/*.pid"):
        assert int(pidfile.read_text()) in ours, pidfile


# --- the provider network ---------------------------------------------------------------------


def test_provider_network_has_neutron_shape(world: World) -> None:
    provider = world.topology.provider
    ids = ovn.provider_ids(world.paths, provider)
    switch = _row(world, "nb", "Logical_Switch", ids.switch)
    assert switch["external_ids"] == {
        "neutron:availability_zone_hints": "",
        "neutron:mtu": "1500",
        "neutron:network_name": "public",
        "neutron:provnet-network-type": "flat",
        "neutron:provnet-physical-network": "datacentre",
        "neutron:revision_number": "1",
    }
    assert switch["other_config"] == {
        "broadcast-arps-to-all-routers": "true", "fdb_age_threshold": "0",
        "mcast_flood_unregistered": "false", "mcast_snoop": "false", "vlan-passthru": "false",
    }
    localnet = _row(world, "nb", "Logical_Switch_Port", f"provnet-{ids.segment_id}")
    assert localnet["type"] == "localnet"
    assert localnet["addresses"] == "unknown"
    assert localnet["options"] == {
        "network_name": "datacentre", "mcast_flood": "false",
        "mcast_flood_reports": "true", "localnet_learn_fdb": "false",
    }
    assert localnet["external_ids"] == {"neutron:provnet-physical-network": "datacentre"}
    sb_localnet = _row(world, "sb", "Port_Binding", f"provnet-{ids.segment_id}")
    assert sb_localnet["type"] == "localnet"
    datapath = _row(world, "sb", "Datapath_Binding", str(sb_localnet["datapath"]))
    dp_ids = datapath["external_ids"]
    assert isinstance(dp_ids, dict)
    assert (dp_ids["name"], dp_ids["name2"]) == (ids.switch, "public")


def test_provider_subnets_have_neutron_dhcp_options(world: World) -> None:
    provider = world.topology.provider
    ids = ovn.provider_ids(world.paths, provider)
    (dhcp4,) = _find(world, "nb", "DHCP_Options", f"external_ids:subnet_id={ids.subnet4_id}")
    assert dhcp4["cidr"] == "172.24.4.0/24"
    options4 = dhcp4["options"]
    assert isinstance(options4, dict)
    assert options4["router"] == options4["server_id"] == "172.24.4.1"
    assert options4["lease_time"] == "43200"
    assert str(options4["server_mac"]).startswith("fa:16:3e:")
    (dhcp6,) = _find(world, "nb", "DHCP_Options", f"external_ids:subnet_id={ids.subnet6_id}")
    assert dhcp6["cidr"] == "2001:db8:24:4::/64"
    assert dhcp6["options"] == {"server_id": ovn.dhcp_server_mac(world.paths, provider, 6)}


def test_provider_network_is_deterministic_and_idempotent(world: World) -> None:
    provider = world.topology.provider
    again = ovn.create_provider_network(world.paths, CENTRAL, provider)
    assert again == ovn.provider_ids(world.paths, provider)
    assert again == ovn.provider_ids(LabPaths(PREFIX), provider)
    assert again != ovn.provider_ids(LabPaths("hxoother"), provider)
    assert len(_find(world, "nb", "Logical_Switch", f"name={again.switch}")) == 1
    assert len(_json_rows(world.nb("--format=json", "list", "DHCP_Options"))) == 2


# --- VMs --------------------------------------------------------------------------------------


def test_vm_port_has_neutron_shape(world: World, vm_pair: tuple[Vm, Vm]) -> None:
    vm, other = vm_pair
    assert (vm.ip4.ip, vm.ip6.ip) == (IPv4Address("172.24.4.10"), IPv6Address("2001:db8:24:4::a"))
    assert (other.ip4.ip, other.ip6.ip) == (IPv4Address("172.24.4.77"),
                                            IPv6Address("2001:db8:24:4::77"))
    ids = ovn.provider_ids(world.paths, world.topology.provider)
    lsp = _row(world, "nb", "Logical_Switch_Port", vm.port_id)
    addresses = f"{vm.mac} 172.24.4.10 2001:db8:24:4::a"
    assert vm.mac.startswith("fa:16:3e:")
    assert lsp["type"] == ""
    assert lsp["addresses"] == addresses
    assert lsp["port_security"] == addresses
    assert lsp["enabled"] is True
    assert lsp["up"] is True
    assert lsp["options"] == {"requested-chassis": world.hostname("c1")}
    external_ids = lsp["external_ids"]
    assert isinstance(external_ids, dict)
    assert external_ids["neutron:cidrs"] == "172.24.4.10/24 2001:db8:24:4::a/64"
    assert external_ids["neutron:device_owner"] == "compute:nova"
    assert external_ids["neutron:host_id"] == world.hostname("c1")
    assert external_ids["neutron:port_name"] == "vma"
    assert external_ids["neutron:network_name"] == ids.switch
    assert external_ids["neutron:device_id"] == vm.device_id
    assert {"neutron:subnet_pool_addr_scope4", "neutron:subnet_pool_addr_scope6",
            "neutron:mtu", "neutron:vnic_type", "neutron:project_id",
            "neutron:revision_number", "neutron:security_group_ids"} <= set(external_ids)
    binding = _row(world, "sb", "Port_Binding", vm.port_id)
    chassis = _row(world, "sb", "Chassis", world.system_id("c1"))
    assert binding["chassis"] == binding["requested_chassis"] == chassis["_uuid"]
    assert binding["up"] is True
    sb_ids = binding["external_ids"]
    assert isinstance(sb_ids, dict)
    assert sb_ids["name"] == "vma"
    iface = ovn.vsctl(world.paths, "c1", "get", "Interface", tap_name(vm.port_id),
                      "external_ids:iface-id")
    assert iface.strip().strip('"') == vm.port_id
    assert len(tap_name(vm.port_id)) <= 15


def test_vms_on_one_node_ping_each_other(vm_pair: tuple[Vm, Vm]) -> None:
    vm, other = vm_pair
    for target in (other.ip4.ip, other.ip6.ip):
        _in_vm(vm, "ping", "-c", "3", "-i", "0.2", "-W", "2", str(target))
    for target in (vm.ip4.ip, vm.ip6.ip):
        _in_vm(other, "ping", "-c", "1", "-W", "2", str(target))


TCP_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 5000)); s.listen()
for _ in range(int(sys.argv[1])):
    conn, _ = s.accept(); n = 0
    while data := conn.recv(65536): n += len(data)
    conn.sendall(str(n).encode()); conn.close()
"""

TCP_CLIENT = """
import socket, sys
conn = socket.create_connection((sys.argv[1], 5000), timeout=5)
conn.sendall(b"x" * int(sys.argv[2])); conn.shutdown(socket.SHUT_WR)
print(conn.recv(100).decode())
"""


def _listening(vm: Vm, port: int) -> bool:
    return f":{port} " in output(["ss", "-Hltn"], netns=vm.netns)


def test_vms_on_one_node_talk_tcp(vm_pair: tuple[Vm, Vm]) -> None:
    """Bulk TCP (4 MB: segmentation offload at work) both ways of addressing."""
    vm, other = vm_pair
    size = 4_000_000
    server = subprocess.Popen(
        ["ip", "netns", "exec", other.netns, sys.executable, "-c", TCP_SERVER, "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_until(lambda: _listening(other, 5000), timeout=10.0, what="the TCP server")
        for target in (other.ip4.ip, other.ip6.ip):
            got = _in_vm(vm, sys.executable, "-c", TCP_CLIENT, str(target), str(size))
            assert got.stdout.strip() == str(size), target
        assert server.wait(timeout=10) == 0
    finally:
        server.kill()
        server.wait()


def test_del_vm_removes_port_ovs_port_and_namespace(world: World,
                                                    vm_pair: tuple[Vm, Vm]) -> None:
    paths, topology = world.paths, world.topology
    vm = add_vm(paths, topology, name="gone", node="c2")
    assert vm.ip4.ip == IPv4Address("172.24.4.11")   # .10 is vma's, .77 vmb's
    assert {v.name for v in list_vms(paths)} == {"vma", "vmb", "gone"}
    sleeper = subprocess.Popen(["ip", "netns", "exec", vm.netns, "sleep", "600"])
    try:
        del_vm(paths, topology, "gone")
        assert sleeper.wait(timeout=5) != 0
    finally:
        sleeper.kill()
        sleeper.wait()
    assert _find(world, "nb", "Logical_Switch_Port", f"name={vm.port_id}") == []
    assert tap_name(vm.port_id) not in ovn.vsctl(paths, "c2", "list-ports", "br-int").split()
    assert vm.netns not in _our_namespaces()
    assert not paths.vm_dir("gone").exists()
    assert {v.name for v in list_vms(paths)} == {"vma", "vmb"}
    with pytest.raises(CommandError):
        run(["ip", "-n", paths.netns("c2"), "link", "show", "dev", tap_name(vm.port_id)])


def test_timings(world: World, vm_pair: tuple[Vm, Vm]) -> None:
    """Not a benchmark: a guard against a start-up that silently got slow (and a report)."""
    report = ", ".join(f"{k} {v:.2f} s" for k, v in world.timings.items())
    print(f"\nOVN lab timings: {report}")
    assert all(v < 10.0 for v in world.timings.values()), report
