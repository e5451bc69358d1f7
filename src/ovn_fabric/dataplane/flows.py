"""The OVS flow driver: read back our rules on provider bridges and apply `diff`'s changes.

    driver = FlowDriver(OvsTarget(rundir=Path("/run/ovn-fabric/hk/ovs")))
    actual = driver.read(desired.flows, bridges=["br-ex"])
    report = driver.apply(diff(desired.flows, actual))

It talks to OVS with ovs-vsctl (port numbers, bridge MACs) and ovs-ofctl (rules) over unix
sockets, so it needs no network namespace: give it the OVS run directory of the instance
(`<rundir>/db.sock`, `<rundir>/<bridge>.mgmt`), or an explicit ovsdb remote, or neither to use
the system's OVS (environment such as OVS_RUNDIR is honoured and can be passed in `env`).

ovs-vswitchd keeps no flows across a restart: the next read finds none of ours and the diff
adds them again. Changes to one bridge go in one `ovs-ofctl --bundle` transaction (OpenFlow
1.4 bundles): a changed rule is replaced without a moment with no rule.

The integration bridge is never read or written: OVN's cookies there are parts of logical-flow
UUIDs and could carry our high 32 bits by chance.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ovn_fabric.dataplane.flow_state import (
    FlowChanges,
    FlowState,
    OwnedFlow,
    diff,
    parse_dump_line,
)
from ovn_fabric.dataplane.kernel_state import Blocked
from ovn_fabric.model import FLOW_COOKIE, FLOW_COOKIE_MASK, EgressFlow

__all__ = [
    "Blocked",
    "FlowChanges",
    "FlowDriver",
    "FlowFailure",
    "FlowReport",
    "FlowState",
    "OvsCommandError",
    "OvsTarget",
    "OwnedFlow",
    "diff",
]

_COMMAND_TIMEOUT = 10.0


class OvsCommandError(RuntimeError):
    """An ovs-vsctl or ovs-ofctl command failed; says what ran and what it printed."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(f"`{' '.join(argv)}` exited {returncode}: {self.stderr or 'no output'}")


@dataclass(frozen=True, slots=True)
class OvsTarget:
    """How to reach one OVS instance.

    rundir: directory holding db.sock and <bridge>.mgmt (a lab's per-namespace OVS).
    db: ovsdb remote for ovs-vsctl; defaults to unix:<rundir>/db.sock when rundir is given.
    env: extra environment for the commands (e.g. OVS_RUNDIR); the process's own is kept.
    """

    rundir: Path | None = None
    db: str | None = None
    env: Mapping[str, str] = field(default_factory=dict, hash=False)

    def vsctl(self) -> list[str]:
        db = self.db or (f"unix:{self.rundir}/db.sock" if self.rundir else None)
        return ["ovs-vsctl", f"--timeout={int(_COMMAND_TIMEOUT)}",
                *([f"--db={db}"] if db else [])]

    def ofctl_target(self, bridge: str) -> str:
        return f"unix:{self.rundir}/{bridge}.mgmt" if self.rundir else bridge

    def run(self, argv: Sequence[str], stdin: str | None = None) -> str:
        try:
            proc = subprocess.run(
                list(argv), input=stdin, capture_output=True, text=True, check=False,
                timeout=_COMMAND_TIMEOUT + 5,
                env={**os.environ, **self.env} if self.env else None,
            )
        except subprocess.TimeoutExpired as exc:
            raise OvsCommandError(argv, -1, f"no answer within {exc.timeout} s") from exc
        if proc.returncode != 0:
            raise OvsCommandError(argv, proc.returncode, proc.stderr or proc.stdout)
        return proc.stdout


@dataclass(frozen=True, slots=True, order=True)
class FlowFailure:
    """A bridge whose bundle OVS refused (or could not be reached), and the rules it held."""

    bridge: str
    reason: str
    rules: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FlowReport:
    attempted: int
    failures: tuple[FlowFailure, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True, slots=True)
class FlowSync:
    """One read-diff-apply round."""

    changes: FlowChanges
    report: FlowReport


def _scalar(value: Any) -> Any:
    """An OVSDB JSON datum: a one-element value as itself, an empty set as None."""
    if isinstance(value, list) and value and value[0] == "set":
        items = value[1]
        return items[0] if len(items) == 1 else (items or None)
    return value


def _uuids(value: Any) -> set[str]:
    if isinstance(value, list) and value and value[0] == "uuid":
        return {value[1]}
    if isinstance(value, list) and value and value[0] == "set":
        return {item[1] for item in value[1]}
    return set()


def _rows(table_json: str) -> list[dict[str, Any]]:
    table = json.loads(table_json)
    headings: list[str] = table["headings"]
    return [dict(zip(headings, row, strict=True)) for row in table["data"]]


class FlowDriver:
    """Reads and programs the egress rules of ours on the provider bridges of one OVS."""

    def __init__(self, target: OvsTarget, integration_bridge: str = "br-int") -> None:
        self.target = target
        self.integration_bridge = integration_bridge

    def _facts(self, bridges: Sequence[str], ports: Sequence[str]) -> tuple[
            set[str], dict[tuple[str, str], int], dict[str, str]]:
        """Existing bridges, (bridge, port) -> ofport, bridge -> MAC: one ovs-vsctl call."""
        names = sorted({*bridges, *ports})
        port_clause = ["--", "--if-exists", "--columns=_uuid,name", "list", "Port", *ports]
        out = self.target.run([
            *self.target.vsctl(), "--format=json", "--data=json",
            "--", "--if-exists", "--columns=name,ports", "list", "Bridge", *bridges,
            "--", "--if-exists", "--columns=name,ofport,mac_in_use", "list", "Interface", *names,
            *(port_clause if ports else []),  # with no record named, `list` lists them all
        ]).splitlines()
        bridge_json, iface_json = out[0], out[1]
        port_json = out[2] if ports else '{"headings": [], "data": []}'
        members = {row["name"]: _uuids(row["ports"]) for row in _rows(bridge_json)}
        port_ids = {row["name"]: next(iter(_uuids(row["_uuid"]))) for row in _rows(port_json)}
        ifaces = {row["name"]: row for row in _rows(iface_json)}
        ofports: dict[tuple[str, str], int] = {}
        macs: dict[str, str] = {}
        for bridge, uuids in members.items():
            mac = _scalar(ifaces.get(bridge, {}).get("mac_in_use"))
            if isinstance(mac, str) and mac:
                macs[bridge] = mac.lower()
            for port in ports:
                ofport = _scalar(ifaces.get(port, {}).get("ofport"))
                if port_ids.get(port) in uuids and isinstance(ofport, int) and ofport > 0:
                    ofports[(bridge, port)] = ofport
        return set(members), ofports, macs

    def _dump(self, bridge: str) -> frozenset[OwnedFlow]:
        out = self.target.run([
            "ovs-ofctl", f"--timeout={int(_COMMAND_TIMEOUT)}", "--no-names", "--no-stats",
            "dump-flows", self.target.ofctl_target(bridge),
            f"cookie={FLOW_COOKIE:#x}/{FLOW_COOKIE_MASK:#x}",
        ])
        parsed = (parse_dump_line(bridge, line) for line in out.splitlines())
        return frozenset(flow for flow in parsed if flow is not None)

    def read(self, flows: Iterable[EgressFlow] = (), bridges: Iterable[str] = ()) -> FlowState:
        """Our rules on the bridges of `flows` and on `bridges` (pass every provider bridge,
        so that rules on a bridge that no longer wants any are found and removed)."""
        wanted = list(flows)
        asked = {f.bridge for f in wanted} | set(bridges)
        names = sorted(asked - {self.integration_bridge})
        unreadable: dict[str, str] = {}
        if self.integration_bridge in asked:
            unreadable[self.integration_bridge] = (
                f"{self.integration_bridge} is the integration bridge: never managed")
        if not names:
            return FlowState(unreadable=unreadable)
        ports = sorted({f.patch_port for f in wanted})
        try:
            existing, ofports, macs = self._facts(names, ports)
        except OvsCommandError as exc:
            unreadable.update((name, f"OVS database: {exc}") for name in names)
            return FlowState(unreadable=unreadable)
        found: set[OwnedFlow] = set()
        readable: set[str] = set()
        for name in names:
            if name not in existing:
                unreadable[name] = f"bridge {name} does not exist"
                continue
            try:
                found |= self._dump(name)
            except OvsCommandError as exc:
                unreadable[name] = f"ovs-vswitchd: {exc}"
                continue
            readable.add(name)
        return FlowState(flows=frozenset(found), readable=frozenset(readable),
                         unreadable=unreadable, ofports=ofports, macs=macs)

    def apply(self, changes: FlowChanges) -> FlowReport:
        """One atomic bundle per bridge: strict deletions of our old rules, then additions."""
        failures: list[FlowFailure] = []
        for bridge in changes.bridges():
            if bridge == self.integration_bridge:
                failures.append(FlowFailure(bridge, "refusing to touch the integration bridge"))
                continue
            lines = [f.delete_line() for f in changes.delete if f.bridge == bridge]
            lines += [f.add_line() for f in changes.add if f.bridge == bridge]
            try:
                self.target.run([
                    "ovs-ofctl", f"--timeout={int(_COMMAND_TIMEOUT)}", "--bundle",
                    "add-flows", self.target.ofctl_target(bridge), "-",
                ], stdin="\n".join(lines) + "\n")
            except OvsCommandError as exc:
                failures.append(FlowFailure(bridge, str(exc), tuple(lines)))
        return FlowReport(attempted=changes.operations, failures=tuple(failures))

    def sync(self, flows: Iterable[EgressFlow], bridges: Iterable[str] = ()) -> FlowSync:
        """One full round: read, diff, apply."""
        wanted = frozenset(flows)
        changes = diff(wanted, self.read(wanted, bridges))
        return FlowSync(changes=changes, report=self.apply(changes))
