"""Load-balancer VIPs and virtual IPs end to end (issue 4, items 5 and 6), in a three-rack lab
of its own (prefix `ofl`).

Load balancers, as Octavia's OVN provider and Neutron write them (lab/octavia.py): members m1
(compute1, rack 1) and m2 (compute3, rack 3) on tenant network net1 behind router r1, whose
gateway is active on compute2 (rack 2; compute3 standby), each answering TCP with its name.
- IPv4: the VIP 10.0.1.100 on net1 with the floating IP 172.24.4.201;
- IPv6 (Neutron has no IPv6 floating IPs): the VIP 2001:db8:24:4::150 on the provider network.
OVN 23.03 serves both in r1's load-balancing stage on compute2 only, so the /32 (the FIP) and the
/128 are at both spines via exactly rack 2's leaves; a client outside the cloud (behind spine1)
is served by both members; when the gateway is moved to compute3 the VIP follows; deleting the
load balancer withdraws it. The tenant VIP 10.0.1.100 itself is never advertised.

Virtual IPs (allowed-address pairs, lab/virtual_ports.py): parents p1 (compute1) and p2
(compute3) on the provider network, VIPs 172.24.4.50 and 2001:db8:24:4::50 (one virtual port
each: OVN's virtual-ip is one address). The parent that announces the VIP (gratuitous ARP,
unsolicited NA) becomes `virtual_parent` in the SB, its node advertises the VIP and the client
reaches that parent; when the other parent takes over, the route moves racks; deleting the
virtual port withdraws it. On tenant network net1 (t1 on compute1, t2 on compute3) a VIP is
reached through a floating IP; in Neutron's distributed mode that FIP follows the virtual parent.

Port forwarding (Neutron's router-only load balancers) cannot be shown on OVN 23.03: its SB has
no router load balancers (`lr_datapath_group` is new in 24.03):
test_port_forwarding_is_served_by_the_gateway is an expected failure there, with the evidence.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

import pytest

from ovn_fabric.lab import (
    agents,
    external,
    neutron,
    octavia,
    ovn,
    port_forwarding,
    probe,
    servers,
)
from ovn_fabric.lab import virtual_ports as vports
from ovn_fabric.lab import vm as vmmod
from ovn_fabric.lab.lab import Lab
from ovn_fabric.lab.neutron import Router
from ovn_fabric.lab.sh import run, wait_until
from ovn_fabric.lab.vm import Vm

pytestmark = pytest.mark.lab

PREFIX = "ofl"
NET1 = ("net1", "10.0.1.0/24", "fd00:10:1::/64")
ROUTER = "r1"
ACTIVE, STANDBY = "compute2", "compute3"
MEMBER_PORT, LISTENER_PORT, VIP_SERVICE_PORT = 8080, 80, 9000
CONVERGE_S = 10.0
FAILOVER_S = 20.0
# Load balancers: (VIP, its network (None: the provider network), floating IP), by family.
LBS = {
    "ipv4-vip-fip": ("10.0.1.100", "net1", "172.24.4.201"),
    "ipv6-provider-vip": ("2001:db8:24:4::150", None, None),
}
DELETED_LBS = {
    "ipv4-vip-fip": ("10.0.1.101", "net1", "172.24.4.202"),
    "ipv6-provider-vip": ("2001:db8:24:4::151", None, None),
}
PF_FIP, PF_EXTERNAL_PORT = "172.24.4.210", 2222
VIRTUAL_IPS = {"ipv4": "172.24.4.50", "ipv6": "2001:db8:24:4::50"}
DELETED_VIRTUAL_IPS = {"ipv4": "172.24.4.51", "ipv6": "2001:db8:24:4::51"}


@dataclass(frozen=True)
class World:
    router: Router
    members: tuple[Vm, Vm]
    parents: tuple[Vm, Vm]
    client: external.Client
    client6: external.Client6


@pytest.fixture(scope="module")
def world(lab: Lab) -> Iterator[World]:
    name, cidr4, cidr6 = NET1
    neutron.add_network(lab.paths, lab.topology, name, cidr4=cidr4, cidr6=cidr6)
    router = neutron.add_router(lab.paths, lab.topology, ROUTER,
                                gateway_chassis=(ACTIVE, STANDBY))
    neutron.attach(lab.paths, lab.topology, ROUTER, name)
    members = (vmmod.add_vm(lab.paths, lab.topology, name="m1", node="compute1", network=name),
               vmmod.add_vm(lab.paths, lab.topology, name="m2", node="compute3", network=name))
    parents = (vmmod.add_vm(lab.paths, lab.topology, name="p1", node="compute1"),
               vmmod.add_vm(lab.paths, lab.topology, name="p2", node="compute3"))
    running = [servers.serve_name(vm.netns, MEMBER_PORT, vm.name) for vm in members]
    running += [servers.serve_name(vm.netns, VIP_SERVICE_PORT, vm.name) for vm in parents]
    client = external.add_client(lab, "ext")
    client6 = external.add_client_ipv6(lab, client)
    # The gateway settles on compute2 once BFD is up between the gateway chassis: before that,
    # compute3 may claim the cr-lrp for a moment (it cannot see compute2 yet).
    probe.wait_gateway_bfd_up(lab, ACTIVE, STANDBY, FAILOVER_S)
    wait_until(lambda: _gateway_chassis(lab, router) == ACTIVE, timeout=FAILOVER_S,
               what=f"{router.redirect_port} bound to {ACTIVE}")
    for node in ("compute1", ACTIVE, STANDBY):
        probe.wait_learnt(lab, node, str(client.cidr), CONVERGE_S)
        probe.wait_learnt(lab, node, str(client6.cidr), CONVERGE_S)
    try:
        yield World(router, members, parents, client, client6)
    finally:
        for server in running:
            server.stop()


def _absent_at_spines(lab: Lab, address: str) -> bool:
    return all(probe.route_devs(lab, spine, address) == set() for spine in probe.spines(lab))


def _originates(lab: Lab, node: str, address: str) -> bool:
    """Whether `node` holds the agent's route into br-ex for `address` (what it advertises)."""
    return "br-ex" in probe.route_devs(lab, node, address)


def _advertised(lab: Lab, node: str) -> dict[str, set[str]]:
    """The agent's /status on `node`: each advertised prefix with its reasons."""
    found: dict[str, set[str]] = {}
    entries = agents.status(lab, node).get("advertised")
    for entry in entries if isinstance(entries, list) else []:
        found.setdefault(str(entry["prefix"]), set()).add(str(entry["reason"]))
    return found


# --- load balancers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Lb:
    kind: str
    balancer: octavia.LoadBalancer
    advertised_after_s: float

    @property
    def exposed(self) -> str:
        """The address the outside world uses: the floating IP, else the VIP."""
        return str(self.balancer.fip or self.balancer.vip)


def _make_lb(lab: Lab, world: World, name: str, spec: tuple[str, str | None, str | None]
             ) -> octavia.LoadBalancer:
    vip, network, fip = spec
    return octavia.add_load_balancer(lab, name, router=ROUTER, vip=vip, vip_network=network,
                                     fip=fip, members=world.members,
                                     listener_port=LISTENER_PORT, member_port=MEMBER_PORT)


def _exposed(balancer: octavia.LoadBalancer) -> str:
    return str(balancer.fip or balancer.vip)


@pytest.fixture(scope="module", params=sorted(LBS))
def lb(request: pytest.FixtureRequest, lab: Lab, world: World) -> Iterator[Lb]:
    kind = str(request.param)
    start = time.monotonic()
    balancer = _make_lb(lab, world, f"lb-{kind[:4]}", LBS[kind])
    address = _exposed(balancer)
    wait_until(lambda: probe.at_spines_via(lab, address, ACTIVE), timeout=CONVERGE_S,
               what=f"{address} at both spines via the leaves of {ACTIVE}")
    advertised = time.monotonic() - start
    print(f"\n{kind}: {address} at both spines {advertised:.2f} s after the load balancer")
    try:
        yield Lb(kind, balancer, advertised)
    finally:
        octavia.del_load_balancer(lab, balancer)


def _ask(world: World, address: str, port: int) -> str | None:
    return servers.ask_name(world.client.netns, address, port)


def test_load_balancer_rows_are_written_as_octavia_writes_them(lab: Lab, world: World,
                                                               lb: Lb) -> None:
    balancer, central = lb.balancer, lab.topology.controller.name
    row = json.loads(ovn.nbctl(lab.paths, central, "--format=json", "--columns=_uuid,protocol,"
                               "selection_fields,vips,external_ids", "find", "Load_Balancer",
                               f"name={balancer.lb_id}"))["data"]
    assert len(row) == 1, row
    uuid, protocol, fields, vips, ids = row[0]
    assert protocol == "tcp"
    assert sorted(fields[1]) == sorted(octavia.SOURCE_IP_PORT)
    backends = balancer.backends()
    expected_vips = {balancer.key(balancer.vip): backends}
    if balancer.fip is not None:
        expected_vips[balancer.key(balancer.fip)] = backends
    assert dict(vips[1]) == expected_vips
    ext = dict(ids[1])
    assert ext["lr_ref"] == world.router.lr
    assert ext["neutron:vip"] == str(balancer.vip)
    assert ext["neutron:vip_port_id"] == balancer.vip_port_id
    assert ext.get("neutron:vip_fip") == (str(balancer.fip) if balancer.fip else None)
    # Applied to the router and to the members' switch, never to the provider switch.
    net1 = neutron.load_network(lab.paths, NET1[0])
    holders = {name for table in ("Logical_Router", "Logical_Switch")
               for name in ovn.nbctl(lab.paths, central, "--bare", "--columns=name", "find",
                                     table, f"load_balancer{{>=}}{uuid[1]}").split()}
    assert holders == {world.router.lr, net1.switch}
    # northd copies it to the SB (OVN 23.03: a switch load balancer, in a datapath group).
    sb = ovn.sbctl(lab.paths, central, "--bare", "--columns=name", "find", "Load_Balancer",
                   f"name={balancer.lb_id}").split()
    assert sb == [balancer.lb_id]


def test_vip_is_advertised_from_the_active_gateway_only(lab: Lab, world: World,
                                                        lb: Lb) -> None:
    address = lb.exposed
    assert probe.at_spines_via(lab, address, ACTIVE)
    reasons = _advertised(lab, ACTIVE).get(f"{address}/{ip_address(address).max_prefixlen}")
    expected = {"lb-vip", "floating-ip"} if lb.balancer.fip else {"lb-vip"}
    assert reasons == expected
    for node in ("compute1", STANDBY):     # the members' nodes and the standby gateway
        route = wait_until(functools.partial(probe.route_devs, lab, node, address),
                           timeout=CONVERGE_S, what=f"{address} learnt by {node}")
        assert "br-ex" not in route, (node, route, _gateway_chassis(lab, world.router),
                                      _advertised(lab, node).get(f"{address}/32"))
    if lb.balancer.fip is not None:       # the tenant VIP itself is never exposed
        assert _absent_at_spines(lab, str(lb.balancer.vip))
    assert lb.advertised_after_s < CONVERGE_S


def test_external_client_is_served_by_every_member(world: World, lb: Lb) -> None:
    wanted = {vm.name for vm in world.members}
    seen: list[str | None] = []

    def both_seen() -> bool:
        seen.append(_ask(world, lb.exposed, LISTENER_PORT))
        return wanted <= set(seen)

    wait_until(both_seen, timeout=CONVERGE_S * 2, interval=0.01,
               what=f"both members to answer on {lb.exposed}:{LISTENER_PORT}")
    answered = [s for s in seen if s is not None]
    assert set(answered) == wanted, seen
    # Once served, it keeps being served: every further connection is answered.
    assert all(_ask(world, lb.exposed, LISTENER_PORT) in wanted for _ in range(10))


def _set_gateway_priorities(lab: Lab, router: Router, first: str, second: str) -> None:
    """Reschedule the gateway as Neutron does: rewrite the Gateway_Chassis priorities."""
    central = lab.topology.controller.name
    args: list[str] = []
    for chassis, priority in ((first, 2), (second, 1)):
        row = ovn.nbctl(lab.paths, central, "--bare", "--columns=_uuid", "find",
                        "Gateway_Chassis", f"name={router.gw_lrp}_{chassis}").strip()
        args += ["--", "set", "Gateway_Chassis", row, f"priority={priority}"]
    ovn.nbctl(lab.paths, central, *args)


def _gateway_chassis(lab: Lab, router: Router) -> str:
    """The chassis the SB says holds the router's `cr-lrp` (empty if none)."""
    return ovn.bound_chassis(lab.paths, lab.topology.controller.name, router.redirect_port)


def _move_gateway(lab: Lab, world: World, to: str, address: str) -> None:
    other = STANDBY if to == ACTIVE else ACTIVE
    _set_gateway_priorities(lab, world.router, to, other)
    wait_until(lambda: _gateway_chassis(lab, world.router) == to, timeout=FAILOVER_S,
               what=f"{world.router.redirect_port} bound to {to}")
    wait_until(lambda: probe.at_spines_via(lab, address, to), timeout=CONVERGE_S,
               what=f"{address} at both spines via the leaves of {to}")


def test_vip_follows_the_gateway_when_it_moves(lab: Lab, world: World, lb: Lb) -> None:
    address, wanted = lb.exposed, {vm.name for vm in world.members}
    start = time.monotonic()
    try:
        _move_gateway(lab, world, STANDBY, address)
        print(f"\n{lb.kind}: {address} via {STANDBY}'s leaves "
              f"{time.monotonic() - start:.2f} s after the reschedule")
        wait_until(lambda: not _originates(lab, ACTIVE, address), timeout=CONVERGE_S,
                   what=f"{ACTIVE} to stop advertising {address}")
        wait_until(lambda: _ask(world, address, LISTENER_PORT) in wanted, timeout=CONVERGE_S,
                   interval=0.05, what=f"the client served on {address} through {STANDBY}")
    finally:
        _move_gateway(lab, world, ACTIVE, address)
    wait_until(lambda: _ask(world, address, LISTENER_PORT) in wanted, timeout=CONVERGE_S,
               interval=0.05, what=f"the client served on {address} through {ACTIVE} again")


@pytest.mark.parametrize("kind", sorted(DELETED_LBS))
def test_deleting_the_load_balancer_withdraws_its_vip(lab: Lab, world: World,
                                                      kind: str) -> None:
    balancer = _make_lb(lab, world, f"lbdel-{kind[:4]}", DELETED_LBS[kind])
    address = _exposed(balancer)
    try:
        wait_until(lambda: probe.at_spines_via(lab, address, ACTIVE), timeout=CONVERGE_S,
                   what=f"{address} at both spines via the leaves of {ACTIVE}")
        wait_until(lambda: _ask(world, address, LISTENER_PORT) is not None,
                   timeout=CONVERGE_S, interval=0.05, what=f"the client served on {address}")
    finally:
        start = time.monotonic()
        octavia.del_load_balancer(lab, balancer)
    wait_until(lambda: _absent_at_spines(lab, address), timeout=CONVERGE_S,
               what=f"{address} withdrawn from both spines")
    print(f"\n{kind}: {address} withdrawn {time.monotonic() - start:.2f} s after the delete")
    wait_until(lambda: not _originates(lab, ACTIVE, address), timeout=CONVERGE_S,
               what=f"{ACTIVE}'s route into br-ex for {address} removed")
    assert _ask(world, address, LISTENER_PORT) is None


def _sb_has_router_load_balancers(lab: Lab) -> tuple[bool, str]:
    schema = json.loads(run(["ovsdb-client", "get-schema",
                             f"unix:{ovn.sb_socket(lab.paths, lab.topology.controller.name)}",
                             "OVN_Southbound"]).stdout)
    columns = set(schema["tables"]["Load_Balancer"]["columns"])
    return "lr_datapath_group" in columns, str(schema["version"])


def test_port_forwarding_is_served_by_the_gateway(request: pytest.FixtureRequest, lab: Lab,
                                                  world: World) -> None:
    """Neutron's port forwarding: a load balancer on the router only. From OVN 24.03 the SB
    names it (`lr_datapath_group`) and the gateway advertises the floating IP; before, northd
    does not copy it to the SB at all, so an agent reading the SB cannot see it (xfail, with
    the evidence: the NB row exists, the SB has none)."""
    central = lab.topology.controller.name
    forwarding = port_forwarding.add_port_forwarding(
        lab, ROUTER, PF_FIP, external_port=PF_EXTERNAL_PORT, vm=world.members[0],
        internal_port=MEMBER_PORT)
    try:
        nb = ovn.nbctl(lab.paths, central, "--bare", "--columns=_uuid", "find",
                       "Load_Balancer", f"name={forwarding.name}").strip()
        holders = ovn.nbctl(lab.paths, central, "--bare", "--columns=name", "find",
                            "Logical_Router", f"load_balancer{{>=}}{nb}").split()
        assert holders == [world.router.lr]
        sb = ovn.sbctl(lab.paths, central, "--bare", "--columns=name", "find",
                       "Load_Balancer", f"name={forwarding.name}").split()
        has_router_lbs, version = _sb_has_router_load_balancers(lab)
        if not has_router_lbs:
            request.node.add_marker(pytest.mark.xfail(strict=True, reason=(
                f"OVN_Southbound {version} (OVN 23.03) has no Load_Balancer.lr_datapath_group "
                f"(OVN >= 24.03): northd does not copy a router-only load balancer to the SB "
                f"(SB rows named {forwarding.name}: {sb}), and the agent reads only the SB")))
        wait_until(lambda: probe.at_spines_via(lab, PF_FIP, ACTIVE), timeout=CONVERGE_S,
                   what=f"{PF_FIP} at both spines via the leaves of {ACTIVE}")
        assert _ask(world, PF_FIP, PF_EXTERNAL_PORT) == world.members[0].name
    finally:
        port_forwarding.del_port_forwarding(lab, forwarding)


# --- virtual IPs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vips:
    ports: tuple[vports.VirtualPort, ...]


@pytest.fixture(scope="module")
def vips(lab: Lab, world: World) -> Iterator[Vips]:
    addresses: list[IPv4Address | IPv6Address] = [ip_address(a) for a in
                                                  (*VIRTUAL_IPS.values(),
                                                   *DELETED_VIRTUAL_IPS.values())]
    for parent in world.parents:
        vports.allow_address_pairs(lab, parent, addresses)
    ports = tuple(vports.add_virtual_port(lab, f"vip-{family}", ip_address(address),
                                          world.parents)
                  for family, address in sorted(VIRTUAL_IPS.items()))
    try:
        yield Vips(ports)
    finally:
        for port in ports:
            vports.del_virtual_port(lab, port)


def _hand_to(lab: Lab, world: World, port: vports.VirtualPort, holder: Vm) -> None:
    """`holder` takes the VIP (the other parent gives it up first, as keepalived's old master
    does); return once the SB and both spines agree."""
    for parent in world.parents:
        if parent != holder:
            vports.release(parent, port.ip)
    vports.take(holder, port.ip)
    wait_until(lambda: vports.binding(lab, port) == (holder.node, holder.port_id),
               timeout=CONVERGE_S, what=f"{port.name} bound to {holder.name} on {holder.node}")
    wait_until(lambda: probe.at_spines_via(lab, str(port.ip), holder.node), timeout=CONVERGE_S,
               what=f"{port.ip} at both spines via the leaves of {holder.node}")


def test_virtual_port_rows_are_written_as_neutron_writes_them(lab: Lab, world: World,
                                                               vips: Vips) -> None:
    central = lab.topology.controller.name
    for port in vips.ports:
        columns = json.loads(ovn.nbctl(
            lab.paths, central, "--format=json", "--columns=type,options,addresses",
            "find", "Logical_Switch_Port", f"name={port.port_id}"))["data"][0]
        assert columns[0] == "virtual"
        assert dict(columns[1][1]) == {
            "virtual-ip": str(port.ip),
            "virtual-parents": ",".join(vm.port_id for vm in world.parents)}
        assert columns[2] == f"{port.mac} {port.ip}"
    for parent in world.parents:
        security = ovn.nbctl(lab.paths, central, "get", "Logical_Switch_Port", parent.port_id,
                             "port_security")
        assert all(str(port.ip) in security for port in vips.ports), security


@pytest.mark.parametrize("family", sorted(VIRTUAL_IPS))
def test_parent_that_announces_the_vip_serves_it(lab: Lab, world: World, vips: Vips,
                                                 family: str) -> None:
    port = next(p for p in vips.ports if p.name == f"vip-{family}")
    first = world.parents[0]
    start = time.monotonic()
    _hand_to(lab, world, port, first)
    print(f"\n{port.ip}: bound to {first.name} and at both spines via {first.node}'s leaves "
          f"{time.monotonic() - start:.2f} s after the announcement")
    address = str(port.ip)
    assert _advertised(lab, first.node).get(
        f"{address}/{port.ip.max_prefixlen}") == {"virtual-ip"}
    wait_until(lambda: _ask(world, address, VIP_SERVICE_PORT) == first.name,
               timeout=CONVERGE_S, interval=0.05, what=f"{first.name} to answer on {address}")
    assert vports.record_parent_host(lab, port) == first.hostname


@pytest.mark.parametrize("family", sorted(VIRTUAL_IPS))
def test_takeover_moves_the_vip_to_the_new_parents_rack(lab: Lab, world: World, vips: Vips,
                                                        family: str) -> None:
    port = next(p for p in vips.ports if p.name == f"vip-{family}")
    old, new = world.parents
    address = str(port.ip)
    _hand_to(lab, world, port, old)
    wait_until(lambda: run(["ping", "-n", "-c", "1", "-W", "1", address],
                           netns=world.client.netns, check=False).returncode == 0,
               timeout=CONVERGE_S, interval=0.01, what=f"the client to ping {address}")
    moved: list[float] = []

    def take_over() -> None:
        start = time.monotonic()
        _hand_to(lab, world, port, new)
        moved.append(time.monotonic() - start)

    # A 10 ms ping from outside the cloud sees the takeover (keepalived's old master gives the
    # address up just before the new one announces it).
    outage = probe.ping_through(world.client.netns, address, take_over, seconds=6)
    print(f"\n{address}: taken over by {new.name}, at both spines via {new.node}'s leaves "
          f"{moved[0]:.2f} s after its announcement; 10 ms ping: longest gap "
          f"{outage.longest_gap_ms:.0f} ms, {outage.lost} of {outage.sent} lost")
    assert outage.sent not in outage.lost_seqs, outage      # the ping resumed, via p2
    wait_until(lambda: not _originates(lab, old.node, address), timeout=CONVERGE_S,
               what=f"{old.node} to stop advertising {address}")
    wait_until(lambda: _ask(world, address, VIP_SERVICE_PORT) == new.name, timeout=CONVERGE_S,
               interval=0.05, what=f"{new.name} to answer on {address}")
    assert vports.record_parent_host(lab, port) == new.hostname


@pytest.mark.parametrize("family", sorted(DELETED_VIRTUAL_IPS))
def test_deleting_the_virtual_port_withdraws_the_vip(lab: Lab, world: World, vips: Vips,
                                                     family: str) -> None:
    port = vports.add_virtual_port(lab, f"vdel-{family}",
                                   ip_address(DELETED_VIRTUAL_IPS[family]), world.parents)
    address, holder = str(port.ip), world.parents[0]
    try:
        # Nothing is advertised while no parent has claimed it.
        assert vports.binding(lab, port) == ("", "")
        assert _absent_at_spines(lab, address)
        _hand_to(lab, world, port, holder)
    finally:
        start = time.monotonic()
        vports.del_virtual_port(lab, port)
    wait_until(lambda: _absent_at_spines(lab, address), timeout=CONVERGE_S,
               what=f"{address} withdrawn from both spines")
    print(f"\n{address}: withdrawn {time.monotonic() - start:.2f} s after the virtual port "
          "was deleted")
    wait_until(lambda: not _originates(lab, holder.node, address), timeout=CONVERGE_S,
               what=f"{holder.node}'s route into br-ex for {address} removed")
    vports.release(holder, port.ip)


# --- a virtual IP on a tenant network, reached through a floating IP --------------------------


TENANT_VIP, TENANT_VIP_FIP = "10.0.1.50", "172.24.4.220"


@dataclass(frozen=True)
class TenantVip:
    parents: tuple[Vm, Vm]
    port: vports.VirtualPort
    fip: vports.VipFloatingIp


@pytest.fixture(scope="module")
def tenant_vip(lab: Lab, world: World) -> Iterator[TenantVip]:
    """keepalived on tenant network net1 (t1 on compute1, t2 on compute3) with a floating IP on
    its VIP, Neutron in distributed-FIP mode; t1 holds the VIP when the FIP is associated."""
    net = NET1[0]
    parents = (vmmod.add_vm(lab.paths, lab.topology, name="t1", node="compute1", network=net),
               vmmod.add_vm(lab.paths, lab.topology, name="t2", node="compute3", network=net))
    running = [servers.serve_name(vm.netns, VIP_SERVICE_PORT, vm.name) for vm in parents]
    address = ip_address(TENANT_VIP)
    for parent in parents:
        vports.allow_address_pairs(lab, parent, [address])
    port = vports.add_virtual_port(lab, "vip-tenant", address, parents)
    vports.take(parents[0], address)
    wait_until(lambda: vports.binding(lab, port) == (parents[0].node, parents[0].port_id),
               timeout=CONVERGE_S, what=f"{port.name} bound to t1")
    central = lab.topology.controller.name
    wait_until(lambda: ovn.nbctl(lab.paths, central, "get", "Logical_Switch_Port",
                                 port.port_id, "up").strip() == "true",
               timeout=CONVERGE_S, what=f"{port.name} up in the NB")
    external.set_fip_distributed(lab, True)
    fip = vports.add_floating_ip(lab, ROUTER, port, external_ip=IPv4Address(TENANT_VIP_FIP))
    try:
        yield TenantVip(parents, port, fip)
    finally:
        vports.del_floating_ip(lab, fip)
        external.set_fip_distributed(lab, False)
        vports.del_virtual_port(lab, port)
        for server in running:
            server.stop()


def _tenant_vip_served_by(lab: Lab, world: World, tenant_vip: TenantVip, holder: Vm) -> None:
    """Wait until the SB binds the tenant VIP to `holder`, its FIP is at both spines via
    `holder`'s rack, and `holder` answers on the FIP."""
    address = str(tenant_vip.fip.external_ip)
    start = time.monotonic()
    wait_until(lambda: vports.binding(lab, tenant_vip.port) == (holder.node, holder.port_id),
               timeout=CONVERGE_S, what=f"the tenant VIP bound to {holder.name}")
    wait_until(lambda: probe.at_spines_via(lab, address, holder.node), timeout=CONVERGE_S,
               what=f"{address} at both spines via the leaves of {holder.node}")
    print(f"\n{address} (FIP of {tenant_vip.port.ip}): via {holder.node}'s leaves "
          f"{time.monotonic() - start:.2f} s after {holder.name} held the VIP")
    assert _advertised(lab, holder.node).get(f"{address}/32") == {"floating-ip"}
    wait_until(lambda: _ask(world, address, VIP_SERVICE_PORT) == holder.name,
               timeout=CONVERGE_S, interval=0.05, what=f"{holder.name} to answer on {address}")


def test_a_tenant_vip_floating_ip_follows_the_virtual_parent(lab: Lab, world: World,
                                                             tenant_vip: TenantVip) -> None:
    """Distributed mode: Neutron gives the NAT row an external_mac (the virtual LSP is up once
    claimed), northd makes it resident on the virtual port, so the FIP is NATed, and must be
    advertised, on the chassis of the current virtual_parent, not on the gateway."""
    address = str(tenant_vip.fip.external_ip)
    first, second = tenant_vip.parents
    assert tenant_vip.fip.external_mac is not None
    _tenant_vip_served_by(lab, world, tenant_vip, first)
    vports.release(first, tenant_vip.port.ip)
    vports.take(second, tenant_vip.port.ip)
    _tenant_vip_served_by(lab, world, tenant_vip, second)
    wait_until(lambda: not _originates(lab, first.node, address), timeout=CONVERGE_S,
               what=f"{first.node} to stop advertising {address}")
    assert not _originates(lab, ACTIVE, address)      # never the gateway in this mode
