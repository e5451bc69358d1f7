"""The pure parts of the overlay (a chassis' tunnel-endpoint plumbing, from the topology) and of
the Neutron-shaped tenant networks and routers (identities, subnets, rows), checked by value."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface
from pathlib import Path

import pytest

from ovn_fabric.lab import neutron, overlay
from ovn_fabric.lab.paths import LabPaths
from ovn_fabric.lab.topology import load


def test_endpoint_of_a_chassis_comes_from_the_topology() -> None:
    ep = overlay.endpoint(load("three-rack"), "compute3")
    assert ep.address == IPv4Address("10.255.1.12")
    assert ep.pool == IPv4Network("10.255.1.0/24")
    assert ep.uplinks == ("leaf3a", "leaf3b")
    assert ep.ovs_bridges == {"br-phy": ("phy-ovs",)}
    assert ep.bridge_mac != ep.host_mac
    assert overlay.endpoint(load("three-rack"), "compute3") == ep       # deterministic


def test_endpoint_plumbing_lines() -> None:
    ep = overlay.endpoint(load("three-rack"), "compute1")
    before = ep.kernel_before_ovs()
    # the local table moves down before its old rule goes: local delivery never stops
    assert before.index("rule add pref 100 lookup local") < before.index(
        "rule del pref 0 lookup local")
    assert "rule add pref 10 iif leaf1a to 10.255.1.10 lookup 6081" in before
    assert "rule add pref 10 iif leaf1b to 10.255.1.10 lookup 6081" in before
    assert "route replace 10.255.1.10/32 dev phy-host table 6081" in before
    assert f"neigh replace 10.255.1.10 lladdr {ep.bridge_mac} dev phy-host nud permanent" \
        in before
    assert ep.kernel_after_ovs() == [
        "address replace 10.255.1.10/32 dev br-phy",
        "address replace 10.255.1.10/24 dev br-phy noprefixroute",
        "route replace 10.255.1.0/24 dev br-phy table 6081",
    ]
    assert ep.sysctls["net.ipv4.conf.phy-host.proxy_arp"] == "1"
    assert ep.sysctls["net.ipv4.conf.phy-host.accept_local"] == "1"


def test_a_switch_has_no_endpoint() -> None:
    with pytest.raises(KeyError, match="not a chassis"):
        overlay.endpoint(load("three-rack"), "spine1")


@pytest.fixture
def paths(tmp_path: Path) -> LabPaths:
    return LabPaths("ofu", root=tmp_path)


def test_tenant_network_identities_are_deterministic_and_gateways_first_hosts(
        paths: LabPaths) -> None:
    topo = load("three-rack")
    net = neutron.plan_network(paths, topo, "net1", cidr4="10.0.1.0/24", cidr6="fd00:10:1::/64")
    again = neutron.plan_network(paths, topo, "net1", cidr4="10.0.1.0/24",
                                 cidr6="fd00:10:1::/64")
    assert net == again
    assert net.switch == f"neutron-{net.network_id}"
    assert str(net.gateway4) == "10.0.1.1"
    assert str(net.gateway6) == "fd00:10:1::1"
    assert net.mtu == 1442 == neutron.PHYSICAL_MTU - neutron.GENEVE_OVERHEAD
    assert neutron.TenantNetwork.from_json(net.to_json()) == net
    other = neutron.plan_network(LabPaths("ofv", root=paths.root), topo, "net1",
                                 cidr4="10.0.1.0/24", cidr6="fd00:10:1::/64")
    assert other.network_id != net.network_id      # another lab, other uuids


@pytest.mark.parametrize(("cidr4", "cidr6", "message"), [
    ("172.24.4.0/25", "fd00:10:1::/64", "overlaps 172.24.4.0/24"),       # the provider's
    ("10.255.1.0/28", "fd00:10:1::/64", "overlaps 10.255.1.0/24"),       # tunnel endpoints
    ("10.0.1.0/24", "2001:db8:24:4::/64", "overlaps 2001:db8:24:4::/64"),
    ("10.0.1.0/30", "fd00:10:1::/64", "at least 8 addresses"),
    ("fd00::/64", "fd00:10:1::/64", "--cidr4 takes an IPv4 prefix"),
    ("10.0.1.0/33", "fd00:10:1::/64", "network 'x'"),
])
def test_bad_tenant_subnets_are_refused(paths: LabPaths, cidr4: str, cidr6: str,
                                        message: str) -> None:
    with pytest.raises(neutron.NeutronError, match=None) as info:
        neutron.plan_network(paths, load("three-rack"), "x", cidr4=cidr4, cidr6=cidr6)
    assert message in str(info.value)


def test_overlap_with_an_existing_tenant_network_is_refused(paths: LabPaths) -> None:
    topo = load("three-rack")
    net = neutron.plan_network(paths, topo, "net1", cidr4="10.0.1.0/24", cidr6="fd00:10:1::/64")
    record = paths.lab_dir / "neutron" / "networks" / "net1.json"
    record.parent.mkdir(parents=True)
    record.write_text(net.to_json())
    with pytest.raises(neutron.NeutronError, match=r"overlaps 10\.0\.1\.0/24"):
        neutron.plan_network(paths, topo, "net2", cidr4="10.0.1.128/25", cidr6="fd00:10:2::/64")
    with pytest.raises(neutron.NeutronError, match="provider network"):
        neutron.plan_network(paths, topo, "public", cidr4="10.0.9.0/24", cidr6="fd00:9::/64")


def test_gateway_chassis_are_the_gateway_capable_chassis_in_topology_order() -> None:
    assert neutron.default_gateway_chassis(load("three-rack")) == ("compute2", "compute3")
    assert neutron.default_gateway_chassis(load("two-worker")) == ()


def _router(paths: LabPaths) -> neutron.Router:
    return neutron.Router(
        name="r1", router_id="rid", gw_port_id="gw", gw_mac="fa:16:3e:00:00:01",
        gw_ip4=IPv4Interface("172.24.4.254/24"), gw_ip6=IPv6Interface("2001:db8:24:4::fe/64"),
        gateway_chassis=("compute2", "compute3"),
        interfaces=(neutron.RouterInterface("net1", "if1", "fa:16:3e:00:00:02"),))


def test_router_rows_have_neutrons_names_and_survive_a_round_trip(paths: LabPaths) -> None:
    router = _router(paths)
    assert (router.lr, router.gw_lrp, router.redirect_port) == (
        "neutron-rid", "lrp-gw", "cr-lrp-gw")
    assert neutron.Router.from_json(router.to_json()) == router
    topo = load("three-rack")
    lrp = neutron.gateway_lrp_columns(paths, topo, router)
    assert lrp[0] == 'options={"gateway_mtu"="1500", "reside-on-redirect-chassis"="false"}'
    assert '"neutron:router_name"="neutron-rid"' in lrp[1]
    assert '"neutron:is_ext_gw"="True"' in lrp[1]
    lsp = neutron.gateway_lsp_columns(paths, topo, router)
    assert lsp[:2] == ["type=router", 'addresses=["router"]']
    assert '"nat-addresses"="router"' in lsp[2]
    assert '"neutron:device_owner"="network:router_gateway"' in lsp[3]
    net = neutron.plan_network(paths, topo, "net1", cidr4="10.0.1.0/24", cidr6="fd00:10:1::/64")
    iface = router.interfaces[0]
    lrp_if, lsp_if = neutron.interface_columns(paths, router, net, iface)
    assert '"neutron:is_ext_gw"="False"' in lrp_if[0]
    assert lsp_if[2] == 'options={"router-port"="lrp-if1"}'
    assert '"neutron:device_owner"="network:router_interface"' in lsp_if[3]
    assert '"neutron:cidrs"="10.0.1.1/24 fd00:10:1::1/64"' in lsp_if[3]
    assert '"neutron:subnet_pool_addr_scope4"=""' in lsp_if[3]
