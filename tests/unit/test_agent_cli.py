"""The agent's command line on bad input: a clear message naming the file and key, exit 2,
no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


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
