"""The settings file: every key by value, defaults, and an error naming the file and the key for
each way of getting it wrong."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_interface, ip_network
from pathlib import Path, PurePosixPath

import pytest

from ovn_fabric import config
from ovn_fabric.config import (
    BridgeSettings,
    ConfigError,
    ExposurePolicy,
    LogLevel,
    NodeIdentity,
    OvnSettings,
    OvsSettings,
    PrefixRule,
    ReconcileTimings,
    Settings,
    StatusSettings,
    TenantNetworks,
)

MINIMAL = """
[bridges.br-ex]
gateways = ["172.24.4.1/24", "2001:db8:24:4::1/64"]
"""

FULL = """
[node]
chassis = "5a1f3c52-8f0e-4c1b-9a77-0d3e4b6c0a00"
hostname = "compute-0.example.org"

[ovn]
sb_remote = "ssl:192.0.2.10:6642,ssl:[2001:db8::10]:6642,ssl:ovn-sb.example.org:6642"
nb_remote = "tcp:192.0.2.10:6641"
ssl_private_key = "/etc/ovn-fabric/key.pem"
ssl_certificate = "/etc/ovn-fabric/cert.pem"
ssl_ca_cert = "/etc/ovn-fabric/ca.pem"

[ovs]
db_socket = "/run/openvswitch/db.sock"

[bridges.br-vlan]
gateways = ["10.100.0.1/24"]

[bridges.br-ex]
gateways = ["2001:db8:24:4::1/64", "172.24.4.1/24", "fe80::1/64"]

[exposure]
allow = ["172.24.4.0/24", "2001:db8:24:4::/64", "10.100.0.0/24"]
deny = ["172.24.4.0/28"]

[tenant_networks]
enabled = true
address_scopes = ["5C1F0A8E-3B2D-4C6F-9E7A-0D1C2B3A4F60", "5c1f0a8e-3b2d-4c6f-9e7a-0d1c2b3a4f50"]

[reconcile]
debounce_ms = 250
resync_s = 600

[status]
enabled = false
listen = "[::1]:9100"

[log]
level = "debug"
"""


def test_a_full_file_gives_every_setting() -> None:
    assert config.parse(FULL) == Settings(
        bridges=(
            BridgeSettings("br-ex", (ip_interface("172.24.4.1/24"),
                                     ip_interface("2001:db8:24:4::1/64"),
                                     ip_interface("fe80::1/64"))),
            BridgeSettings("br-vlan", (ip_interface("10.100.0.1/24"),)),
        ),
        exposure=ExposurePolicy(
            allow=(PrefixRule(ip_network("172.24.4.0/24"), "exposure.allow[0]"),
                   PrefixRule(ip_network("2001:db8:24:4::/64"), "exposure.allow[1]"),
                   PrefixRule(ip_network("10.100.0.0/24"), "exposure.allow[2]")),
            deny=(PrefixRule(ip_network("172.24.4.0/28"), "exposure.deny[0]"),),
        ),
        node=NodeIdentity(chassis="5a1f3c52-8f0e-4c1b-9a77-0d3e4b6c0a00",
                          hostname="compute-0.example.org"),
        ovn=OvnSettings(
            sb_remote="ssl:192.0.2.10:6642,ssl:[2001:db8::10]:6642,ssl:ovn-sb.example.org:6642",
            nb_remote="tcp:192.0.2.10:6641",
            ssl_private_key=PurePosixPath("/etc/ovn-fabric/key.pem"),
            ssl_certificate=PurePosixPath("/etc/ovn-fabric/cert.pem"),
            ssl_ca_cert=PurePosixPath("/etc/ovn-fabric/ca.pem"),
        ),
        ovs=OvsSettings(db_socket=PurePosixPath("/run/openvswitch/db.sock")),
        reconcile=ReconcileTimings(debounce_ms=250, resync_s=600),
        status=StatusSettings(enabled=False, host=IPv6Address("::1"), port=9100),
        log_level=LogLevel.DEBUG,
        tenant_networks=TenantNetworks(enabled=True, address_scopes=(
            "5c1f0a8e-3b2d-4c6f-9e7a-0d1c2b3a4f50", "5c1f0a8e-3b2d-4c6f-9e7a-0d1c2b3a4f60")),
    )


def test_a_minimal_file_takes_the_defaults() -> None:
    settings = config.parse(MINIMAL)

    assert settings == Settings(
        bridges=(BridgeSettings("br-ex", (ip_interface("172.24.4.1/24"),
                                          ip_interface("2001:db8:24:4::1/64"))),),
        exposure=ExposurePolicy(allow=(
            PrefixRule(ip_network("172.24.4.0/24"), "bridges.br-ex.gateways[0]"),
            PrefixRule(ip_network("2001:db8:24:4::/64"), "bridges.br-ex.gateways[1]"),
        )),
    )
    assert settings.node == NodeIdentity(chassis=None, hostname=None)
    assert settings.ovn == OvnSettings(sb_remote=None, nb_remote=None)
    assert settings.ovs.db_socket == PurePosixPath("/var/run/openvswitch/db.sock")
    assert settings.reconcile == ReconcileTimings(debounce_ms=20, resync_s=60)
    assert settings.status == StatusSettings(enabled=True, host=IPv4Address("127.0.0.1"),
                                             port=9247)
    assert settings.log_level == LogLevel.INFO
    assert settings.tenant_networks == TenantNetworks(enabled=False, address_scopes=())


def test_the_default_allow_list_is_every_gateway_network_but_link_local_ones() -> None:
    settings = config.parse("""
[bridges.br-ex]
gateways = ["172.24.4.1/24", "fe80::1/64"]
[bridges.br-vlan]
gateways = ["10.100.0.1/24", "fe80::1/64"]
[exposure]
deny = ["172.24.4.128/25"]
""")

    assert settings.exposure == ExposurePolicy(
        allow=(PrefixRule(ip_network("172.24.4.0/24"), "bridges.br-ex.gateways[0]"),
               PrefixRule(ip_network("10.100.0.0/24"), "bridges.br-vlan.gateways[0]")),
        deny=(PrefixRule(ip_network("172.24.4.128/25"), "exposure.deny[0]"),),
    )


def test_an_empty_allow_list_allows_nothing() -> None:
    assert config.parse(MINIMAL + "[exposure]\nallow = []\n").exposure == ExposurePolicy()


def test_a_bridge_without_gateways_is_managed_all_the_same() -> None:
    settings = config.parse("[bridges.br-ex]\n")

    assert settings.bridges == (BridgeSettings("br-ex", ()),)
    assert settings.bridge("br-ex") == BridgeSettings("br-ex", ())
    assert settings.bridge("br-int") is None
    assert settings.exposure == ExposurePolicy()


def test_gateway_texts_are_what_bridge_setup_carries() -> None:
    bridge = config.parse(MINIMAL).bridges[0]

    assert bridge.gateway_texts() == ("172.24.4.1/24", "2001:db8:24:4::1/64")


def test_load_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(MINIMAL)

    assert config.load(path) == config.parse(MINIMAL)


def test_load_names_a_file_it_cannot_read(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"

    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read settings"):
        config.load(path)


def test_load_names_the_file_in_a_validation_error(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[bridges.br-ex]\ngateways = ["172.24.4.1/24", "x"]\n')

    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert str(caught.value) == (
        f"{path}: bridges.br-ex.gateways[1]: 'x' is not an address/prefix")


BRIDGE = '[bridges.br-ex]\ngateways = ["172.24.4.1/24"]\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # the file as a whole
        ("[bridges\n", "not valid TOML"),
        ("", "bridges: missing; name at least one provider bridge"),
        ("bridges = {}\n", "bridges: name at least one provider bridge"),
        ("bridges = 5\n", "bridges: expected a table, got an integer"),
        ("[bridges]\nbr-ex = 5\n", "bridges.br-ex: expected a table, got an integer"),
        ("colour = 'blue'\n" + BRIDGE, "unknown key(s) 'colour'"),
        (BRIDGE + "[nodes]\n", "unknown key(s) 'nodes'"),
        # [node]
        (BRIDGE + "[node]\nchassis = 5\n", "node.chassis: expected a string, got an integer"),
        (BRIDGE + "[node]\nhostname = ''\n", "node.hostname: must not be empty"),
        (BRIDGE + "[node]\nsystem_id = 'x'\n", "node: unknown key(s) 'system_id'"),
        ("node = 'compute-0'\n" + BRIDGE, "node: expected a table, got a string"),
        # [ovn]
        (BRIDGE + "[ovn]\nsb_remote = '192.0.2.10:6642'\n",
         "ovn.sb_remote: '192.0.2.10:6642' is not an OVSDB remote"),
        (BRIDGE + "[ovn]\nsb_remote = 'ptcp:6642'\n",
         "ovn.sb_remote: 'ptcp:6642' is not an OVSDB remote"),
        (BRIDGE + "[ovn]\nnb_remote = 'tcp:2001:db8::1:6641'\n",
         "ovn.nb_remote: 'tcp:2001:db8::1:6641': write an IPv6 host in brackets"),
        (BRIDGE + "[ovn]\nnb_remote = 'tcp:192.0.2.1:66410'\n",
         "ovn.nb_remote: 'tcp:192.0.2.1:66410': bad host or port"),
        (BRIDGE + "[ovn]\nnb_remote = 'tcp:[2001:db8::1:6641'\n",
         "ovn.nb_remote: 'tcp:[2001:db8::1:6641': unbalanced brackets"),
        (BRIDGE + "[ovn]\nsb_remote = 'ssl:192.0.2.10:6642'\n",
         "ovn.sb_remote: an ssl: remote needs ssl_private_key, ssl_certificate and ssl_ca_cert"),
        (BRIDGE + "[ovn]\nssl_private_key = '/k.pem'\nssl_certificate = '/c.pem'\n",
         "ovn.ssl_ca_cert: missing (the SSL settings go together)"),
        (BRIDGE + "[ovn]\nssl_private_key = 'k.pem'\n",
         "ovn.ssl_private_key: 'k.pem' is not an absolute path"),
        (BRIDGE + "[ovn]\nremote = 'tcp:192.0.2.10:6642'\n", "ovn: unknown key(s) 'remote'"),
        # [ovs]
        (BRIDGE + "[ovs]\ndb_socket = 'db.sock'\n",
         "ovs.db_socket: 'db.sock' is not an absolute path"),
        (BRIDGE + "[ovs]\ndb_socket = ['/a']\n",
         "ovs.db_socket: expected a string, got an array"),
        # [bridges.<name>]
        ('[bridges.br-ex]\ngateways = ["172.24.4.1/24", "x"]\n',
         "bridges.br-ex.gateways[1]: 'x' is not an address/prefix"),
        ('[bridges.br-ex]\ngateways = "172.24.4.1/24"\n',
         "bridges.br-ex.gateways: expected an array, got a string"),
        ("[bridges.br-ex]\ngateways = [24]\n",
         "bridges.br-ex.gateways[0]: expected a string, got an integer"),
        ('[bridges.br-ex]\ngateways = ["172.24.4.1"]\n',
         "bridges.br-ex.gateways[0]: '172.24.4.1' needs its prefix length, e.g. '172.24.4.1/24'"),
        ('[bridges.br-ex]\ngateways = ["172.24.4.0/24"]\n',
         "bridges.br-ex.gateways[0]: '172.24.4.0/24' is the network or broadcast address of "
         "172.24.4.0/24"),
        ('[bridges.br-ex]\ngateways = ["172.24.4.255/24"]\n',
         "bridges.br-ex.gateways[0]: '172.24.4.255/24' is the network or broadcast address"),
        ('[bridges.br-ex]\ngateways = ["127.0.0.1/8"]\n',
         "bridges.br-ex.gateways[0]: '127.0.0.1/8' cannot be a gateway address"),
        ('[bridges.br-ex]\ngateways = ["172.24.4.1/24", "172.24.4.1/24"]\n',
         "bridges.br-ex.gateways[1]: '172.24.4.1/24' is listed twice"),
        ('[bridges.br-ex]\ngateways = ["172.24.4.1/24"]\n'
         '[bridges.br-vlan]\ngateways = ["172.24.4.129/25"]\n',
         "bridges.br-vlan.gateways[0]: 172.24.4.129/25 overlaps bridges.br-ex.gateways[0] "
         "(172.24.4.0/24)"),
        ('[bridges.br-provider-number-1]\ngateways = ["172.24.4.1/24"]\n',
         "bridges.br-provider-number-1: a bridge name is 1-15 letters, digits, '-' or '_'"),
        ('[bridges.br-ex]\ngateways = ["172.24.4.1/24"]\nmtu = 9000\n',
         "bridges.br-ex: unknown key(s) 'mtu'"),
        # [exposure]
        (BRIDGE + '[exposure]\nallow = ["172.24.4.1/24"]\n',
         "exposure.allow[0]: '172.24.4.1/24' is not a prefix; did you mean 172.24.4.0/24?"),
        (BRIDGE + '[exposure]\ndeny = ["nope"]\n', "exposure.deny[0]: 'nope' is not a prefix"),
        (BRIDGE + '[exposure]\ndeny = "10.0.0.0/8"\n',
         "exposure.deny: expected an array, got a string"),
        (BRIDGE + '[exposure]\nallowed = []\n', "exposure: unknown key(s) 'allowed'"),
        # [tenant_networks]
        (BRIDGE + "[tenant_networks]\nenabled = true\n",
         "tenant_networks.address_scopes: name at least one address scope when tenant networks "
         "are enabled"),
        (BRIDGE + "[tenant_networks]\nenabled = 'yes'\n",
         "tenant_networks.enabled: expected a boolean, got a string"),
        (BRIDGE + "[tenant_networks]\naddress_scopes = ['scope-a']\n",
         "tenant_networks.address_scopes[0]: 'scope-a' is not an address scope UUID"),
        (BRIDGE + "[tenant_networks]\naddress_scopes = '5c1f0a8e-3b2d-4c6f-9e7a-0d1c2b3a4f50'\n",
         "tenant_networks.address_scopes: expected an array, got a string"),
        (BRIDGE + "[tenant_networks]\naddress_scopes = ['5c1f0a8e-3b2d-4c6f-9e7a-0d1c2b3a4f50', "
                  "'5C1F0A8E-3B2D-4C6F-9E7A-0D1C2B3A4F50']\n",
         "tenant_networks.address_scopes[1]: '5C1F0A8E-3B2D-4C6F-9E7A-0D1C2B3A4F50' is listed "
         "twice"),
        (BRIDGE + "[tenant_networks]\nscopes = []\n", "tenant_networks: unknown key(s) 'scopes'"),
        # [reconcile]
        (BRIDGE + "[reconcile]\ndebounce_ms = '100'\n",
         "reconcile.debounce_ms: expected an integer, got a string"),
        (BRIDGE + "[reconcile]\ndebounce_ms = true\n",
         "reconcile.debounce_ms: expected an integer, got a boolean"),
        (BRIDGE + "[reconcile]\nresync_s = 0\n",
         "reconcile.resync_s: 0 is not between 1 and 86400"),
        (BRIDGE + "[reconcile]\nresync_s = 1.5\n",
         "reconcile.resync_s: expected an integer, got a float"),
        # [status]
        (BRIDGE + "[status]\nenabled = 'yes'\n",
         "status.enabled: expected a boolean, got a string"),
        (BRIDGE + "[status]\nlisten = '::1:9247'\n",
         "status.listen: '::1:9247': write an IPv6 address in brackets"),
        (BRIDGE + "[status]\nlisten = 'localhost:9247'\n",
         "status.listen: 'localhost' is not an IP address"),
        (BRIDGE + "[status]\nlisten = '127.0.0.1'\n",
         "status.listen: '127.0.0.1' is not ADDRESS:PORT"),
        (BRIDGE + "[status]\nlisten = '127.0.0.1:70000'\n",
         "status.listen: '127.0.0.1:70000' is not ADDRESS:PORT"),
        # [log]
        (BRIDGE + "[log]\nlevel = 'verbose'\n",
         "log.level: 'verbose' is not one of debug, info, warning, error"),
        (BRIDGE + "[log]\nlevel = 'info'\nformat = 'json'\n", "log: unknown key(s) 'format'"),
    ],
)
def test_errors_name_the_file_and_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.parse(text, source="agent.toml")
    assert str(caught.value).startswith(f"agent.toml: {message}")


def test_several_bridges_may_share_a_link_local_gateway() -> None:
    settings = config.parse('[bridges.br-ex]\ngateways = ["fe80::1/64"]\n'
                            '[bridges.br-vlan]\ngateways = ["fe80::1/64"]\n')

    assert [bridge.name for bridge in settings.bridges] == ["br-ex", "br-vlan"]


def test_remotes_in_every_form_are_accepted() -> None:
    settings = config.parse(BRIDGE + """
[ovn]
sb_remote = "tcp:192.0.2.10:6642, tcp:[2001:db8::10]:6642,tcp:ovn-sb,unix:/run/ovn/ovnsb_db.sock"
""")

    assert settings.ovn.sb_remote == (
        "tcp:192.0.2.10:6642, tcp:[2001:db8::10]:6642,tcp:ovn-sb,unix:/run/ovn/ovnsb_db.sock")


def test_frr_section() -> None:
    base = '[bridges.br-ex]\ngateways = ["172.24.4.1/24"]\n'
    assert config.parse(base).frr == config.FrrSettings()
    assert config.parse(base).frr.vtysh_argv() == ("vtysh",)
    settings = config.parse(base + '[frr]\nvty_socket = "/run/x/frr"\n')
    assert settings.frr.vtysh_argv() == ("vtysh", "--vty_socket", "/run/x/frr")
    assert settings.frr.vty_dir() == "/run/x/frr"
    assert config.parse(base).frr.vty_dir() == "/var/run/frr"
    with pytest.raises(ConfigError, match=r"frr.vty_socket: 'frr' is not an absolute path"):
        config.parse(base + '[frr]\nvty_socket = "frr"\n')
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'socket'"):
        config.parse(base + '[frr]\nsocket = "/x"\n')


def test_tenant_networks_may_list_scopes_while_disabled() -> None:
    settings = config.parse(BRIDGE + """
[tenant_networks]
address_scopes = ["5c1f0a8e-3b2d-4c6f-9e7a-0d1c2b3a4f50"]
""")

    assert settings.tenant_networks == TenantNetworks(
        enabled=False, address_scopes=("5c1f0a8e-3b2d-4c6f-9e7a-0d1c2b3a4f50",))
