"""Running a function inside a named network namespace without moving the process.

`setns(2)` with CLONE_NEWNET changes the namespace of the calling *thread* only. So the function
runs in a short-lived thread that enters the namespace first and ends when the function returns:
the rest of the process (the agent's other threads, an asyncio loop) never changes namespace, and
no thread is left behind in it. Whatever the function creates there stays bound to the namespace
after the thread ends: a netlink socket talks to that namespace's kernel state for its lifetime,
and a /proc/sys/net file opened there reads and writes that namespace's sysctl.

This is preferred over pyroute2's `IPRoute(netns=...)`, which forks a helper process per socket
and by default *creates* a namespace that does not exist (flags=O_CREAT): a typo would silently
program an empty namespace. Here a missing namespace is a clear NamespaceNotFoundError.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

NETNS_RUN_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000


class NamespaceNotFoundError(FileNotFoundError):
    """The named network namespace does not exist (no /run/netns/<name>)."""


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def run_in_netns(netns: str | None, func: Callable[[], T]) -> T:
    """Call `func` inside network namespace `netns` (the caller's own when None) and return
    its result, or raise what it raised."""
    if netns is None:
        return func()
    path = NETNS_RUN_DIR / netns
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise NamespaceNotFoundError(errno.ENOENT, f"network namespace {netns!r} does not exist",
                                str(path)) from exc

    def body() -> T:
        _setns(fd)
        return func()

    try:
        # One fresh worker thread per call: it enters the namespace, runs func and ends, so
        # no thread of this process lingers in the namespace. result() re-raises func's error.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"netns-{netns}") as pool:
            return pool.submit(body).result()
    finally:
        os.close(fd)
