"""The `ovn-fabric` command.

    ovn-fabric lab up [TOPOLOGY] [--prefix P] [--fabric-only]
    ovn-fabric lab down [--prefix P]
    ovn-fabric lab status [--prefix P] [--json]
    ovn-fabric lab exec NODE -- CMD...
    ovn-fabric lab vtysh NODE [-c 'show bgp summary']
    ovn-fabric lab vm add NAME --node NODE [--network NET] [--ip4 A] [--ip6 A] | vm del NAME
                                                                                     | vm list
    ovn-fabric lab vm migrate NAME --to NODE
    ovn-fabric lab network add NAME --cidr4 P --cidr6 P | network del NAME | network list
    ovn-fabric lab router add NAME [--gateway-chassis A,B] [--scheduling S]
                                 | router attach ROUTER NETWORK | router del NAME | router list
    ovn-fabric lab link cut A B [--silent] [--index N] | link restore A B [--index N]
    ovn-fabric lab vip move NODE
    ovn-fabric lab client add [NAME] [--spine S] | client del NAME | client list
    ovn-fabric lab fip add ROUTER VM [--address A] | fip del A | fip list | fip mode [MODE]
    ovn-fabric agent --config FILE
    ovn-fabric status [--url http://127.0.0.1:9247] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ovn_fabric import cli_external
from ovn_fabric.lab.paths import DEFAULT_PREFIX

if TYPE_CHECKING:
    from ovn_fabric.lab import neutron
    from ovn_fabric.lab.vm import Vm


def _progress(line: str) -> None:
    print(f"  {line}", flush=True)


def _lab_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lab = sub.add_parser("lab", help="build and drive the network-namespace lab")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True)

    def with_prefix(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--prefix", default=DEFAULT_PREFIX,
                       help=f"lab name prefix for namespaces and files (default {DEFAULT_PREFIX})")
        return p

    p = with_prefix(lab_sub.add_parser("up", help="build a lab from a topology"))
    p.add_argument("topology", nargs="?", default="three-rack",
                   help="built-in topology name (three-rack, two-worker) or a TOML file")
    p.add_argument("--fabric-only", action="store_true", help="FRR fabric without OVN")
    with_prefix(lab_sub.add_parser("down", help="remove everything the lab made"))
    p = with_prefix(lab_sub.add_parser("status", help="nodes, sessions, routes, chassis"))
    p.add_argument("--json", action="store_true")
    p = with_prefix(lab_sub.add_parser("exec", help="run a command on a node or VM"))
    p.add_argument("node")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    p = with_prefix(lab_sub.add_parser("vtysh", help="FRR's shell on a device"))
    p.add_argument("node")
    p.add_argument("args", nargs=argparse.REMAINDER,
                   help="vtysh arguments, e.g. -c 'show bgp summary'")

    vm = lab_sub.add_parser("vm", help="plug and unplug VMs")
    vm_sub = vm.add_subparsers(dest="vm_command", required=True)
    p = with_prefix(vm_sub.add_parser("add"))
    p.add_argument("name")
    p.add_argument("--node", required=True)
    p.add_argument("--network", help="a tenant network (default: the provider network)")
    p.add_argument("--ip4")
    p.add_argument("--ip6")
    p = with_prefix(vm_sub.add_parser("del"))
    p.add_argument("name")
    with_prefix(vm_sub.add_parser("list"))
    p = with_prefix(vm_sub.add_parser("migrate", help="live-migrate, as Nova and Neutron do"))
    p.add_argument("name")
    p.add_argument("--to", required=True, help="the destination chassis")

    _neutron_parsers(lab_sub, with_prefix)
    cli_external.add_parsers(lab_sub, with_prefix)

    link = lab_sub.add_parser("link", help="break and mend fabric links")
    link_sub = link.add_subparsers(dest="link_command", required=True)
    for verb in ("cut", "restore"):
        p = with_prefix(link_sub.add_parser(verb))
        p.add_argument("a")
        p.add_argument("b")
        p.add_argument("--index", type=int, default=0, help="which link, if several")
        if verb == "cut":
            p.add_argument("--silent", action="store_true",
                           help="keep carrier up and drop every frame (only BFD notices)")

    vip = lab_sub.add_parser("vip", help="the control-plane VIP")
    vip_sub = vip.add_subparsers(dest="vip_command", required=True)
    p = with_prefix(vip_sub.add_parser("move"))
    p.add_argument("node")


def _neutron_parsers(lab_sub: argparse._SubParsersAction[argparse.ArgumentParser],
                     with_prefix: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
                     ) -> None:
    net = lab_sub.add_parser("network", help="Neutron tenant networks (Geneve, no localnet)")
    net_sub = net.add_subparsers(dest="network_command", required=True)
    p = with_prefix(net_sub.add_parser("add"))
    p.add_argument("name")
    p.add_argument("--cidr4", required=True, help="the IPv4 subnet, e.g. 10.0.0.0/24")
    p.add_argument("--cidr6", required=True, help="the IPv6 subnet, e.g. fd00:10::/64")
    p = with_prefix(net_sub.add_parser("del"))
    p.add_argument("name")
    with_prefix(net_sub.add_parser("list"))

    router = lab_sub.add_parser("router", help="Neutron distributed routers")
    router_sub = router.add_subparsers(dest="router_command", required=True)
    p = with_prefix(router_sub.add_parser("add", help="a router with its gateway on the "
                                                      "provider network"))
    p.add_argument("name")
    p.add_argument("--gateway-chassis",
                   help="comma-separated chassis, highest priority first (default: every "
                        "chassis with the gateway role)")
    p.add_argument("--scheduling", choices=["gateway_chassis", "ha_chassis_group"],
                   default="gateway_chassis",
                   help="how the gateway port is scheduled: Gateway_Chassis rows as Neutron "
                        "<= 28 writes them (default) or an HA_Chassis_Group as Neutron >= 29")
    p = with_prefix(router_sub.add_parser("attach", help="a router interface on a network"))
    p.add_argument("router")
    p.add_argument("network")
    p = with_prefix(router_sub.add_parser("del"))
    p.add_argument("name")
    with_prefix(router_sub.add_parser("list"))


def _split_options(rest: list[str], args: argparse.Namespace) -> list[str]:
    """`lab exec NODE [--prefix P] [--] CMD...`: options written after the node (argparse
    leaves them in the remainder) are taken here, so that `--prefix` is never passed on to the
    command or ignored (running in another lab)."""
    while rest and rest[0] != "--" and rest[0].startswith("--prefix"):
        if "=" in rest[0]:
            args.prefix, rest = rest[0].split("=", 1)[1], rest[1:]
        elif len(rest) > 1:
            args.prefix, rest = rest[1], rest[2:]
        else:
            raise SystemExit("ovn-fabric: error: --prefix needs a value")
    return rest[1:] if rest[:1] == ["--"] else rest


def _lab_up(args: argparse.Namespace) -> int:
    from ovn_fabric.lab import lab  # noqa: PLC0415

    print(f"ovn-fabric: building lab {args.prefix!r} from {args.topology}", flush=True)
    lab.up(args.topology, args.prefix, _progress, with_ovn=not args.fabric_only)
    return 0


def _lab_down(args: argparse.Namespace) -> int:
    from ovn_fabric.lab import lab  # noqa: PLC0415

    lab.down(args.prefix, _progress)
    return 0


def _lab_status(args: argparse.Namespace) -> int:
    from ovn_fabric.lab import lab, status  # noqa: PLC0415

    report = status.collect(lab.open_lab(args.prefix))
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.table())
    return 0


def _lab_link(args: argparse.Namespace) -> int:
    from ovn_fabric.lab import lab  # noqa: PLC0415

    running = lab.open_lab(args.prefix)
    link = lab.find_link(running, args.a, args.b, args.index)
    if args.link_command == "cut":
        lab.cut_link(running, link, silent=args.silent)
    else:
        lab.restore_link(running, link)
    return 0


def _lab_vip(args: argparse.Namespace) -> int:
    from ovn_fabric.lab import lab  # noqa: PLC0415

    was = lab.move_vip(lab.open_lab(args.prefix), args.node)
    print(f"control-plane VIP moved from {was or 'nowhere'} to {args.node}")
    return 0


def _run_lab(args: argparse.Namespace) -> int:
    handlers = {"up": _lab_up, "down": _lab_down, "status": _lab_status, "exec": _exec,
                "vtysh": _exec, "vm": _run_vm, "link": _lab_link, "vip": _lab_vip,
                "network": _run_network, "router": _run_router,
                "client": cli_external.run_client, "fip": cli_external.run_fip}
    return handlers[args.lab_command](args)


def _exec(args: argparse.Namespace) -> int:
    """`lab exec NODE -- CMD` and `lab vtysh NODE ARGS`: replace this process by the command,
    run in the node's (or VM's) namespace."""
    from ovn_fabric.lab import lab, status  # noqa: PLC0415

    rest = _split_options(args.cmd if args.lab_command == "exec" else args.args, args)
    running = lab.open_lab(args.prefix)
    if args.lab_command == "vtysh":
        running.topology.device(args.node)
        argv = ["vtysh", "--vty_socket", str(running.paths.frr_dir(args.node)), *rest]
    else:
        argv = rest or [os.environ.get("SHELL", "/bin/bash")]
    os.execvp("ip", ["ip", "netns", "exec", status.namespace_of(running, args.node), *argv])


def _run_vm(args: argparse.Namespace) -> int:
    from ovn_fabric.lab import lab, vm  # noqa: PLC0415

    running = lab.open_lab(args.prefix)
    if args.vm_command == "add":
        made = vm.add_vm(running.paths, running.topology, name=args.name, node=args.node,
                         ip4=args.ip4, ip6=args.ip6, network=args.network)
        print(_vm_line(made))
    elif args.vm_command == "del":
        vm.del_vm(running.paths, running.topology, args.name)
    elif args.vm_command == "migrate":
        from ovn_fabric.lab.migration import migrate_vm  # noqa: PLC0415

        done = migrate_vm(running.paths, running.topology, args.name, args.to)
        print(f"{_vm_line(done.vm)}  (from {done.source}: activated on {args.to} "
              f"{done.activated - done.started:.2f} s, done {done.unplugged - done.started:.2f} s)")
    else:
        for item in vm.list_vms(running.paths):
            print(_vm_line(item))
    return 0


def _vm_line(made: Vm) -> str:
    return (f"{made.name:10} on {made.node:10} {made.mac}  {made.ip4}  {made.ip6}  "
            f"port {made.port_id}" + (f"  network {made.network}" if made.network else ""))


def _run_network(args: argparse.Namespace) -> int:
    from ovn_fabric.lab import lab, neutron  # noqa: PLC0415

    running = lab.open_lab(args.prefix)
    if args.network_command == "add":
        made = neutron.add_network(running.paths, running.topology, args.name,
                                   cidr4=args.cidr4, cidr6=args.cidr6)
        print(f"{made.name:10} {made.cidr4} gw {made.gateway4}  {made.cidr6} gw {made.gateway6}"
              f"  mtu {made.mtu}  switch {made.switch}")
    elif args.network_command == "del":
        neutron.del_network(running.paths, running.topology, args.name)
    else:
        for item in neutron.list_networks(running.paths):
            print(f"{item.name:10} {item.cidr4}  {item.cidr6}  mtu {item.mtu}  "
                  f"switch {item.switch}")
    return 0


def _run_router(args: argparse.Namespace) -> int:
    from ovn_fabric.lab import lab, neutron  # noqa: PLC0415

    running = lab.open_lab(args.prefix)
    if args.router_command == "add":
        chassis = (tuple(c for c in args.gateway_chassis.split(",") if c)
                   if args.gateway_chassis else None)
        print(_router_line(neutron.add_router(running.paths, running.topology, args.name,
                                              gateway_chassis=chassis,
                                              scheduling=args.scheduling)))
    elif args.router_command == "attach":
        print(_router_line(neutron.attach(running.paths, running.topology, args.router,
                                          args.network)))
    elif args.router_command == "del":
        neutron.del_router(running.paths, running.topology, args.name)
    else:
        for item in neutron.list_routers(running.paths):
            print(_router_line(item))
    return 0


def _router_line(router: neutron.Router) -> str:
    networks = ",".join(i.network for i in router.interfaces) or "-"
    return (f"{router.name:10} gateway {router.gw_ip4} {router.gw_ip6} on "
            f"{'>'.join(router.gateway_chassis) or 'no chassis'}  networks {networks}  "
            f"router {router.lr}")


def _status(url: str, *, as_json: bool) -> int:
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/status", timeout=5) as reply:  # noqa: S310
            report = json.load(reply)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"ovn-fabric: error: no agent status at {url}: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"agent state: {report.get('state')}")
    last = report.get("last_pass")
    if last:
        print(f"last pass: {last['seconds']} s, triggers {last['triggers']}")
        for d in last["drivers"]:
            print(f"  {d['driver']:7} {d['changes']:5} change(s)  {d['seconds']:.4f} s"
                  + "".join(f"\n          FAILED: {f}" for f in d["failures"]))
    print("\nadvertised:")
    for a in report.get("advertised", []):
        draining = "  DRAINING (live migration: the destination is active)" if a.get(
            "draining") else ""
        print(f"  {a['prefix']:28} {a['reason']:14} port {a['port']}  network {a['network']}"
              f"  ({a['rule']}){draining}")
    print("\nrefused:")
    for r in report.get("refused", []) or [{"address": "none", "port": "", "why": ""}]:
        print(f"  {r['address']:28} {r['port']}  {r['why']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ovn-fabric", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _lab_parser(sub)
    p = sub.add_parser("agent", help="run the per-node agent")
    p.add_argument("--config", required=True, help="the agent's settings file (TOML)")
    p = sub.add_parser("status", help="what the node's agent advertises and refuses, and why")
    p.add_argument("--url", default="http://127.0.0.1:9247", help="the agent's status endpoint")
    p.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "agent":
        from ovn_fabric.agent.main import main as agent_main  # noqa: PLC0415

        return agent_main(args.config)
    if args.command == "status":
        return _status(args.url, as_json=args.json)
    from ovn_fabric.lab.lab import LabError  # noqa: PLC0415
    from ovn_fabric.lab.neutron import NeutronError  # noqa: PLC0415
    from ovn_fabric.lab.sh import CommandError  # noqa: PLC0415
    from ovn_fabric.lab.topology import TopologyError  # noqa: PLC0415
    from ovn_fabric.lab.vm import VmError  # noqa: PLC0415

    try:
        if args.command == "lab":
            return _run_lab(args)
    except (LabError, VmError, NeutronError, CommandError, TopologyError, FileNotFoundError,
            KeyError) as exc:
        print(f"ovn-fabric: error: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
