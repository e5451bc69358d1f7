"""The replay test of issue 4: Southbound rows shaped exactly as Neutron (both the older and the
newer releases where they differ) and ovn-northd 23.03 write them (/work/shared/OVN_DATA.md),
for floating IPs, router gateways, tenant subnets, load balancers, virtual ports and live
migration; each time the whole DesiredState is compared by value."""

from __future__ import annotations

from dataclasses import replace
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
from ovn_fabric.plan import plan

from .neutron_rows import (
    CHASSIS_0,
    CHASSIS_1,
    FAR_DP,
    FAR_NET,
    FAR_SEG,
    NEUTRON_RELEASES,
    PRIVATE_DP,
    PRIVATE_NET,
    PUBLIC_DP,
    PUBLIC_NET,
    PUBLIC_SEG,
    Row,
    datapath_row,
    gateway_lsp_row,
    interface_lsp_row,
    load_balancer_row,
    localnet_row,
    migrating,
    nat_entry,
    port_forwarding_lb_row,
    redirect_row,
    router_datapath_row,
    router_port_row,
    two_chassis,
    virtual_port_row,
    vm_port_row,
)

# Networks: Neutron network id, its segment id (provider networks), the SB datapath UUID.
OTHER_NET, OTHER_DP = (
    "80a5bf61-2e7c-4d3f-8a01-6c7d8e9fa0b1", "8d2e1c3b-4a5f-4e6d-9c7b-0a1b2c3d4e06")
# Routers: Neutron router id and its SB datapath; gateway and interface port ids.
ROUTER1, ROUTER1_DP = (
    "c0ffee00-1111-4aaa-8bbb-000000000001", "8d2e1c3b-4a5f-4e6d-9c7b-0a1b2c3d4e11")
ROUTER2, ROUTER2_DP = (
    "c0ffee00-2222-4aaa-8bbb-000000000002", "8d2e1c3b-4a5f-4e6d-9c7b-0a1b2c3d4e12")
GW1 = "22222222-aaaa-4bbb-8ccc-000000000001"
GW2 = "22222222-aaaa-4bbb-8ccc-000000000002"
IF1 = "33333333-aaaa-4bbb-8ccc-000000000001"
IF2 = "33333333-aaaa-4bbb-8ccc-000000000002"
CR1, CR2 = f"cr-lrp-{GW1}", f"cr-lrp-{GW2}"
# Ports.
VM_T = "11111111-aaaa-4bbb-8ccc-000000000022"       # a tenant VM on "private", with a FIP
VM_P = "11111111-aaaa-4bbb-8ccc-000000000010"       # a VM on the provider network
PARENT1 = "11111111-aaaa-4bbb-8ccc-0000000000a1"
PARENT2 = "11111111-aaaa-4bbb-8ccc-0000000000a2"
VIP_PORT = "11111111-aaaa-4bbb-8ccc-0000000000f0"
# Addresses.
GW1_MAC, GW2_MAC = "fa:16:3e:10:20:30", "fa:16:3e:10:20:31"
GW1_MAC_COLUMN = f"{GW1_MAC} 172.24.4.100/24 2001:db8::1/64"
GW2_MAC_COLUMN = f"{GW2_MAC} 172.24.4.101/24 2001:db8::2/64"
FIP_MAC = "fa:16:3e:99:99:99"
ROUTER1_IPS = nat_entry(GW1_MAC, ["172.24.4.100"], CR1)     # northd: the router's own IPv4
SCOPE4, SCOPE6, OTHER_SCOPE = (
    "5c1f0a8e-3b2d-4c6f-9e7a-0d1c2b3a4f50", "5c1f0a8e-3b2d-4c6f-9e7a-0d1c2b3a4f60",
    "5c1f0a8e-3b2d-4c6f-9e7a-0d1c2b3a4f70")
LB_ID = "a1b2c3d4-0000-4e5f-8a9b-0c1d2e3f4a5b"
LB_UUID = "0d0d0d0d-0000-4000-8000-000000000001"

BRIDGE_MAPPINGS = "datacentre:br-ex"
SETTINGS_TOML = """
[bridges.br-ex]
gateways = ["172.24.4.1/24", "2001:db8::fe/64"]
"""
SETTINGS = config.parse(SETTINGS_TOML)
TENANT_SETTINGS = config.parse(SETTINGS_TOML + f"""
[exposure]
allow = ["172.24.4.0/24", "2001:db8::/64", "10.0.0.0/16", "2001:db8:10::/48"]

[tenant_networks]
enabled = true
address_scopes = ["{SCOPE4}", "{SCOPE6}"]
""")

CHASSIS = two_chassis()
DATAPATHS = [
    datapath_row(PUBLIC_DP, PUBLIC_NET, "public", 1),
    datapath_row(FAR_DP, FAR_NET, "far", 4),
    datapath_row(PRIVATE_DP, PRIVATE_NET, "private", 5),
    datapath_row(OTHER_DP, OTHER_NET, "other", 6),
    router_datapath_row(ROUTER1_DP, ROUTER1, "router1", 11),
    router_datapath_row(ROUTER2_DP, ROUTER2, "router2", 12),
]
LOCALNETS = [localnet_row(PUBLIC_SEG, PUBLIC_DP, "datacentre"),
             localnet_row(FAR_SEG, FAR_DP, "physnet-far")]

PUBLIC_FLOW = EgressFlow("br-ex", f"patch-provnet-{PUBLIC_SEG}-to-br-int")
BR_EX = BridgeSetup("br-ex", ("172.24.4.1/24", "2001:db8::fe/64"))
ALLOW4 = "allow 172.24.4.0/24 (bridges.br-ex.gateways[0])"
ALLOW6 = "allow 2001:db8::/64 (bridges.br-ex.gateways[1])"
TENANT_ALLOW4 = "allow 172.24.4.0/24 (exposure.allow[0])"
TENANT_ALLOW6 = "allow 2001:db8::/64 (exposure.allow[1])"


def view_of(*rows: Row, local: str = CHASSIS_0, load_balancers: tuple[Row, ...] = (),
            localnets: list[Row] = LOCALNETS) -> OvnView:
    view = build_view(local_chassis=local, bridge_mappings=BRIDGE_MAPPINGS, chassis=CHASSIS,
                      datapaths=DATAPATHS, port_bindings=[*localnets, *rows],
                      load_balancers=load_balancers)
    assert view.problems == ()
    return view


def state(*, routes: tuple[HostRoute, ...] = (), neighbours: tuple[Neighbour, ...] = (),
          exposures: tuple[Exposure, ...] = (),
          refusals: tuple[Refusal, ...] = ()) -> DesiredState:
    return DesiredState(routes=frozenset(routes), neighbours=frozenset(neighbours),
                        flows=frozenset({PUBLIC_FLOW}), bridges=frozenset({BR_EX}),
                        exposures=exposures, refusals=refusals)


def route(prefix: str, via: str | None = None) -> HostRoute:
    return HostRoute(ip_network(prefix), "br-ex", None if via is None else ip_address(via))


def neighbour(ip: str, mac: str) -> Neighbour:
    return Neighbour(ip_address(ip), mac, "br-ex")


def exposure(prefix: str, reason: Reason, port: str, network: str = "public",
             rule: str = ALLOW4) -> Exposure:
    return Exposure(ip_network(prefix), reason, port, network, rule)


def router1(*, chassis: str | None, nat: list[str] | None = None, neutron: int = 29,
            distributed_nat: bool = False, scope4: str = SCOPE4, scope6: str = SCOPE6,
            provider_dp: str = PUBLIC_DP) -> list[Row]:
    """Router 1: gateway on `provider_dp` (cr-lrp bound to `chassis`), one interface on
    "private" (10.0.0.0/26, 2001:db8:10::/64), as Neutron and northd write them."""
    return [
        redirect_row(GW1, ROUTER1_DP, ROUTER1, PUBLIC_NET, GW1_MAC_COLUMN, chassis=chassis,
                     neutron=neutron, distributed_nat=distributed_nat),
        router_port_row(f"lrp-{GW1}", ROUTER1_DP, GW1_MAC_COLUMN, peer=GW1, router_id=ROUTER1,
                        network_id=PUBLIC_NET, neutron=neutron, redirect=CR1, tunnel_key=1),
        gateway_lsp_row(GW1, provider_dp, GW1, router_id=ROUTER1, network_id=PUBLIC_NET,
                        nat_addresses=[ROUTER1_IPS] if nat is None else nat,
                        cidrs="172.24.4.100/24 2001:db8::1/64"),
        router_port_row(f"lrp-{IF1}", ROUTER1_DP, "fa:16:3e:00:00:01 10.0.0.1/26 2001:db8:10::1/64",
                        peer=IF1, router_id=ROUTER1, network_id=PRIVATE_NET, neutron=neutron),
        interface_lsp_row(IF1, PRIVATE_DP, ROUTER1, PRIVATE_NET, "10.0.0.1/26 2001:db8:10::1/64",
                          scope4=scope4, scope6=scope6),
    ]


IF2_SUBNET6 = "2001:db8:10:20::1/64"


def router2(*, chassis: str | None, subnet4: str = "10.0.0.1/26",
            scope4: str = SCOPE4) -> list[Row]:
    """Router 2: gateway on "public" too, one interface on "other"."""
    return [
        redirect_row(GW2, ROUTER2_DP, ROUTER2, PUBLIC_NET, GW2_MAC_COLUMN, chassis=chassis),
        router_port_row(f"lrp-{GW2}", ROUTER2_DP, GW2_MAC_COLUMN, peer=GW2, router_id=ROUTER2,
                        network_id=PUBLIC_NET, redirect=CR2, tunnel_key=1),
        gateway_lsp_row(GW2, PUBLIC_DP, GW2, router_id=ROUTER2, network_id=PUBLIC_NET,
                        nat_addresses=[nat_entry(GW2_MAC, ["172.24.4.101"], CR2)],
                        cidrs="172.24.4.101/24 2001:db8::2/64"),
        router_port_row(f"lrp-{IF2}", ROUTER2_DP, f"fa:16:3e:00:00:02 {subnet4} {IF2_SUBNET6}",
                        peer=IF2, router_id=ROUTER2, network_id=OTHER_NET),
        interface_lsp_row(IF2, OTHER_DP, ROUTER2, OTHER_NET, f"{subnet4} {IF2_SUBNET6}",
                          scope4=scope4, scope6=SCOPE6),
    ]


def tenant_vm(chassis: str | None = CHASSIS_0, *, up: bool = True) -> Row:
    return vm_port_row(VM_T, PRIVATE_DP, PRIVATE_NET, ["fa:16:3e:00:00:22 10.0.0.22"],
                       chassis=chassis, up=up, name="tenant-vm")


def provider_vm(port: str = VM_P, mac: str = "fa:16:3e:a1:b2:c3 172.24.4.10",
                chassis: str | None = CHASSIS_0) -> Row:
    return vm_port_row(port, PUBLIC_DP, PUBLIC_NET, [mac], chassis=chassis)


# The gateway's own addresses, advertised wherever router 1's cr-lrp is active.
GATEWAY1_ROUTES = (route("172.24.4.100/32"), route("2001:db8::1/128"))
GATEWAY1_NEIGHBOURS = (neighbour("172.24.4.100", GW1_MAC), neighbour("2001:db8::1", GW1_MAC))


def gateway1_exposures(rule4: str = ALLOW4, rule6: str = ALLOW6) -> tuple[Exposure, Exposure]:
    return (exposure("172.24.4.100/32", Reason.ROUTER_GATEWAY, CR1, rule=rule4),
            exposure("2001:db8::1/128", Reason.ROUTER_GATEWAY, CR1, rule=rule6))


# --- router gateways ---------------------------------------------------------------------------


@pytest.mark.parametrize("neutron", NEUTRON_RELEASES)
def test_the_active_gateway_advertises_the_router_addresses(neutron: int) -> None:
    view = view_of(*router1(chassis=CHASSIS_0, neutron=neutron))

    assert plan(view, SETTINGS) == state(
        routes=GATEWAY1_ROUTES, neighbours=GATEWAY1_NEIGHBOURS,
        exposures=gateway1_exposures())


@pytest.mark.parametrize("neutron", NEUTRON_RELEASES)
@pytest.mark.parametrize("chassis", [CHASSIS_1, None], ids=["standby-here", "no-live-gateway"])
def test_a_standby_gateway_advertises_nothing(neutron: int, chassis: str | None) -> None:
    view = view_of(*router1(chassis=chassis, neutron=neutron))

    assert plan(view, SETTINGS) == state()


def test_failover_moves_the_gateway_routes_with_the_cr_lrp() -> None:
    before, after = router1(chassis=CHASSIS_0), router1(chassis=CHASSIS_1)

    assert plan(view_of(*before, local=CHASSIS_0), SETTINGS).routes == frozenset(GATEWAY1_ROUTES)
    assert plan(view_of(*before, local=CHASSIS_1), SETTINGS).routes == frozenset()
    assert plan(view_of(*after, local=CHASSIS_0), SETTINGS).routes == frozenset()
    assert plan(view_of(*after, local=CHASSIS_1), SETTINGS).routes == frozenset(GATEWAY1_ROUTES)


def test_a_gateway_on_a_network_this_node_does_not_serve_gives_nothing() -> None:
    view = view_of(*router1(chassis=CHASSIS_0, provider_dp=FAR_DP))

    assert plan(view, SETTINGS) == state()


def test_a_gateway_address_that_is_the_bridge_gateway_is_refused() -> None:
    rows = router1(chassis=CHASSIS_0)
    rows[0]["mac"] = [f"{GW1_MAC} 172.24.4.100/24 2001:db8::fe/64"]

    assert plan(view_of(*rows), SETTINGS) == state(
        routes=(route("172.24.4.100/32"),),
        neighbours=(neighbour("172.24.4.100", GW1_MAC),),
        exposures=(gateway1_exposures()[0],),
        refusals=(Refusal("2001:db8::fe/64", CR1, "the gateway address of bridge br-ex"),),
    )


def test_a_cr_lrp_without_its_distributed_port_is_refused() -> None:
    rows = router1(chassis=CHASSIS_0)
    rows[0]["options"] = {"always-redirect": "true"}

    assert plan(view_of(*rows), SETTINGS) == state(refusals=(
        Refusal(CR1, CR1, "no options:distributed-port: its gateway port is unknown"),))


# --- floating IPs ------------------------------------------------------------------------------

CENTRAL_FIPS = nat_entry(GW1_MAC, ["172.24.4.200", "172.24.4.206"], CR1)


def central_fip_state() -> DesiredState:
    return state(
        routes=(*GATEWAY1_ROUTES, route("172.24.4.200/32"), route("172.24.4.206/32")),
        neighbours=(*GATEWAY1_NEIGHBOURS, neighbour("172.24.4.200", GW1_MAC),
                    neighbour("172.24.4.206", GW1_MAC)),
        exposures=(gateway1_exposures()[0],
                   exposure("172.24.4.200/32", Reason.FLOATING_IP, CR1),
                   exposure("172.24.4.206/32", Reason.FLOATING_IP, CR1),
                   gateway1_exposures()[1]),
    )


@pytest.mark.parametrize("neutron", NEUTRON_RELEASES)
def test_centralized_fips_are_advertised_from_the_active_gateway(neutron: int) -> None:
    # northd lists the centralized NAT addresses in one entry (checked with 23.03.1)
    view = view_of(*router1(chassis=CHASSIS_0, nat=[ROUTER1_IPS, CENTRAL_FIPS], neutron=neutron),
                   tenant_vm(CHASSIS_1))

    assert plan(view, SETTINGS) == central_fip_state()


def test_centralized_fips_one_per_entry_give_the_same_state() -> None:
    nat = [ROUTER1_IPS, nat_entry(GW1_MAC, ["172.24.4.200"], CR1),
           nat_entry(GW1_MAC, ["172.24.4.206"], CR1)]

    assert plan(view_of(*router1(chassis=CHASSIS_0, nat=nat)), SETTINGS) == central_fip_state()


@pytest.mark.parametrize("vm_chassis", [CHASSIS_0, CHASSIS_1])
def test_centralized_fips_are_not_advertised_where_the_gateway_is_standby(
        vm_chassis: str) -> None:
    view = view_of(*router1(chassis=CHASSIS_1, nat=[ROUTER1_IPS, CENTRAL_FIPS]),
                   tenant_vm(vm_chassis))

    assert plan(view, SETTINGS) == state()


DISTRIBUTED_FIP = nat_entry(FIP_MAC, ["172.24.4.210"], VM_T)


@pytest.mark.parametrize("neutron", NEUTRON_RELEASES)
def test_a_distributed_fip_is_advertised_where_its_vm_is(neutron: int) -> None:
    view = view_of(*router1(chassis=CHASSIS_1, nat=[ROUTER1_IPS, DISTRIBUTED_FIP],
                            neutron=neutron, distributed_nat=True),
                   tenant_vm(CHASSIS_0))

    assert plan(view, SETTINGS) == state(
        routes=(route("172.24.4.210/32"),),
        neighbours=(neighbour("172.24.4.210", FIP_MAC),),
        exposures=(exposure("172.24.4.210/32", Reason.FLOATING_IP, VM_T),),
    )


@pytest.mark.parametrize(
    "vm", [tenant_vm(CHASSIS_1), tenant_vm(CHASSIS_0, up=False), None],
    ids=["vm-elsewhere", "vm-here-but-down", "vm-not-in-view"])
def test_a_distributed_fip_is_not_advertised_without_its_vm(vm: Row | None) -> None:
    rows = router1(chassis=CHASSIS_0, nat=[ROUTER1_IPS, DISTRIBUTED_FIP], distributed_nat=True)
    view = view_of(*rows, *([vm] if vm is not None else []))

    assert plan(view, SETTINGS) == state(
        routes=GATEWAY1_ROUTES, neighbours=GATEWAY1_NEIGHBOURS,
        exposures=gateway1_exposures())


def test_both_modes_together_on_the_gateway_chassis_with_the_vm() -> None:
    nat = [ROUTER1_IPS, nat_entry(GW1_MAC, ["172.24.4.200"], CR1), DISTRIBUTED_FIP]
    view = view_of(*router1(chassis=CHASSIS_0, nat=nat, distributed_nat=True),
                   tenant_vm(CHASSIS_0))

    assert plan(view, SETTINGS) == state(
        routes=(*GATEWAY1_ROUTES, route("172.24.4.200/32"), route("172.24.4.210/32")),
        neighbours=(*GATEWAY1_NEIGHBOURS, neighbour("172.24.4.200", GW1_MAC),
                    neighbour("172.24.4.210", FIP_MAC)),
        exposures=(gateway1_exposures()[0],
                   exposure("172.24.4.200/32", Reason.FLOATING_IP, CR1),
                   exposure("172.24.4.210/32", Reason.FLOATING_IP, VM_T),
                   gateway1_exposures()[1]),
    )


def test_garbage_nat_addresses_are_refused_and_never_crash() -> None:
    garbage = [
        "",
        "garbage",
        "172.24.4.220 is_chassis_resident(\"" + CR1 + "\")",
        f"{GW1_MAC} 172.24.4.221",
        f"{GW1_MAC} 172.24.4.222 is_chassis_resident({CR1})",
        f'{GW1_MAC} 172.24.4.223 is_chassis_resident("")',
        f'{GW1_MAC} 172.24.4.224 is_chassis_resident("{CR1}") and more',
        f'{GW1_MAC} 172.24.4.300 2001:db8::zz 172.24.4.225 is_chassis_resident("{CR1}")',
        f'01:00:5e:00:00:01 172.24.4.226 is_chassis_resident("{CR1}")',
        f'{GW1_MAC} 172.24.4.227 is_chassis_resident("no-such-port")',
    ]
    view = view_of(*router1(chassis=CHASSIS_0, nat=[ROUTER1_IPS, *garbage]))
    no_mac = "does not start with an Ethernet address"
    malformed = 'malformed is_chassis_resident(): expected ("<port>")'

    assert plan(view, SETTINGS) == state(
        routes=(*GATEWAY1_ROUTES, route("172.24.4.225/32")),
        neighbours=(*GATEWAY1_NEIGHBOURS, neighbour("172.24.4.225", GW1_MAC)),
        exposures=(gateway1_exposures()[0],
                   exposure("172.24.4.225/32", Reason.FLOATING_IP, CR1),
                   gateway1_exposures()[1]),
        refusals=(
            Refusal("", GW1, no_mac),
            Refusal("172.24.4.220 is_chassis_resident(\"" + CR1 + "\")", GW1, no_mac),
            Refusal("172.24.4.226", CR1,
                    "its Ethernet address 01:00:5e:00:00:01 is not a unicast address"),
            Refusal("172.24.4.300", CR1, "not an IP address"),
            Refusal("2001:db8::zz", CR1, "not an IP address"),
            Refusal(f"{GW1_MAC} 172.24.4.221", GW1,
                    "no is_chassis_resident(): which chassis answers for it is unknown"),
            Refusal(f"{GW1_MAC} 172.24.4.222 is_chassis_resident({CR1})", GW1, malformed),
            Refusal(f'{GW1_MAC} 172.24.4.223 is_chassis_resident("")', GW1,
                    "is_chassis_resident() names no port"),
            Refusal(f'{GW1_MAC} 172.24.4.224 is_chassis_resident("{CR1}") and more', GW1,
                    malformed),
            Refusal("garbage", GW1, no_mac),
        ),
    )


# --- tenant subnets ----------------------------------------------------------------------------

def tenant_gateway_state(*refusals: Refusal) -> DesiredState:
    """Router 1's gateway alone, under TENANT_SETTINGS."""
    return state(routes=GATEWAY1_ROUTES, neighbours=GATEWAY1_NEIGHBOURS,
                 exposures=gateway1_exposures(TENANT_ALLOW4, TENANT_ALLOW6), refusals=refusals)


@pytest.mark.parametrize("neutron", NEUTRON_RELEASES)
def test_a_tenant_subnet_in_scope_is_advertised_via_the_gateway(neutron: int) -> None:
    view = view_of(*router1(chassis=CHASSIS_0, neutron=neutron))

    assert plan(view, TENANT_SETTINGS) == state(
        routes=(*GATEWAY1_ROUTES, route("10.0.0.0/26", via="172.24.4.100"),
                route("2001:db8:10::/64", via="2001:db8::1")),
        neighbours=GATEWAY1_NEIGHBOURS,
        exposures=(
            exposure("10.0.0.0/26", Reason.TENANT_SUBNET, f"lrp-{IF1}", "private",
                     "allow 10.0.0.0/16 (exposure.allow[2])"),
            gateway1_exposures(TENANT_ALLOW4)[0],
            exposure("2001:db8::1/128", Reason.ROUTER_GATEWAY, CR1, rule=TENANT_ALLOW6),
            exposure("2001:db8:10::/64", Reason.TENANT_SUBNET, f"lrp-{IF1}", "private",
                     "allow 2001:db8:10::/48 (exposure.allow[3])"),
        ),
    )


def test_a_tenant_subnet_is_not_advertised_where_the_gateway_is_standby() -> None:
    assert plan(view_of(*router1(chassis=CHASSIS_1)), TENANT_SETTINGS) == state()


@pytest.mark.parametrize(
    ("scope4", "scope6"), [("", ""), (OTHER_SCOPE, OTHER_SCOPE)], ids=["no-scope", "other-scope"])
def test_a_tenant_subnet_out_of_scope_is_refused(scope4: str, scope6: str) -> None:
    view = view_of(*router1(chassis=CHASSIS_0, scope4=scope4, scope6=scope6))

    assert plan(view, TENANT_SETTINGS) == tenant_gateway_state(
        Refusal("10.0.0.0/26", f"lrp-{IF1}", "not in a configured address scope "
                f"(neutron:subnet_pool_addr_scope4={scope4 or 'none'})"),
        Refusal("2001:db8:10::/64", f"lrp-{IF1}", "not in a configured address scope "
                f"(neutron:subnet_pool_addr_scope6={scope6 or 'none'})"))


def test_a_tenant_subnet_out_of_scope_is_reported_only_where_the_gateway_is_active() -> None:
    view = view_of(*router1(chassis=CHASSIS_1, scope4="", scope6=""))

    assert plan(view, TENANT_SETTINGS) == state()


def test_tenant_subnets_are_opt_in() -> None:
    assert plan(view_of(*router1(chassis=CHASSIS_0)), SETTINGS) == state(
        routes=GATEWAY1_ROUTES, neighbours=GATEWAY1_NEIGHBOURS, exposures=gateway1_exposures())


def test_a_tenant_subnet_outside_the_allowed_prefixes_is_refused() -> None:
    settings = config.parse(SETTINGS_TOML + f"""
[tenant_networks]
enabled = true
address_scopes = ["{SCOPE4}"]
""")

    assert plan(view_of(*router1(chassis=CHASSIS_0)), settings) == state(
        routes=GATEWAY1_ROUTES, neighbours=GATEWAY1_NEIGHBOURS, exposures=gateway1_exposures(),
        refusals=(Refusal("10.0.0.0/26", f"lrp-{IF1}",
                          "outside the allowed prefixes (172.24.4.0/24)"),
                  Refusal("2001:db8:10::/64", f"lrp-{IF1}", "not in a configured address scope "
                          f"(neutron:subnet_pool_addr_scope6={SCOPE6})")),
    )


@pytest.mark.parametrize("local", [CHASSIS_0, CHASSIS_1])
def test_overlapping_tenant_subnets_are_refused_on_every_gateway(local: str) -> None:
    # router1 is active on compute-0, router2 on compute-1; both have 10.0.0.0/26 in scope.
    view = view_of(*router1(chassis=CHASSIS_0), *router2(chassis=CHASSIS_1), local=local)
    why = {
        CHASSIS_0: (f"lrp-{IF1}", f"overlaps 10.0.0.0/26 of router router2 (lrp-{IF2}); "
                                  "refusing all of them"),
        CHASSIS_1: (f"lrp-{IF2}", f"overlaps 10.0.0.0/26 of router router1 (lrp-{IF1}); "
                                  "refusing all of them"),
    }[local]
    gateway = {CHASSIS_0: (GW1_MAC, "172.24.4.100", "2001:db8::1", CR1, IF1, "private",
                           "2001:db8:10::"),
               CHASSIS_1: (GW2_MAC, "172.24.4.101", "2001:db8::2", CR2, IF2, "other",
                           "2001:db8:10:20::")}[local]
    mac, ip4, ip6, redirect, interface, network, subnet6 = gateway

    assert plan(view, TENANT_SETTINGS) == state(
        routes=(route(f"{ip4}/32"), route(f"{ip6}/128"), route(f"{subnet6}/64", via=ip6)),
        neighbours=(neighbour(ip4, mac), neighbour(ip6, mac)),
        exposures=(
            exposure(f"{ip4}/32", Reason.ROUTER_GATEWAY, redirect, rule=TENANT_ALLOW4),
            exposure(f"{ip6}/128", Reason.ROUTER_GATEWAY, redirect, rule=TENANT_ALLOW6),
            exposure(f"{subnet6}/64", Reason.TENANT_SUBNET, f"lrp-{interface}", network,
                     "allow 2001:db8:10::/48 (exposure.allow[3])"),
        ),
        refusals=(Refusal("10.0.0.0/26", *why),),
    )


def test_subnets_that_merely_overlap_are_refused_too() -> None:
    view = view_of(*router1(chassis=CHASSIS_0), *router2(chassis=CHASSIS_0, subnet4="10.0.0.1/24"))
    refused = {(r.what, r.port) for r in plan(view, TENANT_SETTINGS).refusals}

    assert refused == {("10.0.0.0/26", f"lrp-{IF1}"), ("10.0.0.0/24", f"lrp-{IF2}")}


def test_a_tenant_subnet_overlapping_a_bridge_subnet_is_refused() -> None:
    rows = router1(chassis=CHASSIS_0)
    rows[3]["mac"] = ["fa:16:3e:00:00:01 172.24.4.129/25"]

    assert plan(view_of(*rows), TENANT_SETTINGS) == tenant_gateway_state(
        Refusal("172.24.4.128/25", f"lrp-{IF1}",
                "overlaps 172.24.4.0/24, a subnet of bridge br-ex"))


def test_a_tenant_subnet_without_a_gateway_address_of_its_family_is_refused() -> None:
    rows = router1(chassis=CHASSIS_0)
    rows[0]["mac"] = [f"{GW1_MAC} 172.24.4.100/24"]

    assert plan(view_of(*rows), TENANT_SETTINGS) == state(
        routes=(route("172.24.4.100/32"), route("10.0.0.0/26", via="172.24.4.100")),
        neighbours=(neighbour("172.24.4.100", GW1_MAC),),
        exposures=(exposure("10.0.0.0/26", Reason.TENANT_SUBNET, f"lrp-{IF1}", "private",
                            "allow 10.0.0.0/16 (exposure.allow[2])"),
                   gateway1_exposures(TENANT_ALLOW4)[0]),
        refusals=(Refusal("2001:db8:10::/64", f"lrp-{IF1}",
                          "router router1 has no IPv6 address inside the subnets of bridge "
                          "br-ex to route it through"),),
    )


# --- load balancers ----------------------------------------------------------------------------

OCTAVIA_VIPS = {"10.0.0.40:80": "10.0.0.22:8080,10.0.0.23:8080",
                "172.24.4.201:80": "10.0.0.22:8080,10.0.0.23:8080"}
VIP_FIP = nat_entry(GW1_MAC, ["172.24.4.201"], CR1)   # Neutron's FIP of the Octavia VIP port


@pytest.mark.parametrize("ovn", ["20.12", "22.09", "23.03", "24.03"])
def test_an_octavia_vip_and_its_fip_are_served_by_the_router_gateway(ovn: str) -> None:
    balancer = load_balancer_row(LB_UUID, LB_ID, OCTAVIA_VIPS, switches=[PRIVATE_DP],
                                 routers=[ROUTER1_DP], ovn=ovn)
    view = view_of(*router1(chassis=CHASSIS_0, nat=[ROUTER1_IPS, VIP_FIP]),
                   load_balancers=(balancer,))

    # 172.24.4.201 is both a FIP and a VIP: the claims agree and are merged. 10.0.0.40 is a
    # tenant address: reachable through the tenant subnet (opt-in), never exposed alone.
    assert plan(view, SETTINGS) == state(
        routes=(*GATEWAY1_ROUTES, route("172.24.4.201/32")),
        neighbours=(*GATEWAY1_NEIGHBOURS, neighbour("172.24.4.201", GW1_MAC)),
        exposures=(gateway1_exposures()[0],
                   exposure("172.24.4.201/32", Reason.FLOATING_IP, CR1),
                   exposure("172.24.4.201/32", Reason.LOAD_BALANCER_VIP, LB_ID),
                   gateway1_exposures()[1]),
    )


def test_a_vip_on_the_provider_network_is_served_by_the_router_of_its_members() -> None:
    balancer = load_balancer_row(LB_UUID, LB_ID, {"172.24.4.220:80": "10.0.0.22:80",
                                                  "[2001:db8::220]:80": "[2001:db8:10::22]:80"},
                                 switches=[PRIVATE_DP])
    view = view_of(*router1(chassis=CHASSIS_0), load_balancers=(balancer,))

    assert plan(view, SETTINGS) == state(
        routes=(*GATEWAY1_ROUTES, route("172.24.4.220/32"), route("2001:db8::220/128")),
        neighbours=(*GATEWAY1_NEIGHBOURS, neighbour("172.24.4.220", GW1_MAC),
                    neighbour("2001:db8::220", GW1_MAC)),
        exposures=(gateway1_exposures()[0],
                   exposure("172.24.4.220/32", Reason.LOAD_BALANCER_VIP, LB_ID),
                   gateway1_exposures()[1],
                   exposure("2001:db8::220/128", Reason.LOAD_BALANCER_VIP, LB_ID, rule=ALLOW6)),
    )


def test_a_load_balancer_on_a_router_gives_nothing_where_its_gateway_is_standby() -> None:
    balancer = load_balancer_row(LB_UUID, LB_ID, OCTAVIA_VIPS, switches=[PRIVATE_DP])
    view = view_of(*router1(chassis=CHASSIS_1, nat=[ROUTER1_IPS, VIP_FIP]),
                   load_balancers=(balancer,))

    assert plan(view, SETTINGS) == state()


def test_a_load_balancer_only_on_the_provider_switch_is_not_advertised() -> None:
    # OVN's switch pipeline rewrites the VIP but delivers by the frame's Ethernet destination,
    # which would have to be the chosen backend's: no chassis can take routed traffic for it.
    balancer = load_balancer_row(LB_UUID, "provider-lb", {"172.24.4.230:80": "172.24.4.10:80"},
                                 switches=[PUBLIC_DP])
    view = view_of(*router1(chassis=CHASSIS_0), provider_vm(), load_balancers=(balancer,))

    assert plan(view, SETTINGS) == state(
        routes=(*GATEWAY1_ROUTES, route("172.24.4.10/32")),
        neighbours=(*GATEWAY1_NEIGHBOURS, neighbour("172.24.4.10", "fa:16:3e:a1:b2:c3")),
        exposures=(exposure("172.24.4.10/32", Reason.PROVIDER_PORT, VM_P),
                   gateway1_exposures()[0], gateway1_exposures()[1]),
    )


PF_VIPS = {"172.24.4.202:2222": "10.0.0.22:22"}
PF_STATE = state(
    routes=(*GATEWAY1_ROUTES, route("172.24.4.202/32")),
    neighbours=(*GATEWAY1_NEIGHBOURS, neighbour("172.24.4.202", GW1_MAC)),
    exposures=(gateway1_exposures()[0],
               exposure("172.24.4.202/32", Reason.LOAD_BALANCER_VIP,
                        "pf-floatingip-f1f1f1f1-0000-4000-8000-000000000001-tcp"),
               gateway1_exposures()[1]),
)


def test_a_port_forwarding_vip_in_the_sb_of_ovn_24_03_is_served_by_the_gateway() -> None:
    balancer = load_balancer_row(
        LB_UUID, "pf-floatingip-f1f1f1f1-0000-4000-8000-000000000001-tcp", PF_VIPS,
        switches=[], routers=[ROUTER1_DP], ovn="24.03")
    view = view_of(*router1(chassis=CHASSIS_0), load_balancers=(balancer,))

    assert plan(view, SETTINGS) == PF_STATE


@pytest.mark.parametrize("neutron", NEUTRON_RELEASES)
def test_a_port_forwarding_nb_row_names_its_router_either_way(neutron: int) -> None:
    balancer = port_forwarding_lb_row(LB_UUID, "f1f1f1f1-0000-4000-8000-000000000001",
                                      PF_VIPS, ROUTER1, neutron=neutron)
    view = view_of(*router1(chassis=CHASSIS_0), load_balancers=(balancer,))

    assert plan(view, SETTINGS) == PF_STATE


def test_a_port_forwarding_vip_is_not_advertised_where_the_gateway_is_standby() -> None:
    balancer = port_forwarding_lb_row(LB_UUID, "f1f1f1f1-0000-4000-8000-000000000001",
                                      PF_VIPS, ROUTER1)
    view = view_of(*router1(chassis=CHASSIS_1), load_balancers=(balancer,))

    assert plan(view, SETTINGS) == state()


def test_malformed_vips_are_refused() -> None:
    vips = {"172.24.4.203:80": "x", "^VIP_VAR:80": "x", "172.24.4.204:http": "x",
            "[2001:db8::204:80": "x", "": "x", "172.24.4.205": "x"}
    balancer = load_balancer_row(LB_UUID, LB_ID, vips, switches=[PRIVATE_DP])
    view = view_of(*router1(chassis=CHASSIS_0), load_balancers=(balancer,))

    assert plan(view, SETTINGS) == state(
        routes=(*GATEWAY1_ROUTES, route("172.24.4.203/32"), route("172.24.4.205/32")),
        neighbours=(*GATEWAY1_NEIGHBOURS, neighbour("172.24.4.203", GW1_MAC),
                    neighbour("172.24.4.205", GW1_MAC)),
        exposures=(gateway1_exposures()[0],
                   exposure("172.24.4.203/32", Reason.LOAD_BALANCER_VIP, LB_ID),
                   exposure("172.24.4.205/32", Reason.LOAD_BALANCER_VIP, LB_ID),
                   gateway1_exposures()[1]),
        refusals=(Refusal("", LB_ID, "no address"),
                  Refusal("172.24.4.204:http", LB_ID, "bad port 'http'"),
                  Refusal("[2001:db8::204:80", LB_ID, "not [IPv6] or [IPv6]:PORT"),
                  Refusal("^VIP_VAR:80", LB_ID, "not an IP address")),
    )


# --- virtual ports -----------------------------------------------------------------------------

PARENT1_MAC, PARENT2_MAC = "fa:16:3e:00:00:a1", "fa:16:3e:00:00:a2"


def parents(chassis1: str = CHASSIS_0, chassis2: str = CHASSIS_1) -> list[Row]:
    return [provider_vm(PARENT1, f"{PARENT1_MAC} 172.24.4.11", chassis1),
            provider_vm(PARENT2, f"{PARENT2_MAC} 172.24.4.12", chassis2)]


def vip(chassis: str | None, parent: str | None, neutron: int = 29,
        virtual_ip: str = "172.24.4.50", mac: list[str] | None = None) -> Row:
    host = {CHASSIS_0: "compute-0", CHASSIS_1: "compute-1", None: ""}[chassis]
    return virtual_port_row(VIP_PORT, PUBLIC_DP, PUBLIC_NET, virtual_ip, [PARENT1, PARENT2],
                            chassis=chassis, parent=parent, host=host, neutron=neutron, mac=mac)


def parent1_state(*refusals: Refusal) -> DesiredState:
    """The first parent's own address alone."""
    return state(routes=(route("172.24.4.11/32"),),
                 neighbours=(neighbour("172.24.4.11", PARENT1_MAC),),
                 exposures=(exposure("172.24.4.11/32", Reason.PROVIDER_PORT, PARENT1),),
                 refusals=refusals)


@pytest.mark.parametrize("neutron", NEUTRON_RELEASES)
def test_a_virtual_ip_is_advertised_where_its_parent_claimed_it(neutron: int) -> None:
    view = view_of(*parents(), vip(CHASSIS_0, PARENT1, neutron))

    assert plan(view, SETTINGS) == state(
        routes=(route("172.24.4.11/32"), route("172.24.4.50/32")),
        neighbours=(neighbour("172.24.4.11", PARENT1_MAC), neighbour("172.24.4.50", PARENT1_MAC)),
        exposures=(exposure("172.24.4.11/32", Reason.PROVIDER_PORT, PARENT1),
                   exposure("172.24.4.50/32", Reason.VIRTUAL_IP, VIP_PORT)),
    )


@pytest.mark.parametrize("neutron", NEUTRON_RELEASES)
@pytest.mark.parametrize(("chassis", "parent"), [(CHASSIS_1, PARENT2), (None, None)],
                         ids=["parent-elsewhere", "unclaimed"])
def test_a_virtual_ip_is_not_advertised_where_no_parent_holds_it(
        neutron: int, chassis: str | None, parent: str | None) -> None:
    view = view_of(*parents(), vip(chassis, parent, neutron))

    assert plan(view, SETTINGS) == parent1_state()


def test_a_virtual_ip_follows_its_parent() -> None:
    before = [*parents(), vip(CHASSIS_0, PARENT1)]
    after = [*parents(), vip(CHASSIS_1, PARENT2)]
    vip_route = route("172.24.4.50/32")

    assert vip_route in plan(view_of(*before, local=CHASSIS_0), SETTINGS).routes
    assert vip_route not in plan(view_of(*before, local=CHASSIS_1), SETTINGS).routes
    assert vip_route not in plan(view_of(*after, local=CHASSIS_0), SETTINGS).routes
    moved = plan(view_of(*after, local=CHASSIS_1), SETTINGS)
    assert vip_route in moved.routes
    assert neighbour("172.24.4.50", PARENT2_MAC) in moved.neighbours


def test_a_virtual_ip_takes_its_own_mac_when_the_parent_is_not_in_view() -> None:
    view = view_of(vip(CHASSIS_0, PARENT1, mac=["fa:16:3e:00:00:f0 172.24.4.50"]))

    assert plan(view, SETTINGS) == state(
        routes=(route("172.24.4.50/32"),),
        neighbours=(neighbour("172.24.4.50", "fa:16:3e:00:00:f0"),),
        exposures=(exposure("172.24.4.50/32", Reason.VIRTUAL_IP, VIP_PORT),),
    )


def test_a_virtual_ip_without_any_mac_or_address_is_refused() -> None:
    no_mac = view_of(vip(CHASSIS_0, PARENT1, virtual_ip="2001:db8::50"))
    bad_ip = view_of(*parents(), vip(CHASSIS_0, PARENT1, virtual_ip="172.24.4.500"))

    assert plan(no_mac, SETTINGS) == state(refusals=(Refusal(
        "2001:db8::50", VIP_PORT,
        f"no MAC for it: neither its parent ({PARENT1}) nor the virtual port has exactly one "
        f"in view"),))
    assert plan(bad_ip, SETTINGS) == parent1_state(
        Refusal("172.24.4.500", VIP_PORT, "not an IP address"))


def test_an_ipv6_virtual_ip() -> None:
    view = view_of(*parents(), vip(CHASSIS_0, PARENT1, virtual_ip="2001:db8::50"))

    assert plan(view, SETTINGS) == state(
        routes=(route("172.24.4.11/32"), route("2001:db8::50/128")),
        neighbours=(neighbour("172.24.4.11", PARENT1_MAC),
                    neighbour("2001:db8::50", PARENT1_MAC)),
        exposures=(exposure("172.24.4.11/32", Reason.PROVIDER_PORT, PARENT1),
                   exposure("2001:db8::50/128", Reason.VIRTUAL_IP, VIP_PORT, rule=ALLOW6)),
    )


# --- live migration ----------------------------------------------------------------------------

VM_MAC_COLUMN = "fa:16:3e:a1:b2:c3 172.24.4.10 2001:db8::f816:3eff:fea1:b2c3"
VM_STATE = state(
    routes=(route("172.24.4.10/32"), route("2001:db8::f816:3eff:fea1:b2c3/128")),
    neighbours=(neighbour("172.24.4.10", "fa:16:3e:a1:b2:c3"),
                neighbour("2001:db8::f816:3eff:fea1:b2c3", "fa:16:3e:a1:b2:c3")),
    exposures=(exposure("172.24.4.10/32", Reason.PROVIDER_PORT, VM_P),
               exposure("2001:db8::f816:3eff:fea1:b2c3/128", Reason.PROVIDER_PORT, VM_P,
                        rule=ALLOW6)),
)


VM_DRAINING = replace(VM_STATE, routes=frozenset(
    HostRoute(r.dst, r.dev, r.via, draining=True) for r in VM_STATE.routes))


def moving_vm(*, activated: bool, strategy: str | None = "rarp") -> Row:
    return migrating(provider_vm(mac=VM_MAC_COLUMN), CHASSIS_0, CHASSIS_1,
                     activated=activated, strategy=strategy)


@pytest.mark.parametrize(
    ("activated", "local", "expected"),
    [
        (False, CHASSIS_0, VM_STATE),     # source, before activation
        (False, CHASSIS_1, state()),      # destination, before activation: OVN drops there
        (True, CHASSIS_1, VM_STATE),      # destination, once the RARP activated it
        (True, CHASSIS_0, VM_DRAINING),   # source, after activation: both paths (overlap),
    ],                                    # the source's at a low preference (draining)
    ids=["source-before", "destination-before", "destination-after", "source-after"])
def test_live_migration_is_make_before_break(activated: bool, local: str,
                                             expected: DesiredState) -> None:
    assert plan(view_of(moving_vm(activated=activated), local=local), SETTINGS) == expected


def test_after_the_migration_only_the_destination_advertises() -> None:
    done = provider_vm(mac=VM_MAC_COLUMN, chassis=CHASSIS_1)
    done["options"] = {"requested-chassis": "compute-1", "activation-strategy": "rarp"}

    assert plan(view_of(done, local=CHASSIS_0), SETTINGS) == state()
    assert plan(view_of(done, local=CHASSIS_1), SETTINGS) == VM_STATE


def test_without_an_activation_strategy_the_destination_advertises_at_once() -> None:
    view = view_of(moving_vm(activated=False, strategy=None), local=CHASSIS_1)

    assert plan(view, SETTINGS) == VM_STATE


def test_without_an_activation_strategy_the_source_drains_at_once() -> None:
    view = view_of(moving_vm(activated=False, strategy=None), local=CHASSIS_0)

    assert plan(view, SETTINGS) == VM_DRAINING


def test_activation_of_another_chassis_does_not_count() -> None:
    row = moving_vm(activated=False)
    row["options"]["additional-chassis-activated"] = f"{CHASSIS_0}-other,{CHASSIS_0}"

    assert plan(view_of(row, local=CHASSIS_1), SETTINGS) == state()


@pytest.mark.parametrize(("activated", "advertised"), [(False, False), (True, True)])
def test_a_distributed_fip_follows_the_activated_destination(activated: bool,
                                                             advertised: bool) -> None:
    vm = migrating(tenant_vm(), CHASSIS_0, CHASSIS_1, activated=activated)
    view = view_of(*router1(chassis=CHASSIS_0, nat=[ROUTER1_IPS, DISTRIBUTED_FIP],
                            distributed_nat=True), vm, local=CHASSIS_1)

    assert (route("172.24.4.210/32") in plan(view, SETTINGS).routes) is advertised


@pytest.mark.parametrize(("activated", "draining"), [(False, False), (True, True)])
def test_a_distributed_fip_drains_from_the_source_once_the_destination_is_active(
        activated: bool, draining: bool) -> None:
    vm = migrating(tenant_vm(), CHASSIS_0, CHASSIS_1, activated=activated)
    view = view_of(*router1(chassis=CHASSIS_0, nat=[ROUTER1_IPS, DISTRIBUTED_FIP],
                            distributed_nat=True), vm, local=CHASSIS_0)

    fip = [r for r in plan(view, SETTINGS).routes if str(r.dst) == "172.24.4.210/32"]
    assert [r.draining for r in fip] == [draining]
