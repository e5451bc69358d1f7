"""The drift probe's schedule and findings, with a fake clock and in-memory checks; its thread,
marking when a check starts to differ; and its kernel comparison, on an in-memory kernel."""

from __future__ import annotations

import logging
import threading

import pytest

from ovn_fabric.agent.drift import Check, DriftProbe, Probe, kernel_check
from ovn_fabric.agent.reconcile import Trigger
from ovn_fabric.dataplane.kernel_state import KernelState
from ovn_fabric.lab.sh import wait_until

from .test_reconcile import Source, make, view


class Reads:
    """A check's state: how often it was read, and whether it differs."""

    def __init__(self, differs: bool = False) -> None:
        self.count = 0
        self.result: bool | Exception = differs

    def __call__(self) -> bool:
        self.count += 1
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def test_each_check_runs_on_its_own_period_and_only_drift_is_marked() -> None:
    flows, frr = Reads(), Reads()
    probe = Probe([Check("flows", 0.5, Trigger.FLOWS, flows),
                   Check("frr", 2.0, Trigger.FRR, frr)], now=100.0)
    assert probe.next_due() == 100.5
    assert probe.run_due(100.4) == Trigger.NONE
    assert flows.count == 0
    assert probe.run_due(100.5) == Trigger.NONE            # read, and nothing differs
    assert (flows.count, frr.count) == (1, 0)
    assert probe.next_due() == 101.0
    flows.result = True                                    # a rule deleted by hand
    assert probe.run_due(101.0) == Trigger.FLOWS
    flows.result = False
    for now in (101.5, 101.75, 102.0):
        probe.run_due(now)
    assert (flows.count, frr.count) == (4, 1)              # 0.5 s apart; FRR at 102.0
    frr.result = True                                      # bgpd restarted: block gone
    flows.result = True
    assert probe.run_due(104.0) == Trigger.FLOWS | Trigger.FRR


def test_a_state_that_cannot_be_read_is_marked_so_the_driver_reports_why() -> None:
    broken = Reads()
    broken.result = OSError(111, "Connection refused")
    probe = Probe([Check("frr", 2.0, Trigger.FRR, broken)], now=0.0)
    assert probe.run_due(2.0) == Trigger.FRR
    assert probe.next_due() == 4.0                         # and tried again on its period


def test_a_bug_in_a_check_is_logged_with_its_traceback_and_still_marks(
        caplog: pytest.LogCaptureFixture) -> None:
    buggy = Reads()
    buggy.result = KeyError("br-ex")
    probe = Probe([Check("flows", 0.5, Trigger.FLOWS, buggy)], now=0.0)
    with caplog.at_level(logging.DEBUG, logger="ovn_fabric.agent.drift"):
        assert probe.run_due(0.5) == Trigger.FLOWS
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert "drift check flows failed" in record.getMessage()


def test_the_probe_thread_marks_when_a_check_starts_to_differ_and_stops() -> None:
    flows = Reads()
    marks: list[Trigger] = []
    lock = threading.Lock()

    def mark(trigger: Trigger) -> None:
        with lock:
            marks.append(trigger)

    probe = DriftProbe([Check("flows", 0.01, Trigger.FLOWS, flows)], mark).start()
    try:
        wait_until(lambda: flows.count >= 3, timeout=5, what="the check read periodically")
        with lock:
            assert marks == []
        flows.result = True
        wait_until(lambda: Trigger.FLOWS in marks, timeout=5, what="the drift marked")
    finally:
        probe.close()
    count = flows.count
    assert not probe.alive
    assert flows.count == count


def test_the_kernel_check_compares_the_whole_kernel_with_the_plan_last_applied() -> None:
    reconciler, kernel, _, _ = make(Source(view("172.24.4.10")))
    check = kernel_check(lambda _bridges: kernel.mem.read(), 60.0,
                         lambda: reconciler.kernel_applied, lambda: reconciler.desired)
    assert check.trigger == Trigger.RESYNC
    assert not check.differs()                   # nothing applied yet: nothing to compare
    reconciler.reconcile(Trigger.OVN)
    assert not check.differs()
    kernel.mem.routes.clear()                    # lost, and its netlink event with it
    assert check.differs()
    reconciler.reconcile(Trigger.RESYNC)         # what the mark causes: a full pass
    assert kernel.routes == {"172.24.4.10/32"}
    assert not check.differs()


def test_the_kernel_check_ignores_a_read_that_a_new_plan_overtook() -> None:
    source = Source(view("172.24.4.10"))
    reconciler, kernel, _, _ = make(source)
    reconciler.reconcile(Trigger.OVN)

    def read_while_the_loop_moves_on(_bridges: list[str]) -> KernelState:
        state = kernel.mem.read()                # without the port the loop is binding
        source.current = view("172.24.4.10", "172.24.4.11")
        reconciler.reconcile(Trigger.OVN)
        return state

    check = kernel_check(read_while_the_loop_moves_on, 60.0,
                         lambda: reconciler.kernel_applied, lambda: reconciler.desired)
    assert not check.differs()
    assert kernel.routes == {"172.24.4.10/32", "172.24.4.11/32"}
