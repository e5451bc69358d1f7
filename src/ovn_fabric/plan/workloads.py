"""Rule 3, the workloads bound to a port or a NAT entry: VM ports on provider networks, live
migration targets, floating IPs, router gateways and virtual IPs. Each function's docstring
says which rows and columns it reads and why. Pure."""

from __future__ import annotations

import functools
from collections.abc import Iterator

from ovn_fabric.model import (
    IPAddress,
    Reason,
    Refusal,
)
from ovn_fabric.ovn.view import (
    PARSER_CACHE,
    PortBinding,
    parse_address_entry,
    parse_ip,
    parse_nat_address,
)
from ovn_fabric.plan.context import Context, gateway_addresses, is_active_on, is_draining_from
from ovn_fabric.plan.draft import (
    CHASSISREDIRECT,
    DISTRIBUTED_PORT,
    PEER,
    VIRTUAL,
    VM_PORT,
    Claim,
    Draft,
    Router,
    ServedNetwork,
    host_network,
)


def add_provider_ports(context: Context, draft: Draft) -> None:
    """VM ports on a served provider network bound here.

    Reads Port_Binding `type` "" (a VM port), `datapath` (a served provider network), `chassis`
    (this node), `up` (not false) and `mac`: every address of every entry, with the entry's MAC
    as neighbour. The source of a live migration is such a port until ovn-controller on the
    destination becomes its main `chassis`: it keeps advertising through the whole overlap,
    draining (is_draining_from) once the destination is active."""
    local = context.local
    if not local:
        return
    claims, refusals = draft.claims, draft.refusals
    for network in context.networks:
        for binding in context.bindings_on(network):
            # The loop of a node's thousands of ports: one call per port, not three.
            if binding.chassis == local and binding.type == VM_PORT and binding.up is not False:
                found, refused = _binding_claims(
                    binding, network, Reason.PROVIDER_PORT,
                    draining=bool(binding.additional_chassis)
                    and is_draining_from(binding, local))
                claims += found
                if refused:
                    refusals += refused


def prospective_claims(context: Context) -> Iterator[Claim]:
    """The claims add_provider_ports will make for the VM ports Neutron has placed here and
    ovn-controller has not bound yet (`requested_chassis` this node, `chassis` not): Nova is
    still starting the VM. They are not part of the plan; the reconciler's PlanMemo resolves
    them ahead (PlanMemo.prospect), so that the pass of the bind finds its work done. Yields
    the very Claim objects add_provider_ports will (`_mac_column_claims` is cached)."""
    local = context.local
    if not local:
        return
    for network in context.networks:
        for binding in context.bindings_on(network):
            if (binding.requested_chassis == local and binding.chassis != local
                    and binding.type == VM_PORT):
                claims, _ = _binding_claims(binding, network, Reason.PROVIDER_PORT,
                                            draining=False)
                yield from claims


def add_migration_targets(context: Context, draft: Draft) -> None:
    """The destination of a live migration, make-before-break.

    While Neutron migrates a VM, its port's Port_Binding has `chassis` = the source and
    `additional_chassis` = [the destination] (`options:requested-chassis="src,dst"`,
    `activation-strategy=rarp`). The destination advertises the port's addresses, exactly as
    add_provider_ports would, as soon as OVN delivers the port's traffic there (is_active_on:
    with rarp, once its name is in `options:additional-chassis-activated`); the source keeps
    advertising until `chassis` is no longer it. During the overlap the fabric has both paths,
    and either delivers: OVN sends a multi-chassis port's traffic to all of its chassis. When
    the migration ends, `chassis` is the destination, which add_provider_ports then covers."""
    local = context.local
    for network in context.networks:
        for binding in context.bindings_on(network):
            if (binding.additional_chassis and binding.type == VM_PORT
                    and binding.up is not False and binding.chassis != local
                    and is_active_on(binding, local)):
                _claim_mac_column(draft, binding, network, Reason.PROVIDER_PORT)


def add_floating_ips(context: Context, draft: Draft) -> None:
    """Floating IPs, both modes, from what northd writes into the SB.

    Reads the `nat_addresses` of every Port_Binding on a served provider network (in practice
    the provider-side patch port of a router gateway), each entry
    `MAC IP [IP...] is_chassis_resident("PORT")`, and the Port_Binding named PORT:
    - PORT is a chassisredirect (`cr-lrp-<gw>`): centralized NAT. Advertised where that cr-lrp
      is bound, with the entry's MAC (the gateway MAC). The gateway's own addresses (in the
      cr-lrp's `mac`) are left to add_router_gateways.
    - PORT is any other port (the VM's): a distributed floating IP
      (`neutron:fip-distributed=True`). Advertised where that port is active (is_active_on:
      its chassis, or a live migration's activated destination), with the entry's MAC (the
      FIP's external MAC).
    - PORT is not in the view: it is not bound here, so nothing is advertised here.
    Neutron's variants give the same SB rows here: whether the NB NAT row has `gateway_port`
    changes nothing for a router with one gateway. An entry whose MAC or resident port cannot be
    read is refused by every node that sees it; a bad address only where the entry is served."""
    for network in context.networks:
        for holder in context.bindings_on(network):
            for entry in holder.nat_addresses:
                _claim_nat_entry(context, draft, holder, network, entry)


def _claim_nat_entry(context: Context, draft: Draft, holder: PortBinding,
                     network: ServedNetwork, entry: str) -> None:
    nat = parse_nat_address(entry)
    if nat.resident is None or nat.error:
        draft.refuse(entry, holder.logical_port, nat.error or "no resident port")
        return
    resident = context.binding_named(nat.resident)
    if resident is None or not _serves_nat_here(resident, context.local):
        return
    own = _router_port_addresses(context, holder, resident)
    draining = is_draining_from(resident, context.local)    # a distributed FIP's VM migrating
    for token, why in nat.rejected:
        draft.refuse(token, nat.resident, why)
    for address in nat.addresses:
        if address.ip not in own:
            draft.claim(address.ip, address.token, network, mac=nat.mac,
                        reason=Reason.FLOATING_IP, port=nat.resident, draining=draining)


def _router_port_addresses(context: Context, holder: PortBinding,
                           resident: PortBinding) -> set[IPAddress]:
    """The router's own addresses, which northd lists in `nat_addresses` too (one entry, the
    router port's MAC and IPv4 addresses) and which are not floating IPs: those of the cr-lrp
    (add_router_gateways advertises them) and those of the router port the holder is patched
    to, when it is in the view."""
    ports = [resident] if resident.type == CHASSISREDIRECT else []
    peer = context.binding_named(holder.options.get(PEER, ""))
    ports += [peer] if peer is not None else []
    return {iface.ip for port in ports for iface in gateway_addresses(port)[1]}


def _serves_nat_here(resident: PortBinding, local: str) -> bool:
    """Whether `is_chassis_resident(resident)` holds on this chassis: a chassisredirect port
    where it is bound; any other port where it is active (and not marked down)."""
    if resident.type == CHASSISREDIRECT:
        return bool(local) and resident.chassis == local
    return resident.up is not False and is_active_on(resident, local)


def add_router_gateways(context: Context, draft: Draft) -> None:
    """Router gateway addresses, from the active gateway chassis only.

    Reads each chassisredirect Port_Binding (`cr-lrp-<gw>`) whose `chassis` is this node: the
    highest-priority live chassis of its HA chassis group has claimed it. (Neutron up to 28
    schedules with NB Gateway_Chassis, from 29 with an HA_Chassis_Group; either way northd
    gives the cr-lrp an SB `ha_chassis_group` and ovn-controller sets `chassis`, the only column
    read here.) Its `mac` ("MAC IP/len IP6/len") gives the addresses and the neighbour MAC; the
    bridge is that of the provider network its gateway port is patched to (Router.uplinks). A
    standby chassis advertises nothing; on failover `chassis` moves and the routes follow."""
    for router in context.routers:
        if not router.active_on(context.local):
            continue
        network = _uplink(router, draft)
        if network is not None:
            _claim_mac_column(draft, router.redirect, network, Reason.ROUTER_GATEWAY)


def _uplink(router: Router, draft: Draft) -> ServedNetwork | None:
    """The served network of a router active here, refusing what cannot be told apart."""
    port = router.redirect.logical_port
    if not router.gateway_port:
        draft.refuse(port, port, f"no options:{DISTRIBUTED_PORT}: its gateway port is unknown")
    elif len(router.uplinks) > 1:
        names = ", ".join(network.name for network in router.uplinks)
        draft.refuse(port, port, f"its gateway port {router.gateway_port} is patched to several "
                                 f"served networks ({names}); serving none of them")
    return router.uplink


def add_virtual_ips(context: Context, draft: Draft) -> None:
    """Virtual IPs (Neutron allowed-address-pair VIPs) on a served provider network.

    Reads Port_Bindings of type "virtual" on a served network: `options:virtual-ip` (the VIP),
    `chassis` and `virtual_parent`, which ovn-controller sets when one of the
    `options:virtual-parents` announces the VIP (a GARP). Advertised from that `chassis`, with
    the parent's MAC: the MAC of the parent's Port_Binding `mac` if it is in the view (it is,
    being bound here), else the virtual port's own. When another parent takes the VIP over,
    `chassis` and `virtual_parent` move and the route follows. Neutron's variants differ only in
    the host name key it writes afterwards (`neutron:host_id` up to 28,
    `neutron:parent_hostname` from 29), which is not read: `chassis` says it first."""
    for network in context.networks:
        for binding in context.bindings_on(network):
            if binding.type == VIRTUAL and context.local and binding.chassis == context.local:
                _claim_virtual_ip(context, draft, binding, network)


def _claim_virtual_ip(context: Context, draft: Draft, binding: PortBinding,
                      network: ServedNetwork) -> None:
    parent = context.binding_named(binding.virtual_parent or "")
    mac = (_single_mac(parent) if parent is not None else None) or _single_mac(binding)
    port = binding.logical_port
    tokens = [token.strip() for token in binding.options.get("virtual-ip", "").split(",")]
    if not any(tokens):
        draft.refuse(port, port, "a virtual port without options:virtual-ip")
    for token in filter(None, tokens):
        ip, why = parse_ip(token)
        if ip is None:
            draft.refuse(token, port, why)
        elif mac is None:
            draft.refuse(token, port, f"no MAC for it: neither its parent "
                                      f"({binding.virtual_parent or 'none'}) nor the virtual "
                                      f"port has exactly one in view")
        else:
            draft.claim(ip, token, network, mac=mac, reason=Reason.VIRTUAL_IP, port=port)


def _single_mac(binding: PortBinding) -> str | None:
    macs = {mac for entry in binding.mac if (mac := parse_address_entry(entry).mac)}
    return macs.pop() if len(macs) == 1 else None


def _claim_mac_column(draft: Draft, binding: PortBinding, network: ServedNetwork,
                      reason: Reason, *, draining: bool = False) -> None:
    """Every address of a Port_Binding's `mac` column, each with its entry's MAC."""
    claims, refusals = _binding_claims(binding, network, reason, draining=draining)
    draft.claims.extend(claims)
    draft.refusals.extend(refusals)


def _binding_claims(binding: PortBinding, network: ServedNetwork, reason: Reason, *,
                    draining: bool) -> tuple[tuple[Claim, ...], tuple[Refusal, ...]]:
    """The one way to call `_mac_column_claims`: an lru_cache keys positional and keyword
    arguments apart, and prospective_claims gets the very Claim objects a bind will only if
    both call it alike."""
    return _mac_column_claims(binding.mac, binding.logical_port, network.bridge, network.name,
                              reason, draining=draining)


@functools.lru_cache(maxsize=PARSER_CACHE)
def _mac_column_claims(mac: tuple[str, ...], port: str, bridge: str, network: str,
                       reason: Reason, *, draining: bool
                       ) -> tuple[tuple[Claim, ...], tuple[Refusal, ...]]:
    """The claims and refusals of a `mac` column (cached: a port that did not change gives the
    very same Claim objects on every pass, which lets resolve() reuse its work on them)."""
    claims: list[Claim] = []
    refusals: list[Refusal] = []
    for entry in mac:
        parsed = parse_address_entry(entry)
        refusals += [Refusal(what=token, port=port, why=why) for token, why in parsed.rejected]
        claims += [Claim(prefix=host_network(address.ip), token=address.token, bridge=bridge,
                         mac=parsed.mac, via=None, reason=reason, port=port, network=network,
                         draining=draining)
                   for address in parsed.addresses]
    return tuple(claims), tuple(refusals)
