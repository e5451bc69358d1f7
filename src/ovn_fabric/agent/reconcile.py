"""One reconcile pass, and the loop that decides when to run one.

A pass (`Reconciler.reconcile`) is level-triggered: it ignores *what* changed. It takes a synced
snapshot of OVN, plans the whole desired state, and lets each driver read back, diff and apply.
The triggers only decide what must be looked at:

    OVN      the reader saw a change: snapshot and plan again; the kernel is synced if the plan
             changed. Only OVN, RESYNC and REREAD passes read OVN: the view cannot change
             without the reader marking OVN. A snapshot is incremental (only the rows that
             changed are converted and built again), and the plan reuses its parsers' results
             and, through its PlanMemo, its own work on every claim that did not change
    KERNEL   the netlink watch saw our state touched: sync the kernel (the driver reads it
             all back only if the event contradicts what it believes is there)
    FLOWS    the drift probe (agent/drift.py, a thread of its own, every 0.5 s) found the
             flows differ from the plan's: sync the flows. This is how a restarted
             ovs-vswitchd or a flow deleted by hand is repaired within a second
    FRR      the drift probe (every 2 s) found bgpd's running config differs from the agent's
             block: sync FRR. This is how the block is restored after bgpd restarts (the
             routes themselves stay in the kernel meanwhile)
    RETRY    the last pass failed (or OVN was not synced yet): run again, RETRY_S later; the
             failed drivers are still dirty, so they run
    RESYNC   at start, and when the drift probe's full read of the kernel (every `resync_s`)
             differs from the plan: everything, whatever we believe; the kernel driver reads
             back and diffs everything (`full`), as it does after a failure (between those, a
             kernel pass diffs only what changed: dataplane/kernel_cache.py)
    REREAD   every `resync_s`: OVN is snapshot and planned again, as for OVN (a change the
             reader failed to signal would show); drivers run only if the plan changed

The loop never reads slow state on a timer: the drift probe does, in its own thread, so that a
bind never waits behind a read of state that has not changed.

Two rules from felix:
- Nothing is touched until the first complete read of OVN is in (`synced_snapshot()` is None
  until then). An empty plan from a half-read database would withdraw every route.
- A failing driver does not stop the others, and is retried on the next pass. Its failure is
  recorded in the outcome: status, metrics and logs report it, never silently drop it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Flag, auto
from typing import Protocol

from ovn_fabric.config import Settings
from ovn_fabric.dataplane.flows import FlowSync, OvsCommandError
from ovn_fabric.dataplane.frr import FrrError
from ovn_fabric.dataplane.kernel import SyncResult
from ovn_fabric.frr.exposure import ExposureConfig, exposure_config
from ovn_fabric.model import DesiredState, EgressFlow, Reason
from ovn_fabric.ovn.view import OvnView
from ovn_fabric.plan import PlanMemo, plan

log = logging.getLogger(__name__)

RETRY_S = 0.5             # a pass with a failure is retried this soon
MAX_DEBOUNCE_FACTOR = 5   # a stream of changes delays a pass by at most 5 x debounce


class Trigger(Flag):
    NONE = 0
    OVN = auto()
    KERNEL = auto()
    FLOWS = auto()
    FRR = auto()
    RETRY = auto()
    RESYNC = auto()
    REREAD = auto()


class OvnSource(Protocol):
    def synced_snapshot(self) -> OvnView | None: ...


class KernelSync(Protocol):
    def sync(self, desired: DesiredState, *, full: bool = False) -> SyncResult: ...


class FlowsSync(Protocol):
    def sync(self, flows: Iterable[EgressFlow], bridges: Iterable[str] = ()) -> FlowSync: ...


class FrrSync(Protocol):
    def __call__(self, wanted: ExposureConfig) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class DriverOutcome:
    driver: str                 # "kernel", "flows", "frr"
    changes: int                # operations applied (0: it was already right)
    failures: tuple[str, ...]   # operations refused, or why the driver could not run at all
    seconds: float
    waiting: tuple[str, ...] = ()   # wanted, but waiting on something OVN has not made yet

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one pass saw and did."""

    triggers: Trigger
    waiting_for_ovn: bool = False
    planned: bool = False               # the plan was recomputed (and differed)
    desired: DesiredState | None = None
    drivers: tuple[DriverOutcome, ...] = ()
    seconds: float = 0.0
    finished_at: float = field(default=0.0, compare=False)   # time.time()

    @property
    def ok(self) -> bool:
        return not self.waiting_for_ovn and all(d.ok for d in self.drivers)


class Reconciler:
    """Plans and drives. Not thread-safe: the loop calls it from one thread."""

    def __init__(self, settings: Settings, source: OvnSource, *, kernel: KernelSync,
                 flows: FlowsSync, frr: FrrSync,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._source, self._kernel, self._flows, self._frr = source, kernel, flows, frr
        self._clock = clock
        self._view: OvnView | None = None
        self._plan_memo = PlanMemo()       # reuses the last plan's work (same result)
        self._desired: DesiredState | None = None
        self._kernel_dirty = True
        self._frr_dirty = True
        self._flows_dirty = True
        self._bridges = tuple(b.name for b in settings.bridges)
        self._frr_wanted = exposure_config(self._bridges, settings.exposure)
        self._waiting: tuple[str, ...] = ()
        self._ovn_unsynced = False      # the last snapshot taken was None
        self._kernel_applied: DesiredState | None = None

    @property
    def desired(self) -> DesiredState | None:
        """The last plan (None before the first synced read)."""
        return self._desired

    @property
    def kernel_applied(self) -> DesiredState | None:
        """The plan the kernel driver last applied without a failure (None: none yet, or the
        last try failed): what the drift probe may compare the kernel with."""
        return self._kernel_applied

    @property
    def frr_wanted(self) -> ExposureConfig:
        """The FRR block the last plan wants (what the drift probe compares bgpd with)."""
        return self._frr_wanted

    def reconcile(self, triggers: Trigger) -> Outcome:
        start = self._clock()
        planned = False
        if (self._desired is None or self._ovn_unsynced
                or triggers & (Trigger.OVN | Trigger.RESYNC | Trigger.REREAD)):
            view = self._source.synced_snapshot()
            self._ovn_unsynced = view is None
            if view is not None and (view != self._view or self._desired is None):
                fresh = plan(view, self.settings, self._plan_memo)
                planned = fresh != self._desired
                self._flows_dirty |= self._desired is None or fresh.flows != self._desired.flows
                self._view, self._desired = view, fresh
                self._kernel_dirty |= planned
                frr_wanted = self._exposure(fresh)
                self._frr_dirty |= frr_wanted != self._frr_wanted
                self._frr_wanted = frr_wanted
        desired = self._desired
        if desired is None or self._ovn_unsynced:
            return Outcome(triggers, waiting_for_ovn=True, seconds=self._clock() - start,
                           finished_at=time.time())
        drivers = []
        # A changed FRR block goes before the kernel: a tenant subnet's prefix-list entry is
        # then in place when its kernel route appears, and bgpd advertises it at once (a
        # prefix-list change alone is applied only when bgpd's route-map delay timer fires, 5 s:
        # PERFORMANCE.md). A withdrawal needs no order: removing the kernel route withdraws it.
        # The periodic FRR check stays last, so that it never delays the kernel.
        frr_first = self._frr_dirty
        if frr_first:
            drivers.append(self._run_frr())
        if self._kernel_dirty or triggers & (Trigger.KERNEL | Trigger.RESYNC):
            full = bool(triggers & Trigger.RESYNC)
            self._kernel_applied = None
            kernel = self._run("kernel", lambda: self._sync_kernel(desired, full))
            self._kernel_dirty = not kernel.ok
            self._kernel_applied = desired if kernel.ok else None
            drivers.append(kernel)
        # The flows depend on the served networks only: a bind or an unbind leaves them as they
        # are, so its pass does not wait for two ovs-ofctl calls. The drift probe reads them
        # every 0.5 s, and marks FLOWS when one was deleted by hand.
        if self._flows_dirty or triggers & (Trigger.FLOWS | Trigger.RESYNC):
            flows = self._run("flows", lambda: self._sync_flows(desired))
            # Waiting (OVN has not made the patch port yet): try again on the next pass.
            self._flows_dirty = not flows.ok or bool(flows.waiting)
            drivers.append(flows)
        if not frr_first and triggers & (Trigger.FRR | Trigger.RESYNC):
            drivers.append(self._run_frr())
        return Outcome(triggers, planned=planned, desired=desired, drivers=tuple(drivers),
                       seconds=self._clock() - start, finished_at=time.time())

    def _run_frr(self) -> DriverOutcome:
        frr = self._run("frr", lambda: (len(self._frr(self._frr_wanted)), ()))
        self._frr_dirty = not frr.ok
        return frr

    def _exposure(self, desired: DesiredState) -> ExposureConfig:
        """The FRR block for a plan: the settings' policy, plus an exact entry for each tenant
        subnet the plan advertises (frr/exposure.py says why exact)."""
        subnets = {e.prefix for e in desired.exposures if e.reason is Reason.TENANT_SUBNET}
        return exposure_config(self._bridges, self.settings.exposure, subnets)

    def _sync_kernel(self, desired: DesiredState, full: bool) -> tuple[int, tuple[str, ...]]:
        result = self._kernel.sync(desired, full=full)
        failures = [f"{f.what}: {f.reason}" for f in result.report.failures]
        failures += [f"{b.what}: {b.reason}" for b in result.changes.blocked]
        return result.report.attempted, tuple(failures)

    def _sync_flows(self, desired: DesiredState) -> tuple[int, tuple[str, ...]]:
        result = self._flows.sync(desired.flows, self._bridges)
        failures = [f"{f.bridge}: {f.reason}" for f in result.report.failures]
        failures += [f"{b.what}: {b.reason}" for b in result.changes.blocked]
        self._waiting = tuple(f"{b.what}: {b.reason}" for b in result.changes.waiting)
        return result.report.attempted, tuple(failures)

    def _run(self, name: str, step: Callable[[], tuple[int, tuple[str, ...]]]
             ) -> DriverOutcome:
        start = self._clock()
        try:
            changes, failures = step()
        except (OSError, OvsCommandError, FrrError) as exc:   # the daemon or kernel said no
            changes, failures = 0, (f"{type(exc).__name__}: {exc}",)
        waiting, self._waiting = self._waiting, ()
        return DriverOutcome(name, changes, failures, self._clock() - start, waiting)


class Loop:
    """Runs passes when triggered: OVN and kernel changes, the drift probe's findings, a retry
    after a failed pass, a periodic re-read of OVN. `mark` may be called from any thread (the OVSDB
    reader's, the netlink watch's, the drift probe's).

    Debounce, on the trailing edge only when busy: a change that finds the loop idle (no pass
    ended within the last `debounce` s) is planned at once, so a lone bind waits for nothing;
    changes that arrive while a pass runs, or right after one, are collected until `debounce`
    s pass with no new one (at most MAX_DEBOUNCE_FACTOR x debounce), so a burst costs a few
    passes, not one per change. The first pass is a RESYNC: it adopts what is there; then every
    `resync_s` a REREAD plans OVN again (the drift probe compares the kernel on that period)."""

    def __init__(self, reconciler: Reconciler, on_outcome: Callable[[Outcome], None],
                 *, debounce_s: float, resync_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._reconciler = reconciler
        self._on_outcome = on_outcome
        self._debounce = debounce_s
        self._resync = resync_s
        self._clock = clock
        self._cond = threading.Condition()
        self._pending = Trigger.NONE
        self._changes = 0
        self._stop = False

    def mark(self, trigger: Trigger) -> None:
        with self._cond:
            self._pending |= trigger
            self._changes += 1
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()

    def _debounce_wait(self) -> None:
        """Wait until no change arrived for `debounce` s, at most MAX_DEBOUNCE_FACTOR times."""
        deadline = self._clock() + self._debounce * MAX_DEBOUNCE_FACTOR
        while not self._stop:
            seen = self._changes
            quiet_until = min(self._clock() + self._debounce, deadline)
            while not self._stop and self._changes == seen and self._clock() < quiet_until:
                self._cond.wait(quiet_until - self._clock())
            if self._changes == seen or self._clock() >= deadline:
                return

    def run(self) -> None:
        now = self._clock()
        next_reread, next_retry, started = now, float("inf"), False
        last_end = now - self._debounce
        while True:
            with self._cond:
                while not self._stop and not self._pending:
                    timeout = min(next_reread, next_retry) - self._clock()
                    if timeout <= 0:
                        break
                    self._cond.wait(timeout)
                if self._stop:
                    return
                if self._pending and self._clock() - last_end < self._debounce:
                    self._debounce_wait()
                triggers, self._pending = self._pending, Trigger.NONE
            now = self._clock()
            if now >= next_retry:
                triggers |= Trigger.RETRY
                next_retry = float("inf")
            if now >= next_reread:
                triggers |= Trigger.REREAD if started else Trigger.RESYNC
                next_reread, started = now + self._resync, True
            outcome = self._reconciler.reconcile(triggers)
            self._on_outcome(outcome)
            last_end = self._clock()
            if not outcome.ok:
                next_retry = min(next_retry, last_end + RETRY_S)
