"""The flow driver against a real ovsdb-server + ovs-vswitchd (netdev datapath) in namespace
hk-ovs: br-ex patched to br-int as OVN patches a localnet port. Rules are checked with
ovs-ofctl dump-flows, independently of the driver's parser."""

from __future__ import annotations

import time

import pytest

from ovn_fabric.dataplane.flows import FlowDriver, OvsTarget, diff
from ovn_fabric.model import FLOW_COOKIE, FLOW_COOKIE_MASK, EgressFlow
from tests.dataplane.labns import BR_EX_MAC, PATCH_EX, OvsLab

pytestmark = pytest.mark.lab

UNICAST = "dl_dst=00:00:00:00:00:00/01:00:00:00:00:00"
EGRESS = EgressFlow("br-ex", PATCH_EX)


def ours(lab: OvsLab, bridge: str = "br-ex") -> list[str]:
    """Our rules as dump-flows prints them, the cookie left out."""
    return sorted(line.split(", ", 1)[1] for line in lab.dump(bridge)
                  if line.startswith("cookie=")
                  and int(line.split(",")[0].removeprefix("cookie="), 16) & FLOW_COOKIE_MASK
                  == FLOW_COOKIE)


def expected(ofport: int, vlan: int | None = None, mac: str = BR_EX_MAC) -> list[str]:
    tag = f",dl_vlan={vlan}" if vlan is not None else ""
    strip = "strip_vlan," if vlan is not None else ""
    rules = [f"priority=1000,{proto},in_port={ofport}{tag},{UNICAST} "
             f"actions={strip}mod_dl_dst:{mac},NORMAL" for proto in ("ip", "ipv6")]
    if vlan is not None:
        rules += [f"priority=999,in_port={ofport}{tag} actions=strip_vlan,NORMAL",
                  f"priority=1000,in_port=LOCAL actions=mod_vlan_vid:{vlan},output:{ofport}"]
    return sorted(rules)


def ofport(lab: OvsLab, port: str) -> int:
    return int(lab.vsctl("get", "interface", port, "ofport"))


def test_rule_installed_as_expected(ovs_lab: OvsLab) -> None:
    driver = FlowDriver(OvsTarget(rundir=ovs_lab.rundir))
    result = driver.sync({EGRESS})
    assert result.report.ok, result.report.failures
    assert result.changes.blocked == ()
    assert ours(ovs_lab) == expected(ofport(ovs_lab, PATCH_EX))
    assert driver.sync({EGRESS}).changes.operations == 0
    assert ours(ovs_lab, "br-int") == []


def test_env_target_and_vlan(ovs_lab: OvsLab) -> None:
    """The same driver given only the environment (OVS_RUNDIR) and an explicit --db remote."""
    driver = FlowDriver(OvsTarget(db=ovs_lab.db, env=ovs_lab.env()))
    tagged = EgressFlow("br-ex", PATCH_EX, vlan=100)
    assert driver.sync({tagged}).report.ok
    assert ours(ovs_lab) == expected(ofport(ovs_lab, PATCH_EX), vlan=100)
    # VLAN dropped from the wanted state: the tagged rules are replaced by untagged ones.
    assert driver.sync({EGRESS}).report.ok
    assert ours(ovs_lab) == expected(ofport(ovs_lab, PATCH_EX))


def test_rules_of_others_are_untouched(ovs_lab: OvsLab) -> None:
    mgmt = ovs_lab.mgmt("br-ex")
    ovs_lab.ofctl("add-flow", mgmt, "cookie=0x1234,priority=500,arp,actions=NORMAL")
    ovs_lab.ofctl("add-flow", mgmt, f"priority=900,ip,in_port=1,{UNICAST},actions=drop")
    ovs_lab.ofctl("add-flow", mgmt, "cookie=0x0f4a000000000001,priority=1000,arp,actions=drop")
    before = ovs_lab.dump()
    driver = FlowDriver(OvsTarget(rundir=ovs_lab.rundir))
    assert driver.sync({EGRESS}).report.ok
    after = ovs_lab.dump()
    assert set(before) <= set(after)
    assert len(after) == len(before) + 2
    # Withdraw ours (the bridge is still named as a provider bridge): only ours go.
    withdraw = driver.sync(set(), bridges=["br-ex"])
    assert withdraw.report.ok
    assert withdraw.changes.operations == 2
    assert ovs_lab.dump() == before


def test_a_deleted_rule_is_restored(ovs_lab: OvsLab) -> None:
    driver = FlowDriver(OvsTarget(rundir=ovs_lab.rundir))
    assert driver.sync({EGRESS}).report.ok
    port = ofport(ovs_lab, PATCH_EX)
    ovs_lab.ofctl("--strict", "del-flows", ovs_lab.mgmt("br-ex"),
                  f"priority=1000,ip,in_port={port},{UNICAST}")
    assert len(ours(ovs_lab)) == 1
    repair = driver.sync({EGRESS})
    assert repair.report.ok
    assert repair.changes.operations == 1
    assert ours(ovs_lab) == expected(port)
    # A rule of ours altered by hand (same cookie, other actions) is put right too.
    cookie = next(line.split(",")[0] for line in ovs_lab.dump() if ",ipv6," in line)
    ovs_lab.ofctl("mod-flows", ovs_lab.mgmt("br-ex"), f"{cookie}/-1,actions=drop")
    assert driver.sync({EGRESS}).changes.operations == 2
    assert ours(ovs_lab) == expected(port)


def test_rules_come_back_after_ovs_vswitchd_restarts(ovs_lab: OvsLab) -> None:
    driver = FlowDriver(OvsTarget(rundir=ovs_lab.rundir))
    assert driver.sync({EGRESS}).report.ok
    ovs_lab.stop_vswitchd()
    down = driver.sync({EGRESS})
    assert down.changes.operations == 0
    assert [b.what for b in down.changes.blocked] == [f"egress flow br-ex/{PATCH_EX}"]
    ovs_lab.start_vswitchd()
    assert ours(ovs_lab) == []          # ovs-vswitchd keeps no flows across a restart
    again = driver.sync({EGRESS})
    assert again.report.ok
    assert again.changes.operations == 2
    assert ours(ovs_lab) == expected(ofport(ovs_lab, PATCH_EX))


def test_a_changed_port_number_or_mac_replaces_the_rules(ovs_lab: OvsLab) -> None:
    driver = FlowDriver(OvsTarget(rundir=ovs_lab.rundir))
    assert driver.sync({EGRESS}).report.ok
    ovs_lab.vsctl("set", "interface", PATCH_EX, "ofport_request=42")
    ovs_lab.vsctl("set", "bridge", "br-ex", "other-config:hwaddr=02:00:00:00:0e:77")
    result = driver.sync({EGRESS})
    assert result.report.ok
    assert ours(ovs_lab) == expected(42, mac="02:00:00:00:0e:77")


def test_missing_bridge_and_port_are_reported_and_the_rest_applied(ovs_lab: OvsLab) -> None:
    driver = FlowDriver(OvsTarget(rundir=ovs_lab.rundir))
    wanted = {EGRESS, EgressFlow("br-nope", PATCH_EX), EgressFlow("br-ex", "no-such-port"),
              EgressFlow("br-int", "patch-br-int-to-provnet-physnet1")}
    result = driver.sync(wanted)
    assert result.report.ok
    reasons = {b.what: b.reason for b in result.changes.blocked}
    assert reasons[f"egress flow br-nope/{PATCH_EX}"] == "bridge br-nope does not exist"
    assert [b.what for b in result.changes.waiting] == ["egress flow br-ex/no-such-port"]
    assert reasons["egress flow br-int/patch-br-int-to-provnet-physnet1"] == (
        "br-int is the integration bridge: never managed")
    assert ours(ovs_lab) == expected(ofport(ovs_lab, PATCH_EX))
    assert ours(ovs_lab, "br-int") == []


def test_flow_timings(ovs_lab: OvsLab, capsys: pytest.CaptureFixture[str]) -> None:
    """Reported, not asserted."""
    driver = FlowDriver(OvsTarget(rundir=ovs_lab.rundir))
    t0 = time.perf_counter()
    actual = driver.read({EGRESS})
    t1 = time.perf_counter()
    report = driver.apply(diff({EGRESS}, actual))
    t2 = time.perf_counter()
    steady = driver.sync({EGRESS})
    t3 = time.perf_counter()
    assert report.ok
    assert steady.changes.operations == 0
    with capsys.disabled():
        print(f"\nflows: read {1e3 * (t1 - t0):.1f} ms, apply 2 rules (one bundle) "
              f"{1e3 * (t2 - t1):.1f} ms, steady-state sync {1e3 * (t3 - t2):.1f} ms")
