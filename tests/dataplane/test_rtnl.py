"""The rtnetlink codec checked against pyroute2 as an independent oracle: attribute numbers,
and messages encoded by one side decode identically on the other."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg as pr_ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg as pr_ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg as pr_ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg as pr_rtmsg

from ovn_fabric.dataplane import _rtnl
from ovn_fabric.dataplane._netns import NamespaceNotFoundError, run_in_netns


def numbers(msg_class: Any) -> dict[str, int]:
    found = {}
    for index, entry in enumerate(msg_class.nla_map):
        number, name = (entry[0], entry[1]) if len(entry) == 3 else (index, entry[0])
        found[name] = number
    return found


@pytest.mark.parametrize(("msg_class", "name", "value"), [
    (pr_rtmsg, "RTA_DST", _rtnl.RTA_DST), (pr_rtmsg, "RTA_OIF", _rtnl.RTA_OIF),
    (pr_rtmsg, "RTA_GATEWAY", _rtnl.RTA_GATEWAY), (pr_rtmsg, "RTA_PRIORITY", _rtnl.RTA_PRIORITY),
    (pr_rtmsg, "RTA_MULTIPATH", _rtnl.RTA_MULTIPATH), (pr_rtmsg, "RTA_TABLE", _rtnl.RTA_TABLE),
    (pr_ndmsg, "NDA_DST", _rtnl.NDA_DST), (pr_ndmsg, "NDA_LLADDR", _rtnl.NDA_LLADDR),
    (pr_ndmsg, "NDA_PROTOCOL", _rtnl.NDA_PROTOCOL),
    (pr_ifaddrmsg, "IFA_ADDRESS", _rtnl.IFA_ADDRESS), (pr_ifaddrmsg, "IFA_LOCAL", _rtnl.IFA_LOCAL),
    (pr_ifaddrmsg, "IFA_FLAGS", _rtnl.IFA_FLAGS), (pr_ifaddrmsg, "IFA_PROTO", _rtnl.IFA_PROTO),
    (pr_ifinfmsg, "IFLA_IFNAME", _rtnl.IFLA_IFNAME),
])
def test_attribute_numbers_agree_with_pyroute2(msg_class: Any, name: str, value: int) -> None:
    assert numbers(msg_class)[name] == value


def _pyroute2_decode(msg_class: Any, msg_type: int, body: bytes) -> Any:
    header = _rtnl._NLMSGHDR.pack(_rtnl._NLMSGHDR.size + len(body), msg_type, 0, 1, 0)
    msg = msg_class(header + body)
    msg.decode()
    return msg


def test_route_request_decodes_in_pyroute2() -> None:
    body = (_rtnl.rtmsg(socket.AF_INET6, 128, table=254, protocol=247,
                        scope=_rtnl.RT_SCOPE_LINK, rtype=_rtnl.RTN_UNICAST)
            + _rtnl.attr(_rtnl.RTA_DST, socket.inet_pton(socket.AF_INET6, "2001:db8::5"))
            + _rtnl.attr(_rtnl.RTA_OIF, _rtnl.u32(7)))
    msg = _pyroute2_decode(pr_rtmsg, _rtnl.RTM_NEWROUTE, body)
    assert (msg["family"], msg["dst_len"], msg["proto"], msg["scope"]) == (
        socket.AF_INET6, 128, 247, _rtnl.RT_SCOPE_LINK)
    assert msg.get_attr("RTA_DST") == "2001:db8::5"
    assert msg.get_attr("RTA_OIF") == 7
    mine = _rtnl.decode_route(memoryview(body))
    assert (mine.dst, mine.oif, mine.protocol, mine.table) == (
        socket.inet_pton(socket.AF_INET6, "2001:db8::5"), 7, 247, 254)


def test_neighbour_request_decodes_in_pyroute2() -> None:
    body = (_rtnl.ndmsg(socket.AF_INET, 3, 0x80)
            + _rtnl.attr(_rtnl.NDA_DST, socket.inet_aton("10.0.0.9"))
            + _rtnl.attr(_rtnl.NDA_LLADDR, bytes.fromhex("0200000000aa"))
            + _rtnl.attr(_rtnl.NDA_PROTOCOL, _rtnl.u8(247)))
    msg = _pyroute2_decode(pr_ndmsg, _rtnl.RTM_NEWNEIGH, body)
    assert (msg["ifindex"], msg["state"]) == (3, 0x80)
    assert msg.get_attr("NDA_DST") == "10.0.0.9"
    assert msg.get_attr("NDA_LLADDR") == "02:00:00:00:00:aa"
    assert msg.get_attr("NDA_PROTOCOL") == 247
    mine = _rtnl.decode_neigh(memoryview(body))
    assert (mine.ifindex, mine.state, mine.protocol, mine.lladdr) == (
        3, 0x80, 247, bytes.fromhex("0200000000aa"))


def test_address_and_link_decode() -> None:
    body = (_rtnl.ifaddrmsg(socket.AF_INET, 24, 0, 5)
            + _rtnl.attr(_rtnl.IFA_LOCAL, socket.inet_aton("172.24.4.1"))
            + _rtnl.attr(_rtnl.IFA_PROTO, _rtnl.u8(247)))
    msg = _pyroute2_decode(pr_ifaddrmsg, _rtnl.RTM_NEWADDR, body)
    assert msg.get_attr("IFA_LOCAL") == "172.24.4.1"
    assert msg.get_attr("IFA_PROTO") == 247
    mine = _rtnl.decode_addr(memoryview(body))
    assert (mine.prefixlen, mine.index, mine.protocol) == (24, 5, 247)
    link = _rtnl.ifinfomsg(9, flags=1, change=1) + _rtnl.attr(_rtnl.IFLA_IFNAME, b"br-ex\0")
    assert _rtnl.decode_link(memoryview(link)) == (9, "br-ex", 1)


def test_attributes_are_padded_and_parsed_back() -> None:
    data = _rtnl.attr(1, b"abc") + _rtnl.attr(2, b"") + _rtnl.attr(0x8003, b"12345")
    assert len(data) % 4 == 0
    assert _rtnl.parse_attrs(data, 0) == {1: b"abc", 2: b"", 3: b"12345"}


def test_run_in_netns_needs_an_existing_namespace() -> None:
    assert run_in_netns(None, lambda: 42) == 42
    with pytest.raises(NamespaceNotFoundError):
        run_in_netns("hk-does-not-exist", lambda: 42)
