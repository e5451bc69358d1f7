"""FRR configurations are rendered whole and deterministically; golden files pin them, and real
FRR (vtysh's own parser, `vtysh -C`) accepts every golden file.

Regenerate after an intended change: UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_frr_config.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ovn_fabric.lab.frr_config import FrrConfigError, as_reused_elsewhere, peer_groups, render
from ovn_fabric.lab.topology import BUILTIN, builtin_path, load, parse

GOLDEN = Path(__file__).parent.parent / "golden" / "frr"
LOG = "/run/ovn-fabric/LAB/DEVICE/frr/frr.log"
CASES = [(t, d.name) for t in BUILTIN for d in load(t).devices]


@pytest.mark.parametrize(("topology", "device"), CASES)
def test_rendered_config_matches_golden_file(topology: str, device: str) -> None:
    text = render(load(topology), device, log_file=LOG)
    golden = GOLDEN / topology / f"{device}.conf"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.read_text() == text


@pytest.mark.parametrize(("topology", "device"), CASES)
def test_golden_file_is_accepted_by_real_frr(topology: str, device: str) -> None:
    vtysh = shutil.which("vtysh")
    assert vtysh, "vtysh (package frr) is not installed: run scripts/install"
    golden = GOLDEN / topology / f"{device}.conf"
    proc = subprocess.run([vtysh, "-C", "-f", str(golden)], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rendering_is_deterministic() -> None:
    topo = load("three-rack")
    assert render(topo, "leaf2b", log_file=LOG) == render(load("three-rack"), "leaf2b",
                                                          log_file=LOG)


def test_rhosp17_policy() -> None:
    topo = load("three-rack")
    leaf = {g.name: g for g in peer_groups(topo, "leaf1a")}
    assert (leaf["SERVERS"].ibgp, leaf["SERVERS"].reflect, leaf["SERVERS"].from_hosts) == (
        True, True, True)
    assert (leaf["SPINES"].ibgp, leaf["SPINES"].to_upper_tier) == (False, True)
    # AS 64999 is reused by every rack: leaves and servers need allowas-in origin upwards
    assert as_reused_elsewhere(topo, "leaf1a")
    assert as_reused_elsewhere(topo, "compute3")
    # the two spines share AS 65000 too, but have no upper tier to accept anything from
    assert as_reused_elsewhere(topo, "spine1")
    assert not any(g.to_upper_tier for g in peer_groups(topo, "spine1"))
    host = render(topo, "compute1", log_file=LOG)
    assert "  neighbor LEAVES prefix-list HOST-ROUTES4 out" in host
    assert "  neighbor LEAVES allowas-in origin" in host
    assert "route-reflector-client" not in host
    spine = render(topo, "spine1", log_file=LOG)
    assert "allowas-in" not in spine
    assert " neighbor LEAVES remote-as external" in spine


def test_two_worker_needs_no_allowas_in() -> None:
    topo = load("two-worker")
    assert not any(as_reused_elsewhere(topo, d.name) for d in topo.devices)
    assert " neighbor router-2 interface peer-group ROUTERS" in render(topo, "worker1",
                                                                       log_file=LOG)


def test_mixed_ibgp_and_ebgp_in_one_group_is_refused() -> None:
    text = load_text("two-worker").replace('asn = 65102', 'asn = 65000')
    with pytest.raises(FrrConfigError, match="mix iBGP and eBGP"):
        render(parse(text), "router", log_file=LOG)


def load_text(name: str) -> str:
    return builtin_path(name).read_text()


def test_only_gateways_may_send_tenant_subnets_and_only_inside_the_pools() -> None:
    topo = load("three-rack")
    groups = {g.name: g for g in peer_groups(topo, "leaf2a")}
    assert set(groups) == {"GATEWAYS", "SPINES"}
    assert groups["GATEWAYS"].tenant_routes
    assert not any(g.tenant_routes for g in peer_groups(topo, "leaf1a"))   # compute1, controller
    leaf = render(topo, "leaf2a", log_file=LOG)
    assert "ip prefix-list GATEWAY-ROUTES4 seq 20 permit 10.0.0.0/16 le 32" in leaf
    assert "  neighbor GATEWAYS prefix-list GATEWAY-ROUTES6 in" in leaf
    assert "GATEWAY-ROUTES" not in render(topo, "leaf1a", log_file=LOG)
    assert "  neighbor LEAVES prefix-list GATEWAY-ROUTES4 out" in render(topo, "compute3",
                                                                        log_file=LOG)
    assert "  neighbor LEAVES prefix-list HOST-ROUTES4 out" in render(topo, "compute1",
                                                                     log_file=LOG)
    # Without tenant pools a gateway is a server like any other.
    assert "GATEWAY" not in render(load("two-worker"), "router", log_file=LOG)
