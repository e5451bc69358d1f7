"""The planner, by value: rows shaped as Neutron and northd write them, the whole DesiredState
compared at once."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from ovn_fabric import config
from ovn_fabric.model import (
    BridgeSetup,
    DesiredState,
    EgressFlow,
    Exposure,
    HostRoute,
    Neighbour,
    Reason,
    Refusal,
)
from ovn_fabric.ovn.view import OvnView, build_view
from ovn_fabric.plan import PlanMemo, plan

from .neutron_rows import (
    CHASSIS_0,
    CHASSIS_1,
    FAR_DP,
    FAR_NET,
    FAR_SEG,
    PRIVATE_DP,
    PRIVATE_NET,
    PUBLIC_DP,
    PUBLIC_NET,
    PUBLIC_SEG,
    Row,
    datapath_row,
    localnet_row,
    two_chassis,
    vm_port_row,
)

# Networks: Neutron network id, its segment id, and the SB Datapath_Binding UUID.
VLAN_NET, VLAN_SEG, VLAN_DP = (
    "4c1f7b2d-8a3e-4f9b-8c6d-2e3f4a5b6c70", "f2a3b4c5-d6e7-4f80-91a2-b3c4d5e6f708",
    "8d2e1c3b-4a5f-4e6d-9c7b-0a1b2c3d4e02")
STORAGE_NET, STORAGE_SEG, STORAGE_DP = (
    "5d2a8c3e-9b4f-4a0c-9d7e-3f4a5b6c7d80", "a3b4c5d6-e7f8-4091-a2b3-c4d5e6f70819",
    "8d2e1c3b-4a5f-4e6d-9c7b-0a1b2c3d4e03")

VM1 = "11111111-aaaa-4bbb-8ccc-000000000001"
VM2 = "11111111-aaaa-4bbb-8ccc-000000000002"
VM3 = "11111111-aaaa-4bbb-8ccc-000000000003"

# compute-0 maps datacentre and vlannet to bridges it manages, storage to a bridge it does not
# manage (plain layer 2), and has no mapping for physnet-far.
BRIDGE_MAPPINGS = "datacentre:br-ex,vlannet:br-vlan,storage:br-storage"
SETTINGS_TOML = """
[bridges.br-ex]
gateways = ["172.24.4.1/24", "2001:db8::1/64"]

[bridges.br-vlan]
gateways = ["10.100.0.1/24"]
"""
SETTINGS = config.parse(SETTINGS_TOML)

CHASSIS = two_chassis()
DATAPATHS = [
    datapath_row(PUBLIC_DP, PUBLIC_NET, "public", 1),
    datapath_row(VLAN_DP, VLAN_NET, "provider-vlan100", 2),
    datapath_row(STORAGE_DP, STORAGE_NET, "storage", 3),
    datapath_row(FAR_DP, FAR_NET, "far", 4),
    datapath_row(PRIVATE_DP, PRIVATE_NET, "private", 5),
]
LOCALNETS = [
    localnet_row(PUBLIC_SEG, PUBLIC_DP, "datacentre"),
    localnet_row(VLAN_SEG, VLAN_DP, "vlannet", tag=100),
    localnet_row(STORAGE_SEG, STORAGE_DP, "storage"),
    localnet_row(FAR_SEG, FAR_DP, "physnet-far"),
]

PUBLIC_FLOW = EgressFlow("br-ex", f"patch-provnet-{PUBLIC_SEG}-to-br-int")
VLAN_FLOW = EgressFlow("br-vlan", f"patch-provnet-{VLAN_SEG}-to-br-int", vlan=100)
BR_EX = BridgeSetup("br-ex", ("172.24.4.1/24", "2001:db8::1/64"))
BR_VLAN = BridgeSetup("br-vlan", ("10.100.0.1/24",))

ALLOW_PUBLIC4 = "allow 172.24.4.0/24 (bridges.br-ex.gateways[0])"
ALLOW_PUBLIC6 = "allow 2001:db8::/64 (bridges.br-ex.gateways[1])"
ALLOW_VLAN4 = "allow 10.100.0.0/24 (bridges.br-vlan.gateways[0])"
OUTSIDE4 = "outside the allowed prefixes (172.24.4.0/24, 10.100.0.0/24)"
OUTSIDE6 = "outside the allowed prefixes (2001:db8::/64)"


def view_of(*ports: Row, local: str = CHASSIS_0, mappings: str = BRIDGE_MAPPINGS,
            localnets: list[Row] = LOCALNETS) -> OvnView:
    view = build_view(local_chassis=local, bridge_mappings=mappings, chassis=CHASSIS,
                      datapaths=DATAPATHS, port_bindings=[*localnets, *ports])
    assert view.problems == ()
    return view


def state(
    *,
    routes: tuple[HostRoute, ...] = (),
    neighbours: tuple[Neighbour, ...] = (),
    exposures: tuple[Exposure, ...] = (),
    refusals: tuple[Refusal, ...] = (),
    flows: tuple[EgressFlow, ...] = (PUBLIC_FLOW, VLAN_FLOW),
    bridges: tuple[BridgeSetup, ...] = (BR_EX, BR_VLAN),
) -> DesiredState:
    return DesiredState(routes=frozenset(routes), neighbours=frozenset(neighbours),
                        flows=frozenset(flows), bridges=frozenset(bridges),
                        exposures=exposures, refusals=refusals)


def public_vm(mac: list[str], port: str = VM1, chassis: str | None = CHASSIS_0,
              up: bool = True) -> Row:
    return vm_port_row(port, PUBLIC_DP, PUBLIC_NET, mac, chassis=chassis, up=up)


def route(prefix: str, dev: str = "br-ex") -> HostRoute:
    return HostRoute(ip_network(prefix), dev)


def neighbour(ip: str, mac: str, dev: str = "br-ex") -> Neighbour:
    return Neighbour(ip_address(ip), mac, dev)


def exposure(prefix: str, port: str, network: str, rule: str) -> Exposure:
    return Exposure(ip_network(prefix), Reason.PROVIDER_PORT, port, network, rule)


# --- provider networks -------------------------------------------------------------------------


def test_vm_on_a_flat_provider_network_is_routed_with_ipv4_and_ipv6() -> None:
    vm = vm_port_row(VM1, PUBLIC_DP, PUBLIC_NET,
                     ["fa:16:3e:a1:b2:c3 172.24.4.10 2001:db8::f816:3eff:fea1:b2c3"],
                     chassis=CHASSIS_0,
                     cidrs="172.24.4.10/24 2001:db8::f816:3eff:fea1:b2c3/64")

    assert plan(view_of(vm), SETTINGS) == state(
        routes=(route("172.24.4.10/32"), route("2001:db8::f816:3eff:fea1:b2c3/128")),
        neighbours=(neighbour("172.24.4.10", "fa:16:3e:a1:b2:c3"),
                    neighbour("2001:db8::f816:3eff:fea1:b2c3", "fa:16:3e:a1:b2:c3")),
        exposures=(exposure("172.24.4.10/32", VM1, "public", ALLOW_PUBLIC4),
                   exposure("2001:db8::f816:3eff:fea1:b2c3/128", VM1, "public", ALLOW_PUBLIC6)),
    )


def test_vm_on_a_vlan_provider_network_is_routed_on_its_bridge() -> None:
    vm = vm_port_row(VM2, VLAN_DP, VLAN_NET, ["fa:16:3e:00:10:02 10.100.0.20"],
                     chassis=CHASSIS_0, name="vlan-port")

    assert plan(view_of(vm), SETTINGS) == state(
        routes=(route("10.100.0.20/32", "br-vlan"),),
        neighbours=(neighbour("10.100.0.20", "fa:16:3e:00:10:02", "br-vlan"),),
        exposures=(exposure("10.100.0.20/32", VM2, "provider-vlan100", ALLOW_VLAN4),),
    )


def test_provider_networks_alone_give_their_flows_and_bridges() -> None:
    assert plan(view_of(), SETTINGS) == state()


def test_no_mapped_physnet_gives_nothing_at_all() -> None:
    assert plan(view_of(mappings=""), SETTINGS) == DesiredState()


def test_the_patch_port_is_named_after_the_integration_bridge() -> None:
    view = build_view(local_chassis=CHASSIS_0, bridge_mappings="datacentre:br-ex",
                      integration_bridge="br-int2", port_bindings=LOCALNETS)

    assert plan(view, SETTINGS).flows == frozenset(
        {EgressFlow("br-ex", f"patch-provnet-{PUBLIC_SEG}-to-br-int2")})


def test_a_network_with_two_localnet_ports_mapped_here_is_refused() -> None:
    second = localnet_row("d0d0d0d0-0000-4000-8000-000000000000", PUBLIC_DP, "vlannet", tag=7)
    vm = public_vm(["fa:16:3e:a1:b2:c3 172.24.4.10"])

    assert plan(view_of(vm, localnets=[*LOCALNETS, second]), SETTINGS) == state(
        flows=(VLAN_FLOW,),
        bridges=(BR_VLAN,),
        refusals=(Refusal(
            "public",
            f"provnet-d0d0d0d0-0000-4000-8000-000000000000, provnet-{PUBLIC_SEG}",
            "several localnet ports of this network are mapped on this node; "
            "serving none of them"),),
    )


def test_a_vlan_network_sharing_its_bridge_with_a_flat_one_is_refused() -> None:
    """vlannet is mapped to br-ex too: the VLAN network cannot have the bridge to itself, so it
    gets no route, no advertisement and no flow; the flat network keeps working."""
    vlan_vm = vm_port_row(VM2, VLAN_DP, VLAN_NET, ["fa:16:3e:00:10:02 10.100.0.20"],
                          chassis=CHASSIS_0, name="vlan-port")
    public = public_vm(["fa:16:3e:a1:b2:c3 172.24.4.10"])

    desired = plan(view_of(public, vlan_vm, mappings="datacentre:br-ex,vlannet:br-ex"), SETTINGS)

    assert desired.routes == frozenset({route("172.24.4.10/32")})
    assert [str(e.prefix) for e in desired.exposures] == ["172.24.4.10/32"]
    assert desired.flows == frozenset({PUBLIC_FLOW})
    assert desired.refusals == (Refusal(
        "provider-vlan100", f"provnet-{VLAN_SEG}",
        "VLAN 100 on bridge br-ex, which also carries public; a VLAN network needs a bridge "
        "of its own: serving it nowhere"),)


def test_two_vlan_networks_on_one_bridge_are_both_refused() -> None:
    second = localnet_row(STORAGE_SEG, STORAGE_DP, "vlannet2", tag=200)
    localnets = [LOCALNETS[0], LOCALNETS[1], second]
    mappings = "datacentre:br-ex,vlannet:br-vlan,vlannet2:br-vlan"

    desired = plan(view_of(localnets=localnets, mappings=mappings), SETTINGS)

    assert desired.flows == frozenset({PUBLIC_FLOW})
    assert [(r.what, r.why.split(";")[0]) for r in desired.refusals] == [
        ("provider-vlan100", "VLAN 100 on bridge br-vlan, which also carries storage"),
        ("storage", "VLAN 200 on bridge br-vlan, which also carries provider-vlan100")]


# --- which ports are served --------------------------------------------------------------------


@pytest.mark.parametrize(
    "vm",
    [
        pytest.param(public_vm(["fa:16:3e:a1:b2:c3 172.24.4.10"], chassis=None, up=False),
                     id="unbound"),
        pytest.param(public_vm(["fa:16:3e:a1:b2:c3 172.24.4.10"], chassis=CHASSIS_1),
                     id="bound-elsewhere"),
        pytest.param(public_vm(["fa:16:3e:a1:b2:c3 172.24.4.10"], up=False),
                     id="bound-here-but-down"),
        pytest.param(vm_port_row(VM1, PRIVATE_DP, PRIVATE_NET, ["fa:16:3e:a1:b2:c3 10.0.0.22"],
                                 chassis=CHASSIS_0), id="tenant-network"),
        pytest.param(vm_port_row(VM1, STORAGE_DP, STORAGE_NET, ["fa:16:3e:a1:b2:c3 172.24.4.10"],
                                 chassis=CHASSIS_0), id="physnet-on-an-unmanaged-bridge"),
        pytest.param(vm_port_row(VM1, FAR_DP, FAR_NET, ["fa:16:3e:a1:b2:c3 172.24.4.10"],
                                 chassis=CHASSIS_0), id="physnet-not-mapped-here"),
    ],
)
def test_ports_this_node_does_not_carry_give_nothing(vm: Row) -> None:
    assert plan(view_of(vm), SETTINGS) == state()


def test_a_port_whose_up_column_is_unset_is_served() -> None:
    vm = public_vm(["fa:16:3e:a1:b2:c3 172.24.4.10"])
    vm["up"] = []   # OVN before 21.03 has no up column; later ones may leave it empty

    assert plan(view_of(vm), SETTINGS) == state(
        routes=(route("172.24.4.10/32"),),
        neighbours=(neighbour("172.24.4.10", "fa:16:3e:a1:b2:c3"),),
        exposures=(exposure("172.24.4.10/32", VM1, "public", ALLOW_PUBLIC4),),
    )


def test_a_port_placed_here_is_resolved_ahead_and_served_only_once_bound() -> None:
    """Neutron places a port here (requested_chassis) while Nova starts the VM; the reconciler's
    memo resolves its claims ahead (prospective_claims). That adds nothing to the plan, and
    the plan of the bind, which reuses that work, is the one a call without a memo gives."""
    mac = ["fa:16:3e:a1:b2:c3 172.24.4.10 2001:db8::10"]
    placed = {**public_vm(mac, chassis=None, up=False), "requested_chassis": [CHASSIS_0]}
    elsewhere = {**public_vm(mac, port=VM2, chassis=None, up=False),
                 "requested_chassis": [CHASSIS_1]}
    memo = PlanMemo()

    assert plan(view_of(placed, elsewhere), SETTINGS, memo) == state()
    bound = view_of(public_vm(mac), elsewhere)
    assert plan(bound, SETTINGS, memo) == plan(bound, SETTINGS) == state(
        routes=(route("172.24.4.10/32"), route("2001:db8::10/128")),
        neighbours=(neighbour("172.24.4.10", "fa:16:3e:a1:b2:c3"),
                    neighbour("2001:db8::10", "fa:16:3e:a1:b2:c3")),
        exposures=(exposure("172.24.4.10/32", VM1, "public", ALLOW_PUBLIC4),
                   exposure("2001:db8::10/128", VM1, "public", ALLOW_PUBLIC6)),
    )


def test_nothing_is_bound_here_when_the_local_chassis_is_unknown() -> None:
    view = build_view(local_chassis=None, bridge_mappings=BRIDGE_MAPPINGS, datapaths=DATAPATHS,
                      port_bindings=[*LOCALNETS, public_vm(["fa:16:3e:a1:b2:c3 172.24.4.10"])])

    assert plan(view, SETTINGS) == state()


def test_several_entries_and_keywords_of_the_mac_column() -> None:
    vm = public_vm(["unknown", "fa:16:3e:a1:b2:c3 172.24.4.10/24 dynamic",
                    "FA:16:3E:0A:0B:0C 172.24.4.11", "router", "dynamic", ""])

    assert plan(view_of(vm), SETTINGS) == state(
        routes=(route("172.24.4.10/32"), route("172.24.4.11/32")),
        neighbours=(neighbour("172.24.4.10", "fa:16:3e:a1:b2:c3"),
                    neighbour("172.24.4.11", "fa:16:3e:0a:0b:0c")),
        exposures=(exposure("172.24.4.10/32", VM1, "public", ALLOW_PUBLIC4),
                   exposure("172.24.4.11/32", VM1, "public", ALLOW_PUBLIC4)),
    )


# --- refusals ----------------------------------------------------------------------------------


def test_malformed_entries_are_refused_and_the_good_addresses_kept() -> None:
    vm = public_vm([
        "fa:16:3e:a1:b2:c3 172.24.4.10 172.24.4.300 2001:db8::zz",
        "172.24.4.12",
        "01:00:5e:00:00:01 172.24.4.13",
        "fa:16:3e:a1:b2:c3 2001:db8::14%br-ex",
    ])

    assert plan(view_of(vm), SETTINGS) == state(
        routes=(route("172.24.4.10/32"),),
        neighbours=(neighbour("172.24.4.10", "fa:16:3e:a1:b2:c3"),),
        exposures=(exposure("172.24.4.10/32", VM1, "public", ALLOW_PUBLIC4),),
        refusals=(
            Refusal("172.24.4.12", VM1, "does not start with an Ethernet address"),
            Refusal("172.24.4.13", VM1,
                    "its Ethernet address 01:00:5e:00:00:01 is not a unicast address"),
            Refusal("172.24.4.300", VM1, "not an IP address"),
            Refusal("2001:db8::14%br-ex", VM1, "a scoped address"),
            Refusal("2001:db8::zz", VM1, "not an IP address"),
        ),
    )


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("0.0.0.0/0", "the unspecified address"),
        ("0.0.0.0", "the unspecified address"),  # noqa: S104 (an address, not a bind)
        ("::", "the unspecified address"),
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("169.254.169.254", "a link-local address"),
        ("fe80::f816:3eff:fea1:b2c3", "a link-local address"),
        ("224.0.0.5", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("255.255.255.255", "the broadcast address"),
        ("240.0.0.1", "a reserved address (240.0.0.0/4)"),
        ("::ffff:172.24.4.10", "an IPv4-mapped IPv6 address"),
        ("172.24.4.1", "the gateway address of bridge br-ex"),
        ("2001:db8::1", "the gateway address of bridge br-ex"),
        ("172.24.4.0", "the network address of 172.24.4.0/24 (bridge br-ex)"),
        ("172.24.4.255", "the broadcast address of 172.24.4.0/24 (bridge br-ex)"),
        ("2001:db8::", "the network address of 2001:db8::/64 (bridge br-ex)"),
        ("10.100.0.1", "the gateway address of bridge br-vlan"),
        ("10.255.0.3", OUTSIDE4),                    # a fabric loopback
        ("192.0.2.7", OUTSIDE4),
        ("2001:db8:1::7", OUTSIDE6),
    ],
)
def test_addresses_the_node_must_not_expose_are_refused(address: str, why: str) -> None:
    vm = public_vm([f"fa:16:3e:a1:b2:c3 {address} 172.24.4.10"])

    assert plan(view_of(vm), SETTINGS) == state(
        routes=(route("172.24.4.10/32"),),
        neighbours=(neighbour("172.24.4.10", "fa:16:3e:a1:b2:c3"),),
        exposures=(exposure("172.24.4.10/32", VM1, "public", ALLOW_PUBLIC4),),
        refusals=(Refusal(address, VM1, why),),
    )


def test_deny_beats_allow_and_the_longest_allow_prefix_is_named() -> None:
    settings = config.parse(SETTINGS_TOML + """
[exposure]
allow = ["10.0.0.0/8", "172.24.0.0/16", "172.24.4.0/24"]
deny = ["10.255.0.0/24"]
""")
    vm = public_vm(["fa:16:3e:a1:b2:c3 172.24.4.10 10.255.0.3 10.1.2.3 2001:db8::10"])

    assert plan(view_of(vm), settings) == state(
        routes=(route("172.24.4.10/32"), route("10.1.2.3/32")),
        neighbours=(neighbour("172.24.4.10", "fa:16:3e:a1:b2:c3"),
                    neighbour("10.1.2.3", "fa:16:3e:a1:b2:c3")),
        exposures=(
            exposure("10.1.2.3/32", VM1, "public", "allow 10.0.0.0/8 (exposure.allow[0])"),
            exposure("172.24.4.10/32", VM1, "public",
                     "allow 172.24.4.0/24 (exposure.allow[2])"),
        ),
        refusals=(
            Refusal("10.255.0.3", VM1,
                    "inside the denied prefix 10.255.0.0/24 (exposure.deny[0])"),
            Refusal("2001:db8::10", VM1, "no IPv6 prefix is allowed"),
        ),
    )


def test_an_empty_allow_list_refuses_everything() -> None:
    settings = config.parse(SETTINGS_TOML + "[exposure]\nallow = []\n")
    vm = public_vm(["fa:16:3e:a1:b2:c3 172.24.4.10"])

    assert plan(view_of(vm), settings) == state(refusals=(Refusal(
        "172.24.4.10", VM1, "no IPv4 prefix is allowed"),))


# --- duplicate claims --------------------------------------------------------------------------


def test_two_local_ports_claiming_one_address_are_both_refused() -> None:
    vm1 = public_vm(["fa:16:3e:a1:b2:c3 172.24.4.10 172.24.4.11"])
    vm2 = public_vm(["fa:16:3e:d4:e5:f6 172.24.4.10"], port=VM2)
    why = (f"claimed differently on this node by {VM1} (fa:16:3e:a1:b2:c3 on br-ex), "
           f"{VM2} (fa:16:3e:d4:e5:f6 on br-ex); refusing all of them")

    assert plan(view_of(vm1, vm2), SETTINGS) == state(
        routes=(route("172.24.4.11/32"),),
        neighbours=(neighbour("172.24.4.11", "fa:16:3e:a1:b2:c3"),),
        exposures=(exposure("172.24.4.11/32", VM1, "public", ALLOW_PUBLIC4),),
        refusals=(Refusal("172.24.4.10", VM1, why), Refusal("172.24.4.10", VM2, why)),
    )


def test_one_address_on_two_networks_of_this_node_is_refused() -> None:
    vm1 = public_vm(["fa:16:3e:a1:b2:c3 10.100.0.20"])
    vm3 = vm_port_row(VM3, VLAN_DP, VLAN_NET, ["fa:16:3e:a1:b2:c3 10.100.0.20"],
                      chassis=CHASSIS_0)
    why = (f"claimed differently on this node by {VM1} (fa:16:3e:a1:b2:c3 on br-ex), "
           f"{VM3} (fa:16:3e:a1:b2:c3 on br-vlan); refusing all of them")

    assert plan(view_of(vm1, vm3), SETTINGS) == state(refusals=(
        Refusal("10.100.0.20", VM1, why), Refusal("10.100.0.20", VM3, why)))


def test_claims_that_agree_are_merged() -> None:
    vm = public_vm(["fa:16:3e:a1:b2:c3 172.24.4.10", "fa:16:3e:a1:b2:c3 172.24.4.10/24"])

    assert plan(view_of(vm), SETTINGS) == state(
        routes=(route("172.24.4.10/32"),),
        neighbours=(neighbour("172.24.4.10", "fa:16:3e:a1:b2:c3"),),
        exposures=(exposure("172.24.4.10/32", VM1, "public", ALLOW_PUBLIC4),),
    )


def test_a_port_claiming_one_address_with_two_macs_is_refused() -> None:
    vm = public_vm(["fa:16:3e:a1:b2:c3 172.24.4.10", "fa:16:3e:a1:b2:c4 172.24.4.10"])
    why = (f"claimed differently on this node by {VM1} (fa:16:3e:a1:b2:c3 on br-ex), "
           f"{VM1} (fa:16:3e:a1:b2:c4 on br-ex); refusing all of them")

    assert plan(view_of(vm), SETTINGS) == state(refusals=(Refusal("172.24.4.10", VM1, why),))


def test_the_same_address_bound_on_another_node_does_not_conflict_here() -> None:
    here = public_vm(["fa:16:3e:a1:b2:c3 172.24.4.10"])
    there = public_vm(["fa:16:3e:d4:e5:f6 172.24.4.10"], port=VM2, chassis=CHASSIS_1)

    assert plan(view_of(here, there), SETTINGS) == state(
        routes=(route("172.24.4.10/32"),),
        neighbours=(neighbour("172.24.4.10", "fa:16:3e:a1:b2:c3"),),
        exposures=(exposure("172.24.4.10/32", VM1, "public", ALLOW_PUBLIC4),),
    )
