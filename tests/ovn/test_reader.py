"""The OVSDB reader against real ovsdb-servers: an OVN Southbound and a local Open_vSwitch, each a
child process of the fixture listening on a unix socket under /run/ovn-fabric/hr/ (or
$OVN_FABRIC_TEST_RUN_DIR), always stopped by pid. Rows are written as Neutron and northd 23.03
write them (OVN_DATA.md), through the database socket; the Southbound's schema is OVN 23.03's,
or a copy edited into OVN 24.03's or 20.12's shape. Every wait polls a condition with a deadline.

The topology every test starts from (chassis: `compute-0` is ours):

    public  (provider, localnet provnet-seg, VLAN 100)   vm-local@compute-0  vm-other@compute-1
                    gw-lsp (patch, peer lrp-gw; nat_addresses: the router's address, resident
                    on cr-lrp-gw, and a distributed floating IP of vm-local-t, resident on it)
    private (tenant)   vm-local-t@compute-0  vm-other-t@compute-1  vip (virtual)@compute-1
                    if-lsp (patch, peer lrp-if; Neutron's address scope)
    router1            cr-lrp-gw@network-0  lrp-gw (patch, peer gw-lsp)  lrp-if (patch, peer if-lsp)
    elsewhere (tenant) vm-elsewhere@compute-1
    Load_Balancers (datapath_group -> Logical_DP_Group): lb-private on private, lb-elsewhere on
    elsewhere, lb-public on public; and a group of every switch held by a Logical_Flow.

Seen from compute-0: its two VMs; the localnet, the cr-lrp, the virtual port and the four patch
ports, wherever they are; their datapaths (public, private, router1) and the chassis they name.
No load balancer: no gateway is active here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from ipaddress import ip_address, ip_network
from pathlib import Path
from typing import Any

import pytest

from ovn_fabric import config
from ovn_fabric.lab.ovsdb_server import OVN_SB_SCHEMA, VSWITCH_SCHEMA, OvsdbServer
from ovn_fabric.lab.sh import run, wait_until
from ovn_fabric.model import HostRoute, Neighbour
from ovn_fabric.ovn._ovsdb import _keep_uuid
from ovn_fabric.ovn.reader import Reader, SslFiles, _Rows
from ovn_fabric.ovn.view import OvnView
from ovn_fabric.plan import plan

RUN_DIR = Path(os.environ.get("OVN_FABRIC_TEST_RUN_DIR", "/run/ovn-fabric/hr"))
LOCAL, OTHER, GATEWAY = "compute-0", "compute-1", "network-0"
PATCH_PORTS = {"lrp-gw", "gw-lsp", "lrp-if", "if-lsp"}
EVERYWHERE = {"provnet-seg", "cr-lrp-gw", "vip", *PATCH_PORTS}
SEEN_FROM_LOCAL = EVERYWHERE | {"vm-local", "vm-local-t"}
SEEN_FROM_OTHER = EVERYWHERE | {"vm-other", "vm-other-t", "vm-elsewhere"}
GW_MAC, FIP_MAC = "fa:16:3e:10:20:30", "fa:16:3e:99:99:99"
ROUTER_NAT = f'{GW_MAC} 172.24.4.100 is_chassis_resident("cr-lrp-gw")'
FIP_NAT = f'{FIP_MAC} 172.24.4.200 is_chassis_resident("vm-local-t")'
SCOPE4 = "5c1f0a8e-3b2d-4c6f-9e7a-0d1c2b3a4f50"
SETTINGS = config.parse(f"""
[bridges.br-ex]
gateways = ["172.24.4.1/24"]

[exposure]
allow = ["172.24.4.0/24", "10.0.0.0/16"]

[tenant_networks]
enabled = true
address_scopes = ["{SCOPE4}"]
""")
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
    _columns: dict[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        tables = json.loads(self.sb.schema.read_text())["tables"]
        self._columns = {table: set(schema["columns"]) for table, schema in tables.items()}

    def has(self, table: str, column: str) -> bool:
        return column in self._columns.get(table, set())

    def _known(self, table: str, row: dict[str, Any]) -> dict[str, Any]:
        """The columns of `row` that this Southbound's schema has (an older OVN lacks some)."""
        return {column: value for column, value in row.items() if self.has(table, column)}

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
        row = {"logical_port": logical_port, "datapath": ref(self.datapaths[datapath]),
               "tunnel_key": key, **row}
        result = self.transact({"op": "insert", "table": "Port_Binding",
                                "row": self._known("Port_Binding", row)})
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
                       "where": [["_uuid", "==", ref(self.ports[logical_port])]],
                       "row": self._known("Port_Binding", row)})

    def add_load_balancer(self, name: str, vips: dict[str, str], *, switches: list[str],
                          routers: list[str] | None = None) -> None:
        """An Octavia load balancer as northd writes it for this schema's OVN: its switches in
        `ls_datapath_group` and routers in `lr_datapath_group` (24.03), its switches in
        `datapath_group` (22.09-23.09), or in `datapaths` (20.12)."""
        if self.has("Load_Balancer", "ls_datapath_group"):
            wanted = {"ls_datapath_group": switches, "lr_datapath_group": routers or []}
        elif self.has("Load_Balancer", "datapath_group"):
            wanted = {"datapath_group": switches}
        else:
            wanted = {"datapaths": switches}
        groups: list[dict[str, Any]] = []
        row: dict[str, Any] = {"name": name, "vips": omap(vips), "protocol": "tcp",
                               "external_ids": omap({"lb_id": f"nb-{name}"})}
        for column, names in wanted.items():
            datapaths = ["set", [ref(self.datapaths[n]) for n in names]]
            if column == "datapaths":
                row[column] = datapaths
            elif names:
                groups.append({"op": "insert", "table": "Logical_DP_Group",
                               "uuid-name": f"group_{len(groups)}",
                               "row": {"datapaths": datapaths}})
                row[column] = ["named-uuid", f"group_{len(groups) - 1}"]
        self.transact(*groups, {"op": "insert", "table": "Load_Balancer", "row": row})

    def add_flow_group(self, names: list[str]) -> None:
        """A datapath group northd shares between logical flows (held by one flow)."""
        self.transact(
            {"op": "insert", "table": "Logical_DP_Group", "uuid-name": "group",
             "row": {"datapaths": ["set", [ref(self.datapaths[n]) for n in names]]}},
            {"op": "insert", "table": "Logical_Flow", "row": {
                "logical_dp_group": ["named-uuid", "group"], "pipeline": "ingress",
                "table_id": 0, "priority": 50, "match": "1", "actions": "next;"}})

    def move_gateway(self, host: str) -> None:
        self.update_port("cr-lrp-gw", chassis=ref(self.chassis[host]))

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
        self.add_vm("vm-other-t", "private", OTHER, "10.0.0.11")
        self.add_vm("vm-elsewhere", "elsewhere", OTHER, "10.1.0.10")
        self.add_port("cr-lrp-gw", "router1", type="chassisredirect",
                      mac=f"{GW_MAC} 172.24.4.100/24", chassis=ref(self.chassis[GATEWAY]),
                      up=True, options=omap({"distributed-port": "lrp-gw"}))
        self.add_port("lrp-gw", "router1", type="patch", mac=f"{GW_MAC} 172.24.4.100/24",
                      options=omap({"peer": "gw-lsp", "chassis-redirect-port": "cr-lrp-gw"}))
        self.add_port("gw-lsp", "public", type="patch", mac="router",
                      options=omap({"peer": "lrp-gw"}),
                      nat_addresses=["set", [ROUTER_NAT, FIP_NAT]],
                      external_ids=omap({"neutron:device_owner": "network:router_gateway",
                                         "neutron:cidrs": "172.24.4.100/24"}))
        self.add_port("lrp-if", "router1", type="patch", mac="fa:16:3e:10:20:31 10.0.0.1/24",
                      options=omap({"peer": "if-lsp"}))
        self.add_port("if-lsp", "private", type="patch", mac="router",
                      options=omap({"peer": "lrp-if"}),
                      external_ids=omap({"neutron:device_owner": "network:router_interface",
                                         "neutron:cidrs": "10.0.0.1/24",
                                         "neutron:subnet_pool_addr_scope4": SCOPE4,
                                         "neutron:subnet_pool_addr_scope6": ""}))
        self.add_port("vip", "private", type="virtual", mac="fa:16:3e:00:00:99 10.0.0.50",
                      chassis=ref(self.chassis[OTHER]), virtual_parent="vm-other",
                      options=omap({"virtual-ip": "10.0.0.50", "virtual-parents": "vm-other"}))
        members = "10.0.0.10:8080,10.0.0.11:8080"
        self.add_load_balancer("lb-private", {"10.0.0.40:80": members,
                                              "172.24.4.201:80": members},
                               switches=["private"], routers=["router1"])
        self.add_load_balancer("lb-elsewhere", {"10.1.0.40:80": "10.1.0.10:8080"},
                               switches=["elsewhere"])
        self.add_load_balancer("lb-public", {"172.24.4.202:80": "172.24.4.11:8080"},
                               switches=["public"])
        self.add_flow_group(["public", "private", "elsewhere"])


def _servers(directory: Path, sb_name: str = "sb",
             sb_schema: Path = OVN_SB_SCHEMA) -> tuple[OvsdbServer, OvsdbServer]:
    return (OvsdbServer(directory, sb_name, sb_schema),
            OvsdbServer(directory, "ovs", VSWITCH_SCHEMA))


def schema_of(ovn: str, directory: Path) -> Path:
    """The Southbound schema of OVN `ovn`, made from the 23.03 one installed here: 24.03 adds
    Load_Balancer ls_/lr_datapath_group; 20.12 lacks Load_Balancer.datapath_group (22.09) and
    Port_Binding up (21.03), requested_chassis (21.12) and additional_chassis (22.06)."""
    if ovn == "23.03":
        return OVN_SB_SCHEMA
    schema = json.loads(OVN_SB_SCHEMA.read_text())
    tables = schema["tables"]
    if ovn == "24.03":
        group = {"type": {"key": {"type": "uuid", "refTable": "Logical_DP_Group"},
                          "min": 0, "max": 1}}
        tables["Load_Balancer"]["columns"].update(ls_datapath_group=group,
                                                  lr_datapath_group=group)
    elif ovn == "20.12":
        del tables["Load_Balancer"]["columns"]["datapath_group"]
        for column in ("up", "requested_chassis", "additional_chassis"):
            del tables["Port_Binding"]["columns"][column]
    else:
        raise ValueError(ovn)
    path = directory / f"ovn-sb-{ovn}.ovsschema"
    path.write_text(json.dumps(schema))
    return path


@pytest.fixture
def directory() -> Iterator[Path]:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="t", dir=RUN_DIR))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        with contextlib.suppress(OSError):   # the shared parent too, once nothing else is in it
            RUN_DIR.rmdir()


@pytest.fixture
def ovn() -> str:
    """The OVN release whose Southbound schema the servers run (parametrized by some tests)."""
    return "23.03"


@pytest.fixture
def bare_cloud(directory: Path, ovn: str) -> Iterator[Cloud]:
    """Both servers running, the local OVS naming us and the Southbound; no SB rows."""
    sb, ovs = _servers(directory, sb_schema=schema_of(ovn, directory))
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
    # The condition works on the server: the IDL replicated nothing else (not vm-other-t on
    # the tenant switch, no load balancer: no gateway is active here).
    assert dict(reader.status().rows) == {"Chassis": 3, "Datapath_Binding": 3,
                                          "Port_Binding": len(SEEN_FROM_LOCAL),
                                          "Load_Balancer": 0, "Logical_DP_Group": 0}
    assert view.load_balancers == ()
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
    assert reader.status().rows["Port_Binding"] == len(SEEN_FROM_LOCAL)


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


def test_router_ports_their_peers_and_a_distributed_fip_are_seen_wherever_the_gateway_is(
        cloud: Cloud, reader: Reader) -> None:
    """router1's gateway is active on network-0, not here. Still seen: the gateway's patch port
    on the provider network, whose nat_addresses hold the distributed floating IP of a VM bound
    here; the router's patch ports and their peers on the switches (the router-interface port
    carries the subnet's address scope). Not received: the other chassis' VM on the tenant
    switch, and every load balancer."""
    view = reader.synced_snapshot()
    assert view is not None
    by_port = {binding.logical_port: binding for binding in view.port_bindings}
    assert by_port["cr-lrp-gw"].chassis == GATEWAY
    gateway_port = by_port["gw-lsp"]
    assert (gateway_port.type, gateway_port.datapath, gateway_port.options["peer"]) == (
        "patch", cloud.datapaths["public"], "lrp-gw")
    assert gateway_port.nat_addresses == tuple(sorted((ROUTER_NAT, FIP_NAT)))
    assert by_port["lrp-gw"].options["peer"] == "gw-lsp"
    assert (by_port["lrp-if"].datapath, by_port["lrp-if"].mac) == (
        cloud.datapaths["router1"], ("fa:16:3e:10:20:31 10.0.0.1/24",))
    interface = by_port["if-lsp"]
    assert (interface.datapath, interface.external_ids["neutron:subnet_pool_addr_scope4"]) == (
        cloud.datapaths["private"], SCOPE4)
    rows = reader.status().rows
    assert "vm-other-t" not in by_port
    assert (rows["Port_Binding"], rows["Load_Balancer"], rows["Logical_DP_Group"]) == (
        len(SEEN_FROM_LOCAL), 0, 0)
    # What the planner makes of it: the VM's floating IP from here; not the router's address,
    # nor the tenant subnet (both are the active gateway's).
    state = plan(view, SETTINGS)
    assert {route.dst for route in state.routes} == {
        ip_network("172.24.4.10/32"), ip_network("172.24.4.200/32")}
    assert Neighbour(ip_address("172.24.4.200"), FIP_MAC, "br-ex") in state.neighbours


def test_a_gateway_active_here_brings_the_load_balancers_of_its_tenant_switches(
        cloud: Cloud, reader: Reader) -> None:
    """The balancers applied to a switch behind a gateway active here (through its 23.03
    datapath_group), with that group resolved into datapaths; not those of a switch behind no
    gateway here, nor of the provider network. They go when the gateway does."""
    cloud.move_gateway(LOCAL)
    wait_until(lambda: (v := reader.synced_snapshot()) is not None and v.load_balancers != (),
               timeout=WAIT, what="the load balancer of the gateway's tenant switch")
    view = reader.synced_snapshot()
    assert view is not None
    (balancer,) = view.load_balancers
    assert (balancer.name, balancer.datapaths) == ("lb-private", (cloud.datapaths["private"],))
    assert dict(balancer.vips) == {"10.0.0.40:80": "10.0.0.10:8080,10.0.0.11:8080",
                                   "172.24.4.201:80": "10.0.0.10:8080,10.0.0.11:8080"}
    assert dict(balancer.external_ids) == {"lb_id": "nb-lb-private"}
    # Received: that balancer, its group and the flows' group of every switch; nothing else.
    rows = reader.status().rows
    assert (rows["Load_Balancer"], rows["Logical_DP_Group"]) == (1, 2)
    assert GATEWAY not in {c.name for c in view.chassis}      # no port names it any more
    # The planner: the gateway's address, the provider-side VIP, the scoped tenant subnet via
    # the gateway, and the floating IPs.
    state = plan(view, SETTINGS)
    assert state.routes == frozenset({
        HostRoute(ip_network("172.24.4.10/32"), "br-ex"),
        HostRoute(ip_network("172.24.4.100/32"), "br-ex"),
        HostRoute(ip_network("172.24.4.200/32"), "br-ex"),
        HostRoute(ip_network("172.24.4.201/32"), "br-ex"),
        HostRoute(ip_network("10.0.0.0/24"), "br-ex", via=ip_address("172.24.4.100")),
    })
    assert Neighbour(ip_address("172.24.4.201"), GW_MAC, "br-ex") in state.neighbours

    cloud.move_gateway(GATEWAY)
    wait_until(lambda: (v := reader.synced_snapshot()) is not None and v.load_balancers == ()
               and reader.status().rows["Logical_DP_Group"] == 0,
               timeout=WAIT, what="the load balancer gone with the gateway")
    assert reader.status().rows["Load_Balancer"] == 0


@pytest.mark.parametrize("ovn", ["24.03", "20.12"])
def test_load_balancers_with_the_schemas_of_other_ovn_releases(
        cloud: Cloud, changes: Changes, ovn: str, caplog: pytest.LogCaptureFixture) -> None:
    """24.03: balancers name routers too (lr_datapath_group), so a router-only one (Neutron
    port forwarding) is received. 20.12: a balancer names its switches in `datapaths`, and
    Port_Binding lacks up, requested_chassis and additional_chassis: read without them, and
    without a warning."""
    cloud.move_gateway(LOCAL)
    if ovn == "24.03":
        cloud.add_load_balancer("pf-floatingip-x-tcp", {"172.24.4.203:2222": "10.0.0.10:22"},
                                switches=[], routers=["router1"])
    caplog.set_level(logging.WARNING, logger="ovn_fabric.ovn.reader")
    with Reader(ovs_socket=cloud.ovs.socket, on_change=changes) as reader:
        wait_until(lambda: (v := reader.synced_snapshot()) is not None
                   and "lb-private" in {b.name for b in v.load_balancers},
                   timeout=WAIT, what="the load balancers")
        view = reader.synced_snapshot()
        assert view is not None
        private, router = cloud.datapaths["private"], cloud.datapaths["router1"]
        got = {balancer.name: balancer.datapaths for balancer in view.load_balancers}
        status = reader.status()
    if ovn == "24.03":
        assert got == {"lb-private": tuple(sorted((private, router))),
                       "pf-floatingip-x-tcp": (router,)}
        assert status.missing_columns == ()
    else:
        assert got == {"lb-private": (private,)}
        assert set(status.missing_columns) == {
            "Port_Binding.up", "Port_Binding.requested_chassis",
            "Port_Binding.additional_chassis", "Load_Balancer.datapath_group",
            "Load_Balancer.ls_datapath_group", "Load_Balancer.lr_datapath_group"}
        assert "lacks" not in caplog.text
    assert ports(view) == SEEN_FROM_LOCAL
    assert status.rows["Load_Balancer"] == len(got)


def _gateway_on(reader: Reader, host: str, balancers: int) -> bool:
    view = reader.synced_snapshot()
    return (view is not None and len(view.load_balancers) == balancers
            and {b.logical_port: b.chassis for b in view.port_bindings}["cr-lrp-gw"] == host)


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
        by_port = {b.logical_port: b for b in view.port_bindings}
        incomplete.extend(f"{b.logical_port} -> {b.datapath}" for b in view.port_bindings
                          if b.datapath not in datapaths)
        incomplete.extend(f"{b.logical_port} unresolved chassis" for b in view.port_bindings
                          if b.type in ("", "chassisredirect") and b.chassis is None
                          and b.logical_port != "provnet-seg")
        incomplete.extend(f"{b.logical_port}: its peer is missing" for b in view.port_bindings
                          if b.type == "patch" and b.options.get("peer") not in by_port)
        # the chain cr-lrp here -> its tenant switch -> the groups -> the balancers
        redirect = by_port.get("cr-lrp-gw")
        here = redirect is not None and redirect.chassis == LOCAL
        balancers = {b.name: b.datapaths for b in view.load_balancers}
        if balancers != ({"lb-private": (cloud.datapaths["private"],)} if here else {}):
            incomplete.append(f"gateway here: {here}, balancers {balancers}")

    watched = Reader(ovs_socket=cloud.ovs.socket, on_change=check)
    with watched:
        wait_until(lambda: watched.synced, timeout=WAIT, what="sync")
        cloud.bind("vm-elsewhere", LOCAL)
        cloud.update_port("cr-lrp-gw", chassis=ref(cloud.add_chassis("network-1")))
        wait_until(lambda: (v := watched.synced_snapshot()) is not None
                   and "vm-elsewhere" in ports(v)
                   and "network-1" in {c.name for c in v.chassis},
                   timeout=WAIT, what="the changes")
        for host, balancers in ((LOCAL, 1), ("network-1", 0), (LOCAL, 1), (GATEWAY, 0)):
            cloud.move_gateway(host)
            wait_until(partial(_gateway_on, watched, host, balancers), timeout=WAIT,
                       what=f"the gateway on {host}")
    assert len(views) > 4
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
    view = wait_ports(reader, SEEN_FROM_OTHER, "the ports of compute-1")
    assert view.local_chassis == OTHER
    assert reader.status().rows["Port_Binding"] == len(SEEN_FROM_OTHER)


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
        view = wait_ports(reader, SEEN_FROM_OTHER, "the ports of the overriding chassis")
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
    assert reader.status().rows["Port_Binding"] == len(SEEN_FROM_LOCAL) + 1


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
    wait_ports(reader, SEEN_FROM_LOCAL | {"vm-bad-mac", "vip-2"}, "the garbage read")
    garbage = {("Port_Binding", "logical_port"), ("Chassis", "name"),
               ("Open_vSwitch", "external_ids:ovn-bridge-mappings")}
    # The local OVS and the SB are two connections: the bad mapping may arrive after the ports.
    wait_until(lambda: (v := reader.synced_snapshot()) is not None
               and garbage <= {(p.table, p.column) for p in v.problems},
               timeout=WAIT, what="every garbage row reported as a problem")
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
                                              "Port_Binding": len(cloud.ports),
                                              "Load_Balancer": 3, "Logical_DP_Group": 4}
        assert len(view.load_balancers) == 3


# --- incremental snapshots ----------------------------------------------------------------------


SB_TABLES = ("Chassis", "Datapath_Binding", "Port_Binding", "Load_Balancer", "Logical_DP_Group")


def _incremental_and_from_scratch(reader: Reader) -> tuple[_Rows, _Rows]:
    """The rows as the reader hands them out (converted incrementally) and the same IDL state
    converted from scratch, both taken under the reader's lock."""
    with reader._lock:
        incremental = reader._rows()
        sb = reader._sb
        assert sb is not None
        assert sb._idl is not None
        idl = sb._idl

        def fresh(table: str) -> list[dict[str, object]]:
            return [{**{column: row._data[column].to_python(_keep_uuid)
                        for column in sb.columns[table]}, "_uuid": row.uuid}
                    for row in idl.tables[table].rows.values()]

        scratch = _Rows(reader._local, *(fresh(table) for table in SB_TABLES))
    return incremental, scratch


def _gateway_on_chassis(reader: Reader, name: str) -> bool:
    by_port = {b.logical_port: b for b in reader.snapshot().port_bindings}
    return by_port["cr-lrp-gw"].chassis == name


def test_an_update_converts_again_only_the_columns_it_names(cloud: Cloud) -> None:
    """A bind (chassis and up) gives a new row whose other columns are the values converted
    before, the same objects; every row equals its conversion from scratch."""
    with Reader(ovs_socket=cloud.ovs.socket, on_change=lambda: None) as reader:
        wait_until(lambda: reader.synced, timeout=WAIT, what="the reader to sync")
        cloud.add_vm("vm-new", "public", None, "172.24.4.30")
        cloud.update_port("vm-new", requested_chassis=ref(cloud.chassis[LOCAL]))
        wait_ports(reader, SEEN_FROM_LOCAL | {"vm-new"}, "vm-new requested here")
        before = _row_of(reader, "vm-new")
        cloud.update_port("vm-new", chassis=ref(cloud.chassis[LOCAL]), up=True)
        wait_until(lambda: _row_of(reader, "vm-new")["up"] == [True], timeout=WAIT,
                   what="vm-new bound")
        after = _row_of(reader, "vm-new")
        incremental, scratch = _incremental_and_from_scratch(reader)
    assert after is not before
    assert after["chassis"] == [uuid.UUID(cloud.chassis[LOCAL])]
    assert {column for column in after if after[column] is not before[column]} == {
        "chassis", "up"}
    assert incremental == scratch


def test_rows_asked_twice_without_a_change_are_the_same_list(cloud: Cloud) -> None:
    """The reader thread and the snapshot both ask for Port_Binding after an update: the second
    gets the very list the first did, and a change in between gives a new one."""
    with Reader(ovs_socket=cloud.ovs.socket, on_change=lambda: None) as reader:
        wait_until(lambda: reader.synced, timeout=WAIT, what="the reader to sync")
        with reader._lock:
            sb = reader._sb
            assert sb is not None
            first, second = sb.rows("Port_Binding"), sb.rows("Port_Binding")
        cloud.add_vm("vm-again", "public", LOCAL, "172.24.4.31")
        wait_ports(reader, SEEN_FROM_LOCAL | {"vm-again"}, "vm-again bound here")
        with reader._lock:
            third = sb.rows("Port_Binding")
        incremental, scratch = _incremental_and_from_scratch(reader)
    assert second is first
    assert third is not first
    assert "vm-again" in {row["logical_port"] for row in third}
    assert incremental == scratch


def _row_of(reader: Reader, logical_port: str) -> dict[str, object]:
    with reader._lock:
        sb = reader._sb
        assert sb is not None
        (row,) = (r for r in sb.rows("Port_Binding") if r["logical_port"] == logical_port)
    return row


def test_incremental_snapshots_equal_views_built_from_scratch(cloud: Cloud) -> None:
    """After random inserts, updates and deletes (VMs, bindings, addresses, external_ids,
    gateways, chassis, load balancers), the rows the reader converted incrementally and the
    view it built from them with its memo equal the same rows converted, and the view built,
    from scratch; and so do their plans."""
    rng = random.Random(4)  # noqa: S311  # a reproducible sequence, not a secret
    compared = 0
    with Reader(ovs_socket=cloud.ovs.socket, on_change=lambda: None) as reader:
        wait_until(lambda: reader.synced, timeout=WAIT, what="the reader to sync")
        vms: list[str] = []
        hosts = [LOCAL, OTHER, None]
        for step in range(60):
            kind = rng.choice(("add", "add", "bind", "ids", "mac", "delete", "gateway",
                               "chassis", "balancer", "up"))
            if kind == "add" or not vms:
                name, network = f"vm-{step}", rng.choice(("public", "private"))
                ip = f"172.24.4.{20 + step}" if network == "public" else f"10.0.0.{20 + step}"
                cloud.add_vm(name, network, rng.choice(hosts), ip)
                vms.append(name)
            elif kind == "bind":
                cloud.bind(rng.choice(vms), rng.choice(hosts))
            elif kind == "ids":
                cloud.update_port(rng.choice(vms), external_ids=omap({"step": str(step)}))
            elif kind == "up":                      # one column of a row, often twice
                cloud.update_port(rng.choice(vms), up=rng.random() < 0.5)
            elif kind == "mac":
                ip = f"172.24.4.{150 + step % 50}"
                cloud.update_port(rng.choice(vms), mac=f"{mac_of(ip)} {ip}")
            elif kind == "delete":
                name = vms.pop(rng.randrange(len(vms)))
                cloud.transact({"op": "delete", "table": "Port_Binding",
                                "where": [["_uuid", "==", ref(cloud.ports.pop(name))]]})
            elif kind == "gateway":
                cloud.move_gateway(rng.choice((LOCAL, OTHER, GATEWAY)))
            elif kind == "chassis":
                # The cr-lrp arrives naming a chassis whose row comes one condition change
                # later: the same raw row, resolved again once it is there.
                cloud.update_port("cr-lrp-gw", chassis=ref(cloud.add_chassis(f"extra-{step}")))
                wait_until(partial(_gateway_on_chassis, reader, f"extra-{step}"),
                           timeout=WAIT, what="the gateway on a new chassis")
            else:
                cloud.add_load_balancer(f"lb-{step}", {f"172.24.4.{210 + step % 40}:80":
                                                       "10.0.0.10:8080"}, switches=["private"])
            if rng.random() < 0.5:                  # sometimes several changes at once
                continue
            incremental, scratch = _incremental_and_from_scratch(reader)
            assert incremental == scratch
            with reader._view_lock:
                view = incremental.view(reader._memo)
            assert view == scratch.view()
            assert plan(view, SETTINGS) == plan(scratch.view(), SETTINGS)
            reader.snapshot()                       # the reader's own passes, in between
            compared += 1
    assert compared > 10
