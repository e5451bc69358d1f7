"""The topology loader: built-in topologies, derived facts, and errors that name the key."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from ovn_fabric.lab.topology import BUILTIN, Role, TopologyError, builtin_path, load, parse

from ..topologies import small_topology

MINIMAL = small_topology("mini", """
[[device]]
name = "r"
role = "router"
asn = 65000
[[device]]
name = "h"
roles = ["controller", "compute"]
asn = 65001
[[link]]
ends = ["h", "r"]
""")


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_topologies_load(name: str) -> None:
    topo = load(name)
    assert topo.name == name
    assert topo.controller.is_controller
    assert topo.chassis


def test_three_rack_shape() -> None:
    topo = load("three-rack")
    spines = [d for d in topo.devices if Role.SPINE in d.roles]
    leaves = [d for d in topo.devices if Role.LEAF in d.roles]
    assert len(spines) == 2
    assert len(leaves) == 6
    assert topo.controller.rack == 1
    assert {d.rack for d in topo.chassis} == {1, 2, 3}
    # every server is dual-homed to the two leaves of its rack, over iBGP, as an RR client
    for host in topo.hosts:
        ifaces = topo.interfaces(host.name)
        assert sorted(i.peer.name for i in ifaces) == [f"leaf{host.rack}a", f"leaf{host.rack}b"]
        assert all(i.ibgp for i in ifaces)
    leaf = topo.interfaces("leaf1a")
    assert {i.peer.name: i.reflect_to_peer for i in leaf} == {
        "spine1": False, "spine2": False, "controller": True, "compute1": True}


def test_loopbacks_follow_listing_order_and_interfaces_are_named_after_peers() -> None:
    topo = load("three-rack")
    assert topo.device("spine1").loopback4 == IPv4Address("10.255.0.1")
    assert str(topo.device("compute3").loopback6) == "fd00:255::c"
    assert [i.ifname for i in topo.interfaces("compute1")] == ["leaf1a", "leaf1b"]


def test_chassis_get_encap_addresses_from_their_pool_and_others_none() -> None:
    topo = load("three-rack")
    assert topo.encap_pool4 == IPv4Network("10.255.1.0/24")
    # device N of the file gets address N of the pool, like its loopback
    assert {d.name: str(d.encap4) for d in topo.chassis} == {
        "compute1": "10.255.1.10", "compute2": "10.255.1.11", "compute3": "10.255.1.12"}
    assert topo.encap("compute3") == IPv4Address("10.255.1.12")
    assert all(d.encap4 is None for d in topo.devices if not d.is_chassis)
    with pytest.raises(KeyError, match="not a chassis"):
        topo.encap("leaf1a")
    # a chassis may choose its own, inside the pool
    own = parse(MINIMAL.replace("asn = 65001", 'asn = 65001\nencap4 = "10.255.1.77"'))
    assert own.encap("h") == IPv4Address("10.255.1.77")


def test_parallel_links_get_numbered_interface_names() -> None:
    topo = load("two-worker")
    assert [i.ifname for i in topo.interfaces("worker1")] == ["router-1", "router-2"]
    assert [i.ifname for i in topo.interfaces("router")] == [
        "worker1-1", "worker1-2", "worker2-1", "worker2-2"]


def test_minimal_topology_parses() -> None:
    topo = parse(MINIMAL)
    assert topo.device("h").roles == frozenset({Role.CONTROLLER, Role.COMPUTE})
    assert topo.provider.bridge == "br-ex"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('asn = 65001', 'asn = "x"', "device 'h'.asn: expected int"),
        ('asn = 65001', 'asn = 65001\ncolour = "red"', "unknown key(s) 'colour'"),
        ('roles = ["controller", "compute"]', 'role = "toaster"', "unknown role"),
        ('ends = ["h", "r"]', 'ends = ["h", "nowhere"]', "no device named 'nowhere'"),
        ('ends = ["h", "r"]', 'ends = ["h", "h"]', "two different devices"),
        ('vip4 = "10.255.255.1"', 'vip4 = "fd00::1"', "control_plane.vip4: 'fd00::1' is not an "
         "IPv4 address"),
        ('gateway4 = "172.24.4.1"', 'gateway4 = "172.24.5.1"', "gateways must lie inside"),
        ('name = "h"', 'name = "H!"', "names are 1-12 lower-case"),
        ('name = "h"', 'name = "r"', "defined twice"),
        ('loopback4 = "10.255.0.0/24"', 'loopback4 = "10.255.0.0/33"', "not a network prefix"),
        ('roles = ["controller", "compute"]', 'roles = ["compute"]',
         "exactly one device must have the role 'controller'"),
        ('roles = ["controller", "compute"]', 'roles = ["controller", "leaf"]',
         "cannot also be a host"),
        ('encap4 = "10.255.1.0/24"\n', "", "addressing: missing key 'encap4'"),
        ('encap4 = "10.255.1.0/24"', 'encap4 = "10.255.0.128/25"',
         "addressing.encap4: 10.255.0.128/25 overlaps the loopback pool"),
        ('role = "router"', 'role = "router"\nencap4 = "10.255.1.9"',
         "device 'r'.encap4: only a chassis (compute, gateway) has one"),
        ('asn = 65001', 'asn = 65001\nencap4 = "10.255.2.1"',
         "device 'h'.encap4: 10.255.2.1 is not a host address of 10.255.1.0/24"),
        ('vip4 = "10.255.255.1"', 'vip4 = "10.255.1.2"',
         "control_plane: VIP equals the encap address of 'h'"),
        ('encap4 = "10.255.1.0/24"', 'encap4 = "10.255.1.0/24"\ntenant4 = "10.0.0.0/16"',
         "addressing.tenant4: expected list"),
        ('encap4 = "10.255.1.0/24"', 'encap4 = "10.255.1.0/24"\ntenant4 = ["fd00::/16"]',
         "addressing.tenant4[0]: 'fd00::/16' is not an IPv4 prefix"),
        ('encap4 = "10.255.1.0/24"', 'encap4 = "10.255.1.0/24"\ntenant4 = ["10.255.0.0/16"]',
         "addressing.tenant4: 10.255.0.0/16 overlaps the loopback pool 10.255.0.0/24"),
        ('encap4 = "10.255.1.0/24"', 'encap4 = "10.255.1.0/24"\ntenant6 = ["2001:db8:24::/48"]',
         "addressing.tenant6: 2001:db8:24::/48 overlaps the provider network"),
        ('encap4 = "10.255.1.0/24"',
         'encap4 = "10.255.1.0/24"\ntenant4 = ["10.0.0.0/16", "10.0.5.0/24"]',
         "addressing.tenant4: 10.0.5.0/24 overlaps another tenant pool 10.0.0.0/16"),
        ('encap4 = "10.255.1.0/24"', 'encap4 = "10.255.1.0/24"\ntenant4 = ["10.0.0.7/32"]',
         "addressing.tenant4[0]: 10.0.0.7/32 is no pool of subnets"),
    ],
)
def test_errors_name_the_offending_key(old: str, new: str, message: str) -> None:
    assert old in MINIMAL
    with pytest.raises(TopologyError, match=None) as info:
        parse(MINIMAL.replace(old, new, 1), source="mini.toml")
    assert message in str(info.value)
    assert str(info.value).startswith("mini.toml: ")


def test_not_toml_and_missing_file() -> None:
    with pytest.raises(TopologyError, match="not valid TOML"):
        parse("name = ")
    with pytest.raises(TopologyError, match="built-in topologies: three-rack, two-worker"):
        load("/nonexistent/topology.toml")


def test_builtin_files_are_shipped() -> None:
    for name in BUILTIN:
        assert builtin_path(name).is_file()


def test_tenant_pools_are_optional_and_listed_per_family() -> None:
    assert parse(MINIMAL).tenant_pools == ()
    topo = load("three-rack")
    assert topo.tenant_pools4 == (IPv4Network("10.0.0.0/16"),)
    assert [str(p) for p in topo.tenant_pools6] == ["fd00:10::/32"]
