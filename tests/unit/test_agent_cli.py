"""The agent's command line on bad input: a clear message naming the file and key, exit 2,
no traceback."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

from ovn_fabric.agent.main import FULL_COLLECTION_AFTER, tune_gc


def _agent(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ovn_fabric.cli", "agent", "--config",
                           str(config)], capture_output=True, text=True, check=False, timeout=30)


def test_broken_config_names_the_offending_key(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[bridges.br-ex]\ngateways = ["172.24.4.1/24", "not-an-address"]\n')
    result = _agent(config)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"ovn-fabric agent: {config}: bridges.br-ex.gateways[1]: 'not-an-address' is not an "
        "address/prefix")


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("[bridges.br-ex\n")
    result = _agent(config)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert str(config) in result.stderr
    missing = _agent(tmp_path / "nope.toml")
    assert missing.returncode == 2
    assert "nope.toml" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_the_agent_makes_full_collections_rarer_and_keeps_the_young_thresholds() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == (before[0], before[1], FULL_COLLECTION_AFTER)
        assert before[2] < FULL_COLLECTION_AFTER
    finally:
        gc.set_threshold(*before)
