"""How long the OVSDB reader takes from start to `synced`, and how much memory it needs, against a
large Southbound: with conditional monitoring, and with conditions off (every row, as
openstack/ovn-bgp-agent monitors).

    .venv/bin/python -m bench.sb_sync [--ports 100000] [--chassis 1000] [--datapaths 1000]
                                      [--local 100] [--load-balancers 100] [--runs 3]
                                      [--modes conditional all] [--dir DIR] [--keep]
                                      [--reuse]

Starts two standalone ovsdb-servers under `--dir` (/run/ovn-fabric/hr/bench: an OVN Southbound
and a local Open_vSwitch naming our chassis), fills the Southbound in one transaction with
Neutron-shaped rows (OVN_DATA.md): `--chassis` chassis with their encaps, `--datapaths`
datapaths (4% provider networks with a localnet port each, VLAN or flat; the rest routers and
tenant networks in pairs), per router a gateway (cr-lrp on one of three gateway chassis, or on
ours for four of them) with its two gateway patch ports (nat_addresses on the provider side, and
a distributed floating IP of a VM on every tenth) and an interface patch pair (the switch side
with Neutron's address-scope keys), `--load-balancers` Octavia load balancers on tenant
switches (SB shape of OVN 22.09-23.09: `datapath_group` -> Logical_DP_Group; the routers with a
gateway here have one each), the Logical_DP_Groups northd shares between logical flows (all
switches, all routers, and 40 groups of 25 tenant switches standing for security-group ACLs,
each held by one Logical_Flow), 50 virtual ports, and VM ports up to `--ports` in all,
`--local` of them bound to our chassis (four of which are the cr-lrps). Then, for each mode, it
runs the reader
`--runs` times, each in a fresh child process, and prints per run: seconds from
`Reader.start()` to `synced`, peak RSS of that process (VmHWM) and its growth since just before
`start()`, the CPU seconds the reader's process and the Southbound's ovsdb-server spent until
then (wall time on a shared 2-core machine depends on the load, CPU time much less: the load
average is printed with each run), rows replicated per table, and how long one `snapshot()`
takes; then the medians and the all/conditional ratios. The servers' files (a 100 MB Southbound
in /run, which is memory) are removed at the end unless `--keep`, which a later `--reuse` needs.
Every process started is stopped at the
end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ovn_fabric.lab.ovsdb_server import OVN_SB_SCHEMA, VSWITCH_SCHEMA, OvsdbServer
from ovn_fabric.lab.sh import run
from ovn_fabric.ovn.reader import Reader

BENCH_DIR = Path("/run/ovn-fabric/hr/bench")
# Bumped whenever fill_ops() changes, so that --reuse never measures an older Southbound.
DATA_VERSION = 2
FLOW_GROUPS = 40                 # groups of tenant switches shared by logical flows (ACLs)
FLOW_GROUP_SIZE = 25
LOCAL = "compute-local"
GATEWAYS = ("gateway-1", "gateway-2", "gateway-3")
LOCAL_GATEWAY_PORTS = 4
VIRTUAL_PORTS = 50
PHYSNETS = ("datacentre", "physnet1", "physnet2", "physnet3")
SYNC_TIMEOUT = 900.0


# --- the data -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Southbound:
    """Operations of one transaction filling a Southbound, and what they hold."""

    rng: random.Random
    ops: list[dict[str, Any]] = field(default_factory=list)
    next_key: dict[str, int] = field(default_factory=dict)      # datapath -> next port key
    counts: dict[str, int] = field(default_factory=dict)

    def insert(self, table: str, row: dict[str, Any], name: str | None = None) -> None:
        op: dict[str, Any] = {"op": "insert", "table": table, "row": row}
        if name is not None:
            op["uuid-name"] = name
        self.ops.append(op)
        self.counts[table] = self.counts.get(table, 0) + 1

    def port(self, datapath: str, **row: Any) -> None:
        key = self.next_key.get(datapath, 1)
        self.next_key[datapath] = key + 1
        self.insert("Port_Binding", {"datapath": ["named-uuid", datapath], "tunnel_key": key,
                                     **row})

    def mac(self) -> str:
        return "fa:16:3e:" + ":".join(f"{self.rng.randrange(256):02x}" for _ in range(3))

    def ip(self, network: int, host: int) -> str:
        return f"10.{network // 256}.{network % 256}.{host % 250 + 2}"


def ovs_map(values: dict[str, str]) -> list[Any]:
    return ["map", sorted(values.items())]


def chassis_names(count: int) -> list[str]:
    return [LOCAL, *GATEWAYS, *(f"compute-{i:04d}" for i in range(count - 1 - len(GATEWAYS)))]


def fill_ops(ports: int, chassis: int, datapaths: int, local: int, *,
             load_balancers: int = 0, seed: int = 1) -> Southbound:
    """The whole Southbound as one transaction (named-uuid references throughout)."""
    sb = Southbound(rng=random.Random(seed))  # noqa: S311  (test data, not secrets)
    names = chassis_names(chassis)
    for i, name in enumerate(names):
        sb.insert("Encap", {"type": "geneve", "ip": f"172.16.{i // 250}.{i % 250 + 1}",
                            "chassis_name": name, "options": ovs_map({"csum": "true"})},
                  name=f"e{i}")
        sb.insert("Chassis", {"name": name, "hostname": f"{name}.example.com",
                              "encaps": ["named-uuid", f"e{i}"]}, name=f"c{i}")
    providers = max(1, datapaths * 4 // 100)
    routers = (datapaths - providers) // 2
    tenants = datapaths - providers - routers
    for kind, count in (("p", providers), ("r", routers), ("t", tenants)):
        for i in range(count):
            neutron_id = str(uuid.UUID(int=sb.rng.getrandbits(128)))
            sb.insert("Datapath_Binding", {
                "tunnel_key": sb.counts.get("Datapath_Binding", 0) + 1,
                "external_ids": ovs_map({"name": f"neutron-{neutron_id}",
                                         "name2": f"{kind}-net-{i}"})}, name=f"{kind}{i}")
    for i in range(providers):
        vlan = {"tag": 100 + i} if i % 2 else {}
        sb.port(f"p{i}", logical_port=f"provnet-{uuid.UUID(int=sb.rng.getrandbits(128))}",
                type="localnet", mac="unknown",
                options=ovs_map({"network_name": PHYSNETS[i % len(PHYSNETS)],
                                 "mcast_flood": "false", "mcast_flood_reports": "true",
                                 "localnet_learn_fdb": "false"}), **vlan)
    for r in range(routers):
        gateway = 0 if r < LOCAL_GATEWAY_PORTS else 1 + r % len(GATEWAYS)
        add_router(sb, r, provider=f"p{r % providers}", tenant=f"t{r % tenants}",
                   gateway=f"c{gateway}")
    # Octavia load balancers on the tenant switches of routers: those with a gateway here
    # first, then spread over the others.
    for n in range(load_balancers):
        r = n if n < LOCAL_GATEWAY_PORTS else sb.rng.randrange(routers)
        add_load_balancer(sb, n, tenant=f"t{r % tenants}")
    add_flow_groups(sb, providers=providers, routers=routers, tenants=tenants)
    for v in range(VIRTUAL_PORTS):
        parent = str(uuid.UUID(int=sb.rng.getrandbits(128)))
        sb.port(f"t{v % tenants}", logical_port=str(uuid.UUID(int=sb.rng.getrandbits(128))),
                type="virtual", mac=f"{sb.mac()} {sb.ip(v, 200)}",
                chassis=["named-uuid", f"c{sb.rng.randrange(1, chassis)}"],
                virtual_parent=parent,
                options=ovs_map({"virtual-ip": sb.ip(v, 200), "virtual-parents": parent}))
    vms = ports - sb.counts.get("Port_Binding", 0)
    local_vms = local - LOCAL_GATEWAY_PORTS
    for n in range(vms):
        where = 0 if n < local_vms else sb.rng.randrange(1, chassis)
        on_provider = (n % 2 == 0) if where == 0 else sb.rng.random() < 0.3
        datapath = (f"p{sb.rng.randrange(providers)}" if on_provider
                    else f"t{sb.rng.randrange(tenants)}")
        add_vm(sb, n, datapath, chassis_index=where, host=names[where])
    return sb


def add_router(sb: Southbound, r: int, *, provider: str, tenant: str, gateway: str) -> None:
    gw, gw_lsp, iface = (str(uuid.UUID(int=sb.rng.getrandbits(128))) for _ in range(3))
    router, gw_mac, gw_ip = f"r{r}", sb.mac(), f"172.24.{r // 250}.{r % 250 + 2}"
    sb.port(router, logical_port=f"cr-lrp-{gw}", type="chassisredirect",
            mac=f"{gw_mac} {gw_ip}/16", chassis=["named-uuid", gateway], up=True,
            options=ovs_map({"always-redirect": "true", "distributed-port": f"lrp-{gw}"}))
    sb.port(router, logical_port=f"lrp-{gw}", type="patch", mac=f"{gw_mac} {gw_ip}/16",
            options=ovs_map({"peer": gw_lsp}))
    nat = [f'{gw_mac} {gw_ip} is_chassis_resident("cr-lrp-{gw}")']
    if r % 10 == 0:                      # a distributed floating IP of some VM
        fip_port = str(uuid.UUID(int=sb.rng.getrandbits(128)))
        nat.append(f'{sb.mac()} 172.25.{r // 250}.{r % 250 + 2} '
                   f'is_chassis_resident("{fip_port}")')
    sb.port(provider, logical_port=gw_lsp, type="patch", mac="router",
            options=ovs_map({"peer": f"lrp-{gw}"}), nat_addresses=["set", nat])
    if_mac = sb.mac()
    sb.port(router, logical_port=f"lrp-{iface}", type="patch", mac=f"{if_mac} 10.0.0.1/26",
            options=ovs_map({"peer": iface}))
    sb.port(tenant, logical_port=iface, type="patch", mac="router",
            options=ovs_map({"peer": f"lrp-{iface}"}),
            external_ids=ovs_map({"neutron:device_owner": "network:router_interface",
                                  "neutron:cidrs": "10.0.0.1/26",
                                  "neutron:subnet_pool_addr_scope4": "",
                                  "neutron:subnet_pool_addr_scope6": ""}))


def add_load_balancer(sb: Southbound, n: int, *, tenant: str) -> None:
    """An Octavia load balancer on one tenant switch, as northd 22.09-23.09 writes it."""
    lb_id, nb_uuid = (str(uuid.UUID(int=sb.rng.getrandbits(128))) for _ in range(2))
    vip = f"10.0.0.{40 + n % 100}"
    members = ",".join(f"10.0.0.{10 + m}:8080" for m in range(3))
    sb.insert("Logical_DP_Group", {"datapaths": ["named-uuid", tenant]}, name=f"lbg{n}")
    sb.insert("Load_Balancer", {
        "name": lb_id, "protocol": "tcp",
        "vips": ovs_map({f"{vip}:80": members,
                         f"172.26.{n // 250}.{n % 250 + 2}:80": members}),
        "datapath_group": ["named-uuid", f"lbg{n}"],
        "external_ids": ovs_map({"lb_id": nb_uuid})})


def add_flow_groups(sb: Southbound, *, providers: int, routers: int, tenants: int) -> None:
    """The datapath groups northd shares between logical flows: every switch, every router,
    and groups of switches whose ports share a security group. Each is held by one flow (a
    group nothing references is garbage-collected)."""
    switches = [f"p{i}" for i in range(providers)] + [f"t{i}" for i in range(tenants)]
    groups = [switches, [f"r{i}" for i in range(routers)]]
    groups += [sb.rng.sample([f"t{i}" for i in range(tenants)], min(FLOW_GROUP_SIZE, tenants))
               for _ in range(FLOW_GROUPS)]
    for g, members in enumerate(groups):
        sb.insert("Logical_DP_Group", {
            "datapaths": ["set", [["named-uuid", member] for member in members]]},
            name=f"fg{g}")
        sb.insert("Logical_Flow", {
            "logical_dp_group": ["named-uuid", f"fg{g}"], "pipeline": "ingress",
            "table_id": 0, "priority": 50, "match": "1", "actions": "next;"})


def add_vm(sb: Southbound, n: int, datapath: str, *, chassis_index: int, host: str) -> None:
    port, device = (str(uuid.UUID(int=sb.rng.getrandbits(128))) for _ in range(2))
    mac, ip = sb.mac(), sb.ip(n // 250, n)
    ref = ["named-uuid", f"c{chassis_index}"]
    sb.port(datapath, logical_port=port, type="", mac=f"{mac} {ip}", chassis=ref,
            requested_chassis=ref, up=True,
            options=ovs_map({"requested-chassis": f"{host}.example.com"}),
            external_ids=ovs_map({
                "name": f"vm{n}-port", "neutron:cidrs": f"{ip}/24",
                "neutron:device_id": device, "neutron:device_owner": "compute:nova",
                "neutron:host_id": f"{host}.example.com", "neutron:mtu": "",
                "neutron:network_name": f"neutron-{datapath}",
                "neutron:port_capabilities": "", "neutron:port_name": f"vm{n}-port",
                "neutron:project_id": "8d3d1c4ae4d84bd39b4f8a4e0f9e6c3b",
                "neutron:revision_number": "4",
                "neutron:security_group_ids": "5a6c1e04-58bc-4a4b-9d56-6b1c2fbd9b11",
                "neutron:subnet_pool_addr_scope4": "", "neutron:subnet_pool_addr_scope6": "",
                "neutron:vnic_type": "normal"}))


# --- servers ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Servers:
    sb: OvsdbServer
    ovs: OvsdbServer


def start_servers(args: argparse.Namespace) -> Servers:
    servers = Servers(sb=OvsdbServer(args.dir, "sb", OVN_SB_SCHEMA),
                      ovs=OvsdbServer(args.dir, "ovs", VSWITCH_SCHEMA))
    marker = args.dir / "filled.json"
    wanted = json.dumps([DATA_VERSION, args.ports, args.chassis, args.datapaths, args.local,
                         args.load_balancers])
    reuse = args.reuse and marker.exists() and marker.read_text() == wanted
    if not reuse:
        servers.sb.create()
        marker.unlink(missing_ok=True)
    servers.sb.start()
    if not reuse:
        started = time.monotonic()
        sb = fill_ops(args.ports, args.chassis, args.datapaths, args.local,
                      load_balancers=args.load_balancers)
        generated = time.monotonic()
        servers.sb.transact(sb.ops)
        done = time.monotonic()
        print(f"filled the Southbound in one transaction of {len(sb.ops)} operations: "
              f"{', '.join(f'{n} {t}' for t, n in sorted(sb.counts.items()))}; generated in "
              f"{generated - started:.1f} s, committed in {done - generated:.1f} s")
        marker.write_text(wanted)
    servers.ovs.create()
    servers.ovs.start()
    vsctl = ["ovs-vsctl", f"--db={servers.ovs.remote}", "--no-wait"]
    run([*vsctl, "init"])
    run([*vsctl, "set", "Open_vSwitch", ".", f"external_ids:system-id={LOCAL}",
         f"external_ids:ovn-remote={servers.sb.remote}",
         "external_ids:ovn-bridge-mappings=datacentre:br-ex,physnet1:br-vlan"])
    return servers


# --- one measurement (child process) ------------------------------------------------------------


def memory_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise KeyError(field_name)


def measure(ovs_socket: str, monitor_all: bool) -> dict[str, Any]:
    """Start a reader, wait for synced, take one snapshot; figures as a dict."""
    changed = threading.Event()
    reader = Reader(ovs_socket=ovs_socket, on_change=changed.set, monitor_all=monitor_all)
    rss_before = memory_kib("VmRSS")
    cpu_before = time.process_time()
    started = time.monotonic()
    reader.start()
    try:
        deadline = started + SYNC_TIMEOUT
        while not reader.synced:
            if time.monotonic() > deadline:
                raise TimeoutError(f"not synced after {SYNC_TIMEOUT} s")
            changed.wait(1.0)
            changed.clear()
        synced = time.monotonic() - started
        cpu = time.process_time() - cpu_before
        status = reader.status()
        before_snapshot = time.monotonic()
        view = reader.snapshot()
        snapshot = time.monotonic() - before_snapshot
    finally:
        reader.close()
    return {
        "synced_s": round(synced, 3),
        "cpu_s": round(cpu, 3),
        "hwm_mib": round(memory_kib("VmHWM") / 1024, 1),
        "growth_mib": round((memory_kib("VmHWM") - rss_before) / 1024, 1),
        "rss_before_mib": round(rss_before / 1024, 1),
        "rows": dict(status.rows),
        "clauses": dict(status.clauses),
        "view_port_bindings": len(view.port_bindings),
        "view_problems": len(view.problems),
        "snapshot_s": round(snapshot, 3),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_child(ovs_socket: Path, mode: str, server_pid: int) -> dict[str, Any]:
    load = os.getloadavg()[0]
    server_before = cpu_seconds(server_pid)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.sb_sync", "--measure", mode, "--ovs-socket",
         str(ovs_socket)],
        capture_output=True, text=True, check=False, timeout=SYNC_TIMEOUT + 60,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"measurement ({mode}) failed: {proc.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    # the server's CPU until the child exited: its share for this client's start (the client
    # only took a snapshot and closed after synced)
    result["server_cpu_s"] = round(cpu_seconds(server_pid) - server_before, 3)
    result["load"] = round(load, 1)
    return result


# --- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ports", type=int, default=100_000)
    parser.add_argument("--chassis", type=int, default=1_000)
    parser.add_argument("--datapaths", type=int, default=1_000)
    parser.add_argument("--local", type=int, default=100)
    parser.add_argument("--load-balancers", type=int, default=100)
    parser.add_argument("--dir", type=Path, default=BENCH_DIR,
                        help="where the servers' files and sockets live (short: unix socket "
                             "paths are limited to 108 bytes)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", nargs="+", choices=("conditional", "all"),
                        default=["conditional", "all"])
    parser.add_argument("--keep", action="store_true",
                        help="leave the servers' files under --dir for a later --reuse")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the Southbound of a --keep run if filled the same way")
    parser.add_argument("--measure", choices=("conditional", "all"), help=argparse.SUPPRESS)
    parser.add_argument("--ovs-socket", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def runs(servers: Servers, mode: str, count: int) -> Iterator[dict[str, Any]]:
    for i in range(count):
        if servers.sb.pid is None:
            raise RuntimeError("the Southbound server is not running")
        result = run_child(servers.ovs.socket, mode, servers.sb.pid)
        print(f"  {mode:<11} run {i + 1} (load {result['load']}): synced "
              f"{result['synced_s']:7.3f} s, CPU {result['cpu_s']:.3f} s (server "
              f"{result['server_cpu_s']:.3f} s), peak RSS {result['hwm_mib']:7.1f} MiB "
              f"(+{result['growth_mib']:.1f} over "
              f"{result['rss_before_mib']:.1f}), rows {result['rows']}, snapshot "
              f"{result['snapshot_s']:.3f} s of {result['view_port_bindings']} bindings",
              flush=True)
        yield result


def remove_files(directory: Path) -> None:
    """The servers' files, and `directory` itself (and the default's parents) once empty:
    never anything else, since --dir may name a shared directory."""
    for server in ("sb", "ovs"):
        for name in (f"{server}.db", f".{server}.db.~lock~", f"{server}.log", f"{server}.sock",
                     f"{server}.ctl"):
            (directory / name).unlink(missing_ok=True)
    (directory / "filled.json").unlink(missing_ok=True)
    for empty in (directory, *(BENCH_DIR.parents[:2] if directory == BENCH_DIR else ())):
        try:
            empty.rmdir()
        except OSError:
            return


def main() -> None:
    args = parse_args()
    if args.measure:
        print(json.dumps(measure(args.ovs_socket, monitor_all=args.measure == "all")))
        return
    servers = start_servers(args)
    try:
        medians: dict[str, dict[str, float]] = {}
        for mode in args.modes:
            results = list(runs(servers, mode, args.runs))
            medians[mode] = {key: statistics.median(r[key] for r in results)
                             for key in ("synced_s", "cpu_s", "server_cpu_s", "hwm_mib",
                                         "growth_mib", "snapshot_s")}
        print(f"\nmedians of {args.runs} runs ({args.ports} port bindings, {args.chassis} "
              f"chassis, {args.datapaths} datapaths, {args.load_balancers} load balancers, "
              f"{args.local} bound here):")
        for mode, figures in medians.items():
            print(f"  {mode:<11} synced {figures['synced_s']:.3f} s, CPU "
                  f"{figures['cpu_s']:.3f} s (server {figures['server_cpu_s']:.3f} s), peak RSS "
                  f"{figures['hwm_mib']:.1f} MiB (reader's growth {figures['growth_mib']:.1f}"
                  f" MiB), snapshot {figures['snapshot_s']:.3f} s")
        if {"conditional", "all"} <= medians.keys():
            cond, full = medians["conditional"], medians["all"]
            print(f"  all / conditional: synced x{full['synced_s'] / cond['synced_s']:.0f}, "
                  f"CPU x{full['cpu_s'] / cond['cpu_s']:.0f}, "
                  f"peak RSS x{full['hwm_mib'] / cond['hwm_mib']:.1f}, reader's growth "
                  f"x{full['growth_mib'] / max(cond['growth_mib'], 0.1):.0f}")
    finally:
        servers.sb.stop()
        servers.ovs.stop()
        if not args.keep:
            remove_files(args.dir)


if __name__ == "__main__":
    main()
