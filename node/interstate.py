"""The ledger's side of interstate transfers: what the gateway does to blocks, and nothing else.

Each function runs inside an operation the caller opened with :meth:`Ledger.run`, so a protocol
decision, its ledger change, its journal entry and the gateway's own records commit together.

- ``escrow``: held -> escrowed(T) on the source account (still ours, unspendable);
- ``release``: escrowed(T) -> held (void or rejection, before the commit point);
- ``debit``: escrowed(T) -> gone from this registry (the commit point);
- ``pin``: arrives as incoming(T) on the destination account (accepted, not credited);
- ``unpin``: incoming(T) -> gone (the source voided);
- ``credit``: incoming(T) -> held.

Each is a journal movement; leaving the registry is a movement with no destination, arriving one
with no origin, so the replay check covers interstate transfers too.
A transfer's rows are found by its transfer id; each resolution applies to all of them or fails.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from ._moves import apply_takes
from .domain.accounts import Account
from .domain.actors import Actor
from .domain.commands import Selection
from .domain.errors import (
    InvalidArgument,
    InvariantViolation,
    ProvenanceMissing,
    RegistryError,
    UnitsNotHeld,
)
from .domain.holdings import BlockState
from .domain.journal import Movement, Place
from .domain.prices import Price
from .domain.provenance import Provenance, is_credit, uncovered
from .domain.representatives import Right
from .domain.serials import UnitBlock
from .ledger import Ledger, Work
from .storage.store import LedgerTx


def escrow(
    ledger: Ledger,
    tx: LedgerTx,
    work: Work,
    transfer_id: str,
    from_account: str,
    selection: Selection,
    actor: Actor,
    price: Price | None = None,
) -> tuple[UnitBlock, ...]:
    """Reserve the selected units of ``from_account`` for transfer ``transfer_id``; the
    ``price`` per unit, when given, goes into the escrow's journal entry (the source registry's
    hash-chained record of the sale)."""
    source = ledger._account(tx, from_account, locked=True)
    ledger._require_right(tx, actor, source, Right.INITIATE)
    source.ensure_can_send()
    takes = ledger._select(tx, source, selection)
    ledger._check_program_allows_send(source, takes)
    place = Place(source.id, BlockState.ESCROWED)
    work.movements += apply_takes(tx, takes, place, work.audit, transfer_id)
    work.accounts.add(source.id)
    blocks = tuple(t.block for t in takes)
    _describe(work, transfer_id, source, blocks)
    if price is not None:
        work.detail["price"] = price.to_dict()
    return blocks


def _resolve(
    tx: LedgerTx, work: Work, transfer_id: str, state: BlockState, to: BlockState | None
) -> tuple[UnitBlock, ...]:
    rows = tx.transfer_blocks(transfer_id, state)
    if not rows:
        raise InvariantViolation(
            f"transfer {transfer_id} has no {state.value} blocks here to resolve",
            transfer_id=transfer_id,
        )
    for row in rows:
        origin = Place(row.account_id, state)
        if to is None:
            tx.delete_block(row)
            work.audit.take(row.block)
            work.audit.depart(row.block)
            work.movements.append(Movement(row.block, origin, None))
        else:
            destination = Place(row.account_id, to)
            tx.rewrite_block(row, row.serials, destination, None)
            work.audit.take(row.block)
            work.audit.put(row.block)
            work.movements.append(Movement(row.block, origin, destination))
        work.accounts.add(row.account_id)
    work.detail.update(
        transfer_id=transfer_id,
        quantity=sum(r.serials.quantity for r in rows),
        blocks=[r.block.to_dict() for r in rows],
    )
    return tuple(r.block for r in rows)


def release(tx: LedgerTx, work: Work, transfer_id: str) -> tuple[UnitBlock, ...]:
    return _resolve(tx, work, transfer_id, BlockState.ESCROWED, BlockState.HELD)


def debit(tx: LedgerTx, work: Work, transfer_id: str) -> tuple[UnitBlock, ...]:
    return _resolve(tx, work, transfer_id, BlockState.ESCROWED, None)


def unpin(tx: LedgerTx, work: Work, transfer_id: str) -> tuple[UnitBlock, ...]:
    return _resolve(tx, work, transfer_id, BlockState.INCOMING, None)


def credit(tx: LedgerTx, work: Work, transfer_id: str) -> tuple[UnitBlock, ...]:
    return _resolve(tx, work, transfer_id, BlockState.INCOMING, BlockState.HELD)


def provenance_for(tx: LedgerTx, blocks: Iterable[UnitBlock]) -> tuple[Provenance, ...]:
    """The issuance records of the credit blocks a transfer carries: they travel with them."""
    found: dict[str, Provenance] = {}
    for block in blocks:
        if is_credit(block):
            record = tx.credits.provenance_of(block)
            if record is not None:
                found[record.report_sha256] = record
    return tuple(found[k] for k in sorted(found))


def incoming_refusal(
    ledger: Ledger,
    tx: LedgerTx,
    to_account: str,
    blocks: tuple[UnitBlock, ...],
    provenance: tuple[Provenance, ...] = (),
) -> RegistryError | None:
    """Why this registry would refuse a proposal, or None: the destination's validation."""
    try:
        _receiving_account(ledger, tx, to_account, blocks, provenance)
    except RegistryError as error:
        return error
    return None


def _receiving_account(
    ledger: Ledger,
    tx: LedgerTx,
    to_account: str,
    blocks: tuple[UnitBlock, ...],
    provenance: tuple[Provenance, ...],
) -> Account:
    """The destination account, locked, once it is known to take these blocks."""
    account = ledger._account(tx, to_account, locked=True)
    account.ensure_can_receive()
    if not blocks:
        raise InvalidArgument("a transfer names at least one block")
    for block in blocks:
        uc = block.unit_class
        ledger.programs.get(uc.program).require_accepts(uc.unit_type, uc.issuer, ledger.registry)
    missing = uncovered(blocks, provenance, ledger.programs)
    if missing:
        raise ProvenanceMissing(
            "credits arrive without the record of their issuance: "
            + ", ".join(str(b) for b in missing[:5]),
            blocks=[b.to_dict() for b in missing],
        )
    present = [h.block for b in blocks for h in tx.overlapping(b.unit_class, b.serials)]
    if present:
        raise UnitsNotHeld(
            f"serials already present in registry {ledger.registry}: "
            + ", ".join(str(p) for p in present[:5]),
            blocks=[p.to_dict() for p in present],
        )
    return account


def pin(
    ledger: Ledger,
    tx: LedgerTx,
    work: Work,
    transfer_id: str,
    to_account: str,
    blocks: tuple[UnitBlock, ...],
    provenance: tuple[Provenance, ...] = (),
) -> Account:
    """Accept without crediting: the blocks arrive as incoming on the destination account,
    and the provenance of any credits among them is kept beside them (once per issuance)."""
    account = _receiving_account(ledger, tx, to_account, blocks, provenance)
    for record in provenance:
        known = tx.credits.provenance_by_report(record.report_sha256)
        if known is None:
            work.on_seq.append(functools.partial(_keep_provenance, tx, record))
        elif known != record:
            raise ProvenanceMissing(
                f"the provenance sent for report {record.report_sha256} differs from the one "
                "this registry holds: refused rather than keep two stories",
                report=record.report_sha256,
            )
    place = Place(account.id, BlockState.INCOMING)
    for block in blocks:
        tx.insert_block(block, account.id, BlockState.INCOMING, transfer_id=transfer_id)
        work.audit.arrive(block)
        work.audit.put(block)
        work.movements.append(Movement(block, None, place))
    work.accounts.add(account.id)
    _describe(work, transfer_id, account, blocks)
    return account


def _keep_provenance(tx: LedgerTx, record: Provenance, seq: int) -> None:
    tx.credits.insert_provenance(record, "received", seq)


def _describe(
    work: Work, transfer_id: str, account: Account, blocks: tuple[UnitBlock, ...]
) -> None:
    """The journal detail of a step that moves blocks into or out of one account."""
    work.labels[account.id] = account.label
    work.detail.update(
        transfer_id=transfer_id,
        account=account.label,
        quantity=sum(b.quantity for b in blocks),
        blocks=[b.to_dict() for b in blocks],
    )
