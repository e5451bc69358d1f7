"""The reconcile pass and loop, with in-memory drivers and injected faults (felix's way): the
outcome asserted is the state the fakes end up in, not the calls made."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ovn_fabric import config
from ovn_fabric.agent.reconcile import Loop, Outcome, Reconciler, Trigger
from ovn_fabric.dataplane.flow_state import FlowChanges
from ovn_fabric.dataplane.flows import FlowReport, FlowSync
from ovn_fabric.dataplane.frr import FrrError
from ovn_fabric.dataplane.kernel import ApplyReport, SyncResult
from ovn_fabric.dataplane.kernel_state import Blocked
from ovn_fabric.dataplane.kernel_state import diff as kernel_diff
from ovn_fabric.frr.exposure import ExposureConfig
from ovn_fabric.lab.sh import wait_until
from ovn_fabric.model import DesiredState, EgressFlow
from ovn_fabric.ovn.view import OvnView, build_view

from ..dataplane.memkernel import MemKernel
from .neutron_rows import CHASSIS_0, chassis_row, datapath_row, localnet_row, vm_port_row
from .test_plan_neutron import TENANT_SETTINGS, router1, view_of

SETTINGS = config.parse('[bridges.br-ex]\ngateways = ["172.24.4.1/24"]\n')
LOCAL = "compute-0"
DP = "3f2a0c1e-0000-4000-8000-000000000001"
NET = "9d8c7b6a-0000-4000-8000-000000000002"
SEG = "a1b2c3d4-0000-4000-8000-000000000003"


def view(*addresses: str, localnet: bool = True) -> OvnView:
    ports = [vm_port_row(f"port-{i}", DP, NET, [f"fa:16:3e:00:00:{i:02x} {a}"], chassis=LOCAL)
             for i, a in enumerate(addresses)]
    localnets = [localnet_row(SEG, DP, "datacentre")] if localnet else []
    return build_view(local_chassis=LOCAL, bridge_mappings="datacentre:br-ex",
                      chassis=[chassis_row(LOCAL, LOCAL)],
                      datapaths=[datapath_row(DP, NET, "public", 1)],
                      port_bindings=[*localnets, *ports])


@dataclass
class Source:
    current: OvnView | None = None
    reads: int = 0

    def synced_snapshot(self) -> OvnView | None:
        self.reads += 1
        return self.current


@dataclass
class Kernel:
    mem: MemKernel = field(default_factory=lambda: MemKernel(devices={"br-ex"}))
    fail_next: OSError | None = None
    full_rounds: int = 0

    def sync(self, desired: DesiredState, *, full: bool = False) -> SyncResult:
        self.full_rounds += full
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        changes = kernel_diff(desired, self.mem.read())
        self.mem.apply(changes)
        return SyncResult(changes, ApplyReport(changes.operations))

    @property
    def routes(self) -> set[str]:
        return {str(r.dst) for r in self.mem.read().routes}


@dataclass
class Flows:
    installed: frozenset[EgressFlow] = frozenset()
    reads: int = 0
    no_patch_port: bool = False       # OVN has not made the patch port yet

    def sync(self, flows: Iterable[EgressFlow], bridges: Iterable[str] = ()) -> FlowSync:
        self.reads += 1
        wanted = frozenset(flows)
        if self.no_patch_port:
            waiting = tuple(Blocked(f.patch_port, "no such port (yet)") for f in wanted)
            return FlowSync(FlowChanges(waiting=waiting), FlowReport(0))
        changed = len(wanted ^ self.installed)
        self.installed = wanted
        return FlowSync(FlowChanges(), FlowReport(changed))


@dataclass
class Frr:
    applied: ExposureConfig | None = None
    fail_next: bool = False

    def __call__(self, wanted: ExposureConfig) -> list[str]:
        if self.fail_next:
            self.fail_next = False
            raise FrrError("vtysh exited 1: bgpd is not running")
        changed = [] if self.applied == wanted else ["(the block)"]
        self.applied = wanted
        return changed


@contextlib.contextmanager
def running(loop: Loop) -> Iterator[None]:
    """The loop in a thread of its own for the `with` block; stopped and joined after it."""
    thread = threading.Thread(target=loop.run)
    thread.start()
    try:
        yield
    finally:
        loop.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()


def make(source: Source) -> tuple[Reconciler, Kernel, Flows, Frr]:
    kernel, flows, frr = Kernel(), Flows(), Frr()
    return Reconciler(SETTINGS, source, kernel=kernel, flows=flows, frr=frr), kernel, flows, frr


def test_nothing_is_touched_before_the_first_full_read_of_ovn() -> None:
    source = Source(None)
    reconciler, kernel, flows, frr = make(source)
    kernel.mem.routes.clear()
    outcome = reconciler.reconcile(Trigger.RESYNC)
    assert outcome.waiting_for_ovn
    assert not outcome.ok
    assert (kernel.routes, flows.installed, frr.applied) == (set(), frozenset(), None)


def test_a_synced_view_is_programmed_by_every_driver() -> None:
    reconciler, kernel, flows, frr = make(Source(view("172.24.4.10", "172.24.4.11")))
    outcome = reconciler.reconcile(Trigger.OVN)
    assert outcome.ok
    assert outcome.planned
    assert kernel.routes == {"172.24.4.10/32", "172.24.4.11/32"}
    assert flows.installed == {EgressFlow("br-ex", f"patch-provnet-{SEG}-to-br-int")}
    assert frr.applied is not None


def test_withdrawal_is_absence_from_the_plan() -> None:
    source = Source(view("172.24.4.10", "172.24.4.11"))
    reconciler, kernel, _, _ = make(source)
    reconciler.reconcile(Trigger.OVN)
    source.current = view("172.24.4.11")
    reconciler.reconcile(Trigger.OVN)
    assert kernel.routes == {"172.24.4.11/32"}


def test_a_failing_driver_does_not_stop_the_others_and_is_retried() -> None:
    reconciler, kernel, flows, frr = make(Source(view("172.24.4.10")))
    kernel.fail_next = OSError(105, "No buffer space available")
    frr.fail_next = True
    first = reconciler.reconcile(Trigger.OVN)
    assert not first.ok
    failed = {d.driver: d.failures for d in first.drivers if d.failures}
    assert set(failed) == {"kernel", "frr"}
    assert "No buffer space available" in failed["kernel"][0]
    assert flows.installed != frozenset()         # the flow driver still ran
    assert kernel.routes == set()
    # the loop's retry pass runs the failed drivers again, and they succeed
    second = reconciler.reconcile(Trigger.RETRY)
    assert second.ok
    assert kernel.routes == {"172.24.4.10/32"}
    assert frr.applied is not None


def test_flows_drift_with_an_unchanged_plan_syncs_only_the_flows() -> None:
    reconciler, kernel, _, _ = make(Source(view("172.24.4.10")))
    reconciler.reconcile(Trigger.OVN)
    kernel.mem.routes.clear()                 # drift the flows pass must not see: the kernel watch
    outcome = reconciler.reconcile(Trigger.FLOWS)
    assert [d.driver for d in outcome.drivers] == ["flows"]
    assert kernel.routes == set()
    reconciler.reconcile(Trigger.KERNEL)      # ... which marks KERNEL: repaired
    assert kernel.routes == {"172.24.4.10/32"}


def test_a_bind_does_not_wait_for_the_flows_drift_and_a_new_network_do() -> None:
    source = Source(view("172.24.4.10"))
    reconciler, kernel, flows, _ = make(source)
    assert [d.driver for d in reconciler.reconcile(Trigger.OVN).drivers] == ["frr", "kernel",
                                                                             "flows"]
    source.current = view("172.24.4.10", "172.24.4.11")      # a port bound: same flows
    assert [d.driver for d in reconciler.reconcile(Trigger.OVN).drivers] == ["kernel"]
    assert kernel.routes == {"172.24.4.10/32", "172.24.4.11/32"}
    flows.installed = frozenset()                             # deleted by hand
    assert [d.driver for d in reconciler.reconcile(Trigger.FLOWS).drivers] == ["flows"]
    assert flows.installed != frozenset()                     # repaired: the probe saw it
    source.current = view("172.24.4.10", localnet=False)      # the network goes
    drivers = [d.driver for d in reconciler.reconcile(Trigger.OVN).drivers]
    assert drivers == ["kernel", "flows"]
    assert flows.installed == frozenset()


def test_flows_waiting_for_their_patch_port_are_tried_again_on_the_next_pass() -> None:
    source = Source(view("172.24.4.10"))
    reconciler, _, flows, _ = make(source)
    flows.no_patch_port = True
    first = reconciler.reconcile(Trigger.OVN)
    assert [d.waiting for d in first.drivers if d.driver == "flows"] != [()]
    flows.no_patch_port = False                        # ovn-controller made it meanwhile
    source.current = view("172.24.4.10", "172.24.4.11")
    assert "flows" in [d.driver for d in reconciler.reconcile(Trigger.OVN).drivers]
    assert flows.installed != frozenset()


def test_only_ovn_and_resync_passes_read_ovn() -> None:
    """A snapshot costs ~0.3 ms per port: passes for other reasons at a node with 3,000 ports
    took half a core when each read OVN."""
    source = Source(view("172.24.4.10"))
    reconciler, kernel, _, _ = make(source)
    reconciler.reconcile(Trigger.OVN)
    source.current = view("172.24.4.10", "172.24.4.11")    # without a mark: not seen
    for trigger in (Trigger.FLOWS, Trigger.FRR, Trigger.KERNEL):
        assert reconciler.reconcile(trigger).ok
    assert source.reads == 1
    assert kernel.routes == {"172.24.4.10/32"}
    reconciler.reconcile(Trigger.RESYNC)
    assert (source.reads, kernel.routes) == (2, {"172.24.4.10/32", "172.24.4.11/32"})


def test_while_ovn_is_unsynced_every_pass_reads_it_and_touches_nothing() -> None:
    source = Source(view("172.24.4.10"))
    reconciler, kernel, flows, _ = make(source)
    reconciler.reconcile(Trigger.OVN)
    source.current = None                                    # connection lost
    assert reconciler.reconcile(Trigger.OVN).waiting_for_ovn
    flows.installed = frozenset()
    outcome = reconciler.reconcile(Trigger.FLOWS)
    assert outcome.waiting_for_ovn
    assert (source.reads, flows.installed) == (3, frozenset())
    source.current = view("172.24.4.11")                     # back, and changed meanwhile
    assert reconciler.reconcile(Trigger.FLOWS).ok
    assert kernel.routes == {"172.24.4.11/32"}


def test_the_loop_runs_a_pass_after_a_mark_and_stops() -> None:
    source = Source(view("172.24.4.10"))
    reconciler, kernel, _, _ = make(source)
    outcomes: list[Outcome] = []
    loop = Loop(reconciler, outcomes.append, debounce_s=0.01, resync_s=3600)
    with running(loop):
        wait_until(lambda: kernel.routes == {"172.24.4.10/32"}, timeout=5,
                   what="the first pass")
        source.current = view("172.24.4.10", "172.24.4.12")
        loop.mark(Trigger.OVN)
        wait_until(lambda: "172.24.4.12/32" in kernel.routes, timeout=5,
                   what="a pass after the OVN mark")
    assert any(o.triggers & Trigger.OVN for o in outcomes)


def test_the_frr_block_permits_exactly_the_tenant_subnets_the_plan_advertises() -> None:
    source = Source(view_of(*router1(chassis=CHASSIS_0)))
    frr = Frr()
    reconciler = Reconciler(TENANT_SETTINGS, source, kernel=Kernel(MemKernel({"br-ex"})),
                            flows=Flows(), frr=frr)
    first = reconciler.reconcile(Trigger.OVN)
    assert first.ok
    # The block changed, so FRR went first: the entry is in place when the route appears.
    assert [d.driver for d in first.drivers] == ["frr", "kernel", "flows"]
    assert frr.applied is not None
    exact = {ln for ln in frr.applied.global_lines if "seq 1000" in ln}
    assert exact == {"ip prefix-list OVN-FABRIC-ALLOW4 seq 100005 permit 10.0.0.0/26",
                     "ipv6 prefix-list OVN-FABRIC-ALLOW6 seq 100005 permit 2001:db8:10::/64"}
    # The gateway moves away: the subnets leave the kernel and the block, in the same pass.
    source.current = view_of(*router1(chassis=None))
    outcome = reconciler.reconcile(Trigger.OVN)
    assert {d.driver for d in outcome.drivers} >= {"frr", "kernel"}
    assert not any("seq 1000" in ln for ln in frr.applied.global_lines)
    # Nothing changed: FRR drift is synced after the kernel (and after the flows).
    assert [d.driver for d in reconciler.reconcile(Trigger.FRR | Trigger.KERNEL).drivers] == [
        "kernel", "frr"]
    assert [d.driver for d in reconciler.reconcile(Trigger.FRR | Trigger.FLOWS).drivers] == [
        "flows", "frr"]


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_change_that_finds_the_loop_idle_is_planned_at_once_not_after_the_debounce() -> None:
    """A lone bind waits for no debounce: with a 5 s debounce, its pass still comes within the
    2 s this test allows (the clock says the loop has been idle for 10 s)."""
    source = Source(view("172.24.4.10"))
    reconciler, kernel, _, _ = make(source)
    clock = ManualClock()
    loop = Loop(reconciler, lambda _: None, debounce_s=5.0, resync_s=3600, clock=clock)
    with running(loop):
        wait_until(lambda: kernel.routes == {"172.24.4.10/32"}, timeout=5,
                   what="the first pass (a resync)")
        clock.now += 10.0
        source.current = view("172.24.4.10", "172.24.4.12")
        loop.mark(Trigger.OVN)
        wait_until(lambda: "172.24.4.12/32" in kernel.routes, timeout=2,
                   what="a pass at once after a mark on an idle loop")


def test_a_failed_pass_is_retried_without_any_new_mark() -> None:
    source = Source(view("172.24.4.10"))
    reconciler, kernel, _, _ = make(source)
    kernel.fail_next = OSError(105, "No buffer space available")
    outcomes: list[Outcome] = []
    loop = Loop(reconciler, outcomes.append, debounce_s=0.01, resync_s=3600)
    with running(loop):
        wait_until(lambda: kernel.routes == {"172.24.4.10/32"}, timeout=5,
                   what="the kernel programmed by the retry pass")
    assert not outcomes[0].ok
    assert any(o.triggers & Trigger.RETRY and o.ok for o in outcomes[1:])


def test_a_reread_with_nothing_changed_reads_ovn_and_runs_no_driver() -> None:
    source = Source(view("172.24.4.10"))
    reconciler, kernel, _, _ = make(source)
    reconciler.reconcile(Trigger.RESYNC)
    assert reconciler.reconcile(Trigger.REREAD).drivers == ()
    assert kernel.full_rounds == 1                       # the start's, not the re-read's
    source.current = view("172.24.4.10", "172.24.4.11")   # a change the reader did not signal
    assert [d.driver for d in reconciler.reconcile(Trigger.REREAD).drivers] == ["kernel"]
    assert kernel.routes == {"172.24.4.10/32", "172.24.4.11/32"}
    assert source.reads == 3


def test_the_loop_starts_with_a_resync_then_rereads_ovn_on_its_period() -> None:
    source = Source(view("172.24.4.10"))
    reconciler, _, _, _ = make(source)
    outcomes: list[Outcome] = []
    loop = Loop(reconciler, outcomes.append, debounce_s=0.01, resync_s=0.05)
    with running(loop):
        wait_until(lambda: len(outcomes) >= 3, timeout=5, what="three passes")
    assert outcomes[0].triggers == Trigger.RESYNC
    assert all(o.triggers == Trigger.REREAD for o in outcomes[1:3])
