"""`ovn-fabric agent --config FILE`: wire the reader, the planner and the drivers, and run.

Threads: the OVSDB reader's (marks OVN), the netlink watch's (marks KERNEL), the drift probe's
(reads the flows, FRR and the kernel periodically, marks FLOWS, FRR or RESYNC when they differ
from the last plan),
the status HTTP server's, and the main thread, which runs the reconcile loop. The loop is the
only thread that plans and writes; the probe only reads, with drivers of its own, and compares
with the reconciler's last plan (an immutable value).

Stopping (SIGTERM, SIGINT) withdraws nothing: routes, neighbours and flows stay in place, and a
restarted agent adopts them (read back, diff: nothing to do). Killing it with SIGKILL is the same.

Python's cyclic garbage collector runs every ten minutes, after a pass (`agent/collector.py`).
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from types import FrameType

from ovn_fabric.agent.collector import Collector
from ovn_fabric.agent.drift import DriftProbe, flows_check, frr_check, kernel_check
from ovn_fabric.agent.kernel_watch import KernelWatch
from ovn_fabric.agent.reconcile import Loop, Outcome, Reconciler, Trigger
from ovn_fabric.agent.status import Status, serve
from ovn_fabric.config import Settings
from ovn_fabric.dataplane import frr
from ovn_fabric.dataplane.flows import FlowDriver, OvsTarget
from ovn_fabric.dataplane.kernel import KernelDriver
from ovn_fabric.frr.exposure import ExposureConfig
from ovn_fabric.ovn.reader import Reader, SslFiles

log = logging.getLogger("ovn_fabric.agent")

class _Reporter:
    """Logs what changes between passes (not every pass: a quiet agent logs nothing)."""

    def __init__(self, status: Status) -> None:
        self._status = status
        self._last_state = ""

    def __call__(self, outcome: Outcome) -> None:
        self._status.record(outcome)
        state = ("waiting for the first full read of OVN" if outcome.waiting_for_ovn
                 else "in sync" if outcome.ok else "degraded")
        if state != self._last_state:
            log.info("state: %s", state)
            self._last_state = state
        for driver in outcome.drivers:
            if driver.changes:
                log.info("%s: %d change(s) applied in %.3f s", driver.driver, driver.changes,
                         driver.seconds)
            for failure in driver.failures:
                log.warning("%s: %s", driver.driver, failure)
        if outcome.planned and outcome.desired is not None:
            d = outcome.desired
            log.info("plan: %d prefix(es) advertised, %d refused", len(d.exposures),
                     len(d.refusals))
            for refusal in d.refusals:
                log.warning("refused %s (port %s): %s", refusal.what, refusal.port, refusal.why)


def _ssl_files(settings: Settings) -> SslFiles | None:
    ovn = settings.ovn
    if ovn.ssl_private_key is None or ovn.ssl_certificate is None or ovn.ssl_ca_cert is None:
        return None      # config.py accepts the three together or not at all
    return SslFiles(Path(str(ovn.ssl_private_key)), Path(str(ovn.ssl_certificate)),
                    Path(str(ovn.ssl_ca_cert)))


def run(settings: Settings) -> int:
    logging.basicConfig(level=settings.log_level.value.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    status = Status()
    loops: list[Loop] = []

    def mark(trigger: Trigger) -> None:
        for loop in loops:
            loop.mark(trigger)

    bridges = [b.name for b in settings.bridges]
    vtysh = frr.Vtysh(settings.frr.vtysh_argv(), vty_dir=settings.frr.vty_dir())

    def sync_frr(wanted: ExposureConfig) -> list[str]:
        return frr.reconcile(vtysh, wanted)

    reader = Reader(ovs_socket=str(settings.ovs.db_socket),
                    on_change=lambda: mark(Trigger.OVN), sb_remote=settings.ovn.sb_remote,
                    chassis=settings.node.chassis, hostname=settings.node.hostname,
                    ssl=_ssl_files(settings))
    kernel = KernelDriver()
    probe_kernel = KernelDriver()       # the drift probe's: its own netlink socket
    ovs_target = OvsTarget(rundir=Path(str(settings.ovs.db_socket)).parent)
    flows = FlowDriver(ovs_target)
    reconciler = Reconciler(settings, reader, kernel=kernel, flows=flows, frr=sync_frr)
    reporter, collector = _Reporter(status), Collector()

    def on_outcome(outcome: Outcome) -> None:
        reporter(outcome)
        collector.after(outcome)

    loop = Loop(reconciler, on_outcome, debounce_s=settings.reconcile.debounce_ms / 1000,
                resync_s=settings.reconcile.resync_s)
    loops.append(loop)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping (nothing is withdrawn)", signum)
        loop.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server = None
    if settings.status.enabled:
        server = serve(status, str(settings.status.host), settings.status.port)
        log.info("status on http://%s:%d/status", settings.status.host, settings.status.port)
    watch = KernelWatch(bridges, lambda: mark(Trigger.KERNEL), on_touches=kernel.note).start()
    probe = DriftProbe([
        flows_check(FlowDriver(ovs_target), bridges, lambda: reconciler.desired),
        frr_check(vtysh, lambda: reconciler.frr_wanted),
        kernel_check(probe_kernel.read, settings.reconcile.resync_s,
                     lambda: reconciler.kernel_applied, lambda: reconciler.desired),
    ], mark).start()
    collector.start()
    reader.start()
    log.info("agent started: bridges %s", ", ".join(bridges))
    try:
        loop.run()
    finally:
        probe.close()
        probe_kernel.close()
        watch.close()
        reader.close()
        kernel.close()
        if server is not None:
            server.shutdown()
    return 0


def main(config_path: str) -> int:
    from ovn_fabric.config import ConfigError, load  # noqa: PLC0415

    try:
        settings = load(config_path)
    except ConfigError as exc:
        print(f"ovn-fabric agent: {exc}", file=sys.stderr)
        return 2
    return run(settings)
