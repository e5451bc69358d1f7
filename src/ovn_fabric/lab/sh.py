"""Running commands, inside a network namespace or not, and waiting for conditions.

Every failure says what ran and what it printed, so that a failed `lab up` can tell the user
exactly which step broke.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")


class CommandError(RuntimeError):
    """A command exited with a non-zero status."""

    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        detail = (stderr or stdout).strip().splitlines()
        tail = " | ".join(detail[-3:]) if detail else "no output"
        super().__init__(f"`{' '.join(argv)}` exited {returncode}: {tail}")


class Timeout(RuntimeError):  # noqa: N818  (reads as sh.Timeout at call sites)
    """A condition did not become true before its deadline."""


def netns_argv(netns: str | None, argv: Sequence[str]) -> list[str]:
    """The argv that runs `argv` inside `netns` (or as it is when netns is None)."""
    if netns is None:
        return list(argv)
    return ["ip", "netns", "exec", netns, *argv]


def run(
    argv: Sequence[str],
    *,
    netns: str | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    input_text: str | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion and return its output; raise CommandError if it failed."""
    full = netns_argv(netns, argv)
    merged_env = {**os.environ, **env} if env else None
    proc = subprocess.run(
        full,
        capture_output=True,
        text=True,
        env=merged_env,
        input=input_text,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise CommandError(full, proc.returncode, proc.stdout, proc.stderr)
    return proc


def output(argv: Sequence[str], *, netns: str | None = None,
           env: Mapping[str, str] | None = None) -> str:
    """The standard output of a command that must succeed."""
    return run(argv, netns=netns, env=env).stdout


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> T:
    """Poll `condition` until it returns something truthy and return it.

    Raises Timeout naming `what` when the deadline passes; an exception raised by the condition
    counts as "not yet" and is quoted in the Timeout if it was the last thing seen.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = condition()
        except (CommandError, OSError, ValueError, KeyError) as exc:
            result, last_error = None, exc
        else:
            last_error = None
        if result:
            return result
        if time.monotonic() >= deadline:
            suffix = f" (last error: {last_error})" if last_error else ""
            raise Timeout(f"timed out after {timeout:.1f} s waiting for {what}{suffix}")
        time.sleep(interval)


def wait_until_fine(
    problems: Callable[[], list[str]],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
) -> None:
    """Poll `problems` until it returns an empty list; on timeout, raise Timeout naming the
    problems still seen last (the first five)."""
    last: list[str] = []

    def fine() -> bool:
        nonlocal last
        last = problems()
        return not last

    try:
        wait_until(fine, timeout=timeout, interval=interval, what=what)
    except Timeout as exc:
        raise Timeout(f"{exc}; still wrong: {'; '.join(last[:5])}") from None
