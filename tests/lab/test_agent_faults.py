"""The agent with every daemon it needs down: it keeps running, says what it waits for, reports
not-ready, and touches nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovn_fabric.lab.procs import netns_pids, terminate
from ovn_fabric.lab.sh import output, run, wait_until

pytestmark = pytest.mark.lab
NETNS = "ofaf"
CONFIG = """[ovs]
db_socket = "/run/ovn-fabric/nowhere/db.sock"
[frr]
vty_socket = "/run/ovn-fabric/nowhere/frr"
[bridges.br-ex]
gateways = ["172.24.4.1/24"]
"""


def _get(path: str) -> tuple[int, str]:
    out = run(["python3", "-c",
               "import urllib.request as u, urllib.error as e\n"
               f"try: r=u.urlopen('http://127.0.0.1:9247{path}',timeout=2); print(r.status)"
               "; print(r.read().decode())\n"
               "except e.HTTPError as x: print(x.code); print(x.read().decode())"],
              netns=NETNS).stdout
    code, _, body = out.partition("\n")
    return int(code), body


def _remove() -> None:
    if NETNS in output(["ip", "netns", "list"]).split():
        terminate(netns_pids(NETNS))
        run(["ip", "netns", "del", NETNS])


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    _remove()
    run(["ip", "netns", "add", NETNS])
    run(["ip", "-n", NETNS, "link", "set", "lo", "up"])
    run(["ip", "-n", NETNS, "link", "add", "br-ex", "type", "bridge"])
    (tmp_path / "agent.toml").write_text(CONFIG)
    log = tmp_path / "agent.log"
    with log.open("w") as out:
        proc = subprocess.Popen(["ip", "netns", "exec", NETNS, sys.executable, "-m",
                                 "ovn_fabric.cli", "agent", "--config",
                                 str(tmp_path / "agent.toml")],
                                stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc, log
    finally:
        _remove()
        proc.wait(timeout=10)


def test_agent_without_ovs_ovn_or_frr_keeps_running_and_waits(
        agent: tuple[subprocess.Popen[str], Path]) -> None:
    proc, log = agent
    wait_until(lambda: "not reachable" in log.read_text(), timeout=10,
               what="the agent to say the local OVS database is not reachable")
    assert proc.poll() is None                      # still running
    code, body = _get("/status")
    assert code == 200
    assert json.loads(body)["state"] == "waiting-for-ovn"
    assert _get("/readyz")[0] == 503
    assert _get("/healthz")[0] == 200
    # nothing touched: no route, neighbour or address of ours, bridge still down
    for what in (["route", "show", "proto", "247"], ["-6", "route", "show", "proto", "247"],
                 ["neigh", "show", "proto", "247"], ["addr", "show", "dev", "br-ex"]):
        assert "172.24.4" not in output(["ip", *what], netns=NETNS)
    assert "Traceback" not in log.read_text()
