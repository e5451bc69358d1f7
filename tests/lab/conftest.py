"""Fixtures that build real labs (FRR, OVS, OVN in network namespaces) and always remove them.

A lab is expensive (~10 s), so the three-rack lab is shared by the whole session; tests that
break something restore it before they return. A module whose tests change the lab more than
that gets its own, `lab`, named by the module's PREFIX. Every fixture removes its lab even when the
tests fail, and removes a leftover lab of the same prefix (from a killed run) before building.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ovn_fabric.lab import lab as labmod
from ovn_fabric.lab.fabric import require_binaries

THREE_RACK_PREFIX = "oft"


def _require_root_and_daemons() -> None:
    if os.geteuid() != 0:
        pytest.fail("the lab tests need root (network namespaces, FRR, OVS)")
    try:
        require_binaries()
    except FileNotFoundError as exc:
        pytest.fail(str(exc))


def built_lab(topology: str, prefix: str) -> Iterator[labmod.Lab]:
    """A lab for a fixture to yield: fails loudly without root or a daemon, removes a leftover
    of a killed run first, and is always removed afterwards."""
    _require_root_and_daemons()
    labmod.down(prefix)
    try:
        yield labmod.up(topology, prefix, print)
    finally:
        labmod.down(prefix)


@pytest.fixture(scope="module")
def lab(request: pytest.FixtureRequest) -> Iterator[labmod.Lab]:
    """A three-rack lab of the test module's own, named by the module's PREFIX, for modules
    whose tests change it too much to share the session's."""
    prefix = getattr(request.module, "PREFIX", None)
    if not isinstance(prefix, str):
        pytest.fail(f"{request.module.__name__} uses the `lab` fixture but has no PREFIX")
    yield from built_lab("three-rack", prefix)


@pytest.fixture(scope="session")
def three_rack() -> Iterator[labmod.Lab]:
    yield from built_lab("three-rack", THREE_RACK_PREFIX)
