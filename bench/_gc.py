"""Time spent in Python's garbage collector, for the benchmarks: a full collection of the
agent's heap at 3,000 ports takes about 0.1 s and lands in whichever step allocated last."""

from __future__ import annotations

import argparse
import gc
import time

GC_CHOICES = ("agent", "default", "off")


def add_gc_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gc", choices=GC_CHOICES, default="agent",
                        help="the collector as the agent sets it (ovn_fabric.agent.collector: "
                             "off, with a full collection every ten minutes), Python's "
                             "default, or off")


def set_collector(choice: str) -> None:
    """Put this process's collector in the state `--gc` chose."""
    if choice == "off":
        gc.disable()
    elif choice == "agent":
        from ovn_fabric.agent.collector import Collector  # noqa: PLC0415  # not in older trees

        Collector().start()


class GcClock:
    """Wall time spent in the garbage collector (every thread) and its collections, by
    generation, through `gc.callbacks`."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1

    def reading(self) -> tuple[float, float, int]:
        """(seconds in all collections, in full ones, how many full ones) so far."""
        return sum(self.seconds), self.seconds[2], self.collections[2]
