"""Probing a running lab: pings, outages measured under a 10 ms ping, which leg a flow takes.

Shared by the tests, the benchmarks and the demo: one way of measuring, so figures agree."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from ovn_fabric.lab import ovn
from ovn_fabric.lab.lab import Lab, kernel_routes, route_to
from ovn_fabric.lab.sh import run, wait_until
from ovn_fabric.lab.topology import Role


def pings(lab: Lab, device: str, address: str) -> bool:
    proc = run(["ping", "-c", "1", "-W", "1", address], netns=lab.netns(device), check=False)
    return proc.returncode == 0


@dataclass(frozen=True, slots=True)
class Outage:
    sent: int
    received: int
    longest_gap_ms: float     # longest run of lost replies, times the interval
    lost_seqs: tuple[int, ...] = ()   # icmp_seq of every request without a reply
    action_seq: int = 0       # the last icmp_seq answered before the action began

    @property
    def lost(self) -> int:
        return self.sent - self.received


def ping_through(netns: str, address: str, action: Callable[[], None], *,
                 seconds: float = 3.0, interval_ms: int = 10, lead_in: int = 30) -> Outage:
    """Ping every `interval_ms` for `seconds`; once `lead_in` replies have arrived, run
    `action`; return the longest run of lost replies."""
    count = int(seconds * 1000 / interval_ms)
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, "ping", "-n", "-i", str(interval_ms / 1000),
         "-c", str(count), "-W", "1", address],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    stdout = proc.stdout
    if stdout is None:
        raise RuntimeError("ping's output is not a pipe")
    reader = threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")), daemon=True)
    reader.start()
    wait_until(lambda: sum("icmp_seq=" in ln for ln in lines) >= lead_in,
               timeout=5, what=f"{lead_in} ping replies from {address} before the action")
    before = list(lines)
    action()
    proc.wait(timeout=seconds + 10)
    reader.join(timeout=5)
    seqs = sorted({int(m) for m in re.findall(r"icmp_seq=(\d+) ", "".join(lines))})
    if not seqs:
        return Outage(count, 0, seconds * 1000, tuple(range(1, count + 1)))
    gaps = [b - a - 1 for a, b in zip([0, *seqs], [*seqs, count + 1], strict=True)]
    answered_before = [int(m) for m in re.findall(r"icmp_seq=(\d+) ", "".join(before))]
    return Outage(count, len(seqs), max(gaps) * interval_ms,
                  tuple(sorted(set(range(1, count + 1)) - set(seqs))),
                  max(answered_before, default=0))


def route_devs(lab: Lab, device: str, address: str) -> set[str]:
    """The interfaces of the kernel route's next hops (empty if there is no route)."""
    route = route_to(lab, device, address)
    if route is None:
        return set()
    hops = route.get("nexthops")
    if isinstance(hops, list):
        return {str(h.get("dev")) for h in hops}
    return {str(route.get("dev"))}


def tx_packets(lab: Lab, device: str, ifname: str) -> int:
    text = run(["cat", f"/sys/class/net/{ifname}/statistics/tx_packets"],
               netns=lab.netns(device)).stdout
    return int(text)


def busy_uplink(lab: Lab, device: str, address: str) -> str:
    """The uplink that carries this device's pings to `address` (ECMP hashes a flow onto one
    leg); breaking the idle leg would prove nothing."""
    ifaces = [i.ifname for i in lab.topology.interfaces(device)]
    before = {i: tx_packets(lab, device, i) for i in ifaces}
    run(["ping", "-c", "20", "-i", "0.01", address], netns=lab.netns(device))
    return max(ifaces, key=lambda i: tx_packets(lab, device, i) - before[i])


_TCP_SERVER = """
import socket
s = socket.create_server(("::", 5201), family=socket.AF_INET6, dualstack_ipv6=True)
print("listening", flush=True)
c, _ = s.accept()
n = 0
while (b := c.recv(65536)):
    n += len(b)
print(n, flush=True)
"""

_TCP_CLIENT = """
import socket, sys
s = socket.create_connection((sys.argv[1], 5201), timeout=10)
s.sendall(b"x" * int(sys.argv[2]))
s.shutdown(socket.SHUT_WR)
s.recv(1)
s.close()
"""


def tcp_transfer(src_netns: str, dst_netns: str, address: str, size: int = 1_000_000) -> int:
    """Send `size` bytes over TCP from a process in `src_netns` to a server in `dst_netns`
    listening on `address` (port 5201, IPv4 or IPv6); returns the bytes the server received."""
    server = subprocess.Popen(["ip", "netns", "exec", dst_netns, sys.executable, "-c",
                               _TCP_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        stdout = server.stdout
        if stdout is None or stdout.readline().strip() != "listening":
            raise RuntimeError(f"the TCP server in {dst_netns} did not start")
        run([sys.executable, "-c", _TCP_CLIENT, address, str(size)], netns=src_netns,
            timeout=30)
        out, _ = server.communicate(timeout=30)
        return int(out.strip())
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def spines(lab: Lab) -> tuple[str, ...]:
    return tuple(d.name for d in lab.topology.devices if Role.SPINE in d.roles)


def leaves_of(lab: Lab, node: str) -> tuple[str, ...]:
    """The switches a server is homed to (its rack's leaves), from the topology."""
    return tuple(i.peer.name for i in lab.topology.interfaces(node))


def at_spines_via(lab: Lab, address: str, node: str) -> bool:
    """Whether every spine routes `address` over exactly `node`'s leaves (all of them, ECMP)."""
    leaves = set(leaves_of(lab, node))
    return all(
        route_devs(lab, spine, address)
        == {i.ifname for i in lab.topology.interfaces(spine) if i.peer.name in leaves}
        for spine in spines(lab))


def tunnel_bfd_state(lab: Lab, node: str, remote: str) -> str:
    """The BFD state of `node`'s Geneve tunnel to chassis `remote` ("" when there is none)."""
    tunnels = ovn.tunnel_bfd(lab.paths, node)
    return tunnels.get(str(lab.topology.encap(remote)), {}).get("state", "")


def wait_gateway_bfd_up(lab: Lab, first: str, second: str, timeout: float) -> None:
    """Until the tunnel between two gateway chassis has BFD up on both sides. Until then OVN may
    let the lower-priority one claim a router's cr-lrp too (it cannot see the other), and the
    agents advertise from wherever it is claimed. Each side reaches 'up' on its own schedule (a
    side in 'init' turns 'up' at the peer's next control packet, up to OVN's 1 s min_tx later),
    so both are polled."""
    wait_until(lambda: tunnel_bfd_state(lab, first, second) == "up"
               and tunnel_bfd_state(lab, second, first) == "up", timeout=timeout,
               what=f"BFD between {first} and {second} up on both sides")


def wait_learnt(lab: Lab, node: str, prefix: str, timeout: float) -> None:
    """Wait until `node`'s kernel has a route to exactly `prefix` (e.g. learnt by BGP)."""
    family = 6 if ":" in prefix else 4
    wait_until(lambda: any(r.get("dst") == prefix for r in kernel_routes(lab, node, family)),
               timeout=timeout, what=f"{prefix} learnt by {node}")
