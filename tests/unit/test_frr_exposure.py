"""The agent's FRR block: rendered deterministically (golden file, accepted by vtysh -C), and the
driver's parse/diff round-trip: what it renders, once read back, needs no change."""

from __future__ import annotations

import os
import shutil
import subprocess
from ipaddress import ip_network
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ovn_fabric.config import ExposurePolicy, PrefixRule
from ovn_fabric.dataplane.frr import FrrActual, FrrError, diff, parse_running_config
from ovn_fabric.frr.exposure import exposure_config

GOLDEN = Path(__file__).parent.parent / "golden" / "frr" / "agent-exposure.conf"
POLICY = ExposurePolicy(
    allow=(PrefixRule(ip_network("172.24.4.0/24"), "a"), PrefixRule(ip_network("10.1.0.0/16"), "b"),
           PrefixRule(ip_network("2001:db8:24:4::/64"), "c")),
    deny=(PrefixRule(ip_network("10.1.255.0/24"), "d"),),
)


TENANT_SUBNETS = (ip_network("10.1.2.0/24"), ip_network("10.1.1.0/26"),
                  ip_network("2001:db8:10::/64"))


def test_golden_block_and_real_frr_accepts_it(tmp_path: Path) -> None:
    text = exposure_config(["br-vlan", "br-ex"], POLICY, TENANT_SUBNETS).render(64999)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert GOLDEN.read_text() == text
    vtysh = shutil.which("vtysh")
    assert vtysh, "vtysh (package frr) is not installed: run scripts/install"
    proc = subprocess.run([vtysh, "-C", "-f", str(GOLDEN)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout


def test_bridges_order_and_duplicates_do_not_change_the_block() -> None:
    assert exposure_config(["br-ex", "br-vlan"], POLICY) == exposure_config(
        ["br-vlan", "br-ex"], POLICY)


def test_no_allow_prefix_exposes_nothing() -> None:
    lines = exposure_config(["br-ex"], ExposurePolicy()).global_lines
    assert "ip prefix-list OVN-FABRIC-ALLOW4 seq 5 deny 0.0.0.0/0 le 32" in lines
    assert not any(" permit " in ln for ln in lines if "prefix-list" in ln)


def test_tenant_subnets_are_exact_entries_after_the_host_routes() -> None:
    lines = exposure_config(["br-ex"], POLICY, TENANT_SUBNETS).global_lines
    assert [ln for ln in lines if ln.startswith("ip prefix-list")] == [
        "ip prefix-list OVN-FABRIC-ALLOW4 seq 5 deny 10.1.255.0/24 le 32",
        "ip prefix-list OVN-FABRIC-ALLOW4 seq 10 permit 10.1.0.0/16 ge 32",
        "ip prefix-list OVN-FABRIC-ALLOW4 seq 15 permit 172.24.4.0/24 ge 32",
        "ip prefix-list OVN-FABRIC-ALLOW4 seq 100005 permit 10.1.1.0/26",
        "ip prefix-list OVN-FABRIC-ALLOW4 seq 100010 permit 10.1.2.0/24",
    ]
    assert "ipv6 prefix-list OVN-FABRIC-ALLOW6 seq 100005 permit 2001:db8:10::/64" in lines


def test_adding_a_tenant_subnet_leaves_the_host_route_entries_alone() -> None:
    before = exposure_config(["br-ex"], POLICY)
    after = exposure_config(["br-ex"], POLICY, [ip_network("10.1.2.0/24")])
    commands = diff(after, parse_running_config(before.render(64999)))
    assert commands == ["ip prefix-list OVN-FABRIC-ALLOW4 seq 100005 permit 10.1.2.0/24"]
    removal = diff(before, parse_running_config(after.render(64999)))
    assert removal == ["no ip prefix-list OVN-FABRIC-ALLOW4 seq 100005 permit 10.1.2.0/24"]


@pytest.mark.parametrize("prefix", ["10.1.2.3/32", "0.0.0.0/0", "2001:db8::1/128"])
def test_a_host_route_or_default_is_not_a_tenant_subnet(prefix: str) -> None:
    with pytest.raises(ValueError, match="neither a host route nor a default"):
        exposure_config(["br-ex"], POLICY, [ip_network(prefix)])


def test_empty_running_config_needs_the_whole_block() -> None:
    wanted = exposure_config(["br-ex"], POLICY)
    commands = diff(wanted, parse_running_config("router bgp 65001\n"))
    assert commands[-8:] == [
        "router bgp 65001",
        " address-family ipv4 unicast", "  redistribute kernel route-map OVN-FABRIC-EXPOSE4",
        " exit-address-family",
        " address-family ipv6 unicast", "  redistribute kernel route-map OVN-FABRIC-EXPOSE6",
        " exit-address-family", "exit"]


def test_foreign_lines_are_never_in_a_change() -> None:
    running = """router bgp 64999
 address-family ipv4 unicast
  redistribute connected route-map LOOPBACKS4
  redistribute kernel route-map OPERATOR
 exit-address-family
exit
ip prefix-list OPERATOR seq 5 permit 192.0.2.0/24
route-map OPERATOR permit 10
 match interface eth0
exit
"""
    actual = parse_running_config(running)
    assert actual == FrrActual(64999, frozenset(), (), frozenset())
    for command in diff(exposure_config([], ExposurePolicy()), actual):
        assert "OPERATOR" not in command
        assert "LOOPBACKS4" not in command


def test_no_bgp_instance_is_an_error() -> None:
    with pytest.raises(FrrError, match="no BGP instance"):
        diff(exposure_config(["br-ex"], POLICY), parse_running_config("hostname x\n"))


prefixes = st.sampled_from(["172.24.4.0/24", "10.1.0.0/16", "2001:db8::/64", "192.0.2.0/28",
                            "2001:db8:1::/48", "10.1.255.0/24", "172.24.4.7/32"])


@given(st.lists(st.sampled_from(["br-ex", "br-vlan", "br-two"]), max_size=3),
       st.lists(prefixes, max_size=4), st.lists(prefixes, max_size=3),
       st.integers(1, 4294967294),
       st.lists(st.sampled_from(["10.1.2.0/24", "10.1.1.0/26", "2001:db8:10::/64"]), max_size=3))
def test_rendered_block_read_back_needs_no_change(bridges: list[str], allow: list[str],
                                                  deny: list[str], asn: int,
                                                  subnets: list[str]) -> None:
    policy = ExposurePolicy(allow=tuple(PrefixRule(ip_network(p), "x") for p in allow),
                            deny=tuple(PrefixRule(ip_network(p), "y") for p in deny))
    wanted = exposure_config(sorted(set(bridges)), policy, map(ip_network, subnets))
    assert diff(wanted, parse_running_config(wanted.render(asn))) == []
