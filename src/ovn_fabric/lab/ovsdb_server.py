"""A standalone ovsdb-server as a child process, for the tests and benchmarks of the OVSDB reader.

No namespace: it listens on a unix socket in a directory of the caller's (keep the path short,
unix socket paths are limited to 108 bytes) and runs in the foreground as a child of the caller,
so its pid is ours and `stop()`/`kill()` signal exactly it. The database file outlives the
process: `start()` again after `kill()` is a server restart with the same data.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ovn_fabric.lab.procs import terminate
from ovn_fabric.lab.sh import run, wait_until

OVN_SB_SCHEMA = Path("/usr/share/ovn/ovn-sb.ovsschema")
VSWITCH_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
MAX_SOCKET_PATH = 107


class OvsdbServer:
    """One ovsdb-server serving one database file `<directory>/<name>.db` on
    `<directory>/<name>.sock`."""

    def __init__(self, directory: Path, name: str, schema: Path,
                 extra_args: Sequence[str] = ()) -> None:
        """`extra_args` go to ovsdb-server (e.g. more `--remote`s, SSL files)."""
        self.directory = directory
        self.name = name
        self.schema = schema
        self.extra_args = tuple(extra_args)
        self._proc: subprocess.Popen[bytes] | None = None
        if len(str(self.socket)) > MAX_SOCKET_PATH:
            raise ValueError(f"socket path too long for a unix socket: {self.socket}")

    @property
    def db(self) -> Path:
        return self.directory / f"{self.name}.db"

    @property
    def socket(self) -> Path:
        return self.directory / f"{self.name}.sock"

    @property
    def remote(self) -> str:
        return f"unix:{self.socket}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def db_name(self) -> str:
        name: str = json.loads(self.schema.read_text())["name"]
        return name

    def create(self) -> None:
        """A new, empty database file (replacing any)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.db.unlink(missing_ok=True)
        run(["ovsdb-tool", "create", str(self.db), str(self.schema)])

    def start(self, timeout: float = 10.0) -> None:
        """Start serving (creating the file first if there is none); return once it answers."""
        if self._proc is not None and self._proc.poll() is None:
            return
        if not self.db.exists():
            self.create()
        log = (self.directory / f"{self.name}.log").open("ab")
        with log:
            self._proc = subprocess.Popen(
                ["ovsdb-server", str(self.db), f"--remote=punix:{self.socket}",
                 f"--unixctl={self.directory / f'{self.name}.ctl'}", "--no-chdir",
                 "-vconsole:off", f"--log-file={self.directory / f'{self.name}.log'}",
                 *self.extra_args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )
        wait_until(self._answers, timeout=timeout, what=f"ovsdb-server on {self.socket}")

    def _answers(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(f"ovsdb-server for {self.db} exited {self._proc.returncode}; "
                               f"see {self.directory / f'{self.name}.log'}")
        return run(["ovsdb-client", "--timeout=2", "list-dbs", self.remote],
                   check=False).returncode == 0

    def kill(self) -> None:
        """SIGKILL, as a crash would (the socket file stays behind)."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()
            self._proc = None

    def stop(self) -> None:
        """SIGTERM (SIGKILL after a grace period), and reap it."""
        if self._proc is not None:
            terminate([self._proc.pid])
            self._proc.wait()
            self._proc = None

    def transact(self, operations: Sequence[dict[str, Any]], timeout: float = 600.0) -> Any:
        """One transaction of `operations` on this database, through the socket (no argv size
        limit, unlike `ovsdb-client transact`); returns the results or raises if one failed."""
        request = json.dumps({"method": "transact", "params": [self.db_name, *operations],
                              "id": 0})
        reply = _unix_request(str(self.socket), request, timeout)
        results = reply.get("result")
        errors = [r for r in results or [] if isinstance(r, dict) and "error" in r]
        if reply.get("error") is not None or errors:
            raise RuntimeError(f"transaction failed: {reply.get('error') or errors[:3]}")
        return results


def _unix_request(path: str, request: str, timeout: float) -> dict[str, Any]:
    """Send one JSON-RPC request over a unix socket and read the reply (echo requests from
    the server are answered)."""
    decoder = json.JSONDecoder()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(request.encode())
        buffer = b""
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError(f"{path}: connection closed before the reply")
            buffer += chunk
            text = buffer.decode(errors="replace").lstrip()
            try:
                message, end = decoder.raw_decode(text)
            except json.JSONDecodeError:
                continue
            buffer = text[end:].encode()
            if message.get("method") == "echo":
                sock.sendall(json.dumps({"result": message["params"], "error": None,
                                         "id": message["id"]}).encode())
                continue
            reply: dict[str, Any] = message
            return reply
