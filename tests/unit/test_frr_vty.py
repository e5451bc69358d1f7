"""Reading bgpd's configuration over its vty socket, against a fake daemon that answers as FRR's
vty does (output, three NULs, a status byte), with the faults a real one can show: an answer in
pieces, a refused command, a daemon that goes away, no daemon at all. Real bgpd is read in
tests/lab/test_frr_driver.py."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ovn_fabric.dataplane.frr import FrrError, Vtysh, read

CONFIG = """frr version 8.4.4
!
ip prefix-list OVN-FABRIC-ALLOW4 seq 5 permit 172.24.0.0/16 ge 32
!
router bgp 64999
 address-family ipv4 unicast
  redistribute kernel route-map OVN-FABRIC-EXPORT4
 exit-address-family
exit
!
"""

Answer = Callable[[str], bytes | None]     # None: close the connection


def answer_as_frr(command: str) -> bytes:
    if command == "enable":
        return b"\0\0\0\0"
    if command == "write terminal":
        return CONFIG.encode() + b"\0\0\0\0"
    return f"% [BGP] Unknown command: {command}\n".encode() + b"\0\0\0\2"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[[Answer, int], None]]:
    """Serves `answer` on tmp_path/bgpd.vty, sending each answer in pieces of `piece` bytes."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp_path / "bgpd.vty"))
    server.listen()
    threads: list[threading.Thread] = []

    def serve(answer: Answer, piece: int) -> None:
        def run() -> None:
            conn, _ = server.accept()
            with conn:
                buffer = b""
                while True:
                    while b"\0" not in buffer:
                        data = conn.recv(4096)
                        if not data:
                            return
                        buffer += data
                    command, buffer = buffer.split(b"\0", 1)
                    reply = answer(command.decode())
                    if reply is None:
                        return
                    for i in range(0, len(reply), piece):
                        conn.sendall(reply[i:i + piece])

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)

    yield serve
    server.close()
    for thread in threads:
        thread.join(timeout=5)


def test_the_running_config_is_read_whole_even_in_pieces(
        tmp_path: Path, daemon: Callable[[Answer, int], None]) -> None:
    daemon(answer_as_frr, 7)
    actual = read(Vtysh(vty_dir=str(tmp_path), timeout=5))
    assert actual.asn == 64999
    assert actual.prefix_list_lines == {
        "ip prefix-list OVN-FABRIC-ALLOW4 seq 5 permit 172.24.0.0/16 ge 32"}


def test_a_refused_command_is_an_frr_error_saying_what(
        tmp_path: Path, daemon: Callable[[Answer, int], None]) -> None:
    daemon(lambda command: answer_as_frr("nonsense" if command == "write terminal"
                                         else command), 4096)
    with pytest.raises(FrrError, match=r"'write terminal' refused \(status 2\): % \[BGP\]"):
        read(Vtysh(vty_dir=str(tmp_path), timeout=5))


def test_a_daemon_closing_mid_answer_is_an_frr_error(
        tmp_path: Path, daemon: Callable[[Answer, int], None]) -> None:
    daemon(lambda command: answer_as_frr(command) if command == "enable" else None, 4096)
    with pytest.raises(FrrError, match="closed its vty during 'write terminal'"):
        read(Vtysh(vty_dir=str(tmp_path), timeout=5))


def test_no_daemon_is_an_frr_error_naming_the_socket(tmp_path: Path) -> None:
    with pytest.raises(FrrError, match=rf"bgpd's vty {tmp_path}/bgpd.vty: .*No such file"):
        read(Vtysh(vty_dir=str(tmp_path), timeout=5))
