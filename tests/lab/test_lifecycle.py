"""A lab's life cycle: `up` of the two-worker shape beside the running three-rack lab, `down`
leaving the machine exactly as before, a failed `up` removing what it made, and the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ovn_fabric.lab import lab as labmod
from ovn_fabric.lab.lab import Lab, LabError, fabric_problems
from ovn_fabric.lab.probe import pings, route_devs
from ovn_fabric.lab.sh import output
from ovn_fabric.lab.topology import builtin_path

pytestmark = pytest.mark.lab

# Places where a daemon started without private paths would leave files behind.
SYSTEM_DIRS = ["/etc/frr", "/run/frr", "/run/openvswitch", "/run/ovn", "/var/log/frr",
               "/var/log/openvswitch", "/var/log/ovn", "/etc/openvswitch", "/var/lib/ovn",
               "/var/lib/openvswitch"]


def _machine_snapshot() -> dict[str, object]:
    def listing(path: str) -> list[str]:
        p = Path(path)
        return sorted(str(x) for x in p.rglob("*")) if p.exists() else []

    return {
        "namespaces": sorted(output(["ip", "netns", "list"]).split("\n")),
        "root_links": sorted(ln.split(":")[1].strip()
                             for ln in output(["ip", "-o", "link"]).splitlines()),
        "run_dirs": sorted(str(p) for p in Path("/run/ovn-fabric").glob("*"))
        if Path("/run/ovn-fabric").exists() else [],
        **{d: listing(d) for d in SYSTEM_DIRS},
    }


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_two_worker_lab_coexists_and_down_leaves_the_machine_as_before(
        three_rack: Lab) -> None:
    before = _machine_snapshot()
    lab = labmod.up("two-worker", "oftw", print)
    try:
        assert fabric_problems(lab) == []
        w2 = lab.topology.device("worker2")
        assert route_devs(lab, "worker1", str(w2.loopback4)) == {"router-1", "router-2"}
        assert pings(lab, "worker1", str(w2.loopback6))
        # the other lab is untouched and still converged
        assert fabric_problems(three_rack) == []
        pids = [int(p) for ns in labmod.lab_namespaces(lab.paths)
                for p in output(["ip", "netns", "pids", ns]).split()]
        assert len(pids) > 10   # 3 x 4 FRR daemons, ovsdb-servers, vswitchds, controllers...
    finally:
        removed = labmod.down("oftw")
    assert removed == sorted(["oftw-router", "oftw-worker1", "oftw-worker2"])
    assert not any(_alive(p) for p in pids)
    assert _machine_snapshot() == before
    assert fabric_problems(three_rack) == []


def test_failed_up_names_the_step_and_removes_what_it_made(tmp_path: Path) -> None:
    # worker2 in the router's AS puts iBGP and eBGP peers in one group: rendering FRR fails
    # after the namespaces and links exist.
    broken = tmp_path / "broken.toml"
    broken.write_text(builtin_path("two-worker").read_text().replace("asn = 65102",
                                                                     "asn = 65000"))
    before = _machine_snapshot()
    with pytest.raises(LabError, match=r"step 'FRR on every device.*mix iBGP and eBGP"):
        labmod.up(str(broken), "ofte")
    assert _machine_snapshot() == before


def test_up_refuses_a_prefix_in_use(three_rack: Lab) -> None:
    with pytest.raises(LabError, match="already exists"):
        labmod.up("three-rack", three_rack.prefix)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ovn_fabric.cli", *args], capture_output=True,
                          text=True, check=False, timeout=60)


def test_cli_status_and_exec(three_rack: Lab) -> None:
    status = _cli("lab", "status", "--prefix", three_rack.prefix)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    row = next(ln.split() for ln in lines if ln.startswith("leaf1a "))
    assert row[:6] == ["leaf1a", "leaf", "1", "10.255.0.3", "4/4", "4/4"]
    for chassis in ("compute1", "compute2", "compute3"):
        encap = f"encap={three_rack.topology.encap(chassis)}"
        assert any(ln.split()[:1] == [chassis] and ln.split()[-1] == encap for ln in lines
                   if ln.startswith("  "))
    shown = _cli("lab", "exec", "--prefix", three_rack.prefix, "compute3", "--",
                 "ip", "-4", "addr", "show", "dev", "lo")
    assert "10.255.0.12/32" in shown.stdout
    bgp = _cli("lab", "vtysh", "--prefix", three_rack.prefix, "spine1", "-c",
               "show bgp summary")
    assert "leaf3b" in bgp.stdout


def test_cli_reports_errors_without_a_traceback() -> None:
    result = _cli("lab", "status", "--prefix", "nolab")
    assert result.returncode == 1
    assert result.stderr.startswith("ovn-fabric: error: no lab with prefix 'nolab' is up")
    result = _cli("lab", "up", "/nonexistent.toml", "--prefix", "nolab")
    assert result.returncode == 1
    assert "cannot read topology" in result.stderr


def test_cli_prefix_after_the_node_selects_the_lab(three_rack: Lab) -> None:
    """`lab exec NODE --prefix P -- CMD` must run in lab P, not in the default lab."""
    shown = _cli("lab", "exec", "compute3", "--prefix", three_rack.prefix, "--",
                 "ip", "-4", "addr", "show", "dev", "lo")
    assert shown.returncode == 0, shown.stderr
    assert "10.255.0.12/32" in shown.stdout
    bgp = _cli("lab", "vtysh", "spine1", f"--prefix={three_rack.prefix}", "-c",
               "show bgp summary")
    assert "leaf3b" in bgp.stdout
