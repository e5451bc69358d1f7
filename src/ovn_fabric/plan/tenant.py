"""Rule 3 for tenant subnets behind a router's gateway (opt-in, [tenant_networks]): by address
scope, with overlaps refused. Pure."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ovn_fabric.model import (
    IPAddress,
    IPNetwork,
    Reason,
)
from ovn_fabric.ovn.view import (
    parse_address_entry,
    parse_interface,
)
from ovn_fabric.plan.context import Context
from ovn_fabric.plan.draft import (
    ADDRESS_SCOPE_KEYS,
    CHASSIS_REDIRECT_PORT,
    PATCH,
    PEER,
    Claim,
    Draft,
    Router,
    ServedNetwork,
)
from ovn_fabric.plan.exposure import Span


@dataclass(frozen=True, slots=True)
class TenantSubnet:
    """A subnet on a router interface, in a configured address scope."""

    router: Router
    interface: str            # the router port, lrp-<if>
    network: str              # the tenant network's name
    prefix: IPNetwork
    scope: str                # its Neutron address scope (lower case; "" for none)


def add_tenant_subnets(context: Context, draft: Draft) -> None:
    """Tenant subnets behind a router, opt-in ([tenant_networks]).

    Reads, for each router whose gateway is on a served network: the patch Port_Bindings on
    the router's datapath other than its gateway port (lrp-<if>, `mac` "MAC 10.0.0.1/26 ...":
    the subnets), and the Port_Binding each one names in `options:peer` (the router-interface
    LSP on the tenant switch, whose `external_ids` carry Neutron's
    `neutron:subnet_pool_addr_scope4/6`). A subnet whose scope is not configured is refused,
    and so reported where the router's gateway is active (Neutron SNATs such a subnet, or it
    is routed in a scope this node was not told to expose). A subnet whose scope is configured
    is advertised from where the router's cr-lrp is bound, as `HostRoute(subnet, bridge,
    via=the router's gateway address of that family inside the bridge's gateway subnets)`: a
    tenant network is reachable from outside only through its router's active gateway. Subnets
    of different routers that overlap are all refused, by every node whose gateway would
    advertise one, and so are subnets overlapping a managed bridge's own subnets: advertised
    twice, traffic would be split between two networks."""
    tenant = context.settings.tenant_networks
    if not tenant.enabled:
        return
    found = {subnet for router in context.routers if router.uplink is not None
             for subnet in _tenant_subnets(context, router)}
    subnets = sorted((subnet for subnet in found if subnet.scope in tenant.address_scopes),
                     key=_subnet_order)
    overlaps = _overlapping(subnets)
    for subnet in sorted(found - set(subnets), key=_subnet_order):
        if subnet.router.active_on(context.local):
            draft.refuse(str(subnet.prefix), subnet.interface,
                         f"not in a configured address scope "
                         f"({ADDRESS_SCOPE_KEYS[subnet.prefix.version]}="
                         f"{subnet.scope or 'none'})")
    for subnet in subnets:
        router, network = subnet.router, subnet.router.uplink
        if network is None or not router.active_on(context.local):
            continue
        via = _next_hop(context, router, network, subnet.prefix.version)
        why = (overlaps.get(subnet) or _overlaps_bridges(context, subnet.prefix)
               or ("" if via is not None else
                   f"router {router.name} has no IPv{subnet.prefix.version} address inside "
                   f"the subnets of bridge {network.bridge} to route it through"))
        if why or via is None:
            draft.refuse(str(subnet.prefix), subnet.interface, why)
            continue
        draft.claims.append(Claim(prefix=subnet.prefix, token=str(subnet.prefix),
                                  bridge=network.bridge, mac=None, via=via,
                                  reason=Reason.TENANT_SUBNET, port=subnet.interface,
                                  network=subnet.network))


def _tenant_subnets(context: Context, router: Router) -> Iterator[TenantSubnet]:
    for interface in context.bindings_by_datapath.get(router.datapath, ()):
        if (interface.type != PATCH or interface.logical_port == router.gateway_port
                or CHASSIS_REDIRECT_PORT in interface.options):
            continue
        switch_port = context.binding_named(interface.options.get(PEER, ""))
        if switch_port is None:
            continue
        for entry in interface.mac:
            for address in parse_address_entry(entry).addresses:
                iface = parse_interface(address.token)
                if iface is None or iface.network.prefixlen == iface.max_prefixlen:
                    continue
                scope = switch_port.external_ids.get(ADDRESS_SCOPE_KEYS[iface.version], "")
                yield TenantSubnet(router=router, interface=interface.logical_port,
                                   network=context.datapath_name(switch_port.datapath),
                                   prefix=iface.network, scope=scope.lower())


def _subnet_order(subnet: TenantSubnet) -> tuple[int, int, int, str, str]:
    prefix = subnet.prefix
    return (prefix.version, int(prefix.network_address), prefix.prefixlen,
            subnet.router.datapath, subnet.interface)


def _overlapping(subnets: list[TenantSubnet]) -> dict[TenantSubnet, str]:
    """Why each subnet that overlaps another is refused. `subnets` is sorted by address, so
    the overlapping ones form runs (one sweep, not every pair)."""
    runs: list[list[TenantSubnet]] = []
    end: tuple[int, int] = (0, -1)
    for subnet in subnets:
        span = Span.of(subnet.prefix)
        if runs and (span.version, span.first) <= end:
            runs[-1].append(subnet)
        else:
            runs.append([subnet])
        end = max(end, (span.version, span.last))
    why = {}
    for run in runs:
        for subnet in run if len(run) > 1 else ():
            others = ", ".join(f"{other.prefix} of router {other.router.name} "
                               f"({other.interface})" for other in run if other != subnet)
            why[subnet] = f"overlaps {others}; refusing all of them"
    return why


def _overlaps_bridges(context: Context, prefix: IPNetwork) -> str:
    for bridge in context.settings.bridges:
        for gateway in bridge.gateways:
            if Span.of(prefix).overlaps(Span.of(gateway.network)):
                return f"overlaps {gateway.network}, a subnet of bridge {bridge.name}"
    return ""


def _next_hop(context: Context, router: Router, network: ServedNetwork,
              version: int) -> IPAddress | None:
    """The router's gateway address of this family that the bridge reaches directly."""
    bridge = context.settings.bridge(network.bridge)
    on_link = [gateway.network for gateway in bridge.gateways] if bridge is not None else []
    found = sorted((iface.ip for iface in router.interfaces
                    if iface.version == version and any(iface.ip in net for net in on_link)),
                   key=int)
    return found[0] if found else None
