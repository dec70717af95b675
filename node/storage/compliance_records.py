"""Emissions recorded per source, program and control period, and the compliance deductions
made against them."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.engine import Row

from ..domain.compliance import Emissions
from . import schema as t
from .journal_records import canonical_json


class ComplianceRecords:
    """The emissions and deductions tables, on one open transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def emissions(self, account_id: int, program: str, period: str) -> int | None:
        record = self.emissions_record(account_id, program, period)
        return None if record is None else record.amount

    def emissions_record(self, account_id: int, program: str, period: str) -> Emissions | None:
        e = t.emissions
        row = self.conn.execute(
            select(e.c.tons, e.c.mwh, e.c.standard).where(
                e.c.account_id == account_id, e.c.program == program, e.c.period == period
            )
        ).first()
        return None if row is None else Emissions(row.tons, row.mwh, row.standard)

    def set_emissions(
        self, account_id: int, program: str, period: str, record: Emissions, seq: int
    ) -> None:
        e = t.emissions
        where = (e.c.account_id == account_id, e.c.program == program, e.c.period == period)
        values = {"tons": record.amount, "mwh": record.mwh, "standard": record.standard}
        if self.emissions(account_id, program, period) is None:
            self.conn.execute(
                insert(e).values(
                    account_id=account_id, program=program, period=period, seq=seq, **values
                )
            )
        else:
            self.conn.execute(update(e).where(*where).values(seq=seq, **values))

    def emitters(self, program: str, period: str) -> list[tuple[int, int]]:
        return [(i, record.amount) for i, record in self.emission_records(program, period)]

    def emission_records(self, program: str, period: str) -> list[tuple[int, Emissions]]:
        e = t.emissions
        rows = self.conn.execute(
            select(e.c.account_id, e.c.tons, e.c.mwh, e.c.standard)
            .where(e.c.program == program, e.c.period == period)
            .order_by(e.c.account_id)
        )
        return [(r.account_id, Emissions(r.tons, r.mwh, r.standard)) for r in rows]

    def surrendered_by_type(self, account_id: int, program: str, period: str) -> dict[str, int]:
        """Units deducted so far for the period, per unit type (rows from before credits
        existed deducted allowances only)."""
        d = t.deductions
        rows = self.conn.execute(
            select(d.c.deducted, d.c.by_type).where(
                d.c.account_id == account_id, d.c.program == program, d.c.period == period
            )
        )
        totals: dict[str, int] = {}
        for row in rows:
            counts = json.loads(row.by_type) if row.by_type else {"allowance": row.deducted}
            for unit_type, n in counts.items():
                totals[unit_type] = totals.get(unit_type, 0) + int(n)
        return totals

    def insert_deduction(
        self,
        seq: int,
        *,
        account_id: int,
        program: str,
        period: str,
        obligation: int,
        deducted: int,
        shortfall: int,
        by_type: dict[str, int] | None = None,
    ) -> None:
        self.conn.execute(
            insert(t.deductions).values(
                seq=seq,
                account_id=account_id,
                program=program,
                period=period,
                obligation=obligation,
                deducted=deducted,
                shortfall=shortfall,
                by_type=canonical_json(by_type) if by_type else None,
            )
        )

    def rows(self) -> list[Row[Any]]:
        e, d = t.emissions, t.deductions
        surrendered = (
            select(func.coalesce(func.sum(d.c.deducted), 0))
            .where(
                d.c.account_id == e.c.account_id,
                d.c.program == e.c.program,
                d.c.period == e.c.period,
            )
            .scalar_subquery()
        )
        return list(
            self.conn.execute(
                select(
                    e.c.account_id,
                    e.c.program,
                    e.c.period,
                    e.c.tons,
                    e.c.mwh,
                    e.c.standard,
                    surrendered.label("surrendered"),
                ).order_by(e.c.program, e.c.period, e.c.account_id)
            )
        )
