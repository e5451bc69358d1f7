"""The agent's own share of a bulk bind, without a lab: N ports bound to our chassis in one
Southbound transaction (bench.agent_scale's scale step), received by the OVSDB reader from a
standalone ovsdb-server, then snapshot, plan and kernel diff as the reconciler does them.

    .venv/bin/python -m bench.reader_bulk [--ports 3000] [--runs 5] [--profile] [--cold]
                                          [--gc agent|default|off] [--dir DIR]

Starts two ovsdb-servers in a temp directory of their own (an OVN Southbound with the installed
schema, and a local Open_vSwitch naming our chassis), fills the Southbound as Neutron and northd
write it (OVN_DATA.md): our Chassis and another, one provider Datapath_Binding with its localnet
port, and N VM Port_Bindings on it (one IPv4 address each, Neutron's external_ids),
requested_chassis ours, not bound yet (as bench.agent_scale creates them). A `Reader` follows
it; the main thread does what the agent's loop does on each on_change (without its 20 ms
debounce): one `synced_snapshot()`, plan() with the reconciler's memo, and the kernel driver's
diff against an in-memory kernel (bench.pass_cost's `Pass`; no netlink).

Each run then binds all N in ONE transaction (chassis = ours, up = true, as ovn-controller
would), and measures, from sending it:
- commit: until the transaction's reply (the server's share, not the agent's);
- pass done: wall time until a pass has planned and diffed a view holding all N bound (the
  in-memory kernel then holds N routes: checked). The parsers' caches are emptied before, as
  for ports never bound before, and one plan of the view follows, as the agent made when the
  ports arrived, requested here: it resolves their claims ahead (plan/workloads.py
  prospective_claims). `--cold` leaves that plan out: ports whose placement came with the
  bind;
- reader busy from/to: when the reader's first and last busy round (> 5 ms) before that began
  and ended (the server computes and sends the update after the commit);
- reader CPU: the reader thread's CPU time over that interval (receiving the update, the IDL
  applying it, converting rows, the monitor conditions, and the collections it triggered);
- snapshot, plan, kernel CPU: the main thread's, in each step of the passes over that interval
  (and the collections they triggered);
- server CPU: ovsdb-server's CPU over that interval;
- GC: wall time in the garbage collector over that interval (any thread), of which in full
  collections, and how many of those.
Then it unbinds them all and waits for a pass to say so (not measured). Prints every run and
the medians. `--gc` sets the collector as the agent does (`agent`, the default), leaves
Python's thresholds (`default`), or disables it (`off`: the code's own cost); `--profile` runs
one more bind with cProfile on the reader thread's rounds and on the main thread's passes, and
prints the top functions of each. Every process started is stopped by its pid, and the
directory removed.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._gc import GcClock, add_gc_option, set_collector
from bench.pass_cost import Pass, forget_parsed
from bench.sb_sync import cpu_seconds
from ovn_fabric.lab.ovsdb_server import OVN_SB_SCHEMA, VSWITCH_SCHEMA, OvsdbServer
from ovn_fabric.lab.sh import run
from ovn_fabric.ovn._ovsdb import Poller
from ovn_fabric.ovn.reader import Reader
from ovn_fabric.ovn.view import OvnView

LOCAL, OTHER = "compute1", "compute2"
TIMEOUT = 120.0
BUSY = 0.005            # a reader round longer than this is shown in the timeline
PROJECT = "8d3d1c4ae4d84bd39b4f8a4e0f9e6c3b"
NETWORK = "3b0e6a1c-7f2d-4e8a-9b5c-1d2e3f4a5b60"


def omap(values: dict[str, str]) -> list[Any]:
    return ["map", sorted(values.items())]


def vm_port(index: int, datapath: str, chassis: str) -> dict[str, Any]:
    """A VM port's Port_Binding as northd writes it from Neutron's LSP, not bound yet."""
    ip4 = f"172.24.{1 + (index >> 8) & 255}.{index & 255}"
    mac = f"fa:16:3e:{index >> 16 & 255:02x}:{index >> 8 & 255:02x}:{index & 255:02x}"
    port = str(uuid.UUID(int=index + (1 << 64)))
    return {
        "logical_port": port, "type": "", "datapath": ["uuid", datapath],
        "tunnel_key": index + 2, "mac": f"{mac} {ip4}",
        "chassis": ["set", []], "up": False, "requested_chassis": ["uuid", chassis],
        "options": omap({"requested-chassis": LOCAL}),
        "external_ids": omap({
            "name": f"vm{index}-port", "neutron:cidrs": f"{ip4}/16",
            "neutron:device_id": str(uuid.UUID(int=index + (2 << 64))),
            "neutron:device_owner": "compute:nova", "neutron:host_id": LOCAL,
            "neutron:mtu": "", "neutron:network_name": f"neutron-{NETWORK}",
            "neutron:port_capabilities": "", "neutron:port_name": f"vm{index}-port",
            "neutron:project_id": PROJECT, "neutron:revision_number": "4",
            "neutron:security_group_ids": "5a6c1e04-58bc-4a4b-9d56-6b1c2fbd9b11",
            "neutron:subnet_pool_addr_scope4": "", "neutron:subnet_pool_addr_scope6": "",
            "neutron:vnic_type": "normal"}),
    }


@dataclass(slots=True)
class Cloud:
    sb: OvsdbServer
    ovs: OvsdbServer
    chassis: str = ""                   # our Chassis _uuid
    ports: tuple[str, ...] = ()         # the VM Port_Bindings' _uuids

    def fill(self, count: int) -> None:
        ops: list[dict[str, Any]] = []
        for n, name in enumerate((LOCAL, OTHER)):
            ops += [{"op": "insert", "table": "Encap", "uuid-name": f"encap{n}",
                     "row": {"type": "geneve", "ip": f"192.0.2.{n + 1}", "chassis_name": name}},
                    {"op": "insert", "table": "Chassis", "row": {
                        "name": name, "hostname": name, "encaps": ["named-uuid", f"encap{n}"]}}]
        self.chassis = self.sb.transact(ops)[1]["uuid"][1]
        (datapath,) = self.sb.transact([{"op": "insert", "table": "Datapath_Binding", "row": {
            "tunnel_key": 1, "external_ids": omap({"name": f"neutron-{NETWORK}",
                                                    "name2": "public"})}}])
        datapath_uuid = datapath["uuid"][1]
        localnet = {"op": "insert", "table": "Port_Binding", "row": {
            "logical_port": "provnet-public", "type": "localnet", "tunnel_key": 1,
            "datapath": ["uuid", datapath_uuid], "mac": "unknown",
            "options": omap({"network_name": "public", "mcast_flood": "false",
                             "mcast_flood_reports": "true", "localnet_learn_fdb": "false"}),
            "external_ids": omap({"neutron:provnet-physical-network": "public"})}}
        results = self.sb.transact([localnet, *(
            {"op": "insert", "table": "Port_Binding", "row": vm_port(i, datapath_uuid,
                                                                      self.chassis)}
            for i in range(count))])
        self.ports = tuple(result["uuid"][1] for result in results[1:])

    def bind_ops(self, bound: bool) -> list[dict[str, Any]]:
        row = ({"chassis": ["uuid", self.chassis], "up": True} if bound
               else {"chassis": ["set", []], "up": False})
        return [{"op": "update", "table": "Port_Binding",
                 "where": [["_uuid", "==", ["uuid", port]]], "row": row}
                for port in self.ports]


class ProfiledReader(Reader):
    """A Reader that records when each of its busy rounds ran, and runs them under `profiler`
    while it is set (bench only: it overrides the private `_step`, the one method the reader
    thread runs per round)."""

    profiler: cProfile.Profile | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rounds: list[tuple[float, float]] = []      # (start, end), time.monotonic

    def _step(self, poller: Poller) -> bool:
        profiler = self.profiler
        start = time.monotonic()
        if profiler is None:
            result = super()._step(poller)
        else:
            result = profiler.runcall(super()._step, poller)
        end = time.monotonic()
        if end - start > BUSY:
            self.rounds.append((start, end))
        return result


def thread_cpu(thread: threading.Thread) -> float:
    """CPU seconds of `thread` so far (Linux: a thread's CPU clock)."""
    if thread.ident is None:
        raise RuntimeError("thread not started")
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def reader_thread() -> threading.Thread:
    return next(t for t in threading.enumerate() if t.name == "ovsdb-reader")


def bound_here(view: OvnView) -> int:
    return sum(1 for binding in view.port_bindings if binding.chassis == LOCAL)


class Agent:
    """What the agent's main thread does on each on_change (without its 20 ms debounce): one
    `synced_snapshot()`, then, if it is complete, plan() and the kernel driver's diff against
    an in-memory kernel (bench.pass_cost's `Pass`), timing each in CPU seconds."""

    def __init__(self, reader: Reader, changed: threading.Event, gc_clock: GcClock) -> None:
        self.reader = reader
        self.changed = changed
        self.steps = Pass(gc_clock=gc_clock)
        self.cpu: dict[str, float] = {}

    def wait(self, done: Callable[[OvnView], bool],
             profiler: cProfile.Profile | None = None) -> float:
        """Pass after pass until one has handled a view for which `done(view)`; return when
        (time.monotonic). `cpu` sums each step's CPU seconds over those passes."""
        self.cpu = {"snapshot CPU": 0.0, "plan CPU": 0.0, "kernel CPU": 0.0}
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            self.changed.wait(1.0)
            self.changed.clear()
            if profiler is not None:
                finished: bool = profiler.runcall(self._pass, done)
            else:
                finished = self._pass(done)
            if finished:
                return time.monotonic()
        raise TimeoutError("the reader's view did not get there")

    def _pass(self, done: Callable[[OvnView], bool]) -> bool:
        before = time.thread_time()
        view = self.reader.synced_snapshot()
        self.cpu["snapshot CPU"] += time.thread_time() - before
        if view is None:
            return False
        times = self.steps.follow(view)
        self.cpu["plan CPU"] += times["compare views"] + times["plan"] + times["compare plans"]
        self.cpu["kernel CPU"] += times["kernel sync"]
        return done(view)

    def routes(self) -> int:
        return len(self.steps.kernel.routes)


@dataclass(slots=True)
class Harness:
    """The servers, the reader, the agent's steps, and what the measurements read."""

    cloud: Cloud
    reader: ProfiledReader
    agent: Agent
    gc_clock: GcClock
    count: int
    cold: bool = False

    def bind_all(self, profile: bool = False) -> dict[str, float]:
        """One measured bind of every port (see the module docstring), then unbind them."""
        cloud, reader = self.cloud, self.reader
        thread = reader_thread()
        committed: list[float] = []

        def commit() -> None:
            cloud.sb.transact(cloud.bind_ops(True))
            committed.append(time.monotonic())

        ops_thread = threading.Thread(target=commit, name="bind")
        reader_profiler = cProfile.Profile() if profile else None
        pass_profiler = cProfile.Profile() if profile else None
        server_pid = cloud.sb.pid
        assert server_pid is not None
        reader.profiler = reader_profiler
        server_before = cpu_seconds(server_pid)
        gc_before = self.gc_clock.reading()
        reader_before = thread_cpu(thread)
        self.agent.changed.clear()
        reader.rounds.clear()
        forget_parsed()                 # as for ports never bound before (bench.pass_cost)
        if not self.cold:
            self.agent.steps.prepare()  # the plan made when they arrived, requested here
        started = time.monotonic()
        ops_thread.start()
        done = self.agent.wait(lambda view: bound_here(view) == self.count, pass_profiler)
        reader_cpu = thread_cpu(thread) - reader_before
        server_cpu = cpu_seconds(server_pid) - server_before
        gc_seconds, full_seconds, full_collections = (
            after - before
            for after, before in zip(self.gc_clock.reading(), gc_before, strict=True))
        reader.profiler = None
        ops_thread.join()
        if self.agent.routes() != self.count:
            raise RuntimeError(f"{self.agent.routes()} routes planned, not {self.count}")
        busy = [(start, end) for start, end in reader.rounds if end <= done]
        figures = {"commit": committed[0] - started, "pass done": done - started,
                   "reader busy from": busy[0][0] - started if busy else float("nan"),
                   "to": busy[-1][1] - started if busy else float("nan"),
                   "reader CPU": reader_cpu, **self.agent.cpu,
                   "server CPU": server_cpu, "GC": gc_seconds, "of which full": full_seconds,
                   "full GCs": full_collections}
        cloud.sb.transact(cloud.bind_ops(False))
        self.agent.wait(lambda view: bound_here(view) == 0)
        if reader_profiler is not None and pass_profiler is not None:
            for what, profiler in (("reader thread", reader_profiler),
                                   ("main thread's passes", pass_profiler)):
                for order in ("tottime", "cumulative"):
                    print(f"--- cProfile of the {what} ({order}) ---")
                    pstats.Stats(profiler).sort_stats(order).print_stats(22)
        return figures


def show(figures: dict[str, float]) -> str:
    """Seconds as milliseconds; counts (`full GCs`) as they are."""
    return ", ".join(f"{key} {value:g}" if key == "full GCs" else f"{key} {value * 1000:.0f}"
                     for key, value in figures.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ports", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--cold", action="store_true",
                        help="no plan between emptying the caches and the bind")
    add_gc_option(parser)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()),
                        help="where the temp directory of the servers goes (short: unix "
                             "socket paths are limited to 108 bytes)")
    args = parser.parse_args()
    set_collector(args.gc)
    directory = Path(tempfile.mkdtemp(prefix="reader-bulk-", dir=args.dir))
    cloud = Cloud(sb=OvsdbServer(directory, "sb", OVN_SB_SCHEMA),
                  ovs=OvsdbServer(directory, "ovs", VSWITCH_SCHEMA))
    try:
        cloud.sb.start()
        cloud.ovs.start()
        vsctl = ["ovs-vsctl", f"--db={cloud.ovs.remote}", "--no-wait"]
        run([*vsctl, "init"])
        run([*vsctl, "set", "Open_vSwitch", ".", f"external_ids:system-id={LOCAL}",
             f"external_ids:hostname={LOCAL}", f"external_ids:ovn-remote={cloud.sb.remote}",
             "external_ids:ovn-bridge-mappings=public:br-ex"])
        cloud.fill(args.ports)
        changed = threading.Event()
        reader = ProfiledReader(ovs_socket=cloud.ovs.socket, on_change=changed.set)
        with reader:
            gc_clock = GcClock()
            agent = Agent(reader, changed, gc_clock)
            harness = Harness(cloud, reader, agent, gc_clock, args.ports, args.cold)
            agent.wait(lambda view: len(view.port_bindings) == args.ports + 1)
            print(f"{args.ports} VM ports (requested here, not bound) replicated; load "
                  f"average {os.getloadavg()[0]:.2f}; ms:", flush=True)
            runs = []
            for i in range(args.runs):
                runs.append(harness.bind_all())
                print(f"  bind all, run {i + 1}: {show(runs[-1])}", flush=True)
            medians = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            print(f"median of {args.runs}: {show(medians)}; load average "
                  f"{os.getloadavg()[0]:.2f}")
            if args.profile:
                print(f"profiled run (slowed by cProfile): {show(harness.bind_all(True))}")
    finally:
        cloud.sb.stop()
        cloud.ovs.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
