"""Reading a registry's ``PublicRecords`` stream (proto ``regfed.report.v1``) into
:class:`RegistryRecords`, refusing any stream that breaks its contract: a header first, naming
the registry asked; sections in order; a trailer whose counts match what came; nothing after.
A report made from a truncated stream would be silently partial, so a broken stream counts as
a registry that did not answer (:class:`RecordsRefused`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from regfed.gateway._generated.report.v1 import report_pb2 as pb

from .records import (
    AccountRecord,
    AccreditationRecord,
    ComplianceRecord,
    DocumentRecord,
    EmissionRecord,
    InterstateRecord,
    IssuanceRecord,
    MovementRecord,
    Price,
    ProjectRecord,
    ProvenanceRecord,
    RegistryRecords,
    Serials,
)

#: A price as a node records it (regfed.node.domain.prices): anything else is a broken stream.
_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,11})\.[0-9]{2}", re.ASCII)
_CURRENCY = re.compile(r"[A-Z]{3}", re.ASCII)

#: The sections in the only order they come, each the name of its RecordsPart field and of the
#: Trailer's count: the node's stream (gateway/records_source.py) writes them in this order.
SECTIONS = (
    "accounts",
    "representatives",
    "emissions",
    "compliance",
    "issuances",
    "movements",
    "interstate",
    "projects",
    "verifiers",
    "documents",
    "document_contents",
    "provenance",
)


class RecordsRefused(Exception):
    """A registry's records cannot be used: it refused, did not answer, or broke the stream."""

    def __init__(self, registry: str, reason: str) -> None:
        super().__init__(f"{registry}: {reason}")
        self.registry = registry
        self.reason = reason


def _serials(b: Any) -> Serials:
    return Serials(b.issuer, b.program, b.unit_type, b.vintage, b.start, b.end)


class _BadPrice(ValueError):
    pass


def _price(message: Any, field: str) -> Price | None:
    if not message.HasField(field):
        return None
    p = getattr(message, field)
    if not _AMOUNT.fullmatch(p.amount) or not _CURRENCY.fullmatch(p.currency):
        raise _BadPrice(f"{p.amount[:24]!r} {p.currency[:8]!r} is not a price")
    return Price(p.amount, p.currency)


class _Malformed(ValueError):
    pass


def _facts(text: str) -> tuple[tuple[str, str | int | bool], ...]:
    """A document's facts: a JSON object of text, whole numbers and booleans."""
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError:
        raise _Malformed("a document's facts are not JSON") from None
    if not isinstance(value, dict):
        raise _Malformed("a document's facts are not a JSON object")
    facts: list[tuple[str, str | int | bool]] = []
    for name, fact in sorted(value.items()):
        if not isinstance(fact, str | int | bool):
            raise _Malformed(f"a document's fact {name[:40]!r} is not text, a number or a flag")
        facts.append((name, fact))
    return tuple(facts)


class _Reader:
    def __init__(self, registry: str) -> None:
        self.registry = registry
        self.records: RegistryRecords | None = None
        self.section = -1
        self.counts = dict.fromkeys(SECTIONS, 0)
        self.representatives: dict[str, list[tuple[str, str]]] = {}
        self.done = False
        self.chunks: dict[str, bytearray] = {}

    def refuse(self, reason: str) -> RecordsRefused:
        return RecordsRefused(self.registry, reason)

    def part(self, part: Any) -> None:
        kind = part.WhichOneof("part")
        if self.done:
            raise self.refuse(f"OUT_OF_ORDER: a {kind} part after the trailer")
        if kind == "header":
            self._header(part.header)
            return
        if self.records is None:
            raise self.refuse(f"OUT_OF_ORDER: a {kind} part before the header")
        if kind == "trailer":
            self._trailer(part.trailer)
            return
        if kind not in SECTIONS:
            raise self.refuse("MALFORMED: a part of no known section")
        index = SECTIONS.index(kind)
        if index < self.section:
            raise self.refuse(f"OUT_OF_ORDER: {kind} after {SECTIONS[self.section]}")
        self.section = index
        rows = getattr(part, kind).rows
        self.counts[kind] += len(rows)
        getattr(self, f"_{kind}")(self.records, rows)

    def _header(self, header: Any) -> None:
        if self.records is not None:
            raise self.refuse("OUT_OF_ORDER: a second header")
        if header.registry != self.registry:
            raise self.refuse(f"WRONG_REGISTRY: the stream is {header.registry!r}'s")
        self.records = RegistryRecords(header.registry, header.journal_position, header.read_at)

    def _trailer(self, trailer: Any) -> None:
        for section in SECTIONS:
            said, came = getattr(trailer, section), self.counts[section]
            if said != came:
                raise self.refuse(f"COUNT_MISMATCH: the trailer says {said} {section}, {came} came")
        self.done = True

    def _accounts(self, records: RegistryRecords, rows: Iterable[Any]) -> None:
        for a in rows:
            records.accounts.append(
                AccountRecord(
                    self.registry,
                    a.number,
                    a.type,
                    a.purpose,
                    a.set_aside,
                    a.name,
                    a.status,
                    a.source_id,
                    a.opened_at,
                    tuple(a.programs),
                )
            )

    def _representatives(self, records: RegistryRecords, rows: Iterable[Any]) -> None:
        for r in rows:
            self.representatives.setdefault(r.account, []).append((r.person, r.role))

    def _emissions(self, records: RegistryRecords, rows: Iterable[Any]) -> None:
        records.emissions += [
            EmissionRecord(self.registry, e.account, e.source_id, e.program, e.period, e.tons)
            for e in rows
        ]

    def _compliance(self, records: RegistryRecords, rows: Iterable[Any]) -> None:
        records.compliance += [
            ComplianceRecord(
                self.registry,
                c.account,
                c.source_id,
                c.program,
                c.period,
                c.emissions,
                c.obligation,
                c.surrendered,
                c.shortfall,
                c.deducted,
            )
            for c in rows
        ]

    def _issuances(self, records: RegistryRecords, rows: Iterable[Any]) -> None:
        records.issuances += [
            IssuanceRecord(self.registry, _serials(i.block), i.account, i.issued_at, i.seq)
            for i in rows
        ]

    def _movements(self, records: RegistryRecords, rows: Iterable[Any]) -> None:
        records.movements += [
            MovementRecord(
                self.registry,
                m.kind,
                m.seq,
                m.recorded_at,
                m.operation_id,
                m.from_account,
                m.to_account,
                _serials(m.block),
                _price(m, "price"),
                m.reason,
            )
            for m in rows
        ]

    def _interstate(self, records: RegistryRecords, rows: Iterable[Any]) -> None:
        records.interstate += [
            InterstateRecord(
                self.registry,
                t.transfer_id,
                t.side,
                t.status,
                t.settled,
                t.from_registry,
                t.from_account,
                t.to_registry,
                t.to_account,
                _serials(t.block),
                t.created_at,
                t.updated_at,
                _price(t, "price"),
            )
            for t in rows
        ]

    def _projects(self, records: RegistryRecords, rows: Iterable[Any]) -> None:
        records.projects += [
            ProjectRecord(
                self.registry,
                p.id,
                p.name,
                p.sponsor,
                p.category,
                p.kind,
                p.unit_type,
                p.program,
                p.location,
                p.capacity_mw,
                p.status,
                p.registered_at,
            )
            for p in rows
        ]

    def _verifiers(self, records: RegistryRecords, rows: Iterable[Any]) -> None:
        records.verifiers += [
            AccreditationRecord(
                self.registry,
                a.verifier,
                a.name,
                tuple(a.categories),
                a.valid_from,
                a.valid_to,
                tuple(a.conflicts),
                a.recorded_at,
            )
            for a in rows
        ]

    def _documents(self, records: RegistryRecords, rows: Iterable[Any]) -> None:
        for d in rows:
            records.documents.append(
                DocumentRecord(
                    self.registry,
                    d.sha256,
                    d.kind,
                    d.subject,
                    d.title,
                    d.content_type,
                    d.size,
                    d.public,
                    d.series,
                    d.version,
                    d.supersedes,
                    d.submitted_at,
                    d.status,
                    d.reviewer,
                    d.reviewed_at,
                    _facts(d.facts_json),
                )
            )

    def _document_contents(self, records: RegistryRecords, rows: Iterable[Any]) -> None:
        public = {d.sha256 for d in records.documents if d.public}
        for c in rows:
            if c.sha256 not in public:
                raise _Malformed(f"bytes of {c.sha256[:64]!r}, no public document of this stream")
            have = self.chunks.setdefault(c.sha256, bytearray())
            if c.offset != len(have):
                raise _Malformed(f"bytes of {c.sha256} at {c.offset}, expected {len(have)}")
            have += c.data

    def _provenance(self, records: RegistryRecords, rows: Iterable[Any]) -> None:
        records.provenance += [
            ProvenanceRecord(
                self.registry,
                _serials(p.block),
                p.project,
                p.project_name,
                p.category,
                p.sponsor,
                p.report_sha256,
                p.verifier,
                p.verifier_name,
                p.monitoring_period,
                p.issued_at,
                p.origin,
            )
            for p in rows
        ]

    def result(self) -> RegistryRecords:
        if self.records is None or not self.done:
            raise self.refuse("TRUNCATED: the stream ended without its trailer")
        records = self.records
        known = {a.number for a in records.accounts}
        stray = sorted(set(self.representatives) - known)
        if stray:
            raise self.refuse(f"MALFORMED: representatives of unknown account {stray[0]}")
        records.accounts = [
            _with_representatives(a, self.representatives.get(a.number, []))
            for a in records.accounts
        ]
        records.contents = {sha256: bytes(data) for sha256, data in self.chunks.items()}
        return records


def _with_representatives(a: AccountRecord, reps: list[tuple[str, str]]) -> AccountRecord:
    return AccountRecord(
        a.registry,
        a.number,
        a.type,
        a.purpose,
        a.set_aside,
        a.name,
        a.status,
        a.source_id,
        a.opened_at,
        a.programs,
        tuple(reps),
    )


def read_records(parts: Iterable[pb.RecordsPart], registry: str) -> RegistryRecords:
    """The records of ``registry``'s stream, or :class:`RecordsRefused` saying what broke."""
    reader = _Reader(registry)
    try:
        for part in parts:
            reader.part(part)
    except (_BadPrice, _Malformed) as error:
        raise reader.refuse(f"MALFORMED: {error}") from None
    return reader.result()


__all__ = ["SECTIONS", "RecordsRefused", "read_records"]
