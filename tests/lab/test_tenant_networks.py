"""Tenant subnets routed without NAT (issue 4, item 3), in a three-rack lab of its own (prefix
`ofn`).

The lab has two Neutron address scopes (IPv4, IPv6) and the agents `[tenant_networks]` with
both. Router r1 has its gateway on compute2 (Gateway_Chassis priority 2, active) and compute3
(priority 1), and an interface on net1 (10.0.1.0/24, fd00:10:1::/64) whose subnets come from
pools in those scopes: Neutron writes the scopes on the interface's LSP and no SNAT. VM a1 on
net1 lives on compute1. Shown, IPv4 and IPv6:
- net1's subnets are at both spines via exactly the leaves of compute2, and compute2 routes them
  via r1's gateway address on br-ex (proto 247); its FRR permits exactly them;
- a client behind spine1 reaches a1's fixed address, and a1 the client, with no NAT;
- a subnet outside the scopes (net2, attached the ordinary way, with SNAT) is refused, reported
  in the agent's status and never reaches the fabric;
- the same subnet on a second router (r2, active on compute3) is refused by both gateways and
  withdrawn, never advertised twice; it comes back when r2 lets go of it;
- cutting compute2's links moves the subnets to compute3 (the gateway fails over);
- removing r1's interface withdraws them everywhere.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, IPv6Interface

import pytest

from ovn_fabric.lab import address_scope, agents, external, fabric, neutron, ovn, probe
from ovn_fabric.lab import vm as vmmod
from ovn_fabric.lab.lab import Lab, cut_link, find_link, kernel_routes, restore_link, route_to
from ovn_fabric.lab.neutron import Router
from ovn_fabric.lab.sh import run, wait_until
from ovn_fabric.lab.vm import Vm

pytestmark = pytest.mark.lab

PREFIX = "ofn"
NET1 = ("net1", "10.0.1.0/24", "fd00:10:1::/64")
NET2 = ("net2", "10.0.2.0/24", "fd00:10:2::/64")     # inside the pools, but in no scope
ROUTER, ROUTER2 = "r1", "r2"
ACTIVE, STANDBY = "compute2", "compute3"
CONVERGE_S = 15.0
FAILOVER_S = 25.0


@dataclass(frozen=True)
class World:
    router: Router
    vm: Vm
    client: external.Client
    client_ip6: IPv6Interface
    scope4: address_scope.AddressScope
    scope6: address_scope.AddressScope

    @property
    def subnets(self) -> tuple[str, str]:
        return NET1[1], NET1[2]


def _at_spines_via(lab: Lab, subnets: tuple[str, ...], node: str) -> bool:
    return all(probe.at_spines_via(lab, subnet, node) for subnet in subnets)


def _absent_at(lab: Lab, device: str, subnets: tuple[str, ...]) -> bool:
    return all(route_to(lab, device, subnet) is None for subnet in subnets)


def _absent_at_spines(lab: Lab, subnets: tuple[str, ...]) -> bool:
    return all(_absent_at(lab, spine, subnets) for spine in probe.spines(lab))


def _pings(netns: str, address: str) -> bool:
    return run(["ping", "-n", "-c", "1", "-W", "1", address], netns=netns,
               check=False).returncode == 0


def _agent_route(lab: Lab, node: str, subnet: str) -> dict[str, object] | None:
    family = 6 if ":" in subnet else 4
    return next((r for r in kernel_routes(lab, node, family)
                 if r.get("dst") == subnet and str(r.get("protocol")) == "247"), None)


def _refusals(lab: Lab, node: str) -> list[dict[str, str]]:
    refused = agents.status(lab, node).get("refused", [])
    assert isinstance(refused, list)
    return refused


def _refused(lab: Lab, node: str, what: str, why: str) -> bool:
    return any(r.get("address") == what and why in r.get("why", "")
               for r in _refusals(lab, node))


def _frr_permits(lab: Lab, node: str) -> set[str]:
    """The exact (tenant subnet) entries of the agent's prefix-lists in the node's bgpd."""
    text = fabric.vtysh(lab.paths, node, "-c", "show running-config bgpd")
    return {line.split()[-1] for line in text.splitlines()
            if "prefix-list OVN-FABRIC-ALLOW" in line and " seq 1000" in line}


@pytest.fixture(scope="module")
def world(lab: Lab) -> World:
    scope4 = address_scope.add_scope(lab.paths, "fabric4", 4)
    scope6 = address_scope.add_scope(lab.paths, "fabric6", 6)
    agents.restart_all(lab)
    name, cidr4, cidr6 = NET1
    neutron.add_network(lab.paths, lab.topology, name, cidr4=cidr4, cidr6=cidr6)
    neutron.add_router(lab.paths, lab.topology, ROUTER, gateway_chassis=(ACTIVE, STANDBY))
    router = address_scope.attach_in_scope(lab.paths, lab.topology, ROUTER, name,
                                           scope4=scope4, scope6=scope6)
    vm = vmmod.add_vm(lab.paths, lab.topology, name="a1", node="compute1", network=name)
    client = external.add_client(lab, "ext")
    client_ip6 = external.add_client_ipv6(lab, client).ip
    for node in (ACTIVE, STANDBY):
        probe.wait_learnt(lab, node, str(client.cidr), CONVERGE_S)
        probe.wait_learnt(lab, node, str(client_ip6.network), CONVERGE_S)
    made = World(router, vm, client, client_ip6, scope4, scope6)
    probe.wait_gateway_bfd_up(lab, ACTIVE, STANDBY, FAILOVER_S)
    _wait_served_by(lab, made, ACTIVE)
    return made


def _gateway_chassis(lab: Lab, router: Router) -> str:
    """The chassis the SB says holds the router's `cr-lrp` (empty if none)."""
    return ovn.bound_chassis(lab.paths, lab.topology.controller.name, router.redirect_port)


def _wait_served_by(lab: Lab, world: World, node: str) -> None:
    wait_until(lambda: _gateway_chassis(lab, world.router) == node, timeout=FAILOVER_S,
               what=f"{world.router.redirect_port} bound to {node}")
    wait_until(lambda: _at_spines_via(lab, world.subnets, node), timeout=FAILOVER_S,
               what=f"{world.subnets} at both spines via the leaves of {node} only")


# --- tests ------------------------------------------------------------------------------------


def test_subnets_are_at_both_spines_via_the_active_gateway_only(lab: Lab, world: World) -> None:
    # Polled, not asserted once: under load OVN's BFD between the gateways can flap, and the
    # cr-lrp (and with it the subnets) then moves for a moment; the agents must follow it.
    _wait_served_by(lab, world, ACTIVE)
    vias = {4: str(world.router.gw_ip4.ip), 6: str(world.router.gw_ip6.ip)}
    for subnet in world.subnets:
        route = wait_until(functools.partial(_agent_route, lab, ACTIVE, subnet),
                           timeout=CONVERGE_S, what=f"{ACTIVE}'s own route to {subnet}")
        assert (route.get("gateway"), route.get("dev")) == (vias[6 if ":" in subnet else 4],
                                                            "br-ex"), route
        # The standby learnt it from its leaves: it does not originate it.
        wait_until(functools.partial(_learnt_only, lab, STANDBY, subnet), timeout=CONVERGE_S,
                   what=f"{subnet} learnt by {STANDBY} from its leaves, not its own")
    wait_until(lambda: _frr_permits(lab, ACTIVE) == set(world.subnets)
               and _frr_permits(lab, STANDBY) == set(), timeout=CONVERGE_S,
               what=f"exact prefix-list entries for {world.subnets} on {ACTIVE} only")


def _learnt_only(lab: Lab, node: str, subnet: str) -> bool:
    devs = probe.route_devs(lab, node, subnet)
    return bool(devs) and "br-ex" not in devs and _agent_route(lab, node, subnet) is None


def _burst_clean(netns: str, address: str) -> bool:
    """Ten pings 20 ms apart, every one answered."""
    proc = run(["ping", "-n", "-c", "10", "-i", "0.02", "-W", "2", address], netns=netns,
               check=False)
    return " 0% packet loss" in proc.stdout


def test_the_client_reaches_the_vm_fixed_addresses_without_nat(lab: Lab, world: World) -> None:
    for address in (str(world.vm.ip4.ip), str(world.vm.ip6.ip)):
        wait_until(functools.partial(_burst_clean, world.client.netns, address),
                   timeout=CONVERGE_S, interval=0.05,
                   what=f"ten pings from the client to {address}, all answered")
    # The other way, counted at the client by source address: a1's fixed addresses arrive,
    # not r1's gateway address (SNAT would put that there).
    _count_echo_requests_from(world.client.netns, world.vm)
    for address in (str(world.client.ip.ip), str(world.client_ip6.ip)):
        wait_until(functools.partial(_pings, world.vm.netns, address), timeout=CONVERGE_S,
                   interval=0.05, what=f"a1 to ping the client at {address}")
    assert _echo_requests_from(world.client.netns) == {"v4": True, "v6": True}
    size = 1_000_000
    assert probe.tcp_transfer(world.client.netns, world.vm.netns, str(world.vm.ip6.ip),
                              size) == size
    # Routed, not translated: Neutron wrote no SNAT for a subnet in the external scope.
    assert not neutron_snat_rows(lab, NET1[1])


def _count_echo_requests_from(netns: str, vm: Vm) -> None:
    rules = ("table inet tenant_src {\n counter v4 {}\n counter v6 {}\n chain input {\n"
             "  type filter hook input priority 0; policy accept;\n"
             f"  ip saddr {vm.ip4.ip} icmp type echo-request counter name v4\n"
             f"  ip6 saddr {vm.ip6.ip} icmpv6 type echo-request counter name v6\n"
             " }\n}\n")
    run(["nft", "delete", "table", "inet", "tenant_src"], netns=netns, check=False)
    run(["nft", "-f", "-"], netns=netns, input_text=rules)


def _echo_requests_from(netns: str) -> dict[str, bool]:
    """Whether each counter of _count_echo_requests_from saw a packet."""
    seen = {}
    for name in ("v4", "v6"):
        text = run(["nft", "list", "counter", "inet", "tenant_src", name], netns=netns).stdout
        seen[name] = "packets 0 " not in text
    return seen


def neutron_snat_rows(lab: Lab, cidr: str) -> list[str]:
    return ovn.nbctl(lab.paths, lab.topology.controller.name, "--bare", "--columns=_uuid",
                     "find", "NAT", "type=snat", f'logical_ip="{cidr}"').split()


def test_a_subnet_outside_the_scopes_is_refused_and_reported(lab: Lab, world: World) -> None:
    name, cidr4, cidr6 = NET2
    neutron.add_network(lab.paths, lab.topology, name, cidr4=cidr4, cidr6=cidr6)
    neutron.attach(lab.paths, lab.topology, ROUTER, name)    # no scope, and SNAT
    try:
        for subnet in (cidr4, cidr6):
            wait_until(functools.partial(_refused, lab, ACTIVE, subnet,
                                         "not in a configured address scope"),
                       timeout=CONVERGE_S, what=f"{subnet} refused in {ACTIVE}'s status")
            assert _agent_route(lab, ACTIVE, subnet) is None
            assert _absent_at_spines(lab, (subnet,))
        assert _frr_permits(lab, ACTIVE) == set(world.subnets)
        assert neutron_snat_rows(lab, cidr4)     # Neutron NATs this one
        # Only where the gateway is active: the standby reports nothing about it.
        assert not any(r.get("address") in (cidr4, cidr6) for r in _refusals(lab, STANDBY))
    finally:
        address_scope.detach(lab.paths, lab.topology, ROUTER, name)
    assert not neutron_snat_rows(lab, cidr4)                 # detach took the SNAT row too
    wait_until(lambda: not any(r.get("address") in (cidr4, cidr6)
                               for r in _refusals(lab, ACTIVE)),
               timeout=CONVERGE_S, what=f"{name}'s refusals gone from {ACTIVE}'s status")


def test_an_overlapping_subnet_on_a_second_router_is_refused_on_both_gateways(
        lab: Lab, world: World) -> None:
    neutron.add_router(lab.paths, lab.topology, ROUTER2, gateway_chassis=(STANDBY, ACTIVE))
    try:
        # r2 on net1 too, at .254: the same two subnets behind two routers, active on two nodes.
        address_scope.attach_in_scope(
            lab.paths, lab.topology, ROUTER2, NET1[0], scope4=world.scope4,
            scope6=world.scope6, address4=IPv4Address("10.0.1.254"),
            address6=IPv6Address("fd00:10:1::fe"))
        for node in (ACTIVE, STANDBY):
            for subnet in world.subnets:
                wait_until(functools.partial(_refused, lab, node, subnet, "refusing all of them"),
                           timeout=CONVERGE_S, what=f"{subnet} refused as overlapping on {node}")
        wait_until(lambda: _absent_at_spines(lab, world.subnets), timeout=CONVERGE_S,
                   what=f"{world.subnets} withdrawn from both spines")
        for node in (ACTIVE, STANDBY):
            assert _frr_permits(lab, node) == set()
            assert all(_agent_route(lab, node, s) is None for s in world.subnets)
        address_scope.detach(lab.paths, lab.topology, ROUTER2, NET1[0])
        _wait_served_by(lab, world, ACTIVE)
    finally:
        neutron.del_router(lab.paths, lab.topology, ROUTER2)
    _wait_served_by(lab, world, ACTIVE)


def test_gateway_failover_moves_the_subnets(lab: Lab, world: World) -> None:
    links = [find_link(lab, ACTIVE, leaf) for leaf in probe.leaves_of(lab, ACTIVE)]
    start = time.monotonic()
    try:
        for link in links:
            cut_link(lab, link, silent=False)
        _wait_served_by(lab, world, STANDBY)
        moved = time.monotonic() - start
        wait_until(lambda: _pings(world.client.netns, str(world.vm.ip4.ip))
                   and _pings(world.client.netns, str(world.vm.ip6.ip)),
                   timeout=CONVERGE_S, interval=0.05, what="the client to ping a1 again")
        print(f"\nlinks of {ACTIVE} cut: subnets at both spines via {STANDBY} after {moved:.2f} s")
    finally:
        for link in links:
            restore_link(lab, link)
    _wait_served_by(lab, world, ACTIVE)
    wait_until(lambda: _pings(world.client.netns, str(world.vm.ip4.ip)), timeout=CONVERGE_S,
               interval=0.05, what="the client to ping a1 through compute2 again")


def test_removing_the_interface_withdraws_the_subnets_everywhere(
        lab: Lab, world: World) -> None:
    start = time.monotonic()
    address_scope.detach(lab.paths, lab.topology, ROUTER, NET1[0])
    try:
        wait_until(lambda: _absent_at_spines(lab, world.subnets), timeout=CONVERGE_S,
                   what=f"{world.subnets} withdrawn from both spines")
        print(f"\nsubnets withdrawn from both spines {time.monotonic() - start:.2f} s after "
              "the interface was removed")
        for node in (ACTIVE, STANDBY, "compute1"):
            wait_until(functools.partial(_absent_at, lab, node, world.subnets),
                       timeout=CONVERGE_S, what=f"{world.subnets} gone from {node}")
        wait_until(lambda: _frr_permits(lab, ACTIVE) == set(), timeout=CONVERGE_S,
                   what=f"the subnets' prefix-list entries gone from {ACTIVE}")
    finally:
        start = time.monotonic()
        address_scope.attach_in_scope(lab.paths, lab.topology, ROUTER, NET1[0],
                                      scope4=world.scope4, scope6=world.scope6)
    _wait_served_by(lab, world, ACTIVE)
    print(f"re-attached: at both spines after {time.monotonic() - start:.2f} s")


def test_leaves_accept_subnets_only_from_gateways_and_only_inside_the_pools(
        lab: Lab, world: World) -> None:
    """A subnet pushed into BGP by hand, with the server's own outbound filter lifted so that
    only the leaves' inbound filter stands in the way: outside the pools from a gateway, or
    inside them from a mere compute node, it never reaches the spines; inside them from a
    gateway, it does."""
    pushed = {"compute1": "10.0.99.0/24", ACTIVE: "198.51.100.0/24"}
    control = (ACTIVE, "10.0.98.0/24")
    entries = [*pushed.items(), control]
    filters = {node: _outbound_filter(lab, node) for node in pushed}
    for node, line in filters.items():
        _configure_ipv4(lab, node, f"no {line}")
    try:
        for node, prefix in entries:
            _network(lab, node, prefix, add=True)
        wait_until(lambda: route_to(lab, "spine1", control[1]) is not None, timeout=CONVERGE_S,
                   what=f"{control[1]} from {ACTIVE} at spine1 (inside the pool)")
        for node, prefix in pushed.items():
            leaves = probe.leaves_of(lab, node)
            # The leaves were offered it (no filter left on the server) and refused it.
            assert all(route_to(lab, leaf, prefix) is None for leaf in leaves), prefix
            assert route_to(lab, "spine1", prefix) is None, prefix
    finally:
        for node, prefix in entries:
            _network(lab, node, prefix, add=False)
        for node, line in filters.items():
            _configure_ipv4(lab, node, line)
    wait_until(lambda: route_to(lab, "spine1", control[1]) is None, timeout=CONVERGE_S,
               what=f"{control[1]} withdrawn from spine1")


def _outbound_filter(lab: Lab, node: str) -> str:
    """The server's outbound IPv4 prefix-list line towards its leaves, as bgpd shows it."""
    text = fabric.vtysh(lab.paths, node, "-c", "show running-config bgpd")
    return next(ln.strip() for ln in text.splitlines()
                if ln.strip().startswith("neighbor LEAVES prefix-list ") and ln.endswith(" out")
                and "ROUTES4" in ln)


def _configure_ipv4(lab: Lab, node: str, line: str) -> None:
    fabric.vtysh(lab.paths, node, "-c", "configure terminal",
                 "-c", f"router bgp {lab.topology.device(node).asn}",
                 "-c", "address-family ipv4 unicast", "-c", line)


def _network(lab: Lab, node: str, prefix: str, *, add: bool) -> None:
    if add:   # `network` needs the prefix in the RIB
        run(["ip", "route", "replace", "blackhole", prefix], netns=lab.netns(node))
    _configure_ipv4(lab, node, f"{'' if add else 'no '}network {prefix}")
    if not add:
        run(["ip", "route", "del", "blackhole", prefix], netns=lab.netns(node), check=False)
