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

Each such event is also handed over as a `Touch` (`on_touches`, before the loop is marked): the
kernel driver checks it against what it believes the kernel holds, and reads everything back
only when the event contradicts that belief (dataplane/kernel_cache.py). An echo of the
driver's own change agrees with it and costs no read-back.
"""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from ipaddress import IPv6Address, ip_address, ip_network
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

from ovn_fabric.dataplane.kernel_cache import Touch, TouchKind
from ovn_fabric.model import RTPROT_OVN_FABRIC, IPAddress, IPNetwork

log = logging.getLogger(__name__)

GROUPS = (RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE
          | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)
RTPROT_BOOT, RTPROT_STATIC = 3, 4
_NUD_NOARP, _NUD_PERMANENT, _NTF_EXT_LEARNED = 0x40, 0x80, 0x10
_AF_INET = 2


def touches_our_state(msg: Any, bridges: frozenset[str], names: dict[int, str]) -> bool:
    """Whether one netlink event can mean our state was changed from outside. Pure; also keeps
    `names` (ifindex -> name) current from link events."""
    return touch_of(msg, bridges, names) is not None


def touch_of(msg: Any, bridges: frozenset[str], names: dict[int, str]) -> Touch | None:
    """What one netlink event can mean for our state (None: nothing). Pure; also keeps `names`
    (ifindex -> name) current from link events."""
    judge = _JUDGES.get(msg["event"])
    return judge(msg, bridges, names) if judge is not None else None


def _link(msg: Any, bridges: frozenset[str], names: dict[int, str]) -> Touch | None:
    name = msg.get_attr("IFLA_IFNAME")
    if msg["event"] == "RTM_NEWLINK":
        names[msg["index"]] = name
    else:
        names.pop(msg["index"], None)
    return Touch(TouchKind.BRIDGE_CHANGED, dev=name) if name in bridges else None


def _route_deleted(msg: Any, _bridges: frozenset[str], _names: dict[int, str]) -> Touch | None:
    if msg["proto"] != RTPROT_OVN_FABRIC:
        return None
    return Touch(TouchKind.ROUTE_DELETED, dst=_route_dst(msg))


def _route_set(msg: Any, _bridges: frozenset[str], _names: dict[int, str]) -> Touch | None:
    host_len = 32 if msg["family"] == _AF_INET else 128
    if msg["proto"] not in (RTPROT_BOOT, RTPROT_STATIC) or msg["dst_len"] != host_len:
        return None
    return Touch(TouchKind.ROUTE_SET_BY_OTHER, dst=_route_dst(msg))


def _neighbour_deleted(msg: Any, _bridges: frozenset[str], names: dict[int, str]
                       ) -> Touch | None:
    if msg.get_attr("NDA_PROTOCOL") != RTPROT_OVN_FABRIC:
        return None
    return Touch(TouchKind.NEIGHBOUR_DELETED, ip=_neigh_ip(msg),
                 dev=names.get(msg["ifindex"]) or "")


def _neighbour_set(msg: Any, bridges: frozenset[str], names: dict[int, str]) -> Touch | None:
    dev = names.get(msg["ifindex"])
    if dev not in bridges or msg.get_attr("NDA_PROTOCOL") == RTPROT_OVN_FABRIC:
        return None
    static = bool(msg["state"] & (_NUD_NOARP | _NUD_PERMANENT)
                  or msg["flags"] & _NTF_EXT_LEARNED)
    return Touch(TouchKind.NEIGHBOUR_SET_BY_OTHER, ip=_neigh_ip(msg), dev=dev or "",
                 static=static)


def _address_deleted(msg: Any, bridges: frozenset[str], names: dict[int, str]) -> Touch | None:
    dev = names.get(msg["index"])
    return Touch(TouchKind.ADDRESS_DELETED, dev=dev) if dev in bridges and dev else None


_JUDGES: dict[str, Callable[[Any, frozenset[str], dict[int, str]], Touch | None]] = {
    "RTM_NEWLINK": _link,
    "RTM_DELLINK": _link,
    "RTM_DELROUTE": _route_deleted,
    "RTM_NEWROUTE": _route_set,
    "RTM_DELNEIGH": _neighbour_deleted,
    "RTM_NEWNEIGH": _neighbour_set,
    "RTM_DELADDR": _address_deleted,
}


def _route_dst(msg: Any) -> IPNetwork | None:
    """The destination of a route event (None when it cannot be read: unknown, which the
    driver treats as a contradiction)."""
    try:
        dst = msg.get_attr("RTA_DST")
        zero = 0 if msg["family"] == _AF_INET else IPv6Address(0)
        return ip_network((ip_address(dst if dst is not None else zero), msg["dst_len"]),
                          strict=False)
    except (TypeError, ValueError):
        return None


def _neigh_ip(msg: Any) -> IPAddress | None:
    try:
        return ip_address(msg.get_attr("NDA_DST"))
    except (TypeError, ValueError):
        return None


class KernelWatch:
    """A daemon thread listening to rtnetlink in the current network namespace.

    The socket is created, bound and read by the watch's own thread: pyroute2 (0.9) keeps its
    message queue and event loop per thread, so a socket made in one thread and read in another
    never returns an event. `close()` may be called from any thread (pyroute2 posts its
    terminator to the owner's queue thread-safely)."""

    def __init__(self, bridges: Iterable[str], on_touch: Callable[[], None],
                 on_touches: Callable[[Sequence[Touch]], None] | None = None) -> None:
        self._bridges = frozenset(bridges)
        self._on_touch = on_touch
        self._on_touches = on_touches
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
                self._report([Touch(TouchKind.EVENTS_LOST)])
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
            touches = [t for m in messages
                       if (t := touch_of(m, self._bridges, self._names)) is not None]
            if touches:
                self._report(touches)

    def _report(self, touches: Sequence[Touch]) -> None:
        """Hand the touches over first, then mark: the pass the mark starts must see them."""
        if self._on_touches is not None:
            self._on_touches(touches)
        self._on_touch()

    def close(self) -> None:
        self._closed.set()
        if self._ipr is not None:
            with suppress(OSError):
                self._ipr.close()
        self._thread.join(timeout=5)
