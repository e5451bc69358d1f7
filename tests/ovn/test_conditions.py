"""The reader's pure parts by value: monitor conditions, what the received rows ask for next, local
OVS facts, and the view of raw IDL rows (references as UUIDs)."""

from __future__ import annotations

import uuid

from ovn_fabric.ovn._ovsdb import split_remotes
from ovn_fabric.ovn.reader import SB_COLUMNS, Interest, LocalOvs, conditions, view_of

LOCAL = "4f0c2a7e-0000-4000-8000-000000000001"
OTHER = "4f0c2a7e-0000-4000-8000-000000000002"
DP_A = "9d1e0b3c-0000-4000-8000-00000000000a"
DP_B = "9d1e0b3c-0000-4000-8000-00000000000b"
TYPES = [["type", "==", "localnet"], ["type", "==", "chassisredirect"],
         ["type", "==", "virtual"]]


def test_before_anything_is_known_only_the_global_port_types_are_asked_for() -> None:
    assert conditions(None, (), system_id=None) == {
        "Chassis": [False],
        "Datapath_Binding": [False],
        "Port_Binding": TYPES,
    }


def test_our_chassis_is_asked_for_by_name_until_its_uuid_is_known() -> None:
    assert conditions(None, (), system_id="compute-0")["Chassis"] == [
        ["name", "==", "compute-0"]]
    assert conditions(None, (), system_id="compute-0")["Port_Binding"] == TYPES


def test_ports_bound_requested_or_migrating_here_once_our_uuid_is_known() -> None:
    mine = ["uuid", LOCAL]
    assert conditions(LOCAL, (), system_id="compute-0")["Port_Binding"] == [
        *TYPES,
        ["chassis", "==", mine],
        ["requested_chassis", "==", mine],
        ["additional_chassis", "includes", mine],
    ]


def test_no_clause_on_a_column_the_server_lacks() -> None:
    old_ovn = [c for c in SB_COLUMNS["Port_Binding"]
               if c not in ("requested_chassis", "additional_chassis")]
    assert conditions(LOCAL, (), system_id="c", port_binding_columns=old_ovn)[
        "Port_Binding"] == [*TYPES, ["chassis", "==", ["uuid", LOCAL]]]


def test_datapaths_chassis_and_gateway_peers_are_named_one_clause_each_sorted() -> None:
    got = conditions(LOCAL, [DP_B, DP_A, DP_B], system_id="compute-0",
                     chassis_of_interest=[OTHER, LOCAL], distributed_ports=["lrp-b", "lrp-a"])
    assert got["Datapath_Binding"] == [["_uuid", "==", ["uuid", DP_A]],
                                       ["_uuid", "==", ["uuid", DP_B]]]
    # our own row is already asked for by name
    assert got["Chassis"] == [["name", "==", "compute-0"], ["_uuid", "==", ["uuid", OTHER]]]
    assert got["Port_Binding"][-2:] == [["options", "includes", ["map", [["peer", "lrp-a"]]]],
                                        ["options", "includes", ["map", [["peer", "lrp-b"]]]]]


def _pb(**columns: object) -> dict[str, object]:
    row: dict[str, object] = {"logical_port": "p", "type": "", "chassis": [], "options": {},
                              "requested_chassis": [], "additional_chassis": []}
    row.update(columns)
    return row


def test_interest_follows_references_of_the_received_ports() -> None:
    local, other, gateway = uuid.UUID(LOCAL), uuid.UUID(OTHER), uuid.uuid4()
    chassis = [{"_uuid": local, "name": "compute-0"}, {"_uuid": other, "name": "compute-1"}]
    ports = [
        _pb(datapath=uuid.UUID(DP_A), chassis=[local]),
        _pb(datapath=uuid.UUID(DP_B), chassis=[other], additional_chassis=[local]),
        _pb(datapath=uuid.UUID(DP_B), type="chassisredirect", chassis=[local],
            options={"distributed-port": "lrp-gw1"}),
        _pb(datapath=uuid.UUID(DP_B), type="chassisredirect", chassis=[gateway],
            options={"distributed-port": "lrp-gw2"}),
    ]
    assert Interest.of("compute-0", chassis, ports) == Interest(
        local_chassis=LOCAL,
        datapaths=frozenset({DP_A, DP_B}),
        chassis=frozenset({LOCAL, OTHER, str(gateway)}),
        distributed_ports=frozenset({"lrp-gw1"}),       # only the gateway active here
    )


def test_interest_without_our_chassis_row() -> None:
    assert Interest.of("compute-0", [{"_uuid": uuid.uuid4(), "name": "compute-9"}], []) == \
        Interest()


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


def test_view_without_local_facts_reports_the_missing_system_id() -> None:
    view = view_of(None, [], [], [])
    assert view.local_chassis == ""
    assert [p.column for p in view.problems] == ["external_ids:system-id"]


def test_remotes_are_split_as_the_idl_splits_them() -> None:
    assert split_remotes("tcp:10.0.0.1:6642,unix:/run/sb.sock") == [
        "tcp:10.0.0.1:6642", "unix:/run/sb.sock"]
    assert split_remotes("ssl:10.0.0.1:6642,x,ssl:10.0.0.2:6642") == [
        "ssl:10.0.0.1:6642,x", "ssl:10.0.0.2:6642"]
