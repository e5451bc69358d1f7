"""The drift probe: the periodic reads of state nobody tells us about, off the reconcile loop.

The kernel tells the agent when its routes are touched (netlink, agent/kernel_watch.py) and OVN
when its rows change; the flows and FRR say nothing and must be read, and the kernel is read
too, in case the netlink watch missed something:

    flows    our egress rules on the provider bridges (ovs-vsctl + ovs-ofctl, 15-30 ms; hundreds
             under load), every FLOWS_EVERY_S: a flow deleted by hand, or all of them after
             ovs-vswitchd restarts, is back within a second
    FRR      bgpd's running configuration (over bgpd's vty socket, ~0.4 ms; vtysh cost 32 ms of
             CPU), every FRR_EVERY_S: the agent's block, which bgpd forgets when it restarts
    kernel   every route, neighbour and address of ours (a netlink dump, ~60 ms at 3,000 ports,
             and a diff, ~30 ms), every `resync_s`: the safety net under the netlink watch (an
             event lost to a full socket buffer); a difference marks RESYNC, a full pass

The loop used to run these reads itself, on a tick and at each resync. A bind that arrived
during one waited for it: about 85 ms of the p99 bind-to-spine latency on a node with 3,000
ports (docs/PERFORMANCE.md). Here they run in a thread of their own, which compares what it
read with what the reconciler last wanted, and marks the loop (FLOWS, FRR, RESYNC) only when
they differ, or when the state could not be read at all: the driver then runs in the loop and
says why in the pass's outcome. A read that overlaps an apply may see a half-done state and
mark once too often; the pass it causes finds nothing to do. It never marks too rarely: every
check ends in a comparison made after the read.

`Probe` is the schedule and the comparisons, with no thread and no clock of its own (tests drive
`run_due` with a fake clock); `DriftProbe` runs it in a daemon thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ovn_fabric.agent.reconcile import Trigger
from ovn_fabric.dataplane import frr
from ovn_fabric.dataplane.flow_state import diff as flow_diff
from ovn_fabric.dataplane.flows import FlowDriver, OvsCommandError
from ovn_fabric.dataplane.frr import FrrError
from ovn_fabric.dataplane.kernel_state import KernelState
from ovn_fabric.dataplane.kernel_state import diff as kernel_diff
from ovn_fabric.frr.exposure import ExposureConfig
from ovn_fabric.model import DesiredState

log = logging.getLogger(__name__)

FLOWS_EVERY_S = 0.5     # flows are read this often: repairs within a second
FRR_EVERY_S = 2.0       # bgpd's running config is read this often


@dataclass(frozen=True, slots=True)
class Check:
    """One periodic comparison. `differs` reads the state and compares it with what is wanted:
    True when they differ. Any exception it raises counts as differing (the driver, run by the
    loop, then reports the failure)."""

    name: str
    every_s: float
    trigger: Trigger
    differs: Callable[[], bool]


def flows_check(driver: FlowDriver, bridges: Sequence[str],
                wanted: Callable[[], DesiredState | None]) -> Check:
    """Our rules on `bridges` against the last plan's (none before the first plan). A rule
    still waiting for OVN's patch port is no drift; once the port is there, it is."""

    def differs() -> bool:
        desired = wanted()
        if desired is None:
            return False
        changes = flow_diff(desired.flows, driver.read(desired.flows, bridges))
        return bool(changes.operations or changes.blocked)

    return Check("flows", FLOWS_EVERY_S, Trigger.FLOWS, differs)


def frr_check(vtysh: frr.Vtysh, wanted: Callable[[], ExposureConfig]) -> Check:
    """bgpd's running configuration against the agent's block."""
    return Check("frr", FRR_EVERY_S, Trigger.FRR,
                 lambda: bool(frr.diff(wanted(), frr.read(vtysh))))


def kernel_check(read: Callable[[list[str]], KernelState], every_s: float,
                 applied: Callable[[], DesiredState | None],
                 wanted: Callable[[], DesiredState | None]) -> Check:
    """The whole kernel state of ours against the plan the loop last applied without a
    failure. Skipped while the loop is between plans (the plan it applied is not its current
    one, before or after the read): the read could catch an apply half-way, and the loop syncs
    the kernel anyway."""

    def differs() -> bool:
        before = applied()
        if before is None or before is not wanted():
            return False
        actual = read([b.bridge for b in before.bridges])
        if applied() is not before or wanted() is not before:
            return False
        changes = kernel_diff(before, actual)
        return bool(changes.operations or changes.blocked)

    return Check("kernel", every_s, Trigger.RESYNC, differs)


class Probe:
    """Which checks are due when, and what their findings mark."""

    def __init__(self, checks: Sequence[Check], now: float) -> None:
        self._checks = tuple(checks)
        self._due = {check.name: now + check.every_s for check in self._checks}

    def next_due(self) -> float:
        return min(self._due.values(), default=float("inf"))

    def run_due(self, now: float) -> Trigger:
        """Run every check that is due at `now`; the triggers of those that found drift."""
        found = Trigger.NONE
        for check in self._checks:
            if now < self._due[check.name]:
                continue
            self._due[check.name] = now + check.every_s
            try:
                differs = check.differs()
            except (OSError, OvsCommandError, FrrError) as exc:   # the daemon said no
                log.debug("drift check %s could not read: %s", check.name, exc)
                differs = True
            except Exception:
                # A bug, not a daemon: said loudly, and still a finding, so that the driver
                # runs and the check goes on with its period.
                log.exception("drift check %s failed", check.name)
                differs = True
            if differs:
                found |= check.trigger
        return found


class DriftProbe:
    """Runs a `Probe` in a daemon thread and hands its findings to `mark`."""

    def __init__(self, checks: Sequence[Check], mark: Callable[[Trigger], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._probe = Probe(checks, clock())
        self._mark = mark
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drift-probe", daemon=True)

    def start(self) -> DriftProbe:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(max(0.0, self._probe.next_due() - self._clock())):
            found = self._probe.run_due(self._clock())
            if found:
                self._mark(found)
