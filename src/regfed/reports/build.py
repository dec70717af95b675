"""The public reports, made from every registry's records and the disclosure policies: a pure
function (:func:`build_publication`), no I/O.

The rules (docs/reports.md):

- a block's serials are shown only if its program's policy allows ``serials``; without them,
  the blocks one record moved of one class become one row (their quantities summed);
- an account number (a *party*) is shown only if the record's program and every program the
  account ever touched allow ``parties``; the accounts report lists an account only if every
  program it touched allows ``account_holders``. An account that touched no program yet, or
  whose registry did not answer, is judged under every program's policy;
- a retirement's reason and a client-made operation id are shown under the same rule as the
  account they belong to (people write names into them);
- the price report lists a priced transaction only if its program allows ``prices``, and never
  its serials;
- emissions and compliance results are shown per their program's ``emissions`` and
  ``compliance``.

Whatever is withheld is counted per program whose policy withheld it, never dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .catalog import REPORTS
from .credits import CREDIT_BUILDERS, check_documents
from .judge import Judge, Merged, class_cells
from .policy import PolicySet
from .records import (
    InterstateRecord,
    MovementRecord,
    Price,
    RegistryRecords,
    RunRecord,
    Serials,
)
from .tables import WITHHELD, Cell, Publication, RegistryRead, Report, Tally

#: An operation id the node made for a transfer through its client API: the transfer's id.
_NODE_MADE = re.compile(r"([A-Z]{2,4}-[0-9a-f]{32}):local", re.ASCII)


def _accounts(judge: Judge, records: Iterable[RegistryRecords], report: Report) -> None:
    for registry in records:
        for a in registry.accounts:
            refusing = judge.policies.refusing("account_holders", judge.programs_of(a.number))
            if refusing:
                report.withheld.add(refusing, "account")
                continue
            report.rows.append(
                {
                    "registry": a.registry,
                    "account": a.number,
                    "type": a.type,
                    "purpose": a.purpose or None,
                    "status": a.status,
                    "name": a.name,
                    "source_id": a.source_id or None,
                    "representatives": "; ".join(f"{p} ({r})" for p, r in a.representatives),
                    "programs": ", ".join(a.programs),
                    "opened_at": a.opened_at,
                }
            )
    report.rows.sort(key=lambda r: (str(r["registry"]), str(r["account"])))


def _emissions(judge: Judge, records: Iterable[RegistryRecords], report: Report) -> None:
    for registry in records:
        for e in registry.emissions:
            if not judge.policies.of(e.program).emissions:
                report.withheld.add([e.program], "emission")
                continue
            report.rows.append(
                {
                    "registry": e.registry,
                    "program": e.program,
                    "period": e.period,
                    "source_id": e.source_id or None,
                    "account": judge.party(e.account, e.program, report.withheld),
                    "tons": e.tons,
                }
            )
    report.rows.sort(key=lambda r: tuple(str(r[c]) for c in ("program", "period", "registry")))


def _compliance(judge: Judge, records: Iterable[RegistryRecords], report: Report) -> None:
    for registry in records:
        for c in registry.compliance:
            if not judge.policies.of(c.program).compliance:
                report.withheld.add([c.program], "compliance")
                continue
            report.rows.append(
                {
                    "registry": c.registry,
                    "program": c.program,
                    "period": c.period,
                    "source_id": c.source_id or None,
                    "account": judge.party(c.account, c.program, report.withheld),
                    "emissions": c.emissions,
                    "obligation": c.obligation,
                    "surrendered": c.surrendered,
                    "shortfall": c.shortfall,
                    "status": "deducted" if c.deducted else "not yet deducted",
                }
            )
    report.rows.sort(key=lambda r: tuple(str(r[c]) for c in ("program", "period", "registry")))


def _issuance(judge: Judge, records: Iterable[RegistryRecords], report: Report) -> None:
    merged, tally = Merged(), report.withheld
    for registry in records:
        for i in registry.issuances:
            cells, key = judge.serials(i.serials, tally)
            program = i.serials.program
            merged.add(
                ("issuance", i.registry, i.seq, *class_cells(i.serials).values(), key),
                {
                    "time": i.issued_at,
                    "kind": "issuance",
                    "registry": i.registry,
                    "from_account": None,
                    "to_account": judge.party(i.account, program, tally),
                    **class_cells(i.serials),
                    **cells,
                },
            )
        for m in registry.movements:
            if m.kind != "allocation":
                continue
            cells, key = judge.serials(m.serials, tally)
            program = m.serials.program
            merged.add(
                ("allocation", m.registry, m.seq, *class_cells(m.serials).values(), key),
                {
                    "time": m.recorded_at,
                    "kind": "allocation",
                    "registry": m.registry,
                    "from_account": judge.party(m.from_account, program, tally),
                    "to_account": judge.party(m.to_account, program, tally),
                    **class_cells(m.serials),
                    **cells,
                },
            )
    report.rows = merged.sorted("time", "registry", "kind", "program", "serial_start")


def _reference(judge: Judge, m: MovementRecord, tally: Tally) -> Cell:
    made = _NODE_MADE.fullmatch(m.operation_id)
    if made:  # the node's own transfer id: no one's words
        return made.group(1)
    accounts = [a for a in (m.from_account, m.to_account) if a]
    if not m.operation_id:
        return None
    programs = {m.serials.program}.union(*(judge.programs_of(a) for a in accounts))
    refusing = judge.policies.refusing("parties", programs)
    if refusing:
        tally.add(refusing, "reference")
        return WITHHELD
    return m.operation_id


def interstate_records(records: Iterable[RegistryRecords]) -> list[InterstateRecord]:
    """One record per block of each interstate transfer: its source's where the source
    answered (it alone records the price and the commit), else its destination's."""
    by_transfer: dict[str, dict[str, list[InterstateRecord]]] = {}
    for registry in records:
        for t in registry.interstate:
            by_transfer.setdefault(t.transfer_id, {}).setdefault(t.side, []).append(t)
    chosen: list[InterstateRecord] = []
    for sides in by_transfer.values():
        chosen += sides.get("source") or sides.get("destination") or []
    return chosen


def _transfers(judge: Judge, records: Sequence[RegistryRecords], report: Report) -> None:
    merged, tally = Merged(), report.withheld
    for registry in records:
        for m in registry.movements:
            if m.kind != "transfer":
                continue
            cells, key = judge.serials(m.serials, tally)
            program = m.serials.program
            merged.add(
                ("intrastate", m.registry, m.seq, *class_cells(m.serials).values(), key),
                {
                    "time": m.recorded_at,
                    "updated": m.recorded_at,
                    "kind": "intrastate",
                    "reference": _reference(judge, m, tally),
                    "status": "completed",
                    "recorded_by": m.registry,
                    "from_registry": m.registry,
                    "from_account": judge.party(m.from_account, program, tally),
                    "to_registry": m.registry,
                    "to_account": judge.party(m.to_account, program, tally),
                    **class_cells(m.serials),
                    **cells,
                },
            )
    for t in interstate_records(records):
        cells, key = judge.serials(t.serials, tally)
        program = t.serials.program
        merged.add(
            ("interstate", t.transfer_id, *class_cells(t.serials).values(), key),
            {
                "time": t.created_at,
                "updated": t.updated_at,
                "kind": "interstate",
                "reference": t.transfer_id,
                "status": t.status,
                "recorded_by": t.registry,
                "from_registry": t.from_registry,
                "from_account": judge.party(t.from_account, program, tally),
                "to_registry": t.to_registry,
                "to_account": judge.party(t.to_account, program, tally),
                **class_cells(t.serials),
                **cells,
            },
        )
    report.rows = merged.sorted("time", "reference", "program", "serial_start")


def _prices(judge: Judge, records: Sequence[RegistryRecords], report: Report) -> None:
    merged, tally = Merged(), report.withheld
    # (identity, kind, price, time, (from registry, account), (to registry, account), block)
    priced: list[tuple[Any, str, Price, str, tuple[str, str], tuple[str, str], Serials]] = []
    for registry in records:
        for m in registry.movements:
            if m.price is not None and m.kind in ("transfer", "allocation"):
                kind = "intrastate" if m.kind == "transfer" else "allocation"
                ends = (m.registry, m.from_account), (m.registry, m.to_account)
                priced.append(((m.registry, m.seq), kind, m.price, m.recorded_at, *ends, m.serials))
    for t in interstate_records(records):
        # Only what was bought: a rejected or cancelled proposal sold nothing.
        if t.price is not None and t.status == "completed":
            ends = (t.from_registry, t.from_account), (t.to_registry, t.to_account)
            priced.append((t.transfer_id, "interstate", t.price, t.created_at, *ends, t.serials))
    counted: set[Any] = set()
    for identity, kind, price, at, (source, from_account), (to_registry, to_account), s in priced:
        class_key = (identity, *class_cells(s).values())
        if not judge.policies.of(s.program).prices:
            if class_key not in counted:  # one transaction of one class, whatever its blocks
                counted.add(class_key)
                tally.add([s.program], "price")
            continue
        merged.add(
            class_key,
            {
                "date": at[:10],
                "kind": kind,
                "from_registry": source,
                "to_registry": to_registry,
                "program": s.program,
                "unit_type": s.unit_type,
                "vintage": s.vintage,
                "quantity": s.quantity,
                "price": price.amount,
                "currency": price.currency,
                "from_account": judge.party(from_account, s.program, tally),
                "to_account": judge.party(to_account, s.program, tally),
            },
        )
    report.rows = merged.sorted("date", "program", "vintage", "price")


def _retirements(judge: Judge, records: Iterable[RegistryRecords], report: Report) -> None:
    merged, tally = Merged(), report.withheld
    for registry in records:
        for m in registry.movements:
            if m.kind != "retirement":
                continue
            cells, key = judge.serials(m.serials, tally)
            program = m.serials.program
            merged.add(
                (m.registry, m.seq, *class_cells(m.serials).values(), key),
                {
                    "time": m.recorded_at,
                    "registry": m.registry,
                    "account": judge.party(m.from_account, program, tally),
                    **class_cells(m.serials),
                    **cells,
                    "reason": judge.text_of(m.reason, m.from_account, program, tally, "reason"),
                },
            )
    report.rows = merged.sorted("time", "registry", "program", "serial_start")


def _reconciliation(runs: Iterable[RunRecord], report: Report) -> None:
    for run in sorted(runs, key=lambda r: -r.sequence):
        report.rows.append(
            {
                "run_id": run.run_id,
                "sequence": run.sequence,
                "trigger": run.trigger,
                "status": run.status,
                "started_at": run.started_at,
                "finished_at": run.finished_at or None,
                "registries": ", ".join(run.registries),
                "missing": ", ".join(run.missing) or None,
                "discrepancies": run.discrepancies,
                "kinds": "; ".join(f"{k}: {n}" for k, n in run.kinds) or None,
                "signature": "verified" if run.verified else "no signed result",
            }
        )


_BUILDERS: dict[str, Callable[[Judge, Sequence[RegistryRecords], Report], None]] = {
    "accounts": _accounts,
    "sources-emissions": _emissions,
    "compliance": _compliance,
    "issuance-allocation": _issuance,
    "transfers": _transfers,
    "prices": _prices,
    "retirements": _retirements,
    **CREDIT_BUILDERS,
}


def build_publication(
    records: Mapping[str, RegistryRecords],
    runs: Iterable[RunRecord],
    policies: PolicySet,
    *,
    missing: Mapping[str, str],
    generated_at: str,
) -> Publication:
    """Every report, with the policies applied, from the registries that answered; refused
    (:class:`~.credits.DocumentAltered`) when a public document's bytes were altered."""
    ordered = [records[code] for code in sorted(records)]
    check_documents(ordered)  # altered bytes: nothing is published
    judge = Judge(policies, records, generated_at)
    reports = []
    for name, title, description, columns in REPORTS:
        report = Report(name, title, description, columns)
        if name == "reconciliation":
            _reconciliation(runs, report)
        else:
            _BUILDERS[name](judge, ordered, report)
        reports.append(report)
    reads = [RegistryRead(r.registry, r.journal_position, r.read_at) for r in ordered]
    return Publication(generated_at, reads, dict(sorted(missing.items())), policies, reports)


__all__ = ["build_publication", "interstate_records"]
