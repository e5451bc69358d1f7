"""The reader's pure parts by value: monitor conditions, what the received rows ask for next, how
the two reach a fixed point against a (simulated) server, local OVS facts, and the view of raw
IDL rows (references as UUIDs)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ovn_fabric.ovn._ovsdb import JsonValue, RawRow, split_remotes
from ovn_fabric.ovn.reader import (
    SB_COLUMNS,
    Interest,
    InterestMemo,
    LocalOvs,
    ViewMemo,
    conditions,
    view_of,
)

LOCAL = "4f0c2a7e-0000-4000-8000-000000000001"
OTHER = "4f0c2a7e-0000-4000-8000-000000000002"
DP_A = "9d1e0b3c-0000-4000-8000-00000000000a"
DP_B = "9d1e0b3c-0000-4000-8000-00000000000b"
ROUTER = "9d1e0b3c-0000-4000-8000-0000000000f1"
GROUP_1 = "6a6a6a6a-0000-4000-8000-000000000001"
GROUP_2 = "6a6a6a6a-0000-4000-8000-000000000002"
TYPES = [["type", "==", "localnet"], ["type", "==", "chassisredirect"],
         ["type", "==", "virtual"], ["type", "==", "patch"]]
# The tables and columns of OVN 24.03 (ls_/lr_datapath_group) and 20.12 (datapaths only).
OVN_24_03 = SB_COLUMNS
OVN_23_03 = {**SB_COLUMNS, "Load_Balancer": ("name", "vips", "external_ids", "datapaths",
                                             "datapath_group")}
OVN_20_12 = {**SB_COLUMNS, "Load_Balancer": ("name", "vips", "external_ids", "datapaths")}


def test_before_anything_is_known_only_the_global_port_types_are_asked_for() -> None:
    assert conditions(Interest(), system_id=None) == {
        "Chassis": [False],
        "Datapath_Binding": [False],
        "Port_Binding": TYPES,
        "Logical_DP_Group": [False],
        "Load_Balancer": [False],
    }


def test_our_chassis_is_asked_for_by_name_until_its_uuid_is_known() -> None:
    got = conditions(Interest(), system_id="compute-0")
    assert got["Chassis"] == [["name", "==", "compute-0"]]
    assert got["Port_Binding"] == TYPES


def test_ports_bound_requested_or_migrating_here_once_our_uuid_is_known() -> None:
    mine = ["uuid", LOCAL]
    assert conditions(Interest(local_chassis=LOCAL), system_id="compute-0")["Port_Binding"] == [
        *TYPES,
        ["chassis", "==", mine],
        ["requested_chassis", "==", mine],
        ["additional_chassis", "includes", mine],
    ]


def test_the_port_binding_condition_does_not_grow_with_the_cloud() -> None:
    """Router ports and their peers come with `type == "patch"`, not with clauses naming each
    router or port: the condition the server evaluates against every changed Port_Binding
    stays at 7 clauses, and nothing that happens to routers elsewhere changes it."""
    small = Interest(local_chassis=LOCAL)
    big = Interest(local_chassis=LOCAL, datapaths=frozenset(str(uuid.uuid4()) for _ in range(500)),
                   chassis=frozenset({OTHER}), gateway_routers=frozenset({ROUTER}),
                   gateway_switches=frozenset({DP_A}), datapath_groups=frozenset({GROUP_1}))
    assert conditions(big, system_id="c")["Port_Binding"] == \
        conditions(small, system_id="c")["Port_Binding"]
    assert len(conditions(big, system_id="c")["Port_Binding"]) == 7


def test_no_clause_on_a_column_or_table_the_server_lacks() -> None:
    old_ovn = {table: columns for table, columns in SB_COLUMNS.items()
               if table not in ("Load_Balancer", "Logical_DP_Group")}
    old_ovn["Port_Binding"] = tuple(c for c in SB_COLUMNS["Port_Binding"]
                                    if c not in ("requested_chassis", "additional_chassis"))
    got = conditions(Interest(local_chassis=LOCAL, gateway_switches=frozenset({DP_A})),
                     system_id="c", columns=old_ovn)
    assert got["Port_Binding"] == [*TYPES, ["chassis", "==", ["uuid", LOCAL]]]
    assert set(got) == {"Chassis", "Datapath_Binding", "Port_Binding"}


def test_datapaths_and_chassis_are_named_one_clause_each_sorted() -> None:
    got = conditions(Interest(local_chassis=LOCAL, datapaths=frozenset({DP_B, DP_A}),
                              chassis=frozenset({OTHER, LOCAL})), system_id="compute-0")
    assert got["Datapath_Binding"] == [["_uuid", "==", ["uuid", DP_A]],
                                       ["_uuid", "==", ["uuid", DP_B]]]
    # our own row is already asked for by name
    assert got["Chassis"] == [["name", "==", "compute-0"], ["_uuid", "==", ["uuid", OTHER]]]


def test_load_balancers_of_the_switches_behind_our_gateways_23_03() -> None:
    """OVN 22.09-23.09: a Load_Balancer names switches only, through `datapath_group`; the
    groups holding a switch behind a gateway active here, then the balancers naming them."""
    interest = Interest(local_chassis=LOCAL, gateway_routers=frozenset({ROUTER}),
                        gateway_switches=frozenset({DP_B, DP_A}),
                        datapath_groups=frozenset({GROUP_2, GROUP_1}))
    got = conditions(interest, system_id="c", columns=OVN_23_03)
    assert got["Logical_DP_Group"] == [["datapaths", "includes", ["uuid", DP_A]],
                                       ["datapaths", "includes", ["uuid", DP_B]]]
    assert got["Load_Balancer"] == [
        ["datapath_group", "==", ["uuid", GROUP_1]],
        ["datapath_group", "==", ["uuid", GROUP_2]],
        ["datapaths", "includes", ["uuid", DP_A]],
        ["datapaths", "includes", ["uuid", DP_B]],
    ]


def test_load_balancers_of_the_routers_too_from_24_03() -> None:
    interest = Interest(local_chassis=LOCAL, gateway_routers=frozenset({ROUTER}),
                        gateway_switches=frozenset({DP_A}), datapath_groups=frozenset({GROUP_1}))
    got = conditions(interest, system_id="c", columns=OVN_24_03)
    assert got["Logical_DP_Group"] == [["datapaths", "includes", ["uuid", DP_A]],
                                       ["datapaths", "includes", ["uuid", ROUTER]]]
    assert got["Load_Balancer"] == [
        ["datapath_group", "==", ["uuid", GROUP_1]],
        ["ls_datapath_group", "==", ["uuid", GROUP_1]],
        ["lr_datapath_group", "==", ["uuid", GROUP_1]],
        ["datapaths", "includes", ["uuid", DP_A]],
        ["datapaths", "includes", ["uuid", ROUTER]],
    ]


def test_load_balancers_by_their_datapaths_column_on_20_12() -> None:
    interest = Interest(local_chassis=LOCAL, gateway_routers=frozenset({ROUTER}),
                        gateway_switches=frozenset({DP_A}))
    got = conditions(interest, system_id="c", columns=OVN_20_12)
    assert got["Load_Balancer"] == [["datapaths", "includes", ["uuid", DP_A]]]


def test_no_gateway_here_no_load_balancer_at_all() -> None:
    got = conditions(Interest(local_chassis=LOCAL, datapath_groups=frozenset({GROUP_1})),
                     system_id="c")
    assert got["Logical_DP_Group"] == [False]
    assert got["Load_Balancer"] == [["datapath_group", "==", ["uuid", GROUP_1]],
                                    ["ls_datapath_group", "==", ["uuid", GROUP_1]],
                                    ["lr_datapath_group", "==", ["uuid", GROUP_1]]]


def _pb(**columns: object) -> dict[str, object]:
    row: dict[str, object] = {"logical_port": "p", "type": "", "chassis": [], "options": {},
                              "requested_chassis": [], "additional_chassis": []}
    row.update(columns)
    return row


def test_interest_follows_references_of_the_received_ports() -> None:
    local, other, gateway = uuid.UUID(LOCAL), uuid.UUID(OTHER), uuid.uuid4()
    chassis = [{"_uuid": local, "name": "compute-0"}, {"_uuid": other, "name": "compute-1"}]
    router, router2 = uuid.UUID(ROUTER), uuid.uuid4()
    ports = [
        _pb(datapath=uuid.UUID(DP_A), chassis=[local]),
        _pb(datapath=uuid.UUID(DP_B), chassis=[other], additional_chassis=[local]),
        _pb(logical_port="cr-lrp-gw1", datapath=router, type="chassisredirect",
            chassis=[local], options={"distributed-port": "lrp-gw1"}),
        _pb(logical_port="cr-lrp-gw2", datapath=router2, type="chassisredirect",
            chassis=[gateway], options={"distributed-port": "lrp-gw2"}),
    ]
    assert Interest.of("compute-0", chassis, ports, [uuid.UUID(GROUP_1)]) == Interest(
        local_chassis=LOCAL,
        datapaths=frozenset({DP_A, DP_B, ROUTER, str(router2)}),
        chassis=frozenset({LOCAL, OTHER, str(gateway)}),
        gateway_routers=frozenset({ROUTER}),              # only the gateway active here
        datapath_groups=frozenset({GROUP_1}),
    )


def test_the_switches_behind_a_gateway_are_found_through_the_patch_peers() -> None:
    """Each router interface is a pair of patch ports naming each other in options:peer; the
    gateway port's peer is on the provider network, which is not one of them."""
    local, router, public = uuid.UUID(LOCAL), uuid.UUID(ROUTER), uuid.uuid4()
    private, other_router, far = uuid.UUID(DP_A), uuid.uuid4(), uuid.UUID(DP_B)
    ports = [
        _pb(logical_port="cr-lrp-gw", datapath=router, type="chassisredirect", chassis=[local],
            options={"distributed-port": "lrp-gw"}),
        _pb(logical_port="lrp-gw", datapath=router, type="patch",
            options={"peer": "gw", "chassis-redirect-port": "cr-lrp-gw"}),
        _pb(logical_port="gw", datapath=public, type="patch", options={"peer": "lrp-gw"}),
        _pb(logical_port="lrp-if", datapath=router, type="patch", options={"peer": "if"}),
        _pb(logical_port="if", datapath=private, type="patch", options={"peer": "lrp-if"}),
        _pb(logical_port="lrp-dangling", datapath=router, type="patch",
            options={"peer": "not-received"}),
        # another router's interface (its gateway is elsewhere)
        _pb(logical_port="lrp-if2", datapath=other_router, type="patch", options={"peer": "if2"}),
        _pb(logical_port="if2", datapath=far, type="patch", options={"peer": "lrp-if2"}),
    ]
    interest = Interest.of("compute-0", [{"_uuid": local, "name": "compute-0"}], ports)
    assert interest.gateway_routers == {ROUTER}
    assert interest.gateway_switches == {DP_A}


def test_interest_without_our_chassis_row() -> None:
    assert Interest.of("compute-0", [{"_uuid": uuid.uuid4(), "name": "compute-9"}], []) == \
        Interest()


# --- the fixed point, against a simulated server ------------------------------------------------


def _atom(value: JsonValue) -> Any:
    """A condition's JSON argument as the IDL gives column values."""
    if isinstance(value, list) and value and value[0] == "uuid":
        return uuid.UUID(str(value[1]))
    if isinstance(value, list) and value and value[0] == "map":
        pairs = value[1]
        assert isinstance(pairs, list)
        return {str(pair[0]): str(pair[1]) for pair in pairs if isinstance(pair, list)}
    return value


def _values(value: object) -> list[object]:
    return value if isinstance(value, list) else [value]


def _matches(clause: JsonValue, row: RawRow) -> bool:
    """One clause as ovsdb-server evaluates it, for the shapes conditions() uses."""
    if isinstance(clause, bool):
        return clause
    assert isinstance(clause, list)
    column, function, arg = clause
    value, wanted = row.get(str(column)), _atom(arg)
    if isinstance(wanted, dict):
        assert function == "includes"
        assert isinstance(value, Mapping)
        return all(value.get(k) == v for k, v in wanted.items())
    if function == "==":
        return set(_values(value)) == {wanted}
    assert function == "includes"
    return wanted in _values(value)


@dataclass
class Southbound:
    """A Southbound's rows per table, as the IDL gives them (references as UUIDs)."""

    tables: dict[str, list[RawRow]] = field(default_factory=dict)

    def add(self, table: str, **row: object) -> RawRow:
        added: RawRow = {"_uuid": uuid.uuid4(), **row}
        self.tables.setdefault(table, []).append(added)
        return added

    def select(self, condition: Mapping[str, list[JsonValue]]) -> dict[str, list[RawRow]]:
        """The rows matching `condition` (the same row objects: a change made to a row in the
        Southbound is seen by whoever holds it, as the server's updates do)."""
        return {table: [row for row in self.tables.get(table, [])
                        if any(_matches(clause, row) for clause in condition[table])]
                for table in condition}


def converge(sb: Southbound, held: Mapping[str, list[RawRow]],
             max_rounds: int = 10) -> tuple[dict[str, list[JsonValue]], int]:
    """What the reader does: the conditions from the rows held, the server's answer with the
    rows matching them, until the conditions no longer change: the fixed point, where `synced`
    holds. Returns it and the number of requests that brought rows (from nothing, the first is
    the monitor request; from rows held, each is a condition change)."""
    rows = dict(held)
    for rounds in range(max_rounds):
        interest = Interest.of("compute-0", rows.get("Chassis", []), rows.get("Port_Binding", []),
                               [row["_uuid"] for row in rows.get("Logical_DP_Group", [])])
        wanted = conditions(interest, system_id="compute-0", columns=OVN_23_03)
        answered = sb.select(wanted)
        if answered == rows:
            return wanted, rounds
        rows = answered
    raise AssertionError(f"no fixed point after {max_rounds} condition changes")


@dataclass
class Neutron:
    """A Neutron-shaped Southbound made of a few choices, and what compute-0 must receive from
    it by the rules of the reader's docstring (table -> names)."""

    sb: Southbound = field(default_factory=Southbound)
    chassis: dict[str, uuid.UUID] = field(default_factory=dict)
    redirects: list[RawRow] = field(default_factory=list)          # cr-lrp of router r
    expected: dict[str, set[str]] = field(default_factory=dict)

    def expect(self, table: str, name: str) -> None:
        self.expected.setdefault(table, set()).add(name)

    def move_gateways(self, gateways: list[str | None]) -> None:
        for redirect, gateway in zip(self.redirects, gateways, strict=False):
            redirect["chassis"] = [self.chassis[gateway]] if gateway else []


def build(gateways: list[str | None], interfaces: list[list[int]], balancers: list[int],
          vms: list[tuple[int, str]]) -> Neutron:
    """Routers r with their cr-lrp on `gateways[r]` (a chassis or None) and interfaces on the
    tenant switches `interfaces[r]`, a load balancer (with its own group) on each switch of
    `balancers`, VMs (switch, chassis), and a group of every switch shared by logical flows."""
    n = Neutron()
    for name in ("compute-0", "compute-1"):
        n.chassis[name] = uuid.UUID(str(n.sb.add("Chassis", name=name)["_uuid"]))
    n.expect("Chassis", "compute-0")
    public = n.sb.add("Datapath_Binding", name="public")["_uuid"]
    n.sb.add("Port_Binding", logical_port="provnet", type="localnet", datapath=public)
    n.expect("Port_Binding", "provnet")
    n.expect("Datapath_Binding", "public")
    switches = [n.sb.add("Datapath_Binding", name=f"s{i}")["_uuid"] for i in range(3)]
    behind_us: set[int] = set()
    for r, gateway in enumerate(gateways):
        router = n.sb.add("Datapath_Binding", name=f"r{r}")["_uuid"]
        n.expect("Datapath_Binding", f"r{r}")
        n.redirects.append(n.sb.add(
            "Port_Binding", logical_port=f"cr-lrp{r}", type="chassisredirect", datapath=router,
            options={"distributed-port": f"lrp-gw{r}"}, chassis=[]))
        ports = [(f"lrp-gw{r}", router, f"gw{r}"), (f"gw{r}", public, f"lrp-gw{r}")]
        for i in interfaces[r]:
            ports += [(f"lrp-if{r}.{i}", router, f"if{r}.{i}"),
                      (f"if{r}.{i}", switches[i], f"lrp-if{r}.{i}")]
            n.expect("Datapath_Binding", f"s{i}")
            behind_us.update([i] if gateway == "compute-0" else [])
        for name, datapath, peer in ports:
            n.sb.add("Port_Binding", logical_port=name, type="patch", datapath=datapath,
                     options={"peer": peer}, chassis=[])
        for name in (f"cr-lrp{r}", *(name for name, _, _ in ports)):
            n.expect("Port_Binding", name)
        if gateway:
            n.expect("Chassis", gateway)
    n.move_gateways(gateways)
    n.sb.add("Logical_Flow", logical_dp_group=[n.sb.add(
        "Logical_DP_Group", name="flows", datapaths=list(switches))["_uuid"]])
    n.expected.update({"Logical_DP_Group": {"flows"}} if behind_us else {})
    for b, i in enumerate(balancers):
        group = n.sb.add("Logical_DP_Group", name=f"g{b}", datapaths=[switches[i]])["_uuid"]
        n.sb.add("Load_Balancer", name=f"lb{b}", datapath_group=[group], datapaths=[])
        if i in behind_us:
            n.expect("Logical_DP_Group", f"g{b}")
            n.expect("Load_Balancer", f"lb{b}")
    for v, (i, host) in enumerate(vms):
        n.sb.add("Port_Binding", logical_port=f"vm{v}", type="", datapath=switches[i],
                 options={}, chassis=[n.chassis[host]])
        if host == "compute-0":
            n.expect("Port_Binding", f"vm{v}")
            n.expect("Datapath_Binding", f"s{i}")
    return n


def _names(rows: Mapping[str, list[RawRow]]) -> dict[str, set[str]]:
    return {table: {str(row.get("logical_port") or row.get("name")) for row in found}
            for table, found in rows.items() if found}


GATEWAYS = st.lists(st.sampled_from(["compute-0", "compute-1", None]), max_size=4)
TOPOLOGIES = st.tuples(
    GATEWAYS,
    st.lists(st.lists(st.integers(0, 2), max_size=3, unique=True), min_size=4, max_size=4),
    st.lists(st.integers(0, 2), max_size=4),
    st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["compute-0", "compute-1"])),
             max_size=4),
)


@settings(max_examples=200, deadline=None)
@given(TOPOLOGIES, GATEWAYS)
def test_the_conditions_reach_the_rows_of_the_rules_from_nothing_or_from_stale_rows(
        topology: tuple[Any, ...], moved: list[str | None]) -> None:
    """The monitor request brings our Chassis, the cr-lrps and every patch port; a condition
    change our ports, the datapaths and chassis named, and the groups of the switches behind a
    gateway active here; another the balancers of those groups. So a fixed point after at most
    three requests, holding exactly the rows of the rules. After the gateways move (a failover,
    a reconnection finding another state), the rows held are stale; the fixed point reached
    from them is the one reached from nothing: no left-over keeps itself alive."""
    gateways, interfaces, balancers, vms = topology
    neutron = build(gateways, interfaces, balancers, vms)
    final, rounds = converge(neutron.sb, {})
    assert rounds <= 3
    assert _names(neutron.sb.select(final)) == neutron.expected

    held = neutron.sb.select(final)
    moved = (moved + gateways[len(moved):])[:len(gateways)]
    neutron.move_gateways(moved)
    from_stale, _ = converge(neutron.sb, held)
    from_nothing, _ = converge(neutron.sb, {})
    assert from_stale == from_nothing
    assert _names(neutron.sb.select(from_stale)) == build(moved, interfaces, balancers,
                                                          vms).expected


def test_a_gateway_moving_here_brings_its_balancers_in_two_condition_changes() -> None:
    neutron = build(["compute-1"], [[0], [], [], []], [0, 1], [(0, "compute-1")])
    before, _ = converge(neutron.sb, {})
    held = neutron.sb.select(before)
    assert "Load_Balancer" not in _names(held)
    neutron.move_gateways(["compute-0"])            # the cr-lrp's update reaches us
    after, rounds = converge(neutron.sb, held)
    assert rounds == 2                              # the groups, then the balancers
    assert _names(neutron.sb.select(after))["Load_Balancer"] == {"lb0"}


# --- local facts and the view -------------------------------------------------------------------


def test_local_facts_from_the_open_vswitch_row() -> None:
    row = {"_uuid": uuid.uuid4(), "external_ids": {
        "system-id": "compute-0", "hostname": "compute-0.example.com",
        "ovn-remote": "tcp:192.0.2.1:6642", "ovn-bridge-mappings": "datacentre:br-ex",
        "ovn-encap-ip": "192.0.2.10"}}
    assert LocalOvs.from_rows([row]) == LocalOvs(
        system_id="compute-0", hostname="compute-0.example.com",
        ovn_remote="tcp:192.0.2.1:6642", bridge_mappings="datacentre:br-ex",
        integration_bridge=None)
    assert LocalOvs.from_rows([]) is None
    assert LocalOvs.from_rows([{"external_ids": {"system-id": ""}}]) == LocalOvs()


def test_view_resolves_chassis_references_to_names_and_leaves_unknown_ones_out() -> None:
    local, unknown, datapath = uuid.UUID(LOCAL), uuid.uuid4(), uuid.UUID(DP_A)
    view = view_of(
        LocalOvs(system_id="compute-0", bridge_mappings="datacentre:br-ex"),
        chassis=[{"_uuid": local, "name": "compute-0", "hostname": "h0"}],
        datapaths=[{"_uuid": datapath, "tunnel_key": 1, "external_ids": {"name2": "public"}}],
        port_bindings=[_pb(logical_port="vm1", datapath=datapath, chassis=[local],
                           requested_chassis=[local], additional_chassis=[unknown, local])],
    )
    (binding,) = view.port_bindings
    assert (binding.chassis, binding.requested_chassis, binding.additional_chassis) == (
        "compute-0", "compute-0", ("compute-0",))
    assert binding.datapath == DP_A
    assert view.datapaths[0].name == "public"
    assert view.local_chassis == "compute-0"
    assert dict(view.bridge_mappings) == {"datacentre": "br-ex"}
    assert view.problems == ()


def test_view_resolves_load_balancer_groups_into_their_datapaths() -> None:
    group_1, group_2, unknown = uuid.UUID(GROUP_1), uuid.UUID(GROUP_2), uuid.uuid4()
    router, switch_a, switch_b = uuid.UUID(ROUTER), uuid.UUID(DP_A), uuid.UUID(DP_B)
    groups = [{"_uuid": group_1, "datapaths": [switch_b, switch_a]},
              {"_uuid": group_2, "datapaths": [router]}]
    balancers = [
        {"_uuid": uuid.UUID(int=1), "name": "lb-23.03", "vips": {"10.0.0.40:80": "10.0.0.22:80"},
         "external_ids": {"lb_id": "x"}, "datapaths": [], "datapath_group": [group_1]},
        {"_uuid": uuid.UUID(int=2), "name": "lb-24.03", "vips": {}, "external_ids": {},
         "datapaths": [], "datapath_group": [], "ls_datapath_group": [group_1],
         "lr_datapath_group": [group_2]},
        {"_uuid": uuid.UUID(int=3), "name": "lb-20.12", "vips": {}, "external_ids": {},
         "datapaths": [switch_a]},
        {"_uuid": uuid.UUID(int=4), "name": "group-not-received", "vips": {}, "external_ids": {},
         "datapath_group": [unknown]},
    ]
    view = view_of(LocalOvs(system_id="compute-0"), [], [], [], load_balancers=balancers,
                   datapath_groups=groups)
    assert {b.name: b.datapaths for b in view.load_balancers} == {
        "lb-23.03": (DP_A, DP_B),
        "lb-24.03": tuple(sorted((DP_A, DP_B, ROUTER))),
        "lb-20.12": (DP_A,),
        "group-not-received": (),
    }
    assert dict(view.load_balancers[0].vips) == {"10.0.0.40:80": "10.0.0.22:80"}
    assert view.problems == ()


def test_view_without_local_facts_reports_the_missing_system_id() -> None:
    view = view_of(None, [], [], [])
    assert view.local_chassis == ""
    assert [p.column for p in view.problems] == ["external_ids:system-id"]


def test_remotes_are_split_as_the_idl_splits_them() -> None:
    assert split_remotes("tcp:10.0.0.1:6642,unix:/run/sb.sock") == [
        "tcp:10.0.0.1:6642", "unix:/run/sb.sock"]
    assert split_remotes("ssl:10.0.0.1:6642,x,ssl:10.0.0.2:6642") == [
        "ssl:10.0.0.1:6642,x", "ssl:10.0.0.2:6642"]


def test_an_interest_memo_rereads_only_changed_rows_and_never_changes_the_result() -> None:
    """The reader keeps an InterestMemo: a row that is the same object keeps its references; a
    changed row (a new dict, as the Database hands out) is read again."""
    local, other = uuid.uuid4(), uuid.uuid4()
    chassis = [{"_uuid": local, "name": "compute-0"}, {"_uuid": other, "name": "compute-1"}]
    datapath = uuid.uuid4()

    def port(i: int, where: uuid.UUID | None) -> RawRow:
        return {"_uuid": uuid.uuid4(), "logical_port": f"p{i}", "type": "", "datapath": datapath,
                "chassis": [where] if where else [], "requested_chassis": [],
                "additional_chassis": []}

    ports = [port(i, local) for i in range(5)]
    memo = InterestMemo()
    first = Interest.of("compute-0", chassis, ports, memo=memo)
    assert first == Interest.of("compute-0", chassis, ports)
    ports[2] = port(2, other)                 # moved: a new row object
    moved = Interest.of("compute-0", chassis, ports, memo=memo)
    assert moved == Interest.of("compute-0", chassis, ports)
    assert str(other) in moved.chassis
    assert str(other) not in first.chassis
    del ports[2]
    assert Interest.of("compute-0", chassis, ports, memo=memo) == Interest.of(
        "compute-0", chassis, ports)


CHASSIS_UUIDS = (uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3))
REFERENCE_VALUES: st.SearchStrategy[object] = st.one_of(
    st.just([]), st.lists(st.sampled_from(CHASSIS_UUIDS), max_size=2),
    st.sampled_from(CHASSIS_UUIDS), st.sampled_from((None, "garbage", 7)))


@given(st.lists(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(
    ("datapath", "chassis", "requested_chassis", "additional_chassis", "type")),
    REFERENCE_VALUES), max_size=6), min_size=1, max_size=6))
@settings(max_examples=200)
def test_an_interest_memo_gives_what_a_fresh_read_gives_over_row_versions(
        steps: list[list[tuple[int, str, object]]]) -> None:
    """Rows changed as the Database changes them (a new dict keeping the values of the columns
    an update did not name, the same `_uuid`): with the memo, every Interest equals one read
    without it."""
    local = CHASSIS_UUIDS[0]
    chassis = [{"_uuid": local, "name": "compute-0"}]
    rows: dict[int, RawRow] = {}
    memo = InterestMemo()
    for changes in steps:
        for index, column, value in changes:
            row = rows.get(index) or {"_uuid": uuid.UUID(int=100 + index),
                                      "logical_port": f"p{index}", "type": "",
                                      "datapath": uuid.UUID(int=200 + index % 2),
                                      "chassis": [], "requested_chassis": [],
                                      "additional_chassis": []}
            rows[index] = {**row, column: value}
        ports = list(rows.values())
        assert Interest.of("compute-0", chassis, ports, memo=memo) == Interest.of(
            "compute-0", chassis, ports)


def test_a_view_memo_gives_the_view_a_fresh_build_gives() -> None:
    """view_of with the reader's ViewMemo, over a chassis renamed and a row changed: each view
    equals one built without the memo."""
    local = uuid.uuid4()
    datapath = uuid.uuid4()
    ovs = LocalOvs(system_id="compute-0", bridge_mappings="physnet1:br-ex")
    port: RawRow = {"_uuid": uuid.uuid4(), "logical_port": "p1", "type": "",
                    "datapath": datapath, "mac": ["fa:16:3e:00:00:01 10.0.0.1"],
                    "chassis": [local], "requested_chassis": [], "additional_chassis": []}
    rows = [port]
    memo = ViewMemo()
    for chassis in ([{"_uuid": local, "name": "compute-0"}],
                    [{"_uuid": local, "name": "compute-0"}],
                    [{"_uuid": local, "name": "renamed"}],
                    [{"_uuid": local, "name": "renamed"}]):
        view = view_of(ovs, chassis, [], rows, memo=memo)
        assert view == view_of(ovs, chassis, [], rows)
        assert view.port_bindings[0].chassis == chassis[0]["name"]
    rows = [{**port, "chassis": []}]
    assert view_of(ovs, chassis, [], rows, memo=memo).port_bindings[0].chassis is None
