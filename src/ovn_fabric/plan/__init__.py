"""The planner: (OVN view, settings) -> DesiredState. Pure and deterministic: no I/O, no clock,
and the result depends only on the values passed in, never on the order of the rows.

The rules, in the order they are applied:

1. Served provider networks. A datapath is a provider network served by this node iff it has a
   localnet Port_Binding whose `options:network_name` is a physnet that the node's
   ovn-bridge-mappings map to a bridge listed under [bridges] in the settings. A physnet mapped
   to any other bridge is left alone (it stays plain layer 2). A datapath with several such
   localnet ports is ambiguous: the whole network is refused.
2. Each served network gets an EgressFlow on OVN's patch port of its bridge,
   `patch-<localnet port>-to-<integration bridge>`, with the localnet's VLAN tag; each bridge
   that serves at least one network gets a BridgeSetup with its configured gateways.
3. Workloads. Each kind of workload is one function that reads the view and adds Claims ("make
   this prefix reachable through this bridge, with this neighbour MAC or next hop, because of
   this port") and Refusals to a Draft. What matters for each is WHERE OVN serves it, because
   that node, and only that one, must advertise it:

   | workload | advertised from | neighbour / next hop |
   |---|---|---|
   | VM port on a served provider network | its `chassis` | the port's MAC |
   | live migration destination | an `additional_chassis` once activated | the port's MAC |
   | centralized floating IP | where its router's cr-lrp is bound | the gateway MAC |
   | distributed floating IP | where the VM's port is active | the FIP's external MAC |
   | router gateway address | where the cr-lrp is bound (the active gateway) | the gateway MAC |
   | tenant subnet (opt-in) | where the router's cr-lrp is bound | via the gateway address |
   | load-balancer VIP | where a router serving it has its cr-lrp | the gateway MAC |
   | virtual IP | where the virtual port is bound (its parent's chassis) | the parent's MAC |

   Each function's docstring says which rows and columns it reads and why. The bridge is always
   that of the served provider network the address lives on (for a router: the network its
   gateway port is on); nothing is claimed for a network this node does not serve.
4. Exposure policy, for each claimed prefix; the first rule that matches decides:
   refused: the default route; unspecified, loopback, link-local, multicast, broadcast,
   reserved (240.0.0.0/4) and IPv4-mapped addresses; the gateway address of a managed bridge
   and the network (and IPv4 broadcast) address of a gateway's subnet; anything overlapping a
   deny prefix; anything not inside an allow prefix.
   allowed: by the longest allow prefix that contains it (named in the Exposure's rule).
5. Conflicts. When the allowed claims of one prefix disagree on what the node must do (another
   bridge, neighbour MAC or next hop; e.g. two ports on this node claiming one IP), every one
   of them is refused: choosing one could hijack the other's traffic, and nothing says which
   is right. Claims that agree (an address listed twice, a floating IP that is also a
   load-balancer VIP) are merged, each keeping its Exposure.
6. Output. One HostRoute per allowed prefix, one Neighbour per allowed prefix with a MAC, one
   Exposure per (prefix, port), and a Refusal for everything refused; sets, or sorted tuples.

Facts of OVN these rules rest on (checked against ovn-northd 23.03.1 fed as Neutron writes;
/work/shared/OVN_DATA.md has the rows):
- A distributed gateway router (a cr-lrp) runs its NAT and load-balancer stages only on the
  chassis where the cr-lrp is resident: northd's lr_in_dnat flows carry
  `is_chassis_resident("cr-lrp-<gw>")`, except a distributed floating IP's, which carry
  `is_chassis_resident("<VM port>")`.
- northd writes the addresses a gateway answers for into the `nat_addresses` of the gateway's
  provider-side patch port (Neutron sets `nat-addresses=router` on the gateway LSP): the
  router's own IPv4 addresses in one entry, the centralized NAT addresses in another (several
  IPs in one entry), one entry per distributed floating IP with its external MAC.
  Neutron sets `exclude-lb-vips-from-garp=true`, so load-balancer VIPs are not listed there.
- A load balancer on a logical switch rewrites the destination address of traffic entering from
  the localnet port on whichever chassis it enters, but then delivers it by the frame's Ethernet
  destination, which would have to be the chosen backend's MAC (ovn-trace: any other MAC goes
  to `_MC_unknown` and is dropped). A routed frame carries one neighbour MAC, so a VIP of a
  load balancer on a provider switch cannot be served by every chassis of that network
  (anycast). A VIP is advertised only where a router serving its load balancer has its
  gateway: see add_load_balancer_vips.
- Before OVN 24.03 the SB Load_Balancer holds only load balancers applied to a switch, naming
  only switch datapaths; a load balancer applied only to a router (Neutron port forwarding) is
  not in the SB at all until 24.03 adds `lr_datapath_group`.

The package, one module per part:

    draft.py       the values workloads produce (ServedNetwork, Router, Claim, Draft)
    context.py     rules 1-2: served networks, their plumbing, routers; where OVN delivers a port
    workloads.py   rule 3: VM ports, migrations, floating IPs, router gateways, virtual IPs
    tenant.py      rule 3: tenant subnets behind a gateway (opt-in)
    balancers.py   rule 3: load-balancer VIPs
    exposure.py    rule 4: the exposure gate
    resolve.py     rules 5-6: conflicts, the DesiredState, and PlanMemo
"""

from __future__ import annotations

from ovn_fabric.config import Settings
from ovn_fabric.model import DesiredState
from ovn_fabric.ovn.view import OvnView
from ovn_fabric.plan.balancers import add_load_balancer_vips
from ovn_fabric.plan.context import Context, Workload, add_network_plumbing, served_networks
from ovn_fabric.plan.draft import Draft
from ovn_fabric.plan.resolve import PlanMemo, resolve
from ovn_fabric.plan.tenant import add_tenant_subnets
from ovn_fabric.plan.workloads import (
    add_floating_ips,
    add_migration_targets,
    add_provider_ports,
    add_router_gateways,
    add_virtual_ips,
    prospective_claims,
)

# Each kind of workload, in no particular order (the result does not depend on it).
WORKLOADS: tuple[Workload, ...] = (
    add_provider_ports,
    add_migration_targets,
    add_floating_ips,
    add_router_gateways,
    add_tenant_subnets,
    add_load_balancer_vips,
    add_virtual_ips,
)


def plan(view: OvnView, settings: Settings, memo: PlanMemo | None = None) -> DesiredState:
    """Everything this node must have for the workloads it carries.

    With a `memo` (the reconciler keeps one), the work of the previous call is reused where
    its inputs are the same objects: the result is equal to what a call without it returns,
    only cheaper when little changed (see PlanMemo). It also resolves ahead the claims of the
    VM ports about to be bound here (prospective_claims), so that a bind is cheap too."""
    draft = Draft()
    networks = served_networks(view, settings, draft)
    context = Context.of(view, settings, networks)
    add_network_plumbing(context, draft)
    for workload in WORKLOADS:
        workload(context, draft)
    if memo is None:
        memo = PlanMemo()
        return resolve(draft, memo.gate(settings), memo)
    gate = memo.gate(settings)
    memo.prospect(prospective_claims(context), gate)
    return resolve(draft, gate, memo)


__all__ = ["WORKLOADS", "PlanMemo", "plan"]
