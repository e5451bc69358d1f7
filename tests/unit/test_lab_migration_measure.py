"""The pure parts of the live-migration measurements: lost requests and their send times
(lab/ping_log.py), and the OVSDB reference columns read from the SB (lab/migration.py)."""

from __future__ import annotations

import pytest

from ovn_fabric.lab.migration import _refs
from ovn_fabric.lab.migration_watch import joined, left, missing_since
from ovn_fabric.lab.ping_log import PingResult

A = frozenset({"leaf1a", "leaf1b"})
B = frozenset({"leaf3a", "leaf3b"})


def _ping(answered: dict[int, float], sent: int = 10) -> PingResult:
    return PingResult("192.0.2.1", sent, 0.01, answered)


def test_lost_requests_and_longest_gap() -> None:
    ping = _ping({1: 100.00, 2: 100.01, 6: 100.05, 7: 100.06, 9: 100.08, 10: 100.09})
    assert ping.lost_seqs == (3, 4, 5, 8)
    assert ping.lost == 4
    assert ping.longest_gap_ms == pytest.approx(30)


def test_a_lost_request_is_timed_from_the_answered_one_before_it() -> None:
    ping = _ping({1: 100.00, 2: 100.01, 6: 100.05})
    assert ping.send_time(4) == pytest.approx(100.03)
    assert ping.lost_between(100.02, 100.035) == 2      # requests 3 and 4
    assert _ping({5: 100.0}).send_time(2) == pytest.approx(99.97)   # none before: from after
    with pytest.raises(ValueError, match="no reply"):
        _ping({}).send_time(1)


def test_make_before_break_from_a_route_log() -> None:
    changes = [(0.0, A), (1.0, A | B), (2.0, B)]
    assert joined(changes, B, 0.5) == 1.0
    assert left(changes, A, 0.5) == 2.0
    assert missing_since(changes, 0.5) == []
    broken = [(0.0, A), (1.0, frozenset[str]()), (1.5, B)]
    assert left(broken, A, 0.5) == 1.5
    assert joined(broken, B, 0.5) == 1.5
    assert missing_since(broken, 0.5) == [1.0]


def test_ovsdb_reference_columns() -> None:
    assert _refs(["uuid", "u1"]) == ["u1"]
    assert _refs(["set", []]) == []
    assert _refs(["set", [["uuid", "u1"], ["uuid", "u2"]]]) == ["u1", "u2"]
    with pytest.raises(ValueError, match="not a reference"):
        _refs(["map", []])
