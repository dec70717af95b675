"""Reconciliation of a local federation, read straight from every node's database.

The same checks the oversight node will run over signed snapshots (issue 5), fed here from
each registry's tables: its blocks, its own issuances, its totals (summed by the database, an
aggregation independent of the block stream) and its unsettled transfers, aged on this machine's
clock. Meant for a federation at rest (the end of a scenario, the demo): the reads of two
registries are not taken at one moment.
"""

from __future__ import annotations

from datetime import UTC, datetime

from regfed.reconciliation import (
    Block,
    IssuanceRange,
    ReconciliationResult,
    RegistrySnapshot,
    UnsettledTransfer,
    reconcile,
)

from .audit import read_queries
from .federation import Federation

_UNIT = "issuer, program, unit_type, vintage, start_serial, end_serial"


def reconcile_local(
    federation: Federation, *, settlement_limit_s: float = 86_400.0
) -> ReconciliationResult:
    return reconcile(
        [_snapshot(federation, code) for code in federation.registries],
        settlement_limit_s=settlement_limit_s,
    )


def _snapshot(federation: Federation, code: str) -> RegistrySnapshot:
    # One read of the registry (one transaction), so its blocks and its totals agree.
    block_rows, issuance_rows, total_rows, unsettled_rows = read_queries(
        federation,
        code,
        f"SELECT {_UNIT}, state, transfer_id FROM blocks",
        f"SELECT {_UNIT} FROM issuances",
        "SELECT issuer, program, unit_type, vintage, state, "
        "SUM(end_serial - start_serial + 1) AS quantity FROM blocks "
        "GROUP BY issuer, program, unit_type, vintage, state",
        "SELECT transfer_id, side, status, peer, created_at FROM transfers "
        "WHERE NOT settled AND side IN ('source', 'destination')",
    )
    # Sorted here, not by the database: a PostgreSQL collation may order text otherwise than
    # the sweep, which refuses a stream out of order.
    blocks = sorted(
        Block(
            r.issuer,
            r.program,
            r.unit_type,
            r.vintage,
            r.start_serial,
            r.end_serial,
            code,
            r.state,
            r.transfer_id,
        )
        for r in block_rows
    )
    issuances = sorted(
        IssuanceRange(r.issuer, r.program, r.unit_type, r.vintage, r.start_serial, r.end_serial)
        for r in issuance_rows
    )
    totals = {
        (r.issuer, r.program, r.unit_type, r.vintage, r.state): int(r.quantity) for r in total_rows
    }
    now = datetime.now(UTC)
    unsettled = [
        UnsettledTransfer(r.transfer_id, r.side, r.status, r.peer, _age(r.created_at, now))
        for r in unsettled_rows
    ]
    return RegistrySnapshot(code, iter(blocks), iter(issuances), totals, unsettled)


def _age(created_at: str, now: datetime) -> float:
    created = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return max(0.0, (now - created).total_seconds())
