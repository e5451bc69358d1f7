"""VMs plugged Neutron-style into the three-rack lab through the CLI: two VMs on one compute node
talk over OVN (IPv4, IPv6, TCP); `vm del` removes every trace."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ovn_fabric.lab import ovn
from ovn_fabric.lab.lab import Lab
from ovn_fabric.lab.sh import output, run
from ovn_fabric.lab.vm import load_vm

pytestmark = pytest.mark.lab


def _cli(lab: Lab, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "ovn_fabric.cli", "lab", *args[:2],
                           "--prefix", lab.prefix, *args[2:]],
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _ping(lab: Lab, vm: str, address: str) -> bool:
    return run(["ping", "-c", "1", "-W", "2", address], netns=lab.paths.vm_netns(vm),
               check=False).returncode == 0


def test_two_vms_on_one_node_talk_and_del_removes_them(three_rack: Lab) -> None:
    central = three_rack.topology.controller.name
    _cli(three_rack, "vm", "add", "t1", "--node", "compute1")
    _cli(three_rack, "vm", "add", "t2", "--node", "compute1")
    try:
        t1, t2 = load_vm(three_rack.paths, "t1"), load_vm(three_rack.paths, "t2")
        listing = _cli(three_rack, "vm", "list")
        assert f"{t1.ip4}" in listing
        assert f"{t2.ip6}" in listing
        # bound where Neutron asked, the way Neutron asked
        chassis = ovn.sbctl(three_rack.paths, central, "--bare", "--columns=chassis", "find",
                            "Port_Binding", f"logical_port={t1.port_id}").strip()
        name = ovn.sbctl(three_rack.paths, central, "--bare", "--columns=name", "list",
                         "Chassis", chassis).strip()
        assert name == "compute1"
        assert _ping(three_rack, "t1", str(t2.ip4.ip))
        assert _ping(three_rack, "t2", str(t1.ip6.ip))
        # TCP through the userspace datapath (checksums filled in): 1 MB across
        server = subprocess.Popen(
            ["ip", "netns", "exec", t2.netns, sys.executable, "-c",
             "import socket;s=socket.create_server(('0.0.0.0',5201));c,_=s.accept();n=0\n"
             "while (b:=c.recv(65536)): n+=len(b)\nprint(n)"],
            stdout=subprocess.PIPE, text=True)
        run(["python3", "-c",
             "import socket,time\nfor _ in range(100):\n try:\n"
             f"  s=socket.create_connection(('{t2.ip4.ip}',5201),timeout=1);break\n"
             " except OSError: time.sleep(0.05)\ns.sendall(b'x'*1000000);s.close()"],
            netns=t1.netns)
        out, _ = server.communicate(timeout=20)
        assert out.strip() == "1000000"
    finally:
        _cli(three_rack, "vm", "del", "t1")
        _cli(three_rack, "vm", "del", "t2")
    assert t1.netns not in output(["ip", "netns", "list"])
    assert ovn.nbctl(three_rack.paths, central, "--bare", "--columns=name", "find",
                     "Logical_Switch_Port", f"name={t1.port_id}").strip() == ""
    assert t1.tap not in ovn.vsctl(three_rack.paths, "compute1", "list-ports", "br-int")
