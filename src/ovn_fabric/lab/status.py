"""`lab status`: one row per device (sessions, BFD, routes) and the OVN chassis, read live."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from ovn_fabric.lab.external_records import load_client
from ovn_fabric.lab.lab import Lab, bfd_peers, bgp_peers, kernel_routes
from ovn_fabric.lab.sh import CommandError


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    name: str
    roles: str
    rack: str
    loopback: str
    bgp: str            # "established/configured", or the error
    bfd: str            # "up/total"
    routes4: int
    routes6: int


@dataclass(frozen=True, slots=True)
class ChassisStatus:
    name: str
    hostname: str
    encap_ip: str


@dataclass(frozen=True, slots=True)
class StatusReport:
    prefix: str
    topology: str
    devices: tuple[DeviceStatus, ...]
    chassis: tuple[ChassisStatus, ...]
    ovn_error: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def table(self) -> str:
        head = ("device", "roles", "rack", "loopback", "BGP up", "BFD up", "v4 routes",
                "v6 routes")
        rows = [head] + [(d.name, d.roles, d.rack, d.loopback, d.bgp, d.bfd, str(d.routes4),
                          str(d.routes6)) for d in self.devices]
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines = [f"lab {self.prefix!r}, topology {self.topology}", ""]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                  for r in rows]
        lines += ["", "OVN chassis in the SB:"]
        if self.ovn_error:
            lines.append(f"  unavailable: {self.ovn_error}")
        lines += [f"  {c.name:12} hostname={c.hostname:12} encap={c.encap_ip}"
                  for c in self.chassis]
        if not self.chassis and not self.ovn_error:
            lines.append("  none")
        return "\n".join(lines)


def _device_status(lab: Lab, name: str) -> DeviceStatus:
    dev = lab.topology.device(name)
    configured = len(lab.topology.interfaces(name))
    try:
        peers = bgp_peers(lab, name)
        bgp = f"{sum(s == 'Established' for s in peers.values())}/{configured}"
        bfd_states = bfd_peers(lab, name)
        bfd = f"{sum(s == 'up' for s in bfd_states.values())}/{len(bfd_states)}"
    except CommandError as exc:
        bgp, bfd = f"FRR unreachable ({exc.returncode})", "-"
    return DeviceStatus(
        name=name, roles=",".join(sorted(dev.roles)), rack=str(dev.rack or "-"),
        loopback=str(dev.loopback4), bgp=bgp, bfd=bfd,
        routes4=len(kernel_routes(lab, name, 4)), routes6=len(kernel_routes(lab, name, 6)),
    )


def _chassis(lab: Lab) -> tuple[tuple[ChassisStatus, ...], str]:
    from ovn_fabric.lab import ovn  # noqa: PLC0415

    try:
        raw = ovn.sbctl(lab.paths, lab.topology.controller.name, "--format=json",
                        "--columns=name,hostname,encaps", "list", "Chassis")
        encaps = ovn.sbctl(lab.paths, lab.topology.controller.name, "--format=json",
                           "--columns=_uuid,ip", "list", "Encap")
    except (CommandError, FileNotFoundError) as exc:
        return (), str(exc)
    encap_ip = {row[0][1]: row[1] for row in json.loads(encaps)["data"]}
    result = []
    for name, hostname, enc in json.loads(raw)["data"]:
        refs = [enc[1]] if enc[0] == "uuid" else [u for _, u in enc[1]]
        result.append(ChassisStatus(name, hostname, ",".join(encap_ip.get(r, "?") for r in refs)))
    return tuple(sorted(result, key=lambda c: c.name)), ""


def collect(lab: Lab) -> StatusReport:
    devices = tuple(_device_status(lab, d.name) for d in lab.topology.devices)
    chassis, error = _chassis(lab)
    return StatusReport(lab.prefix, lab.topology.name, devices, chassis, error)


def namespace_of(lab: Lab, node: str) -> str:
    """The namespace of a device, of an external client, or of a VM of the lab."""
    if any(d.name == node for d in lab.topology.devices):
        return lab.paths.netns(node)
    client = load_client(lab.paths, node)
    return client.client.netns if client is not None else lab.paths.vm_netns(node)
