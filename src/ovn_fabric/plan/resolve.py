"""Rules 5 and 6: claims judged by the exposure gate, conflicts refused, the DesiredState built;
and PlanMemo, which lets a pass reuse the previous one's work on unchanged claims. Pure."""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace

from ovn_fabric.config import Settings
from ovn_fabric.model import (
    BridgeSetup,
    DesiredState,
    EgressFlow,
    Exposure,
    HostRoute,
    IPNetwork,
    Neighbour,
    Refusal,
)
from ovn_fabric.plan.draft import (
    Claim,
    Draft,
)
from ovn_fabric.plan.exposure import ExposureGate, Refused

Slot = tuple[int, int, int]          # a prefix as (version, first address, length): hashed in C


def _slot(prefix: IPNetwork) -> Slot:
    return prefix.version, int(prefix.network_address), prefix.prefixlen


@dataclass(frozen=True, slots=True)
class Resolved:
    """What one claim resolves to on its own: refused, or the route, neighbour and exposure it
    gives if no other claim of its prefix disagrees."""

    claim: Claim
    gate: ExposureGate
    slot: Slot
    refusal: Refusal | None
    outcome: Outcome | None

    @classmethod
    def of(cls, claim: Claim, gate: ExposureGate) -> Resolved:
        slot = _slot(claim.prefix)
        verdict = gate.judge_slot(slot, claim.prefix)
        if isinstance(verdict, Refused):
            return cls(claim, gate, slot, Refusal(what=claim.token, port=claim.port,
                                                  why=verdict.why), None)
        exposure = Exposure(prefix=claim.prefix, reason=claim.reason, port=claim.port,
                            network=claim.network, rule=verdict.rule)
        return cls(claim, gate, slot, None, Outcome.of(
            HostRoute(dst=claim.prefix, dev=claim.bridge, via=claim.via,
                      draining=claim.draining),
            Neighbour(ip=claim.prefix.network_address, mac=claim.mac, dev=claim.bridge)
            if claim.mac is not None else None, [exposure]))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one allowed prefix puts in the desired state."""

    route: HostRoute
    neighbour: Neighbour | None
    exposures: tuple[tuple[ExposureKey, Exposure], ...]      # sorted by key

    @classmethod
    def of(cls, route: HostRoute, neighbour: Neighbour | None,
           exposures: Iterable[Exposure]) -> Outcome:
        return cls(route, neighbour, tuple(sorted((_exposure_order(e), e)
                                                  for e in set(exposures))))


class PlanMemo:
    """What plan() keeps from one call to the next (not thread-safe: one call at a time).

    - the exposure gate of the settings, and its verdict on each prefix;
    - each claim's resolution, by identity: unchanged ports give the very same Claim objects
      (`_mac_column_claims` is cached), so their route, neighbour and exposure objects are
      reused. The memo holds each claim it remembers, so an id is never reused meanwhile.
      Claims resolved ahead (`prospect`: ports about to be bound here) are kept the same way;
    - the previous result, per prefix: the new sets are the previous ones minus what changed
      plus what is new (Python keeps each element's hash in a set: only changed elements are
      hashed again), and the exposures are re-sorted only where they changed.
    A memo never changes the result: plan(view, settings, memo) == plan(view, settings)."""

    __slots__ = ("_counts", "_current", "_gate", "_keyed", "_outcomes", "_previous", "_result",
                 "_settings")

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._gate: ExposureGate | None = None
        self._previous: dict[int, Resolved] = {}
        self._current: dict[int, Resolved] = {}
        self._outcomes: dict[Slot, Outcome] = {}
        self._result: DesiredState | None = None
        self._keyed: list[tuple[ExposureKey, Exposure]] = []     # the result's exposures
        self._counts: Counts = (0, 0, 0)                          # _counts(self._outcomes)

    def gate(self, settings: Settings) -> ExposureGate:
        if self._gate is None or settings is not self._settings:
            self._settings, self._gate = settings, ExposureGate.from_settings(settings)
        return self._gate

    def resolved(self, claims: Iterable[Claim], gate: ExposureGate) -> list[Resolved]:
        """Each claim's resolution, the previous call's where it is the same claim and gate.
        (One call for all claims, with the lookups in local variables: at 3,000 claims a
        method call per claim was a tenth of a bind's plan.)"""
        previous, current = self._previous, self._current
        found = []
        for claim in claims:
            key = id(claim)
            kept = previous.get(key)
            if kept is None or kept.claim is not claim or kept.gate is not gate:
                kept = Resolved.of(claim, gate)
            current[key] = kept
            found.append(kept)
        return found

    def prospect(self, claims: Iterable[Claim], gate: ExposureGate) -> None:
        """Resolve `claims` now, and keep them for the next call, without planning them: the
        claims a bind will bring (plan/workloads.py prospective_claims). At 3,000 ports bound
        in one transaction, this work (parsing their addresses, judging them) was a third of
        the bind's plan."""
        self.resolved(claims, gate)

    def done(self, outcomes: dict[Slot, Outcome], built: Built) -> None:
        self._previous, self._current = self._current, {}
        self._outcomes = outcomes
        self._result, self._keyed, self._counts = built

    def result_for(self, outcomes: dict[Slot, Outcome], draft: Draft, refusals: set[Refusal]
                   ) -> Built:
        """The desired state of `outcomes` (with its exposures' sort keys, and the counts of
        `outcomes`), built from the previous one where it can be."""
        previous = self._result
        flows, bridges = frozenset(draft.flows), frozenset(draft.bridges)
        ordered_refusals = tuple(sorted(refusals))
        if previous is None:
            return _state_of(outcomes, flows, bridges, ordered_refusals)
        old = self._outcomes
        gone = [o for slot, o in old.items() if outcomes.get(slot) is not o]
        new = [o for slot, o in outcomes.items() if old.get(slot) is not o]
        if len(gone) + len(new) > len(outcomes) // 4 + 16:
            return _state_of(outcomes, flows, bridges, ordered_refusals)
        if not gone and not new and (flows, bridges, ordered_refusals) == (
                previous.flows, previous.bridges, previous.refusals):
            return previous, self._keyed, self._counts
        routes = previous.routes.difference([o.route for o in gone]).union(
            [o.route for o in new])
        neighbours = previous.neighbours.difference(
            [o.neighbour for o in gone if o.neighbour is not None]).union(
            [o.neighbour for o in new if o.neighbour is not None])
        keyed = list(self._keyed)
        for outcome in gone:
            for pair in outcome.exposures:
                index = bisect.bisect_left(keyed, pair[0], key=_first)
                if index < len(keyed) and keyed[index][0] == pair[0]:
                    del keyed[index]
        for outcome in new:
            for pair in outcome.exposures:
                bisect.insort(keyed, pair, key=_first)
        state = DesiredState(routes=routes, neighbours=neighbours, flows=flows,
                             bridges=bridges, exposures=tuple(e for _, e in keyed),
                             refusals=ordered_refusals)
        # _counts(outcomes), from the previous counts and what changed (not a walk of them all)
        counts = tuple(now - before + after for now, before, after in zip(
            self._counts, _counts(gone), _counts(new), strict=True))
        if (len(routes), len(neighbours), len(keyed)) != counts:
            # two prefixes gave one equal element (never expected): build it whole
            return _state_of(outcomes, flows, bridges, ordered_refusals)
        return state, keyed, (counts[0], counts[1], counts[2])


def _first(pair: tuple[ExposureKey, Exposure]) -> ExposureKey:
    return pair[0]


def _counts(outcomes: Collection[Outcome]) -> Counts:
    return (len(outcomes), sum(o.neighbour is not None for o in outcomes),
            sum(len(o.exposures) for o in outcomes))


def _state_of(outcomes: dict[Slot, Outcome], flows: frozenset[EgressFlow],
              bridges: frozenset[BridgeSetup], refusals: tuple[Refusal, ...]) -> Built:
    values = outcomes.values()
    keyed = sorted({pair[0]: pair for o in values for pair in o.exposures}.values(), key=_first)
    return DesiredState(
        routes=frozenset(o.route for o in values),
        neighbours=frozenset(o.neighbour for o in values if o.neighbour is not None),
        flows=flows,
        bridges=bridges,
        exposures=tuple(e for _, e in keyed),
        refusals=refusals,
    ), keyed, _counts(values)


def resolve(draft: Draft, gate: ExposureGate, memo: PlanMemo | None = None) -> DesiredState:
    memo = memo if memo is not None else PlanMemo()
    refusals = set(draft.refusals)
    by_slot: dict[Slot, list[Resolved]] = {}
    for resolved in memo.resolved(draft.claims, gate):
        if resolved.refusal is not None:
            refusals.add(resolved.refusal)
        elif (same := by_slot.get(resolved.slot)) is None:
            by_slot[resolved.slot] = [resolved]
        else:
            same.append(resolved)

    outcomes: dict[Slot, Outcome] = {}
    for slot, found in by_slot.items():
        outcome = found[0].outcome if len(found) == 1 else _merged(found, refusals)
        if outcome is not None:
            outcomes[slot] = outcome
    built = memo.result_for(outcomes, draft, refusals)
    memo.done(outcomes, built)
    return built[0]


def _merged(found: list[Resolved], refusals: set[Refusal]) -> Outcome | None:
    """The outcome of several allowed claims of one prefix: merged when they agree, all
    refused when they do not."""
    claims = [r.claim for r in found]
    if len({(claim.bridge, claim.mac, claim.via) for claim in claims}) > 1:
        why = _conflict(claims)
        refusals.update(Refusal(what=claim.token, port=claim.port, why=why) for claim in claims)
        return None
    first = found[0].outcome
    if first is None:              # never: `found` holds allowed claims only
        return None
    # Draining only when every claim is: another workload that still wants the address here
    # keeps it at full preference.
    route = replace(first.route, draining=all(claim.draining for claim in claims))
    return Outcome.of(route, first.neighbour,
                      (e for r in found if r.outcome is not None for _, e in r.outcome.exposures))


def _conflict(claims: Iterable[Claim]) -> str:
    claimants = sorted({
        f"{claim.port} ({claim.mac or 'no MAC'} on {claim.bridge}"
        + (f" via {claim.via})" if claim.via else ")")
        for claim in claims
    })
    return f"claimed differently on this node by {', '.join(claimants)}; refusing all of them"


ExposureKey = tuple[int, int, int, str, str, str, str]
Counts = tuple[int, int, int]     # outcomes, of which with a neighbour, their exposures
# A desired state, its exposures with their sort keys, and the counts of its outcomes.
Built = tuple[DesiredState, list[tuple[ExposureKey, Exposure]], Counts]


def _exposure_order(exposure: Exposure) -> ExposureKey:
    prefix = exposure.prefix
    return (prefix.version, int(prefix.network_address), prefix.prefixlen, exposure.reason,
            exposure.port, exposure.network, exposure.rule)
