"""Tiny TCP services in lab VMs, and the client that asks them who they are.

A load balancer's backends must answer, and a test must see which one did: each server
answers every connection with its own name and closes. The server runs in the VM's namespace
(`del_vm` and `lab down` end it with the namespace); the handle stops it sooner.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from ovn_fabric.lab.sh import run

_SERVER = """
import socket, sys
s = socket.create_server(("::", int(sys.argv[1])), family=socket.AF_INET6,
                         dualstack_ipv6=True, backlog=64)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    try:
        c.sendall(sys.argv[2].encode())
    finally:
        c.close()
"""

_CLIENT = """
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    data = b""
    while (b := s.recv(1024)):
        data += b
    print(data.decode())
except OSError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(1)
"""


class ServerError(RuntimeError):
    """A server that did not start."""


@dataclass(slots=True)
class Server:
    """A running name server; `stop()` ends it (idempotent)."""

    netns: str
    port: int
    name: str
    proc: subprocess.Popen[str]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def serve_name(netns: str, port: int, name: str) -> Server:
    """Listen on every address of `netns` (IPv4 and IPv6) on TCP `port`, answering each
    connection with `name`; return once it listens."""
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", _SERVER, str(port), name],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        text=True)
    stdout = proc.stdout
    if stdout is None or stdout.readline().strip() != "listening":
        proc.kill()
        proc.wait()
        raise ServerError(f"the name server on port {port} in {netns} did not start")
    return Server(netns, port, name, proc)


def ask_name(netns: str, address: str, port: int, timeout: float = 2.0) -> str | None:
    """Connect from `netns` to `address`:`port` and return what the server said, or None when
    the connection failed."""
    proc = run([sys.executable, "-c", _CLIENT, address, str(port), str(timeout)],
               netns=netns, check=False, timeout=timeout + 10)
    return proc.stdout.strip() if proc.returncode == 0 else None


__all__ = ["Server", "ServerError", "ask_name", "serve_name"]
