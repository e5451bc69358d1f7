"""The OVSDB reader against real ovsdb-servers: an OVN Southbound and a local Open_vSwitch, each a
child process of the fixture listening on a unix socket under /run/ovn-fabric/hr/, always
stopped by pid. Rows are written as Neutron and northd write them (OVN_DATA.md), through the
database socket. Every wait polls a condition with a deadline.

The topology every test starts from (chassis: `compute-0` is ours):

    public  (provider, localnet provnet-seg, VLAN 100)   vm-local@compute-0  vm-other@compute-1
                                                         gw-lsp (patch, peer lrp-gw, FIPs)
    private (tenant)        vm-local-t@compute-0   if-lsp (patch)   vip (virtual)@compute-1
    router1                 cr-lrp-gw@network-0  lrp-gw (patch)  lrp-if (patch)
    elsewhere (tenant)      vm-elsewhere@compute-1

Seen from compute-0: its two VMs, the localnet, the cr-lrp and the virtual port (wherever they
are), their datapaths (public, private, router1) and the chassis they name.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ovn_fabric.lab.ovsdb_server import OVN_SB_SCHEMA, VSWITCH_SCHEMA, OvsdbServer
from ovn_fabric.lab.sh import run, wait_until
from ovn_fabric.ovn.reader import Reader, SslFiles
from ovn_fabric.ovn.view import OvnView

RUN_DIR = Path("/run/ovn-fabric/hr")
LOCAL, OTHER, GATEWAY = "compute-0", "compute-1", "network-0"
SEEN_FROM_LOCAL = {"provnet-seg", "vm-local", "vm-local-t", "cr-lrp-gw", "vip"}
WAIT = 10.0
RECONNECT_WAIT = 25.0          # the IDL backs off up to 8 s between attempts


def omap(values: dict[str, str]) -> list[Any]:
    return ["map", sorted(values.items())]


def ref(row_uuid: str) -> list[str]:
    return ["uuid", row_uuid]


NONE: list[Any] = ["set", []]


def mac_of(ip: str) -> str:
    """A Neutron MAC (fa:16:3e prefix) made of the last three bytes of the IPv4 address."""
    return "fa:16:3e:" + ":".join(f"{int(b):02x}" for b in ip.split(".")[1:])


@dataclass
class Cloud:
    """A Southbound and a local OVS of our own, with Neutron-shaped writers."""

    sb: OvsdbServer
    ovs: OvsdbServer
    chassis: dict[str, str] = field(default_factory=dict)         # name -> _uuid
    datapaths: dict[str, str] = field(default_factory=dict)       # name2 -> _uuid
    ports: dict[str, str] = field(default_factory=dict)           # logical_port -> _uuid
    _keys: dict[str, int] = field(default_factory=dict)

    def transact(self, *operations: dict[str, Any]) -> list[Any]:
        result: list[Any] = self.sb.transact(list(operations))
        return result

    def add_chassis(self, name: str) -> str:
        result = self.transact(
            {"op": "insert", "table": "Encap", "uuid-name": "encap",
             "row": {"type": "geneve", "ip": f"192.0.2.{len(self.chassis) + 1}",
                     "chassis_name": name}},
            {"op": "insert", "table": "Chassis",
             "row": {"name": name, "hostname": f"{name}.example.com",
                     "encaps": ["named-uuid", "encap"]}})
        self.chassis[name] = result[1]["uuid"][1]
        return self.chassis[name]

    def delete_chassis(self, name: str) -> None:
        self.transact({"op": "delete", "table": "Chassis",
                       "where": [["_uuid", "==", ref(self.chassis.pop(name))]]})

    def add_datapath(self, name: str) -> str:
        result = self.transact({"op": "insert", "table": "Datapath_Binding", "row": {
            "tunnel_key": len(self.datapaths) + 1,
            "external_ids": omap({"name": f"neutron-{name}-id", "name2": name})}})
        self.datapaths[name] = result[0]["uuid"][1]
        return self.datapaths[name]

    def add_port(self, logical_port: str, datapath: str, **row: Any) -> str:
        key = self._keys[datapath] = self._keys.get(datapath, 0) + 1
        result = self.transact({"op": "insert", "table": "Port_Binding", "row": {
            "logical_port": logical_port, "datapath": ref(self.datapaths[datapath]),
            "tunnel_key": key, **row}})
        self.ports[logical_port] = result[0]["uuid"][1]
        return self.ports[logical_port]

    def add_vm(self, logical_port: str, datapath: str, host: str | None, ip: str) -> str:
        bound = ref(self.chassis[host]) if host else NONE
        return self.add_port(
            logical_port, datapath, mac=f"{mac_of(ip)} {ip}",
            chassis=bound, requested_chassis=bound, up=host is not None,
            options=omap({"requested-chassis": f"{host}.example.com"} if host else {}),
            external_ids=omap({"name": f"{logical_port}-name", "neutron:cidrs": f"{ip}/24",
                               "neutron:device_owner": "compute:nova",
                               "neutron:host_id": f"{host}.example.com"}))

    def update_port(self, logical_port: str, **row: Any) -> None:
        self.transact({"op": "update", "table": "Port_Binding",
                       "where": [["_uuid", "==", ref(self.ports[logical_port])]], "row": row})

    def bind(self, logical_port: str, host: str | None) -> None:
        bound = ref(self.chassis[host]) if host else NONE
        self.update_port(logical_port, chassis=bound, requested_chassis=bound)

    def set_local(self, **external_ids: str) -> None:
        args = [f"external_ids:{key.replace('_', '-')}={value}"
                for key, value in external_ids.items()]
        run(["ovs-vsctl", f"--db={self.ovs.remote}", "--no-wait", "set", "Open_vSwitch", ".",
             *args])

    def build_neutron_topology(self) -> None:
        for name in (LOCAL, OTHER, GATEWAY):
            self.add_chassis(name)
        for name in ("public", "private", "router1", "elsewhere"):
            self.add_datapath(name)
        self.add_port("provnet-seg", "public", type="localnet", mac="unknown", tag=100,
                      options=omap({"network_name": "datacentre", "mcast_flood": "false"}),
                      external_ids=omap({"neutron:provnet-physical-network": "datacentre"}))
        self.add_vm("vm-local", "public", LOCAL, "172.24.4.10")
        self.add_vm("vm-other", "public", OTHER, "172.24.4.11")
        self.add_vm("vm-local-t", "private", LOCAL, "10.0.0.10")
        self.add_vm("vm-elsewhere", "elsewhere", OTHER, "10.1.0.10")
        self.add_port("cr-lrp-gw", "router1", type="chassisredirect",
                      mac="fa:16:3e:10:20:30 172.24.4.100/24", chassis=ref(self.chassis[GATEWAY]),
                      up=True, options=omap({"always-redirect": "true",
                                             "distributed-port": "lrp-gw"}))
        self.add_port("lrp-gw", "router1", type="patch", mac="fa:16:3e:10:20:30 172.24.4.100/24",
                      options=omap({"peer": "gw-lsp"}))
        self.add_port("gw-lsp", "public", type="patch", mac="router",
                      options=omap({"peer": "lrp-gw"}),
                      nat_addresses='fa:16:3e:10:20:30 172.24.4.100 '
                                    'is_chassis_resident("cr-lrp-gw")')
        self.add_port("lrp-if", "router1", type="patch", mac="fa:16:3e:10:20:31 10.0.0.1/24",
                      options=omap({"peer": "if-lsp"}))
        self.add_port("if-lsp", "private", type="patch", mac="router",
                      options=omap({"peer": "lrp-if"}))
        self.add_port("vip", "private", type="virtual", mac="fa:16:3e:00:00:99 10.0.0.50",
                      chassis=ref(self.chassis[OTHER]), virtual_parent="vm-other",
                      options=omap({"virtual-ip": "10.0.0.50", "virtual-parents": "vm-other"}))


def _servers(directory: Path, sb_name: str = "sb") -> tuple[OvsdbServer, OvsdbServer]:
    return (OvsdbServer(directory, sb_name, OVN_SB_SCHEMA),
            OvsdbServer(directory, "ovs", VSWITCH_SCHEMA))


@pytest.fixture
def directory() -> Iterator[Path]:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="t", dir=RUN_DIR))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def bare_cloud(directory: Path) -> Iterator[Cloud]:
    """Both servers running, the local OVS naming us and the Southbound; no SB rows."""
    sb, ovs = _servers(directory)
    cloud = Cloud(sb=sb, ovs=ovs)
    try:
        sb.start()
        ovs.start()
        run(["ovs-vsctl", f"--db={ovs.remote}", "--no-wait", "init"])
        cloud.set_local(system_id=LOCAL, hostname=f"{LOCAL}.example.com",
                        ovn_remote=sb.remote, ovn_bridge_mappings="datacentre:br-ex")
        yield cloud
    finally:
        sb.stop()
        ovs.stop()


@pytest.fixture
def cloud(bare_cloud: Cloud) -> Cloud:
    bare_cloud.build_neutron_topology()
    return bare_cloud


class Changes:
    """An on_change callback that counts (and only counts, as the agent's marks dirty)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def __call__(self) -> None:
        with self._lock:
            self.count += 1


@pytest.fixture
def changes() -> Changes:
    return Changes()


@pytest.fixture
def reader(cloud: Cloud, changes: Changes) -> Iterator[Reader]:
    with Reader(ovs_socket=cloud.ovs.socket, on_change=changes, warn_after=0.2) as started:
        wait_until(lambda: started.synced, timeout=WAIT, what="the reader to sync")
        yield started


def ports(view: OvnView) -> set[str]:
    return {binding.logical_port for binding in view.port_bindings}


def synced_ports(reader: Reader) -> set[str] | None:
    view = reader.synced_snapshot()
    return ports(view) if view is not None else None


def wait_ports(reader: Reader, expected: set[str], what: str) -> OvnView:
    wait_until(lambda: synced_ports(reader) == expected, timeout=WAIT, what=what)
    view = reader.synced_snapshot()
    assert view is not None
    return view


# --- what is received ---------------------------------------------------------------------------


def test_view_holds_this_chassis_ports_and_the_global_kinds_only(
        cloud: Cloud, reader: Reader) -> None:
    view = reader.synced_snapshot()
    assert view is not None
    assert ports(view) == SEEN_FROM_LOCAL
    assert {d.name for d in view.datapaths} == {"public", "private", "router1"}
    assert {c.name for c in view.chassis} == {LOCAL, OTHER, GATEWAY}
    # The condition works on the server: the IDL replicated nothing else.
    assert dict(reader.status().rows) == {"Chassis": 3, "Datapath_Binding": 3,
                                          "Port_Binding": 5}
    assert view.problems == ()


def test_rows_are_read_as_neutron_and_northd_wrote_them(cloud: Cloud, reader: Reader) -> None:
    view = reader.synced_snapshot()
    assert view is not None
    by_port = {binding.logical_port: binding for binding in view.port_bindings}
    vm = by_port["vm-local"]
    assert (vm.type, vm.chassis, vm.requested_chassis, vm.up) == ("", LOCAL, LOCAL, True)
    assert vm.mac == ("fa:16:3e:18:04:0a 172.24.4.10",)
    assert vm.datapath == cloud.datapaths["public"]
    assert vm.options["requested-chassis"] == f"{LOCAL}.example.com"
    assert vm.external_ids["neutron:cidrs"] == "172.24.4.10/24"
    localnet = by_port["provnet-seg"]
    assert (localnet.type, localnet.tag, localnet.chassis) == ("localnet", 100, None)
    assert localnet.options["network_name"] == "datacentre"
    gateway = by_port["cr-lrp-gw"]
    assert (gateway.type, gateway.chassis) == ("chassisredirect", GATEWAY)
    vip = by_port["vip"]
    assert (vip.type, vip.chassis, vip.virtual_parent) == ("virtual", OTHER, "vm-other")
    assert view.local_chassis == LOCAL
    assert dict(view.bridge_mappings) == {"datacentre": "br-ex"}
    assert view.integration_bridge == "br-int"
    assert {c.name: c.hostname for c in view.chassis}[LOCAL] == f"{LOCAL}.example.com"


def test_port_bound_here_appears_and_port_bound_away_disappears(
        cloud: Cloud, reader: Reader) -> None:
    cloud.bind("vm-other", LOCAL)
    wait_ports(reader, SEEN_FROM_LOCAL | {"vm-other"}, "vm-other bound here")
    cloud.bind("vm-local-t", OTHER)
    wait_ports(reader, SEEN_FROM_LOCAL - {"vm-local-t"} | {"vm-other"}, "vm-local-t bound away")
    assert reader.status().rows["Port_Binding"] == 5


def test_a_datapath_comes_with_its_first_port_here_and_goes_with_the_last(
        cloud: Cloud, reader: Reader) -> None:
    cloud.bind("vm-elsewhere", LOCAL)
    view = wait_ports(reader, SEEN_FROM_LOCAL | {"vm-elsewhere"}, "vm-elsewhere bound here")
    assert "elsewhere" in {d.name for d in view.datapaths}
    cloud.bind("vm-elsewhere", OTHER)
    view = wait_ports(reader, SEEN_FROM_LOCAL, "vm-elsewhere bound away")
    assert {d.name for d in view.datapaths} == {"public", "private", "router1"}
    assert reader.status().rows["Datapath_Binding"] == 3


def test_live_migration_target_and_requested_ports_are_seen(
        cloud: Cloud, reader: Reader) -> None:
    """additional_chassis (migration target) and requested_chassis (not claimed yet)."""
    cloud.update_port("vm-elsewhere", additional_chassis=ref(cloud.chassis[LOCAL]))
    cloud.add_port("vm-new", "private", mac="fa:16:3e:00:00:77 10.0.0.77",
                   requested_chassis=ref(cloud.chassis[LOCAL]), up=False)
    view = wait_ports(reader, SEEN_FROM_LOCAL | {"vm-elsewhere", "vm-new"},
                      "the migrating and the requested port")
    by_port = {binding.logical_port: binding for binding in view.port_bindings}
    assert (by_port["vm-elsewhere"].chassis, by_port["vm-elsewhere"].additional_chassis) == (
        OTHER, (LOCAL,))
    assert (by_port["vm-new"].chassis, by_port["vm-new"].requested_chassis,
            by_port["vm-new"].up) == (None, LOCAL, False)


def test_gateway_active_here_brings_its_provider_patch_port_with_the_fips(
        cloud: Cloud, reader: Reader) -> None:
    cloud.update_port("cr-lrp-gw", chassis=ref(cloud.chassis[LOCAL]))
    view = wait_ports(reader, SEEN_FROM_LOCAL | {"gw-lsp"}, "the gateway's patch port")
    by_port = {binding.logical_port: binding for binding in view.port_bindings}
    assert by_port["gw-lsp"].nat_addresses == (
        'fa:16:3e:10:20:30 172.24.4.100 is_chassis_resident("cr-lrp-gw")',)
    assert GATEWAY not in {c.name for c in view.chassis}      # no port names it any more
    cloud.update_port("cr-lrp-gw", chassis=ref(cloud.chassis[GATEWAY]))
    wait_ports(reader, SEEN_FROM_LOCAL, "the gateway moved back")


def test_every_synced_view_is_complete(cloud: Cloud) -> None:
    """Whenever synced, every reference in the view resolves: the datapath of every port and
    every chassis it names are there (the conditions reached their fixed point)."""
    incomplete: list[str] = []
    views: list[OvnView] = []

    def check() -> None:
        view = watched.synced_snapshot()
        if view is None:
            return
        views.append(view)
        datapaths = {d.uuid for d in view.datapaths}
        incomplete.extend(f"{b.logical_port} -> {b.datapath}" for b in view.port_bindings
                          if b.datapath not in datapaths)
        incomplete.extend(f"{b.logical_port} unresolved chassis" for b in view.port_bindings
                          if b.type in ("", "chassisredirect") and b.chassis is None
                          and b.logical_port != "provnet-seg")

    watched = Reader(ovs_socket=cloud.ovs.socket, on_change=check)
    with watched:
        wait_until(lambda: watched.synced, timeout=WAIT, what="sync")
        cloud.bind("vm-elsewhere", LOCAL)
        cloud.update_port("cr-lrp-gw", chassis=ref(cloud.add_chassis("network-1")))
        wait_until(lambda: (v := watched.synced_snapshot()) is not None
                   and "vm-elsewhere" in ports(v)
                   and "network-1" in {c.name for c in v.chassis},
                   timeout=WAIT, what="the changes")
    assert views
    assert incomplete == []


# --- our chassis: late, deleted, re-created ---------------------------------------------------


def test_chassis_registered_after_the_reader_started_is_picked_up(
        bare_cloud: Cloud, changes: Changes, caplog: pytest.LogCaptureFixture) -> None:
    cloud = bare_cloud
    cloud.add_chassis(OTHER)
    cloud.add_datapath("public")
    cloud.add_port("provnet-seg", "public", type="localnet", mac="unknown",
                   options=omap({"network_name": "datacentre"}))
    cloud.add_vm("vm-other", "public", OTHER, "172.24.4.11")
    caplog.set_level(logging.INFO, logger="ovn_fabric.ovn.reader")
    with Reader(ovs_socket=cloud.ovs.socket, on_change=changes) as reader:
        # Complete without our chassis: nothing is bound here.
        wait_ports(reader, {"provnet-seg"}, "the localnet alone")
        assert reader.status().local_chassis_uuid is None
        assert f"no Chassis named {LOCAL!r}" in caplog.text
        first = cloud.add_chassis(LOCAL)                      # ovn-controller registers
        cloud.add_vm("vm-local", "public", LOCAL, "172.24.4.10")
        wait_ports(reader, {"provnet-seg", "vm-local"}, "the port of the new chassis")
        assert reader.status().local_chassis_uuid == first

        cloud.delete_chassis(LOCAL)                           # weak reference: unbound
        wait_ports(reader, {"provnet-seg"}, "the chassis deleted")
        second = cloud.add_chassis(LOCAL)
        cloud.bind("vm-local", LOCAL)
        view = wait_ports(reader, {"provnet-seg", "vm-local"}, "the re-created chassis")
        assert reader.status().local_chassis_uuid == second != first
        assert {b.logical_port: b.chassis for b in view.port_bindings}["vm-local"] == LOCAL


# --- the local OVS ------------------------------------------------------------------------------


def test_local_facts_are_live(cloud: Cloud, reader: Reader) -> None:
    cloud.set_local(ovn_bridge_mappings="datacentre:br-ex,physnet1:br-vlan",
                    ovn_bridge="br-int2")
    wait_until(lambda: (v := reader.synced_snapshot()) is not None
               and dict(v.bridge_mappings) == {"datacentre": "br-ex", "physnet1": "br-vlan"}
               and v.integration_bridge == "br-int2",
               timeout=WAIT, what="the new mappings and integration bridge")
    local = reader.status().local
    assert local is not None
    assert local.hostname == f"{LOCAL}.example.com"


def test_a_new_system_id_moves_the_view_to_that_chassis(cloud: Cloud, reader: Reader) -> None:
    cloud.set_local(system_id=OTHER)
    view = wait_ports(reader, {"provnet-seg", "vm-other", "vm-elsewhere", "cr-lrp-gw", "vip"},
                      "the ports of compute-1")
    assert view.local_chassis == OTHER
    assert reader.status().rows["Port_Binding"] == 5


def test_a_new_ovn_remote_moves_the_reader_to_that_southbound(
        cloud: Cloud, reader: Reader, directory: Path) -> None:
    other_sb, _ = _servers(directory, sb_name="sb2")
    try:
        other_sb.start()
        other = Cloud(sb=other_sb, ovs=cloud.ovs)
        other.add_chassis(LOCAL)
        other.add_datapath("public")
        other.add_vm("vm-in-sb2", "public", LOCAL, "172.24.4.50")
        cloud.set_local(ovn_remote=other_sb.remote)
        wait_ports(reader, {"vm-in-sb2"}, "the rows of the second Southbound")
        assert reader.status().sb_remote == other_sb.remote
    finally:
        other_sb.stop()


def test_settings_override_the_local_ovs(cloud: Cloud, changes: Changes) -> None:
    """[node] chassis/hostname and [ovn] sb_remote win over what the local OVS says."""
    cloud.set_local(ovn_remote="unix:/nonexistent/sb.sock")
    with Reader(ovs_socket=cloud.ovs.socket, on_change=changes, sb_remote=cloud.sb.remote,
                chassis=OTHER, hostname="compute-1.example.com") as reader:
        view = wait_ports(reader, {"provnet-seg", "vm-other", "vm-elsewhere", "cr-lrp-gw",
                                   "vip"}, "the ports of the overriding chassis")
        assert view.local_chassis == OTHER
        status = reader.status()
        assert status.local is not None
        assert (status.local.system_id, status.local.hostname, status.sb_remote) == (
            OTHER, "compute-1.example.com", cloud.sb.remote)


def _free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.filterwarnings("ignore:ssl.PROTOCOL_TLS is deprecated:DeprecationWarning")
def test_southbound_over_ssl(bare_cloud: Cloud, directory: Path, changes: Changes) -> None:
    pki = directory / "pki"
    for argv in (["init", "--force"], ["req+sign", "srv", "controller"],
                 ["req+sign", "cli", "switch"]):
        subprocess.run(["ovs-pki", f"--dir={pki}", f"--log={directory / 'pki.log'}", *argv],
                       cwd=directory, check=True, capture_output=True)
    port = _free_tcp_port()
    ssl_sb = OvsdbServer(directory, "sbssl", OVN_SB_SCHEMA, extra_args=[
        f"--remote=pssl:{port}:127.0.0.1", f"--private-key={directory / 'srv-privkey.pem'}",
        f"--certificate={directory / 'srv-cert.pem'}",
        f"--ca-cert={pki / 'switchca' / 'cacert.pem'}"])
    try:
        ssl_sb.start()
        Cloud(sb=ssl_sb, ovs=bare_cloud.ovs).build_neutron_topology()
        bare_cloud.set_local(ovn_remote=f"ssl:127.0.0.1:{port}")
        files = SslFiles(private_key=directory / "cli-privkey.pem",
                         certificate=directory / "cli-cert.pem",
                         ca_cert=pki / "controllerca" / "cacert.pem")
        with Reader(ovs_socket=bare_cloud.ovs.socket, on_change=changes, ssl=files) as reader:
            wait_ports(reader, SEEN_FROM_LOCAL, "the rows over SSL")
    finally:
        ssl_sb.stop()


# --- synced, connections, failures -----------------------------------------------------------


def test_southbound_unreachable_at_start_is_logged_then_synced_once_it_answers(
        bare_cloud: Cloud, changes: Changes, caplog: pytest.LogCaptureFixture) -> None:
    cloud = bare_cloud
    cloud.sb.stop()
    caplog.set_level(logging.INFO, logger="ovn_fabric.ovn.reader")
    reader = Reader(ovs_socket=cloud.ovs.socket, on_change=changes, warn_after=0.2)
    assert not reader.synced
    with reader:
        wait_until(lambda: "not reachable" in caplog.text, timeout=WAIT,
                   what="the unreachable warning")
        assert cloud.sb.remote in caplog.text
        status = reader.status()
        assert (status.running, status.ovs_connected, status.sb_connected, status.synced) == (
            True, True, False, False)
        assert reader.synced_snapshot() is None
        assert ports(reader.snapshot()) == set()              # readable, just empty
        cloud.sb.start()
        cloud.build_neutron_topology()
        wait_until(lambda: synced_ports(reader) == SEEN_FROM_LOCAL, timeout=RECONNECT_WAIT,
                   what="sync once the Southbound answers")


def test_southbound_killed_and_restarted_resyncs_with_what_changed_meanwhile(
        cloud: Cloud, reader: Reader, changes: Changes) -> None:
    before = reader.snapshot()
    calls = changes.count
    cloud.sb.kill()
    wait_until(lambda: not reader.synced, timeout=WAIT, what="synced to drop")
    assert changes.count > calls                              # the loop was told
    assert reader.snapshot() == before                        # the last rows are kept
    # While it is down: vm-other is bound here (written to the file, as a restart would find).
    run(["ovsdb-tool", "transact", str(cloud.sb.db), json.dumps([
        "OVN_Southbound", {"op": "update", "table": "Port_Binding",
                           "where": [["_uuid", "==", ref(cloud.ports["vm-other"])]],
                           "row": {"chassis": ref(cloud.chassis[LOCAL])}}])])
    cloud.sb.start()
    wait_until(lambda: synced_ports(reader) == SEEN_FROM_LOCAL | {"vm-other"},
               timeout=RECONNECT_WAIT, what="the resync")
    assert reader.status().rows["Port_Binding"] == 6


def test_local_ovs_restart_unsyncs_then_resyncs(cloud: Cloud, reader: Reader) -> None:
    cloud.ovs.kill()
    wait_until(lambda: not reader.synced, timeout=WAIT, what="synced to drop")
    cloud.ovs.start()
    wait_until(lambda: synced_ports(reader) == SEEN_FROM_LOCAL, timeout=RECONNECT_WAIT,
               what="the resync")


def test_missing_system_id_never_syncs_and_says_why(
        bare_cloud: Cloud, changes: Changes, caplog: pytest.LogCaptureFixture) -> None:
    run(["ovs-vsctl", f"--db={bare_cloud.ovs.remote}", "--no-wait", "remove", "Open_vSwitch",
         ".", "external_ids", "system-id"])
    caplog.set_level(logging.WARNING, logger="ovn_fabric.ovn.reader")
    with Reader(ovs_socket=bare_cloud.ovs.socket, on_change=changes) as reader:
        wait_until(lambda: "no external_ids:system-id" in caplog.text, timeout=WAIT,
                   what="the warning")
        assert not reader.synced
        bare_cloud.set_local(system_id=LOCAL)
        wait_until(lambda: reader.synced, timeout=WAIT, what="sync once it is set")


def test_close_is_prompt_and_idempotent_even_when_nothing_answers(directory: Path) -> None:
    reader = Reader(ovs_socket=directory / "nothing.sock", on_change=lambda: None).start()
    reader.close()
    reader.close()
    assert not reader.status().running
    assert not reader.synced


# --- bad data -----------------------------------------------------------------------------------


def test_garbage_rows_become_problems_and_the_rest_is_read(
        cloud: Cloud, reader: Reader) -> None:
    cloud.add_port("", "public", chassis=ref(cloud.chassis[LOCAL]), mac="nonsense")
    cloud.add_port("vm-bad-mac", "public", chassis=ref(cloud.chassis[LOCAL]),
                   mac="zz:16:3e 300.1.1.1", external_ids=omap({"": ""}))
    nameless = cloud.add_chassis("")
    cloud.add_port("vip-2", "private", type="virtual", chassis=ref(nameless))
    cloud.set_local(ovn_bridge_mappings="datacentre")
    view = wait_ports(reader, SEEN_FROM_LOCAL | {"vm-bad-mac", "vip-2"}, "the garbage read")
    problems = {(p.table, p.column) for p in view.problems}
    assert ("Port_Binding", "logical_port") in problems
    assert ("Chassis", "name") in problems
    assert ("Open_vSwitch", "external_ids:ovn-bridge-mappings") in problems
    assert reader.synced
    # and when the data is fixed, so is the view
    cloud.transact({"op": "delete", "table": "Port_Binding",
                    "where": [["logical_port", "==", ""]]})
    cloud.set_local(ovn_bridge_mappings="datacentre:br-ex")
    wait_until(lambda: (v := reader.synced_snapshot()) is not None
               and ("Port_Binding", "logical_port") not in {(p.table, p.column)
                                                            for p in v.problems}
               and dict(v.bridge_mappings) == {"datacentre": "br-ex"},
               timeout=WAIT, what="the fixed view")


# --- conditions off -----------------------------------------------------------------------------


def test_monitor_all_receives_every_row(cloud: Cloud, changes: Changes) -> None:
    with Reader(ovs_socket=cloud.ovs.socket, on_change=changes, monitor_all=True) as reader:
        wait_until(lambda: reader.synced, timeout=WAIT, what="sync")
        view = reader.synced_snapshot()
        assert view is not None
        assert ports(view) == set(cloud.ports)
        assert dict(reader.status().rows) == {"Chassis": 3, "Datapath_Binding": 4,
                                              "Port_Binding": len(cloud.ports)}
