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

The watch decodes events itself (dataplane/_rtnl.py: struct, only the fields it needs, ~3 us a
message) rather than with pyroute2 (~50 us): a pass that programs 3,000 workloads echoes 6,000
events, and decoding them competed for the interpreter with the pass itself and overflowed the
socket's buffer, which forces a full read-back.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from ipaddress import IPv4Address, IPv6Address, ip_network

from pyroute2.netlink.rtnl import (
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV4_ROUTE,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_IPV6_ROUTE,
    RTMGRP_LINK,
    RTMGRP_NEIGH,
)

from ovn_fabric.dataplane import _rtnl
from ovn_fabric.dataplane.kernel_cache import Touch, TouchKind
from ovn_fabric.model import DRAINING_METRIC, RTPROT_OVN_FABRIC, IPAddress, IPNetwork

log = logging.getLogger(__name__)

GROUPS = (RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE
          | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)
RTPROT_BOOT, RTPROT_STATIC = 3, 4
_NUD_NOARP, _NUD_PERMANENT, _NTF_EXT_LEARNED = 0x40, 0x80, 0x10
_BUFFER = 1 << 18


def touch_of(msg_type: int, body: memoryview, bridges: frozenset[str],
             names: dict[int, str]) -> Touch | None:
    """What one netlink event (its type and body) can mean for our state (None: nothing).
    Pure; also keeps `names` (ifindex -> name) current from link events."""
    judge = _JUDGES.get(msg_type)
    return judge(msg_type, body, bridges, names) if judge is not None else None


def _link(msg_type: int, body: memoryview, bridges: frozenset[str],
          names: dict[int, str]) -> Touch | None:
    index, name, _ = _rtnl.decode_link(body)
    if msg_type == _rtnl.RTM_NEWLINK:
        names[index] = name
    else:
        names.pop(index, None)
    return Touch(TouchKind.BRIDGE_CHANGED, dev=name) if name in bridges else None


def _route_deleted(_type: int, body: memoryview, _bridges: frozenset[str],
                   _names: dict[int, str]) -> Touch | None:
    record = _rtnl.decode_route(body)
    if record.protocol != RTPROT_OVN_FABRIC:
        return None
    return Touch(TouchKind.ROUTE_DELETED, dst=_route_dst(record),
                 draining=record.priority == DRAINING_METRIC)


def _route_set(_type: int, body: memoryview, _bridges: frozenset[str],
               _names: dict[int, str]) -> Touch | None:
    record = _rtnl.decode_route(body)
    host_len = 32 if record.family == socket.AF_INET else 128
    if record.protocol not in (RTPROT_BOOT, RTPROT_STATIC) or record.dst_len != host_len:
        return None
    return Touch(TouchKind.ROUTE_SET_BY_OTHER, dst=_route_dst(record))


def _neighbour_deleted(_type: int, body: memoryview, _bridges: frozenset[str],
                       names: dict[int, str]) -> Touch | None:
    record = _rtnl.decode_neigh(body)
    if record.protocol != RTPROT_OVN_FABRIC:
        return None
    return Touch(TouchKind.NEIGHBOUR_DELETED, ip=_address(record.dst),
                 dev=names.get(record.ifindex, ""))


def _neighbour_set(_type: int, body: memoryview, bridges: frozenset[str],
                   names: dict[int, str]) -> Touch | None:
    record = _rtnl.decode_neigh(body)
    dev = names.get(record.ifindex)
    if dev not in bridges or record.protocol == RTPROT_OVN_FABRIC or dev is None:
        return None
    static = bool(record.state & (_NUD_NOARP | _NUD_PERMANENT)
                  or record.flags & _NTF_EXT_LEARNED)
    return Touch(TouchKind.NEIGHBOUR_SET_BY_OTHER, ip=_address(record.dst), dev=dev,
                 static=static)


def _address_deleted(_type: int, body: memoryview, bridges: frozenset[str],
                     names: dict[int, str]) -> Touch | None:
    dev = names.get(_rtnl.decode_addr(body).index)
    return Touch(TouchKind.ADDRESS_DELETED, dev=dev) if dev in bridges and dev else None


_JUDGES: dict[int, Callable[[int, memoryview, frozenset[str], dict[int, str]],
                            Touch | None]] = {
    _rtnl.RTM_NEWLINK: _link,
    _rtnl.RTM_DELLINK: _link,
    _rtnl.RTM_DELROUTE: _route_deleted,
    _rtnl.RTM_NEWROUTE: _route_set,
    _rtnl.RTM_DELNEIGH: _neighbour_deleted,
    _rtnl.RTM_NEWNEIGH: _neighbour_set,
    _rtnl.RTM_DELADDR: _address_deleted,
}


def _address(raw: bytes | None) -> IPAddress | None:
    if raw is None or len(raw) not in (4, 16):
        return None
    return IPv4Address(raw) if len(raw) == 4 else IPv6Address(raw)


def _route_dst(record: _rtnl.RouteRecord) -> IPNetwork | None:
    """The destination of a route event (None when it cannot be read: unknown, which the
    driver treats as a contradiction)."""
    zero = bytes(4 if record.family == socket.AF_INET else 16)
    address = _address(record.dst if record.dst is not None else zero)
    try:
        return ip_network((address, record.dst_len)) if address is not None else None
    except ValueError:
        return None


class KernelWatch:
    """A daemon thread listening to rtnetlink in the network namespace of the thread that
    calls `start` (a new thread inherits it; the socket is opened by the watch's thread).
    `close()` may be called from any thread."""

    def __init__(self, bridges: Iterable[str], on_touch: Callable[[], None],
                 on_touches: Callable[[Sequence[Touch]], None] | None = None) -> None:
        self._bridges = frozenset(bridges)
        self._on_touch = on_touch
        self._on_touches = on_touches
        self._sock: socket.socket | None = None
        self._names: dict[int, str] = {}
        self._ready = threading.Event()
        self._error: OSError | None = None
        self._closed = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="kernel-watch", daemon=True)

    def start(self, timeout: float = 10.0) -> KernelWatch:
        """Start the thread; return once it listens (events from then on are seen)."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the kernel watch did not start listening within {timeout} s")
        if self._error is not None:
            raise self._error
        if self._sock is None:   # the thread died of something else (its traceback is printed)
            raise RuntimeError("the kernel watch could not open its netlink socket")
        return self

    def _open(self) -> socket.socket:
        sock = _rtnl.open_listener(GROUPS)
        try:
            links = _rtnl.RtnlSocket()       # subscribed first: no link event is missed
            try:
                bodies = links.dump(_rtnl.RTM_GETLINK, _rtnl.ifinfomsg(0))
            finally:
                links.close()
        except OSError:
            sock.close()
            raise
        self._names = {index: name for index, name, _ in map(_rtnl.decode_link, bodies)}
        return sock

    def _run(self) -> None:
        try:
            sock = self._sock = self._open()
        except OSError as exc:              # handed to start(), raised in the caller
            self._error = exc
            return
        finally:
            self._ready.set()
        buffer = bytearray(_BUFFER)
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            try:
                while not self._closed.is_set():
                    selector.select()
                    if not self._closed.is_set():
                        self._drain(sock, buffer)
            except OSError as exc:
                log.warning("kernel watch stopped reading netlink: %s; the periodic resync "
                            "still repairs drift", exc)
            finally:
                sock.close()

    def _drain(self, sock: socket.socket, buffer: bytearray) -> None:
        """Read every datagram waiting; hand over the touches of all of them at once."""
        touches: list[Touch] = []
        while True:
            try:
                nbytes = sock.recv_into(buffer)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                # The receive buffer overflowed (a burst of thousands of route changes): events
                # were lost, so the kernel must be read back whole. The socket goes on.
                log.info("kernel watch: netlink buffer overflowed, events lost; resyncing the "
                         "kernel")
                touches.append(Touch(TouchKind.EVENTS_LOST))
                continue
            view = memoryview(buffer)[:nbytes]
            # every message is looked at: link events keep the name table current
            for msg_type, _, _, body in _rtnl.split_messages(view):
                touch = touch_of(msg_type, body, self._bridges, self._names)
                if touch is not None:
                    touches.append(touch)
        if touches:
            self._report(touches)

    def _report(self, touches: Sequence[Touch]) -> None:
        """Hand the touches over first, then mark: the pass the mark starts must see them."""
        if self._on_touches is not None:
            self._on_touches(touches)
        self._on_touch()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        os.write(self._wake_w, b"x")
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
