"""The one place that touches the untyped `ovs` library (the OVSDB Python IDL, ovs 3.1).

Everything leaving this module is typed: rows come out as plain dicts (`RawRow`) whose values are
what `Datum.to_python` gives, except that references stay `uuid.UUID`s (the Python IDL would turn
them into Row objects, or drop them when the referenced row is not replicated, which is the
normal case under conditional monitoring).

A `Database` follows one OVSDB database in two phases, both non-blocking and driven by the
caller's loop (`run()`, then `wait()` on a `Poller`, then `Poller.block()`):
1. fetch the schema from the server (`get_schema` over a reconnecting JSON-RPC session), so that
   only columns the server really has are registered (an older OVN lacks some); a schema file is
   the fallback only when the server answers `get_schema` with an error;
2. an `Idl` replicating only the wanted tables and columns, read-only (`leader_only=False`: any
   member of a clustered database, or a relay, will do for a reader).

Workarounds for ovs 3.1.7, all in `_Idl`:
- `Idl.send_cond_change` sends a pending condition change as soon as the socket is connected,
  even during the handshake of a new connection, before its monitor exists: the server rejects
  it ("unknown monitor"), the IDL ignores the error and the condition stays "requested" forever
  (a change in flight when the connection dropped is re-queued exactly so). `_Idl` sends
  condition changes only once monitoring.
- `Idl.wait` wakes up at once whenever a condition change is pending, even when it cannot be
  sent: `_Idl.wait` does so only when it can be sent (no busy loop while disconnected).
- `Idl.cond_change` returns an unreliable seqno (it tests a bound method for truth): callers
  compare the condition states instead (`condition_settled`).
- Whether the IDL's session is connected is not public: `_Idl.connected` reads `_session`.

Rows are converted incrementally: `Database.rows()` keeps each converted row between calls and
converts again only the rows the IDL changed since. A row is converted again when the IDL
notified a change of it (`_Idl.notify`: insert, update, delete; a "modify" changes the Row
object in place) or when the IDL holds another Row object for its uuid (the IDL replaces the
objects, without notifying, when it clears its tables for a full reload after a reconnection,
and when the server re-inserts a row it holds). A row the IDL notified as updated ("modify")
is converted again only in the columns the update named (the IDL hands `notify` the old values
of exactly those columns), the others keeping their converted values: binding 3,000 ports
changes two of a Port_Binding's thirteen columns. Unchanged rows come back as the same dict
objects, and the unchanged columns of a changed row as the same values; while the IDL's
`change_seqno` stays the same (it moves on every change, reloads included), the very same list.
Callers must not modify any of them.
"""

from __future__ import annotations

import logging
import select
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import ovs.db.idl
import ovs.json
import ovs.jsonrpc
import ovs.poller
import ovs.stream

LOG = logging.getLogger(__name__)

# A JSON value as the OVSDB protocol carries it (conditions are lists of these).
JsonValue: TypeAlias = str | int | bool | list["JsonValue"]
# A replicated row: column -> value, references as uuid.UUID, plus "_uuid".
RawRow: TypeAlias = dict[str, object]

# How many messages a schema fetch processes per run() (the IDL's own batch size).
_BATCH = 50


class Poller:
    """One round of waiting: register what to wait for, then block once."""

    def __init__(self) -> None:
        self._poller: Any = ovs.poller.Poller()

    def fd_readable(self, fd: int) -> None:
        self._poller.fd_wait(fd, select.POLLIN)

    def timer(self, msec: int) -> None:
        self._poller.timer_wait(msec)

    def block(self) -> None:
        self._poller.block()


def use_ssl_files(private_key: Path, certificate: Path, ca_cert: Path) -> None:
    """The PEM files of every `ssl:` remote of this process (the library keeps them globally)."""
    ovs.stream.Stream.ssl_set_private_key_file(str(private_key))
    ovs.stream.Stream.ssl_set_certificate_file(str(certificate))
    ovs.stream.Stream.ssl_set_ca_cert_file(str(ca_cert))


def split_remotes(remote: str) -> list[str]:
    """"tcp:a:6642,tcp:b:6642" -> each remote, as `Idl` reads them (an SSL remote's options
    after a comma stay with it)."""
    remotes: list[str] = []
    for part in remote.split(","):
        if remotes and ":" not in part:
            remotes[-1] += "," + part
        else:
            remotes.append(part)
    return remotes


# What changed in a row since it was last converted: the columns an update named, or
# everything (None: inserted, deleted, or an update that did not say).
Changed: TypeAlias = frozenset[str] | None


class _Idl(ovs.db.idl.Idl):  # type: ignore[misc]  # untyped base class
    """`ovs.db.idl.Idl` with the workarounds described in the module docstring, recording
    the uuids of the rows it changed, per table, with the columns changed (`dirty`, emptied by
    its reader)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.dirty: dict[str, dict[uuid.UUID, Changed]] = {}
        super().__init__(*args, **kwargs)

    def notify(self, event: str, row: Any, updates: Any = None) -> None:
        changes = self.dirty.setdefault(row._table.name, {})
        columns = _updated_columns(event, updates)
        before = changes.get(row.uuid, frozenset())
        changes[row.uuid] = None if columns is None or before is None else before | columns

    @property
    def connected(self) -> bool:
        return bool(self._session.is_connected())

    @property
    def monitoring(self) -> bool:
        return self.connected and self.state == self.IDL_S_MONITORING

    def send_cond_change(self) -> None:
        if self.monitoring:
            super().send_cond_change()

    def wait(self, poller: Any) -> None:
        if self.cond_changed and self.monitoring:
            poller.immediate_wake()
            return
        self._session.wait(poller)
        self._session.recv_wait(poller)


class _SchemaFetch:
    """`get_schema` over a reconnecting session: retried on every new connection until the
    server answers (`schema`) or refuses (`error`)."""

    def __init__(self, remote: str, db_name: str) -> None:
        self._db_name = db_name
        self._session: Any = ovs.jsonrpc.Session.open_multiple(split_remotes(remote))
        self._seqno: int | None = None
        self._request_id: object = None
        self.schema: dict[str, Any] | None = None
        self.error: str | None = None

    @property
    def connected(self) -> bool:
        return bool(self._session.is_connected())

    def run(self) -> None:
        self._session.run()
        if not self._session.is_connected():
            return
        if self._session.get_seqno() != self._seqno and self.schema is None:
            self._seqno = self._session.get_seqno()
            request = ovs.jsonrpc.Message.create_request("get_schema", [self._db_name])
            self._request_id = request.id
            self._session.send(request)
        for _ in range(_BATCH):
            message = self._session.recv()
            if message is None:
                return
            if message.id != self._request_id:
                continue
            if message.type == ovs.jsonrpc.Message.T_REPLY and isinstance(message.result, dict):
                self.schema = message.result
            else:
                self.error = str(message.error or message.result)
            return

    def wait(self, poller: Any) -> None:
        self._session.wait(poller)
        self._session.recv_wait(poller)

    def retry(self) -> None:
        """Ask again on a new connection (after the back-off)."""
        self.error = None
        self._session.force_reconnect()

    def close(self) -> None:
        self._session.close()


def _updated_columns(event: str, updates: Any) -> Changed:
    """The columns an IDL notification says changed: for an update, those of the Row of old
    values the IDL passes along (its `_data` holds exactly the columns the update named); None
    (everything) otherwise."""
    if event != ovs.db.idl.ROW_UPDATE:
        return None
    old_values = getattr(updates, "_data", None)
    return frozenset(old_values) if isinstance(old_values, dict) else None


def _keep_uuid(atom: object, _base: object) -> object:
    """For `Datum.to_python`: references stay UUIDs."""
    return atom


class Database:
    """One OVSDB database replicated through the Python IDL: only `wanted` tables and columns
    that the server's schema has (the others are listed in `missing`)."""

    def __init__(
        self,
        remote: str,
        db_name: str,
        wanted: Mapping[str, Sequence[str]],
        *,
        fallback_schema: Path | None = None,
        initial_conditions: Mapping[str, list[JsonValue]] | None = None,
    ) -> None:
        self.remote = remote
        self.db_name = db_name
        self._wanted = {table: tuple(columns) for table, columns in wanted.items()}
        self._fallback = fallback_schema
        self._initial = dict(initial_conditions or {})
        self._fetch: _SchemaFetch | None = _SchemaFetch(remote, db_name)
        self._idl: _Idl | None = None
        self.columns: dict[str, tuple[str, ...]] = {}
        # table -> id(the IDL's Row object) -> (that Row, its converted registered columns)
        self._converted: dict[str, dict[int, tuple[object, RawRow]]] = {}
        # table -> (the IDL, its change_seqno, the rows returned then): the reader thread and
        # the snapshot ask for the same table after one update; the second gets the same list
        self._returned: dict[str, tuple[object, int, list[RawRow]]] = {}
        self.missing: tuple[str, ...] = ()
        self.schema_source = ""

    # --- state -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        if self._idl is not None and self._idl.connected:
            return True
        return self._fetch is not None and self._fetch.connected

    @property
    def monitoring(self) -> bool:
        """Connected, and the reply to this connection's monitor request has arrived."""
        return self._idl is not None and self._idl.monitoring

    @property
    def change_seqno(self) -> int:
        return int(self._idl.change_seqno) if self._idl is not None else 0

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        if self._fetch is not None:
            self._fetch.run()
            if self._idl is None:
                self._start_idl(self._fetch)
        if self._idl is not None:
            self._idl.run()
            if self._fetch is not None and self._idl.connected:
                # The schema's connection is kept until the IDL's own is up, so that the
                # hand-over does not look like a lost connection.
                self._fetch.close()
                self._fetch = None

    def wait(self, poller: Poller) -> None:
        if self._idl is not None:
            self._idl.wait(poller._poller)
        if self._fetch is not None:
            self._fetch.wait(poller._poller)

    def close(self) -> None:
        if self._fetch is not None:
            self._fetch.close()
            self._fetch = None
        if self._idl is not None:
            self._idl.close()

    def _start_idl(self, fetch: _SchemaFetch) -> None:
        schema_json = fetch.schema
        if schema_json is not None:
            self.schema_source = f"server {self.remote}"
        elif fetch.error is not None:
            schema_json = self._schema_from_file(fetch)
            if schema_json is None:
                return
        else:
            return
        self._idl = self._make_idl(schema_json)

    def _schema_from_file(self, fetch: _SchemaFetch) -> dict[str, Any] | None:
        if self._fallback is None or not self._fallback.is_file():
            LOG.error("%s: the server refused get_schema %s (%s) and there is no schema file "
                      "to fall back on; retrying", self.remote, self.db_name, fetch.error)
            fetch.retry()
            return None
        LOG.warning("%s: the server refused get_schema %s (%s); using %s instead",
                    self.remote, self.db_name, fetch.error, self._fallback)
        self.schema_source = f"file {self._fallback}"
        loaded: dict[str, Any] = ovs.json.from_file(str(self._fallback))
        return loaded

    def _make_idl(self, schema_json: dict[str, Any]) -> _Idl:
        helper = ovs.db.idl.SchemaHelper(schema_json=schema_json)
        tables = schema_json.get("tables", {})
        missing: list[str] = []
        for table, columns in self._wanted.items():
            present = tables.get(table, {}).get("columns", {})
            kept = tuple(column for column in columns if column in present)
            missing.extend(f"{table}.{column}" for column in columns if column not in present)
            if table in tables:
                helper.register_columns(table, list(kept))
                self.columns[table] = kept
        self.missing = tuple(missing)
        idl = _Idl(self.remote, helper, leader_only=False)
        for table, condition in self._initial.items():
            if table in self.columns:
                idl.cond_change(table, condition)
        return idl

    # --- rows and conditions -----------------------------------------------------------------

    def rows(self, table: str, columns: Sequence[str] | None = None) -> list[RawRow]:
        """Every replicated row of `table`: registered columns (those of `columns` only, when
        given) plus `_uuid`."""
        if self._idl is None or table not in self.columns:
            return []
        registered = self.columns[table]
        if columns is not None:
            registered = tuple(column for column in columns if column in registered)
        full = self._converted_rows(table)
        if columns is None:
            return full
        return [{column: row[column] for column in (*registered, "_uuid")} for row in full]

    def _converted_rows(self, table: str) -> list[RawRow]:
        """Every row of `table` with all its registered columns, converted again only where the
        IDL changed it (see the module docstring)."""
        if self._idl is None:
            return []
        seqno = self._idl.change_seqno
        returned = self._returned.get(table)
        if (returned is not None and returned[0] is self._idl and returned[1] == seqno
                and table not in self._idl.dirty):
            return returned[2]               # nothing changed in the IDL since
        registered = self.columns[table]
        idl_rows = self._idl.tables[table].rows
        # Each Row is held with its conversion, so its id is never another object's meanwhile.
        # The notified rows first (looking up only their uuids: uuid.UUID hashes in Python),
        # then every row by identity.
        previous = self._converted.get(table, {})
        for row_uuid, changed in self._idl.dirty.pop(table, {}).items():
            row = idl_rows.get(row_uuid)
            if row is None:                  # deleted
                continue
            kept = previous.get(id(row))
            if kept is None or kept[0] is not row or changed is None:
                previous[id(row)] = (row, _converted(row, registered))
            else:                            # a modify: the same Row, some columns changed
                previous[id(row)] = (row, _converted(
                    row, [column for column in registered if column in changed], kept[1]))
        current: dict[int, tuple[object, RawRow]] = {}
        rows: list[RawRow] = []
        for row in idl_rows.values():
            kept = previous.get(id(row))
            if kept is None or kept[0] is not row:   # new, or replaced without a notification
                kept = (row, _converted(row, registered))
            current[id(row)] = kept
            rows.append(kept[1])
        self._converted[table] = current
        self._returned[table] = (self._idl, seqno, rows)
        return rows

    def row_count(self, table: str) -> int:
        if self._idl is None or table not in self.columns:
            return 0
        return len(self._idl.tables[table].rows)

    def row_uuids(self, table: str) -> set[uuid.UUID]:
        if self._idl is None or table not in self.columns:
            return set()
        return set(self._idl.tables[table].rows)

    def can_change_conditions(self) -> bool:
        """Before the first connection (the monitor request will carry them) or while
        monitoring (a monitor_cond_change is sent at once)."""
        if self._idl is None:
            return False
        return self._idl.state == self._idl.IDL_S_INITIAL or self._idl.monitoring

    def set_condition(self, table: str, condition: list[JsonValue]) -> None:
        """Ask for `condition` on `table` (a no-op when it is already the latest asked)."""
        if self._idl is not None and table in self.columns:
            self._idl.cond_change(table, condition)

    def condition_settled(self, table: str, condition: list[JsonValue]) -> bool:
        """The server has acknowledged `condition` on `table`, and nothing else is pending: the
        rows replicated are exactly those matching it."""
        if self._idl is None or table not in self.columns:
            return False
        state = self._idl.tables[table].condition_state
        return bool(state.new is None and state.requested is None
                    and state.acked == (condition or [False]))


def _converted(row: Any, columns: Sequence[str], previous: RawRow | None = None) -> RawRow:
    """An IDL Row as a RawRow: `columns` converted from its Datums (references stay UUIDs),
    the other columns (and `_uuid`) those of `previous`, in a new dict. Without `previous`,
    `columns` must be every registered column."""
    data = row._data                        # the raw Datums: references stay UUIDs
    if previous is None:
        values: RawRow = {column: _python(data[column]) for column in columns}
        values["_uuid"] = row.uuid
        return values
    values = dict(previous)
    for column in columns:
        values[column] = _python(data[column])
    return values


def _python(datum: Any) -> object:
    """`datum.to_python(_keep_uuid)` (a map: dict; one value exactly: that value, else the
    type's default; otherwise: a sorted list), without its Python calls per atom: a
    Port_Binding's external_ids 1.5x faster, a whole row 1.2x (tests/ovn/test_ovsdb.py compares
    the two on every column type of the Southbound schema)."""
    kind = datum.type
    values = datum.values
    if kind.value is not None:
        return {key.value: value.value for key, value in values.items()
                if key.value is not None and value.value is not None}
    if kind.n_min == 1 and kind.n_max == 1:
        scalar = next(iter(values)).value if len(values) == 1 else None
        return kind.key.default() if scalar is None else scalar
    return sorted({key.value for key in values if key.value is not None})
