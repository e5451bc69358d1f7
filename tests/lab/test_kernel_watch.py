"""The netlink watch on its own, in a fresh namespace: it must see our state touched from
outside (pyroute2 0.9 delivers events only to the thread that opened the socket: a watch that
opened it elsewhere saw nothing, and drift waited for the 60 s resync)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from ovn_fabric.agent.kernel_watch import KernelWatch
from ovn_fabric.dataplane._netns import run_in_netns
from ovn_fabric.lab.sh import output, run, wait_until

pytestmark = pytest.mark.lab
NETNS = "ofkw"


@pytest.fixture
def netns() -> Iterator[str]:
    if NETNS in output(["ip", "netns", "list"]).split():
        run(["ip", "netns", "del", NETNS])
    run(["ip", "netns", "add", NETNS])
    run(["ip", "-n", NETNS, "link", "add", "br-ex", "type", "bridge"])
    run(["ip", "-n", NETNS, "link", "set", "br-ex", "up"])
    try:
        yield NETNS
    finally:
        run(["ip", "netns", "del", NETNS])


def test_watch_sees_our_route_and_neighbour_deleted_but_not_bgp_churn(netns: str) -> None:
    touched = threading.Event()
    watch = run_in_netns(netns, lambda: KernelWatch(["br-ex"], touched.set))
    # the watch's own thread must open its socket inside the namespace: start it from there
    run_in_netns(netns, watch.start)
    try:
        ip = ["ip", "-n", netns]
        run([*ip, "route", "add", "10.9.0.1/32", "dev", "br-ex", "proto", "247"])
        run([*ip, "neigh", "add", "10.9.0.1", "lladdr", "02:00:00:00:00:01", "dev", "br-ex",
             "nud", "permanent", "proto", "247"])
        run([*ip, "route", "add", "10.9.0.2/32", "dev", "br-ex", "proto", "bgp"])
        touched.clear()
        run([*ip, "route", "del", "10.9.0.2/32", "dev", "br-ex"])     # not ours: ignored
        run([*ip, "route", "add", "10.9.0.3/32", "dev", "br-ex", "proto", "bgp"])
        assert not touched.wait(0.5)
        run([*ip, "route", "del", "10.9.0.1/32", "dev", "br-ex"])     # ours: seen
        wait_until(touched.is_set, timeout=2, what="the route deletion seen")
        touched.clear()
        run([*ip, "neigh", "del", "10.9.0.1", "dev", "br-ex"])
        wait_until(touched.is_set, timeout=2, what="the neighbour deletion seen")
    finally:
        watch.close()
