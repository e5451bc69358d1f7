"""Build the layer-3 fabric of a lab: one network namespace per device, veth links, loopback
addresses, routing sysctls, and FRR (zebra, bgpd, bfdd, staticd) running as user frr with every
file under the lab's directory (no /etc/frr, no -N pathspace to clean up afterwards).

Order matters and follows LAB_NOTES.md: sysctls (accept_dad=0) before interfaces exist; links stay
down until every device's FRR is configured, then come up together.
"""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ovn_fabric.lab.frr_config import render
from ovn_fabric.lab.paths import LabPaths
from ovn_fabric.lab.sh import output, run
from ovn_fabric.lab.topology import Link, Topology

FRR_BIN = Path("/usr/lib/frr")
FRR_DAEMONS = ("zebra", "bgpd", "bfdd", "staticd")

# Per-namespace kernel settings of every device and node (LAB_NOTES.md, "Routing-layer sysctls").
DEVICE_SYSCTLS = {
    "net.ipv6.conf.default.accept_dad": "0",
    "net.ipv6.conf.all.accept_dad": "0",
    "net.ipv4.ip_forward": "1",
    "net.ipv6.conf.all.forwarding": "1",
    "net.ipv6.conf.default.forwarding": "1",
    "net.ipv4.fib_multipath_hash_policy": "1",
    "net.ipv6.fib_multipath_hash_policy": "1",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
    "net.ipv4.conf.all.ignore_routes_with_linkdown": "1",
    "net.ipv4.conf.default.ignore_routes_with_linkdown": "1",
    "net.ipv6.conf.all.ignore_routes_with_linkdown": "1",
    "net.ipv6.conf.default.ignore_routes_with_linkdown": "1",
}


def create_namespaces(paths: LabPaths, names: Iterable[str]) -> None:
    for name in names:
        ns = paths.netns(name)
        run(["ip", "netns", "add", ns])
        run(["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in DEVICE_SYSCTLS.items())], netns=ns)
        run(["ip", "link", "set", "lo", "up"], netns=ns)


def add_loopbacks(paths: LabPaths, topology: Topology) -> None:
    for dev in topology.devices:
        ns = paths.netns(dev.name)
        run(["ip", "addr", "add", f"{dev.loopback4}/32", "dev", "lo"], netns=ns)
        run(["ip", "-6", "addr", "add", f"{dev.loopback6}/128", "dev", "lo"], netns=ns)


def add_links(paths: LabPaths, links: Iterable[Link]) -> None:
    """Create each link as a veth pair straight inside the two namespaces, left down."""
    batch = [
        f"link add name {ln.a.ifname} netns {paths.netns(ln.a.device)} type veth "
        f"peer name {ln.b.ifname} netns {paths.netns(ln.b.device)}"
        for ln in links
    ]
    run(["ip", "-batch", "-"], input_text="\n".join(batch) + "\n")


def set_links(paths: LabPaths, topology: Topology, state: str) -> None:
    by_ns: dict[str, list[str]] = {}
    for ln in topology.links:
        for end in (ln.a, ln.b):
            by_ns.setdefault(paths.netns(end.device), []).append(
                f"link set {end.ifname} {state}")
    for ns, batch in by_ns.items():
        run(["ip", "-batch", "-"], netns=ns, input_text="\n".join(batch) + "\n")


def _chown_frr(path: Path) -> None:
    frr = pwd.getpwnam("frr")
    os.chown(path, frr.pw_uid, frr.pw_gid)


def start_frr(paths: LabPaths, topology: Topology, name: str) -> None:
    """Start FRR's daemons in the device's namespace and load its rendered configuration."""
    ns = paths.netns(name)
    frr_dir = paths.frr_dir(name)
    frr_dir.mkdir(parents=True, exist_ok=True)
    for parent in (frr_dir.parent, frr_dir):
        parent.chmod(0o755)
    _chown_frr(frr_dir)
    log = frr_dir / "frr.log"  # created here: the daemons open it as root, then reopen as frr
    log.touch(mode=0o644)
    _chown_frr(log)
    conf = frr_dir / "frr.conf"
    conf.write_text(render(topology, name, log_file=str(log)))
    (frr_dir / "vtysh.conf").write_text("service integrated-vtysh-config\n")
    for daemon in FRR_DAEMONS:
        run([str(FRR_BIN / daemon), "-d", "-u", "frr", "-g", "frr",
             "-i", str(frr_dir / f"{daemon}.pid"), "--vty_socket", str(frr_dir),
             "-z", str(frr_dir / "zserv.api"), "-f", "/dev/null", "-P", "0",
             "--log", f"file:{log}"], netns=ns)
    apply_frr_config(paths, name)


def apply_frr_config(paths: LabPaths, name: str) -> None:
    """Push the device's frr.conf into its running daemons (vtysh exits 0 only if every line
    was accepted)."""
    frr_dir = paths.frr_dir(name)
    vtysh(paths, name, "-f", str(frr_dir / "frr.conf"))


def vtysh(paths: LabPaths, name: str, *args: str) -> str:
    return output(["vtysh", "--vty_socket", str(paths.frr_dir(name)), *args],
                  netns=paths.netns(name))


def start_all_frr(paths: LabPaths, topology: Topology) -> None:
    """Start FRR everywhere, a few devices at a time (process start-up dominates, not CPU)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda d: start_frr(paths, topology, d.name), topology.devices))


def require_binaries() -> None:
    """Fail loudly, naming what is missing, before anything is created."""
    needed = [str(FRR_BIN / d) for d in FRR_DAEMONS] + [
        "vtysh", "ip", "sysctl", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl",
        "ovn-northd", "ovn-controller", "ovn-nbctl", "ovn-sbctl", "ovsdb-tool", "nft",
    ]
    missing = [b for b in needed if shutil.which(b) is None and not Path(b).exists()]
    if missing:
        raise FileNotFoundError(
            "missing binaries: " + ", ".join(missing) + " (run scripts/install as root)")
