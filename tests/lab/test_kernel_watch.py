"""The netlink watch on its own, in a fresh namespace: it must see our state touched from
outside (pyroute2 0.9 delivers events only to the thread that opened the socket: a watch that
opened it elsewhere saw nothing, and drift waited for the 60 s resync)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

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


def test_watch_survives_a_netlink_buffer_overflow(netns: str, tmp_path: Path) -> None:
    """A burst larger than the socket's buffer loses events (ENOBUFS): the watch must say so
    (a kernel resync), reopen, and keep seeing our state touched afterwards."""
    touched = threading.Event()
    watch = run_in_netns(netns, lambda: KernelWatch(["br-ex"], touched.set))
    run_in_netns(netns, watch.start)
    try:
        batch = tmp_path / "routes.batch"
        batch.write_text("".join(f"route add 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32 "
                                 "dev br-ex proto 247\n" for i in range(60000)))
        run(["ip", "-n", netns, "-batch", str(batch)])
        run(["ip", "-n", netns, "route", "flush", "proto", "247"])
        touched.clear()
        ip = ["ip", "-n", netns]
        run([*ip, "route", "add", "10.200.0.1/32", "dev", "br-ex", "proto", "247"])
        run([*ip, "route", "del", "10.200.0.1/32", "dev", "br-ex"])
        wait_until(touched.is_set, timeout=5, what="a deletion seen after the overflow")
    finally:
        watch.close()
