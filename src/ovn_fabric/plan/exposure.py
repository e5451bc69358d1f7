"""Rule 4, the exposure policy: which prefixes may ever be advertised (module docstring of
ovn_fabric.plan). Pure."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ovn_fabric.config import PrefixRule, Settings, unusable_hosts
from ovn_fabric.model import (
    IPNetwork,
)

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

    @classmethod
    def of_slot(cls, slot: tuple[int, int, int]) -> Span:
        """The span of a prefix given as (version, first address, length): integer arithmetic
        only (a network's broadcast_address costs far more the first time it is asked)."""
        version, first, length = slot
        return cls(version, first, first + (1 << ((32 if version == 4 else 128) - length)) - 1)

    def overlaps(self, other: Span) -> bool:
        return (self.version == other.version
                and self.first <= other.last and other.first <= self.last)

    def within(self, other: Span) -> bool:
        return (self.version == other.version
                and other.first <= self.first and self.last <= other.last)


# (first address, last address, verdict) of a prefix that ExposureGate checks against.
_Checks = tuple[tuple[int, int, "Allowed | Refused"], ...]


@dataclass(frozen=True, slots=True)
class ExposureGate:
    """The exposure policy of the settings, ready to judge prefixes."""

    refused: tuple[tuple[Span, str], ...]          # special addresses, first match wins
    deny: tuple[tuple[Span, PrefixRule], ...]
    allow: tuple[PrefixRule, ...]                  # as in the settings
    longest_first: tuple[tuple[Span, PrefixRule], ...]
    # verdicts given so far, by prefix (judging is pure; a gate lives as long as its settings)
    verdicts: dict[tuple[int, int, int], Allowed | Refused] = field(
        default_factory=dict, compare=False, hash=False, repr=False)
    # refused, deny and longest_first per IP version, in their order, as (first address, last
    # address, the verdict a prefix gets there): what judge() walks (~2x faster than Spans)
    _checks: dict[int, tuple[_Checks, _Checks, _Checks]] = field(
        init=False, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        checks = {}
        for version in (4, 6):
            checks[version] = (
                tuple((span.first, span.last, Refused(why))
                      for span, why in self.refused if span.version == version),
                tuple((span.first, span.last, Refused(f"inside the denied prefix {rule}"))
                      for span, rule in self.deny if span.version == version),
                tuple((span.first, span.last, Allowed(f"allow {rule}"))
                      for span, rule in self.longest_first if span.version == version),
            )
        object.__setattr__(self, "_checks", checks)

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

    def judge_slot(self, slot: tuple[int, int, int], prefix: IPNetwork) -> Allowed | Refused:
        """judge(prefix), remembered under `slot` (the prefix's (version, first, length))."""
        verdict = self.verdicts.get(slot)
        if verdict is None:
            verdict = self.verdicts[slot] = self.judge(prefix, Span.of_slot(slot))
        return verdict

    def judge(self, prefix: IPNetwork, span: Span | None = None) -> Allowed | Refused:
        if prefix.prefixlen == 0:
            return Refused("the default route")
        span = span or Span.of(prefix)
        first, last = span.first, span.last
        refused, denied, allowed = self._checks[span.version]
        for low, high, verdict in refused:          # overlaps: the first in order wins
            if low <= last and first <= high:
                return verdict
        for low, high, verdict in denied:
            if low <= last and first <= high:
                return verdict
        for low, high, allowed_verdict in allowed:  # within: the longest allowed prefix
            if low <= first and last <= high:
                return allowed_verdict
        in_family = [str(rule.prefix) for rule in self.allow
                     if rule.prefix.version == prefix.version]
        if not in_family:
            return Refused(f"no IPv{prefix.version} prefix is allowed")
        return Refused(f"outside the allowed prefixes ({', '.join(in_family)})")
