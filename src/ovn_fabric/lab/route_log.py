"""A timed log of where a device's kernel routes some host addresses, from rtnetlink events.

    log = RouteLog(lab, "spine1", ["172.24.4.10", "2001:db8:24:4::a"])
    with log:
        ...                                 # migrate, fail over, ...
    log.changes("172.24.4.10")              # [(t, frozenset({"leaf1a", "leaf1b"})), ...]

A listener thread holds a NETLINK_ROUTE socket made inside the device's namespace (a socket
stays bound to the namespace it was made in, see dataplane/_netns.py) and subscribed to IPv4
and IPv6 route events. Each change of a watched address's route in the main table is recorded
with the `time.monotonic()` of its arrival, as the set of its next hops' interface names (empty
when the route is gone). CLOCK_MONOTONIC is the machine's one clock, so these times compare
with the caller's. Unlike polling `ip route`, no change is missed between two polls and no
process spawn delays the time.

Only routes with their next hops inline (RTA_OIF or RTA_MULTIPATH) are understood: the lab's
FRR runs with `no zebra nexthop kernel enable` (LAB_NOTES.md), so zebra installs no nexthop
objects. A route that names a nexthop object is recorded with the interface `nhid`.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import threading
import time
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address, ip_address
from types import TracebackType

from ovn_fabric.dataplane import _rtnl
from ovn_fabric.dataplane._netns import run_in_netns
from ovn_fabric.lab.lab import Lab
from ovn_fabric.lab.sh import output

RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_ROUTE = 0x400
RTA_NH_ID = 30
_RTNEXTHOP = struct.Struct("=HBBi")      # rtnh_len, rtnh_flags, rtnh_hops, rtnh_ifindex
_NLMSGHDR = struct.Struct("=IHHII")
_RCVBUF = 8 << 20
REPLACE_S = 0.005

Address = IPv4Address | IPv6Address
Change = tuple[float, frozenset[str]]


def _multipath_ifindexes(data: bytes) -> list[int]:
    found, offset = [], 0
    while offset + _RTNEXTHOP.size <= len(data):
        length, _, _, ifindex = _RTNEXTHOP.unpack_from(data, offset)
        if length < _RTNEXTHOP.size:
            break
        found.append(ifindex)
        offset += (length + 3) & ~3
    return found


def _open(netns: str) -> socket.socket:
    def make() -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        sock.setsockopt(socket.SOL_SOCKET, 33, _RCVBUF)      # SO_RCVBUFFORCE
        sock.bind((0, RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE))
        return sock
    return run_in_netns(netns, make)


class RouteLog:
    """Where `device` routes each of `addresses` over time (module docstring)."""

    def __init__(self, lab: Lab, device: str, addresses: Iterable[str]) -> None:
        self.device = device
        self._netns = lab.netns(device)
        self._watched: dict[Address, str] = {ip_address(a): a for a in addresses}
        self._log: dict[str, list[Change]] = {a: [] for a in self._watched.values()}
        self._names: dict[int, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---

    def start(self) -> None:
        self._sock = _open(self._netns)
        self._refresh_names()
        self._thread = threading.Thread(target=self._listen, name=f"routes-{self.device}",
                                        daemon=True)
        self._thread.start()
        for address in self._watched.values():     # the state before the first event
            self._record(time.monotonic(), address, self._current(address))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> RouteLog:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # --- reading ---

    def changes(self, address: str) -> list[Change]:
        """Every distinct next-hop set of `address`'s route, with when it began. A route that
        is gone for less than REPLACE_S and back is a replace (the kernel notifies an IPv6
        replace as a delete and an add), not a withdrawal: it is left out."""
        with self._lock:
            log = list(self._log[address])
        kept: list[Change] = []
        for i, (t, devs) in enumerate(log):
            if not devs and i + 1 < len(log) and log[i + 1][0] - t < REPLACE_S:
                continue
            if not kept or kept[-1][1] != devs:
                kept.append((t, devs))
        return kept

    def first(self, address: str, predicate: str | frozenset[str], *,
              since: float = 0.0) -> float | None:
        """When the route of `address` first had exactly the interfaces `predicate` (a set), or
        first included the interface `predicate` (a name), at or after `since`."""
        for t, devs in self.changes(address):
            if t < since:
                continue
            if devs == predicate if isinstance(predicate, frozenset) else predicate in devs:
                return t
        return None

    # --- internals ---

    def _refresh_names(self) -> None:
        links = json.loads(output(["ip", "-n", self._netns, "-j", "link", "show"]))
        self._names = {int(link["ifindex"]): str(link["ifname"]) for link in links}

    def _name(self, ifindex: int) -> str:
        if ifindex not in self._names:
            self._refresh_names()
        return self._names.get(ifindex, f"if{ifindex}")

    def _current(self, address: str) -> frozenset[str]:
        family = "-6" if ":" in address else "-4"
        routes = json.loads(output(["ip", "-n", self._netns, family, "-j", "route", "show",
                                    "exact", address]))
        devs: set[str] = set()
        for route in routes:
            for hop in route.get("nexthops", [route]):
                if "dev" in hop:
                    devs.add(str(hop["dev"]))
        return frozenset(devs)

    def _record(self, t: float, address: str, devs: frozenset[str]) -> None:
        with self._lock:
            log = self._log[address]
            if not log or log[-1][1] != devs:
                log.append((t, devs))

    def _on_route(self, t: float, kind: int, body: memoryview) -> None:
        rec = _rtnl.decode_route(body)
        if rec.table != _rtnl.RT_TABLE_MAIN or rec.dst is None:
            return
        if rec.dst_len != len(rec.dst) * 8:
            return
        address = self._watched.get(ip_address(rec.dst))
        if address is None:
            return
        if kind == _rtnl.RTM_DELROUTE:
            self._record(t, address, frozenset())
            return
        attrs = _rtnl.parse_attrs(body, 12)        # sizeof(struct rtmsg)
        if _rtnl.RTA_MULTIPATH in attrs:
            ifindexes = _multipath_ifindexes(attrs[_rtnl.RTA_MULTIPATH])
        elif rec.oif is not None:
            ifindexes = [rec.oif]
        else:
            self._record(t, address, frozenset({"nhid"} if RTA_NH_ID in attrs else set()))
            return
        self._record(t, address, frozenset(self._name(i) for i in ifindexes))

    def _listen(self) -> None:
        sock = self._sock
        if sock is None:
            return
        buffer = bytearray(1 << 20)
        while not self._stop.is_set():
            readable, _, _ = select.select([sock], [], [], 0.1)
            if not readable:
                continue
            try:
                nbytes = sock.recv_into(buffer)
            except OSError:
                return
            t = time.monotonic()
            view = memoryview(buffer)[:nbytes]
            offset = 0
            while offset + _NLMSGHDR.size <= nbytes:
                length, kind, _, _, _ = _NLMSGHDR.unpack_from(view, offset)
                if length < _NLMSGHDR.size:
                    break
                if kind in (_rtnl.RTM_NEWROUTE, _rtnl.RTM_DELROUTE):
                    self._on_route(t, kind, view[offset + _NLMSGHDR.size:offset + length])
                offset += (length + 3) & ~3


__all__ = ["RouteLog"]
