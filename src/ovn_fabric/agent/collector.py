"""When Python's cyclic garbage collector runs in the agent: every ten minutes, after a pass, not
in the middle of a bind.

The agent keeps every row of its node in memory (at 3,000 ports, ~0.4 million tracked objects,
most of them the OVSDB IDL's) and makes almost no cyclic garbage: its rows, views and plans are
freed by reference counting. The automatic collector nevertheless walks all of them whenever
enough new objects have survived, which a bind of 3,000 ports does several times: one to three
full collections of 0.1-0.2 s each landed in such a bind (bench.reader_bulk), and young
collections of 3-9 ms in the middle of a single port's pass (gc.callbacks in the lab;
PERFORMANCE.md).

So the automatic collector is off, and the loop collects everything once every COLLECT_EVERY_S,
right after a pass: one pause of the order of a full collection (0.1-0.3 s at 3,000 ports) every
ten minutes, instead of several per bulk change. Only cycles wait for it (an exception kept with
its traceback, say); everything else is freed at once, as always.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

from ovn_fabric.agent.reconcile import Outcome

log = logging.getLogger(__name__)

COLLECT_EVERY_S = 600.0


class Collector:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next = clock() + COLLECT_EVERY_S

    def start(self) -> None:
        gc.disable()

    def after(self, _outcome: Outcome) -> None:
        now = self._clock()
        if now < self._next:
            return
        self._next = now + COLLECT_EVERY_S
        found = gc.collect()
        log.info("garbage collection: %d object(s) freed in %.3f s", found,
                 self._clock() - now)
