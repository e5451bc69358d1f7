"""The agent's FRR block against real FRR (zebra + bgpd in a namespace): applied once and then
idempotent, exactly the allowed kernel routes on the bridge advertised, the operator's lines
untouched, restored after bgpd restarts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import ip_network

import pytest

from ovn_fabric.config import ExposurePolicy, PrefixRule
from ovn_fabric.dataplane import frr as driver
from ovn_fabric.frr.exposure import exposure_config
from ovn_fabric.lab import fabric, lab
from ovn_fabric.lab.paths import LabPaths
from ovn_fabric.lab.procs import netns_pids, terminate
from ovn_fabric.lab.sh import run, wait_until
from ovn_fabric.lab.topology import parse

from ..topologies import small_topology

pytestmark = pytest.mark.lab

NODE = small_topology("one-node", """
[[device]]
name = "node"
roles = ["controller", "compute"]
asn = 64999
[[device]]
name = "leaf"
role = "leaf"
asn = 64999
[[link]]
ends = ["node", "leaf"]
""")

POLICY = ExposurePolicy(
    allow=(PrefixRule(ip_network("172.24.4.0/24"), "test"),
           PrefixRule(ip_network("2001:db8:24:4::/64"), "test")),
    deny=(PrefixRule(ip_network("172.24.4.128/25"), "test"),),
)


@dataclass(frozen=True)
class Node:
    paths: LabPaths
    vtysh: driver.Vtysh

    @property
    def ns(self) -> str:
        return self.paths.netns("node")

    def bgp_prefixes(self, family: str = "ipv4") -> set[str]:
        out = self.vtysh.run([f"show bgp {family} unicast json"])
        return set(json.loads(out).get("routes", {}))


@pytest.fixture
def node() -> Iterator[Node]:
    paths = LabPaths("ofr")
    lab.down("ofr")
    topo = parse(NODE)
    paths.lab_dir.mkdir(parents=True)
    try:
        fabric.create_namespaces(paths, ["node", "leaf"])  # FRR runs on the node only
        fabric.add_loopbacks(paths, topo)
        fabric.start_frr(paths, topo, "node")
        ns = paths.netns("node")
        run(["ip", "link", "add", "br-ex", "type", "bridge"], netns=ns)
        run(["ip", "link", "set", "br-ex", "up"], netns=ns)
        vty_dir = str(paths.frr_dir("node"))
        yield Node(paths, driver.Vtysh(("ip", "netns", "exec", ns, "vtysh", "--vty_socket",
                                        vty_dir), vty_dir=vty_dir))
    finally:
        lab.down("ofr")


def _route(node: Node, dst: str, dev: str = "br-ex") -> None:
    six = ["-6"] if ":" in dst else []
    run(["ip", *six, "route", "replace", dst, "dev", dev, "proto", "247"], netns=node.ns)


def test_block_is_applied_once_then_idempotent_and_filters_exactly(node: Node) -> None:
    wanted = exposure_config(["br-ex"], POLICY)
    operator = driver.read(node.vtysh)
    assert operator.asn == 64999
    assert driver.reconcile(node.vtysh, wanted) != []
    assert driver.reconcile(node.vtysh, wanted) == []     # idempotent: nothing left to do

    _route(node, "172.24.4.10/32")                # allowed, on the bridge: advertised
    _route(node, "172.24.4.200/32")               # in the deny prefix
    _route(node, "10.99.0.1/32")                  # outside the allowed prefixes
    _route(node, "172.24.4.11/32", dev="lo")      # allowed, but not on a provider bridge
    _route(node, "2001:db8:24:4::10/128")
    wait_until(lambda: "172.24.4.10/32" in node.bgp_prefixes()
               and "2001:db8:24:4::10/128" in node.bgp_prefixes("ipv6"),
               timeout=5, what="the allowed routes in BGP")
    v4 = node.bgp_prefixes()
    assert "172.24.4.200/32" not in v4
    assert "10.99.0.1/32" not in v4
    assert "172.24.4.11/32" not in v4

    run(["ip", "route", "del", "172.24.4.10/32", "dev", "br-ex"], netns=node.ns)
    wait_until(lambda: "172.24.4.10/32" not in node.bgp_prefixes(), timeout=5,
               what="the withdrawn route gone from BGP")


def test_operator_lines_are_untouched_and_policy_changes_are_minimal(node: Node) -> None:
    before = node.vtysh.run(["show running-config"])
    driver.reconcile(node.vtysh, exposure_config(["br-ex"], POLICY))
    after = node.vtysh.run(["show running-config"])
    removed = [ln for ln in before.splitlines() if ln not in after.splitlines()]
    assert removed == []

    narrower = ExposurePolicy(allow=POLICY.allow, deny=())
    commands = driver.reconcile(node.vtysh, exposure_config(["br-ex"], narrower))
    # only the IPv4 prefix-list changes: deletions first, then the renumbered entry
    assert set(commands[:2]) == {
        "no ip prefix-list OVN-FABRIC-ALLOW4 seq 5 deny 172.24.4.128/25 le 32",
        "no ip prefix-list OVN-FABRIC-ALLOW4 seq 10 permit 172.24.4.0/24 ge 32"}
    assert commands[2:] == ["ip prefix-list OVN-FABRIC-ALLOW4 seq 5 permit 172.24.4.0/24 ge 32"]
    assert driver.reconcile(node.vtysh, exposure_config(["br-ex"], narrower)) == []
    # back to no bridges at all: the redistribution stays but exposes nothing
    driver.reconcile(node.vtysh, exposure_config([], narrower))
    assert driver.reconcile(node.vtysh, exposure_config([], narrower)) == []


def test_block_is_restored_after_bgpd_restarts(node: Node) -> None:
    wanted = exposure_config(["br-ex"], POLICY)
    driver.reconcile(node.vtysh, wanted)
    _route(node, "172.24.4.10/32")
    wait_until(lambda: "172.24.4.10/32" in node.bgp_prefixes(), timeout=5,
               what="the route in BGP")

    frr_dir = node.paths.frr_dir("node")
    bgpd = int((frr_dir / "bgpd.pid").read_text())
    assert bgpd in netns_pids(node.ns)
    terminate([bgpd])
    run(["/usr/lib/frr/bgpd", "-d", "-u", "frr", "-g", "frr", "-i", str(frr_dir / "bgpd.pid"),
         "--vty_socket", str(frr_dir), "-z", str(frr_dir / "zserv.api"), "-f", "/dev/null",
         "-P", "0"], netns=node.ns)
    wait_until(lambda: driver.read(node.vtysh), timeout=5, what="bgpd answering again")
    fabric.apply_frr_config(node.paths, "node")      # the node's own base configuration
    assert driver.diff(wanted, driver.read(node.vtysh)) != []   # our block is gone ...
    driver.reconcile(node.vtysh, wanted)                           # ... and comes back
    wait_until(lambda: "172.24.4.10/32" in node.bgp_prefixes(), timeout=5,
               what="the kernel route advertised again")


def test_no_bgp_instance_is_a_clear_error(node: Node) -> None:
    node.vtysh.run(["configure terminal", "no router bgp 64999"])
    with pytest.raises(driver.FrrError, match="no BGP instance"):
        driver.reconcile(node.vtysh, exposure_config(["br-ex"], POLICY))
