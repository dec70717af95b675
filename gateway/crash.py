"""Crash hooks for the crash matrix: compiled in, inert unless a test-only setting arms them.

``REGFED_TEST_CRASH_HOOKS=1`` arms them. The point (``<effect>:<phase>``, see
:data:`~regfed.gateway.protocol.durable.DURABLE_EFFECTS` and ``CRASH_PHASES``) where the node
kills itself with SIGKILL (no cleanup, no flush, exactly like ``kill -9``) comes from
``REGFED_CRASH_AT``, fixed at start, or from the file named by ``REGFED_CRASH_FILE``, read each
time an effect is reached, so that a scenario can arm a running node.

The same test-only switch lets a scenario move a node's protocol clock forward (to reach hold
expiry without waiting a day): ``REGFED_TEST_CLOCK_FILE`` names a file holding the offset in
seconds added to the wall clock, read at every reading of the clock.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ARM = "REGFED_TEST_CRASH_HOOKS"
POINT = "REGFED_CRASH_AT"
POINT_FILE = "REGFED_CRASH_FILE"
CLOCK_FILE = "REGFED_TEST_CLOCK_FILE"


@dataclass(frozen=True, slots=True)
class CrashHooks:
    point: str | None = None
    point_file: Path | None = None

    @classmethod
    def from_environment(cls) -> CrashHooks:
        if os.environ.get(ARM) != "1":
            return cls(None)
        file = os.environ.get(POINT_FILE)
        return cls(os.environ.get(POINT) or None, Path(file) if file else None)

    @property
    def armed(self) -> bool:
        """Whether any point can fire (a crash file can name one at any moment)."""
        return self.point is not None or self.point_file is not None

    def reach(self, effect: str | None, phase: str) -> None:
        if effect is None:
            return
        point = self.point
        if self.point_file is not None:
            with contextlib.suppress(FileNotFoundError):
                point = self.point_file.read_text().strip() or point
        if point == f"{effect}:{phase}":
            if self.point_file is not None:
                # Evidence for the runner that this death is the armed crash, and when.
                fired_marker(self.point_file).write_text(f"{point} {time.time()!r}")
            os.kill(os.getpid(), signal.SIGKILL)


def fired_marker(point_file: Path) -> Path:
    """The file a node writes just before it kills itself at the point named in ``point_file``."""
    return point_file.with_name(point_file.name + ".fired")


def protocol_clock() -> Callable[[], float]:
    """The wall clock, or in a test run with a clock file, the wall clock plus its offset."""
    file = os.environ.get(CLOCK_FILE) if os.environ.get(ARM) == "1" else None
    if not file:
        return time.time
    path = Path(file)

    def shifted() -> float:
        try:
            offset = float(path.read_text().strip() or 0)
        except FileNotFoundError:
            offset = 0.0
        return time.time() + offset

    return shifted
