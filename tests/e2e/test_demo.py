"""The README's main job: ``regfed demo``, as a user runs it (a real process that starts three
node processes of its own)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def regfed(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "regfed.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result


def test_demo_runs_both_acts_and_every_invariant_holds() -> None:
    out = regfed("demo").stdout
    assert "demo complete: every invariant holds" in out
    assert "Compliance summary" in out and "statement of account" in out
    assert "after NJ's restart: completed and settled" in out
    data: dict[str, Any] = json.loads(regfed("demo", "--json").stdout)
    assert data["ok"] is True
    ledger = data["ledger"]
    refusals = [s["refused"]["code"] for s in ledger["steps"] if "refused" in s]
    assert refusals == ["NOT_AUTHORIZED", "INSUFFICIENT_HOLDINGS", "UNITS_NOT_HELD"]
    assert all(c["emissions"] == c["surrendered"] for c in ledger["compliance"])
    federation = data["federation"]
    assert federation["problems"] == []
    outcomes = [(t["status"], t["settled"]) for t in federation["transfers"]]
    assert outcomes.count(("completed", True)) == 6
    assert outcomes.count(("rejected", True)) == 1
    assert all(a["agree"] for a in federation["agreement"])
