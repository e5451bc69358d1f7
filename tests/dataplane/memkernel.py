"""An in-memory kernel with the semantics the kernel driver relies on, for the pure diff tests.

It holds state of ours and of other owners. Operations behave as rtnetlink does: an exclusive
create fails on an occupied key whoever holds it; a route replace and a neighbour replace
overwrite whatever holds the key (so a diff that aims them at another owner's state is caught);
deletions of ours match our marker only. A route's key is its destination and its metric (plain
or draining), as in the kernel: a draining route beside a plain one for the same destination is
another route.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ovn_fabric.dataplane.kernel_state import (
    BridgeAddress,
    KernelChanges,
    KernelState,
    Sysctl,
)
from ovn_fabric.model import HostRoute, IPAddress, IPNetwork, Neighbour

OURS = "ours"


def route_key(route: HostRoute) -> tuple[IPNetwork, bool]:
    return route.dst, route.draining


@dataclass
class MemKernel:
    devices: set[str] = field(default_factory=set)
    down: set[str] = field(default_factory=set)
    # route key (dst, draining) -> (owner, route); owner "ours" or another protocol's name
    routes: dict[tuple[IPNetwork, bool], tuple[str, HostRoute]] = field(default_factory=dict)
    # neighbour key (ip, dev) -> (owner, neighbour); owner "dynamic" for learnt cache entries
    neighbours: dict[tuple[IPAddress, str], tuple[str, Neighbour]] = field(default_factory=dict)
    addresses: dict[BridgeAddress, str] = field(default_factory=dict)
    sysctls: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def read(self) -> KernelState:
        return KernelState(
            routes=frozenset(r for owner, r in self.routes.values() if owner == OURS),
            neighbours=frozenset(n for owner, n in self.neighbours.values() if owner == OURS),
            addresses=frozenset(a for a, owner in self.addresses.items() if owner == OURS),
            sysctls=frozenset(Sysctl(p, v) for p, v in self.sysctls.items()),
            devices=frozenset(self.devices),
            down=frozenset(self.down),
            foreign_neighbours=frozenset(
                n for owner, n in self.neighbours.values() if owner not in (OURS, "dynamic")),
        )

    def foreign(self) -> tuple[object, ...]:
        """Everything that belongs to another owner (dynamic neighbour cache excluded)."""
        return (
            {k: v for k, v in self.routes.items() if v[0] != OURS},
            {k: v for k, v in self.neighbours.items() if v[0] not in (OURS, "dynamic")},
            {k: v for k, v in self.addresses.items() if v != OURS},
        )

    def put_route(self, owner: str, route: HostRoute) -> None:
        self.routes[route_key(route)] = (owner, route)

    def _exists(self, dev: str, what: str) -> bool:
        if dev not in self.devices:
            self.failures.append(f"{what}: no such device")
        return dev in self.devices

    def apply(self, changes: KernelChanges) -> None:
        self._delete(changes)
        for name in changes.set_up:
            self.down.discard(name)
        for sysctl in changes.set_sysctls:
            self.sysctls[sysctl.path] = sysctl.value
        self._create(changes)
        for route in changes.retire_routes:                   # after the adds
            self._delete_route(route)

    def _delete(self, changes: KernelChanges) -> None:
        for route in changes.delete_routes:
            self._delete_route(route)
        for neighbour in changes.delete_neighbours:           # no owner check, as the kernel
            self.neighbours.pop((neighbour.ip, neighbour.dev), None)
        for address in changes.delete_addresses:
            self.addresses.pop(address, None)

    def _delete_route(self, route: HostRoute) -> None:
        if self.routes.get(route_key(route)) == (OURS, route):  # deletion matches proto 247
            del self.routes[route_key(route)]

    def _create(self, changes: KernelChanges) -> None:
        for address in changes.add_addresses:
            if not self._exists(address.dev, str(address)):
                continue
            if address in self.addresses:
                self.failures.append(f"{address}: EEXIST")
            else:
                self.addresses[address] = OURS
        for route in changes.add_routes:
            if not self._exists(route.dev, str(route)):
                continue
            if route_key(route) in self.routes:
                self.failures.append(f"{route}: EEXIST")
            else:
                self.put_route(OURS, route)
        for route in changes.replace_routes:                  # overwrites whoever holds it
            if self._exists(route.dev, str(route)):
                self.put_route(OURS, route)
        for neighbour in changes.set_neighbours:              # overwrites whoever holds it
            if self._exists(neighbour.dev, str(neighbour)):
                self.neighbours[(neighbour.ip, neighbour.dev)] = (OURS, neighbour)
