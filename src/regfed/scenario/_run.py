"""One scenario run: a fresh federation in a temporary folder, the steps, the final checks."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._databases import Databases, parse_db_choice
from ._format import Scenario
from ._runner import Runner


def run_scenario(
    scenario: Scenario,
    say: Callable[[str], None],
    keep: Path | None = None,
    db: str | None = None,
) -> dict[str, Any]:
    """The outcome as one JSON-ready object: ``ok``, ``steps``, ``holdings``, ``invariants``.

    ``keep``: run in that folder and leave it (node logs, SQLite databases) for inspection.
    ``db``: ``sqlite`` (the default) or a PostgreSQL server URL, on which one database per
    registry is created for the run and dropped after it.
    """
    server = parse_db_choice(db)
    with tempfile.TemporaryDirectory(prefix="regfed-scenario-") as temp:
        runner = Runner(scenario, keep or Path(temp), say, databases=Databases(server))
        try:
            runner.start()
            for step in scenario.steps:
                out = runner.run_step(step)
                say(_line(out))
            holdings, invariants = runner.finish()
        finally:
            runner.stop()
    steps = [{k: v for k, v in s.items() if k not in _INTERNAL} for s in runner.results]
    ok = all(s["outcome"] == "ok" for s in steps) and all(c["ok"] for c in invariants)
    return {"ok": ok, "steps": steps, "holdings": holdings, "invariants": invariants}


_INTERNAL = ("home", "peer", "expect")


def _line(out: dict[str, Any]) -> str:
    extra = "".join(
        f" {k}={out[k]}"
        for k in ("transfer_id", "status", "error", "deducted", "shortfall")
        if k in out
    )
    why = f": {out['reason']}" if out.get("reason") not in (None, out.get("error")) else ""
    return f"  [{out['index']}] {out['op']}: {out['outcome']}{extra}{why}"
