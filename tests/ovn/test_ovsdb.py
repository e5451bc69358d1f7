"""_ovsdb's conversion of the IDL's Datums against the library's own `Datum.to_python`, for
every column type of the installed OVN Southbound schema (no server needed)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import ovs.db.data
import ovs.db.error
import ovs.db.types
import pytest

from ovn_fabric.lab.ovsdb_server import OVN_SB_SCHEMA
from ovn_fabric.ovn._ovsdb import _keep_uuid, _python

ATOMS: dict[str, list[Any]] = {
    "string": ["", "fa:16:3e:00:00:01 10.0.0.1", "b", "a"],
    "integer": [0, 100, 4095, 7],
    "real": [0.5, 2.0],
    "boolean": [True, False],
    "uuid": [["uuid", str(uuid.UUID(int=n))] for n in (3, 1, 2)],
}


def _column_types() -> list[tuple[str, Any]]:
    tables = json.loads(OVN_SB_SCHEMA.read_text())["tables"]
    return [(f"{table}.{column}", spec["type"])
            for table, schema in sorted(tables.items())
            for column, spec in sorted(schema["columns"].items())]


def _datums(kind: Any) -> list[Any]:
    """Datums of column type `kind`: empty, one value, several (or as many as it allows)."""
    key_type = kind.key.type.to_string()
    keys = ATOMS[key_type]
    values = ATOMS[kind.value.type.to_string()] if kind.value is not None else None
    jsons: list[Any] = []
    for wanted in (0, 1, len(keys)):
        chosen = keys[:min(wanted, kind.n_max)]
        if values is not None:
            jsons.append(["map", [[k, values[i % len(values)]] for i, k in enumerate(chosen)]])
        elif len(chosen) == 1:
            jsons.append(chosen[0])
        else:
            jsons.append(["set", chosen])
    datums = []
    for value in jsons:
        try:
            datums.append(ovs.db.data.Datum.from_json(kind, value))
        except ovs.db.error.Error:       # fewer values than the column's minimum
            datums.append(ovs.db.data.Datum(kind, {}))
    return datums


@pytest.mark.parametrize(("column", "type_json"), _column_types())
def test_datums_convert_as_to_python_does(column: str, type_json: Any) -> None:
    kind = ovs.db.types.Type.from_json(type_json)
    for datum in _datums(kind):
        assert _python(datum) == datum.to_python(_keep_uuid), (column, datum.to_json())
        assert type(_python(datum)) is type(datum.to_python(_keep_uuid))
