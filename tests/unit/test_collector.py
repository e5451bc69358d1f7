"""The agent's garbage-collection policy: no automatic collection, cycles freed by the collection
that follows a pass every COLLECT_EVERY_S."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from ovn_fabric.agent.collector import COLLECT_EVERY_S, Collector
from ovn_fabric.agent.reconcile import Outcome, Trigger


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def collector(clock: ManualClock) -> Iterator[Collector]:
    was_enabled = gc.isenabled()
    c = Collector(clock)
    c.start()
    try:
        yield c
    finally:
        if was_enabled:
            gc.enable()


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def garbage_cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_a_cycle_waits_for_the_periodic_collection_not_for_a_threshold(
        collector: Collector, clock: ManualClock) -> None:
    alive = garbage_cycle()
    for _ in range(3):
        [Node() for _ in range(10_000)]             # what would trigger the collector
        clock.now += COLLECT_EVERY_S / 4
        collector.after(Outcome(Trigger.OVN))
    assert alive() is not None
    clock.now += COLLECT_EVERY_S / 4
    collector.after(Outcome(Trigger.OVN))           # the first pass after the period
    assert alive() is None
    again = garbage_cycle()
    clock.now += 1
    collector.after(Outcome(Trigger.OVN))           # the period starts again
    assert again() is not None
