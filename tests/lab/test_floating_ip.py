"""Floating IPs end to end (issue 4, item 1), in a three-rack lab of its own (prefix `ofk`).

A tenant VM a1 (net1, compute1, rack 1) behind the distributed router r1 (gateway active on
compute2, rack 2) gets a floating IP, written as Neutron writes it (OVN_DATA.md (b)), in each of
Neutron's two modes (NB_Global `neutron:fip-distributed`):
- distributed: external_mac set, OVN NATs on compute1; the FIP /32 is at both spines via the
  leaves of rack 1;
- centralized: no external_mac, OVN NATs on the gateway chassis compute2; the /32 is at both
  spines via the leaves of rack 2.
In each, a client on an external network behind spine1 (203.0.113.0/29) pings the FIP and moves
1 MB over TCP to the VM, and the VM reaches the client with the FIP as its source address.
Removing the FIP withdraws the /32 from the spines.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ovn_fabric.lab import external, neutron, ovn, probe
from ovn_fabric.lab import vm as vmmod
from ovn_fabric.lab.lab import Lab
from ovn_fabric.lab.sh import run, wait_until
from ovn_fabric.lab.vm import Vm

pytestmark = pytest.mark.lab

PREFIX = "ofk"
NET1 = ("net1", "10.0.1.0/24", "fd00:10:1::/64")
ROUTER = "r1"
CONVERGE_S = 10.0
# Where OVN does the NAT, so which node must advertise the FIP, in each mode.
SERVED_BY = {"distributed": "compute1", "centralized": "compute2"}


@dataclass(frozen=True)
class World:
    vm: Vm
    client: external.Client


@pytest.fixture(scope="module")
def world(lab: Lab) -> World:
    name, cidr4, cidr6 = NET1
    neutron.add_network(lab.paths, lab.topology, name, cidr4=cidr4, cidr6=cidr6)
    router = neutron.add_router(lab.paths, lab.topology, ROUTER)
    assert router.gateway_chassis[0] == "compute2", router.gateway_chassis
    neutron.attach(lab.paths, lab.topology, ROUTER, name)
    vm = vmmod.add_vm(lab.paths, lab.topology, name="a1", node="compute1", network=name)
    client = external.add_client(lab, "ext")
    # The external prefix reaches the nodes that NAT: compute1 and the gateway compute2.
    for node in SERVED_BY.values():
        probe.wait_learnt(lab, node, str(client.cidr), CONVERGE_S)
    return World(vm, client)


@dataclass(frozen=True)
class Fip:
    mode: str
    fip: external.FloatingIp
    advertised_after_s: float

    @property
    def address(self) -> str:
        return str(self.fip.external_ip)


def _absent_at_spines(lab: Lab, address: str) -> bool:
    return all(probe.route_devs(lab, spine, address) == set() for spine in probe.spines(lab))


@pytest.fixture(scope="module", params=["distributed", "centralized"])
def fip(request: pytest.FixtureRequest, lab: Lab, world: World) -> Iterator[Fip]:
    mode = str(request.param)
    external.set_fip_distributed(lab, mode == "distributed")
    start = time.monotonic()
    made = external.add_floating_ip(lab, ROUTER, world.vm)
    address = str(made.external_ip)
    wait_until(lambda: probe.at_spines_via(lab, address, SERVED_BY[mode]), timeout=CONVERGE_S,
               what=f"{address}/32 at both spines via the leaves of {SERVED_BY[mode]}")
    advertised = time.monotonic() - start
    print(f"\n{mode}: FIP {address} at both spines {advertised:.2f} s after the NAT row")
    yield Fip(mode, made, advertised)
    start = time.monotonic()
    external.del_floating_ip(lab, made)
    wait_until(lambda: _absent_at_spines(lab, address), timeout=CONVERGE_S,
               what=f"{address}/32 withdrawn from both spines")
    print(f"{mode}: FIP {address} withdrawn {time.monotonic() - start:.2f} s after removal")


# --- tests ------------------------------------------------------------------------------------


def test_nat_row_is_written_as_neutron_writes_it(lab: Lab, world: World, fip: Fip) -> None:
    central = lab.topology.controller.name
    row = ovn.nbctl(lab.paths, central, "--bare", "--columns=type,logical_ip,logical_port,"
                    "external_mac", "find", "NAT", f'external_ip="{fip.address}"').split()
    expected = ["dnat_and_snat", str(world.vm.ip4.ip), world.vm.port_id]
    if fip.mode == "distributed":
        expected.append(fip.fip.external_mac)
    assert row == expected
    flag = ovn.nbctl(lab.paths, central, "get", "NB_Global", ".",
                     'external_ids:"neutron:fip-distributed"').strip().strip('"')
    assert flag == ("True" if fip.mode == "distributed" else "False")


def test_fip_is_at_both_spines_via_the_serving_rack(lab: Lab, fip: Fip) -> None:
    assert probe.at_spines_via(lab, fip.address, SERVED_BY[fip.mode])
    # Only the serving node advertises it: the other racks' leaves learnt it from the spines.
    other = next(n for n in SERVED_BY.values() if n != SERVED_BY[fip.mode])
    route = wait_until(lambda: probe.route_devs(lab, other, fip.address), timeout=CONVERGE_S,
                       what=f"{fip.address}/32 learnt by {other}")
    assert "br-ex" not in route, route
    assert fip.advertised_after_s < CONVERGE_S


def test_client_pings_and_opens_tcp_to_the_vm_through_its_fip(
        lab: Lab, world: World, fip: Fip) -> None:
    wait_until(lambda: run(["ping", "-n", "-c", "1", "-W", "1", fip.address],
                           netns=world.client.netns, check=False).returncode == 0,
               timeout=CONVERGE_S, interval=0.01, what=f"the client to ping {fip.address}")
    proc = run(["ping", "-n", "-c", "10", "-i", "0.02", "-W", "2", fip.address],
               netns=world.client.netns, check=False)
    assert " 0% packet loss" in proc.stdout, proc.stdout
    size = 1_000_000
    assert probe.tcp_transfer(world.client.netns, world.vm.netns, fip.address, size) == size


_PEER_SERVER = """
import socket
s = socket.create_server(("0.0.0.0", 5301))
print("listening", flush=True)
c, peer = s.accept()
c.sendall(b"ok")
c.close()
print(peer[0], flush=True)
"""

_PEER_CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], 5301), timeout=5)
assert s.recv(2) == b"ok"
"""


def _peer_seen_by_client(world: World) -> str:
    """Connect from the VM to a TCP server on the client; the source address the client saw."""
    server = subprocess.Popen(["ip", "netns", "exec", world.client.netns, sys.executable,
                               "-c", _PEER_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        stdout = server.stdout
        assert stdout is not None
        assert stdout.readline().strip() == "listening"
        run([sys.executable, "-c", _PEER_CLIENT, str(world.client.ip.ip)],
            netns=world.vm.netns, timeout=15)
        out, _ = server.communicate(timeout=15)
        return out.strip()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_vm_reaches_the_client_with_its_fip_as_source(world: World, fip: Fip) -> None:
    client_ip = str(world.client.ip.ip)
    wait_until(lambda: run(["ping", "-n", "-c", "1", "-W", "1", client_ip],
                           netns=world.vm.netns, check=False).returncode == 0,
               timeout=CONVERGE_S, interval=0.01, what=f"a1 to ping the client {client_ip}")
    assert _peer_seen_by_client(world) == fip.address
