"""A registry's rows for the oversight views (reconciliation/views.py), from one consistent read.

Where each number comes from, so that every unit is on exactly one row of one registry:

- ``held``: held blocks, on the row of the account type holding them (quarantined ones too);
- ``escrowed``: blocks this registry holds back for an interstate transfer not yet committed;
- ``in_transit``: units of transfers this registry (the source) has committed, which left its
  blocks table at the commit, until the destination confirms the credit (the source's record is
  then settled). The destination's pinned ``incoming`` blocks are not counted anywhere: before
  the commit the source still counts them as escrowed, after it as in transit;
- ``surrendered``, ``retired``: on the row of the account type they left;
- ``issued``: the issuance table, on the row of the account they were issued into.

``credits`` counts ERCs and offsets the same way, keyed by the project category of the
provenance record covering their serials instead of by account type. ``bank`` is derived from
supply's rows (:func:`regfed.reconciliation.views.bank_of`): held, escrowed and in transit on
compliance and general accounts' rows.

One window is not exact: between the destination's credit and the source learning of it (the
settle, normally a round trip), a transfer's units are both held at the destination and in
transit at the source. A quiescent federation's figures are exact; docs/oversight.md says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import Connection

from regfed.node.domain.compliance import Emissions, obligation_of
from regfed.node.domain.programs import ProgramCatalog
from regfed.node.domain.serials import UnitBlock
from regfed.node.storage.credit_records import CreditRecords
from regfed.node.storage.store import Store
from regfed.reconciliation.views import (
    BANK,
    COMPLIANCE,
    CREDIT_UNIT_TYPES,
    CREDITS,
    FLOWS,
    IN_TRANSIT,
    SUPPLY,
    Keys,
    Values,
    View,
    bank_of,
)

from .snapshot_source import _age

BaseRows = Iterator[tuple[Keys, Values]]
_Q = "(b.end_serial - b.start_serial + 1)"
# Supply's value columns, in order, and the block state each counts.
_BLOCK_COLUMNS = {"held": 1, "escrowed": 2, "surrendered": 4, "retired": 5}
assert CREDITS.values == SUPPLY.values, "credits counts units as supply does"
#: A credit's category when no provenance record here covers its serials.
UNKNOWN = "unknown"


def _supply(conn: Connection, registry: str) -> BaseRows:
    # Surrendered and retired units sit in a state account, attributed to the account they left.
    sql = (
        "SELECT b.issuer, b.program, b.unit_type, b.vintage, a.type, b.state, "
        f"SUM({_Q}) FROM blocks b JOIN accounts a ON a.id = "
        "CASE WHEN b.state IN ('surrendered', 'retired') AND b.attributed_account_id IS NOT NULL "
        "THEN b.attributed_account_id ELSE b.account_id END "
        "WHERE b.state <> 'incoming' "
        "GROUP BY b.issuer, b.program, b.unit_type, b.vintage, a.type, b.state"
    )
    for issuer, program, unit_type, vintage, account_type, state, quantity in conn.exec_driver_sql(
        sql
    ):
        values = [0] * len(SUPPLY.values)
        values[_BLOCK_COLUMNS[state]] = int(quantity)
        yield (issuer, program, unit_type, str(vintage), registry, account_type), tuple(values)
    issued = (
        "SELECT b.issuer, b.program, b.unit_type, b.vintage, a.type, SUM("
        f"{_Q}) FROM issuances b JOIN accounts a ON a.id = b.account_id "
        "GROUP BY b.issuer, b.program, b.unit_type, b.vintage, a.type"
    )
    for issuer, program, unit_type, vintage, account_type, quantity in conn.exec_driver_sql(issued):
        values = [int(quantity), 0, 0, 0, 0, 0]
        yield (issuer, program, unit_type, str(vintage), registry, account_type), tuple(values)
    yield from _committed_unsettled(conn, registry)


def _committed_unsettled(conn: Connection, registry: str) -> BaseRows:
    """Units of committed transfers whose credit the destination has not confirmed yet."""
    for block, account_type in _unsettled_blocks(conn):
        uc = block.unit_class
        values = (0, 0, 0, block.quantity, 0, 0)
        keys = (uc.issuer, uc.program, uc.unit_type, str(uc.vintage), registry)
        yield (*keys, account_type), values


def _unsettled_blocks(conn: Connection) -> Iterator[tuple[UnitBlock, str]]:
    """Each block of a committed transfer the destination has not confirmed crediting, with
    the type of the account it left."""
    sql = (
        "SELECT t.record, a.type FROM transfers t LEFT JOIN accounts a "
        "ON a.number = t.from_account WHERE t.side = 'source' AND t.status = 'completed' "
        "AND NOT t.settled"
    )
    for record, account_type in conn.exec_driver_sql(sql):
        for body in json.loads(record)["lot"]["blocks"]:
            yield UnitBlock.from_dict(body), account_type or "unknown"


# The project category of a credit block: the provenance record (issued here, or received with
# the units) whose serials contain it. Issuances never overlap, so at most one matches.
_CATEGORY_JOIN = (
    "LEFT JOIN provenance p ON p.issuer = b.issuer AND p.program = b.program "
    "AND p.unit_type = b.unit_type AND p.vintage = b.vintage "
    "AND p.start_serial <= b.start_serial AND p.end_serial >= b.end_serial"
)
_CREDIT_TYPES = ", ".join(f"'{t}'" for t in sorted(CREDIT_UNIT_TYPES))


def _credits(conn: Connection, registry: str) -> BaseRows:
    """Supply's columns for credit unit types only, keyed by project category instead of
    account type: each credit unit on exactly one row, where supply counts it."""
    blocks = (
        "SELECT b.unit_type, b.issuer, b.program, b.vintage, p.category, b.state, "
        f"SUM({_Q}) FROM blocks b {_CATEGORY_JOIN} "
        f"WHERE b.state <> 'incoming' AND b.unit_type IN ({_CREDIT_TYPES}) "
        "GROUP BY b.unit_type, b.issuer, b.program, b.vintage, p.category, b.state"
    )
    for unit_type, issuer, program, vintage, category, state, quantity in conn.exec_driver_sql(
        blocks
    ):
        values = [0] * len(CREDITS.values)
        values[_BLOCK_COLUMNS[state]] = int(quantity)
        keys = (unit_type, issuer, program, str(vintage), registry, category or UNKNOWN)
        yield keys, tuple(values)
    issued = (
        "SELECT b.unit_type, b.issuer, b.program, b.vintage, p.category, "
        f"SUM({_Q}) FROM issuances b {_CATEGORY_JOIN} "
        f"WHERE b.unit_type IN ({_CREDIT_TYPES}) "
        "GROUP BY b.unit_type, b.issuer, b.program, b.vintage, p.category"
    )
    for unit_type, issuer, program, vintage, category, quantity in conn.exec_driver_sql(issued):
        keys = (unit_type, issuer, program, str(vintage), registry, category or UNKNOWN)
        yield keys, (int(quantity), 0, 0, 0, 0, 0)
    categories: dict[UnitBlock, str] = {}
    for block, _account_type in _unsettled_blocks(conn):
        uc = block.unit_class
        if uc.unit_type not in CREDIT_UNIT_TYPES:
            continue
        if block not in categories:
            record = CreditRecords(conn).provenance_of(block)
            categories[block] = UNKNOWN if record is None else record.category
        unit = (uc.unit_type, uc.issuer, uc.program, str(uc.vintage), registry)
        yield (*unit, categories[block]), (0, 0, 0, block.quantity, 0, 0)


def _compliance(conn: Connection, registry: str, programs: ProgramCatalog) -> BaseRows:
    sql = (
        "SELECT a.source_id, e.program, e.period, e.tons, e.mwh, e.standard, "
        "(SELECT COALESCE(SUM(d.deducted), 0) FROM deductions d WHERE d.account_id = e.account_id "
        "AND d.program = e.program AND d.period = e.period) "
        "FROM emissions e JOIN accounts a ON a.id = e.account_id"
    )
    for source, program, period, tons, mwh, standard, deducted in conn.exec_driver_sql(sql):
        obligation = obligation_of(programs, program, Emissions(int(tons), mwh, standard))
        surrendered = int(deducted)
        values = (int(tons), obligation, surrendered, max(0, obligation - surrendered))
        yield (registry, source or "", program, period), values


def _flows(conn: Connection, registry: str) -> BaseRows:
    sql = (
        "SELECT peer, SUBSTR(created_at, 1, 4), COUNT(*), SUM(quantity) FROM transfers "
        "WHERE side = 'source' AND status = 'completed' GROUP BY peer, SUBSTR(created_at, 1, 4)"
    )
    for peer, year, count, units in conn.exec_driver_sql(sql):
        yield (registry, peer, year), (int(count), int(units))


def _in_transit(conn: Connection, registry: str, now: datetime) -> BaseRows:
    sql = (
        "SELECT transfer_id, side, peer, status, quantity, created_at FROM transfers "
        "WHERE NOT settled AND side IN ('source', 'destination')"
    )
    for tid, side, peer, status, quantity, created_at in conn.exec_driver_sql(sql):
        age = int(_age(created_at, now))
        if side == "source":
            yield (tid, registry, peer, status, ""), (int(quantity), age)
        else:
            yield (tid, peer, registry, "", status), (int(quantity), age)


def base_rows(
    store: Store, view: View, *, registry: str, programs: ProgramCatalog, now: datetime
) -> list[tuple[Keys, Values]]:
    """Every row of ``view`` at this registry, from one consistent read."""
    with store.read() as tx:
        conn = tx.conn
        if view is SUPPLY:
            return list(_supply(conn, registry))
        if view is COMPLIANCE:
            return list(_compliance(conn, registry, programs))
        if view is FLOWS:
            return list(_flows(conn, registry))
        if view is IN_TRANSIT:
            return list(_in_transit(conn, registry, now))
        if view is CREDITS:
            return list(_credits(conn, registry))
        if view is BANK:
            return list(bank_of(_supply(conn, registry)))
    raise AssertionError(f"no source for view {view.name}")
