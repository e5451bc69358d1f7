"""Issue 3's scale benchmark: how fast the agent turns N port bindings into kernel routes and
neighbours on its node, the fabric into BGP routes at the spines, and what memory it takes.

    sudo .venv/bin/python -m bench.agent_scale [--sizes 100 1000 3000 10000] [--binds 100]
        [--latency-background N] [--dual-stack] [--central-cpu idle|shared] [--py-spy PATH]
        [--keep]

Builds the three-rack lab under prefix `ofb` with a /16 provider subnet (172.24.0.0/16), plugs one
real VM into compute1 (so the provider network is local there: patch port, egress flow), then
stops compute1's ovn-controller, which would release bindings that have no local interface.
Ports are created in the NB as Neutron creates them (requested-chassis compute1), and bound and
unbound by writing Port_Binding.chassis and .up in the Southbound, as ovn-controller would.

1. Scale: for each N, all N ports bound in ONE Southbound transaction; the clock starts right
   before it is sent. Reported, from that instant: the transaction's commit, every route and
   every neighbour (proto 247) in compute1's kernel, N more prefixes in compute1's BGP table
   (bgpd's ipv4 `ribCount`, polled over its vty socket), every /32 in spine1's and spine2's
   kernels; then the same for one transaction unbinding them all. Kernel times come from
   netlink listeners inside the namespaces (bench/_route_watch.py): the time of the event that
   completed the set, not of a poll. The egress rule is per network: it is checked to be
   present, it takes no work per port. The agent's VmRSS and VmHWM after each N.
2. Latency: `--binds` times, bind one port, time until its /32 is in spine1's kernel (and in
   compute1's), unbind it, wait until it is gone everywhere. p50 / p90 / p99 / max, and the
   same of the fabric's share (spine1's time less compute1's: FRR's, not the agent's). With
   `--latency-background N`, N other ports stay bound meanwhile (a busy node).
3. The issue's targets, with the ratio figure/target (<= 1 is met): N=3,000 programmed on the
   node within 0.5 s (every route and neighbour in the kernel, and every prefix in compute1's
   BGP table: the later of the two; the time after the commit is printed too); p99
   bind-to-spine within 250 ms.
4. Where the time went: the agent's own log lines during each bind and unbind (per driver) and,
   with `--py-spy PATH`, a py-spy recording of the agent (every thread) from just before each
   scale bind until the kernel was complete, summed per stage: the main thread's wall time
   (snapshot of the IDL rows, view build, plan, each driver, waiting) and the other threads'
   busy time (OVSDB reader, netlink watch).

The listeners run at the lowest real-time priority: on 2 loaded cores a normal process is woken
up late, and its timestamps with it. The FRR figure is polled (every ~5 ms, from a normal thread)
and may be late by a poll. The machine's load average is printed at the start and the end: on 2
cores shared with other labs it moves the figures by a factor of 2-3.

The lab puts a whole cloud on 2 cores. By default (`--central-cpu idle`) ovn-northd and the
Northbound server run at SCHED_IDLE, as if on a controller of their own: ovn-northd recomputes
for ~250 ms of CPU after each bind at 3,000 ports, and at normal priority it takes a core from
the node under test. `--central-cpu shared` measures with it competing.

Everything runs in the lab's namespaces; only processes this command started are stopped, and the
lab is removed at the end unless `--keep`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from pathlib import Path
from typing import Any

from ovn_fabric.lab import agents, ovn, vm
from ovn_fabric.lab import lab as labmod
from ovn_fabric.lab.procs import netns_pids, terminate
from ovn_fabric.lab.sh import output, wait_until
from ovn_fabric.lab.topology import builtin_path
from ovn_fabric.model import FLOW_COOKIE, FLOW_COOKIE_MASK

PREFIX = "ofb"
NODE = "compute1"
SPINES = ("spine1", "spine2")
CIDR4, GATEWAY4 = "172.24.0.0/16", "172.24.0.1"
FIRST_PORT4 = IPv4Address("172.24.1.0")        # bench ports from here on (the VM has .0.10)
FIRST_PORT6 = IPv6Address("2001:db8:24:4::1:0")
TARGET_SCALE_N, TARGET_SCALE_S = 3000, 0.5
TARGET_P99_S = 0.25
MAX_BIND_SPACING_S = 0.3                         # latency binds: a random pause before each
NB_BATCH = 2500                                  # ports per NB transaction when creating them
REPO = Path(__file__).resolve().parents[1]


# --- OVSDB over its unix socket -------------------------------------------------------------


class Ovsdb:
    """A minimal OVSDB JSON-RPC client (one connection, one request at a time): the bench times
    a transaction from the instant it is sent, without a client process to start."""

    def __init__(self, path: Path) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(str(path))
        self._buffer = b""
        self._decoder = json.JSONDecoder()
        self._id = 0

    def close(self) -> None:
        self._sock.close()

    def _send(self, message: dict[str, Any]) -> None:
        self._sock.sendall(json.dumps(message, separators=(",", ":")).encode())

    def _next(self) -> dict[str, Any]:
        while True:
            text = self._buffer.lstrip()
            if text.endswith(b"}"):
                try:
                    message, end = self._decoder.raw_decode(text.decode())
                except json.JSONDecodeError:
                    pass
                else:
                    self._buffer = text[len(text.decode()[:end].encode()):]
                    return dict(message)
            chunk = self._sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("the OVSDB server closed the connection")
            self._buffer += chunk

    def call(self, method: str, params: list[Any]) -> Any:
        self._id += 1
        self._send({"method": method, "params": params, "id": self._id})
        while True:
            message = self._next()
            if message.get("method") == "echo":
                self._send({"result": message.get("params", []), "error": None,
                            "id": message.get("id")})
            elif message.get("id") == self._id:
                if message.get("error"):
                    raise RuntimeError(f"OVSDB {method}: {message['error']}")
                return message["result"]

    def transact(self, db: str, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = self.call("transact", [db, *ops])
        errors = [r for r in results if r and "error" in r]
        if errors or len(results) < len(ops):
            raise RuntimeError(f"OVSDB transaction on {db} failed: {errors[:3]}")
        return results

    def select(self, db: str, table: str, where: list[Any], columns: list[str]
               ) -> list[dict[str, Any]]:
        (result,) = self.transact(db, [{"op": "select", "table": table, "where": where,
                                        "columns": columns}])
        rows: list[dict[str, Any]] = result["rows"]
        return rows


# --- listeners and FRR ----------------------------------------------------------------------


class Watch:
    """A bench/_route_watch.py process inside one namespace."""

    def __init__(self, netns: str, *, proto: int | None, neigh: bool) -> None:
        # Real-time priority (the lowest): on 2 loaded cores a plain process is woken up
        # hundreds of milliseconds late, and so would be its timestamps. It only blocks in
        # select() and decodes a few microseconds per message.
        argv = ["ip", "netns", "exec", netns, "chrt", "--fifo", "1", sys.executable, "-m",
                "bench._route_watch", "--prefix", CIDR4, "--prefix", "2001:db8:24:4::/64"]
        argv += ["--proto", str(proto)] if proto is not None else []
        argv += ["--neigh"] if neigh else []
        self.netns = netns
        self._proc = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, bufsize=1)
        self._id = 0
        self._early: dict[int, dict[str, Any]] = {}
        ready = self._line()
        if not ready.get("ready"):
            raise RuntimeError(f"listener in {netns}: {ready}")

    def _line(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the listener in {self.netns} exited")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def _ask(self, request: dict[str, Any]) -> int:
        assert self._proc.stdin is not None
        self._id += 1
        self._proc.stdin.write(json.dumps({"id": self._id, **request}) + "\n")
        return self._id

    def _reply(self, wanted: int, *, armed: bool = False) -> dict[str, Any]:
        if not armed and wanted in self._early:
            return self._early.pop(wanted)
        while True:
            reply = self._line()
            if reply.get("id") == wanted and bool(reply.get("armed")) == armed:
                return reply
            self._early[int(reply["id"])] = reply

    def counts(self) -> dict[str, int]:
        reply = self._reply(self._ask({"kind": "count"}))
        return {"routes": int(reply["routes"]), "neighs": int(reply["neighs"])}

    def arm(self, kind: str, op: str, count: int, timeout: float) -> int:
        """Start waiting for `kind op count`; returns once the listener holds the wait."""
        wait = self._ask({"kind": kind, "op": op, "count": count, "timeout": timeout})
        self._reply(wait, armed=True)
        return wait

    def result(self, wait: int) -> float | None:
        """CLOCK_MONOTONIC time at which the armed condition became true (None: timed out)."""
        t = self._reply(wait).get("t")
        return float(t) if t is not None else None

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


class Bgpd:
    """bgpd's vty socket, spoken to as vtysh does (command + NUL; answer ends in 3 NULs and a
    status byte): a query costs about a millisecond, no process to start."""

    def __init__(self, vty: Path) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(str(vty))

    def command(self, command: str) -> str:
        self._sock.sendall(command.encode() + b"\0")
        buffer = b""
        while not (len(buffer) >= 4 and buffer[-4:-1] == b"\0\0\0"):
            chunk = self._sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("bgpd closed its vty")
            buffer += chunk
        return buffer[:-4].decode()

    def rib_count(self, family: str) -> int:
        """Prefixes in the BGP table of `family` ("ipv4" or "ipv6")."""
        return int(json.loads(self.command(f"show bgp {family} unicast summary json"))
                   .get("ribCount", 0))

    def close(self) -> None:
        self._sock.close()


# --- the bench --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Port:
    index: int
    name: str                  # NB Logical_Switch_Port name = Neutron port id
    mac: str
    ip4: IPv4Address
    ip6: IPv6Address | None

    @property
    def address(self) -> str:
        return " ".join([self.mac, str(self.ip4), *([str(self.ip6)] if self.ip6 else [])])


@dataclass(slots=True)
class Bench:
    lab: labmod.Lab
    nb: Ovsdb
    sb: Ovsdb
    bgpd: Bgpd
    node_watch: Watch
    spine_watches: dict[str, Watch]
    chassis: str               # compute1's SB Chassis _uuid
    datapath: str              # the provider network's Datapath_Binding _uuid
    dual_stack: bool
    ports: list[Port] = field(default_factory=list)           # the scale ports, created so far
    bindings: dict[str, str] = field(default_factory=dict)    # port name -> Port_Binding _uuid

    def close(self) -> None:
        for watch in [self.node_watch, *self.spine_watches.values()]:
            watch.close()
        for client in (self.nb, self.sb, self.bgpd):
            client.close()


def topology_file(directory: Path) -> Path:
    """three-rack with a /16 provider subnet: room for 10,000 ports."""
    text = builtin_path("three-rack").read_text()
    for old, new in (('cidr4 = "172.24.4.0/24"', f'cidr4 = "{CIDR4}"'),
                     ('gateway4 = "172.24.4.1"', f'gateway4 = "{GATEWAY4}"'),
                     ('name = "three-rack"', 'name = "three-rack-16"')):
        if old not in text:
            raise RuntimeError(f"three-rack.toml changed: no {old!r} to replace")
        text = text.replace(old, new, 1)
    path = directory / "three-rack-16.toml"
    path.write_text(text)
    return path


def keep_topology(lab: labmod.Lab, path: Path) -> None:
    """Move the topology file into the lab's directory, so that the lab stays usable with
    `ovn-fabric lab ...` (--keep) and goes away with `lab down`."""
    kept = lab.paths.lab_dir / path.name
    kept.write_text(path.read_text())
    state = json.loads(lab.paths.state_file.read_text())
    state["topology"] = str(kept)
    lab.paths.state_file.write_text(json.dumps(state, indent=2))


def stop_ovn_controller(lab: labmod.Lab, node: str) -> None:
    """Stop the node's ovn-controller (only the pid in its pidfile, if it runs in our lab)."""
    pid = int((lab.paths.ovn_dir(node) / "ovn-controller.pid").read_text())
    if pid not in netns_pids(lab.netns(node)):
        raise RuntimeError(f"ovn-controller pid {pid} is not in {lab.netns(node)}")
    terminate([pid])


def central_at_idle_priority(lab: labmod.Lab) -> None:
    """ovn-northd and the Northbound ovsdb-server get SCHED_IDLE: they run only when a core is
    free. In a cloud they run on controller nodes; here they share the 2 cores with compute1,
    and ovn-northd spends ~250 ms of CPU recomputing after every bind at 3,000 ports (its
    incremental processing in 23.03 does not cover a Port_Binding's `up`). The Southbound
    ovsdb-server keeps its normal priority: it is on the path of every bind to the agent."""
    central = lab.topology.controller.name
    inside = set(netns_pids(lab.netns(central)))
    for daemon in ("ovn-northd", "ovnnb_db"):
        pid = int((lab.paths.ovn_dir(central) / f"{daemon}.pid").read_text())
        if pid not in inside:
            raise RuntimeError(f"{daemon} pid {pid} is not in {lab.netns(central)}")
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))


def agent_pid(lab: labmod.Lab) -> int:
    pid = agents.agent_pid(lab, NODE)
    if pid is None:
        raise RuntimeError(f"no agent runs on {NODE}")
    return pid


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                  .splitlines() if ":" in line)
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / 100       # utime + stime, in clock ticks of 10 ms


def cpu_share(pid: int, seconds: float) -> float:
    """The share of one core the process used over the next `seconds`."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / seconds


def settle(lab: labmod.Lab, timeout: float = 15.0) -> None:
    """Wait until the agent is idle: under a fifth of a core over two half-seconds in a row (its
    drift tick costs a few percent; a pass waiting on ovs-ofctl or vtysh is short of one). An
    agent that never gets there is reported, not waited for."""
    pid = agent_pid(lab)
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        share = cpu_share(pid, 0.5)
        quiet = quiet + 1 if share < 0.2 else 0
        if quiet == 2:
            return
    print(f"  (the agent is still busy after {timeout:.0f} s: {share:.0%} of a core; going on)",
          flush=True)


def egress_flows(lab: labmod.Lab) -> int:
    """How many of the agent's rules (its cookie) br-ex holds."""
    out = ovn.ofctl(lab.paths, NODE, "dump-flows",
                    f"unix:{lab.paths.ovs_dir(NODE)}/br-ex.mgmt",
                    f"cookie={FLOW_COOKIE:#x}/{FLOW_COOKIE_MASK:#x}")
    return sum(1 for line in out.splitlines() if "cookie=" in line)


def setup(lab: labmod.Lab, dual_stack: bool) -> Bench:
    paths, topo = lab.paths, lab.topology
    central = topo.controller.name
    print("  one real VM on compute1, so that the provider network is local there", flush=True)
    anchor = vm.add_vm(paths, topo, name="anchor", node=NODE)
    print("  stopping ovn-controller on compute1 (it would release bindings with no VIF)",
          flush=True)
    stop_ovn_controller(lab, NODE)
    agents.wait_in_sync(lab, NODE)
    wait_until(lambda: egress_flows(lab) > 0, timeout=15, what="the egress rule on br-ex")
    nb = Ovsdb(ovn.nb_socket(paths, central))
    sb = Ovsdb(ovn.sb_socket(paths, central))
    (chassis,) = sb.select("OVN_Southbound", "Chassis", [["name", "==", NODE]], ["_uuid"])
    (binding,) = sb.select("OVN_Southbound", "Port_Binding",
                           [["logical_port", "==", anchor.port_id]], ["datapath", "chassis"])
    if binding["chassis"] != chassis["_uuid"]:
        raise RuntimeError("the VM's port was released when ovn-controller stopped")
    node_watch = Watch(lab.netns(NODE), proto=247, neigh=True)
    spine_watches = {s: Watch(lab.netns(s), proto=None, neigh=False) for s in SPINES}
    bgpd = Bgpd(paths.frr_dir(NODE) / "bgpd.vty")
    return Bench(lab=lab, nb=nb, sb=sb, bgpd=bgpd, node_watch=node_watch,
                 spine_watches=spine_watches, chassis=chassis["_uuid"][1],
                 datapath=binding["datapath"][1], dual_stack=dual_stack)


def new_port(bench: Bench, index: int, *, dual_stack: bool) -> Port:
    mac_int = 0x800000 | index
    mac = "fa:16:3e:" + ":".join(f"{(mac_int >> s) & 0xFF:02x}" for s in (16, 8, 0))
    return Port(index=index, name=ovn.lab_uuid(bench.lab.paths, "port", f"bench{index}"), mac=mac,
                ip4=FIRST_PORT4 + index, ip6=FIRST_PORT6 + index if dual_stack else None)


def create_ports(bench: Bench, indices: range, *, dual_stack: bool) -> list[Port]:
    """Ports `indices` in the NB, written as Neutron writes a port bound to compute1, and
    waited for in the SB (northd's Port_Bindings, with requested_chassis compute1)."""
    paths, topo = bench.lab.paths, bench.lab.topology
    ids = ovn.provider_ids(paths, topo.provider)
    dhcp4 = ovn.dhcp_options_uuid(paths, topo.controller.name, ids.subnet4_id)
    dhcp6 = ovn.dhcp_options_uuid(paths, topo.controller.name, ids.subnet6_id)
    new = [new_port(bench, i, dual_stack=dual_stack) for i in indices]
    for start in range(0, len(new), NB_BATCH):
        batch = new[start:start + NB_BATCH]
        ops: list[dict[str, Any]] = []
        for n, port in enumerate(batch):
            fake = vm.Vm(name=f"bench{port.index}", node=NODE, hostname=NODE, netns="",
                         port_id=port.name, device_id=ovn.lab_uuid(paths, "instance", port.name),
                         mac=port.mac, ip4=IPv4Interface(f"{port.ip4}/16"),
                         ip6=IPv6Interface(f"{port.ip6 or FIRST_PORT6}/64"))
            external_ids = vm.port_external_ids(paths, topo, fake)
            external_ids["neutron:cidrs"] = " ".join(
                [f"{port.ip4}/16", *([f"{port.ip6}/64"] if port.ip6 else [])])
            row: dict[str, Any] = {
                "name": port.name,
                "addresses": port.address, "port_security": port.address, "enabled": True,
                "options": ["map", [["requested-chassis", NODE]]],
                "external_ids": ["map", sorted(external_ids.items())],
            }
            if dhcp4:
                row["dhcpv4_options"] = ["uuid", dhcp4]
            if dhcp6 and port.ip6:
                row["dhcpv6_options"] = ["uuid", dhcp6]
            ops.append({"op": "insert", "table": "Logical_Switch_Port", "row": row,
                        "uuid-name": f"p{n}"})
        ops.append({"op": "mutate", "table": "Logical_Switch",
                    "where": [["name", "==", ids.switch]],
                    "mutations": [["ports", "insert",
                                   ["set", [["named-uuid", f"p{n}"] for n in range(len(batch))]]]]})
        bench.nb.transact("OVN_Northbound", ops)
    names = {p.name for p in new}

    def created() -> bool:
        rows = bench.sb.select("OVN_Southbound", "Port_Binding",
                               [["datapath", "==", ["uuid", bench.datapath]]],
                               ["_uuid", "logical_port", "requested_chassis"])
        found = {r["logical_port"]: r for r in rows if r["logical_port"] in names}
        ready = [r for r in found.values() if r["requested_chassis"] == ["uuid", bench.chassis]]
        if len(ready) < len(names):
            return False
        bench.bindings.update((name, row["_uuid"][1]) for name, row in found.items())
        return True

    wait_until(created, timeout=300, interval=0.25,
               what=f"northd to create {len(new)} Port_Bindings")
    return new


def bind_ops(bench: Bench, ports: Sequence[Port], bound: bool) -> list[dict[str, Any]]:
    row = ({"chassis": ["uuid", bench.chassis], "up": True} if bound
           else {"chassis": ["set", []], "up": False})
    return [{"op": "update", "table": "Port_Binding",
             "where": [["_uuid", "==", ["uuid", bench.bindings[p.name]]]], "row": row}
            for p in ports]


@dataclass(frozen=True, slots=True)
class Change:
    """One transaction and when each place saw all of it, in seconds after it was sent."""

    commit: float
    node_routes: float | None
    node_neighs: float | None
    frr: float | None
    spines: dict[str, float | None]
    wall_start: float
    profile: dict[str, float] | None = None     # seconds per stage (py-spy), if sampled

    @property
    def node(self) -> float | None:
        """Routes and neighbours both complete in the node's kernel."""
        if self.node_routes is None or self.node_neighs is None:
            return None
        return max(self.node_routes, self.node_neighs)


class FrrPoll(threading.Thread):
    """Polls compute1's bgpd until its BGP tables reach their goal counts; `seconds` after t0."""

    def __init__(self, bgpd: Bgpd, goals: dict[str, int], *, grow: bool, t0: float,
                 timeout: float) -> None:
        super().__init__(name="frr-poll", daemon=True)
        self._bgpd, self._goals, self._grow = bgpd, goals, grow
        self._t0, self._deadline = t0, t0 + timeout
        self.seconds: float | None = None

    def run(self) -> None:
        pending = set(self._goals)
        while pending and time.monotonic() < self._deadline:
            for family in sorted(pending):
                count = self._bgpd.rib_count(family)
                goal = self._goals[family]
                if (count >= goal) if self._grow else (count <= goal):
                    pending.discard(family)
            if pending:
                time.sleep(0.005)
        if not pending:
            self.seconds = time.monotonic() - self._t0


def transact_and_watch(bench: Bench, ports: Sequence[Port], *, bound: bool, timeout: float,
                       watch_frr: bool = True, sampler: Sampler | None = None) -> Change:
    """Bind (or unbind) `ports` in one SB transaction and time it everywhere. A sampler, if
    given, is stopped as soon as the node's kernel holds everything."""
    per = sum(1 if p.ip6 is None else 2 for p in ports)      # routes (and neighbours)
    op = ">=" if bound else "<="
    sign = 1 if bound else -1
    node = bench.node_watch.counts()
    waits = {"routes": bench.node_watch.arm("routes", op, node["routes"] + sign * per, timeout),
             "neighs": bench.node_watch.arm("neighs", op, node["neighs"] + sign * per, timeout)}
    spine_waits = {}
    for name, watch in bench.spine_watches.items():
        have = watch.counts()["routes"]
        spine_waits[name] = watch.arm("routes", op, have + sign * per, timeout)
    prefixes = {"ipv4": len(ports), "ipv6": sum(1 for p in ports if p.ip6 is not None)}
    rib_goals = {family: bench.bgpd.rib_count(family) + sign * count
                 for family, count in prefixes.items() if count}
    ops = bind_ops(bench, ports, bound)
    wall = time.time()
    t0 = time.monotonic()
    bench.sb.transact("OVN_Southbound", ops)
    commit = time.monotonic() - t0
    frr = FrrPoll(bench.bgpd, rib_goals, grow=bound, t0=t0, timeout=timeout)
    if watch_frr:
        frr.start()

    def since(t: float | None) -> float | None:
        return None if t is None else max(0.0, t - t0)

    node_routes = since(bench.node_watch.result(waits["routes"]))
    node_neighs = since(bench.node_watch.result(waits["neighs"]))
    profile = sampler.stop() if sampler is not None else None
    if watch_frr:
        frr.join()
    return Change(
        commit=commit, node_routes=node_routes, node_neighs=node_neighs, frr=frr.seconds,
        spines={name: since(bench.spine_watches[name].result(wait))
                for name, wait in spine_waits.items()},
        wall_start=wall, profile=profile)


# --- where the agent's time goes: py-spy ------------------------------------------------------

# (stage, a function that puts a main-thread sample there), first match wins, leaf side first.
MAIN_STAGES: tuple[tuple[str, str], ...] = (
    ("snapshot: copy the IDL rows (Database.rows)", "Database.rows"),
    ("snapshot: build the frozen OvnView", "build_view"),
    ("snapshot: waiting for the reader's lock, view_of", "synced_snapshot"),
    ("plan()", "ovn_fabric/plan/"),
    ("compare views / plans", "__eq__"),
    ("kernel driver (read, diff, apply)", "_sync_kernel"),
    ("flows driver (ovs-vsctl + ovs-ofctl)", "_sync_flows"),
    ("FRR driver (vtysh)", "dataplane/frr.py"),
    ("status, metrics, log", "_Reporter"),
    ("loop: waiting for the reader's mark, debounce", "Loop."),
)
IDLE_LEAVES = ("poll", "select", "wait", "acquire", "sleep")


class Sampler:
    """py-spy recording every thread of the agent (wall-clock samples, idle included), from
    before the transaction to the moment the node's kernel is complete."""

    def __init__(self, py_spy: str, pid: int, path: Path, rate: int = 250) -> None:
        self._path, self._rate = path, rate
        path.unlink(missing_ok=True)
        self._proc = subprocess.Popen(
            [py_spy, "record", "-p", str(pid), "-r", str(rate), "-f", "raw", "-o", str(path),
             "--threads", "--idle", "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)        # attached and sampling before the clock starts

    def stop(self) -> dict[str, float]:
        self._proc.send_signal(signal.SIGINT)
        self._proc.wait(timeout=30)
        return stages(self._path.read_text(), self._rate)


def stages(raw: str, rate: int) -> dict[str, float]:
    """Seconds per stage from py-spy's raw output: the main thread's wall time by stage, and the
    busy (non-idle) time of each other thread."""
    seconds: dict[str, float] = {}
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1]
        leaf = frames[-1].split(" (")[0]
        if thread == "MainThread":
            text = ";".join(frames[1:])
            where = next((name for name, marker in MAIN_STAGES if marker in text),
                         "main: other")
            if where.startswith("loop") and "Reconciler.reconcile" in text:
                where = "reconcile: other"
            where = f"main thread | {where}"
        elif any(word in leaf.lower() for word in IDLE_LEAVES):
            continue
        else:
            where = f"{thread} thread | busy"
        seconds[where] = seconds.get(where, 0.0) + int(count) / rate
    return seconds


# --- reporting --------------------------------------------------------------------------------


def ms(value: float | None) -> str:
    return "  timeout" if value is None else f"{value * 1000:6.0f} ms"


LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ [\w.]+: (.*)$")


def agent_log_since(lab: labmod.Lab, wall_start: float) -> list[str]:
    """The agent's log lines since `wall_start`, with their offset."""
    lines = []
    for line in agents.log_path(lab, NODE).read_text().splitlines():
        m = LOG_TIME.match(line)
        if not m:
            continue
        stamp = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        offset = stamp - wall_start
        if offset >= -0.001:
            lines.append(f"    +{offset * 1000:6.0f} ms  {m.group(2)}")
    return lines


@dataclass(frozen=True, slots=True)
class ScaleRow:
    n: int
    bind: Change
    unbind: Change
    rss_mib: float
    hwm_mib: float
    rest_cpu: float            # share of one core the agent uses at rest, N ports bound
    flows: int
    bind_log: tuple[str, ...]
    unbind_log: tuple[str, ...]


def scale_timeout(n: int) -> float:
    return 30 + n * 0.01


def ensure_ports(bench: Bench, n: int) -> list[Port]:
    """The first n scale ports, created if need be."""
    missing = n - len(bench.ports)
    if missing > 0:
        t = time.monotonic()
        first = len(bench.ports) + 1                    # index 0 is the single-bind port
        bench.ports += create_ports(bench, range(first, first + missing),
                                    dual_stack=bench.dual_stack)
        print(f"  {missing} more ports created in the NB, their Port_Bindings in the SB, in "
              f"{time.monotonic() - t:.1f} s", flush=True)
    return bench.ports[:n]


def measure_scale(bench: Bench, sizes: Sequence[int], py_spy: str | None) -> list[ScaleRow]:
    rows = []
    for n in sizes:
        ports = ensure_ports(bench, n)
        settle(bench.lab)
        sampler = (Sampler(py_spy, agent_pid(bench.lab), bench.lab.paths.lab_dir / "pyspy.txt")
                   if py_spy else None)
        bind = transact_and_watch(bench, ports, bound=True, timeout=scale_timeout(n),
                                  sampler=sampler)
        flows = egress_flows(bench.lab)
        settle(bench.lab)
        rest = cpu_share(agent_pid(bench.lab), 2.0)
        rss, hwm = memory_mib(agent_pid(bench.lab))
        bind_log = agent_log_since(bench.lab, bind.wall_start)
        unbind = transact_and_watch(bench, ports, bound=False, timeout=scale_timeout(n))
        settle(bench.lab)
        unbind_log = agent_log_since(bench.lab, unbind.wall_start)
        rows.append(ScaleRow(n, bind, unbind, rss, hwm, rest, flows, tuple(bind_log),
                             tuple(unbind_log)))
        print(f"  N={n:>6}: bind: node kernel {ms(bind.node)}, spine1 "
              f"{ms(bind.spines['spine1'])}; unbind: node {ms(unbind.node)}, spine1 "
              f"{ms(unbind.spines['spine1'])}; RSS {rss:.0f} MiB; at rest {rest:.0%} of a core",
              flush=True)
    return rows


@dataclass(frozen=True, slots=True)
class Latency:
    background: int            # other ports bound on the node meanwhile
    node: list[float]
    spine: list[float]
    timeouts: int


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * q // 100)))
    return ordered[int(rank) - 1]


def measure_latency(bench: Bench, port: Port, binds: int, background: int) -> Latency:
    """`binds` times: bind `port` alone, time it to compute1's and spine1's kernels, unbind it
    and wait until it is gone everywhere. `background` scale ports stay bound meanwhile."""
    others = ensure_ports(bench, background) if background else []
    if others:
        transact_and_watch(bench, others, bound=True, timeout=scale_timeout(background))
    settle(bench.lab)
    node_times, spine_times = [], []
    timeouts = 0
    spacing = random.Random(binds)  # noqa: S311  # pauses, not secrets: the same every run
    for _ in range(binds):
        # Binds come at random times in a cloud. Issued the instant the previous withdrawal
        # reached the spines, they fell in step with FRR's timers: spine1's time was 202 +- 5
        # ms whatever the node's (31-128 ms). A random pause breaks that step.
        time.sleep(spacing.uniform(0.0, MAX_BIND_SPACING_S))
        bind = transact_and_watch(bench, [port], bound=True, timeout=10, watch_frr=False)
        if bind.node is None or bind.spines["spine1"] is None:
            timeouts += 1
        else:
            node_times.append(bind.node)
            spine_times.append(bind.spines["spine1"])
        unbind = transact_and_watch(bench, [port], bound=False, timeout=10, watch_frr=False)
        if None in unbind.spines.values() or unbind.node is None:
            raise RuntimeError("a single port was not withdrawn within 10 s")
    if others:
        transact_and_watch(bench, others, bound=False, timeout=scale_timeout(background))
    return Latency(background, node_times, spine_times, timeouts)


def uptime() -> str:
    return output(["uptime"]).strip()


def print_scale(rows: Sequence[ScaleRow], dual_stack: bool) -> None:
    fam = "an IPv4 and an IPv6 address" if dual_stack else "one IPv4 address"
    print(f"\n== Scale: N ports ({fam} each) bound to {NODE} in one SB transaction; "
          "times after it was sent")
    print(f"{'N':>6} | {'commit':>9} | {'kernel rt':>9} | {'kernel nb':>9} | {'FRR table':>9} | "
          f"{'spine1':>9} | {'spine2':>9} | flows || unbind: {'kernel':>9} | {'FRR table':>9} | "
          f"{'spine1':>9} | {'spine2':>9} || {'RSS':>7} | {'peak RSS':>8} | at rest")
    for r in rows:
        b, u = r.bind, r.unbind
        print(f"{r.n:>6} | {ms(b.commit)} | {ms(b.node_routes)} | {ms(b.node_neighs)} | "
              f"{ms(b.frr)} | {ms(b.spines['spine1'])} | {ms(b.spines['spine2'])} | "
              f"{r.flows:>5} ||         {ms(u.node)} | {ms(u.frr)} | "
              f"{ms(u.spines['spine1'])} | {ms(u.spines['spine2'])} || "
              f"{r.rss_mib:3.0f} MiB | {r.hwm_mib:4.0f} MiB | {r.rest_cpu:6.0%}")
    print("  kernel rt / nb: every route / neighbour entry (proto 247) in compute1's kernel;"
          " FRR table: compute1's BGP table;\n  flows: the agent's rules on br-ex afterwards "
          "(one egress rule per network and IP version, none per port); at rest: the agent's "
          "CPU, N bound")


def print_latency(latency: Latency) -> None:
    print(f"\n== Single port, {len(latency.spine) + latency.timeouts} binds (unbound between), "
          f"{latency.background} other ports bound: bind -> its /32 in the kernel "
          "(fabric: spine1's time less compute1's, for each bind)")
    if not latency.spine:
        print("  every bind timed out")
        return
    # What FRR adds: from the route in compute1's kernel to the same route in spine1's.
    fabric = [spine - node for node, spine in zip(latency.node, latency.spine, strict=True)]
    for what, values in (("compute1", latency.node), ("spine1", latency.spine),
                         ("fabric", fabric)):
        print(f"  {what:9}: p50 {ms(percentile(values, 50))}, p90 {ms(percentile(values, 90))}, "
              f"p99 {ms(percentile(values, 99))}, max {ms(max(values))}, min {ms(min(values))} "
              f"(timeouts: {latency.timeouts})")


def print_targets(rows: Sequence[ScaleRow], latency: Latency | None) -> None:
    print("\n== Targets (ratio = figure / target; <= 1.00 is met)")
    at_target = [r for r in rows if r.n == TARGET_SCALE_N]
    bind = at_target[0].bind if at_target else None
    node, frr = (bind.node, bind.frr) if bind is not None else (None, None)
    if bind is not None and node is not None and frr is not None:
        # Programmed = in the kernel (routes and neighbours) and in FRR (bgpd's table, which
        # it fills from those kernel routes); OVS has no per-port state (one rule a network).
        commit = bind.commit
        programmed = max(node, frr)
        print(f"  {TARGET_SCALE_N} ports programmed on the node (kernel routes + neighbours, "
              f"and FRR's BGP table): {ms(programmed)} vs {TARGET_SCALE_S * 1000:.0f} ms -> "
              f"ratio {programmed / TARGET_SCALE_S:.2f} "
              f"({'met' if programmed <= TARGET_SCALE_S else 'MISSED'}); kernel {ms(node).strip()},"
              f" FRR {ms(frr).strip()}; the SB commit took {ms(commit).strip()} of it, and "
              f"{ms(programmed - commit).strip()} followed the commit")
    else:
        print(f"  {TARGET_SCALE_N} ports: not measured (add it to --sizes)")
    if latency is not None and latency.spine:
        p99 = percentile(latency.spine, 99)
        print(f"  p99 bind-to-spine1 ({latency.background} other ports bound): {ms(p99)} vs "
              f"{TARGET_P99_S * 1000:.0f} ms -> ratio {p99 / TARGET_P99_S:.2f} "
              f"({'met' if p99 <= TARGET_P99_S else 'MISSED'})")


def print_profile(rows: Sequence[ScaleRow]) -> None:
    for r in rows:
        print(f"\n== The agent's log during the bind of N={r.n} (after the transaction was sent)")
        print("\n".join(r.bind_log) or "    (nothing logged)")
        print(f"   ... and during the unbind of N={r.n}")
        print("\n".join(r.unbind_log) or "    (nothing logged)")
        profile = r.bind.profile
        if profile:
            print(f"   py-spy, bind of N={r.n}, from 0.5 s before the transaction until the "
                  f"kernel was complete ({ms(r.bind.node)} after it):")
            for stage, seconds in sorted(profile.items(), key=lambda kv: -kv[1]):
                if seconds >= 0.01:
                    print(f"    {seconds * 1000:7.0f} ms  {stage}")


# --- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 3000, 10000])
    parser.add_argument("--binds", type=int, default=100,
                        help="single-port binds for the latency figures (0: none)")
    parser.add_argument("--latency-background", type=int, default=0, metavar="N",
                        help="keep N other ports bound during the single-port binds")
    parser.add_argument("--dual-stack", action="store_true",
                        help="give every scale port an IPv6 address too (two routes each)")
    parser.add_argument("--py-spy", metavar="PATH",
                        help="a py-spy binary: sample the agent during each scale bind and "
                             "print where its time went (not a dependency: pip install py-spy)")
    parser.add_argument("--central-cpu", choices=("idle", "shared"), default="idle",
                        help="idle (default): ovn-northd and the NB server run only when a core "
                             "is free, as if on a controller; shared: at normal priority")
    parser.add_argument("--keep", action="store_true", help="leave the lab up at the end")
    args = parser.parse_args()
    sizes = sorted(set(args.sizes))
    print(f"machine load at the start: {uptime()}", flush=True)
    labmod.down(PREFIX)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        topology = topology_file(Path(tmp))
        lab = labmod.up(str(topology), PREFIX, lambda line: print(f"  {line}", flush=True))
        keep_topology(lab, topology)
        bench: Bench | None = None
        try:
            bench = setup(lab, args.dual_stack)
            if args.central_cpu == "idle":
                central_at_idle_priority(lab)
            print(f"  ovn-northd and the NB server: {args.central_cpu} CPU", flush=True)
            (single,) = create_ports(bench, range(1), dual_stack=False)
            latency = None
            if args.binds:
                print(f"  {args.binds} single-port binds, {args.latency_background} other ports "
                      "bound ...", flush=True)
                latency = measure_latency(bench, single, args.binds, args.latency_background)
                print_latency(latency)
            rows = measure_scale(bench, sizes, args.py_spy)
            print_scale(rows, args.dual_stack)
            if latency is not None:
                print_latency(latency)
            print_targets(rows, latency)
            print_profile(rows)
        finally:
            if bench is not None:
                bench.close()
            if not args.keep:
                labmod.down(PREFIX)
    print(f"\nmachine load at the end: {uptime()}; total {time.monotonic() - started:.0f} s",
          flush=True)


if __name__ == "__main__":
    main()
