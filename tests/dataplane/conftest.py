"""Fixtures for the dataplane drivers: a fresh network namespace with a Linux bridge standing in
for br-ex, and an OVS (ovsdb-server + ovs-vswitchd, netdev datapath) inside its own namespace.

Everything is named with the prefix `hk-` (namespaces) and lives under /run/ovn-fabric/hk (files),
so that other labs on the machine are never touched. Cleanup kills only the processes found in
these namespaces (`ip netns pids`), deletes the namespaces and the directory, and also runs first,
to remove what a killed run left behind.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from ovn_fabric.lab.sh import run
from tests.dataplane.labns import (
    DAEMONS,
    HK_DIR,
    KERNEL_NS,
    OVS_DIR,
    OVS_NS,
    OvsLab,
    build_ovs,
    create_namespace,
    remove_namespace,
    require_root,
)


@pytest.fixture
def kern_ns() -> Iterator[str]:
    """A fresh namespace `hk-kern` holding an up Linux bridge br-ex (stand-in for OVS's)."""
    require_root()
    create_namespace(KERNEL_NS)
    try:
        run(["ip", "-n", KERNEL_NS, "link", "add", "br-ex", "type", "bridge"])
        run(["ip", "-n", KERNEL_NS, "link", "set", "br-ex", "up"])
        yield KERNEL_NS
    finally:
        remove_namespace(KERNEL_NS)


@pytest.fixture
def ovs_lab() -> Iterator[OvsLab]:
    """ovsdb-server and ovs-vswitchd started inside namespace hk-ovs, rundir /run/ovn-fabric/hk/ovs.

    Fails (never skips) when OVS is not installed."""
    require_root()
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    if missing:
        pytest.fail(f"Open vSwitch is not installed: missing {', '.join(missing)}")
    lab = OvsLab(OVS_NS, OVS_DIR)
    remove_namespace(OVS_NS)
    shutil.rmtree(HK_DIR, ignore_errors=True)
    create_namespace(OVS_NS)
    try:
        build_ovs(lab)
        yield lab
    finally:
        remove_namespace(OVS_NS)
        shutil.rmtree(HK_DIR, ignore_errors=True)
