"""Processes that live in a lab's namespaces: find them, and end them.

The lab never tracks pids of its own: whatever runs inside one of its namespaces is its own, and
`ip netns pids` finds exactly those, so nothing outside the lab is ever signalled.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

from ovn_fabric.lab.sh import run


def netns_pids(netns: str) -> list[int]:
    """The processes inside a namespace (none if it does not exist)."""
    proc = run(["ip", "netns", "pids", netns], check=False)
    return [int(p) for p in proc.stdout.split()]


def alive(pid: int) -> bool:
    """A pid that exists and is not a zombie (a detached daemon stays a zombie for a while)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def terminate(pids: Iterable[int], *, grace: float = 3.0) -> None:
    """SIGTERM; SIGKILL whatever is still alive after `grace` seconds; return once all are
    gone (or after 5 s more: a process stuck in the kernel is beyond our reach)."""
    pending = list(pids)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        for pid in pending:
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(alive(p) for p in pending):
            time.sleep(0.02)
        pending = [p for p in pending if alive(p)]
        if not pending:
            return
