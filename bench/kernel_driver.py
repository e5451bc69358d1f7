"""The kernel driver at scale: N workloads (a /32 route and a permanent neighbour each) on a
bridge in a fresh namespace, and the same with pyroute2 called once per object, for the ratio.

    sudo .venv/bin/python -m bench.kernel_driver [--sizes 1000 3000 10000] [--runs 3]

Prints, per N: apply (program everything), read-back, a sync with nothing to do, the same with
the driver's belief (no read-back), one workload added with the belief and removed with a full
read-back (a resync), withdraw, and pyroute2's one-call-per-object time. Uses namespace
`ofbk`, removed afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from ipaddress import IPv4Address, ip_network

from pyroute2 import IPRoute

from ovn_fabric.dataplane._netns import run_in_netns
from ovn_fabric.dataplane.kernel import KernelDriver
from ovn_fabric.dataplane.kernel_state import diff
from ovn_fabric.lab.procs import netns_pids, terminate
from ovn_fabric.lab.sh import output, run
from ovn_fabric.model import RTPROT_OVN_FABRIC, DesiredState, HostRoute, Neighbour

NETNS = "ofbk"
BASE = int(IPv4Address("172.16.0.0"))


def workloads(n: int) -> DesiredState:
    routes, neighbours = [], []
    for i in range(n):
        ip = IPv4Address(BASE + 1 + i)
        routes.append(HostRoute(ip_network(f"{ip}/32"), "br-ex"))
        neighbours.append(Neighbour(ip, f"fa:16:3e:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:"
                                        f"{i & 255:02x}", "br-ex"))
    return DesiredState(routes=frozenset(routes), neighbours=frozenset(neighbours))


def fresh_namespace() -> None:
    if NETNS in output(["ip", "netns", "list"]).split():
        terminate(netns_pids(NETNS))
        run(["ip", "netns", "del", NETNS])
    run(["ip", "netns", "add", NETNS])
    run(["ip", "-n", NETNS, "link", "add", "br-ex", "type", "bridge"])
    run(["ip", "-n", NETNS, "link", "set", "br-ex", "up"])


def timed(step: Callable[[], object]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def pyroute2_per_call(desired: DesiredState) -> float:
    """Program the same objects with one pyroute2 call each, as a plain client would."""
    def program() -> float:
        with IPRoute() as ipr:
            index = ipr.link_lookup(ifname="br-ex")[0]
            start = time.perf_counter()
            for route in desired.routes:
                ipr.route("replace", dst=str(route.dst), oif=index, proto=RTPROT_OVN_FABRIC,
                          scope=253)
            for nb in desired.neighbours:
                ipr.neigh("replace", dst=str(nb.ip), lladdr=nb.mac, ifindex=index, state=128)
            return time.perf_counter() - start

    return run_in_netns(NETNS, program)


def measure(n: int) -> dict[str, float]:
    desired, one_more = workloads(n), workloads(n + 1)
    fresh_namespace()
    with KernelDriver(NETNS) as driver:
        figures = {
            "apply": timed(lambda: driver.apply(diff(desired, driver.read()))),
            "read back": timed(driver.read),
            "sync, nothing to do": timed(lambda: driver.sync(desired)),
            # the driver now believes the kernel holds `desired` (kernel_cache.py)
            "sync again, nothing to do (belief)": timed(lambda: driver.sync(desired)),
            "sync, one workload more (belief)": timed(lambda: driver.sync(one_more)),
            "sync, one workload less, full read-back (resync)": timed(
                lambda: driver.sync(desired, full=True)),
            "withdraw all": timed(lambda: driver.sync(DesiredState())),
        }
    fresh_namespace()
    figures["pyroute2, one call per object"] = pyroute2_per_call(desired)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000, 10000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    try:
        for n in args.sizes:
            runs = [measure(n) for _ in range(args.runs)]
            print(f"\nN = {n:,} workloads ({2 * n:,} objects), median of {args.runs} runs:")
            for key in runs[0]:
                value = statistics.median(r[key] for r in runs)
                print(f"  {value * 1000:9.1f} ms  {key}")
            ratio = (statistics.median(r["pyroute2, one call per object"] for r in runs)
                     / statistics.median(r["apply"] for r in runs))
            print(f"  batched apply is {ratio:.1f}x faster than one pyroute2 call per object")
    finally:
        if NETNS in output(["ip", "netns", "list"]).split():
            run(["ip", "netns", "del", NETNS])


if __name__ == "__main__":
    main()
