"""The kernel driver: read back our routes, neighbours, addresses and bridge sysctls, and apply
the changes `diff` computes, inside one network namespace.

    with KernelDriver(netns="hk-kern") as kernel:
        actual = kernel.read(bridges=["br-ex"])
        changes = diff(desired, actual)
        report = kernel.apply(changes)

Namespaces: the netlink socket is created by a thread that entered the namespace (setns) and
stays bound to it; sysctls are read and written by such a thread too (see _netns). The process
itself never changes namespace. netns=None means the caller's own namespace (production).

Idempotency: deleting what is already gone (ESRCH, ENOENT, EADDRNOTAVAIL) counts as done; an
exclusive create that meets EEXIST counts as done only if what is there now is ours and equal
(checked by reading back), otherwise it is reported as held by another owner.

`sync` does not read everything back on every round: after a round that applied everything it
keeps a belief of what the kernel holds, and the next round diffs only what changed since,
until a resync (`full=True`), a failure, or a netlink event the belief does not explain
(`note`, fed by agent/kernel_watch.py) makes it read back again. See kernel_cache.py.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_interface, ip_network
from pathlib import Path
from types import TracebackType
from typing import Protocol

from pyroute2.netlink import NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE
from pyroute2.netlink.rtnl import RTM_NEWLINK
from pyroute2.netlink.rtnl.ndmsg import NTF_EXT_LEARNED, NUD_NOARP, NUD_PERMANENT

from ovn_fabric.dataplane import _rtnl
from ovn_fabric.dataplane._netns import run_in_netns
from ovn_fabric.dataplane._rtnl import Outcome, Request, RtnlSocket
from ovn_fabric.dataplane.kernel_cache import Belief, Touch, contradiction, restricted_diff
from ovn_fabric.dataplane.kernel_state import (
    Blocked,
    BridgeAddress,
    KernelChanges,
    KernelState,
    Sysctl,
    describe_address,
    describe_neighbour,
    describe_route,
    diff,
    sysctl_paths,
)
from ovn_fabric.model import (
    DRAINING_METRIC,
    RTPROT_OVN_FABRIC,
    DesiredState,
    HostRoute,
    IPAddress,
    Neighbour,
)

__all__ = [
    "ApplyReport",
    "BeliefSync",
    "Blocked",
    "BridgeAddress",
    "Failure",
    "KernelChanges",
    "KernelDriver",
    "KernelIO",
    "KernelState",
    "SyncResult",
    "Sysctl",
    "diff",
]

log = logging.getLogger(__name__)

PROC_SYS = Path("/proc/sys")
_IFF_UP = 0x1
_GONE = frozenset({errno.ESRCH, errno.ENOENT, errno.EADDRNOTAVAIL})
_STATIC_NUD = NUD_PERMANENT | NUD_NOARP
_DELETES = frozenset({_rtnl.RTM_DELROUTE, _rtnl.RTM_DELNEIGH, _rtnl.RTM_DELADDR})


@dataclass(frozen=True, slots=True, order=True)
class Failure:
    """One operation the kernel refused (or could not be tried), with errno and reason."""

    what: str
    error: int
    reason: str


@dataclass(frozen=True, slots=True)
class ApplyReport:
    """What applying a change set did: how many operations were tried, and which failed."""

    attempted: int
    failures: tuple[Failure, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True, slots=True)
class SyncResult:
    """One read-diff-apply round: the changes computed (blocked items included) and the report."""

    changes: KernelChanges     # of the first round
    report: ApplyReport        # operations of all rounds, failures of the last one
    rounds: int = 1


Subject = HostRoute | Neighbour | BridgeAddress | str


def _describe(subject: Subject) -> str:
    if isinstance(subject, HostRoute):
        return describe_route(subject)
    if isinstance(subject, Neighbour):
        return describe_neighbour(subject)
    if isinstance(subject, BridgeAddress):
        return describe_address(subject)
    return subject


@dataclass(frozen=True, slots=True)
class _Op:
    request: Request
    subject: Subject                                 # what it changes, described on failure
    expect: HostRoute | BridgeAddress | None = None  # created exclusively: on EEXIST, ours?

    @property
    def what(self) -> str:
        # Described only when needed: describing every one of a 3,000-port bind's 6,000
        # operations up front took ~10 ms before the first was sent.
        return _describe(self.subject)


def _family(addr: IPAddress) -> int:
    return socket.AF_INET if addr.version == 4 else socket.AF_INET6


def _ip(raw: bytes) -> IPAddress:
    return IPv4Address(raw) if len(raw) == 4 else IPv6Address(raw)


def _route_request(route: HostRoute, ifindex: int | None, msg_type: int,
                   flags: int) -> Request:
    dst = route.dst.network_address
    family = _family(dst)
    if msg_type == _rtnl.RTM_DELROUTE:
        header = _rtnl.rtmsg(family, route.dst.prefixlen, table=_rtnl.RT_TABLE_MAIN,
                             protocol=RTPROT_OVN_FABRIC, scope=_rtnl.RT_SCOPE_NOWHERE, rtype=0)
    else:
        scope = _rtnl.RT_SCOPE_LINK if route.via is None else _rtnl.RT_SCOPE_UNIVERSE
        header = _rtnl.rtmsg(family, route.dst.prefixlen, table=_rtnl.RT_TABLE_MAIN,
                             protocol=RTPROT_OVN_FABRIC, scope=scope, rtype=_rtnl.RTN_UNICAST)
    body = header + _rtnl.attr(_rtnl.RTA_TABLE, _rtnl.u32(_rtnl.RT_TABLE_MAIN))
    body += _rtnl.attr(_rtnl.RTA_DST, dst.packed)
    # Only a draining route has a metric of its own. Without one, a delete matches the
    # destination's lowest-metric route of ours on the device, which is the plain one.
    if route.draining:
        body += _rtnl.attr(_rtnl.RTA_PRIORITY, _rtnl.u32(DRAINING_METRIC))
    if ifindex is not None:
        body += _rtnl.attr(_rtnl.RTA_OIF, _rtnl.u32(ifindex))
    if route.via is not None:
        body += _rtnl.attr(_rtnl.RTA_GATEWAY, route.via.packed)
    return Request(msg_type, flags, body)


def _neighbour_request(neighbour: Neighbour, ifindex: int, *, delete: bool) -> Request:
    family = _family(neighbour.ip)
    if delete:
        body = _rtnl.ndmsg(family, ifindex, 0) + _rtnl.attr(_rtnl.NDA_DST, neighbour.ip.packed)
        return Request(_rtnl.RTM_DELNEIGH, 0, body)
    body = (_rtnl.ndmsg(family, ifindex, NUD_PERMANENT)
            + _rtnl.attr(_rtnl.NDA_DST, neighbour.ip.packed)
            + _rtnl.attr(_rtnl.NDA_LLADDR, bytes.fromhex(neighbour.mac.replace(":", "")))
            + _rtnl.attr(_rtnl.NDA_PROTOCOL, _rtnl.u8(RTPROT_OVN_FABRIC)))
    return Request(_rtnl.RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, body)


def _address_request(address: BridgeAddress, ifindex: int, *, delete: bool) -> Request:
    iface = ip_interface(address.address)
    family = _family(iface.ip)
    flags = _rtnl.IFA_F_NODAD if iface.version == 6 else 0
    body = _rtnl.ifaddrmsg(family, iface.network.prefixlen, flags, ifindex)
    if iface.version == 4:
        body += _rtnl.attr(_rtnl.IFA_LOCAL, iface.ip.packed)
    body += _rtnl.attr(_rtnl.IFA_ADDRESS, iface.ip.packed)
    if delete:
        return Request(_rtnl.RTM_DELADDR, 0, body)
    body += _rtnl.attr(_rtnl.IFA_FLAGS, _rtnl.u32(flags))
    body += _rtnl.attr(_rtnl.IFA_PROTO, _rtnl.u8(RTPROT_OVN_FABRIC))
    return Request(_rtnl.RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)


def _link_up_request(ifindex: int) -> Request:
    body = _rtnl.ifinfomsg(ifindex, flags=_IFF_UP, change=_IFF_UP)
    return Request(RTM_NEWLINK, 0, body)


def _read_sysctls(paths: Sequence[str]) -> frozenset[Sysctl]:
    found: set[Sysctl] = set()
    for path in paths:
        try:
            found.add(Sysctl(path, (PROC_SYS / path).read_text().strip()))
        except FileNotFoundError:
            continue
    return frozenset(found)


def _write_sysctls(sysctls: Sequence[Sysctl]) -> list[Failure]:
    failures: list[Failure] = []
    for sysctl in sysctls:
        try:
            (PROC_SYS / sysctl.path).write_text(sysctl.value + "\n")
        except OSError as exc:
            failures.append(Failure(f"sysctl {sysctl.path}={sysctl.value}", exc.errno or 0,
                                    exc.strerror or str(exc)))
    return failures


class KernelDriver:
    """Reads and programs the kernel state the agent owns in one network namespace."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._rtnl = RtnlSocket(netns)
        self._rounds = BeliefSync(self)

    def __enter__(self) -> KernelDriver:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._rtnl.close()

    # -- reading ---------------------------------------------------------------------------

    def _links(self) -> tuple[dict[int, str], frozenset[str]]:
        names: dict[int, str] = {}
        down: set[str] = set()
        for body in self._rtnl.dump(_rtnl.RTM_GETLINK, _rtnl.ifinfomsg(0)):
            index, name, flags = _rtnl.decode_link(body)
            names[index] = name
            if not flags & _IFF_UP:
                down.add(name)
        return names, frozenset(down)

    def _routes(self, names: dict[int, str]) -> frozenset[HostRoute]:
        routes: set[HostRoute] = set()
        for family in (socket.AF_INET, socket.AF_INET6):
            request = _rtnl.rtmsg(family, 0, table=_rtnl.RT_TABLE_MAIN,
                                  protocol=RTPROT_OVN_FABRIC, scope=0, rtype=0)
            for body in self._rtnl.dump(_rtnl.RTM_GETROUTE, request):
                rec = _rtnl.decode_route(body)
                if (rec.protocol != RTPROT_OVN_FABRIC or rec.table != _rtnl.RT_TABLE_MAIN
                        or rec.family != family):
                    continue
                zero = bytes(4 if family == socket.AF_INET else 16)
                dst = ip_network((_ip(rec.dst or zero), rec.dst_len))
                # A route of ours in a shape we never make (multipath) gets dev "": it is
                # never wanted, so the diff deletes it.
                dev = "" if rec.multipath or rec.oif is None else names.get(rec.oif, "")
                via = _ip(rec.gateway) if rec.gateway is not None else None
                routes.add(HostRoute(dst=dst, dev=dev, via=via,
                                     draining=rec.priority == DRAINING_METRIC))
        return frozenset(routes)

    def _neighbours(self, names: dict[int, str]) -> tuple[frozenset[Neighbour],
                                                          frozenset[Neighbour]]:
        ours: set[Neighbour] = set()
        foreign: set[Neighbour] = set()
        for body in self._rtnl.dump(_rtnl.RTM_GETNEIGH, _rtnl.ndmsg(socket.AF_UNSPEC, 0, 0)):
            rec = _rtnl.decode_neigh(body)
            if rec.dst is None or rec.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            mine = rec.protocol == RTPROT_OVN_FABRIC
            static = bool(rec.state & _STATIC_NUD) or bool(rec.flags & NTF_EXT_LEARNED)
            if not static:
                continue
            entry = Neighbour(ip=_ip(rec.dst), mac=rec.lladdr.hex(":") if rec.lladdr else "",
                              dev=names.get(rec.ifindex, ""))
            if not mine:
                foreign.add(entry)
            elif rec.state & NUD_PERMANENT:
                ours.add(entry)
        return frozenset(ours), frozenset(foreign)

    def _addresses(self, names: dict[int, str]) -> frozenset[BridgeAddress]:
        found: set[BridgeAddress] = set()
        for family in (socket.AF_INET, socket.AF_INET6):
            request = _rtnl.ifaddrmsg(family, 0, 0, 0)
            for body in self._rtnl.dump(_rtnl.RTM_GETADDR, request):
                rec = _rtnl.decode_addr(body)
                raw = rec.local if rec.local is not None else rec.address
                if rec.protocol != RTPROT_OVN_FABRIC or raw is None:
                    continue
                text = ip_interface((_ip(raw), rec.prefixlen)).with_prefixlen
                found.add(BridgeAddress(names.get(rec.index, ""), text))
        return frozenset(found)

    def read(self, bridges: Iterable[str] = ()) -> KernelState:
        """Everything of ours in the namespace, and the sysctls the given bridges need."""
        names, down = self._links()
        ours, foreign = self._neighbours(names)
        paths = sysctl_paths(bridges)
        return KernelState(
            routes=self._routes(names),
            neighbours=ours,
            addresses=self._addresses(names),
            sysctls=run_in_netns(self.netns, lambda: _read_sysctls(paths)) if paths else
            frozenset(),
            devices=frozenset(names.values()),
            down=down,
            foreign_neighbours=foreign,
        )

    # -- applying --------------------------------------------------------------------------

    @staticmethod
    def _ops(changes: KernelChanges, index: dict[str, int],
             failures: list[Failure]) -> list[_Op]:
        """Requests in the order they must run. Addresses are added before the old ones are
        deleted: deleting a device's last IPv4 address makes the kernel flush every IPv4 route
        and neighbour of the device, and deleting a primary one takes its secondaries along.
        Only an address whose IP is re-added (an IPv6 prefix-length change) goes first."""

        def present(dev: str, subject: Subject) -> bool:
            if dev not in index:
                failures.append(Failure(_describe(subject), errno.ENODEV,
                                        f"device {dev!r} does not exist"))
            return dev in index

        def drop_address(address: BridgeAddress) -> _Op:
            return _Op(_address_request(address, index[address.dev], delete=True), address)

        readded = {ip_interface(a.address).ip for a in changes.add_addresses}
        # Neighbours and addresses of a device that is gone went with it.
        old = [a for a in changes.delete_addresses if a.dev in index]
        exclusive, replace = NLM_F_CREATE | NLM_F_EXCL, NLM_F_CREATE | NLM_F_REPLACE
        return [
            *(_Op(_route_request(r, index.get(r.dev), _rtnl.RTM_DELROUTE, 0), r)
              for r in changes.delete_routes),
            *(_Op(_neighbour_request(n, index[n.dev], delete=True), n)
              for n in changes.delete_neighbours if n.dev in index),
            *(drop_address(a) for a in old if ip_interface(a.address).ip in readded),
            *(_Op(_link_up_request(index[name]), f"link {name} up")
              for name in changes.set_up if present(name, f"link {name} up")),
            *(_Op(_address_request(a, index[a.dev], delete=False), a, a)
              for a in changes.add_addresses if present(a.dev, a)),
            *(drop_address(a) for a in old if ip_interface(a.address).ip not in readded),
            *(_Op(_route_request(r, index[r.dev], _rtnl.RTM_NEWROUTE, exclusive), r, r)
              for r in changes.add_routes if present(r.dev, r)),
            *(_Op(_route_request(r, index[r.dev], _rtnl.RTM_NEWROUTE, replace), r)
              for r in changes.replace_routes if present(r.dev, r)),
            *(_Op(_route_request(r, index.get(r.dev), _rtnl.RTM_DELROUTE, 0), r)
              for r in changes.retire_routes),
            *(_Op(_neighbour_request(n, index[n.dev], delete=False), n)
              for n in changes.set_neighbours if present(n.dev, n)),
        ]

    def _judge(self, ops: Sequence[_Op], outcomes: Sequence[Outcome]) -> list[Failure]:
        failures: list[Failure] = []
        occupied: list[_Op] = []
        for op, outcome in zip(ops, outcomes, strict=True):
            if outcome.ok or (op.request.msg_type in _DELETES and outcome.error in _GONE):
                continue
            if outcome.error == errno.EEXIST and op.expect is not None:
                occupied.append(op)
                continue
            reason = os.strerror(outcome.error)
            if outcome.message:
                reason = f"{reason}: {outcome.message}"
            failures.append(Failure(op.what, outcome.error, reason))
        if occupied:
            now = self.read()
            failures.extend(
                Failure(op.what, errno.EEXIST, "held by another owner (not marked as ours)")
                for op in occupied if op.expect not in now.routes | now.addresses)
        return failures

    def apply(self, changes: KernelChanges) -> ApplyReport:
        """Apply a change set; every operation is tried, failures are reported one by one."""
        names, _ = self._links()
        index = {name: ifindex for ifindex, name in names.items()}
        failures: list[Failure] = []
        if changes.set_sysctls:
            sysctls = changes.set_sysctls
            failures.extend(run_in_netns(self.netns, lambda: _write_sysctls(sysctls)))
        ops = self._ops(changes, index, failures)
        outcomes = self._rtnl.transact([op.request for op in ops]) if ops else []
        failures.extend(self._judge(ops, outcomes))
        return ApplyReport(attempted=changes.operations, failures=tuple(sorted(failures)))

    def sync(self, desired: DesiredState, *, full: bool = False) -> SyncResult:
        """Make the kernel hold `desired`: diff only what changed since the last round that
        applied everything, or read back and diff everything (`full`, or when the belief
        cannot be trusted). See BeliefSync."""
        return self._rounds.sync(desired, full=full)

    def note(self, touches: Iterable[Touch]) -> None:
        """Netlink events that may mean our state was changed from outside (any thread)."""
        self._rounds.note(touches)


class KernelIO(Protocol):
    """Reading back and applying, as KernelDriver does (an in-memory kernel in tests)."""

    def read(self, bridges: Iterable[str] = ()) -> KernelState: ...

    def apply(self, changes: KernelChanges) -> ApplyReport: ...


class BeliefSync:
    """Read-diff-apply rounds that skip the read-back while the kernel is believed to hold the
    last round's desired state (kernel_cache.py says when that belief holds).

    `note` may be called from any thread; `sync` from one thread at a time."""

    def __init__(self, io: KernelIO) -> None:
        self._io = io
        self._belief: Belief | None = None
        self._touches: list[Touch] = []
        self._lock = threading.Lock()
        self.full_rounds = 0          # rounds that read everything back (tests, bench)
        self.last_full_reason = ""

    def note(self, touches: Iterable[Touch]) -> None:
        with self._lock:
            self._touches.extend(touches)

    def forget(self) -> None:
        """Drop the belief: the next round reads everything back."""
        self._belief = None

    def sync(self, desired: DesiredState, *, full: bool = False) -> SyncResult:
        with self._lock:
            touches, self._touches = self._touches, []
        belief, self._belief = self._belief, None     # kept again only if all goes well
        reason = "resync" if full else "no belief yet" if belief is None else ""
        if belief is not None and not reason:
            touch = contradiction(belief, touches)
            reason = f"netlink: {touch}" if touch is not None else ""
        restricted = (restricted_diff(desired, belief) if belief is not None and not reason
                      else None)
        if restricted is None:
            return self._full(desired, reason or "the bridges' settings changed")
        changes = restricted.changes
        report = self._io.apply(changes) if changes.operations else ApplyReport(attempted=0)
        if report.ok and not changes.blocked:
            self._belief = restricted.belief
        return SyncResult(changes=changes, report=report)

    def _full(self, desired: DesiredState, reason: str) -> SyncResult:
        """Read, diff against `desired`, apply. When addresses of ours were deleted, one more
        round follows at once: the kernel may have flushed routes and neighbours with them
        (see KernelDriver._ops), and they are put back now rather than at the next resync."""
        self.full_rounds += 1
        self.last_full_reason = reason
        log.debug("kernel: reading everything back (%s)", reason)
        bridges = [b.bridge for b in desired.bridges]
        read = self._io.read(bridges)
        changes = diff(desired, read)
        report = self._io.apply(changes)
        if not changes.delete_addresses:
            if report.ok and not changes.blocked:
                self._belief = Belief.after(desired, read, changes)
            return SyncResult(changes=changes, report=report)
        follow = diff(desired, self._io.read(bridges))
        if not follow.operations:
            return SyncResult(changes=changes, report=report)
        second = self._io.apply(follow)
        return SyncResult(changes=changes, report=ApplyReport(
            attempted=report.attempted + second.attempted, failures=second.failures), rounds=2)
