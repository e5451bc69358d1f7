"""Small topologies for tests: the common header (addressing, control plane, provider network,
as the built-in topologies have them) and the devices and links each test needs."""

from __future__ import annotations

HEADER = """
name = "{name}"
[addressing]
loopback4 = "10.255.0.0/24"
loopback6 = "fd00:255::/64"
encap4 = "10.255.1.0/24"
[control_plane]
vip4 = "10.255.255.1"
vip6 = "fd00:255:ffff::1"
[provider_network]
name = "public"
physnet = "datacentre"
bridge = "br-ex"
cidr4 = "172.24.4.0/24"
gateway4 = "172.24.4.1"
cidr6 = "2001:db8:24:4::/64"
gateway6 = "2001:db8:24:4::1"
"""


def small_topology(name: str, devices_and_links: str) -> str:
    """A topology file's text: the shared header, then the given [[device]]/[[link]] tables."""
    return HEADER.format(name=name) + devices_and_links
