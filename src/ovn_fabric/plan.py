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
   this prefix reachable through this bridge, with this neighbour MAC, because of this port")
   and Refusals to a Draft. Today: VM ports on provider networks (`add_provider_ports`).
4. Exposure policy, for each claimed prefix; the first rule that matches decides:
   refused: the default route; unspecified, loopback, link-local, multicast, broadcast,
   reserved (240.0.0.0/4) and IPv4-mapped addresses; the gateway address of a managed bridge
   and the network (and IPv4 broadcast) address of a gateway's subnet; anything overlapping a
   deny prefix; anything not inside an allow prefix.
   allowed: by the longest allow prefix that contains it (named in the Exposure's rule).
5. Conflicts. When the allowed claims of one prefix disagree on what the node must do (another
   bridge, neighbour MAC or next hop; e.g. two ports on this node claiming one IP), every one
   of them is refused: choosing one could hijack the other's traffic, and nothing says which
   is right. Claims that agree (an address listed twice) are merged, each keeping its Exposure.
6. Output. One HostRoute per allowed prefix, one Neighbour per allowed prefix with a MAC, one
   Exposure per (prefix, port), and a Refusal for everything refused; sets, or sorted tuples.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ovn_fabric.config import PrefixRule, Settings, unusable_hosts
from ovn_fabric.model import (
    BridgeSetup,
    DesiredState,
    EgressFlow,
    Exposure,
    HostRoute,
    IPAddress,
    IPNetwork,
    Neighbour,
    Reason,
    Refusal,
)
from ovn_fabric.ovn.view import OvnView, PortBinding, parse_address_entry

# Addresses no workload may ever claim, whatever the exposure policy allows.
ALWAYS_REFUSED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(prefix), why) for prefix, why in (
        ("0.0.0.0/32", "the unspecified address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "the broadcast address"),
        ("240.0.0.0/4", "a reserved address (240.0.0.0/4)"),
        ("::/128", "the unspecified address"),
        ("::1/128", "a loopback address"),
        ("fe80::/10", "a link-local address"),
        ("ff00::/8", "a multicast address"),
        ("::ffff:0:0/96", "an IPv4-mapped IPv6 address"),
    )
)


@dataclass(frozen=True, slots=True)
class ServedNetwork:
    """A provider network this node serves: traffic of its local ports is routed on `bridge`."""

    datapath: str                 # Datapath_Binding UUID
    name: str                     # for people: Neutron's name, else the switch name
    localnet: str                 # the localnet port's logical_port ("provnet-<segment>")
    bridge: str
    vlan: int | None


@dataclass(frozen=True, slots=True)
class Claim:
    """A workload's wish to be reachable at `prefix` through `bridge` of this node."""

    prefix: IPNetwork
    token: str                    # the address as seen in OVN, for refusals
    bridge: str
    mac: str | None               # neighbour entry to add (None for a prefix behind a next hop)
    via: IPAddress | None
    reason: Reason
    port: str
    network: str


@dataclass(frozen=True, slots=True)
class Context:
    """What every workload function reads."""

    view: OvnView
    settings: Settings
    networks: tuple[ServedNetwork, ...]
    bindings_by_datapath: Mapping[str, tuple[PortBinding, ...]]

    def bindings_on(self, network: ServedNetwork) -> tuple[PortBinding, ...]:
        return self.bindings_by_datapath.get(network.datapath, ())


@dataclass(slots=True)
class Draft:
    """What one plan() call has found so far; workload functions add to it."""

    claims: list[Claim] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    flows: set[EgressFlow] = field(default_factory=set)
    bridges: set[BridgeSetup] = field(default_factory=set)

    def refuse(self, what: str, port: str, why: str) -> None:
        self.refusals.append(Refusal(what=what, port=port, why=why))


Workload = Callable[[Context, Draft], None]


def plan(view: OvnView, settings: Settings) -> DesiredState:
    """Everything this node must have for the workloads it carries."""
    draft = Draft()
    networks = served_networks(view, settings, draft)
    context = Context(view=view, settings=settings, networks=networks,
                      bindings_by_datapath=_bindings_by_datapath(view.port_bindings))
    add_network_plumbing(context, draft)
    for workload in WORKLOADS:
        workload(context, draft)
    return resolve(draft, ExposureGate.from_settings(settings))


# --- rules 1 and 2: provider networks ----------------------------------------------------------


def served_networks(view: OvnView, settings: Settings, draft: Draft) -> tuple[ServedNetwork, ...]:
    names = {datapath.uuid: datapath.name for datapath in view.datapaths}
    localnets: dict[str, list[tuple[PortBinding, str]]] = defaultdict(list)
    for binding in view.port_bindings:
        if binding.type != "localnet" or binding.datapath is None:
            continue
        bridge = view.bridge_mappings.get(binding.options.get("network_name", ""))
        if bridge is not None and settings.bridge(bridge) is not None:
            localnets[binding.datapath].append((binding, bridge))
    networks = []
    for datapath, found in sorted(localnets.items()):
        name = names.get(datapath, datapath)
        if len(found) > 1:
            draft.refuse(name, ", ".join(sorted(b.logical_port for b, _ in found)),
                         "several localnet ports of this network are mapped on this node; "
                         "serving none of them")
            continue
        localnet, bridge = found[0]
        networks.append(ServedNetwork(datapath=datapath, name=name,
                                      localnet=localnet.logical_port, bridge=bridge,
                                      vlan=localnet.tag))
    return tuple(networks)


def add_network_plumbing(context: Context, draft: Draft) -> None:
    """The egress flow of every served network and the setup of every bridge that serves one."""
    for network in context.networks:
        patch_port = f"patch-{network.localnet}-to-{context.view.integration_bridge}"
        draft.flows.add(EgressFlow(bridge=network.bridge, patch_port=patch_port,
                                   vlan=network.vlan))
        bridge = context.settings.bridge(network.bridge)
        gateways = bridge.gateway_texts() if bridge is not None else ()
        draft.bridges.add(BridgeSetup(bridge=network.bridge, gateways=gateways))


# --- rule 3: workloads -------------------------------------------------------------------------


def add_provider_ports(context: Context, draft: Draft) -> None:
    """VM ports (type "") bound to this chassis on a served provider network: every address of
    their `mac` column, reachable on the network's bridge with a neighbour entry for its MAC."""
    local = context.view.local_chassis
    for network in context.networks:
        for binding in context.bindings_on(network):
            if binding.type != "" or not local or binding.chassis != local:
                continue
            if binding.up is False:
                continue
            for entry in binding.mac:
                parsed = parse_address_entry(entry)
                for token, why in parsed.rejected:
                    draft.refuse(token, binding.logical_port, why)
                for address in parsed.addresses:
                    draft.claims.append(Claim(
                        prefix=ipaddress.ip_network(address.ip), token=address.token,
                        bridge=network.bridge, mac=parsed.mac, via=None,
                        reason=Reason.PROVIDER_PORT, port=binding.logical_port,
                        network=network.name,
                    ))


# Each kind of workload, in no particular order (the result does not depend on it). Routers,
# floating IPs, load balancers, virtual ports and live migration are added here as they come.
WORKLOADS: tuple[Workload, ...] = (add_provider_ports,)


# --- rule 4: the exposure policy ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Allowed:
    rule: str


@dataclass(frozen=True, slots=True)
class Refused:
    why: str


@dataclass(frozen=True, slots=True)
class Span:
    """A prefix as the range of addresses it covers: cheap to compare, whatever the family."""

    version: int
    first: int
    last: int

    @classmethod
    def of(cls, prefix: IPNetwork) -> Span:
        return cls(prefix.version, int(prefix.network_address), int(prefix.broadcast_address))

    def overlaps(self, other: Span) -> bool:
        return (self.version == other.version
                and self.first <= other.last and other.first <= self.last)

    def within(self, other: Span) -> bool:
        return (self.version == other.version
                and other.first <= self.first and self.last <= other.last)


@dataclass(frozen=True, slots=True)
class ExposureGate:
    """The exposure policy of the settings, ready to judge prefixes."""

    refused: tuple[tuple[Span, str], ...]          # special addresses, first match wins
    deny: tuple[tuple[Span, PrefixRule], ...]
    allow: tuple[PrefixRule, ...]                  # as in the settings
    longest_first: tuple[tuple[Span, PrefixRule], ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> ExposureGate:
        refused = list(ALWAYS_REFUSED)
        for bridge in settings.bridges:
            for gateway in bridge.gateways:
                refused.append((ipaddress.ip_network(gateway.ip),
                                f"the gateway address of bridge {bridge.name}"))
                for host in unusable_hosts(gateway.network):
                    kind = "network" if host == gateway.network.network_address else "broadcast"
                    refused.append((ipaddress.ip_network(host),
                                    f"the {kind} address of {gateway.network} "
                                    f"(bridge {bridge.name})"))
        allow = settings.exposure.allow
        longest_first = sorted(allow, key=lambda rule: -rule.prefix.prefixlen)
        return cls(
            refused=tuple((Span.of(prefix), why) for prefix, why in refused),
            deny=tuple((Span.of(rule.prefix), rule) for rule in settings.exposure.deny),
            allow=allow,
            longest_first=tuple((Span.of(rule.prefix), rule) for rule in longest_first),
        )

    def judge(self, prefix: IPNetwork) -> Allowed | Refused:
        if prefix.prefixlen == 0:
            return Refused("the default route")
        span = Span.of(prefix)
        for refused, why in self.refused:
            if span.overlaps(refused):
                return Refused(why)
        for denied, rule in self.deny:
            if span.overlaps(denied):
                return Refused(f"inside the denied prefix {rule}")
        for allowed, rule in self.longest_first:
            if span.within(allowed):
                return Allowed(f"allow {rule}")
        in_family = [str(rule.prefix) for rule in self.allow
                     if rule.prefix.version == prefix.version]
        if not in_family:
            return Refused(f"no IPv{prefix.version} prefix is allowed")
        return Refused(f"outside the allowed prefixes ({', '.join(in_family)})")


# --- rules 5 and 6: conflicts and the result ---------------------------------------------------


def resolve(draft: Draft, gate: ExposureGate) -> DesiredState:
    refusals = set(draft.refusals)
    allowed: dict[IPNetwork, list[tuple[Claim, str]]] = defaultdict(list)
    verdicts: dict[IPNetwork, Allowed | Refused] = {}
    for claim in draft.claims:
        verdict = verdicts.get(claim.prefix)
        if verdict is None:
            verdict = verdicts[claim.prefix] = gate.judge(claim.prefix)
        if isinstance(verdict, Refused):
            refusals.add(Refusal(what=claim.token, port=claim.port, why=verdict.why))
        else:
            allowed[claim.prefix].append((claim, verdict.rule))

    routes: set[HostRoute] = set()
    neighbours: set[Neighbour] = set()
    exposures: set[Exposure] = set()
    for prefix, claims in allowed.items():
        outcomes = {(claim.bridge, claim.mac, claim.via) for claim, _ in claims}
        if len(outcomes) > 1:
            why = _conflict(claim for claim, _ in claims)
            refusals.update(Refusal(what=claim.token, port=claim.port, why=why)
                            for claim, _ in claims)
            continue
        bridge, mac, via = outcomes.pop()
        routes.add(HostRoute(dst=prefix, dev=bridge, via=via))
        if mac is not None:
            neighbours.add(Neighbour(ip=prefix.network_address, mac=mac, dev=bridge))
        exposures.update(Exposure(prefix=prefix, reason=claim.reason, port=claim.port,
                                  network=claim.network, rule=rule) for claim, rule in claims)

    return DesiredState(
        routes=frozenset(routes),
        neighbours=frozenset(neighbours),
        flows=frozenset(draft.flows),
        bridges=frozenset(draft.bridges),
        exposures=tuple(sorted(exposures, key=_exposure_order)),
        refusals=tuple(sorted(refusals)),
    )


def _conflict(claims: Iterable[Claim]) -> str:
    claimants = sorted({
        f"{claim.port} ({claim.mac or 'no MAC'} on {claim.bridge}"
        + (f" via {claim.via})" if claim.via else ")")
        for claim in claims
    })
    return f"claimed differently on this node by {', '.join(claimants)}; refusing all of them"


def _exposure_order(exposure: Exposure) -> tuple[int, int, int, str, str, str, str]:
    prefix = exposure.prefix
    return (prefix.version, int(prefix.network_address), prefix.prefixlen, exposure.reason,
            exposure.port, exposure.network, exposure.rule)


def _bindings_by_datapath(
    bindings: Iterable[PortBinding],
) -> dict[str, tuple[PortBinding, ...]]:
    grouped: dict[str, list[PortBinding]] = defaultdict(list)
    for binding in bindings:
        if binding.datapath is not None:
            grouped[binding.datapath].append(binding)
    return {datapath: tuple(found) for datapath, found in grouped.items()}
