"""Tunnel endpoints: each chassis' Geneve address, held by an OVS bridge and routed by the fabric.

OVN's overlay needs every chassis to reach every other chassis' `ovn-encap-ip` (E). On this
machine OVS runs the userspace datapath only, which terminates and originates tunnels on an OVS
bridge's own address, never on `lo` (LAB_NOTES.md, "Geneve overlay between chassis"). So E sits
on a bridge of its own, `br-phy`, and the host's kernel carries the outer packets over the
fabric like any other traffic. FRR advertises E as a host route (frr_config.py).

The arrangement on a chassis, for E in the encap pool P (say 10.255.1.0/24):

    kernel: uplinks (BGP, ECMP) <-> routing <-> phy-host ==veth== phy-ovs -- br-phy (E) -- br-int
                                                                 OVS port   NORMAL    tunnels

- br-phy: netdev, fixed hwaddr, one port `phy-ovs`, the OVS end of a veth whose kernel end is
  `phy-host`. Its tap holds E/32 (what FRR advertises) and E/<plen of P> with `noprefixroute`
  (so OVS finds a source address for every remote endpoint, see below; no kernel route is made).
- Incoming: Geneve for E arrives on an uplink. An `ip rule iif <uplink> to E lookup 6081` sits
  above the `local` table lookup, which is moved from priority 0 to 100. Table 6081 sends E out
  of `phy-host` to br-phy's MAC (a permanent neighbour); the frame crosses the veth into br-phy,
  whose NORMAL action delivers it to LOCAL, where OVS pops the tunnel. `accept_local` on
  `phy-host`: the kernel must forward packets whose source (E) is one of its own addresses.
- Outgoing: OVS routes the outer packet with its own copy of the kernel's routes, which it
  reads from every table. Table 6081 also holds `P dev br-phy`, so OVS sends every remote
  endpoint out of br-phy with source E. OVS resolves the remote endpoint's MAC by ARP on br-phy:
  `phy-host` answers by proxy ARP with its own MAC (the kernel routes the endpoint over the
  uplinks), NORMAL learns it, and the kernel routes the frames it receives on `phy-host` over the
  fabric with ECMP. The kernel's BGP routes (/32 over unnumbered uplinks, which carry no IPv4
  address) never enter OVS's table, so a failed uplink changes nothing for OVS.

Why a veth and not the recipe of LAB_NOTES.md (E on br-phy's tap, a hand-made
`in_port=LOCAL,actions=IN_PORT` flow, `ovs-appctl ovs/route/add` per remote endpoint and
`tnl/arp/set`): those three live only in ovs-vswitchd's memory and are gone when it restarts,
so something would have to notice and re-apply them. Here every piece is either kernel state
(taps outlive ovs-vswitchd), OVS database state, or learnt again by OVS on its own (routes read
from the kernel, MACs by ARP, NORMAL installed by default): a restarted ovs-vswitchd carries
tunnels again with nothing re-applied (tests/lab/test_overlay.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from ovn_fabric.lab import ovn
from ovn_fabric.lab.lab import Lab, nexthop_count, route_to
from ovn_fabric.lab.paths import LabPaths
from ovn_fabric.lab.sh import run, wait_until_fine
from ovn_fabric.lab.topology import ENCAP_BRIDGE, Topology

ENCAP_TABLE = 6081        # the routing table of incoming tunnel traffic (Geneve's UDP port)
ENCAP_RULE_PREF = 10      # `iif <uplink> to E lookup 6081`, above ...
LOCAL_RULE_PREF = 100     # ... the `local` table lookup, moved down from priority 0
HOST_END = "phy-host"     # the kernel's end of the veth into br-phy
OVS_END = "phy-ovs"       # br-phy's port


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A chassis' tunnel endpoint and everything needed to plumb it, from the topology."""

    device: str
    address: IPv4Address        # E: ovn-encap-ip, on br-phy
    pool: IPv4Network           # every chassis' endpoint lies in it
    uplinks: tuple[str, ...]    # the fabric interfaces incoming tunnel traffic arrives on
    bridge_mac: str             # br-phy's fixed hwaddr (also its tap's MAC)
    host_mac: str               # phy-host's MAC

    @property
    def ovs_bridges(self) -> dict[str, tuple[str, ...]]:
        """br-phy and its one port, for `ovn.start_chassis(extra_bridges=...)`."""
        return {ENCAP_BRIDGE: (OVS_END,)}

    @property
    def sysctls(self) -> dict[str, str]:
        return {
            "net.ipv4.conf.all.accept_local": "1",
            f"net.ipv4.conf.{HOST_END}.accept_local": "1",
            f"net.ipv4.conf.{HOST_END}.proxy_arp": "1",
            f"net.ipv4.neigh.{HOST_END}.proxy_delay": "0",
        }

    def kernel_before_ovs(self) -> list[str]:
        """`ip -batch` lines run before ovs-vswitchd starts: the veth, the rules, table 6081's
        route to E and E's permanent neighbour. Adding the new `local` rule before deleting the
        old one keeps local delivery working throughout."""
        e = self.address
        lines = [
            f"link add {HOST_END} address {self.host_mac} type veth peer name {OVS_END}",
            f"link set dev {HOST_END} up",
            f"link set dev {OVS_END} up",
            f"rule add pref {LOCAL_RULE_PREF} lookup local",
            "rule del pref 0 lookup local",
        ]
        lines += [f"rule add pref {ENCAP_RULE_PREF} iif {uplink} to {e} lookup {ENCAP_TABLE}"
                  for uplink in self.uplinks]
        lines += [
            f"route replace {e}/32 dev {HOST_END} table {ENCAP_TABLE}",
            f"neigh replace {e} lladdr {self.bridge_mac} dev {HOST_END} nud permanent",
        ]
        return lines

    def kernel_after_ovs(self) -> list[str]:
        """`ip -batch` lines run once br-phy's tap exists and is up."""
        e, plen = self.address, self.pool.prefixlen
        return [
            f"address replace {e}/32 dev {ENCAP_BRIDGE}",
            f"address replace {e}/{plen} dev {ENCAP_BRIDGE} noprefixroute",
            f"route replace {self.pool} dev {ENCAP_BRIDGE} table {ENCAP_TABLE}",
        ]


def endpoint(topology: Topology, device: str) -> Endpoint:
    """The tunnel endpoint of the chassis `device`."""
    return Endpoint(
        device=device,
        address=topology.encap(device),
        pool=topology.encap_pool4,
        uplinks=tuple(i.ifname for i in topology.interfaces(device)),
        bridge_mac=ovn.bridge_mac(device, ENCAP_BRIDGE),
        host_mac=ovn.bridge_mac(device, HOST_END),
    )


def prepare(paths: LabPaths, ep: Endpoint) -> None:
    """Kernel side, before ovs-vswitchd starts (its port phy-ovs must exist by then)."""
    netns = paths.netns(ep.device)
    run(["ip", "-batch", "-"], netns=netns, input_text="\n".join(ep.kernel_before_ovs()) + "\n")
    run(["sysctl", "-q", "-w", *(f"{k}={v}" for k, v in ep.sysctls.items())], netns=netns)


def finish(paths: LabPaths, ep: Endpoint) -> None:
    """Addresses on br-phy and the route OVS uses for every remote endpoint, once br-phy's tap is
    up (`ovn.start_chassis` waits for it)."""
    run(["ip", "-batch", "-"], netns=paths.netns(ep.device),
        input_text="\n".join(ep.kernel_after_ovs()) + "\n")


def endpoint_problems(lab: Lab) -> list[str]:
    """What keeps the overlay from working yet; empty when every chassis routes every other
    chassis' endpoint over a next hop per uplink (ECMP)."""
    topo = lab.topology
    problems = []
    for src in topo.chassis:
        uplinks = len(topo.interfaces(src.name))
        for dst in topo.chassis:
            if dst is src:
                continue
            route = route_to(lab, src.name, str(topo.encap(dst.name)))
            if route is None:
                problems.append(f"{src.name}: no route to {dst.name}'s endpoint")
            elif nexthop_count(route) < min(uplinks, 2):
                problems.append(f"{src.name}: {dst.name}'s endpoint is not routed over ECMP")
    return problems


def wait_endpoints_routed(lab: Lab, timeout: float) -> None:
    wait_until_fine(lambda: endpoint_problems(lab), timeout=timeout,
                    what="every tunnel endpoint routed over ECMP")


__all__ = ["ENCAP_TABLE", "HOST_END", "OVS_END", "Endpoint", "endpoint",
           "endpoint_problems", "finish", "prepare", "wait_endpoints_routed"]
