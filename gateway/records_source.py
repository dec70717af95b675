"""A registry's public records (proto ``regfed.report.v1``): every fact the public reports are
made from, read from its tables in one consistent read and cut into bounded parts.

The read is the one reconciliation uses (:func:`regfed.gateway.snapshot_source.registry_read`:
SQLite in WAL mode fixed by its first statement, PostgreSQL ``REPEATABLE READ READ ONLY``), so
the accounts, the movements and the interstate records describe one moment: the header's
journal position. Rows come off the driver a batch at a time and leave in parts of at most
:data:`MAX_PART_BYTES`; nothing holds a whole table.

Where each fact lives:

| section | tables |
|---|---|
| accounts | ``accounts``; ``programs`` from ``journal_movements`` and ``emissions`` |
| representatives | ``representatives`` |
| emissions, compliance | ``emissions``, ``deductions`` (surrendered), the program's units per ton |
| issuances | ``issuances`` and the time of their journal entry |
| movements | ``journal_movements`` of entries of kind allocation, transfer, retire; a price or a
  reason from the entry's detail |
| interstate | ``transfers`` (source and destination sides), blocks from the record's lot |
| projects | ``projects``, the sponsor's account number, the time of its registering entry |
| verifiers | ``accreditations`` (every record), the time of its entry |
| documents | ``documents`` with their last ``document_reviews`` row (none: submitted) |
| document_contents | ``document_contents`` of public documents only, in slices of
  :data:`CHUNK_BYTES`, one document read at a time |
| provenance | ``provenance`` (issued here, or received) |

Nothing is withheld here: the node serves only the oversight member (records_service.py), which
applies each program's disclosure policy before it publishes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Generator, Iterable, Iterator
from datetime import datetime
from typing import Any

from regfed.node.domain.compliance import Emissions, obligation_of
from regfed.node.domain.credits import CATEGORIES, UNIT_TYPE_OF
from regfed.node.domain.programs import ProgramCatalog
from regfed.node.ledger import timestamp, utc_now
from regfed.node.storage.store import Store
from regfed.reports.stream import SECTIONS

from ._generated.report.v1 import report_pb2 as pb
from .snapshot_source import RegistryRead, registry_read
from .snapshot_stream import MAX_PART_BYTES

#: Journal entry kinds whose movements are public records, and the name each is reported by.
MOVEMENT_KINDS = {"allocation": "allocation", "transfer": "transfer", "retire": "retirement"}
#: What a row adds to its part beyond its own bytes (its tag and length; the part's own tags).
_ROW_OVERHEAD = 8
_PART_OVERHEAD = 16
#: A slice of a document's bytes: one to a part, well under MAX_PART_BYTES.
CHUNK_BYTES = 96 * 1024
_CONTAINERS: dict[str, Callable[..., Any]] = {
    "accounts": pb.Accounts,
    "representatives": pb.Representatives,
    "emissions": pb.Emissions,
    "compliance": pb.Compliance,
    "issuances": pb.Issuances,
    "movements": pb.Movements,
    "interstate": pb.InterstateTransfers,
    "projects": pb.Projects,
    "verifiers": pb.Verifiers,
    "documents": pb.Documents,
    "document_contents": pb.DocumentContents,
    "provenance": pb.ProvenanceRecords,
}


def _block(issuer: str, program: str, unit_type: str, vintage: int, start: int, end: int) -> Any:
    return pb.Block(
        issuer=issuer,
        program=program,
        unit_type=unit_type,
        vintage=int(vintage),
        start=int(start),
        end=int(end),
    )


def _price(value: Any) -> Any:
    """A price as stored (``{"amount", "currency"}``), or None."""
    if not isinstance(value, dict) or "amount" not in value:
        return None
    return pb.Price(amount=str(value["amount"]), currency=str(value.get("currency") or "USD"))


class PublicRead:
    """The queries of the public records on one open read."""

    def __init__(self, read: RegistryRead, registry: str, programs: ProgramCatalog) -> None:
        self.read = read
        self.registry = registry
        self.programs = programs
        self.c = read.c
        self.m = read.mark

    def accounts(self) -> Iterator[Any]:
        """Accounts by id, each with every program it ever touched: two queries ordered by
        account id, merged as they are read."""
        touched_rows = self.read.rows(
            "SELECT account_id, program FROM ("
            "SELECT from_account_id AS account_id, program FROM journal_movements "
            "WHERE from_account_id IS NOT NULL "
            "UNION SELECT to_account_id, program FROM journal_movements "
            "WHERE to_account_id IS NOT NULL "
            "UNION SELECT account_id, program FROM emissions"
            f") touched ORDER BY account_id, program{self.c}"
        )
        sql = (
            "SELECT id, number, type, purpose, set_aside, name, status, source_id, opened_at "
            "FROM accounts ORDER BY id"
        )
        with contextlib.closing(touched_rows) as touched:
            yield from self._accounts(self.read.rows(sql), touched)

    def _accounts(
        self, accounts: Iterator[tuple[Any, ...]], touched: Iterator[tuple[Any, ...]]
    ) -> Iterator[Any]:
        pending = next(touched, None)
        for account_id, number, kind, purpose, set_aside, name, status, source, opened in accounts:
            programs: list[str] = []
            while pending is not None and pending[0] <= account_id:
                if pending[0] == account_id:
                    programs.append(pending[1])
                pending = next(touched, None)
            yield pb.Account(
                number=number,
                type=kind,
                purpose=purpose or "",
                set_aside=set_aside or "",
                name=name,
                status=status,
                source_id=source or "",
                opened_at=opened,
                programs=programs,
            )

    def representatives(self) -> Iterator[Any]:
        sql = (
            "SELECT a.number, r.person_id, r.role FROM representatives r "
            "JOIN accounts a ON a.id = r.account_id ORDER BY a.id, r.id"
        )
        for number, person, role in self.read.rows(sql):
            yield pb.Representative(account=number, person=person, role=role)

    def emissions(self) -> Iterator[Any]:
        sql = (
            "SELECT a.number, a.source_id, e.program, e.period, e.tons FROM emissions e "
            f"JOIN accounts a ON a.id = e.account_id "
            f"ORDER BY e.program{self.c}, e.period{self.c}, a.id"
        )
        for number, source, program, period, tons in self.read.rows(sql):
            yield pb.Emission(
                account=number,
                source_id=source or "",
                program=program,
                period=period,
                tons=int(tons),
            )

    def compliance(self) -> Iterator[Any]:
        sql = (
            "SELECT a.number, a.source_id, e.program, e.period, e.tons, e.mwh, e.standard, "
            "COALESCE(SUM(d.deducted), 0), COUNT(d.id) FROM emissions e "
            "JOIN accounts a ON a.id = e.account_id "
            "LEFT JOIN deductions d ON d.account_id = e.account_id AND d.program = e.program "
            "AND d.period = e.period "
            "GROUP BY a.id, a.number, a.source_id, e.program, e.period, e.tons, e.mwh, e.standard "
            f"ORDER BY e.program{self.c}, e.period{self.c}, a.id"
        )
        for row in self.read.rows(sql):
            number, source, program, period, tons, mwh, standard, surrendered, deductions = row
            record = Emissions(int(tons), mwh, standard)
            obligation = obligation_of(self.programs, program, record)
            yield pb.ComplianceResult(
                account=number,
                source_id=source or "",
                program=program,
                period=period,
                emissions=int(tons),
                obligation=obligation,
                surrendered=int(surrendered),
                shortfall=max(0, obligation - int(surrendered)),
                deducted=int(deductions) > 0,
            )

    def issuances(self) -> Iterator[Any]:
        sql = (
            "SELECT i.issuer, i.program, i.unit_type, i.vintage, i.start_serial, i.end_serial, "
            "a.number, e.recorded_at, i.seq FROM issuances i "
            "JOIN accounts a ON a.id = i.account_id JOIN journal_entries e ON e.seq = i.seq "
            "ORDER BY i.seq, i.id"
        )
        for *unit, number, recorded_at, seq in self.read.rows(sql):
            yield pb.Issuance(
                block=_block(*unit), account=number, issued_at=recorded_at, seq=int(seq)
            )

    def movements(self) -> Iterator[Any]:
        """Every block moved by an allocation, an intrastate transfer or a retirement, in
        journal order; the entry's detail (its price, a retirement's reason) parsed once."""
        kinds = ", ".join(f"'{k}'" for k in MOVEMENT_KINDS)
        sql = (
            "SELECT e.seq, e.kind, e.recorded_at, e.operation_id, e.detail, mv.issuer, "
            "mv.program, mv.unit_type, mv.vintage, mv.start_serial, mv.end_serial, "
            "fa.number, ta.number FROM journal_movements mv "
            "JOIN journal_entries e ON e.seq = mv.seq "
            "LEFT JOIN accounts fa ON fa.id = mv.from_account_id "
            "LEFT JOIN accounts ta ON ta.id = mv.to_account_id "
            f"WHERE e.kind IN ({kinds}) ORDER BY mv.seq, mv.id"
        )
        seen, detail = -1, {}
        for seq, kind, recorded_at, operation_id, raw, *rest in self.read.rows(sql):
            if seq != seen:
                seen, detail = seq, json.loads(raw)
            *unit, from_account, to_account = rest
            yield pb.Movement(
                kind=MOVEMENT_KINDS[kind],
                seq=int(seq),
                recorded_at=recorded_at,
                operation_id=operation_id or "",
                from_account=from_account or "",
                to_account=to_account or "",
                block=_block(*unit),
                price=_price(detail.get("price")),
                reason=str(detail.get("reason") or "") if kind == "retire" else "",
            )

    def interstate(self) -> Iterator[Any]:
        """This registry's side of every interstate transfer, a record per block of its lot
        (a transfer refused at home before any message has no blocks and no record here)."""
        sql = (
            "SELECT transfer_id, side, status, settled, peer, from_account, to_account, record, "
            "price_amount, price_currency, created_at, updated_at FROM transfers "
            f"WHERE side IN ('source', 'destination') ORDER BY transfer_id{self.c}"
        )
        for row in self.read.rows(sql):
            tid, side, status, settled, peer, from_account, to_account, record = row[:8]
            amount, currency, created_at, updated_at = row[8:]
            source = side == "source"
            price = None if amount is None else pb.Price(amount=amount, currency=currency)
            for b in json.loads(record).get("lot", {}).get("blocks", ()):
                yield pb.InterstateTransfer(
                    transfer_id=tid,
                    side=side,
                    status=status,
                    settled=bool(settled),
                    from_registry=self.registry if source else peer,
                    from_account=from_account,
                    to_registry=peer if source else self.registry,
                    to_account=to_account,
                    block=_block(
                        b["issuer"],
                        b["program"],
                        b["unit_type"],
                        b["vintage"],
                        b["start"],
                        b["end"],
                    ),
                    price=price if source else None,
                    created_at=created_at,
                    updated_at=updated_at,
                )

    def projects(self) -> Iterator[Any]:
        sql = (
            "SELECT p.id, p.name, a.number, p.category, p.program, p.location, p.capacity_mw, "
            "p.status, e.recorded_at FROM projects p "
            "JOIN accounts a ON a.id = p.sponsor_account_id "
            "JOIN journal_entries e ON e.seq = p.registered_seq ORDER BY p.number"
        )
        for pid, name, sponsor, category, program, location, capacity, status, at in self.read.rows(
            sql
        ):
            kind = CATEGORIES.get(category)
            yield pb.Project(
                id=pid,
                name=name,
                sponsor=sponsor,
                category=category,
                kind=kind.value if kind is not None else "",
                unit_type=UNIT_TYPE_OF[kind] if kind is not None else "",
                program=program,
                location=location,
                capacity_mw=capacity or "",
                status=status,
                registered_at=at,
            )

    def verifiers(self) -> Iterator[Any]:
        sql = (
            "SELECT a.verifier, a.name, a.categories, a.valid_from, a.valid_to, a.conflicts, "
            "e.recorded_at FROM accreditations a JOIN journal_entries e ON e.seq = a.seq "
            f"ORDER BY a.verifier{self.c}, a.id"
        )
        for verifier, name, categories, valid_from, valid_to, conflicts, at in self.read.rows(sql):
            yield pb.Accreditation(
                verifier=verifier,
                name=name,
                categories=json.loads(categories),
                valid_from=valid_from,
                valid_to=valid_to,
                conflicts=json.loads(conflicts),
                recorded_at=at,
            )

    def documents(self) -> Iterator[Any]:
        """Every document, public or not (the publisher shows only public ones), with its
        status: its last review."""
        sql = (
            "SELECT d.sha256, d.kind, d.subject, d.title, d.content_type, d.size, d.public, "
            "d.series, d.version, d.supersedes, d.submitted_at, d.facts, r.status, r.reviewer, "
            "r.reviewed_at FROM documents d LEFT JOIN document_reviews r ON r.id = "
            "(SELECT MAX(l.id) FROM document_reviews l WHERE l.sha256 = d.sha256) "
            f"ORDER BY d.seq, d.sha256{self.c}"
        )
        for row in self.read.rows(sql):
            sha256, kind, subject, title, content_type, size, public, series = row[:8]
            version, supersedes, submitted_at, facts, status, reviewer, reviewed_at = row[8:]
            yield pb.Document(
                sha256=sha256,
                kind=kind,
                subject=subject,
                title=title,
                content_type=content_type,
                size=int(size),
                public=bool(public),
                series=series,
                version=int(version),
                supersedes=supersedes or "",
                submitted_at=submitted_at,
                status=status or "submitted",
                reviewer=reviewer or "",
                reviewed_at=reviewed_at or "",
                facts_json=facts,
            )

    def document_contents(self) -> Iterator[Any]:
        """The bytes of the public documents as stored, in slices; one document in memory at a
        time (its hashes listed first, then each read on its own)."""
        listed = (
            "SELECT sha256 FROM documents WHERE public = "
            f"{'1' if self.read.sqlite else 'TRUE'} ORDER BY seq, sha256{self.c}"
        )
        hashes = [str(sha256) for (sha256,) in self.read.rows(listed)]
        sql = f"SELECT content FROM document_contents WHERE sha256 = {self.m}"
        for sha256 in hashes:
            for (content,) in self.read.rows(sql, (sha256,)):
                data = bytes(content)
                for offset in range(0, len(data), CHUNK_BYTES):
                    chunk = data[offset : offset + CHUNK_BYTES]
                    yield pb.DocumentChunk(sha256=sha256, offset=offset, data=chunk)

    def provenance(self) -> Iterator[Any]:
        sql = (
            "SELECT issuer, program, unit_type, vintage, start_serial, end_serial, project, "
            "project_name, category, sponsor, report_sha256, verifier, verifier_name, "
            "monitoring_period, issued_at, origin FROM provenance ORDER BY id"
        )
        for row in self.read.rows(sql):
            project, name, category, sponsor, report, verifier, verifier_name = row[6:13]
            period, issued_at, origin = row[13:]
            yield pb.Provenance(
                block=_block(*row[:6]),
                project=project,
                project_name=name,
                category=category,
                sponsor=sponsor,
                report_sha256=report,
                verifier=verifier,
                verifier_name=verifier_name,
                monitoring_period=period,
                issued_at=issued_at,
                origin=origin,
            )


def section_parts(section: str, rows: Iterable[Any]) -> Iterator[Any]:
    """The rows of one section in parts of at most MAX_PART_BYTES; the count is the caller's."""
    make = _CONTAINERS[section]
    batch: list[Any] = []
    size = _PART_OVERHEAD
    for row in rows:
        grows = row.ByteSize() + _ROW_OVERHEAD
        if batch and size + grows > MAX_PART_BYTES:
            yield pb.RecordsPart(**{section: make(rows=batch)})
            batch, size = [], _PART_OVERHEAD
        batch.append(row)
        size += grows
    if batch:
        yield pb.RecordsPart(**{section: make(rows=batch)})


def records_parts(
    store: Store,
    *,
    registry: str,
    programs: ProgramCatalog,
    now: Callable[[], datetime] = utc_now,
) -> Generator[Any, None, None]:
    """A registry's public records: the header, each section in order, the trailer with each
    section's count. Produced as consumed, from one read."""
    counts = dict.fromkeys(SECTIONS, 0)

    def counted(section: str, rows: Iterator[Any]) -> Iterator[Any]:
        for row in rows:
            counts[section] += 1
            yield row

    with registry_read(store) as read:
        position, _hash = read.journal_head()  # the read's first statement fixes its moment
        yield pb.RecordsPart(
            header=pb.Header(registry=registry, journal_position=position, read_at=timestamp(now()))
        )
        public = PublicRead(read, registry, programs)
        for section in SECTIONS:
            yield from section_parts(section, counted(section, getattr(public, section)()))
    yield pb.RecordsPart(trailer=pb.Trailer(**counts))


__all__ = [
    "CHUNK_BYTES",
    "MOVEMENT_KINDS",
    "SECTIONS",
    "PublicRead",
    "records_parts",
    "section_parts",
]
