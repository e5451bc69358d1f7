"""Tunnel endpoints and east/west routing (issue 4, item 4), end to end in a three-rack lab of its
own (prefix `ofg`).

What is proved, each by an outcome read back from the lab (routes, rows, pings, counters):
1. Every chassis' Geneve endpoint (ovn-encap-ip) is an address of its br-phy, not of `lo`; OVN
   knows it; it is a /32 at both spines over the rack's two leaves, and every other chassis
   routes it over both of its uplinks. Nothing else of br-phy is advertised.
2. The router, its gateway, its interfaces and SNAT are in the NB as Neutron writes them
   (OVN_DATA.md (c), (d)); the gateway is active on the highest-priority gateway chassis.
3. Two VMs of one tenant network, in rack 1 and rack 3, ping (IPv4, IPv6) and move 1 MB over TCP
   each way, through Geneve: the leaves count the tunnel packets between the two endpoints and
   not one bare tenant packet. Full-size packets (MTU 1442) cross.
4. East/west: a VM of another subnet of the same router, in another rack, is reached with one
   routed hop (TTL 63), and the packets cross the leaves of racks 1 and 3 only, never those of
   rack 2, where the router's gateway is active: OVN routed them on the source chassis.
5. The overlay survives what the lab does not re-apply: ovs-vswitchd restarted (every tunnel
   piece is kernel or database state), and an uplink cut under a 10 ms ping.

The lab and the tenant networks are built once for the module and always removed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from ovn_fabric.lab import lab as labmod
from ovn_fabric.lab import neutron, overlay, ovn, probe
from ovn_fabric.lab import vm as vmmod
from ovn_fabric.lab.lab import Lab
from ovn_fabric.lab.sh import output, run, wait_until
from ovn_fabric.lab.topology import ENCAP_BRIDGE
from ovn_fabric.lab.vm import Vm

pytestmark = pytest.mark.lab

PREFIX = "ofg"
SPINES = ("spine1", "spine2")
RACK = {"compute1": ("leaf1a", "leaf1b"), "compute2": ("leaf2a", "leaf2b"),
        "compute3": ("leaf3a", "leaf3b")}
LEAVES = tuple(leaf for pair in RACK.values() for leaf in pair)
NET1 = ("net1", "10.0.1.0/24", "fd00:10:1::/64")
NET2 = ("net2", "10.0.2.0/24", "fd00:10:2::/64")
ROUTER = "r1"
TENANT_MTU = 1442
CONVERGE_S = 5.0


def _cli(lab: Lab, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "ovn_fabric.cli", "lab", *args,
                           "--prefix", lab.prefix],
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@dataclass(frozen=True)
class Tenant:
    router: neutron.Router
    a1: Vm      # net1, compute1 (rack 1)
    c1: Vm      # net1, compute3 (rack 3)
    c2: Vm      # net2, compute3 (rack 3)


@pytest.fixture(scope="module")
def tenant(lab: Lab) -> Tenant:
    """Two tenant networks behind one distributed router, and three VMs, made through the CLI."""
    for name, cidr4, cidr6 in (NET1, NET2):
        _cli(lab, "network", "add", name, "--cidr4", cidr4, "--cidr6", cidr6)
    _cli(lab, "router", "add", ROUTER)
    _cli(lab, "router", "attach", ROUTER, NET1[0])
    listing = _cli(lab, "router", "attach", ROUTER, NET2[0])
    assert "networks net1,net2" in listing, listing
    _cli(lab, "vm", "add", "a1", "--node", "compute1", "--network", NET1[0])
    _cli(lab, "vm", "add", "c1", "--node", "compute3", "--network", NET1[0])
    _cli(lab, "vm", "add", "c2", "--node", "compute3", "--network", NET2[0])
    vms = {v.name: v for v in vmmod.list_vms(lab.paths)}
    return Tenant(neutron.load_router(lab.paths, ROUTER), vms["a1"], vms["c1"], vms["c2"])


# --- helpers ----------------------------------------------------------------------------------


def _addresses(vm: Vm) -> tuple[str, str]:
    return str(vm.ip4.ip), str(vm.ip6.ip)


@dataclass(frozen=True)
class Pings:
    sent: int
    received: int
    ttls: tuple[int, ...]


def _ping(vm: Vm, address: str, count: int = 10, size: int = 56,
          dont_fragment: bool = False) -> Pings:
    argv = ["ping", "-n", "-c", str(count), "-i", "0.02", "-W", "2", "-s", str(size)]
    if dont_fragment:
        argv += ["-M", "do"]
    proc = run([*argv, address], netns=vm.netns, check=False)
    ttls = tuple(int(t) for t in re.findall(r" ttl=(\d+) ", proc.stdout))
    return Pings(count, len(ttls), ttls)


def _wait_pings(vm: Vm, address: str, timeout: float = CONVERGE_S) -> float:
    start = time.monotonic()
    wait_until(lambda: run(["ping", "-n", "-c", "1", "-W", "1", address], netns=vm.netns,
                           check=False).returncode == 0,
               timeout=timeout, interval=0.01, what=f"{vm.name} to ping {address}")
    return time.monotonic() - start


def _tcp(src: Vm, dst: Vm, address: str, size: int = 1_000_000) -> int:
    """Send `size` bytes over TCP from `src` to `dst` at `address`; what the server received."""
    return probe.tcp_transfer(src.netns, dst.netns, address, size)


# --- nftables counters on every leaf ----------------------------------------------------------

NFT_TABLE = "ofg_probe"
COUNTERS = ("geneve", "big", "bare4", "bare6")
BIG = 1100      # bytes of outer IPv4: only our large pings, never BFD or ARP, are this long


def _install_counters(lab: Lab, between: tuple[str, str]) -> None:
    """On every leaf's forward path: Geneve between the two endpoints `between`; Geneve longer
    than BIG from any endpoint to any other; and tenant packets NOT in a tunnel (by their own
    addresses), which must never be seen."""
    e1, e2 = between
    tenant4 = f"{{ {NET1[1]}, {NET2[1]} }}"
    tenant6 = f"{{ {NET1[2]}, {NET2[2]} }}"
    pool = lab.topology.encap_pool4
    rules = f"""table inet {NFT_TABLE} {{
  counter geneve {{ }}
  counter big {{ }}
  counter bare4 {{ }}
  counter bare6 {{ }}
  chain forward {{
    type filter hook forward priority -300; policy accept;
    ip saddr {{ {e1}, {e2} }} ip daddr {{ {e1}, {e2} }} udp dport 6081 counter name geneve
    ip saddr {pool} ip daddr {pool} udp dport 6081 ip length > {BIG} counter name big
    ip saddr {tenant4} counter name bare4
    ip daddr {tenant4} counter name bare4
    ip6 saddr {tenant6} counter name bare6
    ip6 daddr {tenant6} counter name bare6
  }}
}}
"""
    for leaf in LEAVES:
        run(["nft", "-f", "-"], netns=lab.netns(leaf), input_text=rules)


def _remove_counters(lab: Lab) -> None:
    for leaf in LEAVES:
        run(["nft", "delete", "table", "inet", NFT_TABLE], netns=lab.netns(leaf), check=False)


@dataclass(frozen=True)
class Count:
    packets: int
    bytes: int


def _counters(lab: Lab) -> dict[str, dict[str, Count]]:
    """leaf -> counter name -> count."""
    result: dict[str, dict[str, Count]] = {}
    for leaf in LEAVES:
        out = output(["nft", "-j", "list", "counters", "table", "inet", NFT_TABLE],
                     netns=lab.netns(leaf))
        result[leaf] = {}
        for item in json.loads(out)["nftables"]:
            if "counter" in item:
                c = item["counter"]
                result[leaf][str(c["name"])] = Count(int(c["packets"]), int(c["bytes"]))
    return result


def _delta(after: dict[str, dict[str, Count]], before: dict[str, dict[str, Count]],
           name: str, leaves: tuple[str, ...] = LEAVES) -> Count:
    return Count(sum(after[x][name].packets - before[x][name].packets for x in leaves),
                 sum(after[x][name].bytes - before[x][name].bytes for x in leaves))


def _endpoints(lab: Lab, *nodes: str) -> tuple[str, str]:
    a, b = (str(lab.topology.encap(n)) for n in nodes)
    return a, b


# --- 1. tunnel endpoints ----------------------------------------------------------------------


def test_every_endpoint_is_on_br_phy_known_to_ovn_and_at_the_spines_with_ecmp(
        lab: Lab) -> None:
    topo, central = lab.topology, lab.topology.controller.name
    for dev in topo.chassis:
        encap = str(topo.encap(dev.name))
        ns = lab.netns(dev.name)
        on_lo = output(["ip", "-4", "-o", "addr", "show", "dev", "lo"], netns=ns)
        on_phy = output(["ip", "-4", "-o", "addr", "show", "dev", ENCAP_BRIDGE], netns=ns)
        assert f" {encap}/" not in on_lo, on_lo
        assert f" {encap}/32 " in on_phy, on_phy
        assert encap != str(dev.loopback4)
        assert ovn.chassis_external_ids(lab.paths, dev.name)["ovn-encap-ip"] == encap
        sb = ovn.sbctl(lab.paths, central, "--bare", "--columns=ip,type", "find", "Encap",
                       f"chassis_name={dev.name}").split()
        assert sb == [encap, "geneve"], sb
        for spine in SPINES:
            route = labmod.route_to(lab, spine, encap)
            assert route is not None, (spine, encap)
            assert route.get("protocol") == "bgp", route
            assert probe.route_devs(lab, spine, encap) == set(RACK[dev.name]), (spine, route)
        for other in topo.chassis:
            if other is not dev:
                assert probe.route_devs(lab, other.name, encap) == set(RACK[other.name]), \
                    (other.name, encap)
    assert overlay.endpoint_problems(lab) == []
    # The endpoint's covering prefix on br-phy (for OVS's own routing) is never advertised.
    pool = str(topo.encap_pool4)
    for device in (*SPINES, *LEAVES):
        dsts = {r.get("dst") for r in labmod.kernel_routes(lab, device)}
        assert pool not in dsts, (device, pool)


# --- 2. the router as Neutron writes it -------------------------------------------------------


def _row(lab: Lab, table: str, name: str, db: str = "nb") -> dict[str, object]:
    ctl = ovn.nbctl if db == "nb" else ovn.sbctl
    out = ctl(lab.paths, lab.topology.controller.name, "--format=json", "find", table,
              f"name={name}" if table != "Port_Binding" else f"logical_port={name}")
    data = json.loads(out)
    assert len(data["data"]) == 1, (table, name, data)
    return dict(zip(data["headings"], data["data"][0], strict=True))


def _map(value: object) -> dict[str, str]:
    assert isinstance(value, list), value
    assert value[0] == "map", value
    return {str(k): str(v) for k, v in value[1]}


def test_router_gateway_interfaces_and_snat_are_written_as_neutron_writes_them(
        lab: Lab, tenant: Tenant) -> None:
    router, central = tenant.router, lab.topology.controller.name
    provider = ovn.provider_ids(lab.paths, lab.topology.provider)
    lr = _row(lab, "Logical_Router", router.lr)
    assert _map(lr["external_ids"])["neutron:router_name"] == ROUTER
    assert _map(lr["external_ids"])["neutron:gw_port_id"] == router.gw_port_id

    gw = _row(lab, "Logical_Router_Port", router.gw_lrp)
    assert _map(gw["options"]) == {"gateway_mtu": "1500", "reside-on-redirect-chassis": "false"}
    gw_ids = _map(gw["external_ids"])
    assert gw_ids["neutron:is_ext_gw"] == "True"
    assert gw_ids["neutron:network_name"] == provider.switch
    assert gw_ids["neutron:router_name"] == router.lr
    chassis = json.loads(ovn.nbctl(lab.paths, central, "--format=json",
                                   "--columns=name,chassis_name,priority", "list",
                                   "Gateway_Chassis"))["data"]
    assert sorted(chassis) == [[f"{router.gw_lrp}_compute2", "compute2", 2],
                               [f"{router.gw_lrp}_compute3", "compute3", 1]]
    gw_lsp = _row(lab, "Logical_Switch_Port", router.gw_port_id)
    assert gw_lsp["type"] == "router"
    assert _map(gw_lsp["options"]) == {"router-port": router.gw_lrp, "nat-addresses": "router",
                                       "exclude-lb-vips-from-garp": "true"}
    assert _map(gw_lsp["external_ids"])["neutron:device_owner"] == "network:router_gateway"

    for name, cidr4, _ in (NET1, NET2):
        network = neutron.load_network(lab.paths, name)
        iface = router.interface(name)
        assert iface is not None
        lrp_ids = _map(_row(lab, "Logical_Router_Port", iface.lrp)["external_ids"])
        assert lrp_ids["neutron:is_ext_gw"] == "False"
        assert lrp_ids["neutron:network_name"] == network.switch
        lsp = _row(lab, "Logical_Switch_Port", iface.port_id)
        assert _map(lsp["options"]) == {"router-port": iface.lrp}
        lsp_ids = _map(lsp["external_ids"])
        assert lsp_ids["neutron:device_owner"] == "network:router_interface"
        assert lsp_ids["neutron:device_id"] == router.router_id
        assert lsp_ids["neutron:subnet_pool_addr_scope4"] == ""
        ls = _row(lab, "Logical_Switch", network.switch)
        assert _map(ls["external_ids"])["neutron:mtu"] == str(TENANT_MTU)
        localnets = set(ovn.nbctl(lab.paths, central, "--bare", "--columns=_uuid", "find",
                                  "Logical_Switch_Port", "type=localnet").split())
        assert len(localnets) == 1      # the provider network's; the tenant switches have none
        assert not localnets & set(ovn.nbctl(lab.paths, central, "--bare", "--columns=ports",
                                             "list", "Logical_Switch", network.switch).split())
        nat = ovn.nbctl(lab.paths, central, "--bare", "--columns=type,external_ip",
                        "find", "NAT", f"logical_ip={cidr4}").split()
        assert nat == ["snat", str(router.gw_ip4.ip)], nat
    # The gateway is active on the highest-priority gateway chassis.
    wait_until(lambda: ovn.sbctl(lab.paths, central, "--bare", "--columns=name", "list",
                                 "Chassis", ovn.sbctl(lab.paths, central, "--bare",
                                                      "--columns=chassis", "find",
                                                      "Port_Binding",
                                                      f"logical_port={router.redirect_port}"
                                                      ).strip()).strip() == "compute2",
               timeout=CONVERGE_S, what=f"{router.redirect_port} bound on compute2")


# --- 3. same tenant network, racks 1 and 3 ----------------------------------------------------


def test_tenant_vms_in_rack1_and_rack3_talk_through_geneve_over_the_fabric(
        lab: Lab, tenant: Tenant) -> None:
    a1, c1 = tenant.a1, tenant.c1
    a4, a6 = _addresses(a1)
    c4, c6 = _addresses(c1)
    _install_counters(lab, _endpoints(lab, "compute1", "compute3"))
    try:
        before = _counters(lab)
        results = {f"a1 -> {c4}": _ping(a1, c4), f"a1 -> {c6}": _ping(a1, c6),
                   f"c1 -> {a4}": _ping(c1, a4), f"c1 -> {a6}": _ping(c1, a6)}
        sent = (_tcp(a1, c1, c4), _tcp(c1, a1, a6))
        after = _counters(lab)
        geneve = _delta(after, before, "geneve")
        bare = _delta(after, before, "bare4"), _delta(after, before, "bare6")
        print(f"pings {results}; TCP {sent} B; leaves: Geneve +{geneve.packets} packets / "
              f"+{geneve.bytes} B, bare tenant packets {bare}")
    finally:
        _remove_counters(lab)
    for what, result in results.items():
        assert result.received == result.sent, (what, result)
        assert set(result.ttls) == {64}, (what, result)       # one switch: nothing routed
    assert sent == (1_000_000, 1_000_000)
    # Every packet crossed two leaves in a tunnel: 4 x 10 requests and replies, 2 MB of TCP.
    assert geneve.packets >= 2 * 2 * 4 * 10, geneve
    assert geneve.bytes >= 2 * 2 * 1_000_000, geneve
    # ... and not one tenant packet crossed a leaf outside a tunnel.
    assert bare == (Count(0, 0), Count(0, 0))


def test_full_size_packets_cross_with_the_tenant_mtu(lab: Lab, tenant: Tenant) -> None:
    """Geneve costs 58 bytes: the tenant VMs have MTU 1442 and a 1442-byte packet with DF set
    crosses the 1500-byte fabric both ways."""
    a1, c1 = tenant.a1, tenant.c1
    for vm in (a1, c1):
        links = json.loads(output(["ip", "-j", "link", "show", "dev", "eth0"], netns=vm.netns))
        assert links[0]["mtu"] == TENANT_MTU
        tap = json.loads(output(["ip", "-j", "link", "show", "dev", vm.tap],
                                netns=lab.netns(vm.node)))
        assert tap[0]["mtu"] == TENANT_MTU
    payload = TENANT_MTU - 20 - 8            # IPv4 and ICMP headers
    for src, dst in ((a1, c1), (c1, a1)):
        result = _ping(src, str(dst.ip4.ip), count=5, size=payload, dont_fragment=True)
        assert result.received == result.sent, (src.name, result)
    result6 = _ping(a1, str(c1.ip6.ip), count=5, size=TENANT_MTU - 40 - 8, dont_fragment=True)
    assert result6.received == result6.sent, result6


# --- 4. east/west: another subnet of the router, another rack ---------------------------------


def _per_rack(after: dict[str, dict[str, Count]], before: dict[str, dict[str, Count]],
              name: str) -> dict[str, int]:
    return {node: _delta(after, before, name, leaves).packets for node, leaves in RACK.items()}


def test_east_west_is_routed_on_the_source_chassis_not_through_the_gateway(
        lab: Lab, tenant: Tenant) -> None:
    a1, c2 = tenant.a1, tenant.c2
    a4, a6 = _addresses(a1)
    c4, c6 = _addresses(c2)
    count, size = 20, 1200
    _install_counters(lab, _endpoints(lab, "compute1", "compute3"))
    try:
        before = _counters(lab)
        big = {f"a1 -> {c4}": _ping(a1, c4, count=count, size=size),
               f"c2 -> {a4}": _ping(c2, a4, count=count, size=size)}
        after = _counters(lab)
        results = {f"a1 -> {c6}": _ping(a1, c6), f"c2 -> {a6}": _ping(c2, a6)}
        sent = _tcp(c2, a1, a4)
        last = _counters(lab)
        bare = _delta(last, before, "bare4"), _delta(last, before, "bare6")
        per_rack = _per_rack(after, before, "big")
        print(f"east/west pings {big} {results}; TCP {sent} B; Geneve longer than {BIG} B "
              f"through each rack's leaves: {per_rack}; bare tenant packets {bare}")
    finally:
        _remove_counters(lab)
    for what, result in {**big, **results}.items():
        assert result.received == result.sent, (what, result)
        assert set(result.ttls) == {63}, (what, result)       # one routed hop: the router
    assert sent == 1_000_000
    # Requests and replies each cross one leaf of rack 1 and one of rack 3 ...
    assert per_rack["compute1"] >= 2 * 2 * count, per_rack
    assert per_rack["compute3"] >= 2 * 2 * count, per_rack
    # ... and none of rack 2, whose chassis holds the router's active gateway: the router ran
    # on the sending chassis (DVR), which tunnelled straight to the destination's chassis.
    assert per_rack["compute2"] == 0, per_rack
    assert bare == (Count(0, 0), Count(0, 0))


# --- 5. what the overlay survives --------------------------------------------------------------


def test_vswitchd_restart_needs_nothing_reapplied(lab: Lab, tenant: Tenant) -> None:
    """Restarted ovs-vswitchd finds its tunnel routes in the kernel, its endpoint's MAC by ARP
    and NORMAL on br-phy by default: tenant traffic resumes with nothing re-applied."""
    a1, c1, c2 = tenant.a1, tenant.c1, tenant.c2
    node = c1.node
    start = time.monotonic()
    ovn.restart_vswitchd(lab.paths, node)      # knows nothing of the overlay
    restarted = time.monotonic() - start
    took = [_wait_pings(a1, str(c1.ip4.ip), timeout=20), _wait_pings(c1, str(a1.ip6.ip)),
            _wait_pings(a1, str(c2.ip4.ip))]
    flows = ovn.ofctl(lab.paths, node, "--no-stats", "dump-flows", ENCAP_BRIDGE)
    print(f"ovs-vswitchd restarted on {node} in {restarted:.2f} s; tenant pings back after "
          f"{restarted + took[0]:.2f} s; br-phy flows: {flows.strip()}")
    assert [ln.strip() for ln in flows.splitlines() if "actions=" in ln] == [
        "priority=0 actions=NORMAL"]
    assert _ping(a1, str(c1.ip4.ip)).received == 10
    assert _tcp(a1, c1, str(c1.ip4.ip)) == 1_000_000


def _geneve_uplink(lab: Lab, src: Vm, dst: Vm) -> str:
    """The uplink of src's chassis that carries the tunnel packets of src's pings to dst."""
    ifaces = RACK[src.node]
    before = {i: probe.tx_packets(lab, src.node, i) for i in ifaces}
    result = _ping(src, str(dst.ip4.ip), count=50)
    assert result.received == result.sent, result
    return max(ifaces, key=lambda i: probe.tx_packets(lab, src.node, i) - before[i])


def test_tenant_traffic_survives_an_uplink_cut(lab: Lab, tenant: Tenant) -> None:
    """The kernel, not OVS, chooses the uplink of a tunnel packet: cut the one in use under a
    10 ms ping and the tunnel moves to the other leaf."""
    a1, c1 = tenant.a1, tenant.c1
    uplink = _geneve_uplink(lab, a1, c1)
    link = labmod.find_link(lab, a1.node, uplink)
    try:
        outage = probe.ping_through(a1.netns, str(c1.ip4.ip),
                                    lambda: labmod.cut_link(lab, link, silent=False))
        print(f"uplink {a1.node}-{uplink} cut under a 10 ms tenant ping: {outage.lost} of "
              f"{outage.sent} lost, longest gap {outage.longest_gap_ms:.0f} ms")
        assert outage.longest_gap_ms < 500, outage
        assert _ping(a1, str(c1.ip4.ip)).received == 10
    finally:
        labmod.restore_link(lab, link)
        labmod.wait_fabric_converged(lab, timeout=30)
        overlay.wait_endpoints_routed(lab, timeout=30)


# --- 6. removal ---------------------------------------------------------------------------------


def test_vm_router_and_network_del_remove_every_row_they_made(lab: Lab, tenant: Tenant) -> None:
    central = lab.topology.controller.name

    def rows(table: str) -> set[str]:
        return set(ovn.nbctl(lab.paths, central, "--bare", "--columns=_uuid", "list",
                             table).split())

    tables = ("Logical_Switch", "Logical_Switch_Port", "Logical_Router",
              "Logical_Router_Port", "NAT", "Gateway_Chassis", "Logical_Router_Static_Route",
              "DHCP_Options")
    before = {t: rows(t) for t in tables}
    _cli(lab, "network", "add", "net3", "--cidr4", "10.0.3.0/24", "--cidr6", "fd00:10:3::/64")
    _cli(lab, "router", "add", "r2", "--gateway-chassis", "compute3")
    _cli(lab, "router", "attach", "r2", "net3")
    _cli(lab, "vm", "add", "z3", "--node", "compute2", "--network", "net3")
    z3 = vmmod.load_vm(lab.paths, "z3")
    assert _ping(z3, "10.0.3.1").received == 10            # its router answers
    r2 = neutron.load_router(lab.paths, "r2")
    assert r2.gw_ip4 != tenant.router.gw_ip4                # another gateway address
    assert {t: len(rows(t) - before[t]) for t in tables} == {
        "Logical_Switch": 1, "Logical_Switch_Port": 3, "Logical_Router": 1,
        "Logical_Router_Port": 2, "NAT": 1, "Gateway_Chassis": 1,
        "Logical_Router_Static_Route": 2, "DHCP_Options": 2}
    proc = subprocess.run([sys.executable, "-m", "ovn_fabric.cli", "lab", "network", "del",
                           "net3", "--prefix", lab.prefix], capture_output=True, text=True,
                          check=False, timeout=60)
    assert proc.returncode == 1
    assert "still used by r2, VM z3" in proc.stderr, proc.stderr
    _cli(lab, "vm", "del", "z3")
    _cli(lab, "router", "del", "r2")
    _cli(lab, "network", "del", "net3")
    assert {t: rows(t) for t in tables} == before
    assert z3.netns not in output(["ip", "netns", "list"])
    assert "net3" not in _cli(lab, "network", "list")
    assert "r2" not in _cli(lab, "router", "list")
    # what the module built is untouched
    assert _ping(tenant.a1, str(tenant.c2.ip4.ip)).received == 10


# --- 7. the outside world, through the CLI ------------------------------------------------------


def test_cli_client_and_floating_ip_reach_a_tenant_vm_and_del_removes_them(
        lab: Lab, tenant: Tenant) -> None:
    """`lab client add` puts a host behind spine1, `lab fip add` gives a1 a floating IP;
    the client pings a1 through it (OVN's DNAT on the gateway, advertised by the agent), and
    `del` removes the NAT row, the route at the spines and the client's namespace."""
    central = lab.topology.controller.name

    def nat_rows() -> set[str]:
        return set(ovn.nbctl(lab.paths, central, "--bare", "--columns=_uuid", "list",
                             "NAT").split())

    before = nat_rows()
    added = _cli(lab, "client", "add", "out", "--cidr", "198.51.100.0/29",
                 "--cidr6", "2001:db8:114::/64")
    assert added.split()[1:3] == ["198.51.100.2/29", "2001:db8:114::2/64"], added
    assert "out " in _cli(lab, "client", "list")
    fip = _cli(lab, "fip", "add", ROUTER, "a1").split()[0]
    assert f"{fip} -> a1" in _cli(lab, "fip", "list")
    assert _cli(lab, "fip", "mode").strip() in {"distributed", "centralized"}
    client_ns = lab.paths.netns("out")
    try:
        wait_until(lambda: run(["ping", "-n", "-c", "1", "-W", "1", fip], netns=client_ns,
                               check=False).returncode == 0,
                   timeout=CONVERGE_S, interval=0.05, what=f"the client to ping {fip}")
        # `lab exec` finds the client by name, like a device or a VM.
        proc = subprocess.run([sys.executable, "-m", "ovn_fabric.cli", "lab", "exec", "out",
                               "--prefix", lab.prefix, "--", "ping", "-c", "1", "-W", "2", fip],
                              capture_output=True, text=True, check=False, timeout=30)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        _cli(lab, "fip", "del", fip)
        _cli(lab, "client", "del", "out")
    assert nat_rows() == before
    assert _cli(lab, "fip", "list").strip() == ""
    wait_until(lambda: probe.route_devs(lab, "spine1", fip) == set(), timeout=CONVERGE_S,
               what=f"{fip} withdrawn at spine1")
    assert client_ns not in run(["ip", "netns", "list"]).stdout.split()
