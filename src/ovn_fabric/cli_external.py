"""`ovn-fabric lab client|fip`: the world outside the cloud, and floating IPs that let it in.

    ovn-fabric lab client add [NAME] [--spine S] [--cidr P] [--cidr6 P | --no-ipv6]
                        | client del NAME | client list
    ovn-fabric lab fip add ROUTER VM [--address A] | fip del ADDRESS | fip list
                        | fip mode [distributed|centralized]

A client is a namespace behind a spine (`lab exec NAME -- ping ...` runs in it). A floating IP
is written as Neutron writes it, in the mode NB_Global says (`fip mode`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # the lab's modules are imported only when a lab command runs
    from ovn_fabric.lab.external_records import ClientRecord

WithPrefix = Callable[[argparse.ArgumentParser], argparse.ArgumentParser]


def add_parsers(lab_sub: argparse._SubParsersAction[argparse.ArgumentParser],
                with_prefix: WithPrefix) -> None:
    client = lab_sub.add_parser("client", help="hosts of an external network, behind a spine")
    client_sub = client.add_subparsers(dest="client_command", required=True)
    p = with_prefix(client_sub.add_parser("add"))
    p.add_argument("name", nargs="?", default="ext")
    p.add_argument("--spine", default="spine1")
    p.add_argument("--cidr", type=IPv4Network,
                   help="its IPv4 subnet, advertised by the spine (default 203.0.113.0/29)")
    p.add_argument("--cidr6", type=IPv6Network,
                   help="its IPv6 subnet (default 2001:db8:113::/64)")
    p.add_argument("--no-ipv6", action="store_true", help="IPv4 only")
    p = with_prefix(client_sub.add_parser("del"))
    p.add_argument("name")
    with_prefix(client_sub.add_parser("list"))

    fip = lab_sub.add_parser("fip", help="floating IPs, as Neutron writes them")
    fip_sub = fip.add_subparsers(dest="fip_command", required=True)
    p = with_prefix(fip_sub.add_parser("add", help="associate a floating IP with a VM"))
    p.add_argument("router")
    p.add_argument("vm")
    p.add_argument("--address", type=IPv4Address,
                   help="the floating IP (default: the first free one from .200)")
    p = with_prefix(fip_sub.add_parser("del"))
    p.add_argument("address", type=IPv4Address)
    with_prefix(fip_sub.add_parser("list"))
    p = with_prefix(fip_sub.add_parser(
        "mode", help="show or set NB_Global neutron:fip-distributed (Neutron's "
                     "enable_distributed_floating_ip)"))
    p.add_argument("mode", nargs="?", choices=["distributed", "centralized"])


def run_client(args: argparse.Namespace) -> int:
    from ovn_fabric.lab import external, lab  # noqa: PLC0415
    from ovn_fabric.lab import external_records as records  # noqa: PLC0415

    running = lab.open_lab(args.prefix)
    if args.client_command == "add":
        cidr6 = None if args.no_ipv6 else (args.cidr6 or external.DEFAULT_CIDR6)
        made = records.add_client(running, args.name, spine=args.spine,
                                  cidr=args.cidr or external.DEFAULT_CIDR, cidr6=cidr6)
        print(_client_line(made))
    elif args.client_command == "del":
        records.del_client(running, args.name)
    else:
        for record in records.list_clients(running.paths):
            print(_client_line(record))
    return 0


def _client_line(record: ClientRecord) -> str:
    client, six = record.client, record.six
    v6 = f"  {six.ip}" if six is not None else ""
    return f"{client.name:10} {client.ip}{v6}  behind {client.spine}"


def run_fip(args: argparse.Namespace) -> int:
    from ovn_fabric.lab import external, lab  # noqa: PLC0415
    from ovn_fabric.lab import external_records as records  # noqa: PLC0415

    running = lab.open_lab(args.prefix)
    if args.fip_command == "add":
        fip = records.add_floating_ip(running, args.router, args.vm, address=args.address)
        print(f"{fip.external_ip} -> {fip.vm.name} ({fip.vm.ip4.ip}) via router {fip.router}")
    elif args.fip_command == "del":
        records.del_floating_ip(running, args.address)
    elif args.fip_command == "mode":
        if args.mode is not None:
            external.set_fip_distributed(running, args.mode == "distributed")
        print("distributed" if external.fip_distributed(running) else "centralized")
    else:
        for fip in records.list_floating_ips(running.paths):
            print(f"{fip.external_ip} -> {fip.vm.name} ({fip.vm.ip4.ip}) via router "
                  f"{fip.router}")
    return 0


__all__ = ["add_parsers", "run_client", "run_fip"]
