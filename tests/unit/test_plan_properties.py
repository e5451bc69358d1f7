"""Properties of the view builders and the planner over fuzzed rows: realistic Neutron rows with
columns deleted, added or replaced by garbage, mixed with rows that are garbage through and
through."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Literal

from hypothesis import given, settings
from hypothesis import strategies as st

from ovn_fabric import config
from ovn_fabric.config import ExposurePolicy, PrefixRule, Settings
from ovn_fabric.model import IPAddress, IPNetwork
from ovn_fabric.ovn.view import Chassis, Datapath, OvnView, PortBinding, build_view
from ovn_fabric.plan import plan

from .neutron_rows import (
    CHASSIS_0,
    CHASSIS_1,
    chassis_row,
    datapath_row,
    localnet_row,
    vm_port_row,
)

DATAPATHS = ("dp-public", "dp-vlan", "dp-storage", "dp-private")
PHYSNETS = ("datacentre", "vlannet", "storage", "far")
BRIDGE_MAPPINGS = "datacentre:br-ex,vlannet:br-vlan,storage:br-storage"
SETTINGS = config.parse("""
[bridges.br-ex]
gateways = ["172.24.4.1/24", "2001:db8::1/64"]
[bridges.br-vlan]
gateways = ["10.100.0.1/24"]
""")

MACS = ("fa:16:3e:a1:b2:c3", "FA:16:3E:00:00:01", "fa:16:3e:0:0:2", "01:00:5e:00:00:01",
        "00:00:00:00:00:00", "zz:16:3e:00:00:01", "fa:16:3e:a1:b2", "unknown", "router")
ALLOWED_TOKENS = ("172.24.4.10", "172.24.4.11/24", "2001:db8::10", "10.100.0.5", "172.24.4.99")
ADDRESS_TOKENS = (
    "172.24.4.10", "172.24.4.11/24", "172.24.4.12", "2001:db8::10", "2001:db8::11/64",
    "10.100.0.5", "0.0.0.0/0", "0.0.0.0",  # noqa: S104 (addresses, not binds)
    "127.0.0.1", "169.254.1.1", "224.0.0.1", "255.255.255.255", "240.1.2.3", "172.24.4.1",
    "172.24.4.0", "172.24.4.255", "2001:db8::",
    "2001:db8::1", "10.255.0.3", "192.0.2.1", "fe80::1", "ff02::1", "::", "::1",
    "::ffff:172.24.4.10", "fe80::1%eth0", "172.24.4.300", "1.2.3.4/33", "dynamic", "x", "/",
)

def often(value: Any, otherwise: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly `value`, else something drawn from `otherwise`."""
    return st.one_of(st.just(value), st.just(value), st.just(value), otherwise)


# --- strategies --------------------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
                    st.uuids())
garbage = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner),
                            st.dictionaries(st.text(max_size=6), inner, max_size=3),
                            st.frozensets(st.text(max_size=6), max_size=2)),
    max_leaves=6,
)
ip_tokens = st.one_of(
    st.sampled_from(ALLOWED_TOKENS),
    st.sampled_from(ADDRESS_TOKENS),
    st.ip_addresses().map(str),
    st.builds(lambda ip, plen: f"{ip}/{plen}", st.ip_addresses(v=4), st.integers(0, 32)),
    st.text(alphabet="0123456789abcdef:./%", max_size=16),
)
mac_entries = st.one_of(
    st.builds(lambda mac, ips: " ".join([mac, *ips]),
              often(MACS[0], st.sampled_from(MACS)), st.lists(ip_tokens, min_size=1, max_size=4)),
    st.builds(lambda mac, ips: " ".join([mac, *ips]),
              often(MACS[0], st.sampled_from(MACS)), st.lists(ip_tokens, min_size=1, max_size=4)),
    st.sampled_from(("unknown", "router", "dynamic", "")),
    st.text(max_size=30),
)


@st.composite
def mangled(draw: st.DrawFn, row: dict[str, Any]) -> dict[str, Any]:
    """A realistic row with some columns deleted, some added and some replaced by garbage
    (about one row in four)."""
    row = dict(row)
    if not draw(often(False, st.just(True))):
        return row
    for column in draw(st.sets(st.sampled_from(sorted(row)), max_size=3)):
        del row[column]
    for column in draw(st.sets(st.sampled_from([*sorted(row), "extra", "_uuid"]), max_size=3)):
        row[column] = draw(garbage)
    return row


vm_ports = st.builds(
    lambda port, dp, mac, chassis, up: vm_port_row(port, dp, "net", mac, chassis=chassis, up=up),
    st.sampled_from(("vm-a", "vm-b", "vm-c", "vm-d")),
    often("dp-public", st.sampled_from(DATAPATHS)),
    st.lists(mac_entries, min_size=1, max_size=3),
    often(CHASSIS_0, st.sampled_from((CHASSIS_1, None))),
    often(True, st.just(False)),
)
# Mostly the localnets of a real deployment (one per provider datapath), sometimes a stray one.
usual_localnets = st.sampled_from((
    localnet_row("seg-public", "dp-public", "datacentre"),
    localnet_row("seg-vlan", "dp-vlan", "vlannet", 100),
    localnet_row("seg-storage", "dp-storage", "storage"),
))
stray_localnets = st.builds(
    localnet_row,
    st.sampled_from(("seg-a", "seg-b", "seg-c")),
    st.sampled_from(DATAPATHS),
    st.sampled_from(PHYSNETS),
    st.one_of(st.none(), st.integers(1, 4095)),
)
localnets = st.one_of(usual_localnets, usual_localnets, usual_localnets, stray_localnets)
port_binding_rows = st.one_of(vm_ports.flatmap(mangled), localnets.flatmap(mangled), garbage)
port_binding_lists = st.builds(
    lambda ln, vms, junk: [*ln, *vms, *junk],
    st.lists(localnets.flatmap(mangled), min_size=1, max_size=3),
    st.lists(vm_ports.flatmap(mangled), min_size=1, max_size=8),
    st.lists(garbage, max_size=2),
)
datapath_rows = st.one_of(
    st.builds(lambda dp, key: datapath_row(dp, "net", dp.removeprefix("dp-"), key),
              st.sampled_from(DATAPATHS), st.integers(1, 10)).flatmap(mangled),
    garbage,
)
chassis_rows = st.one_of(
    st.sampled_from((chassis_row(CHASSIS_0, "compute-0"),
                     chassis_row(CHASSIS_1, "compute-1"))).flatmap(mangled),
    garbage,
)


@st.composite
def view_inputs(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "local_chassis": draw(often(CHASSIS_0, st.one_of(st.sampled_from((CHASSIS_1, "")),
                                                         garbage))),
        "bridge_mappings": draw(often(BRIDGE_MAPPINGS, st.one_of(
            st.sampled_from(("", "datacentre:br-ex,,vlannet:br-vlan",
                             "datacentre:br-ex,bad,vlannet:br-vlan",
                             "datacentre:br-ex,datacentre:br-vlan")),
            st.text(max_size=30), garbage))),
        "chassis": draw(st.lists(chassis_rows, max_size=3)),
        "datapaths": draw(st.lists(datapath_rows, max_size=5)),
        "port_bindings": draw(st.one_of(port_binding_lists, port_binding_lists,
                                        st.lists(port_binding_rows, max_size=10))),
    }


@st.composite
def realistic_view_inputs(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed deployment: every provider localnet, VM ports with fuzzed addresses."""
    return {
        "local_chassis": CHASSIS_0,
        "bridge_mappings": BRIDGE_MAPPINGS,
        "chassis": [chassis_row(CHASSIS_0, "compute-0"), chassis_row(CHASSIS_1, "compute-1")],
        "datapaths": [datapath_row(dp, "net", dp, n) for n, dp in enumerate(DATAPATHS, 1)],
        "port_bindings": [
            localnet_row("seg-public", "dp-public", "datacentre"),
            localnet_row("seg-vlan", "dp-vlan", "vlannet", 100),
            localnet_row("seg-storage", "dp-storage", "storage"),
            *draw(st.lists(vm_ports, min_size=1, max_size=8)),
        ],
    }


def networks(version: Literal[4, 6]) -> st.SearchStrategy[IPNetwork]:
    bits = 32 if version == 4 else 128
    return st.builds(lambda ip, plen: ipaddress.ip_network((ip, plen), strict=False),
                     st.ip_addresses(v=version), st.integers(0, bits))


def prefix_rules(name: str) -> st.SearchStrategy[tuple[PrefixRule, ...]]:
    return st.lists(st.one_of(networks(4), networks(6)), max_size=4).map(
        lambda nets: tuple(PrefixRule(net, f"{name}[{i}]") for i, net in enumerate(nets)))


@st.composite
def node_settings(draw: st.DrawFn) -> Settings:
    if draw(st.booleans()):
        return SETTINGS
    policy = ExposurePolicy(
        allow=draw(prefix_rules("exposure.allow")) + SETTINGS.exposure.allow,
        deny=draw(prefix_rules("exposure.deny")),
    )
    return Settings(bridges=SETTINGS.bridges, exposure=policy)


# --- the view builders -------------------------------------------------------------------------


@given(st.one_of(port_binding_rows, vm_ports, localnets))
def test_port_binding_from_row_never_raises_and_gives_a_hashable_row(row: object) -> None:
    _check_from_row(PortBinding.from_row, row)


@given(datapath_rows)
def test_datapath_from_row_never_raises_and_gives_a_hashable_row(row: object) -> None:
    _check_from_row(Datapath.from_row, row)


@given(chassis_rows)
def test_chassis_from_row_never_raises_and_gives_a_hashable_row(row: object) -> None:
    _check_from_row(Chassis.from_row, row)


def _check_from_row(from_row: Callable[[object], tuple[Any, tuple[Any, ...]]],
                    row: object) -> None:
    built, problems = from_row(row)
    hash((built, problems))
    assert built is not None or problems, "a dropped row must say why"


# --- the planner -------------------------------------------------------------------------------


@given(st.one_of(view_inputs(), realistic_view_inputs()), node_settings())
@settings(max_examples=300)
def test_plan_never_routes_what_the_policy_forbids(inputs: dict[str, Any],
                                                   node: Settings) -> None:
    view = build_view(**inputs)
    hash(view)
    state = plan(view, node)

    for route in state.routes:
        assert route.dst.prefixlen == route.dst.max_prefixlen
        _assert_exposable(route.dst.network_address, node)
    routed = {route.dst.network_address: route.dev for route in state.routes}
    for neighbour in state.neighbours:
        assert routed.get(neighbour.ip) == neighbour.dev
    assert {exposure.prefix for exposure in state.exposures} == {r.dst for r in state.routes}
    refused = {(refusal.what, refusal.port) for refusal in state.refusals}
    assert len(refused) <= len(state.refusals)


def _assert_exposable(ip: IPAddress, node: Settings) -> None:
    """An oracle written apart from the planner's own tables."""
    assert not ip.is_unspecified
    assert not ip.is_loopback
    assert not ip.is_link_local
    assert not ip.is_multicast
    if isinstance(ip, IPv4Address):
        assert ip != IPv4Address("255.255.255.255")
        assert ip not in ipaddress.ip_network("240.0.0.0/4")
    if isinstance(ip, IPv6Address):
        assert ip.ipv4_mapped is None
    for bridge in node.bridges:
        for gateway in bridge.gateways:
            assert ip != gateway.ip
            if ip.version == 4 and gateway.network.prefixlen < 31:
                assert ip not in (gateway.network.network_address,
                                  gateway.network.broadcast_address)
    assert any(ip in rule.prefix for rule in node.exposure.allow)
    assert not any(ip in rule.prefix for rule in node.exposure.deny)


@given(view_inputs(), node_settings(), st.randoms(use_true_random=False))
def test_plan_is_deterministic_and_independent_of_row_order(
    inputs: dict[str, Any], node: Settings, random: Any
) -> None:
    shuffled = dict(inputs)
    for table in ("chassis", "datapaths", "port_bindings"):
        rows = list(inputs[table])
        random.shuffle(rows)
        shuffled[table] = rows
    view, view_shuffled = build_view(**inputs), build_view(**shuffled)

    assert view == view_shuffled
    assert hash(view) == hash(view_shuffled)
    assert plan(view, node) == plan(view_shuffled, node) == plan(build_view(**inputs), node)


@given(view_inputs())
def test_a_view_built_by_hand_in_any_order_is_the_same_view(inputs: dict[str, Any]) -> None:
    view = build_view(**inputs)
    reversed_view = OvnView(
        local_chassis=view.local_chassis, bridge_mappings=view.bridge_mappings,
        integration_bridge=view.integration_bridge, chassis=view.chassis[::-1],
        datapaths=view.datapaths[::-1], port_bindings=view.port_bindings[::-1],
        problems=view.problems[::-1],
    )

    assert reversed_view == view
    assert plan(reversed_view, SETTINGS) == plan(view, SETTINGS)
