"""End-to-end acceptance of the agent (issue 3) in a three-rack lab of its own (prefix `ofe`).

What is proved, each by an outcome read back from the lab (routes, pings, flows, counters):
1. A VM in rack 1 and a VM in rack 3 of one provider network talk over the routed fabric: IPv4
   and IPv6 pings both ways with the TTL of the five routed hops, 1 MB of TCP each way, and not
   one Geneve packet through any leaf (while the same counters do see the VMs' traffic, and do
   count Geneve when some is sent).
2. The VM's /32 and /128 are at both spines over the rack's two leaves; deleting, unbinding or
   unplugging the VM withdraws them everywhere; moving it moves them to its new rack.
3. The agent killed (SIGKILL) and started again under a 10 ms ping: no packet lost, the spine
   route never touched, and the new agent adopts the state (0 changes applied).
4. Repairs: FRR restart, ovs-vswitchd restart, and the flow, route or neighbour deleted by hand;
   the last three within 1 s.
5. Exposure policy: addresses outside the allowed prefixes are refused, with a reason, and
   advertised nowhere.
6. Status: /status, `ovn-fabric status` and /metrics show what is advertised and why.

The lab is built once for the module and always removed. Every test starts from a lab with no VM
and no provider route anywhere (checked), and leaves it so.
"""

from __future__ import annotations

import functools
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ovn_fabric.lab import agents, ovn, probe
from ovn_fabric.lab import lab as labmod
from ovn_fabric.lab import vm as vmmod
from ovn_fabric.lab.fabric import vtysh
from ovn_fabric.lab.lab import Lab
from ovn_fabric.lab.sh import output, run, wait_until, wait_until_fine
from ovn_fabric.lab.vm import Vm
from ovn_fabric.model import FLOW_COOKIE, FLOW_COOKIE_MASK, RTPROT_OVN_FABRIC

pytestmark = pytest.mark.lab

PREFIX = "ofe"
SPINES = ("spine1", "spine2")
RACK = {"compute1": ("leaf1a", "leaf1b"), "compute2": ("leaf2a", "leaf2b"),
        "compute3": ("leaf3a", "leaf3b")}
LEAVES = tuple(leaf for pair in RACK.values() for leaf in pair)
COOKIE = f"cookie={FLOW_COOKIE:#x}/{FLOW_COOKIE_MASK:#x}"
PROVIDER4 = ip_network("172.24.4.0/24")
PROVIDER6 = ip_network("2001:db8:24:4::/64")
ROUTED_TTL = 59          # 64 - 5 routed hops: compute3, leaf3x, spine, leaf1y, compute1
CONVERGE_S = 5.0         # BGP: a prefix reaches or leaves every device (measured: 0.3-0.5 s)
REPAIR_S = 1.0           # the agent's promise for drift it sees (netlink) or ticks over (flows)


# --- the lab and the VMs --------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    a: Vm    # on compute1, rack 1
    c: Vm    # on compute3, rack 3


def _addresses(vm: Vm) -> tuple[str, str]:
    return str(vm.ip4.ip), str(vm.ip6.ip)


def _provider_routes(lab: Lab, device: str) -> list[str]:
    """Every route of the device inside the provider network's subnets, except the connected
    ones of br-ex: none may exist when no VM does."""
    found = []
    for family, net in ((4, PROVIDER4), (6, PROVIDER6)):
        for route in labmod.kernel_routes(lab, device, family):
            dst = str(route.get("dst"))
            if dst in ("default", "multicast") or route.get("protocol") == "kernel":
                continue
            if ip_network(dst, strict=False).subnet_of(net):  # type: ignore[arg-type]
                found.append(f"{device}: {dst} {route.get('protocol')}")
    return found


def _lab_problems(lab: Lab) -> list[str]:
    """What makes the lab not as the module found it: VMs, provider routes, agents not ok."""
    problems = [f"VM {vm.name} still recorded" for vm in vmmod.list_vms(lab.paths)]
    for dev in lab.topology.devices:
        problems += _provider_routes(lab, dev.name)
    for dev in lab.topology.chassis:
        links = json.loads(output(["ip", "-j", "link", "show"], netns=lab.netns(dev.name)))
        problems += [f"{dev.name}: {link['ifname']} left behind" for link in links
                     if str(link.get("ifname", "")).startswith("tap")]
        state = agents.status(lab, dev.name).get("state")
        if state != "ok":
            problems.append(f"agent on {dev.name}: {state}")
    return problems


def _wait_lab_clean(lab: Lab, timeout: float = CONVERGE_S) -> None:
    wait_until_fine(lambda: _lab_problems(lab), timeout=timeout, what="the lab to be clean")


def _leaves_at_spines(lab: Lab, address: str) -> dict[str, set[str]]:
    return {spine: probe.route_devs(lab, spine, address) for spine in SPINES}


def _wait_at_spines(lab: Lab, address: str, node: str, timeout: float = CONVERGE_S) -> float:
    """Wait until both spines route `address` over both leaves of `node`'s rack; the time."""
    want = set(RACK[node])
    start = time.monotonic()
    wait_until(lambda: all(devs == want for devs in _leaves_at_spines(lab, address).values()),
               timeout=timeout, what=f"{address} at both spines via {sorted(want)}")
    return time.monotonic() - start


def _wait_route_via(lab: Lab, device: str, address: str, devs: set[str]) -> None:
    wait_until(lambda: probe.route_devs(lab, device, address) == devs, timeout=CONVERGE_S,
               what=f"{device} to route {address} via {sorted(devs)}")


def _routed_anywhere(lab: Lab, address: str) -> list[str]:
    """The devices (all of them: spines, leaves, every compute) with a route to `address`."""
    return [d.name for d in lab.topology.devices if labmod.route_to(lab, d.name, address)]


def _wait_withdrawn(lab: Lab, address: str, timeout: float = CONVERGE_S) -> float:
    start = time.monotonic()
    wait_until(lambda: not _routed_anywhere(lab, address), timeout=timeout, interval=0.02,
               what=f"{address} withdrawn from every device")
    return time.monotonic() - start


@pytest.fixture
def pair(lab: Lab) -> Iterator[Pair]:
    """VM `va` on compute1 and VM `vc` on compute3, advertised at both spines; removed after,
    wherever a test moved them, and the lab checked clean."""
    _wait_lab_clean(lab)
    try:
        a = vmmod.add_vm(lab.paths, lab.topology, name="va", node="compute1")
        c = vmmod.add_vm(lab.paths, lab.topology, name="vc", node="compute3")
        for vm in (a, c):
            for address in _addresses(vm):
                _wait_at_spines(lab, address, vm.node)
            # and its node's egress flow: OVN makes the patch port only once the network is
            # local there, so the flow may follow the routes by a pass
            wait_until(functools.partial(_node_state_complete, lab, vm), timeout=5,
                       what=f"everything of {vm.name} on {vm.node}")
        yield Pair(a, c)
    finally:
        for made in vmmod.list_vms(lab.paths):
            vmmod.del_vm(lab.paths, lab.topology, made.name)
        _wait_lab_clean(lab)


# --- traffic ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pings:
    sent: int
    received: int
    ttls: tuple[int, ...]


def _ping(vm: Vm, address: str, count: int = 10) -> Pings:
    proc = run(["ping", "-n", "-c", str(count), "-i", "0.02", "-W", "2", address],
               netns=vm.netns, check=False)
    ttls = tuple(int(t) for t in re.findall(r" ttl=(\d+) ", proc.stdout))
    return Pings(count, len(ttls), ttls)


def _pings(vm: Vm, address: str) -> bool:
    return run(["ping", "-n", "-c", "1", "-W", "1", address], netns=vm.netns,
               check=False).returncode == 0


def _wait_pings(vm: Vm, address: str, timeout: float = CONVERGE_S) -> float:
    start = time.monotonic()
    wait_until(lambda: _pings(vm, address), timeout=timeout, interval=0.01,
               what=f"{vm.name} to ping {address}")
    return time.monotonic() - start


def _tcp(src: Vm, dst: Vm, address: str, size: int = 1_000_000) -> int:
    """Send `size` bytes over TCP from `src` to `dst` at `address`; what the server received."""
    return probe.tcp_transfer(src.netns, dst.netns, address, size)


# --- nftables counters on every leaf ----------------------------------------------------------

NFT_TABLE = "ofe_probe"


@dataclass(frozen=True)
class Count:
    packets: int
    bytes: int


def _install_counters(lab: Lab, a: Vm, c: Vm) -> None:
    """In every leaf, on the forward path (every packet between racks crosses two leaves):
    Geneve (UDP 6081), and the VMs' own IPv4 and IPv6 traffic."""
    a4, a6 = _addresses(a)
    c4, c6 = _addresses(c)
    rules = f"""table inet {NFT_TABLE} {{
  counter geneve {{ }}
  counter vms4 {{ }}
  counter vms6 {{ }}
  chain forward {{
    type filter hook forward priority -300; policy accept;
    udp dport 6081 counter name geneve
    ip saddr {{ {a4}, {c4} }} ip daddr {{ {a4}, {c4} }} counter name vms4
    ip6 saddr {{ {a6}, {c6} }} ip6 daddr {{ {a6}, {c6} }} counter name vms6
  }}
}}
"""
    for leaf in LEAVES:
        run(["nft", "-f", "-"], netns=lab.netns(leaf), input_text=rules)


def _remove_counters(lab: Lab) -> None:
    for leaf in LEAVES:
        run(["nft", "delete", "table", "inet", NFT_TABLE], netns=lab.netns(leaf), check=False)


def _counter(lab: Lab, name: str) -> Count:
    """A named counter summed over every leaf."""
    packets = size = 0
    for leaf in LEAVES:
        out = output(["nft", "-j", "list", "counter", "inet", NFT_TABLE, name],
                     netns=lab.netns(leaf))
        for item in json.loads(out)["nftables"]:
            if "counter" in item:
                packets += int(item["counter"]["packets"])
                size += int(item["counter"]["bytes"])
    return Count(packets, size)


# --- 1. the data path -------------------------------------------------------------------------


def test_rack1_and_rack3_vms_talk_over_the_routed_fabric_without_geneve(
        lab: Lab, pair: Pair) -> None:
    a, c = pair.a, pair.c
    a4, a6 = _addresses(a)
    c4, c6 = _addresses(c)
    _install_counters(lab, a, c)
    try:
        geneve_before, v4_before, v6_before = (_counter(lab, n)
                                               for n in ("geneve", "vms4", "vms6"))
        results = {
            f"{c.name} -> {a4}": _ping(c, a4), f"{c.name} -> {a6}": _ping(c, a6),
            f"{a.name} -> {c4}": _ping(a, c4), f"{a.name} -> {c6}": _ping(a, c6),
        }
        sent_4 = _tcp(c, a, a4)           # rack 3 -> rack 1 over IPv4
        sent_6 = _tcp(a, c, c6)           # rack 1 -> rack 3 over IPv6
        geneve, v4, v6 = (_counter(lab, n) for n in ("geneve", "vms4", "vms6"))
        print(f"pings: {results}; TCP {sent_4} B (v4), {sent_6} B (v6); leaf counters: "
              f"geneve +{geneve.packets - geneve_before.packets} pkts, "
              f"VM v4 +{v4.packets - v4_before.packets} pkts / +{v4.bytes - v4_before.bytes} B, "
              f"VM v6 +{v6.packets - v6_before.packets} pkts / +{v6.bytes - v6_before.bytes} B")

        for what, result in results.items():
            assert result.received == result.sent, f"{what}: {result}"
            assert set(result.ttls) == {ROUTED_TTL}, f"{what}: TTLs {set(result.ttls)}"
        assert (sent_4, sent_6) == (1_000_000, 1_000_000)
        # The counters see the VMs' traffic on the leaves (each packet crosses two): the ICMP
        # of the four pings and the 1 MB of each TCP transfer.
        assert v4.packets - v4_before.packets >= 2 * 2 * 2 * 10
        assert v6.packets - v6_before.packets >= 2 * 2 * 2 * 10
        assert v4.bytes - v4_before.bytes >= 2 * 1_000_000
        assert v6.bytes - v6_before.bytes >= 2 * 1_000_000
        # ... and not one Geneve packet crossed a leaf since the counters were installed.
        assert (geneve_before.packets, geneve.packets) == (0, 0)

        # Positive control: the Geneve counter does count Geneve. Five UDP datagrams to port
        # 6081 of compute1's tunnel endpoint (its ovn-encap-ip) from compute3: each crosses two
        # leaves.
        target = str(lab.topology.encap("compute1"))
        run([sys.executable, "-c",
             "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
             "for _ in range(5): s.sendto(b'g'*64,(sys.argv[1],6081))", target],
            netns=lab.netns("compute3"))
        wait_until(lambda: _counter(lab, "geneve").packets - geneve.packets >= 10,
                   timeout=2, what="the control datagrams counted on the leaves")
        assert _counter(lab, "geneve").packets - geneve.packets == 10
    finally:
        _remove_counters(lab)


# --- 2. advertisement follows the VM ----------------------------------------------------------


def test_prefixes_at_both_spines_via_both_rack_leaves_and_vm_del_withdraws_them(
        lab: Lab, pair: Pair) -> None:
    a = pair.a
    for address in _addresses(a):
        for spine in SPINES:
            route = labmod.route_to(lab, spine, address)
            assert route is not None, spine
            assert route.get("protocol") == "bgp", (spine, route)
            assert probe.route_devs(lab, spine, address) == {"leaf1a", "leaf1b"}, spine
        # the other racks' servers reach it over both of their own leaves
        for node in ("compute2", "compute3"):
            _wait_route_via(lab, node, address, set(RACK[node]))
    vmmod.del_vm(lab.paths, lab.topology, a.name)
    took = [_wait_withdrawn(lab, address) for address in _addresses(a)]
    print(f"vm del: {a.ip4.ip} and {a.ip6.ip} gone from all 12 devices after "
          f"{took[0]:.2f} s / {took[0] + took[1]:.2f} s")
    assert _pings(pair.c, str(a.ip4.ip)) is False


def _lsp_set(lab: Lab, port: str, *columns: str) -> None:
    ovn.nbctl(lab.paths, lab.topology.controller.name, "set", "Logical_Switch_Port", port,
              *columns)


def test_unbinding_the_port_withdraws_and_rebinding_restores(lab: Lab, pair: Pair) -> None:
    a, c = pair.a, pair.c
    a4, a6 = _addresses(a)
    # Neutron moves the binding to another host (where no VM plugs it): ovn-controller on
    # compute1 releases the port, the Port_Binding has no chassis any more.
    _lsp_set(lab, a.port_id, "options:requested-chassis=compute2")
    took = _wait_withdrawn(lab, a4), _wait_withdrawn(lab, a6)
    print(f"requested-chassis elsewhere: withdrawn after {took[0]:.2f} s")
    _lsp_set(lab, a.port_id, "options:requested-chassis=compute1")
    _wait_at_spines(lab, a4, "compute1")
    _wait_at_spines(lab, a6, "compute1")
    _wait_pings(c, a4)

    # The VIF unplugged from br-int (os-vif on VM stop): unbound, withdrawn; plugged back in
    # with the same iface-id: bound, advertised again.
    external_ids = ovn.vsctl(lab.paths, a.node, "get", "Interface", a.tap,
                             "external_ids").strip()
    assert a.port_id in external_ids
    ovn.vsctl(lab.paths, a.node, "del-port", ovn.INTEGRATION_BRIDGE, a.tap)
    took = _wait_withdrawn(lab, a4), _wait_withdrawn(lab, a6)
    print(f"tap unplugged: withdrawn after {took[0]:.2f} s")
    ovn.vsctl(lab.paths, a.node, "add-port", ovn.INTEGRATION_BRIDGE, a.tap, "--", "set",
              "Interface", a.tap, f"external_ids={external_ids}")
    _wait_at_spines(lab, a4, "compute1")
    _wait_at_spines(lab, a6, "compute1")
    _wait_pings(c, a6)


def test_moving_the_vm_to_rack_2_moves_its_routes_at_the_spines(lab: Lab, pair: Pair) -> None:
    a, c = pair.a, pair.c
    a4, a6 = _addresses(a)
    vmmod.del_vm(lab.paths, lab.topology, a.name)
    _wait_withdrawn(lab, a4)
    _wait_withdrawn(lab, a6)
    start = time.monotonic()
    moved = vmmod.add_vm(lab.paths, lab.topology, name=a.name, node="compute2", ip4=a4, ip6=a6)
    took = _wait_at_spines(lab, a4, "compute2"), _wait_at_spines(lab, a6, "compute2")
    print(f"moved to compute2: at the spines via rack 2 {time.monotonic() - start:.2f} s after "
          f"the add began ({took[0]:.2f} s after it was bound)")
    _wait_route_via(lab, "compute3", a4, {"leaf3a", "leaf3b"})
    _wait_route_via(lab, "compute3", a6, {"leaf3a", "leaf3b"})
    # Nothing left behind in rack 1: compute1 now reaches it over the fabric like any other.
    _wait_route_via(lab, "compute1", a4, {"leaf1a", "leaf1b"})
    _wait_route_via(lab, "compute1", a6, {"leaf1a", "leaf1b"})
    route = labmod.route_to(lab, "compute2", a4)
    assert route is not None
    assert route.get("dev") == "br-ex", route
    for address in (a4, a6):
        result = _ping(c, address)
        assert result.received == result.sent, result
        assert set(result.ttls) == {ROUTED_TTL}, result
    assert moved.node == "compute2"


# --- 3. agent restart -------------------------------------------------------------------------


class RouteMonitor:
    """`ip monitor route` in a namespace: every route event, in a background thread."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.lines: list[str] = []
        self._proc = subprocess.Popen(["ip", "-n", netns, "monitor", "route"],
                                      stdout=subprocess.PIPE, text=True)
        stdout = self._proc.stdout
        assert stdout is not None
        self._thread = threading.Thread(target=lambda: self.lines.extend(iter(stdout.readline,
                                                                                "")),
                                        daemon=True)
        self._thread.start()

    def prove_live(self) -> None:
        """A route added and removed in a private table must show up: the monitor works."""
        marker = "198.51.100.99"
        run(["ip", "route", "add", f"{marker}/32", "dev", "lo", "table", "4242"],
            netns=self.netns)
        run(["ip", "route", "del", f"{marker}/32", "dev", "lo", "table", "4242"],
            netns=self.netns)
        wait_until(lambda: sum(marker in ln for ln in self.lines) >= 2, timeout=3,
                   what=f"ip monitor in {self.netns} to see a test route")

    def about(self, *addresses: str) -> list[str]:
        return [ln for ln in self.lines if any(f"{a} " in ln or f"{a}/" in ln
                                               for a in addresses)]

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=5)
        self._thread.join(timeout=5)


class RoutePoller:
    """Reads one route in a namespace every ~10 ms; records every sample that was not the
    expected set of next-hop devices."""

    def __init__(self, lab: Lab, device: str, address: str, want: set[str]) -> None:
        self.samples = 0
        self.bad: list[tuple[float, set[str]]] = []
        self._stop = threading.Event()

        def poll() -> None:
            while not self._stop.is_set():
                devs = probe.route_devs(lab, device, address)
                self.samples += 1
                if devs != want:
                    self.bad.append((time.monotonic(), devs))
                self._stop.wait(0.01)

        self._thread = threading.Thread(target=poll, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _metrics(lab: Lab, node: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The agent's /metrics: (sample name, sorted labels) -> value."""
    text = run([sys.executable, "-c",
                "import urllib.request,sys;sys.stdout.write(urllib.request.urlopen("
                f"'http://127.0.0.1:{agents.STATUS_PORT}/metrics',timeout=2).read().decode())"],
               netns=lab.netns(node)).stdout
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def _changes(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    return {dict(labels)["driver"]: value for (name, labels), value in metrics.items()
            if name == "ovn_fabric_driver_changes_total"}


def _bfd_downs(lab: Lab) -> dict[str, int]:
    """How often each BFD session of the fabric went down since it was created."""
    downs = {}
    for dev in lab.topology.devices:
        peers = json.loads(vtysh(lab.paths, dev.name, "-c", "show bfd peers counters json"))
        for peer in peers:
            downs[f"{dev.name}:{peer.get('interface')}"] = int(peer.get("session-down", 0))
    return downs


def test_agent_sigkill_and_restart_loses_nothing_and_adopts_the_state(
        lab: Lab, pair: Pair) -> None:
    a, c = pair.a, pair.c
    a4, a6 = _addresses(a)
    node = a.node
    old_pid = agents.agent_pid(lab, node)
    assert old_pid is not None
    log = agents.log_path(lab, node)
    monitors = [RouteMonitor(lab.netns(spine)) for spine in SPINES]
    poller: RoutePoller | None = None
    timings: dict[str, float] = {}
    bfd_before = _bfd_downs(lab)
    try:
        for monitor in monitors:
            monitor.prove_live()
        poller = RoutePoller(lab, "spine1", a4, set(RACK[node]))
        log_offset = log.stat().st_size

        def crash_and_restart() -> None:
            start = time.monotonic()
            agents.stop(lab, node, signal.SIGKILL)
            timings["dead"] = time.monotonic() - start
            assert agents.agent_pid(lab, node) is None
            agents.start(lab, node)
            agents.wait_in_sync(lab, node)
            timings["in sync"] = time.monotonic() - start

        outage = probe.ping_through(c.netns, a4, crash_and_restart, seconds=6.0)
    finally:
        if poller is not None:
            poller.close()
        for monitor in monitors:
            monitor.close()
    bfd_after = _bfd_downs(lab)
    flaps = {k: n - bfd_before.get(k, 0) for k, n in bfd_after.items() if n != bfd_before.get(k)}
    new_pid = agents.agent_pid(lab, node)
    new_log = log.read_text()[log_offset:]
    metrics = _metrics(lab, node)
    changes = _changes(metrics)
    print(f"agent SIGKILLed (gone in {timings['dead'] * 1000:.0f} ms), restarted, in sync after "
          f"{timings['in sync']:.2f} s; ping every 10 ms: {outage.sent} sent, {outage.lost} lost, "
          f"longest gap {outage.longest_gap_ms:.0f} ms (lost icmp_seq {outage.lost_seqs}; the "
          f"kill came after icmp_seq {outage.action_seq}, in sync ~icmp_seq "
          f"{outage.action_seq + round(timings['in sync'] * 100)}); spine1 polled "
          f"{poller.samples} times; changes applied by the new agent: {changes}")
    print(new_log)

    assert new_pid is not None
    assert new_pid != old_pid
    # (a fabric session that flapped meanwhile, e.g. BFD starved on an overloaded machine,
    # is named in the message: it would explain a loss without the agent's doing)
    assert outage.lost == 0, f"{outage}; BFD sessions down meanwhile: {flaps or 'none'}"
    for monitor in monitors:
        assert monitor.about(a4, a6) == [], (monitor.netns, monitor.about(a4, a6))
    assert poller.samples >= 50, poller.samples
    assert poller.bad == [], poller.bad[:5]
    # Adoption: the new agent ran every driver and found nothing to change.
    passes = {dict(labels)["driver"]: value for (name, labels), value in metrics.items()
              if name == "ovn_fabric_driver_seconds_count"}
    assert passes.get("kernel", 0) >= 1, passes
    assert passes.get("flows", 0) >= 1, passes
    assert changes == {"kernel": 0.0, "flows": 0.0, "frr": 0.0}, changes
    assert "change(s) applied" not in new_log
    assert "plan: 2 prefix(es) advertised, 0 refused" in new_log


# --- 4. repairs -------------------------------------------------------------------------------


def _our_flows(lab: Lab, node: str) -> list[str]:
    out = ovn.ofctl(lab.paths, node, "--no-stats", "dump-flows", "br-ex", COOKIE)
    return [ln for ln in out.splitlines() if "cookie=" in ln]


def _our_route(lab: Lab, node: str, address: str) -> bool:
    family = "-6" if ":" in address else "-4"
    plen = "128" if ":" in address else "32"
    routes = json.loads(output(["ip", family, "-j", "route", "show", f"{address}/{plen}",
                                "proto", str(RTPROT_OVN_FABRIC), "dev", "br-ex"],
                               netns=lab.netns(node)))
    return len(routes) == 1


def _our_neighbour(lab: Lab, node: str, address: str, mac: str) -> bool:
    entries = json.loads(output(["ip", "-j", "neigh", "show", "to", address, "dev", "br-ex",
                                 "proto", str(RTPROT_OVN_FABRIC), "nud", "permanent"],
                                netns=lab.netns(node)))
    return any(e.get("lladdr") == mac and e.get("dst") == address for e in entries)


def _node_state_complete(lab: Lab, vm: Vm) -> bool:
    """Everything the agent owns for `vm` on its node is there."""
    return (len(_our_flows(lab, vm.node)) == 2
            and all(_our_route(lab, vm.node, x) for x in _addresses(vm))
            and all(_our_neighbour(lab, vm.node, x, vm.mac) for x in _addresses(vm)))


def _frr_block(lab: Lab, node: str) -> str:
    return vtysh(lab.paths, node, "-c", "show running-config bgpd")


def test_frr_restart_on_the_node_is_repaired_and_traffic_resumes(lab: Lab, pair: Pair) -> None:
    a, c = pair.a, pair.c
    a4, a6 = _addresses(a)
    assert "redistribute kernel route-map OVN-FABRIC-EXPOSE4" in _frr_block(lab, a.node)
    start = time.monotonic()
    agents.restart_frr(lab, a.node)
    restarted = time.monotonic() - start
    try:
        wait_until(lambda: "redistribute kernel route-map OVN-FABRIC-EXPOSE6"
                   in _frr_block(lab, a.node), timeout=5, what="the agent's block back in bgpd")
        block = time.monotonic() - start
        _wait_at_spines(lab, a4, a.node, timeout=30)
        _wait_at_spines(lab, a6, a.node, timeout=30)
        spines = time.monotonic() - start
        _wait_pings(c, a4, timeout=30)
        _wait_pings(c, a6, timeout=30)
        print(f"FRR restarted on {a.node} in {restarted:.2f} s; the agent's block back after "
              f"{block:.2f} s, both prefixes at both spines after {spines:.2f} s, pings after "
              f"{time.monotonic() - start:.2f} s")
        block_text = _frr_block(lab, a.node)
        assert "redistribute kernel route-map OVN-FABRIC-EXPOSE4" in block_text
        assert "match interface br-ex" in block_text
        assert _node_state_complete(lab, a)
    finally:
        labmod.wait_fabric_converged(lab, timeout=30)


def test_vswitchd_restart_on_the_node_is_repaired_and_traffic_resumes(
        lab: Lab, pair: Pair) -> None:
    a, c = pair.a, pair.c
    a4, a6 = _addresses(a)
    assert len(_our_flows(lab, a.node)) == 2
    start = time.monotonic()
    agents.restart_vswitchd(lab, a.node)
    restarted = time.monotonic() - start
    wait_until(lambda: len(_our_flows(lab, a.node)) == 2, timeout=5,
               what="the egress flows back on br-ex")
    flows = time.monotonic() - start
    _wait_pings(c, a4, timeout=15)
    _wait_pings(c, a6, timeout=15)
    _wait_pings(a, str(c.ip4.ip), timeout=15)
    print(f"ovs-vswitchd restarted on {a.node} in {restarted:.2f} s; flows back after "
          f"{flows:.2f} s, pings both ways after {time.monotonic() - start:.2f} s")
    wait_until(lambda: _node_state_complete(lab, a), timeout=5, what="node state complete")
    assert set(_ping(c, a4).ttls) == {ROUTED_TTL}
    _wait_at_spines(lab, a4, a.node)


@dataclass(frozen=True)
class Drift:
    name: str
    inflict: Callable[[Lab, Vm], None]
    repaired: Callable[[Lab, Vm], bool]
    # The kernel refuses to delete what is not there (`ip route|neigh del` fails), so the
    # deletion itself proves the state was gone; a flow deletion proves nothing by itself.
    deletion_proves_it: bool = True


def _del_flows(lab: Lab, vm: Vm) -> None:
    ovn.ofctl(lab.paths, vm.node, "del-flows", "br-ex", COOKIE)


def _del_route(family: int) -> Callable[[Lab, Vm], None]:
    def inflict(lab: Lab, vm: Vm) -> None:
        address = _addresses(vm)[0 if family == 4 else 1]
        run(["ip", f"-{family}", "route", "del", address, "dev", "br-ex"], netns=lab.netns(vm.node))
    return inflict


def _del_neigh(family: int) -> Callable[[Lab, Vm], None]:
    def inflict(lab: Lab, vm: Vm) -> None:
        address = _addresses(vm)[0 if family == 4 else 1]
        run(["ip", "neigh", "del", address, "dev", "br-ex"], netns=lab.netns(vm.node))
    return inflict


DRIFTS = [
    Drift("egress flows", _del_flows, lambda lab, vm: len(_our_flows(lab, vm.node)) == 2,
          deletion_proves_it=False),
    Drift("IPv4 route", _del_route(4),
          lambda lab, vm: _our_route(lab, vm.node, _addresses(vm)[0])),
    Drift("IPv6 route", _del_route(6),
          lambda lab, vm: _our_route(lab, vm.node, _addresses(vm)[1])),
    Drift("IPv4 neighbour", _del_neigh(4),
          lambda lab, vm: _our_neighbour(lab, vm.node, _addresses(vm)[0], vm.mac)),
    Drift("IPv6 neighbour", _del_neigh(6),
          lambda lab, vm: _our_neighbour(lab, vm.node, _addresses(vm)[1], vm.mac)),
]


@pytest.mark.parametrize("drift", DRIFTS, ids=[d.name for d in DRIFTS])
def test_state_deleted_by_hand_is_repaired_within_one_second(
        lab: Lab, pair: Pair, drift: Drift) -> None:
    a, c = pair.a, pair.c
    assert _node_state_complete(lab, a)
    assert drift.repaired(lab, a)
    start = time.monotonic()
    drift.inflict(lab, a)               # raises if there was nothing to delete
    # Checking afterwards can come too late under load: the agent may have repaired it first.
    gone = drift.deletion_proves_it or not drift.repaired(lab, a)
    wait_until(lambda: drift.repaired(lab, a), timeout=5, interval=0.005,
               what=f"{drift.name} repaired")
    took = time.monotonic() - start
    print(f"{drift.name} deleted by hand on {a.node}: repaired in {took * 1000:.0f} ms")
    assert gone, f"the {drift.name} was not deleted: the test proved nothing"
    assert took < REPAIR_S, f"{drift.name} repaired in {took:.3f} s"
    assert _node_state_complete(lab, a)
    for address in _addresses(a):
        _wait_at_spines(lab, address, a.node)
        _wait_pings(c, address)


# --- 5. exposure policy -----------------------------------------------------------------------


def test_addresses_outside_the_allowed_prefixes_are_refused_and_advertised_nowhere(
        lab: Lab) -> None:
    _wait_lab_clean(lab)
    outside = ["192.0.2.5", "10.255.0.77", "2001:db8:99::5"]   # TEST-NET, fabric loopbacks, v6
    try:
        vx = vmmod.add_vm(lab.paths, lab.topology, name="vx", node="compute1")
        x4, x6 = _addresses(vx)
        _wait_at_spines(lab, x4, "compute1")
        # Neutron adds fixed IPs to the port: one more inside the subnet (the positive
        # control: the same update IS advertised), three outside the allowed prefixes.
        inside = str(PROVIDER4.network_address + 200)
        addresses = f"{vx.mac} {x4} {inside} {' '.join(outside)} {x6}"
        _lsp_set(lab, vx.port_id, f'addresses="{addresses}"')
        _wait_at_spines(lab, inside, "compute1")

        def refused() -> list[dict[str, str]] | None:
            listed = agents.status(lab, "compute1").get("refused")
            assert isinstance(listed, list)
            return listed if {r["address"] for r in listed} >= set(outside) else None

        report = wait_until(refused, timeout=5, what="the refusals in the agent's status")
        listed = agents.status(lab, "compute1")["advertised"]
        assert isinstance(listed, list)
        print(f"refused: {report}")
        for entry in report:
            assert entry["port"] == vx.port_id
            assert "outside the allowed prefixes" in entry["why"], entry
        advertised = {e["prefix"] for e in listed}
        assert advertised == {f"{x4}/32", f"{inside}/32", f"{x6}/128"}
        # Not in the node's kernel (no route of ours), not in its BGP table, nowhere else.
        ours = output(["ip", "-j", "route", "show", "proto", str(RTPROT_OVN_FABRIC)],
                      netns=lab.netns("compute1"))
        ours6 = output(["ip", "-6", "-j", "route", "show", "proto", str(RTPROT_OVN_FABRIC)],
                       netns=lab.netns("compute1"))
        kernel = {r["dst"] for r in json.loads(ours) + json.loads(ours6)}
        assert kernel == {x4, inside, x6}, kernel
        for address in outside:
            assert _routed_anywhere(lab, address) == [], address
            family = "ipv6" if ip_address(address).version == 6 else "ipv4"
            for device in ("compute1", *SPINES):
                table = json.loads(vtysh(lab.paths, device, "-c",
                                         f"show bgp {family} unicast json"))
                assert not [p for p in table.get("routes", {}) if p.startswith(address + "/")], \
                    (device, address)
    finally:
        if (lab.paths.vm_dir("vx") / "vm.json").exists():
            vmmod.del_vm(lab.paths, lab.topology, "vx")
        _wait_lab_clean(lab)


# --- 6. status, CLI, metrics ------------------------------------------------------------------


def _cli_path() -> str:
    script = Path(sys.executable).parent / "ovn-fabric"
    return str(script) if script.exists() else "ovn-fabric"


def test_status_cli_and_metrics_show_what_is_advertised_and_why(lab: Lab, pair: Pair) -> None:
    a, c = pair.a, pair.c
    a4, a6 = _addresses(a)
    status = agents.status(lab, "compute1")
    assert status["state"] == "ok"
    advertised = status["advertised"]
    assert isinstance(advertised, list)
    assert sorted((e["prefix"], e["port"], e["network"], e["reason"]) for e in advertised) == [
        (f"{a4}/32", a.port_id, "public", "provider-port"),
        (f"{a6}/128", a.port_id, "public", "provider-port"),
    ]
    assert status["refused"] == []
    other = agents.status(lab, "compute3")["advertised"]
    assert isinstance(other, list)
    assert {e["port"] for e in other} == {c.port_id}

    table = run([_cli_path(), "status"], netns=lab.netns("compute1")).stdout
    print(table)
    assert "agent state: ok" in table
    for prefix in (f"{a4}/32", f"{a6}/128"):
        line = next((ln for ln in table.splitlines() if ln.strip().startswith(prefix)), "")
        assert f"port {a.port_id}" in line, table
        assert "network public" in line, table
    assert c.port_id not in table
    as_json = json.loads(run([_cli_path(), "status", "--json"],
                             netns=lab.netns("compute1")).stdout)
    assert as_json["advertised"] == advertised

    metrics = _metrics(lab, "compute1")
    names = {name for name, _ in metrics}
    assert all(n.startswith("ovn_fabric_") for n in names), sorted(names)
    assert metrics[("ovn_fabric_advertised_prefixes", (("reason", "provider-port"),))] == 2
    assert metrics[("ovn_fabric_refused_addresses", ())] == 0
    assert metrics[("ovn_fabric_ovn_synced", ())] == 1
    assert metrics[("ovn_fabric_reconcile_passes_total", (("result", "ok"),))] > 0
    assert metrics[("ovn_fabric_last_success_timestamp_seconds", ())] > time.time() - 60
    assert ("ovn_fabric_reconcile_seconds_count", ()) in metrics
