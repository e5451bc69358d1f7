"""The lab's address scopes: recorded once, and turned into agent settings that the agent's own
loader accepts (tenant networks on, the scopes listed, the tenant pools allowed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ovn_fabric import config
from ovn_fabric.lab import address_scope
from ovn_fabric.lab.neutron import NeutronError
from ovn_fabric.lab.paths import LabPaths
from ovn_fabric.lab.topology import load

BASE = '[bridges.br-ex]\ngateways = ["172.24.4.1/24", "2001:db8:24:4::1/64"]\n\n'
GATEWAYS = ["172.24.4.1/24", "2001:db8:24:4::1/64", "192.0.2.1/24"]


@pytest.fixture
def paths(tmp_path: Path) -> LabPaths:
    return LabPaths("ofu", root=tmp_path)


def test_no_scope_no_tenant_networks(paths: LabPaths) -> None:
    assert address_scope.agent_settings(paths, load("three-rack"), GATEWAYS) == []


def test_scopes_give_the_agents_tenant_networks_and_the_pools(paths: LabPaths) -> None:
    four = address_scope.add_scope(paths, "fabric4", 4)
    six = address_scope.add_scope(paths, "fabric6", 6)
    assert address_scope.list_scopes(paths) == [four, six]
    lines = address_scope.agent_settings(paths, load("three-rack"), GATEWAYS)
    settings = config.parse(BASE + "\n".join(lines))
    assert settings.tenant_networks == config.TenantNetworks(
        enabled=True, address_scopes=tuple(sorted((four.scope_id, six.scope_id))))
    assert {str(rule.prefix) for rule in settings.exposure.allow} == {
        "172.24.4.0/24", "2001:db8:24:4::/64", "192.0.2.0/24", "10.0.0.0/16", "fd00:10::/32"}


def test_a_scope_is_made_once_and_of_one_ip_version(paths: LabPaths) -> None:
    address_scope.add_scope(paths, "fabric4", 4)
    with pytest.raises(NeutronError, match="already exists"):
        address_scope.add_scope(paths, "fabric4", 4)
    with pytest.raises(NeutronError, match="IP version 4 or 6"):
        address_scope.add_scope(paths, "odd", 5)
