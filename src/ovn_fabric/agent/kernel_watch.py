"""Netlink watch: notice within milliseconds when our kernel state is touched from outside.

Re-reading routes and neighbours costs ~80 ms per 6,000 objects, too much to poll every half
second. The kernel announces every change instead, so the watch listens and marks the loop dirty
only for events that can mean our state was touched:

- a route or neighbour entry carrying our protocol (247) was deleted;
- a host route of another origin (`ip route replace` by hand: proto boot or static) appeared,
  which may have replaced ours. BGP's own routes (proto bgp) and the kernel's never mark;
- a neighbour entry on a managed bridge appeared without our protocol (ours overwritten);
- an address of a managed bridge was deleted, or a managed bridge changed, vanished or appeared
  (ovs-vswitchd recreates its taps when it restarts).

Our own changes echo back as events. That costs one more pass, which finds nothing to do.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import (
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV4_ROUTE,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_IPV6_ROUTE,
    RTMGRP_LINK,
    RTMGRP_NEIGH,
)

from ovn_fabric.model import RTPROT_OVN_FABRIC

log = logging.getLogger(__name__)

GROUPS = (RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE
          | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)
RTPROT_BOOT, RTPROT_STATIC = 3, 4


def touches_our_state(msg: Any, bridges: frozenset[str], names: dict[int, str]) -> bool:
    """Whether one netlink event can mean our state was changed from outside. Pure; also keeps
    `names` (ifindex -> name) current from link events."""
    event = msg["event"]
    if event in ("RTM_NEWLINK", "RTM_DELLINK"):
        name = msg.get_attr("IFLA_IFNAME")
        if event == "RTM_NEWLINK":
            names[msg["index"]] = name
        else:
            names.pop(msg["index"], None)
        return name in bridges
    if event == "RTM_DELROUTE":
        return bool(msg["proto"] == RTPROT_OVN_FABRIC)
    if event == "RTM_NEWROUTE":
        host_len = 32 if msg["family"] == 2 else 128
        return bool(msg["proto"] in (RTPROT_BOOT, RTPROT_STATIC) and msg["dst_len"] == host_len)
    if event in ("RTM_NEWNEIGH", "RTM_DELNEIGH"):
        ours = msg.get_attr("NDA_PROTOCOL") == RTPROT_OVN_FABRIC
        on_bridge = names.get(msg["ifindex"]) in bridges
        return ours if event == "RTM_DELNEIGH" else (on_bridge and not ours)
    if event == "RTM_DELADDR":
        return names.get(msg["index"]) in bridges
    return False


class KernelWatch:
    """A daemon thread listening to rtnetlink in the current network namespace.

    The socket is created, bound and read by the watch's own thread: pyroute2 (0.9) keeps its
    message queue and event loop per thread, so a socket made in one thread and read in another
    never returns an event. `close()` may be called from any thread (pyroute2 posts its
    terminator to the owner's queue thread-safely)."""

    def __init__(self, bridges: Iterable[str], on_touch: Callable[[], None]) -> None:
        self._bridges = frozenset(bridges)
        self._on_touch = on_touch
        self._ipr: Any = None
        self._names: dict[int, str] = {}
        self._ready = threading.Event()
        self._error: OSError | NetlinkError | None = None
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kernel-watch", daemon=True)

    def start(self, timeout: float = 10.0) -> KernelWatch:
        """Start the thread; return once it listens (events from then on are seen)."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the kernel watch did not start listening within {timeout} s")
        if self._error is not None:
            raise self._error
        if self._ipr is None:   # the thread died of something else (its traceback is printed)
            raise RuntimeError("the kernel watch could not open its netlink socket")
        return self

    def _open(self) -> Any:
        ipr = IPRoute()
        ipr.bind(groups=GROUPS)
        self._names = {link["index"]: link.get_attr("IFLA_IFNAME")
                       for link in ipr.get_links()}
        return ipr

    def _run(self) -> None:
        try:
            ipr = self._ipr = self._open()
        except (OSError, NetlinkError) as exc:  # handed to start(), raised in the caller
            self._error = exc
            return
        finally:
            self._ready.set()
        while not self._closed.is_set():
            try:
                messages = ipr.get()
            except OSError as exc:
                if self._closed.is_set():
                    return
                if exc.errno != errno.ENOBUFS:
                    log.warning("kernel watch stopped reading netlink: %s; the periodic "
                                "resync still repairs drift", exc)
                    return
                # The receive buffer overflowed (a burst of thousands of route changes): events
                # were lost, so the kernel must be read back whole; and pyroute2 keeps raising
                # ENOBUFS on this socket forever, so it is replaced.
                log.info("kernel watch: netlink buffer overflowed, events lost; reopening and "
                         "resyncing the kernel")
                self._on_touch()
                with suppress(OSError):     # pyroute2's close() re-raises the stored ENOBUFS
                    ipr.close()
                try:
                    ipr = self._ipr = self._open()
                except (OSError, NetlinkError) as reopen:
                    log.warning("kernel watch could not reopen netlink: %s; the periodic "
                                "resync still repairs drift", reopen)
                    return
                continue
            # every message is looked at (not any()): link events keep the name table current
            touched = [touches_our_state(m, self._bridges, self._names) for m in messages]
            if any(touched):
                self._on_touch()

    def close(self) -> None:
        self._closed.set()
        if self._ipr is not None:
            with suppress(OSError):
                self._ipr.close()
        self._thread.join(timeout=5)
