"""The agent's /status JSON, from a pass outcome: what `ovn-fabric status` prints."""

from __future__ import annotations

from ipaddress import ip_network

from ovn_fabric.agent.reconcile import Outcome, Trigger
from ovn_fabric.agent.status import Status, outcome_json
from ovn_fabric.model import DesiredState, Exposure, HostRoute, Reason, Refusal


def test_advertised_prefixes_say_why_and_whether_they_drain() -> None:
    moving, staying = ip_network("172.24.4.10/32"), ip_network("172.24.4.11/32")
    desired = DesiredState(
        routes=frozenset({HostRoute(moving, "br-ex", draining=True),
                          HostRoute(staying, "br-ex")}),
        exposures=(Exposure(moving, Reason.PROVIDER_PORT, "p1", "public", "allow a"),
                   Exposure(staying, Reason.PROVIDER_PORT, "p2", "public", "allow a")),
        refusals=(Refusal("10.255.0.1", "p3", "outside the allowed prefixes"),))

    report = outcome_json(Outcome(triggers=Trigger.OVN, planned=True, desired=desired))

    assert report["state"] == "ok"
    assert report["advertised"] == [
        {"prefix": "172.24.4.10/32", "reason": "provider-port", "port": "p1",
         "network": "public", "rule": "allow a", "draining": True},
        {"prefix": "172.24.4.11/32", "reason": "provider-port", "port": "p2",
         "network": "public", "rule": "allow a", "draining": False}]
    assert report["refused"] == [
        {"address": "10.255.0.1", "port": "p3", "why": "outside the allowed prefixes"}]


def test_before_the_first_pass_the_agent_is_starting() -> None:
    assert outcome_json(None) == {"state": "starting"}


def test_the_advertised_gauge_of_a_reason_whose_last_prefix_went_reads_zero() -> None:
    fip, port = ip_network("172.24.4.20/32"), ip_network("172.24.4.11/32")
    both = DesiredState(exposures=(
        Exposure(fip, Reason.FLOATING_IP, "p1", "public", "allow a"),
        Exposure(port, Reason.PROVIDER_PORT, "p2", "public", "allow a")))
    one = DesiredState(exposures=both.exposures[1:])
    status = Status()

    def advertised(reason: Reason) -> float | None:
        return status.metrics.registry.get_sample_value(
            "ovn_fabric_advertised_prefixes", {"reason": str(reason)})

    status.record(Outcome(triggers=Trigger.OVN, planned=True, desired=both))
    assert (advertised(Reason.FLOATING_IP), advertised(Reason.PROVIDER_PORT)) == (1, 1)
    status.record(Outcome(triggers=Trigger.OVN, planned=True, desired=one))
    assert (advertised(Reason.FLOATING_IP), advertised(Reason.PROVIDER_PORT)) == (0, 1)
