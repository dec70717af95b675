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
    assert outcomes.count(("completed", True)) == 7
    assert outcomes.count(("rejected", True)) == 1
    assert all(a["agree"] for a in federation["agreement"])
    issued = {r["issuer"]: r["issued"] for r in federation["supply"]}
    assert issued == {"NJ": 1_000, "NY": 2_000, "PA": 3_000 + 41_250}  # allowances + ERCs
    assert "supply by issuing state" in out
    # A credit's provenance followed across a state line: NJ's node names PA's project,
    # report and verifier for the ERCs the NJ plant surrendered.
    credits = federation["credits"]
    seen = credits["provenance_in_NJ"]
    assert (seen["project"], seen["report_sha256"]) == (credits["project"], credits["report"])
    assert seen["verifier"] == "VER-GREEN" and seen["issuance"]["issuer"] == "PA"
    assert (credits["compliance"]["deducted"], credits["compliance"]["shortfall"]) == (5_000, 0)
    assert "NJ's node shows the plant its surrendered ERCs' provenance" in out
