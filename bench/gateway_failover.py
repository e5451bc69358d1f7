"""Outage of a centralized floating IP when its router's active gateway chassis fails, as a
10 ms ping from an external client sees it.

    sudo .venv/bin/python -m bench.gateway_failover [--runs 3] [--tunnel-bfd-ms MS]

Builds the three-rack lab (prefix `ofhb`): router r1 with its gateway on compute2 (priority 2)
and compute3 (priority 1), VM a1 on compute1 with a centralized FIP, a client behind spine1.
Per run, fails compute2 in two ways while the client pings the FIP every 10 ms for 15 s:
- `links`: both of compute2's fabric links cut (carrier down); BFD on the Geneve tunnel tells
  compute3, which claims the cr-lrp; the agent on compute3 advertises the /32s;
- `controller`: ovn-controller on compute2 SIGKILLed; OVN does not fail over (BFD runs in
  ovs-vswitchd, which survives), the data plane keeps its flows.
Each is restored after (compute2 takes the gateway back) before the next. Prints the longest
run of lost pings (ms), the lost count, and where the cr-lrp ended up; then median and max.
`--tunnel-bfd-ms` sets OVN's tunnel BFD timers (NB_Global options bfd-min-rx/min-tx, multiplier
3) instead of OVS's defaults (min_rx 1000 ms, min_tx 100 ms).
"""

from __future__ import annotations

import argparse
import statistics

from ovn_fabric.lab import external, neutron, ovn, probe
from ovn_fabric.lab import lab as labmod
from ovn_fabric.lab import vm as vmmod
from ovn_fabric.lab.sh import run, wait_until

PREFIX = "ofhb"
ACTIVE, STANDBY = "compute2", "compute3"
TIMEOUT_S = 30.0


def _bound_to(lab: labmod.Lab, port: str) -> str:
    central = lab.topology.controller.name
    uuid = ovn.sbctl(lab.paths, central, "--bare", "--columns=chassis", "find", "Port_Binding",
                     f"logical_port={port}").strip()
    if not uuid:
        return ""
    return ovn.sbctl(lab.paths, central, "get", "Chassis", uuid, "name").strip().strip('"')


def _bfd_up_both_ways(lab: labmod.Lab) -> bool:
    states = [ovn.tunnel_bfd(lab.paths, node).get(str(lab.topology.encap(peer)), {}).get("state")
              for node, peer in ((ACTIVE, STANDBY), (STANDBY, ACTIVE))]
    return states == ["up", "up"]


def measure(runs: int, tunnel_bfd_ms: int | None) -> dict[str, list[tuple[float, int, str]]]:
    results: dict[str, list[tuple[float, int, str]]] = {"links": [], "controller": []}
    labmod.down(PREFIX)
    lab = labmod.up("three-rack", PREFIX)
    try:
        if tunnel_bfd_ms is not None:
            ovn.set_tunnel_bfd(lab.paths, lab.topology.controller.name, tunnel_bfd_ms, 3)
        neutron.add_network(lab.paths, lab.topology, "net1", cidr4="10.0.1.0/24",
                            cidr6="fd00:10:1::/64")
        router = neutron.add_router(lab.paths, lab.topology, "r1",
                                    gateway_chassis=(ACTIVE, STANDBY))
        neutron.attach(lab.paths, lab.topology, "r1", "net1")
        vm = vmmod.add_vm(lab.paths, lab.topology, name="a1", node="compute1", network="net1")
        client = external.add_client(lab, "ext")
        external.set_fip_distributed(lab, False)
        fip = str(external.add_floating_ip(lab, "r1", vm).external_ip)
        links = [labmod.find_link(lab, ACTIVE, leaf) for leaf in ("leaf2a", "leaf2b")]

        def pings() -> bool:
            return run(["ping", "-n", "-c", "1", "-W", "1", fip], netns=client.netns,
                       check=False).returncode == 0

        def ready() -> None:
            wait_until(lambda: _bound_to(lab, router.redirect_port) == ACTIVE,
                       timeout=TIMEOUT_S, what=f"cr-lrp back on {ACTIVE}")
            wait_until(pings, timeout=TIMEOUT_S, interval=0.05, what=f"the client to ping {fip}")
            wait_until(lambda: _bfd_up_both_ways(lab), timeout=TIMEOUT_S,
                       what=f"tunnel BFD between {ACTIVE} and {STANDBY} up both ways")
            wait_until(lambda: labmod.fabric_problems(lab) == [], timeout=TIMEOUT_S,
                       what="every BGP session and BFD peer of the fabric up")

        def cut() -> None:
            for link in links:
                labmod.cut_link(lab, link, silent=False)

        for _ in range(runs):
            for kind, fail in (("links", cut),
                               ("controller", lambda: ovn.kill_controller(lab.paths, ACTIVE))):
                ready()
                try:
                    outage = probe.ping_through(client.netns, fip, fail, seconds=15)
                    where = _bound_to(lab, router.redirect_port)
                finally:
                    if kind == "links":
                        for link in links:
                            labmod.restore_link(lab, link)
                    else:
                        ovn.start_controller(lab.paths, ACTIVE)
                results[kind].append((outage.longest_gap_ms, outage.lost, where))
                print(f"  {kind:10}: longest gap {outage.longest_gap_ms:5.0f} ms, "
                      f"{outage.lost} lost, cr-lrp on {where}", flush=True)
        ready()
    finally:
        labmod.down(PREFIX)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tunnel-bfd-ms", type=int, default=None,
                        help="OVN tunnel BFD min_rx/min_tx in ms (default: OVS's defaults)")
    args = parser.parse_args()
    results = measure(args.runs, args.tunnel_bfd_ms)
    timers = (f"tunnel BFD {args.tunnel_bfd_ms} ms x 3" if args.tunnel_bfd_ms is not None
              else "tunnel BFD at OVS defaults (min_rx 1000 ms, x 3)")
    print(f"\n10 ms ping external client -> centralized FIP, failing the active gateway "
          f"compute2; {timers}:")
    for kind, values in results.items():
        gaps = [g for g, _, _ in values]
        print(f"  {kind:10}: median outage {statistics.median(gaps):5.0f} ms "
              f"(max {max(gaps):.0f}) over {len(values)} runs; cr-lrp ended on "
              f"{sorted({w for _, _, w in values})}")


if __name__ == "__main__":
    main()
