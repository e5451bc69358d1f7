"""The announcements a lab VM sends when it takes a VIP, byte by byte: exactly the packets
ovn-northd's `bind_vport` flows match (a gratuitous ARP: op 1, spa == tpa == VIP; an unsolicited
NA whose target is the VIP), and the ones OVN's port security lets out of a parent (sender MAC
the parent's own)."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

from ovn_fabric.lab import announce, octavia

MAC = bytes.fromhex("fa163e0a0b0c")


def test_gratuitous_arp_is_a_broadcast_request_for_the_vip_from_the_vip() -> None:
    frame = announce.gratuitous_arp(MAC, IPv4Address("172.24.4.50"))
    assert len(frame) == 14 + 28
    assert frame[:6] == b"\xff" * 6
    assert frame[6:12] == MAC
    assert struct.unpack("!H", frame[12:14])[0] == announce.ETH_P_ARP
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", frame[14:22])
    assert (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 1)
    sha, spa, tha, tpa = frame[22:28], frame[28:32], frame[32:38], frame[38:42]
    assert sha == MAC
    assert tha == b"\x00" * 6
    assert spa == tpa == IPv4Address("172.24.4.50").packed


def test_unsolicited_na_overrides_with_the_target_link_layer_address() -> None:
    vip = IPv6Address("2001:db8:24:4::50")
    message = announce.unsolicited_na(MAC, vip)
    kind, code, checksum, flags = struct.unpack("!BBHI", message[:8])
    assert (kind, code, checksum) == (136, 0, 0)       # the kernel fills in the checksum
    assert flags == 0x20000000                          # override; not solicited, not router
    assert message[8:24] == vip.packed
    assert message[24:26] == bytes([2, 1])
    assert message[26:] == MAC


def test_vip_keys_are_written_as_ovn_writes_them() -> None:
    assert octavia.endpoint(IPv4Address("172.24.4.201"), 80) == "172.24.4.201:80"
    assert octavia.endpoint(IPv6Address("2001:db8::5"), 80) == "[2001:db8::5]:80"
