"""The CPU cost of one reconcile pass at N bound ports, without a lab: the view build, plan(),
the comparisons the reconciler makes, and the kernel driver's diff against its actual state.

    .venv/bin/python -m bench.pass_cost [--sizes 1000 3000] [--runs 5] [--profile]

Times are the main thread's CPU time (time.thread_time), not wall time: on a machine shared
with other labs, wall time measures the other labs as much as this code. Rows are shaped as
the OVSDB reader hands them over (VM ports on one provider network, as
Neutron writes them; a port bound is a new dict whose columns other than chassis and up are
the same objects as before, as the reader converts an update). Two scenarios per N, each the
median of `--runs`:
- "bind all": N ports go from unbound to bound in one update (bench.agent_scale's scale step),
  ports whose addresses the parsers have not seen (their caches are emptied before);
- "bind one": one more port is bound while N are (the latency step on a busy node).
For each: the view build (`view_of`, with the reader's memo), plan(), the reconciler's view and
plan comparisons, and the kernel step (`KernelDriver`'s sync against an in-memory kernel: the
diff, against what it believes is there once it has applied everything), with no netlink.
`--whole` does what every pass did before (no plan memo, the kernel read back and diffed
whole), for an A/B on the same machine. "of which GC" is the time the garbage collector took
during the pass, counted in whichever step it interrupted (a full collection at 3,000 ports
takes ~0.1 s); `--gc agent` (the default) sets it as the agent does, `--gc default` leaves
Python's thresholds, `--gc off` disables it, for the code's own cost. `--profile` prints
cProfile's top functions of the "bind one" pass at the largest N.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import pstats
import statistics
import time
import uuid
from collections.abc import Iterable
from ipaddress import IPv4Address
from typing import Any

from bench._gc import GcClock, add_gc_option, set_collector
from ovn_fabric import config
from ovn_fabric.dataplane.kernel import ApplyReport, BeliefSync
from ovn_fabric.dataplane.kernel_state import KernelChanges, KernelState
from ovn_fabric.model import DesiredState, HostRoute, Neighbour
from ovn_fabric.ovn import view as view_module
from ovn_fabric.ovn.reader import LocalOvs, ViewMemo, view_of
from ovn_fabric.ovn.view import OvnView
from ovn_fabric.plan import PlanMemo, plan

CHASSIS_UUID = uuid.UUID("5a1f3c52-8f0e-4c1b-9a77-0d3e4b6c0a00")
CHASSIS_NAME = "compute1-system-id"
DATAPATH = uuid.UUID("8d2e1c3b-4a5f-4e6d-9c7b-0a1b2c3d4e01")
SETTINGS = config.parse("""
[bridges.br-ex]
gateways = ["172.24.0.1/16", "2001:db8:24:4::1/64"]
""")
LOCAL = LocalOvs(system_id=CHASSIS_NAME, bridge_mappings="public:br-ex",
                 integration_bridge="br-int")
Row = dict[str, Any]


def port_row(index: int, *, bound: bool) -> Row:
    """A VM port's Port_Binding as the reader converts it (references are UUIDs)."""
    ip = IPv4Address("172.24.1.0") + index
    mac = f"fa:16:3e:{index >> 16 & 255:02x}:{index >> 8 & 255:02x}:{index & 255:02x}"
    port = f"bench-{index:05d}-0000-4000-8000-{index:012d}"
    return {
        "_uuid": uuid.UUID(int=index + 1000), "logical_port": port, "type": "",
        "datapath": DATAPATH, "tunnel_key": index + 10, "mac": [f"{mac} {ip}"],
        "chassis": [CHASSIS_UUID] if bound else [], "up": [bound],
        "requested_chassis": [CHASSIS_UUID], "options": {"requested-chassis": "compute1"},
        "additional_chassis": [], "virtual_parent": [], "tag": [], "nat_addresses": [],
        "external_ids": {
            "name": f"p{index}", "neutron:cidrs": f"{ip}/16",
            "neutron:device_id": str(uuid.UUID(int=index)), "neutron:device_owner": "compute:nova",
            "neutron:network_name": "neutron-3b0e6a1c-7f2d-4e8a-9b5c-1d2e3f4a5b60",
            "neutron:port_name": f"p{index}", "neutron:project_id": "a3c5e0f2b1d44f6e8c9a0b1c2",
            "neutron:revision_number": "4",
            "neutron:security_group_ids": "0b6a4d4e-6c1f-4f5a-9a1e-3c2b1a0f9e8d",
            "neutron:vnic_type": "normal", "neutron:host_id": "compute1"},
    }


def bound(row: Row) -> Row:
    """`row` bound to our chassis as the reader hands it over after ovn-controller's update
    (chassis and up): a new dict, its other columns the same objects as before."""
    return {**row, "chassis": [CHASSIS_UUID], "up": [True]}


STATIC_ROWS: dict[str, list[Row]] = {
    "chassis": [{"_uuid": CHASSIS_UUID, "name": CHASSIS_NAME, "hostname": "compute1"}],
    "datapaths": [{"_uuid": DATAPATH, "tunnel_key": 1,
                   "external_ids": {"name": "neutron-public", "name2": "public"}}],
    "localnet": [{"_uuid": uuid.UUID(int=1), "logical_port": "provnet-public",
                  "type": "localnet", "datapath": DATAPATH, "mac": ["unknown"],
                  "chassis": [], "options": {"network_name": "public"}, "tag": []}],
}


class MemoryKernel:
    """Just enough of a kernel for the driver's pure part: what it holds of ours. Its apply
    costs in proportion to the changes, as netlink's would, so that "kernel sync" is the
    driver's own work (it rebuilt every set before, 2-3 ms of a bind at 3,000 ports)."""

    def __init__(self) -> None:
        self.routes: dict[object, HostRoute] = {}
        self.neighbours: dict[object, Neighbour] = {}

    def read(self, bridges: Iterable[str] = ()) -> KernelState:
        return KernelState(routes=frozenset(self.routes.values()),
                           neighbours=frozenset(self.neighbours.values()),
                           devices=frozenset({"br-ex", "lo"}))

    def apply(self, changes: KernelChanges) -> ApplyReport:
        for route in (*changes.delete_routes, *changes.retire_routes):
            if self.routes.get(route.dst) == route:
                del self.routes[route.dst]
        for route in (*changes.add_routes, *changes.replace_routes):
            self.routes[route.dst] = route
        for neighbour in changes.delete_neighbours:
            self.neighbours.pop((neighbour.ip, neighbour.dev), None)
        for neighbour in changes.set_neighbours:
            self.neighbours[(neighbour.ip, neighbour.dev)] = neighbour
        return ApplyReport(attempted=changes.operations)


class Pass:
    """The pure steps of the reconciler's pass, with the state it keeps between passes."""

    def __init__(self, whole: bool = False, gc_clock: GcClock | None = None) -> None:
        self.whole = whole
        self.gc_clock = gc_clock or GcClock()
        self.memo = ViewMemo()
        self.view: OvnView | None = None
        self.desired: DesiredState | None = None
        self.kernel = MemoryKernel()
        self.driver = BeliefSync(self.kernel)
        self.plan_memo = PlanMemo()

    def run(self, bindings: list[Row]) -> dict[str, float]:
        times: dict[str, float] = {}
        gc_before = self.gc_clock.reading()[0]
        t = time.thread_time()
        view = view_of(LOCAL, STATIC_ROWS["chassis"], STATIC_ROWS["datapaths"],
                       [*STATIC_ROWS["localnet"], *bindings], memo=self.memo)
        times["view"] = time.thread_time() - t
        times.update(self.follow(view))
        times["total"] = time.thread_time() - t
        times["of which GC"] = self.gc_clock.reading()[0] - gc_before
        return times

    def prepare(self) -> None:
        """Plan the last view again, with the memo, as the agent did when it arrived: after
        forget_parsed(), this resolves again the claims of the ports about to be bound
        (prospective_claims), as the agent had when their placement arrived."""
        if self.view is not None and not self.whole:
            plan(self.view, SETTINGS, self.plan_memo)

    def follow(self, view: OvnView) -> dict[str, float]:
        """What the reconciler does with a view: compare, plan, compare, kernel diff (CPU
        seconds of each)."""
        times: dict[str, float] = {}
        t0 = time.thread_time()
        same_view = view == self.view
        t1 = time.thread_time()
        times["compare views"] = t1 - t0
        memo = None if self.whole else self.plan_memo
        fresh = plan(view, SETTINGS, memo) if not same_view else self.desired
        t2 = time.thread_time()
        times["plan"] = t2 - t1
        changed = fresh != self.desired
        t3 = time.thread_time()
        times["compare plans"] = t3 - t2
        assert fresh is not None
        self.view, self.desired = view, fresh
        if changed:
            result = self.driver.sync(fresh, full=self.whole)
            assert result.report.ok
        times["kernel sync"] = time.thread_time() - t3
        return times


def median_times(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def scenario(n: int, runs: int, one: bool, whole: bool, gc_clock: GcClock) -> dict[str, float]:
    results = []
    for _ in range(runs):
        step = Pass(whole, gc_clock)
        unbound = [port_row(i, bound=False) for i in range(n + 1)]
        rows = [bound(row) for row in unbound[:n]]
        if one:
            step.run([*rows, unbound[n]])
            after = [*rows, bound(unbound[n])]
        else:
            step.run(unbound)
            after = [*rows, unbound[n]]
            forget_parsed()
        results.append(step.run(after))
    return median_times(results)


def forget_parsed() -> None:
    """Empty the caches of the view's and the planner's parsers (their functools.lru_cache):
    a "bind all" binds ports the agent has never seen bound, whose addresses it has never
    parsed (without this, every run after the first would find them parsed by the one
    before)."""
    for module in (view_module, *(importlib.import_module(f"ovn_fabric.plan.{name}")
                           for name in PLAN_MODULES)):
        for value in vars(module).values():
            clear = getattr(value, "cache_clear", None)
            if callable(clear):
                clear()


PLAN_MODULES = ("balancers", "context", "draft", "exposure", "resolve", "tenant", "workloads")


def profile(n: int) -> None:
    step = Pass()
    unbound = port_row(n, bound=False)
    rows = [port_row(i, bound=True) for i in range(n)]
    step.run([*rows, unbound])
    after = [*rows, bound(unbound)]
    profiler = cProfile.Profile()
    profiler.runcall(lambda: step.run(after))
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    add_gc_option(parser)
    parser.add_argument("--whole", action="store_true",
                        help="as every pass did before the memories: plan without a PlanMemo, "
                             "the kernel driver reading back and diffing everything")
    args = parser.parse_args()
    set_collector(args.gc)
    gc_clock = GcClock()

    def show(times: dict[str, float]) -> str:
        return ", ".join(f"{k} {v * 1000:.1f}" for k, v in times.items())

    for n in args.sizes:
        for one, what in ((False, "bind all"), (True, "bind one")):
            times = scenario(n, args.runs, one=one, whole=args.whole, gc_clock=gc_clock)
            print(f"N={n}: {what} (CPU ms{', --whole' if args.whole else ''}): {show(times)}")
    if args.profile:
        profile(max(args.sizes))


if __name__ == "__main__":
    main()
