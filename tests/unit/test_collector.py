"""The agent's garbage-collection policy: no automatic collection in the middle of a pass,
cycles freed at resyncs, and frozen cycles freed by the periodic full collection."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from ovn_fabric.agent.collector import FULL_EVERY, Collector
from ovn_fabric.agent.reconcile import Outcome, Trigger


@pytest.fixture
def collector() -> Iterator[Collector]:
    was_enabled = gc.isenabled()
    c = Collector()
    c.start()
    try:
        yield c
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> tuple[Node, weakref.ref[Node]]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


def test_a_cycle_waits_for_the_next_resync_not_for_a_threshold(collector: Collector) -> None:
    collector.after(Outcome(Trigger.RESYNC))        # the first, full collection
    holder, alive = cycle()
    del holder
    for _ in range(3):
        [Node() for _ in range(10_000)]             # what would trigger the collector
        collector.after(Outcome(Trigger.OVN))
    assert alive() is not None
    collector.after(Outcome(Trigger.RESYNC))
    assert alive() is None


def test_a_cycle_that_dies_after_being_frozen_is_freed_by_the_full_collection(
        collector: Collector) -> None:
    collector.after(Outcome(Trigger.RESYNC))        # full: the count starts here
    holder, alive = cycle()
    collector.after(Outcome(Trigger.RESYNC))        # still referenced: frozen
    del holder
    for _ in range(FULL_EVERY - 2):
        collector.after(Outcome(Trigger.RESYNC))    # young collections skip frozen objects
    assert alive() is not None
    collector.after(Outcome(Trigger.RESYNC))        # the FULL_EVERY-th: everything
    assert alive() is None
