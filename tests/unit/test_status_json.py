"""The agent's /status JSON, from a pass outcome: what `ovn-fabric status` prints."""

from __future__ import annotations

from ipaddress import ip_network

from ovn_fabric.agent.reconcile import Outcome, Trigger
from ovn_fabric.agent.status import outcome_json
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
