"""Reconciliation's checks on a real federation after a scenario: clean as the scenario leaves
it, and naming the exact block when one registry's table is tampered with afterwards."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from regfed.local import Federation
from regfed.local.reconcile import reconcile_local
from regfed.scenario import load_scenario, run_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def test_a_block_copied_into_another_registry_is_named(tmp_path: Path) -> None:
    outcome = run_scenario(load_scenario(SCENARIOS / "01-tour.json"), lambda _: None, keep=tmp_path)
    assert outcome["ok"], outcome["invariants"]
    federation = Federation.load(tmp_path / "federation" / "federation.json")
    assert reconcile_local(federation).clean

    with sqlite3.connect(tmp_path / "federation" / "PA" / "registry.db") as pa:
        issuer, program, unit_type, vintage, start, _end = pa.execute(
            "SELECT issuer, program, unit_type, vintage, start_serial, end_serial FROM blocks "
            "WHERE state = 'held' ORDER BY start_serial LIMIT 1"
        ).fetchone()
    with sqlite3.connect(tmp_path / "federation" / "NY" / "registry.db") as ny:
        account = ny.execute("SELECT MIN(id) FROM accounts").fetchone()[0]
        ny.execute(
            "INSERT INTO blocks (issuer, program, unit_type, vintage, start_serial, end_serial, "
            "account_id, state, version) VALUES (?, ?, ?, ?, ?, ?, ?, 'held', 1)",
            (issuer, program, unit_type, vintage, start, start + 4, account),
        )

    result = reconcile_local(federation)
    kinds = {str(d.kind) for d in result.discrepancies}
    assert "SERIAL_IN_TWO_PLACES" in kinds, result.to_dict()
    overlap = next(d for d in result.discrepancies if str(d.kind) == "SERIAL_IN_TWO_PLACES")
    assert set(overlap.registries) == {"PA", "NY"}
    assert (overlap.issuer, overlap.vintage, overlap.start, overlap.end) == (
        issuer,
        vintage,
        start,
        start + 4,
    )
    assert "SUPPLY_NOT_CONSERVED" in kinds  # five units more than PA issued
