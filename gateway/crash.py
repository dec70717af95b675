"""Crash hooks for the crash matrix: compiled in, inert unless a test-only setting arms them.

``REGFED_TEST_CRASH_HOOKS=1`` arms them and ``REGFED_CRASH_AT=<effect>:<phase>`` names the one
point (see :data:`~regfed.gateway.protocol.durable.DURABLE_EFFECTS` and ``CRASH_PHASES``) where
the node kills itself with SIGKILL: no cleanup, no flush, exactly like ``kill -9``.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

ARM = "REGFED_TEST_CRASH_HOOKS"
POINT = "REGFED_CRASH_AT"


@dataclass(frozen=True, slots=True)
class CrashHooks:
    point: str | None = None

    @classmethod
    def from_environment(cls) -> CrashHooks:
        if os.environ.get(ARM) != "1":
            return cls(None)
        return cls(os.environ.get(POINT) or None)

    def reach(self, effect: str | None, phase: str) -> None:
        if self.point is not None and effect is not None and self.point == f"{effect}:{phase}":
            os.kill(os.getpid(), signal.SIGKILL)
