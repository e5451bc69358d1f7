"""Live migration of a lab VM, done the way Nova (libvirt) and Neutron (ML2/OVN) do it.

The steps, and what each one stands for in a real cloud:

1. **Dual binding.** Neutron, asked by Nova for a binding on the destination host, writes
   `options:requested-chassis="<src host>,<dst host>"` and `activation-strategy=rarp` on the
   Logical_Switch_Port (shared/OVN_DATA.md (g)). northd turns them into SB
   `requested_chassis` / `requested_additional_chassis`.
2. **Plug on the destination.** The destination qemu's tap is added to the destination's
   br-int with the same `iface-id` (os-vif). Here it is a second veth: its host end (named like
   Nova names it, in the destination chassis's namespace) goes into br-int, its other end is
   created, down, in the VM's namespace (`eth0-dst`): the destination qemu's NIC before the VM
   runs there. ovn-controller on the destination claims the port as an `additional_chassis`,
   and with `activation-strategy=rarp` drops its traffic there until activated.
3. **Switch-over.** The VM stops running on the source and resumes on the destination: in one
   `ip -batch`, the old `eth0` (and with it the source's tap: the source qemu exits) is deleted,
   `eth0-dst` becomes `eth0` and gets the same addresses and default routes (the MAC is the
   same: the new end was created with it).
4. **Activation.** Right after resuming, qemu announces the VM with RARP frames (5 rounds, 50 ms
   then +100 ms apart: qemu's `announce-*` defaults). The first that reaches ovn-controller on the
   destination makes it add the chassis to `options:additional-chassis-activated` and lift its
   drop. A helper process waits in the VM's namespace with its raw socket ready, so the first
   RARP leaves as soon as the new `eth0` is up, as qemu's does.
5. **Binding activated.** Neutron activates the destination binding: `requested-chassis=<dst
   host>` alone, no `activation-strategy`, `neutron:host_id` the destination. ovn-controller on
   the destination becomes the port's `chassis`; the source lets go.
6. **Unplug on the source** (os-vif): the tap's OVS port is removed from the source's br-int.

`migrate_vm` returns the monotonic time of each step, for tests and benchmarks to set against
the routes they watch and the pings they lose.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, replace

from ovn_fabric.lab import ovn
from ovn_fabric.lab import vm as vmmod
from ovn_fabric.lab.paths import LabPaths
from ovn_fabric.lab.sh import run, wait_until
from ovn_fabric.lab.topology import Topology
from ovn_fabric.lab.vm import Vm, VmError

STEP_TIMEOUT = 20.0
NEW_IFNAME = "eth0-dst"        # the destination qemu's NIC inside the VM, until switch-over
ACTIVATION_STRATEGY = "rarp"   # Neutron's [ovn] live_migration_activation_strategy default
ACTIVATED_KEY = "additional-chassis-activated"

# qemu's self-announce defaults: announce-initial=50 ms, announce-step=100 ms, announce-rounds=5
# (migration parameters, qemu >= 4.0): the first frame at once, then 50, 150, 250, 350 ms apart.
_RARP_SENDER = r"""
import socket, struct, sys, time
mac = bytes.fromhex(sys.argv[1].replace(":", ""))
arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 3) + mac + bytes(4) + mac + bytes(4)
frame = (b"\xff" * 6 + mac + struct.pack("!H", 0x8035) + arp).ljust(60, b"\0")
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
print("ready", flush=True)
sys.stdin.readline()
s.bind(("eth0", 0))
for delay in (0.05, 0.15, 0.25, 0.35, 0.0):
    s.send(frame)
    print("sent", flush=True)
    time.sleep(delay)
"""


class MigrationError(VmError):
    """A VM that cannot be migrated as asked."""


@dataclass(frozen=True, slots=True)
class BindingState:
    """The SB Port_Binding of a port, chassis given by name (system-id)."""

    chassis: str
    additional: tuple[str, ...]
    activated: tuple[str, ...]
    options: dict[str, str]


@dataclass(frozen=True, slots=True)
class Migration:
    """A finished migration: the VM as it now is, and when each step happened
    (time.monotonic())."""

    vm: Vm
    source: str
    started: float
    dual_bound: float      # the SB lists the destination in additional_chassis
    switched: float        # the VM's eth0 goes through the destination's br-int
    activated: float       # the destination is in additional-chassis-activated
    rebound: float         # Neutron wrote requested-chassis = the destination alone
    finished: float        # chassis = destination, no additional chassis
    unplugged: float       # the source's OVS port removed


def _refs(value: list[object]) -> list[str]:
    """The uuids of an OVSDB JSON reference column (a single ref or a set)."""
    if value[0] == "uuid":
        return [str(value[1])]
    if value[0] == "set":
        items = value[1]
        if isinstance(items, list):
            return [str(item[1]) for item in items]
    raise ValueError(f"not a reference column: {value!r}")


def binding_state(paths: LabPaths, topology: Topology, port_id: str) -> BindingState:
    """Read the SB Port_Binding of `port_id`."""
    central = topology.controller.name
    chassis = json.loads(ovn.sbctl(paths, central, "--format=json", "--columns=_uuid,name",
                                   "list", "Chassis"))["data"]
    names = {str(row[0][1]): str(row[1]) for row in chassis}
    rows = json.loads(ovn.sbctl(paths, central, "--format=json",
                                "--columns=chassis,additional_chassis,options", "find",
                                "Port_Binding", f"logical_port={port_id}"))["data"]
    if not rows:
        raise MigrationError(f"no Port_Binding for {port_id} in the SB")
    main, additional, options_column = rows[0]
    options = {str(k): str(v) for k, v in options_column[1]}
    return BindingState(
        chassis=next((names.get(u, u) for u in _refs(main)), ""),
        additional=tuple(names.get(u, u) for u in _refs(additional)),
        activated=tuple(c for c in options.get(ACTIVATED_KEY, "").split(",") if c),
        options=options)


def _system_id(paths: LabPaths, node: str) -> str:
    return ovn.chassis_external_ids(paths, node)["system-id"]


def _set_requested(paths: LabPaths, topology: Topology, vm: Vm, hosts: list[str], *,
                   host_id: str) -> None:
    """Write the port's binding options as Neutron does: the requested hosts, and
    activation-strategy only while there are two."""
    central = topology.controller.name
    args = ["set", "Logical_Switch_Port", vm.port_id,
            f"options:requested-chassis={','.join(hosts)}",
            f'external_ids:"neutron:host_id"={host_id}']
    if len(hosts) > 1:
        args.append(f"options:activation-strategy={ACTIVATION_STRATEGY}")
        ovn.nbctl(paths, central, *args)
    else:
        ovn.nbctl(paths, central, *args, "--", "remove", "Logical_Switch_Port", vm.port_id,
                  "options", "activation-strategy")


def _plug_destination(paths: LabPaths, topology: Topology, vm: Vm, node: str) -> None:
    """The destination qemu's tap: a veth from the destination's br-int to a NIC, down, in the
    VM's namespace, with the VM's MAC; its OVS port carries the same iface-id as the source's."""
    node_ns = paths.netns(node)
    seg = vmmod.segment(paths, topology, vm.network)
    run(["ip", "-n", node_ns, "link", "add", vm.tap, "address", "fe" + vm.mac[2:], "type",
         "veth", "peer", "name", NEW_IFNAME, "address", vm.mac, "netns", vm.netns])
    if seg.mtu:
        run(["ip", "-n", node_ns, "link", "set", "dev", vm.tap, "mtu", str(seg.mtu)])
    run(["ip", "-n", node_ns, "link", "set", "dev", vm.tap, "up"])
    iface_ids = {"iface-id": vm.port_id, "attached-mac": vm.mac, "iface-status": "active",
                 "vm-uuid": vm.device_id}
    ovn.vsctl(paths, node, "--may-exist", "add-port", ovn.INTEGRATION_BRIDGE, vm.tap,
              "--", "set", "Interface", vm.tap, f"external_ids={ovn.ovsdb_map(iface_ids)}")


def _switch_over_batch(paths: LabPaths, topology: Topology, vm: Vm) -> str:
    seg = vmmod.segment(paths, topology, vm.network)
    return "\n".join([
        "link del dev eth0",
        f"link set dev {NEW_IFNAME} name eth0",
        *vmmod.eth0_setup(vm, seg),
    ]) + "\n"


def _start_rarp_sender(vm: Vm) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        ["ip", "netns", "exec", vm.netns, sys.executable, "-c", _RARP_SENDER, vm.mac],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if proc.stdout is None or proc.stdout.readline().strip() != "ready":
        proc.kill()
        proc.wait()
        raise MigrationError(f"the RARP sender in {vm.netns} did not start")
    return proc


def _finish_rarp_sender(proc: subprocess.Popen[str]) -> None:
    try:
        proc.communicate(timeout=STEP_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise MigrationError(f"the RARP sender failed (exit {proc.returncode})")


def migrate_vm(paths: LabPaths, topology: Topology, name: str, to_node: str) -> Migration:
    """Live-migrate VM `name` to chassis `to_node`, make-before-break (module docstring);
    return once the destination is the port's only chassis and the source is unplugged."""
    vm = vmmod.load_vm(paths, name)
    if to_node == vm.node:
        raise MigrationError(f"VM {name!r} is already on {to_node}")
    if not topology.device(to_node).is_chassis:
        raise MigrationError(f"{to_node!r} is not a chassis (compute or gateway) of the topology")
    hostname = ovn.chassis_external_ids(paths, to_node).get("hostname")
    if not hostname:
        raise MigrationError(f"chassis {to_node!r} has no external_ids:hostname: is it started?")
    src_id, dst_id = _system_id(paths, vm.node), _system_id(paths, to_node)
    moved = replace(vm, node=to_node, hostname=hostname)

    def state() -> BindingState:
        return binding_state(paths, topology, vm.port_id)

    started = time.monotonic()
    _set_requested(paths, topology, vm, [vm.hostname, hostname], host_id=vm.hostname)
    _plug_destination(paths, topology, vm, to_node)
    wait_until(lambda: dst_id in state().additional, timeout=STEP_TIMEOUT, interval=0.02,
               what=f"{to_node} to claim the port of {name} as an additional chassis")
    dual_bound = time.monotonic()

    sender = _start_rarp_sender(vm)
    try:
        run(["ip", "-n", vm.netns, "-batch", "-"],
            input_text=_switch_over_batch(paths, topology, vm))
        switched = time.monotonic()
        if sender.stdin is None:
            raise MigrationError("the RARP sender has no stdin")
        sender.stdin.write("go\n")
        sender.stdin.flush()
        seg = vmmod.segment(paths, topology, vm.network)
        if seg.overlay:
            run(["ethtool", "-K", "eth0", "tx", "off"], netns=vm.netns)
        wait_until(lambda: dst_id in state().activated, timeout=STEP_TIMEOUT, interval=0.02,
                   what=f"{to_node} to activate the port of {name} (RARP)")
        activated = time.monotonic()
    finally:
        _finish_rarp_sender(sender)

    rebound = time.monotonic()
    _set_requested(paths, topology, vm, [hostname], host_id=hostname)
    def only_destination() -> bool:
        now = state()
        return now.chassis == dst_id and src_id not in now.additional

    wait_until(only_destination, timeout=STEP_TIMEOUT, interval=0.02,
               what=f"{to_node} to become the only chassis of the port of {name}")
    finished = time.monotonic()
    vmmod.unplug(paths, vm)
    unplugged = time.monotonic()
    (paths.vm_dir(name) / vmmod.STATE_FILE).write_text(moved.to_json())
    return Migration(moved, vm.node, started, dual_bound, switched, activated, rebound,
                     finished, unplugged)


__all__ = ["BindingState", "Migration", "MigrationError", "binding_state", "migrate_vm"]
