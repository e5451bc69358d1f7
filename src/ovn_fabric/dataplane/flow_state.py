"""OpenFlow rules the agent owns on provider bridges, and the pure diff. No I/O here.

Per EgressFlow (bridge, patch port) of a flat network two rules, one per IP version:

    cookie=<ours>, priority=1000,ip,in_port=<ofport>,
        dl_dst=00:00:00:00:00:00/01:00:00:00:00:00 actions=mod_dl_dst:<bridge MAC>,NORMAL

A VLAN network (the localnet `tag`) reaches its bridge tagged, and OVN's localnet port expects
tagged frames back. The bridge is a VLAN trunk seen from OVN and untagged seen from the kernel,
so its rules translate in both directions, and the kernel side (gateways, routes, neighbours,
proxy ARP/NDP, FRR's redistribution) stays exactly as for a flat network, on the bridge itself:

    priority=1000,ip[v6],in_port=<ofport>,dl_vlan=<vid>,dl_dst=<unicast>
        actions=strip_vlan,mod_dl_dst:<bridge MAC>,NORMAL      (egress, routed)
    priority=999,in_port=<ofport>,dl_vlan=<vid> actions=strip_vlan,NORMAL
                                                 (ARP, ND, broadcast: to the kernel untagged)
    priority=1000,in_port=LOCAL actions=mod_vlan_vid:<vid>,output:<ofport>
                                                 (ingress: the kernel's frames tagged to OVN)

A VLAN subinterface (<bridge>.<vid>) would do the same in the kernel, but every layer (config,
gateways, routes, FRR's interface match) names the bridge; a subinterface would add a second
device name to each. The cost of the rules: a bridge serving a VLAN network serves that network
only (the kernel's frames cannot tell which segment they are for). The planner refuses a VLAN
network that shares its bridge; should such a flow reach this module anyway, it is blocked, and
said so.

Ownership: the high 32 bits of the cookie are FLOW_COOKIE; the low 32 bits are a CRC of the
rule's text, so a rule whose port number or MAC changed has another cookie and the diff sees it.
Rules are compared as ovs-ofctl prints them (match fields in a canonical order), so drift made
by hand on a rule of ours (same cookie, other actions) is repaired too.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ovn_fabric.dataplane.kernel_state import Blocked
from ovn_fabric.model import EGRESS_FLOW_PRIORITY, FLOW_COOKIE, FLOW_COOKIE_MASK, EgressFlow

UNICAST_DST = "dl_dst=00:00:00:00:00:00/01:00:00:00:00:00"
_DEFAULT_PRIORITY = 32768
# Match fields first in this order (as ovs-ofctl prints them), anything else after, sorted.
_FIELD_ORDER = ("ip", "ipv6", "arp", "in_port", "dl_vlan", "dl_dst")


@dataclass(frozen=True, slots=True, order=True)
class OwnedFlow:
    """One OpenFlow rule of ours on a bridge, in ovs-ofctl's text form."""

    bridge: str
    cookie: int
    priority: int
    match: str        # canonical field order, e.g. "ip,in_port=1,dl_dst=..."
    actions: str      # e.g. "mod_dl_dst:02:00:00:00:0e:01,NORMAL"

    @property
    def spec(self) -> str:
        """The rule as ovs-ofctl dump-flows --no-stats prints it (and add-flow accepts)."""
        match = f",{self.match}" if self.match else ""
        return f"cookie={self.cookie:#x}, priority={self.priority}{match} actions={self.actions}"

    def add_line(self) -> str:
        match = f",{self.match}" if self.match else ""
        return f"add cookie={self.cookie:#x},priority={self.priority}{match},actions={self.actions}"

    def delete_line(self) -> str:
        """Strict delete: exactly this priority and match, and only with exactly our cookie."""
        match = f",{self.match}" if self.match else ""
        return f"delete_strict cookie={self.cookie:#x}/-1,priority={self.priority}{match}"


@dataclass(frozen=True, slots=True)
class FlowState:
    """What OVS holds of ours, and the facts needed to render the wanted rules.

    `flows` are read only from bridges in `readable`; `unreadable` says why a bridge could not
    be read (it does not exist, its ovs-vswitchd does not answer). `ofports` maps (bridge, port)
    to the OpenFlow port number for ports that are on that bridge and have one; `macs` maps a
    bridge to its own MAC (mac_in_use of its local interface).
    """

    flows: frozenset[OwnedFlow] = frozenset()
    readable: frozenset[str] = frozenset()
    unreadable: Mapping[str, str] = field(default_factory=dict)
    ofports: Mapping[tuple[str, str], int] = field(default_factory=dict)
    macs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FlowChanges:
    """Rules to delete and to add; applied per bridge as one atomic bundle, deletions first."""

    delete: tuple[OwnedFlow, ...] = ()
    add: tuple[OwnedFlow, ...] = ()
    blocked: tuple[Blocked, ...] = ()
    # Rules whose patch port OVN has not created (yet): ovn-controller adds a network's patch
    # port only once the network is local to the chassis. Not a failure; looked at again on
    # every sync.
    waiting: tuple[Blocked, ...] = ()

    @property
    def operations(self) -> int:
        return len(self.delete) + len(self.add)

    def bridges(self) -> tuple[str, ...]:
        return tuple(sorted({f.bridge for f in (*self.delete, *self.add)}))


def is_ours(cookie: int) -> bool:
    return cookie & FLOW_COOKIE_MASK == FLOW_COOKIE


def canonical_match(tokens: Iterable[str]) -> str:
    """Match fields in ovs-ofctl's print order, so rendered and dumped rules compare equal."""

    def rank(token: str) -> tuple[int, str]:
        name = token.split("=", 1)[0]
        order = _FIELD_ORDER.index(name) if name in _FIELD_ORDER else len(_FIELD_ORDER)
        return order, token

    return ",".join(sorted((t for t in tokens if t), key=rank))


def make_flow(bridge: str, priority: int, match: str, actions: str) -> OwnedFlow:
    """A rule of ours; its cookie carries a CRC of its text in the low 32 bits."""
    digest = zlib.crc32(f"{bridge} {priority} {match} {actions}".encode()) & ~FLOW_COOKIE_MASK
    return OwnedFlow(bridge, FLOW_COOKIE | digest, priority, match, actions)


def render(flow: EgressFlow, ofport: int, mac: str) -> tuple[OwnedFlow, ...]:
    """The rules of one EgressFlow: IPv4 and IPv6 egress, then for a VLAN network the untagging
    of everything else from OVN and the tagging of the kernel's frames towards OVN."""
    vlan = [f"dl_vlan={flow.vlan}"] if flow.vlan is not None else []
    strip = "strip_vlan," if flow.vlan is not None else ""
    rules = [
        make_flow(flow.bridge, EGRESS_FLOW_PRIORITY,
                  canonical_match([proto, f"in_port={ofport}", *vlan, UNICAST_DST]),
                  f"{strip}mod_dl_dst:{mac},NORMAL")
        for proto in ("ip", "ipv6")
    ]
    if flow.vlan is not None:
        rules.append(make_flow(flow.bridge, EGRESS_FLOW_PRIORITY - 1,
                               canonical_match([f"in_port={ofport}", *vlan]), "strip_vlan,NORMAL"))
        rules.append(make_flow(flow.bridge, EGRESS_FLOW_PRIORITY, "in_port=LOCAL",
                               f"mod_vlan_vid:{flow.vlan},output:{ofport}"))
    return tuple(rules)


def parse_dump_line(bridge: str, line: str) -> OwnedFlow | None:
    """One line of `ovs-ofctl --no-stats --no-names dump-flows`, or None if not a rule line."""
    text = line.strip()
    if not text.startswith("cookie=") or " actions=" not in text:
        return None
    head, actions = text.split(" actions=", 1)
    cookie = 0
    priority = _DEFAULT_PRIORITY
    match: list[str] = []
    for token in head.replace(", ", ",").split(","):
        name, _, value = token.partition("=")
        if name == "cookie":
            cookie = int(value, 16)
        elif name == "priority":
            priority = int(value)
        elif name != "table" or value != "0":
            match.append(token)
    return OwnedFlow(bridge, cookie, priority, canonical_match(match), actions)


def _wanted(desired: Iterable[EgressFlow], actual: FlowState,
            blocked: list[Blocked], waiting: list[Blocked]) -> set[OwnedFlow]:
    wanted: set[OwnedFlow] = set()
    desired = sorted(set(desired), key=lambda f: (f.bridge, f.patch_port, f.vlan or 0))
    per_bridge = Counter(flow.bridge for flow in desired)
    for flow in desired:
        what = f"egress flow {flow.bridge}/{flow.patch_port}" + (
            f" vlan {flow.vlan}" if flow.vlan is not None else "")
        ofport = actual.ofports.get((flow.bridge, flow.patch_port))
        mac = actual.macs.get(flow.bridge)
        if flow.vlan is not None and per_bridge[flow.bridge] > 1:
            reason = (f"a VLAN network needs a bridge of its own; {flow.bridge} serves "
                      f"{per_bridge[flow.bridge]} networks")
        elif flow.bridge not in actual.readable:
            reason = actual.unreadable.get(flow.bridge, f"bridge {flow.bridge} was not read")
        elif ofport is None:
            waiting.append(Blocked(what, f"port {flow.patch_port!r} is not on bridge "
                                         f"{flow.bridge} or has no OpenFlow port number yet"))
            continue
        elif mac is None:
            reason = f"the MAC of bridge {flow.bridge} is not known yet"
        else:
            wanted.update(render(flow, ofport, mac))
            continue
        blocked.append(Blocked(what, reason))
    return wanted


def diff(desired: Iterable[EgressFlow], actual: FlowState) -> FlowChanges:
    """The changes that leave exactly the wanted rules of ours on every readable bridge."""
    blocked: list[Blocked] = []
    waiting: list[Blocked] = []
    wanted = _wanted(desired, actual, blocked, waiting)
    ours = {f for f in actual.flows if is_ours(f.cookie) and f.bridge in actual.readable}
    return FlowChanges(
        delete=tuple(sorted(ours - wanted)),
        add=tuple(sorted(wanted - ours)),
        blocked=tuple(sorted(set(blocked))),
        waiting=tuple(sorted(set(waiting))),
    )
