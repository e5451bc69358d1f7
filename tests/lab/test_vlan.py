"""A VLAN provider network on a second bridge, end to end (issue 4, item 8), in a three-rack lab
of its own (prefix `ofv`).

Physnet `vlannet` is mapped to br-vlan on every chassis, next to the lab's `datacentre:br-ex`;
on it, a Neutron-style VLAN network (`tag_request=100`, northd copies it to `tag`) with its own
gateways (10.100.0.1/24, 2001:db8:100::1/64) in the agents' settings. A VM on it in rack 1 and
one in rack 3 talk over the routed fabric (IPv4, IPv6, TCP); their /32 and /128 are at both
spines; on the nodes the egress rules strip the tag, the ingress rule tags the kernel's frames
towards OVN, and the routes and neighbours are on br-vlan. The flat `public` network on br-ex
keeps working meanwhile.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest

from ovn_fabric.lab import agents, ovn, probe, vlan
from ovn_fabric.lab import vm as vmmod
from ovn_fabric.lab.lab import Lab
from ovn_fabric.lab.sh import output, run, wait_until
from ovn_fabric.lab.vm import Vm
from ovn_fabric.model import FLOW_COOKIE, FLOW_COOKIE_MASK, RTPROT_OVN_FABRIC

pytestmark = pytest.mark.lab

PREFIX = "ofv"
SPINES = ("spine1", "spine2")
RACK = {"compute1": ("leaf1a", "leaf1b"), "compute3": ("leaf3a", "leaf3b")}
COOKIE = f"cookie={FLOW_COOKIE:#x}/{FLOW_COOKIE_MASK:#x}"
TAG = 100
CONVERGE_S = 15.0


@dataclass(frozen=True)
class World:
    network: vlan.VlanNetwork
    a: Vm          # VLAN network, compute1 (rack 1)
    c: Vm          # VLAN network, compute3 (rack 3)
    flat_a: Vm     # flat `public` network, compute1
    flat_c: Vm     # flat `public` network, compute3


@pytest.fixture(scope="module")
def world(lab: Lab) -> World:
    network = vlan.add_vlan_network(lab.paths, lab.topology, "vlan100", tag=TAG)
    # The agents read their settings at start: restart them with br-vlan's gateways.
    for dev in lab.topology.chassis:
        agents.stop(lab, dev.name)
        agents.start(lab, dev.name)
    for dev in lab.topology.chassis:
        agents.wait_in_sync(lab, dev.name)
    add = vmmod.add_vm
    return World(network,
                 add(lab.paths, lab.topology, name="v1", node="compute1", network=network.name),
                 add(lab.paths, lab.topology, name="v3", node="compute3", network=network.name),
                 add(lab.paths, lab.topology, name="f1", node="compute1"),
                 add(lab.paths, lab.topology, name="f3", node="compute3"))


def _pings(vm: Vm, address: str) -> bool:
    return run(["ping", "-n", "-c", "1", "-W", "1", address], netns=vm.netns,
               check=False).returncode == 0


def _wait_pings(vm: Vm, address: str) -> None:
    wait_until(lambda: _pings(vm, address), timeout=CONVERGE_S,
               what=f"{vm.name} to ping {address}")


def _at_spines(lab: Lab, address: str, node: str) -> bool:
    return all(probe.route_devs(lab, spine, address) == set(RACK[node]) for spine in SPINES)


def _wait_at_spines(lab: Lab, address: str, node: str) -> None:
    wait_until(lambda: _at_spines(lab, address, node), timeout=CONVERGE_S,
               what=f"{address} at both spines via {node}'s leaves")


def _wait_on_br_vlan(lab: Lab, node: str, address: str) -> None:
    def there() -> bool:
        return (len(_ours_on(lab, node, "route", address, "br-vlan")) == 1
                and len(_ours_on(lab, node, "neigh", address, "br-vlan")) == 1)

    wait_until(there, timeout=CONVERGE_S, what=f"{address} routed to br-vlan on {node}")


def _our_flows(lab: Lab, node: str, bridge: str) -> list[str]:
    out = ovn.ofctl(lab.paths, node, "--no-stats", "dump-flows", bridge, COOKIE)
    return [ln.strip() for ln in out.splitlines() if "cookie=" in ln]


def _ours_on(lab: Lab, node: str, what: str, address: str, bridge: str) -> list[object]:
    family = "-6" if ":" in address else "-4"
    if what == "route":
        plen = "128" if ":" in address else "32"
        args = ["route", "show", f"{address}/{plen}", "proto", str(RTPROT_OVN_FABRIC),
                "dev", bridge]
    else:
        args = ["neigh", "show", "to", address, "dev", bridge, "proto",
                str(RTPROT_OVN_FABRIC), "nud", "permanent"]
    found: list[object] = json.loads(output(["ip", family, "-j", *args],
                                            netns=lab.netns(node)))
    return found


def test_the_localnet_port_is_tagged_as_neutron_writes_it(lab: Lab, world: World) -> None:
    ids = ovn.provider_ids(lab.paths, world.network.provider())
    central = lab.topology.controller.name
    assert ovn.nbctl(lab.paths, central, "get", "Logical_Switch_Port", ids.localnet_port,
                     "tag_request").strip() == str(TAG)
    wait_until(lambda: ovn.sbctl(lab.paths, central, "--bare", "--columns=tag", "find",
                                 "Port_Binding", f"logical_port={ids.localnet_port}")
               .strip() == str(TAG), timeout=CONVERGE_S, what="northd to copy the tag")
    for dev in lab.topology.chassis:
        mappings = ovn.chassis_external_ids(lab.paths, dev.name)["ovn-bridge-mappings"]
        assert "vlannet:br-vlan" in mappings.split(","), (dev.name, mappings)
        assert f"{lab.topology.provider.physnet}:br-ex" in mappings.split(","), mappings


def test_vlan_vms_in_rack1_and_rack3_talk_over_the_fabric(lab: Lab, world: World) -> None:
    a, c = world.a, world.c
    for src, dst in ((a, c), (c, a)):
        for address in (str(dst.ip4.ip), str(dst.ip6.ip)):
            _wait_pings(src, address)
    assert probe.tcp_transfer(a.netns, c.netns, str(c.ip4.ip)) == 1_000_000
    assert probe.tcp_transfer(c.netns, a.netns, str(a.ip6.ip)) == 1_000_000


def test_vlan_vm_prefixes_at_both_spines_via_their_rack(lab: Lab, world: World) -> None:
    for vm in (world.a, world.c):
        for address in (str(vm.ip4.ip), str(vm.ip6.ip)):
            _wait_at_spines(lab, address, vm.node)


def test_on_br_vlan_the_tag_is_stripped_towards_the_kernel_and_pushed_towards_ovn(
        lab: Lab, world: World) -> None:
    for vm in (world.a, world.c):
        flows = _our_flows(lab, vm.node, "br-vlan")
        localnet = ovn.provider_ids(lab.paths, world.network.provider()).localnet_port
        port = ovn.vsctl(lab.paths, vm.node, "get", "Interface",
                         f"patch-{localnet}-to-{ovn.INTEGRATION_BRIDGE}", "ofport").strip()
        egress = [f for f in flows if f",in_port={port},dl_vlan={TAG}," in f
                  and (",ip," in f or ",ipv6," in f)]
        assert len(egress) == 2, flows
        assert all("actions=strip_vlan,mod_dl_dst:" in f for f in egress), egress
        assert any(f.endswith(f"in_port={port},dl_vlan={TAG} actions=strip_vlan,NORMAL")
                   for f in flows), flows
        assert any(f.endswith(f"in_port=LOCAL actions=mod_vlan_vid:{TAG},output:{port}")
                   for f in flows), flows
        # The flat network's rules on br-ex are untouched: no VLAN in them.
        ex = _our_flows(lab, vm.node, "br-ex")
        assert ex, vm.node
        assert not any("vlan" in f for f in ex), ex
        for address in (str(vm.ip4.ip), str(vm.ip6.ip)):
            _wait_on_br_vlan(lab, vm.node, address)
            assert _ours_on(lab, vm.node, "route", address, "br-ex") == []


def test_the_flat_network_on_br_ex_still_works(lab: Lab, world: World) -> None:
    _wait_pings(world.flat_a, str(world.flat_c.ip4.ip))
    _wait_pings(world.flat_c, str(world.flat_a.ip6.ip))
    for node in ("compute1", "compute3"):
        assert agents.status(lab, node).get("state") == "ok"


def test_vm_del_withdraws_the_vlan_prefixes(lab: Lab, world: World) -> None:
    vmmod.del_vm(lab.paths, lab.topology, world.c.name)
    address = str(world.c.ip4.ip)
    start = time.monotonic()
    wait_until(lambda: all(not probe.route_devs(lab, s, address) for s in SPINES),
               timeout=CONVERGE_S, what=f"{address} withdrawn from the spines")
    assert time.monotonic() - start < CONVERGE_S
