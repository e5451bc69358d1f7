"""The agent's settings: one TOML file loaded into frozen values, passed explicitly (no global).

The file format, every key and its default are documented in docs/CONFIG.md. In short:

    [node]        chassis, hostname          overrides of what the local OVS says (optional)
    [ovn]         sb_remote, nb_remote       OVSDB remotes (optional: from the local OVS)
                  ssl_private_key, ssl_certificate, ssl_ca_cert
    [ovs]         db_socket                  the local ovsdb-server's unix socket
    [frr]         vty_socket                 the directory of FRR's vty sockets (optional)
    [bridges.<name>]  gateways               provider bridges the agent may touch (opt-in)
    [exposure]    allow, deny                prefixes the node may advertise
    [tenant_networks]  enabled, address_scopes   subnets behind routers (opt-in)
    [reconcile]   debounce_ms, resync_s
    [status]      enabled, listen            status and metrics endpoint
    [log]         level

Loading validates everything up front: an unknown key, a value of the wrong type or a malformed
address raises ConfigError, whose message names the file and the offending key, e.g.
`agent.toml: bridges.br-ex.gateways[1]: 'x' is not an address/prefix`.

Facts that only the local OVS knows (system-id, hostname, ovn-remote, ovn-bridge-mappings) are
not settings: `None` here means "ask the local OVS at run time". Only the bridges listed under
[bridges] are ever touched: a physnet mapped to any other bridge stays plain layer 2.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import tomllib
import uuid
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)
from pathlib import Path, PurePosixPath
from typing import Any

IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface
IPNetwork = IPv4Network | IPv6Network

# Linux interface names: at most 15 bytes. Restricted further to TOML bare-key characters so a
# bridge's table header needs no quoting and error messages name it unambiguously.
BRIDGE_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,15}$")
DEFAULT_OVS_DB_SOCKET = PurePosixPath("/var/run/openvswitch/db.sock")
DEFAULT_STATUS_HOST: IPAddress = IPv4Address("127.0.0.1")
DEFAULT_STATUS_PORT = 9247
# A burst still coalesces into one pass; 100 ms alone ate 40% of the 250 ms bind-to-spine budget.
DEFAULT_DEBOUNCE_MS = 20
DEFAULT_RESYNC_S = 60
REMOTE_METHODS = ("tcp", "ssl", "unix")


class ConfigError(ValueError):
    """A settings file that cannot be used; the message names the file and the offending key."""


class LogLevel(StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """Overrides of the node's identity. None: read from the local OVS at run time."""

    chassis: str | None = None    # SB Chassis.name; default OVS external_ids:system-id
    hostname: str | None = None   # default OVS external_ids:hostname


@dataclass(frozen=True, slots=True)
class OvnSettings:
    """How to reach the OVN databases."""

    sb_remote: str | None = None  # None: the local OVS's external_ids:ovn-remote
    nb_remote: str | None = None  # None: no NB connection (the local OVS holds no NB address)
    ssl_private_key: PurePosixPath | None = None
    ssl_certificate: PurePosixPath | None = None
    ssl_ca_cert: PurePosixPath | None = None


@dataclass(frozen=True, slots=True)
class OvsSettings:
    db_socket: PurePosixPath = DEFAULT_OVS_DB_SOCKET


@dataclass(frozen=True, slots=True)
class FrrSettings:
    """How to reach the node's FRR through vtysh."""

    vty_socket: PurePosixPath | None = None   # None: vtysh's default (/var/run/frr)

    def vtysh_argv(self) -> tuple[str, ...]:
        if self.vty_socket is None:
            return ("vtysh",)
        return ("vtysh", "--vty_socket", str(self.vty_socket))

    def vty_dir(self) -> str:
        """Where the daemons' vty sockets are (bgpd.vty is read directly)."""
        return str(self.vty_socket) if self.vty_socket is not None else "/var/run/frr"


@dataclass(frozen=True, slots=True)
class BridgeSettings:
    """A provider bridge the agent manages: routes, neighbours, flows and addresses on it."""

    name: str
    # The segment's gateway addresses with their prefix length, identical on every node, in a
    # canonical order (IPv4 first, then by address).
    gateways: tuple[IPInterface, ...] = ()

    def gateway_texts(self) -> tuple[str, ...]:
        """The gateways as "addr/len" text, the form model.BridgeSetup carries."""
        return tuple(str(gw) for gw in self.gateways)


@dataclass(frozen=True, slots=True)
class PrefixRule:
    """One allow or deny prefix of the exposure policy and the setting it came from."""

    prefix: IPNetwork
    origin: str                   # e.g. "exposure.allow[0]" or "bridges.br-ex.gateways[1]"

    def __str__(self) -> str:
        return f"{self.prefix} ({self.origin})"


@dataclass(frozen=True, slots=True)
class ExposurePolicy:
    """What this node may advertise. An address is exposed only if it lies inside an allow
    prefix and in no deny prefix; the planner also always refuses special addresses."""

    allow: tuple[PrefixRule, ...] = ()
    deny: tuple[PrefixRule, ...] = ()

    @classmethod
    def for_bridges(
        cls, bridges: tuple[BridgeSettings, ...], deny: tuple[PrefixRule, ...] = ()
    ) -> ExposurePolicy:
        """The default policy: allow the networks of the bridges' gateways (the provider
        subnets this node serves), except link-local ones."""
        allow = []
        for bridge in bridges:
            for index, gateway in enumerate(bridge.gateways):
                if not gateway.ip.is_link_local:
                    origin = f"bridges.{bridge.name}.gateways[{index}]"
                    allow.append(PrefixRule(gateway.network, origin))
        return cls(allow=tuple(allow), deny=deny)


@dataclass(frozen=True, slots=True)
class TenantNetworks:
    """Tenant subnets behind Neutron routers (opt-in). When enabled, a subnet on a router
    interface is advertised from the router's active gateway chassis, with the router's
    gateway address as next hop, if its address scope (`neutron:subnet_pool_addr_scope4/6`)
    is one of these."""

    enabled: bool = False
    address_scopes: tuple[str, ...] = ()    # Neutron address scope UUIDs, lower case, sorted


@dataclass(frozen=True, slots=True)
class ReconcileTimings:
    debounce_ms: int = DEFAULT_DEBOUNCE_MS  # quiet time after a change before planning again
    resync_s: int = DEFAULT_RESYNC_S        # OVN planned again, the kernel read back whole


@dataclass(frozen=True, slots=True)
class StatusSettings:
    enabled: bool = True
    host: IPAddress = DEFAULT_STATUS_HOST
    port: int = DEFAULT_STATUS_PORT


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the agent is told by its settings file."""

    bridges: tuple[BridgeSettings, ...] = ()          # sorted by name
    exposure: ExposurePolicy = ExposurePolicy()
    node: NodeIdentity = NodeIdentity()
    ovn: OvnSettings = OvnSettings()
    ovs: OvsSettings = OvsSettings()
    frr: FrrSettings = FrrSettings()
    reconcile: ReconcileTimings = ReconcileTimings()
    status: StatusSettings = StatusSettings()
    log_level: LogLevel = LogLevel.INFO
    tenant_networks: TenantNetworks = TenantNetworks()

    def bridge(self, name: str) -> BridgeSettings | None:
        """The settings of a managed bridge, or None when the agent must not touch it."""
        for bridge in self.bridges:
            if bridge.name == name:
                return bridge
        return None


def unusable_hosts(network: IPNetwork) -> tuple[IPAddress, ...]:
    """The addresses of a subnet that no host may use: its network address (IPv6's
    subnet-router anycast) and, in IPv4, its broadcast address. None in /31, /32, /127, /128."""
    if network.max_prefixlen - network.prefixlen < 2:
        return ()
    if network.version == 4:
        return (network.network_address, network.broadcast_address)
    return (network.network_address,)


def load(path: str | Path) -> Settings:
    """Read and validate a settings file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read settings ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    return parse(text, source=str(path))


def parse(text: str, *, source: str = "<settings>") -> Settings:
    """Validate settings given as TOML text; `source` names the file in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return _settings(_Table(data, ""))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


# --- reading tables ---------------------------------------------------------------------------


def _type_name(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
             list: "an array", dict: "a table"}
    return names.get(type(value), "a date/time")


class _Table:
    """One TOML table being read: remembers its key path and which keys were used."""

    __slots__ = ("_data", "_path", "_used")

    def __init__(self, data: dict[str, Any], path: str) -> None:
        self._data = data
        self._path = path
        self._used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def has(self, name: str) -> bool:
        return name in self._data

    def raw(self, name: str) -> object:
        self._used.add(name)
        return self._data.get(name)

    def string(self, name: str) -> str | None:
        value = self.raw(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ConfigError(f"{self.key(name)}: expected a string, got {_type_name(value)}")
        if not value.strip():
            raise ConfigError(f"{self.key(name)}: must not be empty")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.key(name)}: expected an integer, got {_type_name(value)}")
        if not low <= value <= high:
            raise ConfigError(f"{self.key(name)}: {value} is not between {low} and {high}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(f"{self.key(name)}: expected a boolean, got {_type_name(value)}")
        return value

    def strings(self, name: str) -> list[str] | None:
        value = self.raw(name)
        if value is None:
            return None
        if not isinstance(value, list):
            raise ConfigError(f"{self.key(name)}: expected an array, got {_type_name(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise ConfigError(
                    f"{self.key(name)}[{index}]: expected a string, got {_type_name(item)}")
        return value

    def table(self, name: str) -> _Table:
        value = self.raw(name)
        if value is None:
            return _Table({}, self.key(name))
        if not isinstance(value, dict):
            raise ConfigError(f"{self.key(name)}: expected a table, got {_type_name(value)}")
        return _Table(value, self.key(name))

    def subtables(self) -> list[tuple[str, _Table]]:
        """Every key of this table, each holding a table (like [bridges.<name>])."""
        result = []
        for name in sorted(self._data):
            result.append((name, self.table(name)))
        return result

    def finish(self) -> None:
        unknown = sorted(set(self._data) - self._used)
        if unknown:
            where = f"{self._path}: " if self._path else ""
            raise ConfigError(f"{where}unknown key(s) {', '.join(map(repr, unknown))}")


# --- building Settings ------------------------------------------------------------------------


def _settings(top: _Table) -> Settings:
    node = _node(top.table("node"))
    ovn = _ovn(top.table("ovn"))
    ovs = _ovs(top.table("ovs"))
    frr = _frr(top.table("frr"))
    bridges = _bridges(top)
    exposure = _exposure(top.table("exposure"), bridges)
    tenant_networks = _tenant_networks(top.table("tenant_networks"))
    reconcile = _reconcile(top.table("reconcile"))
    status = _status(top.table("status"))
    log_level = _log_level(top.table("log"))
    top.finish()
    return Settings(bridges=bridges, exposure=exposure, node=node, ovn=ovn, ovs=ovs, frr=frr,
                    reconcile=reconcile, status=status, log_level=log_level,
                    tenant_networks=tenant_networks)


def _node(table: _Table) -> NodeIdentity:
    identity = NodeIdentity(chassis=table.string("chassis"), hostname=table.string("hostname"))
    table.finish()
    return identity


def _ovn(table: _Table) -> OvnSettings:
    remotes = {}
    for name in ("sb_remote", "nb_remote"):
        remote = table.string(name)
        if remote is not None:
            _check_remote(remote, table.key(name))
        remotes[name] = remote
    ssl = {name: _absolute_path(table, name)
           for name in ("ssl_private_key", "ssl_certificate", "ssl_ca_cert")}
    given = [name for name, path in ssl.items() if path is not None]
    if given and len(given) != len(ssl):
        missing = [table.key(name) for name, path in ssl.items() if path is None]
        raise ConfigError(f"{', '.join(missing)}: missing (the SSL settings go together)")
    for name, remote in remotes.items():
        if remote is not None and not given and "ssl:" in remote:
            raise ConfigError(
                f"{table.key(name)}: an ssl: remote needs ssl_private_key, ssl_certificate and "
                f"ssl_ca_cert in [ovn]")
    table.finish()
    return OvnSettings(sb_remote=remotes["sb_remote"], nb_remote=remotes["nb_remote"],
                       ssl_private_key=ssl["ssl_private_key"],
                       ssl_certificate=ssl["ssl_certificate"], ssl_ca_cert=ssl["ssl_ca_cert"])


def _check_remote(remote: str, key: str) -> None:
    """An active OVSDB remote, or several separated by commas (a clustered database):
    tcp:HOST[:PORT], ssl:HOST[:PORT] (an IPv6 HOST in brackets) or unix:PATH."""
    for part in remote.split(","):
        method, sep, target = part.strip().partition(":")
        if not sep or method not in REMOTE_METHODS or not target:
            raise ConfigError(
                f"{key}: {part.strip()!r} is not an OVSDB remote "
                f"(expected tcp:HOST:PORT, ssl:HOST:PORT or unix:PATH)")
        if method == "unix":
            continue
        host, port = target, ""
        if target.startswith("["):
            host, bracket, rest = target[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise ConfigError(f"{key}: {part.strip()!r}: unbalanced brackets")
            port = rest[1:]
        elif target.count(":") == 1:
            host, port = target.split(":")
        elif target.count(":") > 1:
            raise ConfigError(f"{key}: {part.strip()!r}: write an IPv6 host in brackets")
        if not host or (port and not (port.isdigit() and 1 <= int(port) <= 65535)):
            raise ConfigError(f"{key}: {part.strip()!r}: bad host or port")


def _absolute_path(table: _Table, name: str) -> PurePosixPath | None:
    text = table.string(name)
    if text is None:
        return None
    path = PurePosixPath(text)
    if not path.is_absolute():
        raise ConfigError(f"{table.key(name)}: {text!r} is not an absolute path")
    return path


def _ovs(table: _Table) -> OvsSettings:
    socket = _absolute_path(table, "db_socket")
    table.finish()
    return OvsSettings(db_socket=socket or DEFAULT_OVS_DB_SOCKET)


def _frr(table: _Table) -> FrrSettings:
    socket = _absolute_path(table, "vty_socket")
    table.finish()
    return FrrSettings(vty_socket=socket)


def _bridges(top: _Table) -> tuple[BridgeSettings, ...]:
    if not top.has("bridges"):
        raise ConfigError(
            "bridges: missing; name at least one provider bridge, e.g. "
            '[bridges.br-ex] gateways = ["172.24.4.1/24"]')
    bridges = []
    for name, table in top.table("bridges").subtables():
        if not BRIDGE_NAME_RE.match(name):
            raise ConfigError(
                f"bridges.{name}: a bridge name is 1-15 letters, digits, '-' or '_'")
        bridges.append(BridgeSettings(name=name, gateways=_gateways(table)))
        table.finish()
    if not bridges:
        raise ConfigError("bridges: name at least one provider bridge")
    _check_gateways_apart(bridges)
    return tuple(bridges)


def _gateways(table: _Table) -> tuple[IPInterface, ...]:
    texts = table.strings("gateways") or []
    gateways: list[IPInterface] = []
    for index, text in enumerate(texts):
        key = f"{table.key('gateways')}[{index}]"
        try:
            gateway = ipaddress.ip_interface(text)
        except ValueError as exc:
            raise ConfigError(f"{key}: {text!r} is not an address/prefix") from exc
        if "/" not in text:
            raise ConfigError(f"{key}: {text!r} needs its prefix length, e.g. '{text}/24'")
        ip = gateway.ip
        if ip.is_unspecified or ip.is_loopback or ip.is_multicast:
            raise ConfigError(f"{key}: {text!r} cannot be a gateway address")
        if ip in unusable_hosts(gateway.network):
            raise ConfigError(
                f"{key}: {text!r} is the network or broadcast address of {gateway.network}")
        if gateway in gateways:
            raise ConfigError(f"{key}: {text!r} is listed twice")
        gateways.append(gateway)
    return tuple(sorted(gateways, key=lambda gw: (gw.version, int(gw.ip), gw.network.prefixlen)))


def _check_gateways_apart(bridges: list[BridgeSettings]) -> None:
    """Two gateway networks that overlap (on one bridge or two) would make the kernel's
    connected routes ambiguous."""
    seen: list[tuple[IPNetwork, str]] = []
    for bridge in bridges:
        for index, gateway in enumerate(bridge.gateways):
            if gateway.ip.is_link_local:
                continue   # fe80::1/64 on several bridges is how IPv6 link-local gateways work
            key = f"bridges.{bridge.name}.gateways[{index}]"
            for network, other in seen:
                if network.version == gateway.version and network.overlaps(gateway.network):
                    raise ConfigError(f"{key}: {gateway} overlaps {other} ({network})")
            seen.append((gateway.network, key))


def _exposure(table: _Table, bridges: tuple[BridgeSettings, ...]) -> ExposurePolicy:
    deny = _prefix_rules(table, "deny")
    allow = _prefix_rules(table, "allow")
    table.finish()
    if not table.has("allow"):
        return ExposurePolicy.for_bridges(bridges, deny=deny)
    return ExposurePolicy(allow=allow, deny=deny)


def _prefix_rules(table: _Table, name: str) -> tuple[PrefixRule, ...]:
    rules = []
    for index, text in enumerate(table.strings(name) or []):
        key = f"{table.key(name)}[{index}]"
        try:
            prefix = ipaddress.ip_network(text)
        except ValueError as exc:
            hint = ""
            with contextlib.suppress(ValueError):
                hint = f"; did you mean {ipaddress.ip_network(text, strict=False)}?"
            raise ConfigError(f"{key}: {text!r} is not a prefix{hint}") from exc
        rules.append(PrefixRule(prefix, key))
    return tuple(rules)


def _tenant_networks(table: _Table) -> TenantNetworks:
    enabled = table.boolean("enabled", False)
    scopes: list[str] = []
    for index, text in enumerate(table.strings("address_scopes") or []):
        key = f"{table.key('address_scopes')}[{index}]"
        try:
            scope = str(uuid.UUID(text))
        except ValueError as exc:
            raise ConfigError(f"{key}: {text!r} is not an address scope UUID") from exc
        if scope in scopes:
            raise ConfigError(f"{key}: {text!r} is listed twice")
        scopes.append(scope)
    table.finish()
    if enabled and not scopes:
        raise ConfigError(
            f"{table.key('address_scopes')}: name at least one address scope when tenant "
            f"networks are enabled (only subnets in these scopes are advertised)")
    return TenantNetworks(enabled=enabled, address_scopes=tuple(sorted(scopes)))


def _reconcile(table: _Table) -> ReconcileTimings:
    timings = ReconcileTimings(
        debounce_ms=table.integer("debounce_ms", DEFAULT_DEBOUNCE_MS, 0, 10_000),
        resync_s=table.integer("resync_s", DEFAULT_RESYNC_S, 1, 86_400),
    )
    table.finish()
    return timings


def _status(table: _Table) -> StatusSettings:
    enabled = table.boolean("enabled", True)
    listen = table.string("listen")
    table.finish()
    if listen is None:
        return StatusSettings(enabled=enabled)
    host, port = _listen_address(listen, table.key("listen"))
    return StatusSettings(enabled=enabled, host=host, port=port)


def _listen_address(text: str, key: str) -> tuple[IPAddress, int]:
    """ADDRESS:PORT, with an IPv6 ADDRESS in brackets; port 0 picks a free port."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(f"{key}: {text!r}: write an IPv6 address in brackets, '[::1]:9247'")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{key}: {text!r} is not ADDRESS:PORT")
    try:
        return ipaddress.ip_address(host), int(port)
    except ValueError as exc:
        raise ConfigError(f"{key}: {host!r} is not an IP address") from exc


def _log_level(table: _Table) -> LogLevel:
    text = table.string("level")
    table.finish()
    if text is None:
        return LogLevel.INFO
    try:
        return LogLevel(text)
    except ValueError as exc:
        raise ConfigError(
            f"{table.key('level')}: {text!r} is not one of "
            f"{', '.join(level.value for level in LogLevel)}") from exc
