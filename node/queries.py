"""Read side of the ledger: holdings, statements, totals, and the replay check.

Every query reads one consistent snapshot. Holdings of an account list its held, escrowed and
incoming blocks and also the surrendered and retired blocks that left it, with their state.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .domain.account_numbers import AccountNumber
from .domain.accounts import Account, AccountType
from .domain.actors import Actor, ActorKind
from .domain.compliance import Emissions, obligation_of
from .domain.documents import digest
from .domain.errors import (
    AccountInOtherRegistry,
    AccountNotFound,
    InvalidArgument,
    InvariantViolation,
    NotAuthorized,
)
from .domain.holdings import BlockState, Holding
from .domain.invariants import check_disjoint
from .domain.journal import Place, ReplayError, canonical, replay
from .domain.programs import ProgramCatalog
from .domain.provenance import is_credit, uncovered
from .domain.serials import SerialRange, UnitClass, merge_adjacent
from .ledger import timestamp
from .storage.journal_records import GENESIS_HASH, entry_hash
from .storage.store import LedgerTx, Store


@dataclass(frozen=True, slots=True)
class HoldingView:
    block: dict[str, Any]
    state: str
    quarantined: bool
    transfer_id: str | None
    #: Where a credit came from (project, report, verifier), wherever it is held now.
    provenance: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {**self.block, "state": self.state}
        if self.quarantined:
            out["quarantined"] = True
        if self.transfer_id:
            out["transfer_id"] = self.transfer_id
        if self.provenance is not None:
            out["provenance"] = self.provenance
        return out


@dataclass(frozen=True, slots=True)
class AccountHoldings:
    account: str
    account_type: str
    status: str
    blocks: tuple[HoldingView, ...]
    totals: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "account_type": self.account_type,
            "status": self.status,
            "blocks": [b.to_dict() for b in self.blocks],
            "totals": list(self.totals),
        }


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class VerifyReport:
    registry: str
    journal_seq: int
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "registry": self.registry,
            "ok": self.ok,
            "journal_seq": self.journal_seq,
            "checks": [c.to_dict() for c in self.checks],
        }


class LedgerQueries:
    def __init__(self, store: Store, registry: str, programs: ProgramCatalog | None = None) -> None:
        self.store = store
        self.registry = registry
        self.programs = programs or ProgramCatalog.default()

    def _account(self, tx: LedgerTx, number: str) -> Account:
        parsed = AccountNumber.parse(number)
        if parsed.registry != self.registry:
            raise AccountInOtherRegistry(
                f"account {number} belongs to registry {parsed.registry}", account=number
            )
        account = tx.account_by_number(parsed)
        if account is None:
            raise AccountNotFound(
                f"no account {number} in registry {self.registry}", account=number
            )
        return account

    def _require_read(self, tx: LedgerTx, actor: Actor, account: Account) -> None:
        if actor.kind in (ActorKind.ADMINISTRATOR, ActorKind.OVERSIGHT):
            if actor.kind is ActorKind.OVERSIGHT or actor.id == f"{self.registry}-admin":
                return
        elif account.type is not AccountType.STATE and any(
            r.person_id == actor.id for r in tx.representatives(account.id)
        ):
            return
        raise NotAuthorized(
            f"{actor} may not read account {account.label}", actor=str(actor), account=account.label
        )

    def accounts(self) -> list[dict[str, Any]]:
        with self.store.read() as tx:
            out = []
            for a in tx.all_accounts():
                out.append(
                    {
                        "account": a.label,
                        "type": a.type.value,
                        "purpose": a.purpose.value if a.purpose else None,
                        "set_aside": a.set_aside,
                        "name": a.name,
                        "source_id": a.source_id,
                        "status": a.status.value,
                        "representatives": [r.to_dict() for r in tx.representatives(a.id)],
                    }
                )
            return out

    def holdings(self, number: str, actor: Actor) -> AccountHoldings:
        with self.store.read() as tx:
            account = self._account(tx, number)
            self._require_read(tx, actor, account)
            views: list[HoldingView] = []
            totals: dict[tuple[str, str, str, int, str], int] = defaultdict(int)
            for h in tx.account_blocks(account.id):
                final = h.state in (BlockState.SURRENDERED, BlockState.RETIRED)
                if final and h.attributed_account_id != account.id:
                    continue  # kept here, attributed to the account it left
                origin = tx.credits.provenance_of(h.block) if is_credit(h.block) else None
                views.append(
                    HoldingView(
                        h.block.to_dict(),
                        h.state.value,
                        h.quarantined,
                        h.transfer_id,
                        origin.to_dict() if origin else None,
                    )
                )
                uc = h.unit_class
                totals[(uc.issuer, uc.program, uc.unit_type, uc.vintage, h.state.value)] += (
                    h.serials.quantity
                )
            return AccountHoldings(
                account=account.label,
                account_type=account.type.value,
                status=account.status.value,
                blocks=tuple(views),
                totals=tuple(
                    {
                        "issuer": k[0],
                        "program": k[1],
                        "unit_type": k[2],
                        "vintage": k[3],
                        "state": k[4],
                        "quantity": q,
                    }
                    for k, q in sorted(totals.items())
                ),
            )

    def statement(
        self, number: str, actor: Actor, since: str | None = None, until: str | None = None
    ) -> dict[str, Any]:
        since, until = _moment(since, "since"), _moment(until, "until")
        with self.store.read() as tx:
            account = self._account(tx, number)
            self._require_read(tx, actor, account)
            labels: dict[int, str] = {a.id: a.label for a in tx.all_accounts()}
            entries = []
            for record in tx.journal.entries(account_id=account.id, since=since, until=until):
                moved_in = moved_out = 0
                blocks = []
                for m in record.movements:
                    to = m.destination
                    into = to is not None and (
                        to.account_id == account.id
                        or (
                            to.attributed_account_id == account.id
                            and to.state in (BlockState.SURRENDERED, BlockState.RETIRED)
                        )
                    )
                    out_of = m.origin is not None and m.origin.account_id == account.id
                    if into and not out_of:
                        moved_in += m.block.quantity
                    if out_of and (to is None or to.account_id != account.id):
                        moved_out += m.block.quantity
                    if into or out_of:
                        blocks.append(
                            {
                                **m.block.to_dict(),
                                "from": labels.get(m.origin.account_id) if m.origin else None,
                                "to": labels.get(to.account_id) if to else None,
                                "state": to.state.value if to else "departed",
                            }
                        )
                entries.append(
                    {
                        "seq": record.seq,
                        "recorded_at": record.recorded_at,
                        "kind": record.kind,
                        "actor": record.actor,
                        "operation_id": record.operation_id,
                        "units_in": moved_in,
                        "units_out": moved_out,
                        "blocks": blocks,
                        "detail": record.detail,
                    }
                )
            return {"account": account.label, "since": since, "until": until, "entries": entries}

    def totals(self) -> list[dict[str, Any]]:
        """Quantities per unit class and state across the registry, plus what it issued."""
        with self.store.read() as tx:
            rows: dict[UnitClass, dict[str, int]] = {}
            for r in tx.totals():
                uc = UnitClass(r.issuer, r.program, r.unit_type, r.vintage)
                rows.setdefault(uc, {s.value: 0 for s in BlockState} | {"issued": 0, "blocks": 0})
                rows[uc][r.state] += int(r.quantity)
                rows[uc]["blocks"] += int(r.blocks)
            for block, _account in tx.issuances():
                uc = block.unit_class
                rows.setdefault(uc, {s.value: 0 for s in BlockState} | {"issued": 0, "blocks": 0})
                rows[uc]["issued"] += block.quantity
            return [
                {
                    "issuer": uc.issuer,
                    "program": uc.program,
                    "unit_type": uc.unit_type,
                    "vintage": uc.vintage,
                    **q,
                }
                for uc, q in sorted(rows.items())
            ]

    def compliance(self) -> list[dict[str, Any]]:
        with self.store.read() as tx:
            accounts = {a.id: a for a in tx.all_accounts()}
            out = []
            for r in tx.compliance.rows():
                a = accounts[r.account_id]
                tons = int(r.tons)
                record = Emissions(tons, r.mwh, r.standard)
                owed = obligation_of(self.programs, r.program, record)
                row = {
                    "account": a.label,
                    "source": a.source_id,
                    "program": r.program,
                    "period": r.period,
                    "emissions": tons,
                    "obligation": owed,
                    "surrendered": int(r.surrendered),
                    "shortfall": max(0, owed - int(r.surrendered)),
                }
                if r.mwh is not None:
                    # Rate-based: emissions are CO2 in lb, beside the generation and standard.
                    row.update(mwh=int(r.mwh), standard=r.standard)
                out.append(row)
            return out

    def verify(self) -> VerifyReport:
        """Rebuild holdings from the journal and compare; check the hash chain and invariants."""
        with self.store.read() as tx:
            head_seq, head_hash = tx.journal.head()
            report = VerifyReport(self.registry, head_seq)
            report.checks.append(_check_chain(tx, head_seq, head_hash))
            blocks = list(tx.all_blocks())
            report.checks.append(_check_replay(tx, blocks))
            report.checks.append(_check_disjoint(blocks))
            report.checks.append(_check_issued(tx, blocks, self.registry))
            report.checks.append(_check_documents(tx))
            report.checks.append(_check_provenance(tx, blocks, self.programs))
            return report


def _check_documents(tx: LedgerTx) -> Check:
    """Every stored document's bytes still hash to its identity."""
    documents = tx.credits.documents()
    altered = [
        d.sha256 for d in documents if digest(tx.credits.content(d.sha256) or b"") != d.sha256
    ]
    if altered:
        return Check(
            "documents", False, f"{len(altered)} document(s) altered after submission: "
            + ", ".join(altered[:5]),
        )  # fmt: skip
    return Check("documents", True, f"{len(documents)} documents, every one matches its hash")


def _check_provenance(tx: LedgerTx, blocks: list[Holding], programs: ProgramCatalog) -> Check:
    """Every credit block held here descends from an issuance whose provenance is known."""
    records = [p for p, _origin in tx.credits.all_provenance()]
    missing = uncovered((h.block for h in blocks), records, programs)
    if missing:
        return Check(
            "provenance", False, f"{len(missing)} credit block(s) without provenance: "
            + ", ".join(str(b) for b in missing[:5]),
        )  # fmt: skip
    return Check("provenance", True, f"{len(records)} credit issuances known here")


def _check_chain(tx: LedgerTx, head_seq: int, head_hash: str) -> Check:
    previous, expected_seq = GENESIS_HASH, 1
    for record in tx.journal.entries():
        if record.seq != expected_seq:
            return Check(
                "journal-chain", False, f"sequence gap: expected {expected_seq}, got {record.seq}"
            )
        if record.prev_hash != previous or entry_hash(previous, record.body()) != record.hash:
            return Check("journal-chain", False, f"entry {record.seq} does not match its hash")
        previous, expected_seq = record.hash, expected_seq + 1
    if expected_seq - 1 != head_seq or previous != head_hash:
        return Check("journal-chain", False, "journal head does not match the last entry")
    return Check("journal-chain", True, f"{head_seq} entries, hash chain intact")


def _movements(tx: LedgerTx) -> Iterator[Any]:
    for record in tx.journal.entries():
        yield from record.movements


def _check_replay(tx: LedgerTx, blocks: list[Holding]) -> Check:
    try:
        rebuilt = replay(_movements(tx))
    except ReplayError as error:
        return Check("journal-replay", False, str(error))
    stored = canonical(
        (Place(h.account_id, h.state, h.attributed_account_id), h.block) for h in blocks
    )
    if rebuilt != stored:
        differing = sorted(
            {
                f"account {k[0].account_id} {k[0].state.value} {k[1].label()}"
                for k in set(rebuilt) | set(stored)
                if rebuilt.get(k) != stored.get(k)
            }
        )
        return Check(
            "journal-replay", False, "journal and holdings differ at: " + "; ".join(differing[:10])
        )
    return Check("journal-replay", True, f"{len(blocks)} blocks rebuilt from the journal")


def _check_disjoint(blocks: list[Holding]) -> Check:
    try:
        check_disjoint(blocks)
    except InvariantViolation as error:
        return Check("serials-disjoint", False, error.message)
    return Check("serials-disjoint", True, "no serial in two blocks")


#: Journal entries that create units: plain issuance, and the approval of a verification
#: report (which issues the credits it verifies).
ISSUING_KINDS = frozenset({"issue", "review-document"})


def _check_issued(tx: LedgerTx, blocks: list[Holding], registry: str) -> Check:
    """Per class this registry issued: issued + arrived - departed = what is here, and every
    serial here lies inside one of its issuances."""
    issued: dict[UnitClass, list[SerialRange]] = defaultdict(list)
    flow: dict[UnitClass, int] = defaultdict(int)
    for record in tx.journal.entries():
        for m in record.movements:
            uc = m.block.unit_class
            if uc.issuer != registry:
                continue
            if m.origin is None:
                flow[uc] += m.block.quantity
                if record.kind in ISSUING_KINDS:
                    issued[uc].append(m.block.serials)
            if m.destination is None:
                flow[uc] -= m.block.quantity
    here: dict[UnitClass, list[SerialRange]] = defaultdict(list)
    for h in blocks:
        if h.unit_class.issuer == registry:
            here[h.unit_class].append(h.serials)
    for uc in set(flow) | set(here):
        held = sum(r.quantity for r in here.get(uc, []))
        if held != flow.get(uc, 0):
            return Check(
                "supply-conserved",
                False,
                f"{uc.label()}: issued + arrived - departed = {flow.get(uc, 0)}, here {held}",
            )
        covering = merge_adjacent(issued.get(uc, []))
        for r in merge_adjacent(here.get(uc, [])):
            if not any(c.contains(r) for c in covering):
                return Check("supply-conserved", False, f"{uc.label()}:{r} was never issued")
    total = sum(r.quantity for rs in issued.values() for r in rs)
    return Check("supply-conserved", True, f"{total} units issued, all accounted for")


def _moment(text: str | None, what: str) -> str | None:
    """A period bound as the journal stores times (UTC, microseconds, ``Z``). Journal times are
    compared as text, so anything else (``yesterday``) would silently select nothing."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidArgument(
            f"--{what} {text!r} is not an ISO date or time, e.g. 2026-01-31 or "
            "2026-01-31T12:00:00Z (a time without an offset is UTC)"
        ) from None
    return timestamp(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
