"""What a Port_Binding condition costs the Southbound's ovsdb-server per full scan (a monitor
request, or a condition change: both make the server evaluate the condition against every row of
the table), for the shapes the reader could use, against bench/sb_sync.py's Southbound.

    .venv/bin/python -m bench.sb_condition_cost [--runs 3] [sb_sync's fill options, --dir, --reuse]

ovsdb-server hashes a condition's `==` clauses when every clause is `==`
(`ovsdb_condition_optimize`); otherwise it evaluates each clause against each row. The shapes:
- before issue 4: the three global types and our chassis (with `additional_chassis includes`);
- constant: the same plus `type == "patch"` (what the reader monitors);
- dependent: clauses naming each router (`options includes {peer: <distributed-port>}` per
  cr-lrp, `datapath == <router>` per cr-lrp's datapath, `logical_port == <peer>` per port on
  those datapaths), which receive the same rows as the constant shape;
- dependent, all `==`: the same without the `includes` clauses.
Prints, per shape, the clauses, the rows matched, and the server's CPU seconds per monitor
request (median of `--runs`, each on a new connection). Every process started is stopped.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import ovs.jsonrpc
import ovs.stream

from bench.sb_sync import LOCAL, Servers, cpu_seconds, parse_args, start_servers
from ovn_fabric.ovn.reader import GLOBAL_PORT_TYPES

Condition = list[Any]


def monitor_cost(servers: Servers, condition: Condition) -> tuple[int, float]:
    """One monitor_cond request on a new connection: rows matched, server CPU seconds."""
    pid = servers.sb.pid
    if pid is None:
        raise RuntimeError("the Southbound server is not running")
    error, stream = ovs.stream.Stream.open_block(ovs.stream.Stream.open(servers.sb.remote))
    if error:
        raise OSError(error, f"cannot connect to {servers.sb.remote}")
    connection = ovs.jsonrpc.Connection(stream)
    try:
        before = cpu_seconds(pid)
        request = ovs.jsonrpc.Message.create_request("monitor_cond", [
            "OVN_Southbound", None,
            {"Port_Binding": [{"columns": ["logical_port"], "where": condition}]}])
        error, reply = connection.transact_block(request)
        if error or reply.error is not None:
            raise RuntimeError(f"monitor_cond failed: {error or reply.error}")
        return len(reply.result.get("Port_Binding", {})), cpu_seconds(pid) - before
    finally:
        connection.close()


def shapes(servers: Servers) -> dict[str, Condition]:
    chassis, bindings = servers.sb.transact([
        {"op": "select", "table": "Chassis", "where": [["name", "==", LOCAL]],
         "columns": ["_uuid"]},
        {"op": "select", "table": "Port_Binding", "where": [],
         "columns": ["logical_port", "datapath", "type", "options"]}])
    mine = chassis["rows"][0]["_uuid"]
    rows = bindings["rows"]
    redirects = [row for row in rows if row["type"] == "chassisredirect"]
    routers = sorted({row["datapath"][1] for row in redirects})
    gateways = sorted({dict(row["options"][1])["distributed-port"] for row in redirects})
    peers = sorted({dict(row["options"][1])["peer"] for row in rows
                    if row["datapath"][1] in routers and row["type"] == "patch"})
    types = [["type", "==", kind] for kind in GLOBAL_PORT_TYPES if kind != "patch"]
    ours = [["chassis", "==", mine], ["requested_chassis", "==", mine]]
    naming = ([["datapath", "==", ["uuid", r]] for r in routers]
              + [["logical_port", "==", p] for p in peers])
    by_gateway = [["options", "includes", ["map", [["peer", g]]]] for g in gateways]
    return {
        "before issue 4": [*types, *ours, ["additional_chassis", "includes", mine]],
        "constant, type == patch": [*types, ["type", "==", "patch"], *ours,
                                    ["additional_chassis", "includes", mine]],
        "dependent, with includes": [*types, *ours, ["additional_chassis", "includes", mine],
                                     *by_gateway, *naming],
        "dependent, all ==": [*types, *ours, ["additional_chassis", "==", mine], *naming],
    }


def main() -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs", type=int, default=3)
    own, rest = parser.parse_known_args()
    args = parse_args(rest)
    servers = start_servers(args)
    try:
        for name, condition in shapes(servers).items():
            costs = []
            for _ in range(own.runs):
                rows, cost = monitor_cost(servers, condition)
                costs.append(cost)
            print(f"  {name:<26} {len(condition):5} clauses, {rows:6} rows: server CPU "
                  f"{statistics.median(costs):.2f} s per scan", flush=True)
    finally:
        servers.sb.stop()
        servers.ovs.stop()


if __name__ == "__main__":
    main()
