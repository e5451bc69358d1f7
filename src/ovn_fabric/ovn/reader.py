"""The OVSDB reader: the local OVS facts and the OVN Southbound rows this node needs, kept live in
one background thread, handed out as frozen `OvnView`s.

    reader = Reader(ovs_socket="/run/openvswitch/db.sock", on_change=loop.mark_dirty)
    reader.start()
    ...
    view = reader.synced_snapshot()     # None until the first complete read
    reader.close()

Two databases, both read-only, both through the `ovs` Python IDL (`_ovsdb.py` holds every
untyped call), both with the schema fetched from the server first (only columns the server has
are registered; the schema files are a fallback for a server that refuses `get_schema`):

1. Local OVS (`Open_vSwitch` table, `external_ids` column only; one row): `system-id` (our
   Chassis.name), `hostname`, `ovn-remote` (where the Southbound is, unless the caller overrides
   it), `ovn-bridge-mappings`, `ovn-bridge`. Live: a changed mapping or system-id reaches the
   view, a changed `ovn-remote` moves the Southbound connection.
2. Southbound (`OVN_Southbound`), columns: Chassis name, hostname; Datapath_Binding tunnel_key,
   external_ids; Port_Binding logical_port, type, datapath, mac, chassis, options, external_ids,
   virtual_parent, tag, nat_addresses, and up (OVN >= 21.03), requested_chassis (21.12),
   additional_chassis (22.06); Load_Balancer (20.12) name, vips, external_ids and whichever of
   datapaths (20.12), datapath_group (22.09), ls_datapath_group and lr_datapath_group (24.03)
   the server has; Logical_DP_Group datapaths. Columns and tables the server lacks are not
   registered. Chassis encaps are not read: the view has no use for them yet (an Encap
   condition `chassis_name == <system-id>` would make them cheap when it does).

Conditional monitoring (the point of this module)
-------------------------------------------------
The agent must receive data in proportion to its own node's workloads, not to the size of the
cloud. OVSDB `monitor_cond` conditions are a list of clauses, a row matches if ANY clause
matches (clauses cannot be ANDed), and `conditions()` builds them from what was received so far:

Chassis: `name == <system-id>` (our own row; its `_uuid` is what Port_Binding refers to) OR
    `_uuid == C` for each chassis C referenced by a Port_Binding received (a gateway holding a
    router port, the source or target of a live migration, the chassis of a virtual port), so
    that every reference in the view resolves to a Chassis.name.
Port_Binding, a constant condition (it changes only with our Chassis row's `_uuid`):
    `chassis == <our uuid>`: the ports bound here, the workloads themselves.
    `requested_chassis == <our uuid>`: ports Neutron placed here that ovn-controller has not
        claimed yet (or that a live migration is moving away): seen before they come up.
    `additional_chassis includes <our uuid>`: the target side of a live migration.
    `type == "localnet"`: one per provider network segment; they say which datapaths are
        provider networks, with their physnet (`options:network_name`) and VLAN (`tag`).
    `type == "chassisredirect"`: one per router gateway port (cr-lrp), wherever it is active.
    `type == "virtual"`: virtual ports (allowed-address-pair VIPs) wherever they are; few.
    `type == "patch"`: both ends of every router port. Neutron makes patch ports only for
        router ports, so these are exactly "everything on a router's datapath, and the peer of
        each of those ports": the provider-side port of each gateway (its `nat_addresses` hold
        the floating IPs, including a distributed one of a VM bound here behind a gateway
        active elsewhere), the router side of gateways and interfaces, and the switch side of
        each interface (Neutron's `neutron:subnet_pool_addr_scope4/6`). Naming them instead
        (`datapath == <router>` for each cr-lrp, `logical_port == <peer>` for each router port,
        `options includes {peer: ...}` for each gateway) receives the same rows but makes the
        condition grow with the cloud, re-sent (and the table rescanned by the server) on
        every router change anywhere; and one `includes` among many clauses turns off the
        server's hashing of `==` clauses: 1,926 such clauses cost 2.7 s of server CPU per
        scan of 100,000 Port_Bindings, the 7 constant ones 0.23 s (docs/OVSDB.md).
    Until our Chassis row is known (ovn-controller registers after the agent starts, or its
    row was deleted and re-created with a new `_uuid`) the chassis clauses are absent and only
    the type clauses remain.
Datapath_Binding: `_uuid == D` for each datapath referenced by a Port_Binding received; `[False]`
    while there is none. Updated whenever that set changes.
Logical_DP_Group: `datapaths includes D` for each switch behind a gateway active here (the
    datapath at the other end of each interface of a router whose cr-lrp is bound here), and,
    when the server has `lr_datapath_group` (24.03), each such router: the groups a load
    balancer applied there can name, plus the groups northd shares between logical flows.
Load_Balancer: `datapath_group == G` (and `ls_`/`lr_datapath_group == G` where they exist) for
    each group G received, and `datapaths includes D` (20.12-22.06) for each datapath above.
    A Load_Balancer is advertised only where a router serving it has its gateway
    (plan.add_load_balancer_vips), so a node without an active gateway receives none. Before
    OVN 24.03 a router-only load balancer (Neutron port forwarding) is not in the Southbound at
    all; reading it from the Northbound is not supported.

The conditions depend on rows that earlier conditions brought, in strata: our Chassis (by name)
-> Port_Bindings (constant) -> the datapaths and chassis they name, and the groups of the
switches behind our gateways -> the balancers of those groups. No clause depends on rows of its
own stratum or a later one, so from any rows held (nothing, or stale ones after a reconnection or
a failover) the conditions reach the same fixed point; from nothing, in at most three requests
(the monitor request and two condition changes). tests/ovn/test_conditions.py checks it against
a simulated server on random topologies.

Cost model, for a node with L ports of its own in a cloud of N ports, C chassis, D datapaths, P
provider segments, R routers with a gateway, I router interfaces, V virtual ports, and G
gateways active here whose switches carry B load balancers:
    received Port_Bindings  ~ L + P + R + V + 2 (R + I)   (not N; the patch ports do not
                                                            grow with the number of VMs)
    received Datapaths      <= P + R + (switches with a router interface or a port of ours)
    received Chassis        <= 1 + chassis referenced by those ports   (not C)
    received Load_Balancers  B, and the groups holding those switches (their own and the ones
                             northd shares between logical flows); none without a gateway here
Every change of a row outside that set costs this agent nothing on the wire. What it costs:
about three round trips at start (our Chassis -> our ports -> their datapaths, chassis and
groups -> the balancers), one `monitor_cond_change` each time the set of referenced datapaths or
chassis or the groups behind our gateways change, and on the server the evaluation of the
clauses against each changed row (the Port_Binding condition keeps 7 clauses; the
Datapath_Binding one has one `==` clause per datapath of interest, hashed by the server, and that
table rarely changes; the load-balancer ones have a few clauses each on small tables), and no
sharing of the serialised update between clients with different conditions. `monitor_all=True`
turns conditions off (every row of the registered columns, as openstack/ovn-bgp-agent does):
the escape hatch, and the baseline of bench/sb_sync.py.

When the view is complete: `synced`
-----------------------------------
True only while (a) the local OVS is connected and its row read, with a system-id, and (b) the
Southbound is connected, the reply to this connection's monitor request has arrived, and, for
each table, the server has acknowledged a condition (no change new or in flight in the IDL's
`condition_state`) equal to the one `conditions()` computes from the rows now replicated: the
fixed point. The server sends a condition change's rows before its reply, so an acknowledged
condition means its rows are there. A disconnection makes it False at once (the IDL keeps the
last rows, the view stays readable); the IDL reconnects by itself, with `monitor_cond_since`
(only what changed while away, or a full reload), and `synced` comes back after that and after
the conditions settle again. Never True before the Southbound was reached: the reconcile loop
must not remove anything while it is False. Our Chassis row being absent is not a reason to be
unsynced (the data is complete: nothing is bound here); it is logged.

Life cycle: `start()` runs the loop in one daemon thread: `run()` both IDLs, update the
conditions, recompute `synced`, then block on the sockets (and a pipe that `close()` writes
to). Every change of the replicated rows, or of `synced`, calls `on_change()` from that thread,
outside the lock: it must only mark something dirty. `snapshot()` copies the rows under the
same lock (no `run()` in between, so never half an update) and builds the view outside it.
Both are incremental: the Database converts again only the rows the IDL changed (of an updated
row, only the columns the update named), and the view re-resolves and rebuilds only those
(`ViewMemo`; a changed Port_Binding reads only the columns whose values changed); a snapshot
equals one built from scratch (tests/ovn/test_reader.py checks it after random changes).
Bad data never raises: `build_view` turns it into Problems. An unreachable database is logged
(once per outage, after `warn_after` seconds) and retried by the IDL with back-off; the rest of
the agent keeps running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from ovn_fabric.ovn._ovsdb import Database, JsonValue, Poller, RawRow, use_ssl_files
from ovn_fabric.ovn.view import LB_DATAPATH_COLUMNS, BuildMemo, OvnView, build_view

LOG = logging.getLogger(__name__)

OVS_DB = "Open_vSwitch"
SB_DB = "OVN_Southbound"
OVS_SCHEMA_FILE = Path("/usr/share/openvswitch/vswitch.ovsschema")
SB_SCHEMA_FILE = Path("/usr/share/ovn/ovn-sb.ovsschema")

OVS_COLUMNS: Mapping[str, tuple[str, ...]] = {"Open_vSwitch": ("external_ids",)}
SB_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "Chassis": ("name", "hostname"),
    "Datapath_Binding": ("tunnel_key", "external_ids"),
    "Port_Binding": (
        "logical_port", "type", "datapath", "mac", "chassis", "options", "external_ids",
        "virtual_parent", "tag", "nat_addresses",
        "up", "requested_chassis", "additional_chassis",
    ),
    # datapaths (20.12), datapath_group (22.09), ls_/lr_datapath_group (24.03)
    "Load_Balancer": ("name", "vips", "external_ids", *LB_DATAPATH_COLUMNS),
    "Logical_DP_Group": ("datapaths",),
}
# A Load_Balancer's columns that reference a Logical_DP_Group.
LB_GROUP_COLUMNS = tuple(column for column in LB_DATAPATH_COLUMNS if column != "datapaths")
# Columns an older OVN lacks: not worth a warning.
OPTIONAL_COLUMNS = frozenset({
    "Port_Binding.up", "Port_Binding.requested_chassis", "Port_Binding.additional_chassis",
    *(f"{table}.{column}" for table in ("Load_Balancer", "Logical_DP_Group")
      for column in SB_COLUMNS[table]),
})
MONITOR_ALL: Mapping[str, list[JsonValue]] = {table: [True] for table in SB_COLUMNS}
# Port_Binding types received wherever they are bound (see the module docstring).
GLOBAL_PORT_TYPES = ("localnet", "chassisredirect", "virtual", "patch")
_CHASSIS_REFERENCES = ("chassis", "requested_chassis", "additional_chassis")
# The Port_Binding columns the conditions depend on.
INTEREST_COLUMNS = ("logical_port", "type", "datapath", "options", *_CHASSIS_REFERENCES)
# Port_Binding options: a cr-lrp's router port (lrp-<gw>); a patch port's other end; what
# northd adds to a gateway router port (so that it is told from an interface).
_DISTRIBUTED_PORT, _PEER, _REDIRECT_PORT = "distributed-port", "peer", "chassis-redirect-port"


# --- the conditions (pure) ----------------------------------------------------------------------


def conditions(
    interest: Interest,
    *,
    system_id: str | None,
    columns: Mapping[str, Collection[str]] = SB_COLUMNS,
) -> dict[str, list[JsonValue]]:
    """The monitor condition of each Southbound table in `columns` (the tables and columns the
    server has: a clause on a column it lacks would be rejected). Clauses are ORed and sorted,
    so equal inputs give equal conditions."""
    pb_columns = columns.get("Port_Binding", ())
    lb_columns = columns.get("Load_Balancer", ())
    local = interest.local_chassis
    chassis: list[JsonValue] = [["name", "==", system_id]] if system_id else []
    chassis += [["_uuid", "==", ["uuid", c]]
                for c in sorted(interest.chassis - {local or ""})]
    # A constant set of clauses whatever the size of the cloud (see the module docstring).
    bindings: list[JsonValue] = [["type", "==", kind] for kind in GLOBAL_PORT_TYPES]
    if local:
        mine: JsonValue = ["uuid", local]
        bindings.append(["chassis", "==", mine])
        if "requested_chassis" in pb_columns:
            bindings.append(["requested_chassis", "==", mine])
        if "additional_chassis" in pb_columns:
            bindings.append(["additional_chassis", "includes", mine])
    datapaths: list[JsonValue] = [["_uuid", "==", ["uuid", d]]
                                  for d in sorted(interest.datapaths)]
    # Before OVN 24.03 a Load_Balancer names switches only.
    served = interest.gateway_switches | (
        interest.gateway_routers if "lr_datapath_group" in lb_columns else frozenset())
    groups: list[JsonValue] = []
    if lb_columns and "datapaths" in columns.get("Logical_DP_Group", ()):
        groups = [["datapaths", "includes", ["uuid", d]] for d in sorted(served)]
    balancers: list[JsonValue] = [[column, "==", ["uuid", group]]
                                  for column in LB_GROUP_COLUMNS if column in lb_columns
                                  for group in sorted(interest.datapath_groups)]
    if "datapaths" in lb_columns:
        balancers += [["datapaths", "includes", ["uuid", d]] for d in sorted(served)]
    every = {
        "Chassis": chassis,
        "Datapath_Binding": datapaths,
        "Port_Binding": bindings,
        "Logical_DP_Group": groups,
        "Load_Balancer": balancers,
    }
    return {table: condition or [False] for table, condition in every.items()
            if table in columns}


@dataclass(frozen=True, slots=True)
class Interest:
    """What the rows received so far say the conditions must name."""

    local_chassis: str | None = None                       # our Chassis row's _uuid
    datapaths: frozenset[str] = frozenset()                # referenced by a Port_Binding
    chassis: frozenset[str] = frozenset()                  # referenced by a Port_Binding
    gateway_routers: frozenset[str] = frozenset()          # routers whose cr-lrp is bound here
    gateway_switches: frozenset[str] = frozenset()         # their interfaces' switches
    datapath_groups: frozenset[str] = frozenset()          # Logical_DP_Group rows received

    @classmethod
    def of(cls, system_id: str | None, chassis: Iterable[RawRow],
           port_bindings: Iterable[RawRow], datapath_groups: Iterable[object] = (),
           memo: InterestMemo | None = None) -> Interest:
        """From the replicated rows (`datapath_groups`: the _uuids of the Logical_DP_Group
        rows). With a `memo` (the reader's), the references of a row that is the same object
        as in the previous call are not read again."""
        memo = memo or InterestMemo()
        local = min((str(row["_uuid"]) for row in chassis
                     if system_id and row.get("name") == system_id), default=None)
        bindings = list(port_bindings)
        datapaths, referenced = memo.references(bindings)
        routers: set[str] = set()
        gateway_ports: set[object] = set()
        for row in bindings:
            if row.get("type") == "chassisredirect" and local in _uuids(row.get("chassis")):
                routers.update(_uuids(row.get("datapath")))
                gateway_ports.add(_options(row).get(_DISTRIBUTED_PORT))
        memo.done()
        return cls(local_chassis=local, datapaths=frozenset(datapaths),
                   chassis=frozenset(referenced), gateway_routers=frozenset(routers),
                   gateway_switches=_interface_switches(bindings, routers, gateway_ports),
                   datapath_groups=frozenset(str(g) for g in datapath_groups))

    def conditions(self, system_id: str | None,
                   columns: Mapping[str, Collection[str]]) -> dict[str, list[JsonValue]]:
        return conditions(self, system_id=system_id, columns=columns)


class InterestMemo:
    """Each Port_Binding row's references (its datapath; the chassis it names), kept from one
    `Interest.of` to the next while the row is the same object (the Database hands out
    unchanged rows as the same dicts): at 3,000 bound ports, reading them all again cost the
    reader ~15 ms of CPU on every Southbound update, under its lock. Holds each row it keeps,
    so an id is never reused meanwhile. Not thread-safe: one caller at a time."""

    __slots__ = ("_current", "_previous")

    def __init__(self) -> None:
        self._previous: dict[int, tuple[RawRow, tuple[str, ...], tuple[str, ...]]] = {}
        self._current: dict[int, tuple[RawRow, tuple[str, ...], tuple[str, ...]]] = {}

    def references(self, rows: Iterable[RawRow]) -> tuple[set[str], set[str]]:
        """The datapath UUIDs and the chassis UUIDs that Port_Binding rows reference (one call
        for all rows, its lookups in local variables)."""
        previous, current = self._previous, self._current
        datapaths: set[str] = set()
        chassis: set[str] = set()
        for row in rows:
            kept = previous.get(id(row))
            if kept is None or kept[0] is not row:
                kept = (row, tuple(_uuids(row.get("datapath"))),
                        tuple(ref for column in _CHASSIS_REFERENCES
                              for ref in _uuids(row.get(column))))
            current[id(row)] = kept
            datapaths.update(kept[1])
            chassis.update(kept[2])
        return datapaths, chassis

    def done(self) -> None:
        self._previous, self._current = self._current, {}


def _interface_switches(bindings: list[RawRow], routers: set[str],
                        gateway_ports: set[object]) -> frozenset[str]:
    """The datapaths at the other end of the interfaces of `routers`: each patch port on a
    router's datapath, other than its gateway port, names its switch-side peer in
    `options:peer`."""
    if not routers:
        return frozenset()
    by_name = {row.get("logical_port"): row for row in bindings}
    switches: set[str] = set()
    for row in bindings:
        options = _options(row)
        if (routers.isdisjoint(_uuids(row.get("datapath")))
                or row.get("logical_port") in gateway_ports or _REDIRECT_PORT in options):
            continue
        peer = by_name.get(options.get(_PEER))
        if peer is not None:
            switches.update(_uuids(peer.get("datapath")))
    return frozenset(switches - routers)


def _uuids(value: object) -> list[str]:
    """A reference column's value (one UUID, or a list of them) as UUID strings."""
    items = value if isinstance(value, list) else [value]
    return [str(item) for item in items if isinstance(item, uuid.UUID)]


def _options(row: RawRow) -> Mapping[object, object]:
    options = row.get("options")
    return options if isinstance(options, Mapping) else {}


# --- local OVS facts ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalOvs:
    """The local Open_vSwitch row's external_ids that matter (None: absent)."""

    system_id: str | None = None
    hostname: str | None = None
    ovn_remote: str | None = None
    bridge_mappings: str | None = None
    integration_bridge: str | None = None

    @classmethod
    def from_rows(cls, rows: Iterable[RawRow]) -> LocalOvs | None:
        """None when there is no Open_vSwitch row (yet)."""
        for row in rows:
            ids = row.get("external_ids")
            ids = ids if isinstance(ids, Mapping) else {}
            return cls(
                system_id=_text(ids.get("system-id")),
                hostname=_text(ids.get("hostname")),
                ovn_remote=_text(ids.get("ovn-remote")),
                bridge_mappings=_text(ids.get("ovn-bridge-mappings")),
                integration_bridge=_text(ids.get("ovn-bridge")),
            )
        return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def view_of(local: LocalOvs | None, chassis: list[RawRow], datapaths: list[RawRow],
            port_bindings: list[RawRow], *, load_balancers: Iterable[RawRow] = (),
            datapath_groups: Iterable[RawRow] = (), memo: ViewMemo | None = None) -> OvnView:
    """The view of replicated rows: chassis references become Chassis names, and a
    Load_Balancer's datapath groups the `datapaths` of those Logical_DP_Groups (a reference to a
    row not replicated, a transient state while `synced` is False, is left out). With a `memo`
    (the reader's), rows unchanged since its previous view, as the same objects and with the
    same references resolved, are not resolved or built again."""
    memo = memo or ViewMemo()
    groups = {str(row["_uuid"]): _uuids(row.get("datapaths")) for row in datapath_groups}
    balancers = []
    for row in load_balancers:
        refs: dict[str, list[object]] = {
            column: [datapath for group in _uuids(row[column])
                     for datapath in groups.get(group, ())]
            for column in LB_GROUP_COLUMNS if column in row}
        balancers.append(memo.resolve(row, refs))
    names = {row["_uuid"]: row.get("name") for row in chassis}
    bindings = memo.resolve_bindings(port_bindings, names)
    memo.resolved_done()
    facts = local or LocalOvs()
    return build_view(
        local_chassis=facts.system_id,
        bridge_mappings=facts.bridge_mappings,
        integration_bridge=facts.integration_bridge,
        chassis=chassis, datapaths=datapaths, port_bindings=bindings,
        load_balancers=balancers, memo=memo.built,
    )


class ViewMemo:
    """What `view_of` keeps from one view to the next (not thread-safe: one view at a time):
    each row with its references resolved, reused while the raw row is the same object (the
    Database hands out unchanged rows as the same dicts) and the resolved references are equal;
    and the view's rows built from those (`BuildMemo`)."""

    __slots__ = ("_current", "_names", "_previous", "built")

    def __init__(self) -> None:
        self._previous: dict[int, tuple[RawRow, dict[str, list[object]], RawRow]] = {}
        self._current: dict[int, tuple[RawRow, dict[str, list[object]], RawRow]] = {}
        self._names: dict[object, object] | None = None
        self.built = BuildMemo()

    def same_names(self, names: dict[object, object]) -> bool:
        """Whether the chassis names (_uuid -> name) are those of the previous view: then a
        Port_Binding row that is the same object resolves to the same references, and
        `resolve_bindings` may give it without reading them again."""
        same = names == self._names
        self._names = names
        return same

    def resolve_bindings(self, rows: Iterable[RawRow], names: dict[object, object]
                         ) -> list[RawRow]:
        """Port_Binding rows with their chassis references replaced by the chassis' names.
        A row that is the same object as in the previous view, with the same names, is given
        as resolved then (one call for all rows, lookups in local variables: at 3,000 rows a
        method call per row was a fifth of the view)."""
        previous, current = self._previous, self._current
        same_names = self.same_names(names)
        resolved = []
        for row in rows:
            kept = previous.get(id(row)) if same_names else None
            if kept is not None and kept[0] is row:
                current[id(row)] = kept
                resolved.append(kept[2])
                continue
            refs = {}
            for column in _CHASSIS_REFERENCES:
                value = row.get(column)
                if value is not None:
                    values = value if isinstance(value, list) else [value]
                    refs[column] = [names[ref] for ref in values if ref in names]
            resolved.append(self.resolve(row, refs))
        return resolved

    def resolve(self, row: RawRow, refs: dict[str, list[object]]) -> RawRow:
        """`row` with the columns of `refs` replaced by those values."""
        kept = self._previous.get(id(row))
        if kept is None or kept[0] is not row or kept[1] != refs:
            resolved = dict(row)
            resolved.update(refs)
            kept = (row, refs, resolved)
        self._current[id(row)] = kept
        return kept[2]

    def resolved_done(self) -> None:
        self._previous, self._current = self._current, {}


class _Rows(NamedTuple):
    """A copy of what is replicated, taken under the reader's lock."""

    local: LocalOvs | None
    chassis: list[RawRow]
    datapaths: list[RawRow]
    port_bindings: list[RawRow]
    load_balancers: list[RawRow]
    datapath_groups: list[RawRow]

    def view(self, memo: ViewMemo | None = None) -> OvnView:
        return view_of(self.local, self.chassis, self.datapaths, self.port_bindings,
                       load_balancers=self.load_balancers,
                       datapath_groups=self.datapath_groups, memo=memo)


# --- the reader ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SslFiles:
    """PEM files for `ssl:` remotes."""

    private_key: Path
    certificate: Path
    ca_cert: Path


@dataclass(frozen=True, slots=True)
class ReaderStatus:
    """For logs, metrics and tests: what the reader holds right now."""

    synced: bool
    running: bool
    ovs_connected: bool
    local: LocalOvs | None
    sb_remote: str | None
    sb_connected: bool
    local_chassis_uuid: str | None
    rows: Mapping[str, int]              # rows replicated per Southbound table
    clauses: Mapping[str, int]           # clauses of the current condition per table
    missing_columns: tuple[str, ...]


@dataclass(slots=True)
class _Link:
    """Connection history of one database, for logging transitions once."""

    what: str
    down_since: float = field(default_factory=time.monotonic)
    was_connected: bool = False
    warned: bool = False

    def update(self, connected: bool, remote: str, warn_after: float) -> float | None:
        """Log transitions; return seconds until a warning is due (None: none due)."""
        now = time.monotonic()
        if connected and not self.was_connected:
            LOG.info("%s %s: connected", self.what, remote)
        elif not connected and self.was_connected:
            LOG.warning("%s %s: connection lost; keeping the last rows, not synced until the "
                        "IDL has reconnected and resynced", self.what, remote)
            self.down_since, self.warned = now, False
        self.was_connected = connected
        if connected or self.warned:
            return None
        due = self.down_since + warn_after - now
        if due > 0:
            return due
        LOG.warning("%s %s: not reachable for %.0f s; still trying (the agent keeps running; "
                    "the view stays not synced)", self.what, remote, now - self.down_since)
        self.warned = True
        return None


class Reader:
    """Keeps the local OVS facts and this node's Southbound rows; see the module docstring."""

    def __init__(
        self,
        *,
        ovs_socket: str | os.PathLike[str],
        on_change: Callable[[], None],
        sb_remote: str | None = None,
        chassis: str | None = None,
        hostname: str | None = None,
        ssl: SslFiles | None = None,
        monitor_all: bool = False,
        sb_schema_file: Path | None = SB_SCHEMA_FILE,
        warn_after: float = 2.0,
    ) -> None:
        """`sb_remote`, `chassis` and `hostname` override the local OVS's `ovn-remote`,
        `system-id` and `hostname` (the settings' [ovn] and [node]); `ssl` gives the PEM files
        for `ssl:` remotes (process-wide: the library keeps them globally); `monitor_all`
        turns the conditions off; `warn_after` is how long a database may stay unreachable
        before it is logged."""
        self._on_change = on_change
        self._sb_override = sb_remote
        self._identity = {"system_id": chassis, "hostname": hostname}
        if ssl is not None:
            use_ssl_files(ssl.private_key, ssl.certificate, ssl.ca_cert)
        self._monitor_all = monitor_all
        self._sb_schema_file = sb_schema_file
        self._warn_after = warn_after
        self._lock = threading.Lock()
        self._memo = ViewMemo()                       # guarded by _view_lock
        self._view_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake: tuple[int, int] | None = None     # a pipe: close() wakes the loop up
        self._ovs = Database(f"unix:{os.fspath(ovs_socket)}", OVS_DB, OVS_COLUMNS,
                             fallback_schema=OVS_SCHEMA_FILE)
        self._ovs_link = _Link("local OVS database")
        self._ovs_seqno = -1
        self._local: LocalOvs | None = None
        self._sb: Database | None = None
        self._sb_link = _Link("Southbound database")
        self._sb_seqno = -1
        self._interest = Interest()
        self._interest_memo = InterestMemo()
        self._desired: dict[str, list[JsonValue]] = {}
        self._synced = False
        self._running = False
        self._warned: set[str] = set()

    # --- public API ------------------------------------------------------------------------

    def start(self) -> Reader:
        """Start the background thread (once)."""
        if self._thread is None:
            self._ovs_link = _Link("local OVS database")      # warn_after counts from now
            self._wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._running = True
            self._thread = threading.Thread(target=self._loop, args=(self._wake[0],),
                                            name="ovsdb-reader", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop the thread and the connections. Idempotent."""
        self._stop.set()
        if self._wake is not None:
            os.write(self._wake[1], b"x")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            self._ovs.close()
            if self._sb is not None:
                self._sb.close()
            self._synced = self._running = False
            if self._wake is not None and self._thread is not threading.current_thread():
                for fd in self._wake:
                    os.close(fd)
                self._wake = None

    def __enter__(self) -> Reader:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def synced(self) -> bool:
        """See the module docstring."""
        with self._lock:
            return self._synced

    def snapshot(self) -> OvnView:
        """The view of what is replicated now (complete only if `synced`)."""
        with self._lock:
            rows = self._rows()
        with self._view_lock:
            return rows.view(self._memo)

    def synced_snapshot(self) -> OvnView | None:
        """The view if it is complete, else None, decided atomically."""
        with self._lock:
            if not self._synced:
                return None
            rows = self._rows()
        with self._view_lock:
            return rows.view(self._memo)

    def status(self) -> ReaderStatus:
        with self._lock:
            sb = self._sb
            return ReaderStatus(
                synced=self._synced, running=self._running,
                ovs_connected=self._ovs.connected, local=self._local,
                sb_remote=sb.remote if sb else None,
                sb_connected=sb.connected if sb else False,
                local_chassis_uuid=self._interest.local_chassis,
                rows={table: sb.row_count(table) if sb else 0 for table in SB_COLUMNS},
                clauses={table: len(c) for table, c in self._desired.items()},
                missing_columns=sb.missing if sb else (),
            )

    # --- the loop (background thread) ------------------------------------------------------

    def _rows(self) -> _Rows:
        if self._sb is None:
            return _Rows(self._local, [], [], [], [], [])
        sb = self._sb
        return _Rows(self._local, sb.rows("Chassis"), sb.rows("Datapath_Binding"),
                     sb.rows("Port_Binding"), sb.rows("Load_Balancer"),
                     sb.rows("Logical_DP_Group"))

    def _loop(self, wake_fd: int) -> None:
        try:
            while not self._stop.is_set():
                poller = Poller()
                with self._lock:
                    changed = self._step(poller)
                if changed:
                    self._on_change()
                poller.fd_readable(wake_fd)
                poller.block()
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_fd, 512)
        finally:
            with self._lock:
                self._synced = self._running = False

    def _step(self, poller: Poller) -> bool:
        """One round: run the IDLs, follow the local facts, update the conditions and
        `synced`, and register what to wait for. True when on_change is due."""
        before = (self._ovs_seqno, self._sb_seqno, self._sb, self._synced)
        self._ovs.run()
        if self._ovs.change_seqno != self._ovs_seqno:
            self._ovs_seqno = self._ovs.change_seqno
            self._local = self._with_overrides(LocalOvs.from_rows(self._ovs.rows("Open_vSwitch")))
            self._follow_sb_remote()
            self._sb_seqno = -1                  # system-id may have changed: recompute
        if self._sb is not None:
            self._sb.run()
            if self._sb.change_seqno != self._sb_seqno:
                self._sb_seqno = self._sb.change_seqno
                self._update_conditions(self._sb)
            if self._sb.can_change_conditions():
                for table, condition in self._desired.items():
                    self._sb.set_condition(table, condition)
        self._set_synced(self._is_synced(), self._sb)
        self._wait(poller)
        return before != (self._ovs_seqno, self._sb_seqno, self._sb, self._synced)

    def _wait(self, poller: Poller) -> None:
        self._ovs.wait(poller)
        due = [self._ovs_link.update(self._ovs.connected, self._ovs.remote, self._warn_after)]
        if self._sb is not None:
            self._sb.wait(poller)
            due.append(self._sb_link.update(self._sb.connected, self._sb.remote,
                                            self._warn_after))
        timers = [d for d in due if d is not None]
        if timers:
            poller.timer(int(min(timers) * 1000) + 1)

    def _with_overrides(self, local: LocalOvs | None) -> LocalOvs | None:
        overrides = {key: value for key, value in self._identity.items() if value}
        return replace(local, **overrides) if local is not None and overrides else local

    def _follow_sb_remote(self) -> None:
        local = self._local
        remote = self._sb_override or (local.ovn_remote if local else None)
        if local is not None and remote is None:
            self._warn_once("no-remote", "the local OVS has no external_ids:ovn-remote and no "
                            "Southbound remote is configured: waiting for one")
        if local is not None and local.system_id is None:
            self._warn_once("no-system-id", "the local OVS has no external_ids:system-id: "
                            "cannot tell which chassis is ours; waiting for it")
        if local is None or remote == (self._sb.remote if self._sb else None):
            return
        if self._sb is not None:
            LOG.info("Southbound remote changed from %s to %s", self._sb.remote, remote)
            self._sb.close()
            self._sb = None
        self._sb_link = _Link("Southbound database")
        self._interest = Interest()
        if remote is not None:
            self._desired = self._conditions_for(self._interest, SB_COLUMNS)
            self._sb = Database(remote, SB_DB, SB_COLUMNS, fallback_schema=self._sb_schema_file,
                                initial_conditions=self._desired)

    def _conditions_for(self, interest: Interest,
                        columns: Mapping[str, Collection[str]]) -> dict[str, list[JsonValue]]:
        if self._monitor_all:
            return {table: condition for table, condition in MONITOR_ALL.items()
                    if table in columns}
        system_id = self._local.system_id if self._local else None
        return interest.conditions(system_id, columns)

    def _update_conditions(self, sb: Database) -> None:
        if not sb.columns:                       # still fetching the schema
            return
        system_id = self._local.system_id if self._local else None
        if not self._monitor_all:
            self._interest = Interest.of(
                system_id, sb.rows("Chassis", ("name",)),
                # Every column (Interest reads INTEREST_COLUMNS only): the rows converted
                # for the next snapshot, unchanged rows not converted again.
                sb.rows("Port_Binding"), sb.row_uuids("Logical_DP_Group"),
                memo=self._interest_memo)
        self._desired = self._conditions_for(self._interest, sb.columns)
        missing = [column for column in sb.missing if column not in OPTIONAL_COLUMNS]
        if missing:
            self._warn_once("missing:" + ",".join(missing),
                            f"the Southbound schema lacks {', '.join(missing)}: reading without")

    def _is_synced(self) -> bool:
        sb, local = self._sb, self._local
        if not (self._ovs.monitoring and local is not None and local.system_id):
            return False
        if sb is None or not sb.monitoring or not self._desired:
            return False
        return all(sb.condition_settled(table, condition)
                   for table, condition in self._desired.items())

    def _set_synced(self, synced: bool, sb: Database | None) -> None:
        if synced == self._synced:
            return
        self._synced = synced
        if not synced or sb is None:
            LOG.info("not synced with the Southbound any more")
            return
        counts = ", ".join(f"{sb.row_count(table)} {table}" for table in SB_COLUMNS)
        mode = "all rows" if self._monitor_all else "conditional monitoring"
        LOG.info("synced with the Southbound %s (%s): %s", sb.remote, mode, counts)
        if not self._monitor_all and self._interest.local_chassis is None:
            LOG.warning("no Chassis named %r in the Southbound (yet): is ovn-controller "
                        "running and registered?", self._local.system_id if self._local else "")

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            LOG.warning("%s", message)
