"""A test-only hook: pause a reconciliation run between two registries' reads.

Armed only with ``REGFED_TEST_CRASH_HOOKS=1`` (the switch of every test hook, see
:mod:`regfed.gateway.crash`) and ``REGFED_TEST_RECONCILE_PAUSE=DIR``. For each registry whose
file ``DIR/hold-<CODE>`` exists, once that registry's consistent read has begun the run writes
``DIR/read-<CODE>`` and waits for ``DIR/go-<CODE>``: a test can then settle a transfer between
two registries' reads, deterministically, and check that the run explains it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from regfed.gateway.crash import ARM

PAUSE_DIR = "REGFED_TEST_RECONCILE_PAUSE"
PAUSE_LIMIT_S = 120.0


def pause_between_reads() -> Callable[[str], None] | None:
    folder = os.environ.get(PAUSE_DIR) if os.environ.get(ARM) == "1" else None
    if not folder:
        return None
    where = Path(folder)

    def pause(code: str) -> None:
        if not (where / f"hold-{code}").exists():
            return
        (where / f"read-{code}").write_text(f"{time.time()!r}\n")
        deadline = time.monotonic() + PAUSE_LIMIT_S
        while not (where / f"go-{code}").exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {where / f'go-{code}'} within {PAUSE_LIMIT_S:g} s")
            time.sleep(0.02)

    return pause
