"""Topology as data: the devices, links and roles of a lab, loaded from a TOML file.

The format is documented in docs/TOPOLOGY.md. Loading validates everything up front and names the
offending key, so a broken topology fails before anything is created. Derived facts (loopback
addresses, interface names, whether a session is iBGP or eBGP, who reflects routes for whom) are
computed here, once, as plain values; the renderers and builders only read them.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path
from typing import Any

NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
IFNAME_MAX = 15
# The OVS bridge whose address is a chassis' Geneve tunnel endpoint (ovn-encap-ip). The userspace
# datapath terminates tunnels only on an OVS bridge's own address, never on `lo` (LAB_NOTES.md).
ENCAP_BRIDGE = "br-phy"


class TopologyError(ValueError):
    """A topology file that cannot be built; the message names the offending key."""


class Role(StrEnum):
    SPINE = "spine"
    LEAF = "leaf"
    ROUTER = "router"          # a single central router (the two-worker shape)
    CONTROLLER = "controller"  # OVN NB/SB ovsdb-servers and ovn-northd, control-plane VIP
    COMPUTE = "compute"        # ovs-vswitchd + ovn-controller: an OVN chassis with VMs
    GATEWAY = "gateway"        # a chassis that may host router gateways (enable-chassis-as-gw)


FABRIC_ROLES = frozenset({Role.SPINE, Role.LEAF, Role.ROUTER})
CHASSIS_ROLES = frozenset({Role.COMPUTE, Role.GATEWAY})


@dataclass(frozen=True, slots=True)
class BfdTimers:
    interval_ms: int = 100
    multiplier: int = 3


@dataclass(frozen=True, slots=True)
class ProviderNetwork:
    """A Neutron provider network (flat) the lab creates in OVN, as Neutron would."""

    name: str
    physnet: str
    bridge: str
    cidr4: IPv4Network
    cidr6: IPv6Network
    gateway4: IPv4Address
    gateway6: IPv6Address


@dataclass(frozen=True, slots=True)
class ControlPlane:
    """The OVN control plane's virtual addresses, held on a controller's loopback."""

    vip4: IPv4Address
    vip6: IPv6Address


@dataclass(frozen=True, slots=True)
class Device:
    name: str
    roles: frozenset[Role]
    asn: int
    rack: int | None
    loopback4: IPv4Address
    loopback6: IPv6Address
    encap4: IPv4Address | None = None    # a chassis' tunnel endpoint, on br-phy; None elsewhere

    @property
    def is_host(self) -> bool:
        """A server (controller, compute, gateway) rather than a fabric switch."""
        return not (self.roles & FABRIC_ROLES)

    @property
    def is_chassis(self) -> bool:
        return bool(self.roles & CHASSIS_ROLES)

    @property
    def is_controller(self) -> bool:
        return Role.CONTROLLER in self.roles


@dataclass(frozen=True, slots=True)
class LinkEnd:
    device: str
    ifname: str


@dataclass(frozen=True, slots=True)
class Link:
    a: LinkEnd
    b: LinkEnd

    def end(self, device: str) -> LinkEnd:
        return self.a if self.a.device == device else self.b

    def peer(self, device: str) -> LinkEnd:
        return self.b if self.a.device == device else self.a


@dataclass(frozen=True, slots=True)
class Interface:
    """One fabric interface of a device, seen from that device."""

    ifname: str
    peer: Device
    peer_ifname: str
    ibgp: bool                  # same AS on both ends
    reflect_to_peer: bool       # this device is a route reflector and the peer its client
    peer_is_host: bool


@dataclass(frozen=True, slots=True)
class Topology:
    name: str
    description: str
    devices: tuple[Device, ...]
    links: tuple[Link, ...]
    bfd: BfdTimers
    loopback_pool4: IPv4Network
    loopback_pool6: IPv6Network
    control_plane: ControlPlane
    provider: ProviderNetwork
    encap_pool4: IPv4Network
    # Where tenant subnets routed without NAT (Neutron address scopes) come from: the leaves
    # accept such prefixes from gateway chassis only inside these pools. Empty: none at all.
    tenant_pools4: tuple[IPv4Network, ...] = ()
    tenant_pools6: tuple[IPv6Network, ...] = ()

    @property
    def tenant_pools(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return (*self.tenant_pools4, *self.tenant_pools6)

    def encap(self, name: str) -> IPv4Address:
        """The tunnel endpoint (ovn-encap-ip) of the chassis `name`."""
        address = self.device(name).encap4
        if address is None:
            raise KeyError(f"{name!r} is not a chassis: it has no tunnel endpoint")
        return address

    def device(self, name: str) -> Device:
        for dev in self.devices:
            if dev.name == name:
                return dev
        raise KeyError(f"no device {name!r} in topology {self.name!r}")

    @property
    def hosts(self) -> tuple[Device, ...]:
        return tuple(d for d in self.devices if d.is_host)

    @property
    def chassis(self) -> tuple[Device, ...]:
        return tuple(d for d in self.devices if d.is_chassis)

    @property
    def controller(self) -> Device:
        return next(d for d in self.devices if d.is_controller)

    def interfaces(self, name: str) -> tuple[Interface, ...]:
        """The fabric interfaces of a device, in link order."""
        me = self.device(name)
        result = []
        for link in self.links:
            if name not in (link.a.device, link.b.device):
                continue
            mine, theirs = link.end(name), link.peer(name)
            peer = self.device(theirs.device)
            ibgp = peer.asn == me.asn
            result.append(
                Interface(
                    ifname=mine.ifname,
                    peer=peer,
                    peer_ifname=theirs.ifname,
                    ibgp=ibgp,
                    reflect_to_peer=ibgp and not me.is_host and peer.is_host,
                    peer_is_host=peer.is_host,
                )
            )
        return tuple(result)


BUILTIN = ("three-rack", "two-worker")


def builtin_path(name: str) -> Path:
    ref = resources.files("ovn_fabric.lab.topologies").joinpath(f"{name}.toml")
    return Path(str(ref))


def load(name_or_path: str) -> Topology:
    """Load a built-in topology by name, or a topology file by path."""
    path = builtin_path(name_or_path) if name_or_path in BUILTIN else Path(name_or_path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise TopologyError(
            f"cannot read topology {name_or_path!r} ({exc.strerror}); "
            f"built-in topologies: {', '.join(BUILTIN)}"
        ) from exc
    return parse(text, source=str(path))


def parse(text: str, *, source: str = "<topology>") -> Topology:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TopologyError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return _build(data)
    except TopologyError as exc:
        raise TopologyError(f"{source}: {exc}") from exc


# --- building and validating ------------------------------------------------------------------


def _get(table: dict[str, Any], key: str, kind: type, where: str, default: Any = ...) -> Any:
    if key not in table:
        if default is ...:
            raise TopologyError(f"{where}: missing key {key!r}")
        return default
    value = table[key]
    if kind is int and isinstance(value, bool):
        raise TopologyError(f"{where}.{key}: expected an integer, got {value!r}")
    if not isinstance(value, kind):
        raise TopologyError(f"{where}.{key}: expected {kind.__name__}, got {value!r}")
    return value


def _addr(value: str, where: str, version: int) -> Any:
    try:
        addr = ipaddress.ip_address(value)
    except ValueError as exc:
        raise TopologyError(f"{where}: {value!r} is not an IP address") from exc
    if addr.version != version:
        raise TopologyError(f"{where}: {value!r} is not an IPv{version} address")
    return addr


def _net(value: str, where: str, version: int) -> Any:
    try:
        net = ipaddress.ip_network(value)
    except ValueError as exc:
        raise TopologyError(f"{where}: {value!r} is not a network prefix") from exc
    if net.version != version:
        raise TopologyError(f"{where}: {value!r} is not an IPv{version} prefix")
    return net


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise TopologyError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}")


def _build(data: dict[str, Any]) -> Topology:
    _check_keys(data, {"name", "description", "addressing", "bfd", "control_plane",
                       "provider_network", "device", "link"}, "top level")
    name = _get(data, "name", str, "top level")
    description = _get(data, "description", str, "top level", "")

    addressing = _get(data, "addressing", dict, "top level")
    _check_keys(addressing, {"loopback4", "loopback6", "encap4", "tenant4", "tenant6"},
                "addressing")
    pool4: IPv4Network = _net(_get(addressing, "loopback4", str, "addressing"),
                              "addressing.loopback4", 4)
    pool6: IPv6Network = _net(_get(addressing, "loopback6", str, "addressing"),
                              "addressing.loopback6", 6)
    encap_pool: IPv4Network = _net(_get(addressing, "encap4", str, "addressing"),
                                   "addressing.encap4", 4)
    if encap_pool.overlaps(pool4):
        raise TopologyError(
            f"addressing.encap4: {encap_pool} overlaps the loopback pool {pool4}")

    bfd_table = _get(data, "bfd", dict, "top level", {})
    _check_keys(bfd_table, {"interval_ms", "multiplier"}, "bfd")
    bfd = BfdTimers(
        interval_ms=_get(bfd_table, "interval_ms", int, "bfd", 100),
        multiplier=_get(bfd_table, "multiplier", int, "bfd", 3),
    )
    if not 10 <= bfd.interval_ms <= 60000:
        raise TopologyError("bfd.interval_ms: must be between 10 and 60000 (FRR's limits)")
    if not 2 <= bfd.multiplier <= 255:
        raise TopologyError("bfd.multiplier: must be between 2 and 255")

    devices = _build_devices(_get(data, "device", list, "top level"), pool4, pool6, encap_pool)
    by_name = {d.name: d for d in devices}
    links = _build_links(_get(data, "link", list, "top level"), by_name)

    cp = _get(data, "control_plane", dict, "top level")
    _check_keys(cp, {"vip4", "vip6"}, "control_plane")
    control_plane = ControlPlane(
        vip4=_addr(_get(cp, "vip4", str, "control_plane"), "control_plane.vip4", 4),
        vip6=_addr(_get(cp, "vip6", str, "control_plane"), "control_plane.vip6", 6),
    )
    for dev in devices:
        if control_plane.vip4 == dev.loopback4 or control_plane.vip6 == dev.loopback6:
            raise TopologyError(f"control_plane: VIP equals the loopback of {dev.name!r}")
        if dev.encap4 is not None and control_plane.vip4 == dev.encap4:
            raise TopologyError(f"control_plane: VIP equals the encap address of {dev.name!r}")

    provider = _build_provider(_get(data, "provider_network", dict, "top level"))
    tenant4: tuple[IPv4Network, ...] = _tenant_pools(addressing, 4)
    tenant6: tuple[IPv6Network, ...] = _tenant_pools(addressing, 6)
    taken: list[tuple[IPv4Network | IPv6Network, str]] = [
        (pool4, "the loopback pool"), (pool6, "the loopback pool"),
        (encap_pool, "the encap pool"), (provider.cidr4, "the provider network"),
        (provider.cidr6, "the provider network"),
        (ipaddress.ip_network(control_plane.vip4), "the control-plane VIP"),
        (ipaddress.ip_network(control_plane.vip6), "the control-plane VIP")]
    pools: tuple[IPv4Network | IPv6Network, ...] = (*tenant4, *tenant6)
    for pool in pools:
        for other, what in taken:
            if pool.version == other.version and pool.overlaps(other):
                raise TopologyError(f"addressing.tenant{pool.version}: {pool} overlaps {what} "
                                    f"{other}")
        taken.append((pool, "another tenant pool"))

    controllers = [d for d in devices if d.is_controller]
    if len(controllers) != 1:
        raise TopologyError(
            f"exactly one device must have the role 'controller', found {len(controllers)}")
    for dev in devices:
        if dev.is_host and not any(dev.name in (ln.a.device, ln.b.device) for ln in links):
            raise TopologyError(f"device {dev.name!r}: a host with no link to the fabric")

    return Topology(
        name=name, description=description, devices=devices, links=links, bfd=bfd,
        loopback_pool4=pool4, loopback_pool6=pool6, control_plane=control_plane,
        provider=provider, encap_pool4=encap_pool, tenant_pools4=tenant4, tenant_pools6=tenant6,
    )


def _tenant_pools(addressing: dict[str, Any], version: int) -> Any:
    """`tenant4` / `tenant6`: a list of prefixes, each short enough to hold subnets."""
    key = f"tenant{version}"
    values = _get(addressing, key, list, "addressing", [])
    pools = []
    for index, value in enumerate(values):
        where = f"addressing.{key}[{index}]"
        if not isinstance(value, str):
            raise TopologyError(f"{where}: expected a prefix string, got {value!r}")
        pool = _net(value, where, version)
        if pool.prefixlen == 0 or pool.prefixlen >= pool.max_prefixlen - 1:
            raise TopologyError(f"{where}: {pool} is no pool of subnets (neither the default "
                                f"route nor a host route)")
        pools.append(pool)
    return tuple(pools)


def _build_devices(
    tables: list[Any], pool4: IPv4Network, pool6: IPv6Network, encap_pool: IPv4Network
) -> tuple[Device, ...]:
    devices: list[Device] = []
    seen: set[str] = set()
    for index, table in enumerate(tables):
        where = f"device[{index}]"
        if not isinstance(table, dict):
            raise TopologyError(f"{where}: expected a table")
        _check_keys(table, {"name", "role", "roles", "asn", "rack", "loopback4", "loopback6",
                            "encap4"}, where)
        name = _get(table, "name", str, where)
        where = f"device {name!r}"
        if not NAME_RE.match(name):
            raise TopologyError(
                f"{where}: names are 1-12 lower-case letters and digits, starting with a letter")
        if name in seen:
            raise TopologyError(f"{where}: defined twice")
        seen.add(name)
        roles = _roles(table, where)
        asn = _get(table, "asn", int, where)
        if not 1 <= asn <= 4294967294:
            raise TopologyError(f"{where}.asn: {asn} is not a valid AS number")
        rack = _get(table, "rack", int, where, None)
        lo4 = (_addr(table["loopback4"], f"{where}.loopback4", 4) if "loopback4" in table
               else _nth(pool4, index + 1, where))
        lo6 = (_addr(table["loopback6"], f"{where}.loopback6", 6) if "loopback6" in table
               else _nth(pool6, index + 1, where))
        encap = _encap(table, roles, encap_pool, index, where)
        devices.append(Device(name, roles, asn, rack, lo4, lo6, encap))
    for attr in ("loopback4", "loopback6", "encap4"):
        used = [getattr(d, attr) for d in devices if getattr(d, attr) is not None]
        dup = [a for a, n in Counter(used).items() if n > 1]
        if dup:
            raise TopologyError(f"{attr} {dup[0]} is used by more than one device")
    loopbacks = {d.loopback4 for d in devices}
    for dev in devices:
        if dev.encap4 in loopbacks:
            raise TopologyError(f"device {dev.name!r}.encap4: {dev.encap4} is a loopback address")
    return tuple(devices)


def _encap(table: dict[str, Any], roles: frozenset[Role], pool: IPv4Network, index: int,
           where: str) -> IPv4Address | None:
    """A chassis' tunnel endpoint: address N of the encap pool for device N, or its own
    `encap4`, which must lie inside the pool too (every chassis routes the whole pool towards
    br-phy, see lab/overlay.py). Other devices have none."""
    if not roles & CHASSIS_ROLES:
        if "encap4" in table:
            raise TopologyError(f"{where}.encap4: only a chassis (compute, gateway) has one")
        return None
    if "encap4" not in table:
        if index + 1 >= pool.num_addresses - 1:     # the broadcast address is no endpoint
            raise TopologyError(f"{where}: the encap pool {pool} is too small")
        address: IPv4Address = _nth(pool, index + 1, where, "encap")
        return address
    address = _addr(table["encap4"], f"{where}.encap4", 4)
    if address not in pool or address in (pool.network_address, pool.broadcast_address):
        raise TopologyError(f"{where}.encap4: {address} is not a host address of {pool}")
    return address


def _roles(table: dict[str, Any], where: str) -> frozenset[Role]:
    raw = table.get("roles", [table["role"]] if "role" in table else None)
    if not raw or not isinstance(raw, list) or not all(isinstance(r, str) for r in raw):
        raise TopologyError(f"{where}: needs 'role' (a string) or 'roles' (a list of strings)")
    try:
        roles = frozenset(Role(r) for r in raw)
    except ValueError as exc:
        raise TopologyError(
            f"{where}: unknown role in {raw!r}; roles are {', '.join(r.value for r in Role)}"
        ) from exc
    if roles & FABRIC_ROLES and roles - FABRIC_ROLES:
        raise TopologyError(f"{where}: a fabric switch cannot also be a host ({sorted(roles)})")
    return roles


def _nth(pool: IPv4Network | IPv6Network, n: int, where: str, kind: str = "loopback") -> Any:
    if n >= pool.num_addresses:
        raise TopologyError(f"{where}: the {kind} pool {pool} is too small")
    return pool.network_address + n


def _parse_link(index: int, table: Any, by_name: dict[str, Device]
                ) -> tuple[str, str, list[str] | None]:
    where = f"link[{index}]"
    if not isinstance(table, dict):
        raise TopologyError(f"{where}: expected a table")
    _check_keys(table, {"ends", "ifnames"}, where)
    ends = _get(table, "ends", list, where)
    if len(ends) != 2 or not all(isinstance(e, str) for e in ends):
        raise TopologyError(f"{where}.ends: expected two device names, got {ends!r}")
    for end in ends:
        if end not in by_name:
            raise TopologyError(f"{where}.ends: no device named {end!r}")
    if ends[0] == ends[1]:
        raise TopologyError(f"{where}.ends: a link needs two different devices")
    ifnames = table.get("ifnames")
    if ifnames is not None and (
        not isinstance(ifnames, list) or len(ifnames) != 2
        or not all(isinstance(i, str) for i in ifnames)
    ):
        raise TopologyError(f"{where}.ifnames: expected two interface names")
    return ends[0], ends[1], ifnames


def _build_links(tables: list[Any], by_name: dict[str, Device]) -> tuple[Link, ...]:
    """Links with their interface names: given, or the peer's name (suffixed -1, -2... when two
    devices have several links), so `ip route` on a device reads `dev spine1`."""
    raw = [_parse_link(index, table, by_name) for index, table in enumerate(tables)]
    pair_count = Counter(frozenset((a, b)) for a, b, _ in raw)
    pair_seen: Counter[frozenset[str]] = Counter()
    links = []
    for index, (a, b, given) in enumerate(raw):
        pair = frozenset((a, b))
        pair_seen[pair] += 1
        suffix = f"-{pair_seen[pair]}" if pair_count[pair] > 1 else ""
        ifnames = given or [b + suffix, a + suffix]
        for ifname in ifnames:
            if not 1 <= len(ifname) <= IFNAME_MAX or ifname in ("lo", "up"):
                raise TopologyError(f"link[{index}]: bad interface name {ifname!r}")
        links.append(Link(LinkEnd(a, ifnames[0]), LinkEnd(b, ifnames[1])))

    per_device = Counter((end.device, end.ifname) for ln in links for end in (ln.a, ln.b))
    for (device, ifname), count in per_device.items():
        if count > 1:
            raise TopologyError(f"device {device!r}: interface name {ifname!r} used twice")
    return tuple(links)


def _build_provider(table: dict[str, Any]) -> ProviderNetwork:
    where = "provider_network"
    _check_keys(table, {"name", "physnet", "bridge", "cidr4", "cidr6", "gateway4", "gateway6"},
                where)
    cidr4 = _net(_get(table, "cidr4", str, where), f"{where}.cidr4", 4)
    cidr6 = _net(_get(table, "cidr6", str, where), f"{where}.cidr6", 6)
    gw4 = _addr(_get(table, "gateway4", str, where), f"{where}.gateway4", 4)
    gw6 = _addr(_get(table, "gateway6", str, where), f"{where}.gateway6", 6)
    if gw4 not in cidr4 or gw6 not in cidr6:
        raise TopologyError(f"{where}: the gateways must lie inside cidr4 and cidr6")
    bridge = _get(table, "bridge", str, where, "br-ex")
    if len(bridge) > IFNAME_MAX:
        raise TopologyError(f"{where}.bridge: {bridge!r} is longer than {IFNAME_MAX}")
    return ProviderNetwork(
        name=_get(table, "name", str, where),
        physnet=_get(table, "physnet", str, where),
        bridge=bridge, cidr4=cidr4, cidr6=cidr6, gateway4=gw4, gateway6=gw6,
    )
