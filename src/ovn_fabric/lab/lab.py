"""A lab's life cycle: up, down, and the operations tests and the demo perform on it.

`up` builds in steps and reports each with its duration; if a step fails, everything already made
is removed and the error names the step. `down` removes exactly what belongs to the lab's prefix:
the processes inside its namespaces (found with `ip netns pids`, so nothing outside is touched),
the namespaces, and its directory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from ovn_fabric.lab import fabric
from ovn_fabric.lab.paths import LabPaths
from ovn_fabric.lab.procs import netns_pids, terminate
from ovn_fabric.lab.sh import Timeout, output, run, wait_until_fine
from ovn_fabric.lab.topology import Link, Role, Topology, load

Progress = Callable[[str], None]


class LabError(RuntimeError):
    """A lab operation failed; the message says which step and why."""


@dataclass(frozen=True, slots=True)
class Lab:
    """A running lab: its names and files, and the topology it was built from."""

    paths: LabPaths
    topology: Topology

    @property
    def prefix(self) -> str:
        return self.paths.prefix

    def netns(self, device: str) -> str:
        self.topology.device(device)  # raises KeyError naming an unknown device
        return self.paths.netns(device)


def _quiet(_: str) -> None:
    return None


def lab_namespaces(paths: LabPaths) -> list[str]:
    """Every namespace that belongs to this lab (its devices and its VMs)."""
    names = output(["ip", "netns", "list"]).split("\n")
    mine = f"{paths.prefix}-"
    return sorted(n.split()[0] for n in names if n.startswith(mine))


def open_lab(prefix: str) -> Lab:
    """The lab that `up` built under this prefix."""
    paths = LabPaths(prefix)
    try:
        state = json.loads(paths.state_file.read_text())
    except FileNotFoundError:
        raise LabError(f"no lab with prefix {prefix!r} is up (no {paths.state_file})") from None
    return Lab(paths, load(state["topology"]))


def up(topology_ref: str, prefix: str, progress: Progress = _quiet, *,
       with_ovn: bool = True) -> Lab:
    """Build the whole lab; on any failure remove what was built and raise LabError.
    Without OVN, only the fabric (namespaces, links, FRR) is built."""
    paths = LabPaths(prefix)
    topology = load(topology_ref)
    fabric.require_binaries()
    if paths.lab_dir.exists() or lab_namespaces(paths):
        raise LabError(f"a lab with prefix {prefix!r} already exists: run `ovn-fabric lab down "
                       f"--prefix {prefix}` first, or choose another prefix")
    lab = Lab(paths, topology)
    paths.lab_dir.mkdir(parents=True)
    paths.lab_dir.chmod(0o755)
    started = time.monotonic()
    try:
        _build_fabric(lab, progress)
        if with_ovn:
            _build_ovn(lab, progress)
    except Exception as exc:
        progress(f"failed: {exc}; removing what was built")
        down(prefix)
        raise LabError(str(exc)) from exc
    paths.state_file.write_text(json.dumps(
        {"prefix": prefix, "topology": str(_topology_path(topology_ref)), "ovn": with_ovn,
         "built_in_s": round(time.monotonic() - started, 2)}, indent=2))
    progress(f"lab {prefix!r} ({topology.name}) is up in {time.monotonic() - started:.1f} s")
    return lab


def _topology_path(ref: str) -> str:
    from ovn_fabric.lab.topology import BUILTIN, builtin_path  # noqa: PLC0415

    return str(builtin_path(ref)) if ref in BUILTIN else str(Path(ref).resolve())


@contextmanager
def _step(progress: Progress, what: str) -> Iterator[None]:
    start = time.monotonic()
    progress(f"{what} ...")
    try:
        yield
    except Exception as exc:
        raise LabError(f"step '{what}' failed: {exc}") from exc
    progress(f"{what}: done in {time.monotonic() - start:.2f} s")


def _build_fabric(lab: Lab, progress: Progress) -> None:
    topo, paths = lab.topology, lab.paths
    with _step(progress, f"{len(topo.devices)} namespaces with routing sysctls"):
        fabric.create_namespaces(paths, (d.name for d in topo.devices))
        fabric.add_loopbacks(paths, topo)
    with _step(progress, f"{len(topo.links)} links (veth pairs, unnumbered)"):
        fabric.add_links(paths, topo.links)
    with _step(progress, "FRR on every device (zebra, bgpd, bfdd, staticd)"):
        fabric.start_all_frr(paths, topo)
    with _step(progress, "links up; control-plane VIP on the controller's loopback"):
        fabric.set_links(paths, topo, "up")
        add_vip(lab, topo.controller.name)
    with _step(progress, "BGP sessions established, every loopback reachable over ECMP"):
        wait_fabric_converged(lab, timeout=60)


def _build_ovn(lab: Lab, progress: Progress) -> None:
    from ovn_fabric.lab import agents, overlay, ovn  # noqa: PLC0415  (optional for fabric tests)

    topo, paths = lab.topology, lab.paths
    with _step(progress, "OVN control plane (NB, SB, northd) on " + topo.controller.name):
        ovn.start_central(paths, topo.controller.name)
    with _step(progress, f"OVS + ovn-controller on {len(topo.chassis)} chassis, "
                         "tunnel endpoints on br-phy"):
        sb = f"tcp:{topo.control_plane.vip4}:6642"
        mappings = {topo.provider.physnet: topo.provider.bridge}

        def start(name: str) -> None:
            dev = topo.device(name)
            endpoint = overlay.endpoint(topo, name)
            overlay.prepare(paths, endpoint)
            ovn.start_chassis(paths, name, system_id=name, hostname=name,
                              encap_ip=str(endpoint.address), sb_remote=sb,
                              bridge_mappings=mappings, gateway=Role.GATEWAY in dev.roles,
                              extra_bridges=endpoint.ovs_bridges)
            overlay.finish(paths, endpoint)

        with ThreadPoolExecutor(max_workers=3) as pool:
            list(pool.map(start, [d.name for d in topo.chassis]))
    with _step(progress, "chassis registered in the SB over the fabric"):
        ovn.wait_chassis(paths, topo.controller.name, [d.name for d in topo.chassis],
                         timeout=30)
    with _step(progress, "every tunnel endpoint routed to every chassis over ECMP"):
        overlay.wait_endpoints_routed(lab, timeout=30)
    with _step(progress, f"provider network {topo.provider.name!r}, created as Neutron does"):
        ovn.create_provider_network(paths, topo.controller.name, topo.provider)
    with _step(progress, f"ovn-fabric agent on {len(topo.chassis)} chassis, in sync"):
        agents.start_all(lab)


# --- tear-down --------------------------------------------------------------------------------


def down(prefix: str, progress: Progress = _quiet) -> list[str]:
    """Remove every process, namespace and file of the lab. Returns the namespaces removed."""
    paths = LabPaths(prefix)
    namespaces = lab_namespaces(paths)
    pids = [pid for ns in namespaces for pid in netns_pids(ns)]
    terminate(pids)
    for ns in namespaces:
        run(["ip", "netns", "delete", ns], check=False)
    if paths.lab_dir.exists():
        run(["rm", "-rf", "--one-file-system", str(paths.lab_dir)])
    with suppress(OSError):          # the shared parent, once no other lab is in it
        paths.root.rmdir()
    progress(f"removed {len(namespaces)} namespaces and {len(pids)} processes of lab {prefix!r}")
    return namespaces


# --- fabric state -----------------------------------------------------------------------------


def bgp_peers(lab: Lab, device: str) -> dict[str, str]:
    """Interface name -> BGP state of every session of the device."""
    summary = json.loads(fabric.vtysh(lab.paths, device, "-c", "show bgp summary json"))
    peers = summary.get("ipv4Unicast", {}).get("peers", {})
    return {name: str(p.get("state")) for name, p in peers.items()}


def bfd_peers(lab: Lab, device: str) -> dict[str, str]:
    """Interface name -> BFD status of every BFD session of the device."""
    peers = json.loads(fabric.vtysh(lab.paths, device, "-c", "show bfd peers json"))
    return {str(p.get("interface")): str(p.get("status")) for p in peers}


def kernel_routes(lab: Lab, device: str, family: int = 4) -> list[dict[str, object]]:
    routes: list[dict[str, object]] = json.loads(
        output(["ip", f"-{family}", "-j", "route", "show"], netns=lab.netns(device)))
    return routes


def nexthop_count(route: dict[str, object]) -> int:
    """How many next hops a kernel route (from `ip -j route`) has."""
    hops = route.get("nexthops")
    return len(hops) if isinstance(hops, list) else 1


def route_to(lab: Lab, device: str, address: str) -> dict[str, object] | None:
    family = 6 if ":" in address else 4
    plen = "128" if family == 6 else "32"
    for route in kernel_routes(lab, device, family):
        if route.get("dst") in (address, f"{address}/{plen}"):
            return route
    return None


def fabric_problems(lab: Lab) -> list[str]:
    """What is not yet right in the fabric; empty when converged:
    - every BGP session Established and every BFD peer up;
    - every server has an ECMP route (a next hop per uplink, at least two) to every other
      server's loopbacks, and a route to every switch's loopbacks;
    - every switch has a route to every server's loopbacks.
    Switches need no route to each other's loopbacks: two spines of one AS never learn each
    other's (eBGP loop prevention), as in any Clos fabric."""
    topo = lab.topology
    problems: list[str] = []
    for dev in topo.devices:
        expected = {i.ifname for i in topo.interfaces(dev.name)}
        peers = bgp_peers(lab, dev.name)
        down_peers = sorted(p for p in expected if peers.get(p) != "Established")
        if down_peers:
            problems.append(f"{dev.name}: BGP not established with {', '.join(down_peers)}")
            continue
        bfd = bfd_peers(lab, dev.name)
        bfd_down = sorted(p for p in expected if bfd.get(p) != "up")
        if bfd_down:
            problems.append(f"{dev.name}: BFD not up with {', '.join(bfd_down)}")
        targets = [o for o in topo.devices if o is not dev and (dev.is_host or o.is_host)]
        for other in targets:
            for addr in (str(other.loopback4), str(other.loopback6)):
                route = route_to(lab, dev.name, addr)
                if route is None:
                    problems.append(f"{dev.name}: no route to {other.name} ({addr})")
                elif dev.is_host and other.is_host and len(expected) > 1 \
                        and nexthop_count(route) < 2:
                    problems.append(f"{dev.name}: route to {other.name} ({addr}) is not ECMP")
    return problems


def wait_fabric_converged(lab: Lab, timeout: float) -> None:
    try:
        wait_until_fine(lambda: fabric_problems(lab), timeout=timeout, interval=0.25,
                        what="fabric convergence")
    except Timeout as exc:
        raise LabError(str(exc)) from exc


# --- operations on a running lab ----------------------------------------------------------------


def vip_holder(lab: Lab) -> str | None:
    """The device whose loopback holds the control-plane VIP, if any."""
    vip = str(lab.topology.control_plane.vip4)
    for dev in lab.topology.hosts:
        addrs = output(["ip", "-4", "-o", "addr", "show", "dev", "lo"], netns=lab.netns(dev.name))
        if f" {vip}/32 " in addrs:
            return dev.name
    return None


def add_vip(lab: Lab, device: str) -> None:
    cp, ns = lab.topology.control_plane, lab.netns(device)
    run(["ip", "addr", "replace", f"{cp.vip4}/32", "dev", "lo"], netns=ns)
    run(["ip", "-6", "addr", "replace", f"{cp.vip6}/128", "dev", "lo"], netns=ns)


def del_vip(lab: Lab, device: str) -> None:
    cp, ns = lab.topology.control_plane, lab.netns(device)
    run(["ip", "addr", "del", f"{cp.vip4}/32", "dev", "lo"], netns=ns, check=False)
    run(["ip", "-6", "addr", "del", f"{cp.vip6}/128", "dev", "lo"], netns=ns, check=False)


def move_vip(lab: Lab, to_device: str) -> str | None:
    """Move the control-plane VIP to another host; returns where it was."""
    if not lab.topology.device(to_device).is_host:
        raise LabError(f"{to_device} is a fabric switch; the VIP lives on a server")
    holder = vip_holder(lab)
    if holder is not None:
        del_vip(lab, holder)
    add_vip(lab, to_device)
    return holder


def find_link(lab: Lab, a: str, b: str, index: int = 0) -> Link:
    links = [ln for ln in lab.topology.links if {ln.a.device, ln.b.device} == {a, b}]
    if not links:
        raise LabError(f"no link between {a} and {b}")
    if index >= len(links):
        raise LabError(f"{a} and {b} have {len(links)} link(s); index {index} does not exist")
    return links[index]


def _nft_table(ifname: str) -> str:
    return "silent_" + "".join(c if c.isalnum() else "_" for c in ifname)


def cut_link(lab: Lab, link: Link, *, silent: bool) -> None:
    """Break a link. A cut takes the carrier down (the peer sees NO-CARRIER at once); a silent
    failure keeps both carriers up and drops every frame arriving on either end (nftables
    netdev ingress), so only BFD can notice."""
    if not silent:
        run(["ip", "link", "set", link.a.ifname, "down"], netns=lab.netns(link.a.device))
        return
    for end in (link.a, link.b):
        table = _nft_table(end.ifname)
        rules = (f"table netdev {table} {{\n chain drop_all {{\n"
                 f"  type filter hook ingress device \"{end.ifname}\" priority -500; "
                 "policy drop;\n }\n}\n")
        run(["nft", "-f", "-"], netns=lab.netns(end.device), input_text=rules)


def restore_link(lab: Lab, link: Link) -> None:
    for end in (link.a, link.b):
        ns = lab.netns(end.device)
        run(["nft", "delete", "table", "netdev", _nft_table(end.ifname)], netns=ns, check=False)
        run(["ip", "link", "set", end.ifname, "up"], netns=ns)
