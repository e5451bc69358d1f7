"""The flow diff, by properties on an in-memory OVS: one apply leaves exactly the wanted rules of
ours, a second diff is empty, rules of others are never in a change set; and the text forms."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from ovn_fabric.dataplane.flow_state import (
    FlowChanges,
    FlowState,
    OwnedFlow,
    canonical_match,
    diff,
    is_ours,
    make_flow,
    parse_dump_line,
    render,
)
from ovn_fabric.model import EGRESS_FLOW_PRIORITY, FLOW_COOKIE, EgressFlow

BRIDGES = ("br-ex", "br-vlan")
PORTS = ("patch-a", "patch-b", "patch-c")


@dataclass
class MemOvs:
    """Rules per bridge; an add replaces the rule with the same priority and match (OpenFlow)."""

    rules: dict[str, dict[tuple[int, str], OwnedFlow]] = field(default_factory=dict)
    ofports: dict[tuple[str, str], int] = field(default_factory=dict)
    macs: dict[str, str] = field(default_factory=dict)

    def read(self) -> FlowState:
        return FlowState(
            flows=frozenset(f for table in self.rules.values() for f in table.values()
                            if is_ours(f.cookie)),
            readable=frozenset(self.rules), ofports=dict(self.ofports), macs=dict(self.macs))

    def apply(self, changes: FlowChanges) -> None:
        for flow in changes.delete:
            table = self.rules[flow.bridge]
            if table.get((flow.priority, flow.match)) == flow:   # strict, exact cookie
                del table[(flow.priority, flow.match)]
        for flow in changes.add:
            self.rules[flow.bridge][(flow.priority, flow.match)] = flow

    def foreign(self) -> set[OwnedFlow]:
        return {f for t in self.rules.values() for f in t.values() if not is_ours(f.cookie)}


egress_flows = st.builds(EgressFlow, st.sampled_from(BRIDGES), st.sampled_from(PORTS),
                         st.none() | st.integers(1, 3))


@st.composite
def switches(draw: st.DrawFn) -> MemOvs:
    ovs = MemOvs(rules={b: {} for b in BRIDGES})
    for bridge in BRIDGES:
        ovs.macs[bridge] = draw(st.sampled_from(["02:00:00:00:0e:01", "02:00:00:00:0e:02"]))
        for port in draw(st.sets(st.sampled_from(PORTS))):
            ovs.ofports[(bridge, port)] = draw(st.integers(1, 4))
    # Rules of ours from some earlier state (other ports, MACs, VLANs), and rules of others.
    for flow in draw(st.lists(egress_flows, max_size=4)):
        for rule in render(flow, draw(st.integers(1, 4)), "02:00:00:00:0e:09"):
            ovs.rules[rule.bridge][(rule.priority, rule.match)] = rule
    for bridge, priority, cookie in draw(st.lists(st.tuples(
            st.sampled_from(BRIDGES), st.sampled_from([0, 500, EGRESS_FLOW_PRIORITY + 1]),
            st.sampled_from([0, 0x1234, 0x0F4A000000000001])), max_size=4)):
        rule = OwnedFlow(bridge, cookie, priority, "arp", "NORMAL")
        ovs.rules[bridge][(priority, rule.match)] = rule
    return ovs


@settings(max_examples=300)
@given(st.frozensets(egress_flows, max_size=5), switches())
def test_one_apply_leaves_exactly_the_wanted_rules(wanted: frozenset[EgressFlow],
                                                   ovs: MemOvs) -> None:
    foreign = ovs.foreign()
    actual = ovs.read()
    changes = diff(wanted, actual)
    assert set(changes.delete) <= actual.flows
    assert all(is_ours(f.cookie) for f in (*changes.delete, *changes.add))
    ovs.apply(changes)
    assert ovs.foreign() == foreign
    # A VLAN network needs its bridge to itself (the kernel's frames are tagged for it).
    shared = Counter(flow.bridge for flow in wanted)
    refused = {f for f in wanted if f.vlan is not None and shared[f.bridge] > 1}
    expected = {rule for flow in wanted - refused if (flow.bridge, flow.patch_port) in ovs.ofports
                for rule in render(flow, ovs.ofports[(flow.bridge, flow.patch_port)],
                                   ovs.macs[flow.bridge])}
    assert ovs.read().flows == expected
    assert diff(wanted, ovs.read()).operations == 0
    unresolved = {f for f in wanted - refused if (f.bridge, f.patch_port) not in ovs.ofports}
    assert len(changes.waiting) == len(unresolved)
    assert len(changes.blocked) == len(refused)
    assert all("needs a bridge of its own" in b.reason for b in changes.blocked)


def test_an_unreadable_bridge_is_blocked_and_its_rules_kept() -> None:
    rule = render(EgressFlow("br-ex", "patch-a"), 1, "02:00:00:00:0e:01")[0]
    state = FlowState(flows=frozenset({rule}), readable=frozenset(),
                      unreadable={"br-ex": "ovs-vswitchd: connection refused"})
    changes = diff({EgressFlow("br-ex", "patch-a")}, state)
    assert changes.operations == 0
    assert [b.reason for b in changes.blocked] == ["ovs-vswitchd: connection refused"]


def test_flat_network_rules_by_value() -> None:
    ip, ipv6 = render(EgressFlow("br-ex", "patch-provnet-public-to-br-int"), 3,
                      "02:00:00:00:0e:01")
    assert [(r.priority, r.match, r.actions) for r in (ip, ipv6)] == [
        (1000, "ip,in_port=3,dl_dst=00:00:00:00:00:00/01:00:00:00:00:00",
         "mod_dl_dst:02:00:00:00:0e:01,NORMAL"),
        (1000, "ipv6,in_port=3,dl_dst=00:00:00:00:00:00/01:00:00:00:00:00",
         "mod_dl_dst:02:00:00:00:0e:01,NORMAL"),
    ]


def test_vlan_network_rules_untag_towards_the_kernel_and_tag_towards_ovn() -> None:
    rules = render(EgressFlow("br-vlan", "patch-provnet-vlan100-to-br-int", vlan=100), 4,
                   "02:00:00:00:0e:02")
    assert [(r.bridge, r.priority, r.match, r.actions) for r in rules] == [
        ("br-vlan", 1000, "ip,in_port=4,dl_vlan=100,dl_dst=00:00:00:00:00:00/01:00:00:00:00:00",
         "strip_vlan,mod_dl_dst:02:00:00:00:0e:02,NORMAL"),
        ("br-vlan", 1000, "ipv6,in_port=4,dl_vlan=100,dl_dst=00:00:00:00:00:00/01:00:00:00:00:00",
         "strip_vlan,mod_dl_dst:02:00:00:00:0e:02,NORMAL"),
        ("br-vlan", 999, "in_port=4,dl_vlan=100", "strip_vlan,NORMAL"),
        ("br-vlan", 1000, "in_port=LOCAL", "mod_vlan_vid:100,output:4"),
    ]
    assert all(is_ours(r.cookie) for r in rules)
    assert len({r.cookie for r in rules}) == 4
    assert [parse_dump_line("br-vlan", " " + r.spec) for r in rules] == list(rules)
    assert rules[3].spec == (f"cookie={rules[3].cookie:#x}, priority=1000,in_port=LOCAL "
                             "actions=mod_vlan_vid:100,output:4")


def test_a_vlan_network_sharing_its_bridge_is_blocked_the_other_served() -> None:
    flat = EgressFlow("br-ex", "patch-a")
    vlan = EgressFlow("br-ex", "patch-b", vlan=100)
    state = FlowState(readable=frozenset({"br-ex"}), ofports={("br-ex", "patch-a"): 1,
                                                              ("br-ex", "patch-b"): 2},
                      macs={"br-ex": "02:00:00:00:0e:01"})
    changes = diff({flat, vlan}, state)
    assert set(changes.add) == set(render(flat, 1, "02:00:00:00:0e:01"))
    assert [(b.what, b.reason) for b in changes.blocked] == [
        ("egress flow br-ex/patch-b vlan 100",
         "a VLAN network needs a bridge of its own; br-ex serves 2 networks")]


def test_rendered_rules_read_the_way_ovs_ofctl_prints_them() -> None:
    ip, ipv6, *_ = render(EgressFlow("br-ex", "patch-provnet-physnet1-to-br-int", vlan=100), 7,
                          "02:00:00:00:0e:01")
    assert ip.spec == (
        f"cookie={ip.cookie:#x}, priority=1000,ip,in_port=7,dl_vlan=100,"
        "dl_dst=00:00:00:00:00:00/01:00:00:00:00:00 "
        "actions=strip_vlan,mod_dl_dst:02:00:00:00:0e:01,NORMAL")
    assert ipv6.match.startswith("ipv6,in_port=7,dl_vlan=100,")
    assert ip.cookie & 0xFFFFFFFF_00000000 == FLOW_COOKIE
    assert ip.cookie != ipv6.cookie
    assert parse_dump_line("br-ex", " " + ip.spec) == ip
    assert ip.delete_line() == (
        f"delete_strict cookie={ip.cookie:#x}/-1,priority=1000,ip,in_port=7,dl_vlan=100,"
        "dl_dst=00:00:00:00:00:00/01:00:00:00:00:00")


def test_dump_lines_of_any_shape_parse() -> None:
    assert parse_dump_line("br-ex", " priority=0 actions=NORMAL") is None
    assert parse_dump_line("br-ex", "NXST_FLOW reply (xid=0x4):") is None
    flow = parse_dump_line("br-ex", " cookie=0x1234, table=0, priority=5,arp actions=drop")
    assert flow == OwnedFlow("br-ex", 0x1234, 5, "arp", "drop")
    assert canonical_match(["dl_dst=x", "in_port=2", "ipv6", "dl_vlan=3"]) == \
        "ipv6,in_port=2,dl_vlan=3,dl_dst=x"
    assert make_flow("a", 1, "ip", "NORMAL") != make_flow("b", 1, "ip", "NORMAL")
