"""Properties of the view builders and the planner over fuzzed rows: realistic Neutron rows with
columns deleted, added or replaced by garbage, mixed with rows that are garbage through and
through. The rows cover VM ports, routers (cr-lrp, gateway and interface patch ports with fuzzed
`nat_addresses` and `mac`), virtual ports, live migrations and load balancers."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from itertools import cycle
from typing import Any, Literal

from hypothesis import given, settings
from hypothesis import strategies as st

from ovn_fabric import config
from ovn_fabric.config import ExposurePolicy, PrefixRule, Settings, TenantNetworks
from ovn_fabric.model import IPAddress, IPNetwork, Reason
from ovn_fabric.ovn.view import (
    ADDRESS_KEYWORDS,
    MAC_RE,
    Address,
    AddressEntry,
    BuildMemo,
    Chassis,
    Datapath,
    LoadBalancer,
    OvnView,
    PortBinding,
    build_view,
    parse_address_entry,
    parse_nat_address,
    parse_vip,
)
from ovn_fabric.plan import PlanMemo, plan
from ovn_fabric.plan.exposure import Allowed, ExposureGate, Refused, Span

from .neutron_rows import (
    CHASSIS_0,
    CHASSIS_1,
    NEUTRON_RELEASES,
    chassis_row,
    datapath_row,
    gateway_lsp_row,
    interface_lsp_row,
    load_balancer_row,
    localnet_row,
    migrating,
    port_forwarding_lb_row,
    redirect_row,
    router_datapath_row,
    router_port_row,
    virtual_port_row,
    vm_port_row,
)

DATAPATHS = ("dp-public", "dp-vlan", "dp-storage", "dp-private")
ROUTER_DATAPATHS = ("dp-r1", "dp-r2")
GATEWAYS = ("gw-a", "gw-b")
INTERFACES = ("if-a", "if-b", "if-c")
SCOPE = "5c1f0a8e-3b2d-4c6f-9e7a-0d1c2b3a4f50"
PHYSNETS = ("datacentre", "vlannet", "storage", "far")
BRIDGE_MAPPINGS = "datacentre:br-ex,vlannet:br-vlan,storage:br-storage"
SETTINGS = config.parse("""
[bridges.br-ex]
gateways = ["172.24.4.1/24", "2001:db8::1/64"]
[bridges.br-vlan]
gateways = ["10.100.0.1/24"]
""")
TENANT_SETTINGS = config.parse(f"""
[bridges.br-ex]
gateways = ["172.24.4.1/24", "2001:db8::1/64"]
[bridges.br-vlan]
gateways = ["10.100.0.1/24"]
[exposure]
allow = ["172.24.4.0/24", "2001:db8::/64", "10.100.0.0/24", "10.0.0.0/8", "2001:db8:10::/48"]
deny = ["10.0.128.0/17"]
[tenant_networks]
enabled = true
address_scopes = ["{SCOPE}"]
""")

MACS = ("fa:16:3e:a1:b2:c3", "FA:16:3E:00:00:01", "fa:16:3e:0:0:2", "01:00:5e:00:00:01",
        "00:00:00:00:00:00", "zz:16:3e:00:00:01", "fa:16:3e:a1:b2", "unknown", "router")
ALLOWED_TOKENS = ("172.24.4.10", "172.24.4.11/24", "2001:db8::10", "10.100.0.5", "172.24.4.99")
# Addresses with prefixes, as router ports carry them (gateways and tenant subnets).
INTERFACE_TOKENS = ("172.24.4.100/24", "172.24.4.101/24", "2001:db8::100/64", "10.0.0.1/26",
                    "10.0.0.1/24", "10.0.0.65/26", "10.0.128.1/24", "2001:db8:10::1/64",
                    "172.24.4.129/25", "10.100.0.7/24", "0.0.0.1/0", "10.0.0.1/32", "fe80::1/64",
                    "10.0.0.1", "10.0.0.300/24", "x/24")
# Ports a nat_addresses entry may name, and how it may be written.
RESIDENTS = ("cr-lrp-gw-a", "cr-lrp-gw-b", "vm-a", "vm-b", "vip-a", "nope", "")
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
interface_entries = st.builds(
    lambda mac, tokens: " ".join([mac, *tokens]),
    often(MACS[0], st.sampled_from(MACS)),
    st.lists(st.one_of(st.sampled_from(INTERFACE_TOKENS), ip_tokens), min_size=1, max_size=3),
)
nat_entries = st.one_of(
    st.builds(lambda mac, ips, port, form: form.format(" ".join([mac, *ips]), port),
              often(MACS[0], st.sampled_from(MACS)), st.lists(ip_tokens, min_size=1, max_size=3),
              st.sampled_from(RESIDENTS),
              often('{} is_chassis_resident("{}")', st.sampled_from((
                  "{} is_chassis_resident({})", '{} is_chassis_resident( "{}" )', "{}",
                  '{} is_chassis_resident("{}") x', '{} is_chassis_resident("{}\\"")')))),
    st.text(max_size=40),
)
redirects = st.builds(
    lambda gw, dp, mac, chassis, neutron, dnat: redirect_row(
        gw, dp, "router", "net", mac, chassis=chassis, neutron=neutron, distributed_nat=dnat),
    st.sampled_from(GATEWAYS), st.sampled_from(ROUTER_DATAPATHS), interface_entries,
    often(CHASSIS_0, st.sampled_from((CHASSIS_1, None))), st.sampled_from(NEUTRON_RELEASES),
    st.booleans(),
)
gateway_ports = st.builds(
    lambda gw, dp, nat: gateway_lsp_row(f"port-{gw}", dp, gw, router_id="router",
                                        network_id="net", nat_addresses=nat, cidrs=""),
    st.sampled_from(GATEWAYS), often("dp-public", st.sampled_from(DATAPATHS)),
    st.lists(nat_entries, max_size=4),
)
router_ports = st.builds(
    lambda port, dp, mac: router_port_row(f"lrp-{port}", dp, mac, peer=port, router_id="router",
                                          network_id="net"),
    st.sampled_from(INTERFACES), st.sampled_from(ROUTER_DATAPATHS), interface_entries,
)
interface_ports = st.builds(
    lambda port, dp, scope4, scope6: interface_lsp_row(port, dp, "router", "net", "",
                                                       scope4=scope4, scope6=scope6),
    st.sampled_from(INTERFACES), often("dp-private", st.sampled_from(DATAPATHS)),
    often(SCOPE, st.sampled_from(("", SCOPE.upper(), "other"))),
    often(SCOPE, st.sampled_from(("", "other"))),
)
virtual_ports = st.builds(
    lambda dp, ip, chassis, parent, neutron, mac: virtual_port_row(
        "vip-a", dp, "net", ip, ["vm-a", "vm-b"], chassis=chassis, parent=parent,
        neutron=neutron, mac=mac),
    often("dp-public", st.sampled_from(DATAPATHS)), ip_tokens,
    often(CHASSIS_0, st.sampled_from((CHASSIS_1, None))),
    st.sampled_from(("vm-a", "vm-b", None)), st.sampled_from(NEUTRON_RELEASES),
    st.one_of(st.none(), st.lists(mac_entries, max_size=2)),
)
migrations = st.builds(
    lambda row, source, activated, strategy: migrating(row, source, CHASSIS_0,
                                                       activated=activated, strategy=strategy),
    vm_ports, st.sampled_from((CHASSIS_1, CHASSIS_0)), st.booleans(),
    st.sampled_from(("rarp", None, "other")),
)
router_rows = st.one_of(redirects, gateway_ports, router_ports, interface_ports, virtual_ports,
                        migrations)


@st.composite
def whole_routers(draw: st.DrawFn) -> list[dict[str, Any]]:
    """One router as Neutron builds it (cr-lrp, gateway, an interface), addresses fuzzed."""
    index = draw(st.integers(0, 1))
    gw, dp, port = GATEWAYS[index], ROUTER_DATAPATHS[index], INTERFACES[index]
    gateway = f"fa:16:3e:10:20:3{index} 172.24.4.10{index}/24 2001:db8::10{index}/64"
    subnets = f"fa:16:3e:00:00:0{index} 10.0.{index}.1/26 2001:db8:10:{index}::1/64"
    return [
        redirect_row(gw, dp, "router", "net", draw(often(gateway, interface_entries)),
                     chassis=draw(often(CHASSIS_0, st.just(CHASSIS_1)))),
        gateway_lsp_row(f"port-{gw}", "dp-public", gw, router_id="router", network_id="net",
                        nat_addresses=draw(st.lists(nat_entries, max_size=3)), cidrs=""),
        router_port_row(f"lrp-{port}", dp, draw(often(subnets, interface_entries)), peer=port,
                        router_id="router", network_id="net"),
        interface_lsp_row(port, "dp-private", "router", "net", "", scope4=SCOPE, scope6=SCOPE),
    ]

vip_keys = st.one_of(
    st.builds(lambda ip, port: f"{ip}:{port}", st.one_of(st.sampled_from(ALLOWED_TOKENS),
                                                         st.ip_addresses(v=4).map(str)),
              st.integers(0, 70000)),
    st.builds(lambda ip, port: f"[{ip}]:{port}", st.ip_addresses(v=6), st.integers(1, 65535)),
    ip_tokens, st.text(max_size=12),
)
load_balancer_rows = st.one_of(
    st.builds(
        lambda uuid, vips, switches, routers, ovn: load_balancer_row(
            uuid, "lb", vips, switches=switches, routers=routers, ovn=ovn),
        st.sampled_from(("lb-1", "lb-2", "lb-3")),
        st.dictionaries(vip_keys, st.just("10.0.0.22:80"), max_size=4),
        st.lists(st.sampled_from(DATAPATHS), max_size=2),
        st.lists(st.sampled_from(ROUTER_DATAPATHS), max_size=2),
        st.sampled_from(("20.12", "22.09", "23.03", "24.03")),
    ).flatmap(mangled),
    st.builds(
        lambda uuid, vips, neutron: port_forwarding_lb_row(uuid, "fip", vips, "router",
                                                           neutron=neutron),
        st.sampled_from(("pf-1", "pf-2")),
        st.dictionaries(vip_keys, st.just("10.0.0.22:22"), max_size=2),
        st.sampled_from(NEUTRON_RELEASES),
    ).flatmap(mangled),
    garbage,
)
port_binding_rows = st.one_of(vm_ports.flatmap(mangled), localnets.flatmap(mangled),
                              router_rows.flatmap(mangled), garbage)
port_binding_lists = st.builds(
    lambda ln, vms, routers, junk: [*ln, *vms, *routers, *junk],
    st.lists(localnets.flatmap(mangled), min_size=1, max_size=3),
    st.lists(vm_ports.flatmap(mangled), min_size=1, max_size=8),
    st.lists(router_rows.flatmap(mangled), max_size=8),
    st.lists(garbage, max_size=2),
)
datapath_rows = st.one_of(
    st.builds(lambda dp, key: datapath_row(dp, "net", dp.removeprefix("dp-"), key),
              st.sampled_from(DATAPATHS), st.integers(1, 10)).flatmap(mangled),
    st.builds(lambda dp, key: router_datapath_row(dp, "router", dp.removeprefix("dp-"), key),
              st.sampled_from(ROUTER_DATAPATHS), st.integers(11, 20)).flatmap(mangled),
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
        "load_balancers": draw(st.lists(load_balancer_rows, max_size=3)),
    }


@st.composite
def realistic_view_inputs(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed deployment: every provider localnet, VM ports with fuzzed addresses."""
    return {
        "local_chassis": CHASSIS_0,
        "bridge_mappings": BRIDGE_MAPPINGS,
        "chassis": [chassis_row(CHASSIS_0, "compute-0"), chassis_row(CHASSIS_1, "compute-1")],
        "datapaths": [*(datapath_row(dp, "net", dp, n) for n, dp in enumerate(DATAPATHS, 1)),
                      *(router_datapath_row(dp, "router", dp, n)
                        for n, dp in enumerate(ROUTER_DATAPATHS, 11))],
        "port_bindings": [
            localnet_row("seg-public", "dp-public", "datacentre"),
            localnet_row("seg-vlan", "dp-vlan", "vlannet", 100),
            localnet_row("seg-storage", "dp-storage", "storage"),
            *draw(st.lists(vm_ports, min_size=1, max_size=8)),
            *draw(st.lists(router_rows, max_size=10)),
            *(row for rows in draw(st.lists(whole_routers(), max_size=2)) for row in rows),
        ],
        "load_balancers": draw(st.lists(load_balancer_rows, max_size=3)),
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
    base = draw(st.sampled_from((SETTINGS, TENANT_SETTINGS)))
    if draw(st.booleans()):
        return base
    policy = ExposurePolicy(
        allow=draw(prefix_rules("exposure.allow")) + base.exposure.allow,
        deny=draw(prefix_rules("exposure.deny")),
    )
    tenant = draw(st.sampled_from((base.tenant_networks, TenantNetworks(
        enabled=True, address_scopes=(SCOPE, "5c1f0a8e-3b2d-4c6f-9e7a-0d1c2b3a4f99")))))
    return Settings(bridges=base.bridges, exposure=policy, tenant_networks=tenant)


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


@given(load_balancer_rows)
def test_load_balancer_from_row_never_raises_and_gives_a_hashable_row(row: object) -> None:
    _check_from_row(LoadBalancer.from_row, row)


@given(st.one_of(nat_entries, st.text()))
def test_nat_addresses_parse_without_raising(entry: str) -> None:
    parsed = parse_nat_address(entry)
    assert parsed.error or parsed.resident
    assert parsed.mac is not None or not parsed.addresses


def _reference_address_entry(entry: str) -> AddressEntry:
    """parse_address_entry as it was first written (ip_interface for every token, every byte
    of the MAC formatted): the fast paths must give exactly this."""
    tokens = entry.split()
    if not tokens or tokens[0] in ADDRESS_KEYWORDS:
        return AddressEntry(mac=None)
    if not MAC_RE.match(tokens[0]):
        return AddressEntry(mac=None, rejected=((entry, "does not start with an Ethernet "
                                                        "address"),))
    mac = ":".join(f"{int(part, 16):02x}" for part in tokens[0].split(":"))
    not_unicast = mac == "00:00:00:00:00:00" or int(mac[:2], 16) & 1
    addresses, rejected = [], []
    for token in tokens[1:]:
        if token in ADDRESS_KEYWORDS:
            continue
        ip: IPAddress | None = None
        if "%" in token:
            why = "a scoped address"
        else:
            try:
                ip, why = ipaddress.ip_interface(token).ip, ""
            except ValueError:
                why = "not an IP address"
        if ip is not None and not_unicast:
            ip, why = None, f"its Ethernet address {mac} is not a unicast address"
        if ip is not None:
            addresses.append(Address(token, ip))
        else:
            rejected.append((token, why))
    return AddressEntry(mac=mac, addresses=tuple(addresses), rejected=tuple(rejected))


@given(st.one_of(mac_entries, st.builds(
    lambda mac, ips: " ".join([mac, *ips]),
    st.from_regex(r"[0-9A-Fa-f]{1,2}(:[0-9A-Fa-f]{1,2}){5}", fullmatch=True),
    st.lists(st.one_of(ip_tokens, st.ip_addresses().map(lambda ip: f"{ip}/{ip.max_prefixlen}"),
                       st.text(alphabet="0123456789abcdefABCDEF:./% ", max_size=40)),
             max_size=4))))
@settings(max_examples=500)
def test_address_entries_parse_as_the_reference_does(entry: str) -> None:
    assert parse_address_entry.__wrapped__(entry) == _reference_address_entry(entry)


@given(st.one_of(vip_keys, st.text()))
def test_vips_parse_without_raising(key: str) -> None:
    ip, why = parse_vip(key)
    assert (ip is None) == bool(why)


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

    reasons = {exposure.prefix: exposure.reason for exposure in state.exposures}
    for route in state.routes:
        if route.dst.prefixlen == route.dst.max_prefixlen:
            _assert_exposable(route.dst.network_address, node)
        else:   # only a tenant subnet, behind its router's gateway address
            assert reasons[route.dst] == Reason.TENANT_SUBNET
            assert node.tenant_networks.enabled
            assert route.via is not None
            assert route.via.version == route.dst.version
            _assert_subnet_exposable(route.dst, node)
    routed = {route.dst.network_address: route.dev for route in state.routes
              if route.dst.prefixlen == route.dst.max_prefixlen}
    for neighbour in state.neighbours:
        assert routed.get(neighbour.ip) == neighbour.dev
    assert {exposure.prefix for exposure in state.exposures} == {r.dst for r in state.routes}
    refused = {(refusal.what, refusal.port) for refusal in state.refusals}
    assert len(refused) <= len(state.refusals)


def _assert_subnet_exposable(prefix: IPNetwork, node: Settings) -> None:
    """A subnet: its ends are ordinary addresses, it lies inside one allow prefix, and it
    touches no deny prefix and no managed bridge's subnet."""
    for ip in (prefix.network_address, prefix.broadcast_address):
        assert not ip.is_unspecified
        assert not ip.is_loopback
        assert not ip.is_link_local
        assert not ip.is_multicast
    assert any(_inside(prefix, rule.prefix) for rule in node.exposure.allow)
    assert not any(prefix.version == rule.prefix.version and prefix.overlaps(rule.prefix)
                   for rule in node.exposure.deny)
    for bridge in node.bridges:
        for gateway in bridge.gateways:
            assert not (prefix.version == gateway.version and prefix.overlaps(gateway.network))


def _inside(prefix: IPNetwork, outer: IPNetwork) -> bool:
    return (prefix.version == outer.version
            and int(outer.network_address) <= int(prefix.network_address)
            and int(prefix.broadcast_address) <= int(outer.broadcast_address))


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
    for table in ("chassis", "datapaths", "port_bindings", "load_balancers"):
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
        problems=view.problems[::-1], load_balancers=view.load_balancers[::-1],
    )

    assert reversed_view == view
    assert plan(reversed_view, SETTINGS) == plan(view, SETTINGS)


@given(realistic_view_inputs())
@settings(max_examples=200)
def test_a_tenant_subnet_is_never_advertised_twice_across_the_nodes(
        inputs: dict[str, Any]) -> None:
    """Every node sees the same routers; overlapping subnets are refused everywhere, and each
    router's gateway is active on one node only, so no two advertised subnets overlap."""
    advertised: list[IPNetwork] = []
    for local in (CHASSIS_0, CHASSIS_1):
        state = plan(build_view(**{**inputs, "local_chassis": local}), TENANT_SETTINGS)
        advertised += [e.prefix for e in state.exposures if e.reason == Reason.TENANT_SUBNET]
    for index, prefix in enumerate(advertised):
        for other in advertised[index + 1:]:
            assert prefix.version != other.version or not prefix.overlaps(other)


@given(view_inputs(), node_settings(),
       st.lists(st.lists(st.booleans(), min_size=1, max_size=8), min_size=1, max_size=6))
@settings(max_examples=200)
def test_a_plan_memo_never_changes_the_result(inputs: dict[str, Any], node: Settings,
                                              masks: list[list[bool]]) -> None:
    """The reconciler plans with a PlanMemo that reuses the previous call's work: over any
    sequence of views (rows bound, unbound, placed here but not bound yet, which the memo
    resolves ahead, changed between calls), the result is the one a call without a memo
    gives."""
    memo = PlanMemo()
    rows = list(inputs["port_bindings"])
    for step, mask in enumerate(masks):
        kept = [row if keep else _placed_here(row)
                for row, keep in zip(rows, cycle(mask)) if keep or step % 2]
        view = build_view(**{**inputs, "port_bindings": kept})
        assert plan(view, node, memo) == plan(view, node)


def _placed_here(row: object) -> object:
    """A row as Neutron leaves it while Nova starts the VM: requested here, not bound."""
    if not isinstance(row, dict):
        return row
    return {**row, "chassis": [], "requested_chassis": [CHASSIS_0]}


@st.composite
def row_versions(draw: st.DrawFn) -> list[list[object]]:
    """Successive versions of a list of Port_Binding rows as the OVSDB reader hands them over:
    each row keyed by its `_uuid`; between versions a row is the same object, or a new dict
    sharing the values of the columns that did not change (with some of them, or its `_uuid`,
    taken from another row), or gone."""
    rows: list[object] = [
        {**row, "_uuid": f"row-{n}"} if isinstance(row, dict) and draw(st.booleans()) else row
        for n, row in enumerate(draw(st.lists(port_binding_rows, min_size=1, max_size=8)))]
    versions = [rows]
    for _ in range(draw(st.integers(1, 4))):
        previous, rows = rows, []
        for row in previous:
            change = draw(st.sampled_from(("same", "same", "columns", "columns", "gone")))
            if change == "same" or not isinstance(row, dict):
                rows.append(row)
            elif change == "columns":
                donor = draw(st.sampled_from(previous))
                donor = donor if isinstance(donor, dict) else {}
                names = [*row, *(column for column in donor if column not in row)]
                columns = draw(st.lists(st.sampled_from(names), max_size=4)) if names else []
                rows.append({**row, **{c: donor.get(c) for c in columns}})
        versions.append(rows)
    return versions


@given(row_versions())
@settings(max_examples=300)
def test_a_build_memo_never_changes_the_view(versions: list[list[object]]) -> None:
    """The reader builds each view with a BuildMemo that reuses unchanged rows and the
    unchanged column values of changed ones: over any sequence of row versions, the view (rows
    and problems) is the one a build without a memo gives."""
    memo = BuildMemo()
    for rows in versions:
        inputs: dict[str, Any] = {"local_chassis": CHASSIS_0, "bridge_mappings": BRIDGE_MAPPINGS,
                                  "port_bindings": rows}
        assert build_view(**inputs, memo=memo) == build_view(**inputs)


def _reference_judge(gate: ExposureGate, prefix: IPNetwork) -> Allowed | Refused:
    """ExposureGate.judge as first written, over its Spans: the fast path must agree."""
    if prefix.prefixlen == 0:
        return Refused("the default route")
    span = Span.of(prefix)
    for refused, why in gate.refused:
        if span.overlaps(refused):
            return Refused(why)
    for denied, rule in gate.deny:
        if span.overlaps(denied):
            return Refused(f"inside the denied prefix {rule}")
    for allowed, rule in gate.longest_first:
        if span.within(allowed):
            return Allowed(f"allow {rule}")
    in_family = [str(rule.prefix) for rule in gate.allow if rule.prefix.version == prefix.version]
    if not in_family:
        return Refused(f"no IPv{prefix.version} prefix is allowed")
    return Refused(f"outside the allowed prefixes ({', '.join(in_family)})")


@given(node_settings(), st.lists(st.one_of(networks(4), networks(6), st.sampled_from([
    ipaddress.ip_network(p) for p in ("172.24.4.1/32", "172.24.4.0/32", "172.24.4.255/32",
                                      "127.0.0.1/32", "10.0.0.0/8", "2001:db8::1/128")])),
    min_size=1, max_size=10))
@settings(max_examples=300)
def test_the_exposure_gate_judges_as_the_reference_does(node: Settings,
                                                        prefixes: list[IPNetwork]) -> None:
    gate = ExposureGate.from_settings(node)
    for prefix in prefixes:
        assert gate.judge(prefix) == _reference_judge(gate, prefix)
