"""Where a lab keeps its files and how it names its namespaces.

Everything a lab creates is named from its prefix, so that several labs coexist and `lab down`
removes exactly what its own `lab up` made: namespaces `<prefix>-<device>`, files under
`/run/ovn-fabric/<prefix>/`. Paths stay short: unix socket paths are limited to 108 bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

RUN_ROOT = Path("/run/ovn-fabric")
PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
DEFAULT_PREFIX = "of"


class PrefixError(ValueError):
    """A lab prefix that cannot be used to name namespaces and files."""


@dataclass(frozen=True, slots=True)
class LabPaths:
    """Names and directories of one lab, derived from its prefix."""

    prefix: str
    root: Path = RUN_ROOT

    def __post_init__(self) -> None:
        if not PREFIX_RE.match(self.prefix):
            raise PrefixError(
                f"lab prefix {self.prefix!r} must be 1-8 lower-case letters and digits, "
                "starting with a letter"
            )

    @property
    def lab_dir(self) -> Path:
        return self.root / self.prefix

    @property
    def state_file(self) -> Path:
        return self.lab_dir / "lab.json"

    def netns(self, device: str) -> str:
        return f"{self.prefix}-{device}"

    def vm_netns(self, vm: str) -> str:
        return f"{self.prefix}-vm-{vm}"

    def vm_dir(self, vm: str) -> Path:
        return self.lab_dir / "vms" / vm

    def device_dir(self, device: str) -> Path:
        return self.lab_dir / device

    def frr_dir(self, device: str) -> Path:
        return self.device_dir(device) / "frr"

    def ovs_dir(self, device: str) -> Path:
        return self.device_dir(device) / "ovs"

    def ovn_dir(self, device: str) -> Path:
        return self.device_dir(device) / "ovn"
