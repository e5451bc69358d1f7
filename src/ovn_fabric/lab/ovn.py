"""The OVN side of a lab: central databases, chassis, and a Neutron-shaped provider network.

What runs where, and why:
- The controller device runs the OVN NB and SB ovsdb-servers and ovn-northd. Both databases listen
  on a unix socket (for the lab's own tools) and on TCP on every IPv4 and IPv6 address of the
  namespace, so chassis reach the SB at the control-plane VIP held on the namespace's `lo`.
- Each chassis device runs its own ovsdb-server, ovs-vswitchd (userspace `netdev` datapath: there
  is no kernel module) and ovn-controller, with private run/db/log directories.
- Every daemon is started through `ip netns exec`, so that `lab down`, which kills the processes
  `ip netns pids` finds in the lab's namespaces, stops all of them. ovs-vswitchd must run in the
  namespace anyway: the netdev datapath creates its taps where it runs and opens veths by name.
- The provider network is written to the NB exactly as Neutron (ML2/OVN) writes a flat provider
  network, with UUIDs derived from the lab prefix, so that the agent is tested against realistic
  rows and repeated runs produce the same names.

The OVN/OVS command-line tools are clients of unix sockets, so the helpers here (`nbctl`, `sbctl`,
`vsctl`, `ofctl`) run them from the caller's namespace; only daemons need `ip netns exec`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import signal
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ovn_fabric.lab.paths import LabPaths
from ovn_fabric.lab.procs import terminate
from ovn_fabric.lab.sh import output, run, wait_until
from ovn_fabric.lab.topology import ProviderNetwork

NB_SCHEMA = Path("/usr/share/ovn/ovn-nb.ovsschema")
SB_SCHEMA = Path("/usr/share/ovn/ovn-sb.ovsschema")
VSWITCH_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
NB_PORT = 6641
SB_PORT = 6642
INTEGRATION_BRIDGE = "br-int"

# Fixed namespace for the lab's uuid5 names: the same prefix and name always give the same UUID.
UUID_NAMESPACE = uuid.UUID("6f0d6a52-1c1e-5c0b-9e4a-0f7a1b2c3d4e")

# What Neutron writes for a network with default settings (MTU of a flat network on a 1500-byte
# fabric, DHCP lease time of ML2/OVN's `ovn_dhcp4_global_options` default).
NEUTRON_MTU = 1500
NEUTRON_DHCP_LEASE_TIME = 43200

DAEMON_TIMEOUT = 15.0
CLIENT_TIMEOUT = 30


# --- names and identities ---------------------------------------------------------------------


def lab_uuid(paths: LabPaths, kind: str, name: str) -> str:
    """A UUID that depends only on the lab prefix, the kind of object and its name."""
    return str(uuid.uuid5(UUID_NAMESPACE, f"{paths.prefix}/{kind}/{name}"))


def bridge_mac(device: str, bridge: str) -> str:
    """A stable, locally administered unicast MAC for `bridge` on `device`.

    Fixed so that adding a port with a universal MAC never changes the bridge's MAC and
    datapath-id (which would make OpenFlow reconnect and ovn-controller reinstall every flow).
    """
    digest = hashlib.sha256(f"{device}/{bridge}".encode()).digest()
    first = (digest[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in (first, *digest[1:6]))


@dataclass(frozen=True, slots=True)
class ProviderIds:
    """The Neutron identities of the lab's provider network and the OVN names derived from them."""

    network_id: str
    segment_id: str
    subnet4_id: str
    subnet6_id: str
    project_id: str

    @property
    def switch(self) -> str:
        """The Logical_Switch name: `neutron-<network id>`."""
        return f"neutron-{self.network_id}"

    @property
    def localnet_port(self) -> str:
        """The localnet Logical_Switch_Port name: `provnet-<segment id>`."""
        return f"provnet-{self.segment_id}"


def provider_ids(paths: LabPaths, provider: ProviderNetwork) -> ProviderIds:
    """The deterministic Neutron identities of `provider` in the lab `paths`."""
    return ProviderIds(
        network_id=lab_uuid(paths, "network", provider.name),
        segment_id=lab_uuid(paths, "segment", provider.name),
        subnet4_id=lab_uuid(paths, "subnet4", provider.name),
        subnet6_id=lab_uuid(paths, "subnet6", provider.name),
        # Keystone project ids are 32 hex digits without dashes.
        project_id=uuid.UUID(lab_uuid(paths, "project", "admin")).hex,
    )


# --- files, sockets and environment -----------------------------------------------------------


def nb_socket(paths: LabPaths, device: str) -> Path:
    return paths.ovn_dir(device) / "ovnnb_db.sock"


def sb_socket(paths: LabPaths, device: str) -> Path:
    return paths.ovn_dir(device) / "ovnsb_db.sock"


def ovs_socket(paths: LabPaths, device: str) -> Path:
    return paths.ovs_dir(device) / "db.sock"


def daemon_env(paths: LabPaths, device: str) -> dict[str, str]:
    """Environment that points every OVS and OVN tool at the device's private directories."""
    ovs = str(paths.ovs_dir(device))
    ovn = str(paths.ovn_dir(device))
    return {
        "OVS_RUNDIR": ovs, "OVS_DBDIR": ovs, "OVS_LOGDIR": ovs, "OVS_SYSCONFDIR": ovs,
        "OVN_RUNDIR": ovn, "OVN_DBDIR": ovn, "OVN_LOGDIR": ovn, "OVN_SYSCONFDIR": ovn,
    }


def _check_socket_path(path: Path) -> None:
    if len(str(path).encode()) >= 108:
        raise ValueError(f"unix socket path {path} is too long (limit 107 bytes)")


def _daemon(paths: LabPaths, device: str, directory: Path, name: str,
            argv: Sequence[str]) -> None:
    """Start a detaching OVS-style daemon inside the device's namespace, pidfile and log in
    `directory` under the daemon's usual names (so `ovs-appctl -t NAME` finds it)."""
    full = [
        *argv,
        "--detach", "--no-chdir",
        f"--pidfile={directory / (name + '.pid')}",
        f"--log-file={directory / (name + '.log')}",
    ]
    run(full, netns=paths.netns(device), env=daemon_env(paths, device), timeout=DAEMON_TIMEOUT)


def _create_db(db: Path, schema: Path) -> None:
    if not db.exists():
        run(["ovsdb-tool", "create", str(db), str(schema)])


# --- client helpers ---------------------------------------------------------------------------


def nbctl(paths: LabPaths, device: str, *args: str) -> str:
    """Run ovn-nbctl against the NB database of the controller `device`; return its output."""
    return output(["ovn-nbctl", f"--db=unix:{nb_socket(paths, device)}",
                   f"--timeout={CLIENT_TIMEOUT}", *args])


def sbctl(paths: LabPaths, device: str, *args: str) -> str:
    """Run ovn-sbctl against the SB database of the controller `device`; return its output."""
    return output(["ovn-sbctl", f"--db=unix:{sb_socket(paths, device)}",
                   f"--timeout={CLIENT_TIMEOUT}", *args])


def vsctl(paths: LabPaths, device: str, *args: str) -> str:
    """Run ovs-vsctl against the chassis `device`'s Open_vSwitch database; return its output."""
    return output(["ovs-vsctl", f"--db=unix:{ovs_socket(paths, device)}",
                   f"--timeout={CLIENT_TIMEOUT}", *args])


def set_tunnel_bfd(paths: LabPaths, controller: str, interval_ms: int, multiplier: int) -> None:
    """Timers of the BFD that ovn-controller runs on the Geneve tunnels between chassis, which
    is how OVN detects a dead gateway chassis. They are NB_Global options: ovn-northd copies
    them to SB_Global, and every ovn-controller applies them to its tunnel interfaces. Unset,
    OVS's defaults apply (min_rx 1000 ms, min_tx 100 ms, multiplier 3)."""
    nbctl(paths, controller, "set", "NB_Global", ".", f"options:bfd-min-rx={interval_ms}",
          f"options:bfd-min-tx={interval_ms}", f"options:bfd-mult={multiplier}")


def tunnel_bfd(paths: LabPaths, device: str) -> dict[str, dict[str, str]]:
    """The chassis `device`'s Geneve tunnel interfaces by remote IP: their `bfd` settings with
    `state` (from `bfd_status`) added; empty settings where BFD is off."""
    text = vsctl(paths, device, "--format=json", "--columns=options,bfd,bfd_status", "find",
                 "Interface", "type=geneve")
    tunnels: dict[str, dict[str, str]] = {}
    for options, bfd, status in json.loads(text)["data"]:
        settings = dict(bfd[1])
        if "state" in dict(status[1]):
            settings["state"] = dict(status[1])["state"]
        tunnels[dict(options[1]).get("remote_ip", "?")] = settings
    return tunnels


def ofctl(paths: LabPaths, device: str, *args: str) -> str:
    """Run ovs-ofctl against a bridge of the chassis `device` (e.g. `dump-flows br-ex`)."""
    return output(["ovs-ofctl", *args], env=daemon_env(paths, device))


def ovsdb_map(values: Mapping[str, str]) -> str:
    """A map in ovs-vsctl/ovn-nbctl syntax, every key and value quoted: `{"k"="v", ...}`."""
    return "{" + ", ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in values.items()) + "}"


def ovsdb_set(values: Iterable[str]) -> str:
    """A set of strings in ovs-vsctl/ovn-nbctl syntax: `["a", "b"]`."""
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


# --- central: NB, SB, northd ------------------------------------------------------------------


def _start_db(paths: LabPaths, device: str, name: str, schema: Path, port: int) -> None:
    directory = paths.ovn_dir(device)
    db = directory / f"{name}.db"
    sock = directory / f"{name}.sock"
    ctl = directory / f"{name}.ctl"
    for path in (sock, ctl):
        _check_socket_path(path)
    _create_db(db, schema)
    # `[::]` accepts IPv4 too (bindv6only=0): one listener covers every address of the namespace.
    _daemon(paths, device, directory, name, [
        "ovsdb-server", str(db),
        f"--remote=punix:{sock}", f"--remote=ptcp:{port}:[::]", f"--unixctl={ctl}",
    ])


def _answers(ctl: Callable[..., str], paths: LabPaths, device: str) -> bool:
    """True once the database behind `ctl` answers a query (raises CommandError until then)."""
    ctl(paths, device, "--bare", "--columns=_uuid", "list", "Connection")
    return True


def _northd_active(paths: LabPaths, device: str) -> bool:
    ctl = paths.ovn_dir(device) / "ovn-northd.ctl"
    status = output(["ovn-appctl", "-t", str(ctl), "status"])
    return "active" in status


def start_central(paths: LabPaths, device: str) -> None:
    """Create and start the OVN NB and SB databases and ovn-northd in the `device` namespace.

    Returns once both databases answer and northd has translated the NB into the SB once.
    """
    directory = paths.ovn_dir(device)
    directory.mkdir(parents=True, exist_ok=True)
    _start_db(paths, device, "ovnnb_db", NB_SCHEMA, NB_PORT)
    _start_db(paths, device, "ovnsb_db", SB_SCHEMA, SB_PORT)
    _daemon(paths, device, directory, "ovn-northd", [
        "ovn-northd",
        f"--ovnnb-db=unix:{nb_socket(paths, device)}",
        f"--ovnsb-db=unix:{sb_socket(paths, device)}",
        f"--unixctl={directory / 'ovn-northd.ctl'}",
    ])
    wait_until(lambda: _answers(nbctl, paths, device),
               timeout=DAEMON_TIMEOUT, what=f"the OVN NB database on {device}")
    wait_until(lambda: _answers(sbctl, paths, device),
               timeout=DAEMON_TIMEOUT, what=f"the OVN SB database on {device}")
    wait_until(lambda: _northd_active(paths, device),
               timeout=DAEMON_TIMEOUT, what=f"ovn-northd on {device} to be active")
    # End to end: northd has read the NB and written the SB.
    nbctl(paths, device, "--wait=sb", "sync")


# --- chassis: ovsdb-server, ovs-vswitchd, ovn-controller --------------------------------------


def _chassis_db_commands(
    *, system_id: str, hostname: str, encap_ip: str, sb_remote: str,
    bridge_mappings: Mapping[str, str], gateway: bool, device: str,
    extra_bridges: Mapping[str, Sequence[str]],
) -> list[str]:
    """One ovs-vsctl transaction that configures the node before any daemon reads it."""
    external_ids = {
        "system-id": system_id,
        "hostname": hostname,
        "ovn-remote": sb_remote,
        "ovn-encap-type": "geneve",
        "ovn-encap-ip": encap_ip,
        "ovn-bridge-mappings": ",".join(f"{net}:{br}" for net, br in bridge_mappings.items()),
    }
    if gateway:
        external_ids["ovn-cms-options"] = "enable-chassis-as-gw"
    args = [
        "--", "set", "Open_vSwitch", ".",
        # Read by ovs-vswitchd at start only: without it TCP from a veth arrives with bad
        # checksums through the userspace datapath.
        "other_config:userspace-tso-enable=true",
        f"external_ids={ovsdb_map(external_ids)}",
    ]
    bridges = [INTEGRATION_BRIDGE, *bridge_mappings.values()]
    for bridge in dict.fromkeys(bridges):
        args += [
            "--", "--may-exist", "add-br", bridge,
            "--", "set", "Bridge", bridge, "datapath_type=netdev",
            f"other-config:hwaddr={json.dumps(bridge_mac(device, bridge))}",
        ]
    args += [
        "--", "set", "Bridge", INTEGRATION_BRIDGE, "fail_mode=secure",
        "other-config:disable-in-band=true",
    ]
    # Bridges OVN does not know about (br-phy): NORMAL switching, as ovs-vswitchd sets it up.
    for bridge, ports in extra_bridges.items():
        args += [
            "--", "--may-exist", "add-br", bridge,
            "--", "set", "Bridge", bridge, "datapath_type=netdev",
            f"other-config:hwaddr={json.dumps(bridge_mac(device, bridge))}",
        ]
        for port in ports:
            args += ["--", "--may-exist", "add-port", bridge, port]
    return args


def _link_exists(netns: str, ifname: str) -> bool:
    return run(["ip", "-n", netns, "link", "show", "dev", ifname], check=False).returncode == 0


def start_chassis(
    paths: LabPaths,
    device: str,
    *,
    system_id: str,
    hostname: str,
    encap_ip: str,
    sb_remote: str,
    bridge_mappings: dict[str, str],
    gateway: bool = False,
    extra_bridges: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Start an OVN chassis in the `device` namespace: ovsdb-server, ovs-vswitchd, ovn-controller.

    `sb_remote` is e.g. `tcp:10.255.255.1:6642`; `bridge_mappings` maps physnet to bridge, e.g.
    {"datacentre": "br-ex"}; `extra_bridges` maps more bridges to the existing interfaces they
    get as ports (br-phy and its veth, see overlay.py). Returns once the bridges' taps exist and
    are up and ovn-controller runs; use `wait_chassis` to wait for the chassis to register in
    the SB.
    """
    extra = dict(extra_bridges or {})
    ovs_dir, ovn_dir = paths.ovs_dir(device), paths.ovn_dir(device)
    ovs_dir.mkdir(parents=True, exist_ok=True)
    ovn_dir.mkdir(parents=True, exist_ok=True)
    sock, ctl = ovs_socket(paths, device), ovs_dir / "ovsdb-server.ctl"
    for path in (sock, ctl, ovs_dir / "ovs-vswitchd.99999999.ctl", ovs_dir / "br-int.mgmt",
                 ovn_dir / "ovn-controller.99999999.ctl"):
        _check_socket_path(path)
    db = ovs_dir / "conf.db"
    _create_db(db, VSWITCH_SCHEMA)
    _daemon(paths, device, ovs_dir, "ovsdb-server",
            ["ovsdb-server", str(db), f"--remote=punix:{sock}", f"--unixctl={ctl}"])
    vsctl(paths, device, "--no-wait", "init", *_chassis_db_commands(
        system_id=system_id, hostname=hostname, encap_ip=encap_ip, sb_remote=sb_remote,
        bridge_mappings=bridge_mappings, gateway=gateway, device=device,
        extra_bridges=extra))
    _daemon(paths, device, ovs_dir, "ovs-vswitchd", ["ovs-vswitchd", f"unix:{sock}"])
    netns = paths.netns(device)
    for bridge in dict.fromkeys([INTEGRATION_BRIDGE, *bridge_mappings.values(), *extra]):
        wait_until(functools.partial(_link_exists, netns, bridge),
                   timeout=DAEMON_TIMEOUT, what=f"the tap of {bridge} on {device}")
        run(["ip", "-n", netns, "link", "set", "dev", bridge, "up"])
    start_controller(paths, device)


def start_controller(paths: LabPaths, device: str) -> None:
    """Start the chassis' ovn-controller (again, after `kill_controller`)."""
    # ovn-controller 23.03 has no --unixctl: its socket is $OVN_RUNDIR/ovn-controller.<pid>.ctl.
    _daemon(paths, device, paths.ovn_dir(device), "ovn-controller",
            ["ovn-controller", f"unix:{ovs_socket(paths, device)}"])


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def kill_controller(paths: LabPaths, device: str) -> None:
    """SIGKILL the chassis' ovn-controller, as a crash would: no cleanup, its flows stay in
    ovs-vswitchd (which keeps running, BFD on the tunnels included)."""
    pidfile = paths.ovn_dir(device) / "ovn-controller.pid"
    pid = int(pidfile.read_text().strip())
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not _alive(pid), timeout=DAEMON_TIMEOUT,
               what=f"ovn-controller {pid} on {device} to exit")
    pidfile.unlink(missing_ok=True)


def restart_vswitchd(paths: LabPaths, device: str) -> None:
    """Kill the chassis' ovs-vswitchd and start it again, as an upgrade or a crash would. Flows
    that no controller re-installs are lost (LAB_NOTES: whoever owns them must notice)."""
    ovs_dir = paths.ovs_dir(device)
    pid = int((ovs_dir / "ovs-vswitchd.pid").read_text())
    terminate([pid])
    _daemon(paths, device, ovs_dir, "ovs-vswitchd",
            ["ovs-vswitchd", f"unix:{ovs_socket(paths, device)}"])
    netns = paths.netns(device)
    bridges = vsctl(paths, device, "list-br").split()
    for bridge in bridges:
        wait_until(functools.partial(_link_exists, netns, bridge),
                   timeout=DAEMON_TIMEOUT, what=f"the tap of {bridge} on {device}")
        run(["ip", "-n", netns, "link", "set", "dev", bridge, "up"])


def chassis_external_ids(paths: LabPaths, device: str) -> dict[str, str]:
    """The Open_vSwitch external_ids of the chassis `device` (system-id, hostname, ovn-*)."""
    out = vsctl(paths, device, "--format=json", "--columns=external_ids", "list", "Open_vSwitch")
    (row,) = json.loads(out)["data"]
    return {str(k): str(v) for k, v in row[0][1]}


def bound_chassis(paths: LabPaths, central_device: str, logical_port: str) -> str:
    """The name of the chassis the SB says `logical_port` is bound to (empty if none): for a
    router's `cr-lrp`, where its gateway is active."""
    uuid = sbctl(paths, central_device, "--bare", "--columns=chassis", "find", "Port_Binding",
                 f"logical_port={logical_port}").strip()
    if not uuid:
        return ""
    return sbctl(paths, central_device, "get", "Chassis", uuid, "name").strip().strip('"')


def chassis_names(paths: LabPaths, central_device: str) -> set[str]:
    """The names (system-ids) of the chassis registered in the SB."""
    out = sbctl(paths, central_device, "--bare", "--columns=name", "list", "Chassis")
    return {line.strip() for line in out.splitlines() if line.strip()}


def wait_chassis(paths: LabPaths, central_device: str, names: Iterable[str],
                 timeout: float = 30.0) -> None:
    """Wait until every chassis in `names` (system-ids) is registered in the SB."""
    wanted = set(names)
    wait_until(lambda: wanted <= chassis_names(paths, central_device),
               timeout=timeout, what=f"chassis {', '.join(sorted(wanted))} in the SB")


# --- the provider network, as Neutron writes it -----------------------------------------------


def _network_external_ids(provider: ProviderNetwork) -> dict[str, str]:
    return {
        "neutron:availability_zone_hints": "",
        "neutron:mtu": str(NEUTRON_MTU),
        "neutron:network_name": provider.name,
        "neutron:provnet-network-type": "flat",
        "neutron:provnet-physical-network": provider.physnet,
        "neutron:revision_number": "1",
    }


def _network_other_config() -> dict[str, str]:
    # ML2/OVN defaults for a provider network that is also external (router:external).
    return {
        "broadcast-arps-to-all-routers": "true",
        "fdb_age_threshold": "0",
        "mcast_flood_unregistered": "false",
        "mcast_snoop": "false",
        "vlan-passthru": "false",
    }


def _localnet_options(provider: ProviderNetwork) -> dict[str, str]:
    return {
        "localnet_learn_fdb": "false",
        "mcast_flood": "false",
        "mcast_flood_reports": "true",
        "network_name": provider.physnet,
    }


def dhcp_server_mac(paths: LabPaths, provider: ProviderNetwork, version: int) -> str:
    """The DHCP server MAC Neutron would have drawn at random (from its base MAC fa:16:3e) for
    the IPv`version` subnet."""
    digest = hashlib.sha256(f"{paths.prefix}/dhcp{version}/{provider.name}".encode()).digest()
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in digest[:3])


@dataclass(frozen=True, slots=True)
class DhcpOptionsRow:
    """The NB DHCP_Options row Neutron writes for one subnet."""

    cidr: str
    options: dict[str, str]
    external_ids: dict[str, str]

    def columns(self) -> list[str]:
        return [f"cidr={json.dumps(self.cidr)}", f"options={ovsdb_map(self.options)}",
                f"external_ids={ovsdb_map(self.external_ids)}"]


def dhcp4_row(paths: LabPaths, provider: ProviderNetwork) -> DhcpOptionsRow:
    """The IPv4 subnet's row (ovn_client._get_ovn_dhcpv4_opts, no DNS servers, no host routes)."""
    gateway = str(provider.gateway4)
    return DhcpOptionsRow(
        cidr=str(provider.cidr4),
        options={
            "lease_time": str(NEUTRON_DHCP_LEASE_TIME),
            "mtu": str(NEUTRON_MTU),
            "router": gateway,
            "server_id": gateway,
            "server_mac": dhcp_server_mac(paths, provider, 4),
        },
        external_ids={"subnet_id": provider_ids(paths, provider).subnet4_id,
                      "neutron:revision_number": "0"},
    )


def dhcp6_row(paths: LabPaths, provider: ProviderNetwork) -> DhcpOptionsRow:
    """The IPv6 subnet's row: a DHCPv6-stateful subnet (Neutron writes none for SLAAC ones);
    `server_id` is a MAC."""
    return DhcpOptionsRow(
        cidr=str(provider.cidr6),
        options={"server_id": dhcp_server_mac(paths, provider, 6)},
        external_ids={"subnet_id": provider_ids(paths, provider).subnet6_id,
                      "neutron:revision_number": "0"},
    )


def dhcp_options_uuid(paths: LabPaths, central_device: str, subnet_id: str) -> str | None:
    """The NB DHCP_Options row of a subnet (not of a port), or None."""
    out = nbctl(paths, central_device, "--columns=_uuid,external_ids", "--format=json",
                "find", "DHCP_Options", f"external_ids:subnet_id={subnet_id}")
    for row_uuid, ext in json.loads(out)["data"]:
        if "port_id" not in dict(ext[1]):
            return str(row_uuid[1])
    return None


def _dhcp_commands(row: DhcpOptionsRow, existing: str | None) -> list[str]:
    if existing:
        return ["--", "set", "DHCP_Options", existing, *row.columns()]
    return ["--", "create", "DHCP_Options", *row.columns()]


def create_provider_network(
    paths: LabPaths, central_device: str, provider: ProviderNetwork
) -> ProviderIds:
    """Create `provider` in the NB as Neutron creates a flat provider network with one IPv4 and
    one IPv6 (DHCPv6-stateful) subnet: Logical_Switch, localnet port, subnet DHCP_Options.

    Idempotent: a second call rewrites the same rows with the same values.
    """
    ids = provider_ids(paths, provider)
    switch, localnet = ids.switch, ids.localnet_port
    args = [
        "--", "--may-exist", "ls-add", switch,
        "--", "set", "Logical_Switch", switch,
        f"external_ids={ovsdb_map(_network_external_ids(provider))}",
        f"other_config={ovsdb_map(_network_other_config())}",
        "--", "--may-exist", "lsp-add", switch, localnet,
        "--", "set", "Logical_Switch_Port", localnet,
        "type=localnet",
        f"addresses={ovsdb_set(['unknown'])}",
        f"options={ovsdb_map(_localnet_options(provider))}",
        f"external_ids={ovsdb_map({'neutron:provnet-physical-network': provider.physnet})}",
    ]
    for row in (dhcp4_row(paths, provider), dhcp6_row(paths, provider)):
        existing = dhcp_options_uuid(paths, central_device, row.external_ids["subnet_id"])
        args += _dhcp_commands(row, existing)
    nbctl(paths, central_device, *args)
    return ids
