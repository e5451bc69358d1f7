"""When Python's cyclic garbage collector runs in the agent: at resyncs, not during a bind.

The agent keeps every row of its node in memory (at 3,000 ports, some hundreds of thousands of
objects) and makes almost no cyclic garbage: its rows, views and plans are freed by reference
counting. The automatic collector nevertheless walks all of them whenever enough new objects
have survived, which a bind of 3,000 ports does several times: six full collections of 40-114
ms each, 0.43 s in all, during one such bind, and 3-9 ms for a young-generation collection in
the middle of a single port's pass (measured with gc.callbacks in the lab, PERFORMANCE.md).

So the automatic collector is off, and the loop collects after a RESYNC pass (every `resync_s`,
60 s by default), a pass that is slow anyway:
- every time, the objects made since the last resync are collected, and what survives is frozen
  (`gc.freeze`: moved where collections no longer walk it), so that this collection costs what
  is new, not what the node carries;
- every FULL_EVERY resyncs, everything is unfrozen and collected once: a cycle that became
  garbage after it was frozen is freed then, so nothing leaks for longer than that.
Reference counting frees everything else at once, as always; only cycles wait for a resync.
"""

from __future__ import annotations

import gc
import logging
import time

from ovn_fabric.agent.reconcile import Outcome, Trigger

log = logging.getLogger(__name__)

FULL_EVERY = 10     # resyncs between two collections of everything, frozen objects included


class Collector:
    def __init__(self) -> None:
        self._resyncs = 0

    def start(self) -> None:
        gc.disable()

    def after(self, outcome: Outcome) -> None:
        if not outcome.triggers & Trigger.RESYNC:
            return
        start = time.monotonic()
        full = self._resyncs % FULL_EVERY == 0
        if full:
            gc.unfreeze()
        found = gc.collect()
        gc.freeze()
        self._resyncs += 1
        log.debug("%s garbage collection: %d object(s) freed in %.3f s",
                  "full" if full else "young", found, time.monotonic() - start)
