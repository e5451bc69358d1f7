"""Rule 3 for load-balancer VIPs: advertised where a router serving the load balancer has its
gateway. Pure."""

from __future__ import annotations

from collections.abc import Mapping

from ovn_fabric.model import (
    IPAddress,
    Reason,
)
from ovn_fabric.ovn.view import (
    LoadBalancer,
    parse_vip,
)
from ovn_fabric.plan.context import Context
from ovn_fabric.plan.draft import (
    LB_ROUTER_KEYS,
    NEUTRON_PREFIX,
    Draft,
    Router,
    ServedNetwork,
)


def add_load_balancer_vips(context: Context, draft: Draft) -> None:
    """Load-balancer VIPs (Octavia's OVN provider, Neutron port forwarding), where OVN serves
    them: in the load-balancer stage of a router with a distributed gateway, which runs only
    where the router's cr-lrp is bound. So a VIP is advertised from the active gateway chassis
    of each router serving it, with that router's gateway MAC, on its uplink's bridge.

    A router serves a load balancer when
    - its datapath is among the Load_Balancer's datapaths (SB `lr_datapath_group`, OVN >= 24.03);
    - the row names it: Neutron's `neutron:router_name` (port forwarding) or Octavia's `lr_ref`
      in `external_ids` ("neutron-<id>", the bare id before Neutron 27), as NB rows carry them
      (the SB copies only `lb_id`), matched to the router datapath named "neutron-<id>";
    - or a switch among its datapaths is an interface of the router (router_links): before
      24.03 the SB names switches only, and Octavia applies a load balancer to the routers of
      its switches (`lr_ref`) as well as to the switches (`ls_refs`).
    Only VIPs on the provider side are advertised: inside the router's gateway subnets or the
    bridge's gateway subnets. A VIP inside a tenant subnet is reached through that subnet
    (add_tenant_subnets, opt-in), never exposed alone. A load balancer applied only to a
    provider switch is not advertised: OVN cannot deliver a routed frame to its backends (see
    the module docstring). A VIP floating IP (`neutron:vip_fip`) is also a floating IP: both
    claims agree (same gateway MAC) and are merged."""
    by_name = {datapath.external_ids.get("name", ""): datapath.uuid
               for datapath in context.view.datapaths}
    for balancer in context.view.load_balancers:
        routers = [router for router in _serving_routers(context, balancer, by_name)
                   if router.active_on(context.local) and router.uplink is not None]
        if not routers:
            continue
        for key in balancer.vips:
            ip, why = parse_vip(key)
            if ip is None:
                draft.refuse(key, balancer.name or balancer.uuid, why)
                continue
            for router in routers:
                network = router.uplink
                if network is not None and _on_provider_side(context, router, network, ip):
                    draft.claim(ip, key, network, mac=router.mac,
                                reason=Reason.LOAD_BALANCER_VIP,
                                port=balancer.name or balancer.uuid)


def _serving_routers(context: Context, balancer: LoadBalancer,
                     by_name: Mapping[str, str]) -> list[Router]:
    datapaths = set(balancer.datapaths)
    for key in LB_ROUTER_KEYS:
        for ref in filter(None, map(str.strip, balancer.external_ids.get(key, "").split(","))):
            name = ref if ref.startswith(NEUTRON_PREFIX) else NEUTRON_PREFIX + ref
            if name in by_name:
                datapaths.add(by_name[name])
    linked = set(datapaths)
    for datapath in datapaths:
        linked |= context.router_links.get(datapath, frozenset())
    return [router for router in context.routers if router.datapath in linked]


def _on_provider_side(context: Context, router: Router, network: ServedNetwork,
                      ip: IPAddress) -> bool:
    bridge = context.settings.bridge(network.bridge)
    subnets = [iface.network for iface in router.interfaces]
    subnets += [gateway.network for gateway in bridge.gateways] if bridge is not None else []
    return any(ip in subnet for subnet in subnets if subnet.prefixlen < subnet.max_prefixlen)
