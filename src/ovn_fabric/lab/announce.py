"""Announce that this host now holds an address, as keepalived does when it becomes master:
a gratuitous ARP (an ARP request with sender = target = the address) for IPv4, an unsolicited
Neighbour Advertisement (to all nodes, override flag, target link-layer address) for IPv6.

OVN binds a virtual port to the parent that sends one of these for its `virtual-ip`
(ovn-northd's `bind_vport` flows match exactly these two packets). Run inside a VM namespace:
`python -m ovn_fabric.lab.announce eth0 172.24.4.50 [count]`; the standard library only, so no
arping or ndisc6 is needed.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import sys
import time
from pathlib import Path

ETH_P_ARP = 0x0806
ALL_NODES = "ff02::1"
ND_NEIGHBOR_ADVERT = 136
NA_FLAG_OVERRIDE = 0x20000000
ND_OPT_TARGET_LLADDR = 2
IPV6_HOP_LIMIT_ND = 255         # RFC 4861: every ND message is sent with hop limit 255


def link_mac(ifname: str) -> bytes:
    text = Path(f"/sys/class/net/{ifname}/address").read_text().strip()
    return bytes.fromhex(text.replace(":", ""))


def gratuitous_arp(mac: bytes, address: ipaddress.IPv4Address) -> bytes:
    """The Ethernet frame of a gratuitous ARP request for `address` from `mac`."""
    ip = address.packed
    ethernet = b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + ip + b"\x00" * 6 + ip
    return ethernet + arp


def unsolicited_na(mac: bytes, address: ipaddress.IPv6Address) -> bytes:
    """The ICMPv6 message of an unsolicited Neighbour Advertisement of `address` at `mac`
    (the kernel fills in the checksum)."""
    return (struct.pack("!BBHI", ND_NEIGHBOR_ADVERT, 0, 0, NA_FLAG_OVERRIDE) + address.packed
            + struct.pack("!BB", ND_OPT_TARGET_LLADDR, 1) + mac)


def announce(ifname: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address,
             count: int = 3, interval: float = 0.05) -> None:
    mac = link_mac(ifname)
    if isinstance(address, ipaddress.IPv4Address):
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
            sock.bind((ifname, ETH_P_ARP))
            for _ in range(count):
                sock.send(gratuitous_arp(mac, address))
                time.sleep(interval)
        return
    with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, IPV6_HOP_LIMIT_ND)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF,
                        socket.if_nametoindex(ifname))
        sock.bind((str(address), 0))
        for _ in range(count):
            sock.sendto(unsolicited_na(mac, address), (ALL_NODES, 0, 0,
                                                       socket.if_nametoindex(ifname)))
            time.sleep(interval)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: python -m ovn_fabric.lab.announce IFNAME ADDRESS [COUNT]",
              file=sys.stderr)
        return 2
    announce(argv[0], ipaddress.ip_address(argv[1]), int(argv[2]) if len(argv) == 3 else 3)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
