"""What `ovn-fabric lab client|fip` made, kept under the lab's directory so that a later command
(`del`, `list`, `lab exec CLIENT`) finds it. Tests and benches hold these values in memory and do
not need this module; the CLI runs one command per process and does.

    <lab dir>/external/clients/<name>.json    an external client (and its IPv6 leg, if any)
    <lab dir>/external/fips/<address>.json    a floating IP: the VM by name, the router by name
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface, IPv6Network
from pathlib import Path

from ovn_fabric.lab import external
from ovn_fabric.lab import vm as vmmod
from ovn_fabric.lab.external import Client, Client6, ExternalError, FloatingIp
from ovn_fabric.lab.lab import Lab
from ovn_fabric.lab.paths import LabPaths


@dataclass(frozen=True, slots=True)
class ClientRecord:
    client: Client
    six: Client6 | None


def _dir(paths: LabPaths, kind: str) -> Path:
    return paths.lab_dir / "external" / kind


def add_client(lab: Lab, name: str, *, spine: str, cidr: IPv4Network,
               cidr6: IPv6Network | None) -> ClientRecord:
    """external.add_client (and add_client_ipv6 with `cidr6`), recorded."""
    path = _dir(lab.paths, "clients") / f"{name}.json"
    if path.exists():
        raise ExternalError(f"client {name!r} already exists in lab {lab.paths.prefix!r}")
    client = external.add_client(lab, name, spine=spine, cidr=cidr)
    six = external.add_client_ipv6(lab, client, cidr=cidr6) if cidr6 is not None else None
    path.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, str | None] = {
        "name": name, "netns": client.netns, "spine": spine, "cidr": str(cidr),
        "spine_ip": str(client.spine_ip), "ip": str(client.ip),
        "cidr6": str(six.cidr) if six else None,
        "spine_ip6": str(six.spine_ip) if six else None, "ip6": str(six.ip) if six else None}
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return ClientRecord(client, six)


def _client_from(data: dict[str, str]) -> ClientRecord:
    client = Client(name=data["name"], netns=data["netns"], spine=data["spine"],
                    cidr=IPv4Network(data["cidr"]), spine_ip=IPv4Interface(data["spine_ip"]),
                    ip=IPv4Interface(data["ip"]))
    six = None
    if data.get("cidr6"):
        six = Client6(client=client, cidr=IPv6Network(data["cidr6"]),
                      spine_ip=IPv6Interface(data["spine_ip6"]), ip=IPv6Interface(data["ip6"]))
    return ClientRecord(client, six)


def load_client(paths: LabPaths, name: str) -> ClientRecord | None:
    path = _dir(paths, "clients") / f"{name}.json"
    return _client_from(json.loads(path.read_text())) if path.exists() else None


def list_clients(paths: LabPaths) -> list[ClientRecord]:
    root = _dir(paths, "clients")
    return [_client_from(json.loads(p.read_text())) for p in sorted(root.glob("*.json"))]


def del_client(lab: Lab, name: str) -> None:
    record = load_client(lab.paths, name)
    if record is None:
        raise ExternalError(f"no client {name!r} in lab {lab.paths.prefix!r}")
    if record.six is not None:
        external.del_client_ipv6(lab, record.six)
    external.del_client(lab, record.client)
    (_dir(lab.paths, "clients") / f"{name}.json").unlink()


def add_floating_ip(lab: Lab, router: str, vm_name: str, *,
                    address: IPv4Address | None) -> FloatingIp:
    """external.add_floating_ip for the VM of that name, recorded."""
    fip = external.add_floating_ip(lab, router, vmmod.load_vm(lab.paths, vm_name),
                                   external_ip=address)
    path = _dir(lab.paths, "fips") / f"{fip.external_ip}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "fip_id": fip.fip_id, "fip_port_id": fip.fip_port_id,
        "external_ip": str(fip.external_ip), "external_mac": fip.external_mac,
        "vm": fip.vm.name, "router": fip.router}, indent=2, sort_keys=True) + "\n")
    return fip


def _fip_from(paths: LabPaths, data: dict[str, str]) -> FloatingIp:
    return FloatingIp(fip_id=data["fip_id"], fip_port_id=data["fip_port_id"],
                      external_ip=IPv4Address(data["external_ip"]),
                      external_mac=data["external_mac"], vm=vmmod.load_vm(paths, data["vm"]),
                      router=data["router"])


def list_floating_ips(paths: LabPaths) -> list[FloatingIp]:
    root = _dir(paths, "fips")
    return [_fip_from(paths, json.loads(p.read_text())) for p in sorted(root.glob("*.json"))]


def del_floating_ip(lab: Lab, address: IPv4Address) -> None:
    path = _dir(lab.paths, "fips") / f"{address}.json"
    if not path.exists():
        raise ExternalError(f"no floating IP {address} in lab {lab.paths.prefix!r}")
    external.del_floating_ip(lab, _fip_from(lab.paths, json.loads(path.read_text())))
    path.unlink()


__all__ = ["ClientRecord", "add_client", "add_floating_ip", "del_client", "del_floating_ip",
           "list_clients", "list_floating_ips", "load_client"]
