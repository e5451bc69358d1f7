"""Namespaces and an OVS instance for the dataplane lab tests, all named `hk-*` and kept under
/run/ovn-fabric/hk, so that other labs on the machine are never touched."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from ovn_fabric.lab.procs import alive, netns_pids, terminate
from ovn_fabric.lab.sh import output, run, wait_until

KERNEL_NS = "hk-kern"
OVS_NS = "hk-ovs"
HK_DIR = Path("/run/ovn-fabric/hk")
OVS_DIR = HK_DIR / "ovs"
VSWITCH_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
BR_EX_MAC = "02:00:00:00:0e:01"
PATCH_EX = "patch-provnet-physnet1-to-br-int"   # longer than 15 characters, as OVN names it
PATCH_INT = "patch-br-int-to-provnet-physnet1"
DAEMONS = ("ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovsdb-tool")


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("the dataplane lab tests need root (network namespaces, OVS)")


def remove_namespace(netns: str) -> None:
    """Kill what runs in one of our namespaces, then delete it (no-op if it does not exist)."""
    if netns not in output(["ip", "netns", "list"]).split():
        return
    terminate(netns_pids(netns))
    run(["ip", "netns", "del", netns])


def create_namespace(netns: str) -> None:
    remove_namespace(netns)
    run(["ip", "netns", "add", netns])
    for sysctl in ("net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0"):
        run(["sysctl", "-qw", sysctl], netns=netns)
    run(["ip", "-n", netns, "link", "set", "lo", "up"])


@dataclass(frozen=True)
class OvsLab:
    """One OVS in namespace hk-ovs: br-ex (netdev, fixed MAC) patched to br-int."""

    netns: str
    rundir: Path

    @property
    def db(self) -> str:
        return f"unix:{self.rundir}/db.sock"

    def env(self) -> dict[str, str]:
        d = str(self.rundir)
        return {"OVS_RUNDIR": d, "OVS_DBDIR": d, "OVS_LOGDIR": d, "OVS_SYSCONFDIR": d}

    def vsctl(self, *args: str) -> str:
        return output(["ovs-vsctl", f"--db={self.db}", "--timeout=10", *args])

    def ofctl(self, *args: str) -> str:
        return output(["ovs-ofctl", "--timeout=10", *args], env=self.env())

    def mgmt(self, bridge: str) -> str:
        return f"unix:{self.rundir}/{bridge}.mgmt"

    def dump(self, bridge: str = "br-ex") -> list[str]:
        """Every rule on the bridge as `dump-flows --no-stats --no-names` prints it."""
        out = self.ofctl("--no-stats", "--no-names", "dump-flows", self.mgmt(bridge))
        return sorted(line.strip() for line in out.splitlines() if "actions=" in line)

    def _daemon(self, name: str, *argv: str) -> None:
        run([name, *argv, "--detach", "--no-chdir", f"--pidfile={self.rundir}/{name}.pid",
             f"--log-file={self.rundir}/{name}.log"], netns=self.netns, env=self.env())

    def start_vswitchd(self) -> None:
        self._daemon("ovs-vswitchd", self.db, f"--unixctl={self.rundir}/ovs-vswitchd.ctl")
        wait_until(lambda: self.answers("br-ex"), timeout=20.0,
                   what="ovs-vswitchd to serve br-ex")

    def answers(self, bridge: str) -> bool:
        probe = ["ovs-ofctl", "--timeout=2", "show", self.mgmt(bridge)]
        return run(probe, check=False).returncode == 0

    def vswitchd_pid(self) -> int:
        pid = int((self.rundir / "ovs-vswitchd.pid").read_text())
        if pid not in netns_pids(self.netns):
            raise AssertionError(f"ovs-vswitchd pid {pid} is not in namespace {self.netns}")
        return pid

    def stop_vswitchd(self) -> None:
        pid = self.vswitchd_pid()
        terminate([pid])
        wait_until(lambda: not alive(pid), timeout=10.0, what="ovs-vswitchd to exit")


def build_ovs(lab: OvsLab) -> None:
    lab.rundir.mkdir(parents=True)
    run(["ovsdb-tool", "create", str(lab.rundir / "conf.db"), str(VSWITCH_SCHEMA)])
    lab._daemon("ovsdb-server", str(lab.rundir / "conf.db"), f"--remote=punix:{lab.rundir}/db.sock",
                f"--unixctl={lab.rundir}/ovsdb-server.ctl")
    lab.vsctl("--no-wait", "init")
    lab.vsctl(
        "--no-wait",
        "--", "add-br", "br-ex", "--", "set", "bridge", "br-ex", "datapath_type=netdev",
        f"other-config:hwaddr={BR_EX_MAC}",
        "--", "add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev",
        "other-config:hwaddr=02:00:00:00:0e:02",
        "--", "add-port", "br-ex", PATCH_EX, "--", "set", "interface", PATCH_EX, "type=patch",
        f"options:peer={PATCH_INT}",
        "--", "add-port", "br-int", PATCH_INT, "--", "set", "interface", PATCH_INT, "type=patch",
        f"options:peer={PATCH_EX}",
    )
    lab.start_vswitchd()
