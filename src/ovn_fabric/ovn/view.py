"""A frozen, hashable view of the OVN Southbound rows (and local OVS facts) the planner reads.

Rules of this module:
- Every value is immutable and hashable. An OvnView is canonical: rows and set columns are kept
  sorted, so two views holding the same rows compare equal whatever order the rows came in, and
  "nothing changed" is a plain `==`.
- The builders (`Chassis.from_row`, `Datapath.from_row`, `PortBinding.from_row`,
  `LoadBalancer.from_row`, `build_view`, `parse_bridge_mappings`) and the parsers of column
  values (`parse_address_entry`, `parse_nat_address`, `parse_vip`) never raise on bad data. A
  malformed column becomes None or empty and a Problem records what was wrong; a row without a
  usable key is dropped, with a Problem; a malformed value is returned with why it is unusable.
  Only the specific errors of bad data are caught.
- Rows are plain mappings from column name to the value the OVS Python IDL gives
  (`Datum.to_python`): str, int and bool for scalar columns; a list for sets and for optional
  columns (`[]` or `[value]`; a bare value or None are accepted too); a dict for maps.
  References are given as the referenced row's key: `Chassis.name` for the chassis columns, the
  Datapath_Binding's `_uuid` (str or uuid.UUID) for `datapath`. A Load_Balancer's datapath
  groups (`datapath_group`, `ls_datapath_group`, `lr_datapath_group`) are given as the
  `datapaths` of the Logical_DP_Group they reference: a list of Datapath_Binding UUIDs. Extra
  columns are ignored; columns an older OVN lacks (`up`, `requested_chassis`,
  `additional_chassis`, the datapath groups) may be absent.
- No I/O: the OVSDB reader builds this view; the planner consumes it.
"""

from __future__ import annotations

import functools
import ipaddress
import operator
import re
import uuid
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeAlias, TypeVar

from ovn_fabric.model import IPAddress

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

OVS_TABLE = "Open_vSwitch"
DEFAULT_INTEGRATION_BRIDGE = "br-int"
# A `mac` column entry that carries no Ethernet address of its own.
ADDRESS_KEYWORDS = frozenset({"unknown", "router", "dynamic"})
# OVN reads Ethernet addresses with "%hhx:%hhx:..." (one or two hex digits per byte).
MAC_RE = re.compile(r"^[0-9A-Fa-f]{1,2}(:[0-9A-Fa-f]{1,2}){5}$")
VLAN_MIN, VLAN_MAX = 1, 4095
# The parsers of column values are pure and their results immutable: each keeps the results of
# this many distinct values (the planner reads the same entries on every pass; 32,768 covers
# 10,000 ports with room to spare, at about 10 MB at most).
PARSER_CACHE = 32768
TUNNEL_KEY_MAX = 2**32 - 1

Row = TypeVar("Row")
# A view row as built before: (the raw row, the row built from it or None, its problems).
Built: TypeAlias = tuple[object, object, tuple["Problem", ...]]
# A view row's builder: (raw row, the build of an earlier version of it or None) -> the row or
# None, and its problems.
FromRow: TypeAlias = Callable[[object, "Built | None"], tuple[Row | None, tuple["Problem", ...]]]


@dataclass(frozen=True, slots=True, order=True)
class FrozenMap(Mapping[str, str]):
    """An immutable, hashable, ordered str -> str mapping (an OVSDB map column)."""

    pairs: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        canonical = tuple(sorted(dict(self.pairs).items()))
        if canonical != self.pairs:
            object.__setattr__(self, "pairs", canonical)

    @classmethod
    def of(cls, mapping: Mapping[str, str]) -> FrozenMap:
        return cls(tuple(mapping.items()))

    def __getitem__(self, key: str) -> str:
        index = bisect_left(self.pairs, key, key=_first)
        if index < len(self.pairs) and self.pairs[index][0] == key:
            return self.pairs[index][1]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)


def _first(pair: tuple[str, str]) -> str:
    return pair[0]


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """Something malformed in the data, kept so the agent can report it."""

    table: str
    row: str                  # the row's key as far as known ("?" when it has none)
    column: str
    detail: str

    def __str__(self) -> str:
        return f"{self.table} {self.row!r}: {self.column}: {self.detail}"


@dataclass(frozen=True, slots=True, order=True)
class Chassis:
    """SB Chassis: `name` is the OVS system-id, `hostname` the host name."""

    name: str
    hostname: str = ""

    @classmethod
    def from_row(cls, row: object,
                 _earlier: Built | None = None) -> tuple[Chassis | None, tuple[Problem, ...]]:
        reader = _RowReader.start("Chassis", row, "name")
        if reader.key is None:
            return None, reader.done()
        return cls(name=reader.key, hostname=reader.string("hostname")), reader.done()


@dataclass(frozen=True, slots=True, order=True)
class Datapath:
    """SB Datapath_Binding. Neutron writes external_ids name=neutron-<id>, name2=<its name>."""

    uuid: str
    tunnel_key: int | None = None
    external_ids: FrozenMap = FrozenMap()

    @property
    def name(self) -> str:
        """The most readable name there is: Neutron's name, the switch name, or the UUID."""
        return self.external_ids.get("name2") or self.external_ids.get("name") or self.uuid

    @classmethod
    def from_row(cls, row: object,
                 _earlier: Built | None = None) -> tuple[Datapath | None, tuple[Problem, ...]]:
        reader = _RowReader.start("Datapath_Binding", row, "_uuid")
        if reader.key is None:
            return None, reader.done()
        datapath = cls(
            uuid=reader.key,
            tunnel_key=reader.optional_int("tunnel_key", 0, TUNNEL_KEY_MAX),
            external_ids=reader.string_map("external_ids"),
        )
        return datapath, reader.done()


@dataclass(frozen=True, slots=True, order=True)
class PortBinding:
    """SB Port_Binding, with references resolved to keys (chassis names, datapath UUIDs)."""

    logical_port: str
    type: str = ""                          # "" for a VM port, "localnet", "patch", ...
    datapath: str | None = None             # Datapath_Binding UUID
    mac: tuple[str, ...] = ()               # raw entries: "fa:16:3e:a1:b2:c3 172.24.4.10 ..."
    chassis: str | None = None              # Chassis.name where it is bound
    up: bool | None = None                  # None: unset, or an OVN older than 21.03
    options: FrozenMap = FrozenMap()
    external_ids: FrozenMap = FrozenMap()
    requested_chassis: str | None = None
    additional_chassis: tuple[str, ...] = ()
    virtual_parent: str | None = None
    tag: int | None = None                  # VLAN of a localnet port (1-4095)
    nat_addresses: tuple[str, ...] = ()     # raw entries of a patch port

    @classmethod
    def from_row(cls, row: object,
                 earlier: Built | None = None) -> tuple[PortBinding | None, tuple[Problem, ...]]:
        """`earlier`: the build of an earlier version of this row. Where it was built without a
        problem, only the columns whose raw values are not the same objects as then are read
        (the OVSDB reader hands out a changed row's unchanged columns as the same objects: a
        bind changes two of thirteen), the others keep their values."""
        if earlier is not None:
            updated = cls._updated(row, earlier)
            if updated is not None:
                return updated
        reader = _RowReader.start("Port_Binding", row, "logical_port")
        if reader.key is None:
            return None, reader.done()
        binding = cls(logical_port=reader.key, **{
            column: read(reader, column) for column, read in _PORT_BINDING_COLUMNS})
        return binding, reader.done()

    @classmethod
    def _updated(cls, row: object,
                 earlier: Built) -> tuple[PortBinding, tuple[Problem, ...]] | None:
        """`earlier`'s row with the columns of `row` that changed read again; None when that
        does not apply (another key, an earlier build with problems, not rows)."""
        raw, built, problems = earlier
        if (problems or not isinstance(built, PortBinding) or not isinstance(row, Mapping)
                or not isinstance(raw, Mapping) or row.get("logical_port") is not raw.get(
                    "logical_port")):
            return None
        reader = _RowReader("Port_Binding", row, built.logical_port)
        changed = {column: read(reader, column) for column, read in _PORT_BINDING_COLUMNS
                   if row.get(column) is not raw.get(column)}
        return (replace(built, **changed) if changed else built), reader.done()


def _tag(reader: _RowReader, column: str) -> int | None:
    return reader.optional_int(column, VLAN_MIN, VLAN_MAX)


# PortBinding's fields other than logical_port: each is the column of that name, read so.
_PORT_BINDING_COLUMNS: tuple[tuple[str, Callable[[_RowReader, str], Any]], ...] = (
    ("type", lambda reader, column: reader.string(column)),
    ("datapath", lambda reader, column: reader.optional_ref(column)),
    ("mac", lambda reader, column: reader.string_set(column)),
    ("chassis", lambda reader, column: reader.optional_ref(column)),
    ("up", lambda reader, column: reader.optional_bool(column)),
    ("options", lambda reader, column: reader.string_map(column)),
    ("external_ids", lambda reader, column: reader.string_map(column)),
    ("requested_chassis", lambda reader, column: reader.optional_ref(column)),
    ("additional_chassis", lambda reader, column: reader.string_set(column)),
    ("virtual_parent", lambda reader, column: reader.optional_ref(column)),
    ("tag", _tag),
    ("nat_addresses", lambda reader, column: reader.string_set(column)),
)


# The columns of an SB Load_Balancer naming the datapaths it applies to, by OVN version:
# `datapaths` (20.12), `datapath_group` (22.09), `ls_datapath_group`/`lr_datapath_group` (24.03).
LB_DATAPATH_COLUMNS = ("datapaths", "datapath_group", "ls_datapath_group", "lr_datapath_group")


@dataclass(frozen=True, slots=True, order=True)
class LoadBalancer:
    """SB Load_Balancer. northd copies the NB name and vips; external_ids holds only
    `lb_id` (the NB row's UUID). Before OVN 24.03 only load balancers applied to a logical
    switch reach the SB, naming switch datapaths only; from 24.03 `lr_datapath_group` names
    routers. An NB Load_Balancer given in the same shape (a router-only one, such as Neutron
    port forwarding, which an older SB lacks) keeps Neutron's keys in external_ids."""

    uuid: str
    name: str = ""                          # Octavia: the LB id; Neutron: pf-floatingip-...
    vips: FrozenMap = FrozenMap()           # "172.24.4.201:80" -> "10.0.0.22:8080,..."
    datapaths: tuple[str, ...] = ()         # every datapath it applies to, switches and routers
    external_ids: FrozenMap = FrozenMap()

    @classmethod
    def from_row(
        cls, row: object, _earlier: Built | None = None,
    ) -> tuple[LoadBalancer | None, tuple[Problem, ...]]:
        reader = _RowReader.start("Load_Balancer", row, "_uuid")
        if reader.key is None:
            return None, reader.done()
        datapaths = sorted({datapath for column in LB_DATAPATH_COLUMNS
                            for datapath in reader.string_set(column)})
        balancer = cls(
            uuid=reader.key,
            name=reader.string("name"),
            vips=reader.string_map("vips"),
            datapaths=tuple(datapaths),
            external_ids=reader.string_map("external_ids"),
        )
        return balancer, reader.done()


@dataclass(frozen=True, slots=True)
class OvnView:
    """Everything the planner knows about OVN, as seen from this node."""

    local_chassis: str                      # this node's Chassis.name ("" when unknown)
    bridge_mappings: FrozenMap = FrozenMap()            # physnet -> bridge
    integration_bridge: str = DEFAULT_INTEGRATION_BRIDGE
    chassis: tuple[Chassis, ...] = ()
    datapaths: tuple[Datapath, ...] = ()
    port_bindings: tuple[PortBinding, ...] = ()
    problems: tuple[Problem, ...] = ()
    load_balancers: tuple[LoadBalancer, ...] = ()

    def __post_init__(self) -> None:
        canonical = {
            "chassis": _canonical(self.chassis, _chassis_key),
            "datapaths": _canonical(self.datapaths, _uuid_key),
            "port_bindings": _canonical(self.port_bindings, _binding_key),
            "problems": tuple(sorted(set(self.problems))),
            "load_balancers": _canonical(self.load_balancers, _uuid_key),
        }
        for name, value in canonical.items():
            object.__setattr__(self, name, value)


# The rows' keys, as C-level getters: a view sorts thousands of rows by them twice a pass.
_chassis_key: Callable[[Chassis], str] = operator.attrgetter("name")
_uuid_key: Callable[[Datapath | LoadBalancer], str] = operator.attrgetter("uuid")
_binding_key: Callable[[PortBinding], str] = operator.attrgetter("logical_port")


def _canonical(rows: Iterable[Row], key: Callable[[Row], str]) -> tuple[Row, ...]:
    """`rows` sorted by (key, repr): by key alone when the keys are unique (the normal case,
    and the cheap one), by repr too only among rows sharing a key."""
    ordered = sorted(rows, key=key)
    keys = list(map(key, ordered))
    if len(set(keys)) < len(keys):
        ordered = sorted(ordered, key=lambda row: (key(row), repr(row)))
    return tuple(ordered)


class BuildMemo:
    """The rows built by `build_view`, kept from one build to the next: a raw row that is the
    same object as in the previous build (an unchanged row of the OVSDB reader) is not built
    again; a raw row that is a new version of one built before (the same `_uuid`) is given
    that build, so that `from_row` reads only the columns that changed (`PortBinding`). Holds
    each raw row it keeps, so an id is never reused while remembered; raw rows and their
    values must not be modified. Not thread-safe: one builder at a time."""

    __slots__ = ("_by_uuid", "_current", "_previous")

    def __init__(self) -> None:
        self._previous: dict[int, Built] = {}
        self._current: dict[int, Built] = {}
        # _uuid -> the latest version built; rows gone stay until it is compacted in done()
        self._by_uuid: dict[object, Built] = {}

    def build_all(self, from_row: FromRow[Row], rows: Iterable[object],
                  problems: list[Problem]) -> list[Row]:
        """The rows built from `rows` (those from_row drops left out), their problems added
        to `problems`. One call for all rows, its lookups in local variables: a method call
        per row was a fifth of a view at 3,000 rows."""
        previous, current, by_uuid = self._previous, self._current, self._by_uuid
        built: list[Row] = []
        for raw in rows:
            kept = previous.get(id(raw))
            if kept is None or kept[0] is not raw:
                key = _row_uuid(raw)
                row, found = from_row(raw, by_uuid.get(key) if key is not None else None)
                kept = (raw, row, found)
                if key is not None:
                    by_uuid[key] = kept
            current[id(raw)] = kept
            if kept[2]:
                problems.extend(kept[2])
            if kept[1] is not None:
                built.append(kept[1])  # type: ignore[arg-type]  # built by the same from_row
        return built

    def done(self) -> None:
        """End of a build: forget the rows it did not see (their `_uuid`s once they are as
        many as the rows kept: a cost in proportion to the rows gone)."""
        self._previous, self._current = self._current, {}
        if len(self._by_uuid) > 2 * len(self._previous) + 64:
            self._by_uuid = {key: kept for kept in self._previous.values()
                             if (key := _row_uuid(kept[0])) is not None}


def _row_uuid(raw: object) -> object | None:
    """A raw row's `_uuid` (a UUID or its text), or None."""
    key = raw.get("_uuid") if isinstance(raw, Mapping) else None
    return key if isinstance(key, uuid.UUID | str) else None


def build_view(
    *,
    local_chassis: object,
    bridge_mappings: object = "",
    integration_bridge: object = DEFAULT_INTEGRATION_BRIDGE,
    chassis: Iterable[object] = (),
    datapaths: Iterable[object] = (),
    port_bindings: Iterable[object] = (),
    load_balancers: Iterable[object] = (),
    memo: BuildMemo | None = None,
) -> OvnView:
    """Build a view from raw rows and local facts, recording every problem instead of raising.

    `bridge_mappings` is the raw `external_ids:ovn-bridge-mappings` text of the local OVS.
    Rows whose key appears twice are kept once (the same one whatever the input order).
    With a `memo`, raw rows seen (as the same objects) in its previous build are not built
    again: the raw rows must not have been modified in between."""
    problems: list[Problem] = []
    local = _local_string(local_chassis, "external_ids:system-id", "", problems)
    br_int = _local_string(integration_bridge, "external_ids:ovn-bridge",
                           DEFAULT_INTEGRATION_BRIDGE, problems)
    mappings, mapping_problems = parse_bridge_mappings(bridge_mappings)
    problems.extend(mapping_problems)
    chassis_rows = _unique(_build_rows(Chassis.from_row, chassis, problems, memo),
                           _chassis_key, "Chassis", problems)
    datapath_rows = _unique(_build_rows(Datapath.from_row, datapaths, problems, memo),
                            _uuid_key, "Datapath_Binding", problems)
    binding_rows = _unique(_build_rows(PortBinding.from_row, port_bindings, problems, memo),
                           _binding_key, "Port_Binding", problems)
    balancer_rows = _unique(_build_rows(LoadBalancer.from_row, load_balancers, problems, memo),
                            _uuid_key, "Load_Balancer", problems)
    if memo is not None:
        memo.done()
    return OvnView(
        local_chassis=local, bridge_mappings=mappings, integration_bridge=br_int,
        chassis=chassis_rows, datapaths=datapath_rows, port_bindings=binding_rows,
        problems=tuple(problems), load_balancers=balancer_rows,
    )


def parse_bridge_mappings(text: object) -> tuple[FrozenMap, tuple[Problem, ...]]:
    """Parse `ovn-bridge-mappings` ("physnet1:br-ex,physnet2:br-vlan") as ovn-controller does:
    it stops at the first empty or malformed entry. A physnet mapped twice keeps its first
    bridge."""
    column = "external_ids:ovn-bridge-mappings"
    if text is None or text == []:
        return FrozenMap(), ()
    if not isinstance(text, str):
        return FrozenMap(), (Problem(OVS_TABLE, ".", column, f"not a string: {text!r:.80}"),)
    mappings: dict[str, str] = {}
    problems = []
    for entry in text.split(","):
        if not entry:
            break
        physnet, sep, bridge = entry.partition(":")
        if not sep or not physnet or not bridge:
            problems.append(Problem(OVS_TABLE, ".", column,
                                    f"malformed entry {entry!r}; ignoring it and the rest"))
            break
        if physnet in mappings:
            problems.append(Problem(OVS_TABLE, ".", column,
                                    f"physnet {physnet!r} mapped twice; keeping "
                                    f"{mappings[physnet]!r}"))
            continue
        mappings[physnet] = bridge
    return FrozenMap.of(mappings), tuple(problems)


# --- the `mac` column ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Address:
    """An IP address of a `mac` entry, with the token it was read from ("172.24.4.10/24")."""

    token: str
    ip: IPAddress


@dataclass(frozen=True, slots=True)
class AddressEntry:
    """One entry of a Port_Binding `mac` column, read as OVN reads it: an Ethernet address
    followed by IP addresses (each may carry a prefix length), or a keyword."""

    mac: str | None                                 # lower case, two digits per byte
    addresses: tuple[Address, ...] = ()
    rejected: tuple[tuple[str, str], ...] = ()      # (token, why it is unusable)


@functools.lru_cache(maxsize=PARSER_CACHE)
def parse_address_entry(entry: str) -> AddressEntry:
    tokens = entry.split()
    if not tokens or tokens[0] in ADDRESS_KEYWORDS:
        return AddressEntry(mac=None)
    if not MAC_RE.match(tokens[0]):
        return AddressEntry(mac=None, rejected=((entry, "does not start with an Ethernet "
                                                        "address"),))
    # Two digits per byte (17 characters, the usual case): lower case is the canonical form.
    mac = (tokens[0].lower() if len(tokens[0]) == 17
           else ":".join(f"{int(part, 16):02x}" for part in tokens[0].split(":")))
    not_unicast = mac == "00:00:00:00:00:00" or int(mac[:2], 16) & 1
    addresses = []
    rejected = []
    for token in tokens[1:]:
        if token in ADDRESS_KEYWORDS:
            continue
        ip, why = _parse_address(token)
        if ip is not None and not_unicast:
            ip, why = None, f"its Ethernet address {mac} is not a unicast address"
        if ip is not None:
            addresses.append(Address(token, ip))
        else:
            rejected.append((token, why))
    return AddressEntry(mac=mac, addresses=tuple(addresses), rejected=tuple(rejected))


@functools.lru_cache(maxsize=PARSER_CACHE)
def _parse_address(token: str) -> tuple[IPAddress | None, str]:
    """The host address of "ADDR" or "ADDR/LEN" (OVN reads both), or None and why not."""
    if "%" in token:
        return None, "a scoped address"
    try:
        # ip_interface(token).ip, without building an interface when there is no prefix
        # (3.5x faster: every address of 3,000 newly bound ports goes through here)
        if "/" in token:
            return ipaddress.ip_interface(token).ip, ""
        return ipaddress.ip_address(token), ""
    except ValueError:
        return None, "not an IP address"


def parse_ip(token: str) -> tuple[IPAddress | None, str]:
    """An address as OVN writes it in options (e.g. `virtual-ip`), or None and why not."""
    return _parse_address(token.strip())


@functools.lru_cache(maxsize=PARSER_CACHE)
def parse_interface(token: str) -> IPInterface | None:
    """The address and prefix of a `mac` token of a router port ("10.0.0.1/26"; a bare
    address is a /32 or /128), or None when it is not one."""
    if "%" in token:
        return None
    try:
        return ipaddress.ip_interface(token)
    except ValueError:
        return None


# --- the `nat_addresses` column ----------------------------------------------------------------

# ovn-controller reads an entry as `extract_addresses_with_port` does: an Ethernet address, IP
# addresses, then optionally `is_chassis_resident("<logical port>")`, the port given as a quoted
# string of OVN's lexer (C escapes).
_RESIDENT_RE = re.compile(r'is_chassis_resident\s*\(\s*"((?:[^"\\]|\\.)*)"\s*\)\s*$')
_RESIDENT_WORD = "is_chassis_resident"


@dataclass(frozen=True, slots=True)
class NatAddress:
    """One entry of a Port_Binding `nat_addresses` column, e.g.
    `fa:16:3e:10:20:30 172.24.4.100 172.24.4.200 is_chassis_resident("cr-lrp-<gw>")`:
    OVN answers for (and announces) these addresses with this MAC on the chassis where the
    resident port is."""

    mac: str | None
    addresses: tuple[Address, ...] = ()
    resident: str | None = None                     # the port named by is_chassis_resident()
    rejected: tuple[tuple[str, str], ...] = ()      # (token, why it is unusable)
    error: str = ""                                 # why the whole entry is unusable


@functools.lru_cache(maxsize=PARSER_CACHE)
def parse_nat_address(entry: str) -> NatAddress:
    head, resident, error = _split_resident(entry)
    parsed = parse_address_entry(head)
    if parsed.mac is None:
        return NatAddress(mac=None, error="does not start with an Ethernet address")
    return NatAddress(mac=parsed.mac, addresses=parsed.addresses, resident=resident,
                      rejected=parsed.rejected, error=error)


def _split_resident(entry: str) -> tuple[str, str | None, str]:
    """(the addresses part, the resident port or None, why the resident part is unusable)."""
    start = entry.find(_RESIDENT_WORD)
    if start < 0:
        return entry, None, "no is_chassis_resident(): which chassis answers for it is unknown"
    match = _RESIDENT_RE.match(entry, start)
    if match is None:
        return entry[:start], None, 'malformed is_chassis_resident(): expected ("<port>")'
    port = re.sub(r"\\(.)", r"\1", match.group(1))
    if not port:
        return entry[:start], None, "is_chassis_resident() names no port"
    return entry[:start], port, ""


# --- Load_Balancer `vips` keys -----------------------------------------------------------------


@functools.lru_cache(maxsize=PARSER_CACHE)
def parse_vip(key: str) -> tuple[IPAddress | None, str]:
    """The address of a `vips` key as OVN writes it: "IP", "IP:PORT", "[IP6]" or "[IP6]:PORT";
    or None and why not (template VIPs such as "^VAR:80" are not addresses)."""
    text, port = key.strip(), ""
    if text.startswith("["):
        text, bracket, port = text[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            return None, "not [IPv6] or [IPv6]:PORT"
        port = port[1:] if port else ""
    elif text.count(":") == 1:
        text, port = text.split(":")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        return None, f"bad port {port!r}"
    return _parse_address(text) if text else (None, "no address")


# --- reading rows -----------------------------------------------------------------------------


class _RowReader:
    """Reads the columns of one raw row, turning each malformed value into a Problem."""

    __slots__ = ("_problems", "_row", "_table", "key")

    def __init__(self, table: str, row: Mapping[Any, Any], key: str | None) -> None:
        self._table = table
        self._row = row
        self.key = key
        self._problems: list[Problem] = []

    @classmethod
    def start(cls, table: str, row: object, key_column: str) -> _RowReader:
        if not isinstance(row, Mapping):
            reader = cls(table, {}, None)
            reader._problem(key_column, f"not a row but {type(row).__name__}")
            return reader
        reader = cls(table, row, None)
        key = reader.optional_ref(key_column)
        if key is None:
            reader._problem(key_column, "missing or empty: row ignored")
        reader.key = key
        return reader

    def done(self) -> tuple[Problem, ...]:
        return tuple(self._problems)

    def _problem(self, column: str, detail: str) -> None:
        self._problems.append(Problem(self._table, self.key or "?", column, detail))

    def _bad(self, column: str, value: object, expected: str) -> None:
        self._problem(column, f"expected {expected}, got {value!r:.80}")

    def _scalar(self, column: str) -> object:
        """The value of an optional column: None when absent or empty."""
        value = self._row.get(column)
        if isinstance(value, list | tuple) and len(value) <= 1:
            return value[0] if value else None
        return value

    def string(self, column: str) -> str:
        value = self._scalar(column)
        if value is None or isinstance(value, str):
            return value or ""
        self._bad(column, value, "a string")
        return ""

    def optional_ref(self, column: str) -> str | None:
        """A string or reference column holding at most one value (a key or a UUID)."""
        value = self._scalar(column)
        if isinstance(value, uuid.UUID):
            return str(value)
        if value is None or (isinstance(value, str) and value):
            return value
        if value != "":
            self._bad(column, value, "at most one non-empty string")
        return None

    def optional_bool(self, column: str) -> bool | None:
        value = self._scalar(column)
        if value is None or isinstance(value, bool):
            return value
        self._bad(column, value, "a boolean")
        return None

    def optional_int(self, column: str, low: int, high: int) -> int | None:
        value = self._scalar(column)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        self._bad(column, value, f"an integer from {low} to {high}")
        return None

    def string_set(self, column: str) -> tuple[str, ...]:
        value = self._row.get(column)
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple | set | frozenset):
            self._bad(column, value, "a list of strings")
            return ()
        items = []
        for item in value:
            if isinstance(item, str | uuid.UUID):
                items.append(str(item))
            else:
                self._bad(column, item, "a string in the list")
        return tuple(sorted(set(items)))

    def string_map(self, column: str) -> FrozenMap:
        value = self._row.get(column)
        if value is None:
            return FrozenMap()
        if not isinstance(value, Mapping):
            self._bad(column, value, "a map of strings")
            return FrozenMap()
        pairs = {}
        for key, item in value.items():
            if isinstance(key, str) and isinstance(item, str):
                pairs[key] = item
            else:
                self._bad(column, (key, item), "string keys and values")
        return FrozenMap.of(pairs)


def _build_rows(
    from_row: FromRow[Row],
    rows: Iterable[object],
    problems: list[Problem],
    memo: BuildMemo | None = None,
) -> list[Row]:
    if memo is not None:
        return memo.build_all(from_row, rows, problems)
    built: list[Row] = []
    for raw in rows:
        row, row_problems = from_row(raw, None)
        problems.extend(row_problems)
        if row is not None:
            built.append(row)
    return built


def _unique(
    rows: list[Row], key: Callable[[Row], str], table: str, problems: list[Problem]
) -> tuple[Row, ...]:
    """One row per key: the first in a canonical order, so the choice never depends on the
    order the rows came in."""
    kept: dict[str, Row] = {}
    for row in _canonical(rows, key):
        name = key(row)
        first = kept.setdefault(name, row)
        if first is not row and row != first:
            problems.append(Problem(table, name, "-", "key used by several rows; keeping one"))
    return tuple(kept.values())


def _local_string(
    value: object, column: str, default: str, problems: list[Problem]
) -> str:
    """A fact of the local OVS (or its override in the settings)."""
    if isinstance(value, str) and value:
        return value
    if value is not None or not default:
        problems.append(Problem(OVS_TABLE, ".", column,
                                f"expected a non-empty string, got {value!r:.80}"))
    return default
