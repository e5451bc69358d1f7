"""The FRR driver: keeps the agent's block (frr/exposure.py) present in the running FRR, and
touches nothing else.

read    bgpd's running configuration, asked over bgpd's vty socket as vtysh asks it ("enable",
        "write terminal": ~0.4 ms, where starting vtysh costs ~32 ms of CPU) -> the agent's own
        lines, recognised by the
        `OVN-FABRIC-` name prefix (prefix-list lines, route-map stanzas, and the `redistribute`
        lines that use our route-maps), plus the BGP instance's AS.
diff    pure: the vtysh commands that turn what is there into what is wanted, deletions first.
apply   one vtysh invocation with every command; vtysh exits non-zero if any line is refused.
        bgpd re-evaluates routes after prefix-list and route-map changes only once its route-map
        delay timer fires, so the states between the commands of one batch are never seen by a
        peer (a renumbered prefix-list entry does not flap the routes it permits).

When bgpd restarts it forgets everything pushed at run time. The next read then finds the block
missing, and the next apply restores it. The routes themselves live in the kernel, so nothing
is lost in the meantime.
"""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from ovn_fabric.frr.exposure import NAME_PREFIX, ExposureConfig

ROUTER_BGP_RE = re.compile(r"^router bgp (\d+)$")


class FrrError(RuntimeError):
    """FRR could not be read or written (bgpd down, no BGP instance, a refused command)."""


@dataclass(frozen=True, slots=True)
class FrrActual:
    """The agent's lines as found in FRR's running configuration."""

    asn: int | None
    prefix_list_lines: frozenset[str]
    route_maps: tuple[tuple[str, tuple[str, ...]], ...]   # (header, body lines), sorted
    bgp_lines: frozenset[tuple[str, str]]                 # (address family, line)


def parse_running_config(text: str) -> FrrActual:
    """Pick the agent's lines out of a whole running configuration."""
    asn: int | None = None
    prefix_lines: set[str] = set()
    route_maps: dict[str, list[str]] = {}
    bgp_lines: set[tuple[str, str]] = set()
    current_map: str | None = None
    in_bgp = False
    family: str | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        stripped = line.strip()
        if current_map is not None:
            if stripped in ("exit", "!") or not line.startswith(" "):
                current_map = None
            else:
                route_maps[current_map].append(stripped)
                continue
        if line.startswith(("ip prefix-list ", "ipv6 prefix-list ")):
            if line.split()[2].startswith(NAME_PREFIX):
                prefix_lines.add(line)
        elif line.startswith("route-map ") and line.split()[1].startswith(NAME_PREFIX):
            current_map = line
            route_maps[line] = []
        elif (m := ROUTER_BGP_RE.match(line)) is not None:
            asn, in_bgp, family = int(m.group(1)), True, None
        elif in_bgp and line.startswith(" address-family "):
            family = line.split()[1]
        elif in_bgp and stripped == "exit-address-family":
            family = None
        elif in_bgp and not line.startswith(" "):
            in_bgp = False
        elif in_bgp and family and NAME_PREFIX in stripped and stripped.startswith(
                "redistribute "):
            bgp_lines.add((family, stripped))
    return FrrActual(
        asn=asn,
        prefix_list_lines=frozenset(prefix_lines),
        route_maps=tuple(sorted((h, tuple(b)) for h, b in route_maps.items())),
        bgp_lines=frozenset(bgp_lines),
    )


def _wanted_route_maps(config: ExposureConfig) -> dict[str, tuple[str, ...]]:
    maps: dict[str, list[str]] = {}
    current: str | None = None
    for line in config.global_lines:
        if line.startswith("route-map "):
            current = line
            maps[current] = []
        elif line == "exit":
            current = None
        elif current is not None:
            maps[current].append(line.strip())
    return {h: tuple(b) for h, b in maps.items()}


def diff(wanted: ExposureConfig, actual: FrrActual) -> list[str]:
    """The vtysh configuration commands (without `configure terminal`) that make `actual` equal
    `wanted`. Empty when nothing differs. Deletions come before additions, so a prefix-list
    entry whose sequence number is reused is replaced rather than refused."""
    if actual.asn is None:
        raise FrrError("FRR has no BGP instance (`router bgp`) to redistribute into")
    want_prefix = {ln for ln in wanted.global_lines if "prefix-list" in ln.split()[:2]}
    want_maps = _wanted_route_maps(wanted)
    have_maps = dict(actual.route_maps)
    want_bgp = set(wanted.bgp_lines)

    commands: list[str] = []
    stale_bgp = sorted(actual.bgp_lines - want_bgp)
    missing_bgp = sorted(want_bgp - actual.bgp_lines)
    if stale_bgp:
        commands += _in_bgp(actual.asn, [(f, f"no {ln}") for f, ln in stale_bgp])
    commands += [f"no {h}" for h in sorted(set(have_maps) - set(want_maps))]
    commands += [f"no {ln}" for ln in sorted(actual.prefix_list_lines - want_prefix)]

    commands += sorted(want_prefix - actual.prefix_list_lines)
    for header, body in sorted(want_maps.items()):
        have = have_maps.get(header)
        if have == body:
            continue
        stanza = [f" no {ln}" for ln in (have or ()) if ln not in body]
        stanza += [f" {ln}" for ln in body if ln not in (have or ())]
        commands += [header, *stanza, "exit"]
    if missing_bgp:
        commands += _in_bgp(actual.asn, missing_bgp)
    return commands


def _in_bgp(asn: int, lines: Sequence[tuple[str, str]]) -> list[str]:
    commands = [f"router bgp {asn}"]
    for family in ("ipv4", "ipv6"):
        family_lines = [ln for f, ln in lines if f == family]
        if family_lines:
            commands += [f" address-family {family} unicast",
                         *(f"  {ln}" for ln in family_lines), " exit-address-family"]
    return [*commands, "exit"]


@dataclass(frozen=True, slots=True)
class Vtysh:
    """How to reach the node's FRR: vtysh's argv, e.g. ("vtysh", "--vty_socket", DIR), for
    writing; the directory of the daemons' vty sockets (the same DIR), for reading."""

    argv: tuple[str, ...] = ("vtysh",)
    vty_dir: str = "/var/run/frr"
    timeout: float = 30.0

    def bgpd_config(self) -> str:
        """bgpd's own running configuration, over its vty socket (one connection per read: a
        restarted bgpd has a new socket)."""
        path = f"{self.vty_dir}/bgpd.vty"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(path)
                vty_command(sock, "enable")
                return vty_command(sock, "write terminal")
        except OSError as exc:
            raise FrrError(f"bgpd's vty {path}: {exc}") from exc

    def run(self, commands: Sequence[str]) -> str:
        args = [*self.argv]
        for command in commands:
            args += ["-c", command]
        try:
            proc = subprocess.run(args, capture_output=True, text=True, check=False,
                                  timeout=self.timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FrrError(f"vtysh could not run: {exc}") from exc
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise FrrError(
                f"vtysh exited {proc.returncode}: {' | '.join(detail[-3:]) or 'no output'}")
        return proc.stdout


def vty_command(sock: socket.socket, command: str) -> str:
    """One command on a daemon's vty socket, as vtysh speaks it: the command and a NUL; the
    answer is the output, three NULs and a status byte (0: done)."""
    sock.sendall(command.encode() + b"\0")
    buffer = bytearray()
    while len(buffer) < 4 or buffer[-4:-1] != b"\0\0\0":
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise FrrError(f"the daemon closed its vty during {command!r}")
        buffer += chunk
    text = buffer[:-4].decode(errors="replace")
    if buffer[-1] != 0:
        raise FrrError(f"{command!r} refused (status {buffer[-1]}): {text.strip()[:200]}")
    return text


def read(vtysh: Vtysh) -> FrrActual:
    """bgpd's own running configuration. Not vtysh's merged `show running-config`: zebra keeps
    its copy of our route-maps and prefix-lists when bgpd restarts, and the merged view would
    hide that bgpd, which does the redistributing, has lost them."""
    return parse_running_config(vtysh.bgpd_config())


def apply(vtysh: Vtysh, commands: Sequence[str]) -> None:
    if commands:
        vtysh.run(["configure terminal", *commands, "end"])


def reconcile(vtysh: Vtysh, wanted: ExposureConfig) -> list[str]:
    """Read, diff, apply. Returns the commands that were applied (empty: nothing to do)."""
    commands = diff(wanted, read(vtysh))
    apply(vtysh, commands)
    return commands
