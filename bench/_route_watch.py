"""A netlink listener for bench/agent_scale.py: run inside one network namespace, it keeps the set
of host routes (and optionally of neighbour entries) inside some prefixes, and answers "when did
the count reach K" with the CLOCK_MONOTONIC time of the netlink message that made it so.

    ip netns exec NS python -m bench._route_watch --prefix 172.24.0.0/16 [--proto 247] [--neigh]

CLOCK_MONOTONIC is one clock for the whole machine, so the caller compares these times with its
own `time.monotonic()`. Waiting on kernel events rather than polling `ip route` keeps the result
free of process spawn and dump times. Protocol, one JSON object per line:

    stdin   {"id": 1, "kind": "routes"|"neighs", "op": ">="|"<=", "count": K, "timeout": S}
            {"id": 2, "kind": "count"}
    stdout  {"ready": true, "routes": R, "neighs": N}             once, after the first dump
            {"id": 1, "armed": true, "routes": R, "neighs": N}    at once: the wait is set
            {"id": 1, "t": T, "routes": R, "neighs": N, "resyncs": X}    when met (T null: the
                                                                         timeout passed first)
A receive-buffer overrun (ENOBUFS) is repaired by a fresh dump; `resyncs` counts them (a time
given after one is the time of that dump, a little late).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import select
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Any

from ovn_fabric.dataplane import _rtnl

RTMGRP_NEIGH = 0x4
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_ROUTE = 0x400
NEWNEIGH, DELNEIGH = _rtnl.RTM_NEWNEIGH, _rtnl.RTM_DELNEIGH
NEWROUTE, DELROUTE = _rtnl.RTM_NEWROUTE, _rtnl.RTM_DELROUTE
PROTO_OURS = 247                 # the agent's routes and neighbours (RTPROT_OVN_FABRIC)
SO_RCVBUFFORCE = 33
_NLMSGHDR_SIZE = 16
_RCVBUF = 64 << 20


@dataclass(slots=True)
class Wait:
    id: int
    kind: str
    op: str
    count: int
    deadline: float

    def met(self, counts: dict[str, int]) -> bool:
        have = counts[self.kind]
        return have >= self.count if self.op == ">=" else have <= self.count


@dataclass(slots=True)
class State:
    prefixes: tuple[IPv4Network | IPv6Network, ...]
    proto: int | None
    neigh: bool
    routes: set[bytes] = field(default_factory=set)
    neighs: set[tuple[int, bytes]] = field(default_factory=set)
    resyncs: int = 0

    def wanted(self, raw: bytes | None, plen: int) -> bool:
        if raw is None or plen != len(raw) * 8:
            return False
        address = ip_address(raw)
        return any(address in prefix for prefix in self.prefixes)

    def on_route(self, kind: int, body: memoryview) -> None:
        rec = _rtnl.decode_route(body)
        if rec.table != _rtnl.RT_TABLE_MAIN or not self.wanted(rec.dst, rec.dst_len):
            return
        if self.proto is not None and rec.protocol != self.proto:
            return
        assert rec.dst is not None
        if kind == NEWROUTE:
            self.routes.add(rec.dst)
        else:
            self.routes.discard(rec.dst)

    def on_neigh(self, kind: int, body: memoryview) -> None:
        rec = _rtnl.decode_neigh(body)
        if not self.neigh or rec.protocol != PROTO_OURS or not self.wanted(
                rec.dst, 32 if rec.family == socket.AF_INET else 128):
            return
        assert rec.dst is not None
        if kind == NEWNEIGH:
            self.neighs.add((rec.ifindex, rec.dst))
        else:
            self.neighs.discard((rec.ifindex, rec.dst))

    def counts(self) -> dict[str, int]:
        return {"routes": len(self.routes), "neighs": len(self.neighs)}


def _dump(state: State) -> None:
    """Fill the sets from scratch with dumps."""
    state.routes.clear()
    state.neighs.clear()
    sock = _rtnl.RtnlSocket()
    try:
        for family in (socket.AF_INET, socket.AF_INET6):
            request = _rtnl.rtmsg(family, 0, table=_rtnl.RT_TABLE_MAIN, protocol=0, scope=0,
                                  rtype=0)
            for body in sock.dump(_rtnl.RTM_GETROUTE, request):
                state.on_route(NEWROUTE, body)
        if state.neigh:
            for body in sock.dump(_rtnl.RTM_GETNEIGH, _rtnl.ndmsg(socket.AF_UNSPEC, 0, 0)):
                state.on_neigh(NEWNEIGH, body)
    finally:
        sock.close()


def _messages(data: memoryview) -> Iterable[tuple[int, memoryview]]:
    offset = 0
    while offset + _NLMSGHDR_SIZE <= len(data):
        length = int.from_bytes(data[offset:offset + 4], sys.byteorder)
        kind = int.from_bytes(data[offset + 4:offset + 6], sys.byteorder)
        if length < _NLMSGHDR_SIZE:
            return
        yield kind, data[offset + _NLMSGHDR_SIZE:offset + length]
        offset += (length + 3) & ~3


def _say(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _read_netlink(sock: socket.socket, buffer: bytearray, state: State) -> float:
    """Handle every queued datagram; returns the time the last one was received."""
    now = time.monotonic()
    while True:
        try:
            nbytes = sock.recv_into(buffer)
        except BlockingIOError:
            return now
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise
            state.resyncs += 1                  # events were lost: read everything again
            _dump(state)
            now = time.monotonic()
            continue
        now = time.monotonic()
        for kind, body in _messages(memoryview(buffer)[:nbytes]):
            if kind in (NEWROUTE, DELROUTE):
                state.on_route(kind, body)
            elif kind in (NEWNEIGH, DELNEIGH):
                state.on_neigh(kind, body)


def _request(line: bytes, state: State) -> Wait | None:
    request = json.loads(line)
    if request["kind"] == "count":
        _say({"id": request["id"], **state.counts(), "resyncs": state.resyncs})
        return None
    _say({"id": request["id"], "armed": True, **state.counts()})
    return Wait(request["id"], request["kind"], request["op"], request["count"],
                time.monotonic() + request["timeout"])


def serve(state: State) -> None:
    groups = RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE | (RTMGRP_NEIGH if state.neigh else 0)
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, _RCVBUF)
    sock.bind((0, groups))
    sock.setblocking(False)
    _dump(state)                     # after bind: no event between the dump and the listening
    _say({"ready": True, **state.counts()})
    buffer = bytearray(1 << 20)
    waits: list[Wait] = []
    pending = b""
    stdin = sys.stdin.fileno()
    while True:
        timeout = min((w.deadline for w in waits), default=time.monotonic() + 60)
        readable, _, _ = select.select([sock, stdin], [], [],
                                       max(0.0, timeout - time.monotonic()))
        now = time.monotonic()
        if sock in readable:
            now = _read_netlink(sock, buffer, state)
            waits = _settle(waits, state, now)
        if stdin in readable:
            chunk = os.read(stdin, 65536)
            if not chunk:
                return
            *lines, pending = (pending + chunk).split(b"\n")
            waits += [w for w in (_request(line, state) for line in lines) if w is not None]
        waits = _settle(waits, state, now)


def _settle(waits: list[Wait], state: State, now: float) -> list[Wait]:
    counts = state.counts()
    left = []
    for wait in waits:
        if wait.met(counts):
            _say({"id": wait.id, "t": now, **counts, "resyncs": state.resyncs})
        elif time.monotonic() >= wait.deadline:
            _say({"id": wait.id, "t": None, **counts, "resyncs": state.resyncs})
        else:
            left.append(wait)
    return left


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prefix", action="append", required=True, type=ip_network)
    parser.add_argument("--proto", type=int, default=None,
                        help="count only routes of this protocol (default: any)")
    parser.add_argument("--neigh", action="store_true",
                        help="also count neighbour entries of protocol 247")
    args = parser.parse_args()
    serve(State(prefixes=tuple(args.prefix), proto=args.proto, neigh=args.neigh))


if __name__ == "__main__":
    main()
