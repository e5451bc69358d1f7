"""A fast ping whose losses carry times: which requests went unanswered, and when they were sent.

probe.ping_through says how many replies were lost and the longest gap; telling OVN's part of an
outage from the agent's needs to know *when* the lost requests left, to set them against the
times of route changes (route_log.py) and of the steps of an action (migration.py). `ping -D`
stamps each reply with the wall-clock time it arrived; minus its round-trip time that is the
time its request was sent. A lost request's send time is interpolated between the answered
requests around it (ping sends on a fixed interval). Times are converted to time.monotonic(),
the clock of the rest of the lab's tools.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from dataclasses import dataclass
from types import TracebackType

from ovn_fabric.lab.sh import wait_until

_REPLY = re.compile(r"^\[(\d+\.\d+)\] .*icmp_seq=(\d+) .*time=([\d.]+) ms")


@dataclass(frozen=True, slots=True)
class PingResult:
    address: str
    sent: int
    interval_s: float
    sent_at: dict[int, float]      # icmp_seq -> time.monotonic() the answered request left

    @property
    def received(self) -> int:
        return len(self.sent_at)

    @property
    def lost_seqs(self) -> tuple[int, ...]:
        return tuple(s for s in range(1, self.sent + 1) if s not in self.sent_at)

    @property
    def lost(self) -> int:
        return self.sent - self.received

    @property
    def longest_gap_ms(self) -> float:
        """The longest run of consecutive lost requests, times the interval."""
        longest = run = 0
        for seq in range(1, self.sent + 1):
            run = run + 1 if seq not in self.sent_at else 0
            longest = max(longest, run)
        return longest * self.interval_s * 1000

    def send_time(self, seq: int) -> float:
        """When request `seq` left (measured if answered, else interpolated)."""
        if seq in self.sent_at:
            return self.sent_at[seq]
        before = max((s for s in self.sent_at if s < seq), default=None)
        after = min((s for s in self.sent_at if s > seq), default=None)
        if before is not None:
            return self.sent_at[before] + (seq - before) * self.interval_s
        if after is not None:
            return self.sent_at[after] - (after - seq) * self.interval_s
        raise ValueError(f"no reply at all from {self.address}: no time to interpolate from")

    def lost_between(self, start: float, end: float) -> int:
        """How many lost requests left in [start, end) (monotonic times)."""
        return sum(1 for s in self.lost_seqs if start <= self.send_time(s) < end)


class Pinger:
    """`ping -D -i INTERVAL -c N` from a namespace, in the background.

        with Pinger(netns, address, seconds=8) as ping:
            ping.wait_replies(30)
            ...action...
        ping.result()
    """

    def __init__(self, netns: str, address: str, *, seconds: float,
                 interval_ms: int = 10) -> None:
        self.address = address
        self.interval_s = interval_ms / 1000
        self.count = int(seconds / self.interval_s)
        self._argv = ["ip", "netns", "exec", netns, "ping", "-D", "-n", "-i",
                      str(self.interval_s), "-c", str(self.count), "-W", "1", address]
        self._lines: list[str] = []
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._offset = time.time() - time.monotonic()

    def start(self) -> None:
        self._proc = subprocess.Popen(self._argv, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
        stdout = self._proc.stdout
        if stdout is None:
            raise RuntimeError("ping's output is not a pipe")
        self._reader = threading.Thread(
            target=lambda: self._lines.extend(iter(stdout.readline, "")), daemon=True)
        self._reader.start()

    def replies(self) -> int:
        return sum("icmp_seq=" in line for line in list(self._lines))

    def wait_replies(self, count: int, timeout: float = 5.0) -> None:
        wait_until(lambda: self.replies() >= count, timeout=timeout,
                   what=f"{count} ping replies from {self.address}")

    def result(self, timeout: float | None = None) -> PingResult:
        """Wait for ping to finish and parse what it saw."""
        proc, reader = self._proc, self._reader
        if proc is None or reader is None:
            raise RuntimeError("result() before start()")
        proc.wait(timeout=timeout if timeout is not None else self.count * self.interval_s + 10)
        reader.join(timeout=5)
        sent_at: dict[int, float] = {}
        for line in self._lines:
            match = _REPLY.match(line)
            if match:
                arrived, seq, rtt_ms = float(match[1]), int(match[2]), float(match[3])
                sent_at.setdefault(seq, arrived - rtt_ms / 1000 - self._offset)
        return PingResult(self.address, self.count, self.interval_s, sent_at)

    def stop(self) -> None:
        """Kill ping if it still runs (after a failure: result() is not wanted then)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> Pinger:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is not None:
            self.stop()


__all__ = ["PingResult", "Pinger"]
