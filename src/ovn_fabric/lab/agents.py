"""The agent on every chassis of a lab: its settings file, starting and stopping it, and the
restarts the tests inflict on a node (agent, FRR, ovs-vswitchd).

The agent runs inside the chassis namespace like any other daemon there. So `lab down` ends it
with the rest, and it sees the node's kernel, OVS and FRR as it would on a real host.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from ovn_fabric.lab import address_scope, fabric, ovn, vlan
from ovn_fabric.lab.lab import Lab
from ovn_fabric.lab.procs import alive, netns_pids, terminate
from ovn_fabric.lab.sh import run, wait_until

STATUS_PORT = 9247


def config_path(lab: Lab, node: str) -> Path:
    return lab.paths.device_dir(node) / "agent.toml"


def log_path(lab: Lab, node: str) -> Path:
    return lab.paths.device_dir(node) / "agent.log"


def render_config(lab: Lab, node: str) -> str:
    """The agent's settings for a lab chassis: its private OVS and FRR sockets, the provider
    bridge with the segment's gateway addresses (the same on every node), and one such bridge
    per VLAN network made with vlan.py."""
    provider = lab.topology.provider
    gateways = [f"{provider.gateway4}/{provider.cidr4.prefixlen}",
                f"{provider.gateway6}/{provider.cidr6.prefixlen}"]
    vlan_gateways = [gw for network in vlan.list_networks(lab.paths) for gw in network.gateways]
    return "\n".join([
        "[ovs]",
        f'db_socket = "{ovn.ovs_socket(lab.paths, node)}"',
        "",
        "[frr]",
        f'vty_socket = "{lab.paths.frr_dir(node)}"',
        "",
        f"[bridges.{provider.bridge}]",
        f"gateways = {json.dumps(gateways)}",
        "",
        *(line for network in vlan.list_networks(lab.paths)
          for line in (f"[bridges.{network.bridge}]",
                       f"gateways = {json.dumps(network.gateways)}", "")),
        "[reconcile]",
        "debounce_ms = 20",
        "resync_s = 60",
        "",
        "[status]",
        f'listen = "127.0.0.1:{STATUS_PORT}"',
        "",
        *address_scope.agent_settings(lab.paths, lab.topology, [*gateways, *vlan_gateways]),
    ])


def pid_path(lab: Lab, node: str) -> Path:
    return lab.paths.device_dir(node) / "agent.pid"


def agent_pid(lab: Lab, node: str) -> int | None:
    try:
        pid = int(pid_path(lab, node).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if alive(pid) and pid in netns_pids(lab.netns(node)) else None


def start(lab: Lab, node: str) -> int:
    """Start the node's agent in the background; returns its pid."""
    path = config_path(lab, node)
    path.write_text(render_config(lab, node))
    with log_path(lab, node).open("a") as log:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", lab.netns(node), sys.executable, "-m", "ovn_fabric.cli",
             "agent", "--config", str(path)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    pid_path(lab, node).write_text(str(proc.pid))
    return proc.pid


def stop(lab: Lab, node: str, sig: signal.Signals = signal.SIGTERM) -> None:
    """Stop the node's agent with `sig` and return once it is gone. SIGTERM lets it stop
    cleanly (SIGKILL after 5 s); any other signal is sent alone, so that SIGKILL is a crash
    the agent never sees coming (terminate() would send SIGTERM first)."""
    pid = agent_pid(lab, node)
    if pid is None:
        return
    if sig == signal.SIGTERM:
        terminate([pid], grace=5)
        return
    os.kill(pid, sig)
    wait_until(lambda: not alive(pid), timeout=5, what=f"the agent on {node} to die of {sig.name}")


def status(lab: Lab, node: str) -> dict[str, object]:
    """The agent's /status, fetched from inside its namespace."""
    out = run(["python3", "-c",
               "import urllib.request,sys;sys.stdout.write(urllib.request.urlopen("
               f"'http://127.0.0.1:{STATUS_PORT}/status',timeout=2).read().decode())"],
              netns=lab.netns(node)).stdout
    report: dict[str, object] = json.loads(out)
    return report


def wait_in_sync(lab: Lab, node: str, timeout: float = 15) -> dict[str, object]:
    def in_sync() -> dict[str, object] | None:
        report = status(lab, node)
        return report if report.get("state") == "ok" else None

    return wait_until(in_sync, timeout=timeout, what=f"the agent on {node} in sync")


def start_all(lab: Lab) -> None:
    for dev in lab.topology.chassis:
        start(lab, dev.name)
    for dev in lab.topology.chassis:
        wait_in_sync(lab, dev.name)


def restart_all(lab: Lab) -> None:
    """Stop every agent and start it again with a fresh settings file (after the lab's address
    scopes changed, say); returns once each is in sync."""
    for dev in lab.topology.chassis:
        stop(lab, dev.name)
    start_all(lab)


def restart_frr(lab: Lab, node: str) -> None:
    """Kill every FRR daemon of the node and start them again with the node's base
    configuration: everything pushed at run time (the agent's block) is gone."""
    frr_dir = lab.paths.frr_dir(node)
    pids = []
    for daemon in fabric.FRR_DAEMONS:
        try:
            pids.append(int((frr_dir / f"{daemon}.pid").read_text()))
        except (FileNotFoundError, ValueError):
            continue
    terminate(pids)
    fabric.start_frr(lab.paths, lab.topology, node)


def restart_vswitchd(lab: Lab, node: str) -> None:
    """Kill ovs-vswitchd and start it again: every flow not installed by a controller is lost
    (our egress rule among them); ovn-controller reinstalls its own."""
    ovn.restart_vswitchd(lab.paths, node)


__all__ = ["agent_pid", "render_config", "restart_all", "restart_frr", "restart_vswitchd", "start",
           "start_all", "status", "stop", "wait_in_sync"]

