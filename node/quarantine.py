"""Quarantine: a registry's own disputed blocks, as a verified reconciliation verdict names them.

The oversight node signs each run's verdict for each registry; the gateway verifies it (see
``gateway/verdicts.py``) and applies it here as one journaled operation. A quarantined block
stays where it is and keeps every state change already under way (an incoming credit of a
committed transfer still lands, quarantined), but it cannot be sent, retired or surrendered:
selection skips it and naming its serials is refused with ``UNITS_QUARANTINED``. Only a later
clean run releases it; nothing else in the registry is frozen.

Verdicts apply in run order: the registry keeps the sequence of the last one it applied and
refuses an older one (``STALE_VERDICT``), so a replayed old clean result cannot release blocks a
newer run disputes.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import combinations

from .domain.actors import Actor, ActorKind
from .domain.commands import ApplyVerdict
from .domain.errors import NotAuthorized, StaleVerdict
from .domain.holdings import Holding
from .domain.journal import Place
from .domain.serials import UnitBlock
from .ledger import Ledger, OperationResult, Work
from .storage.store import LedgerTx

#: registry_meta key: the sequence of the last verdict applied.
LAST_VERDICT = "reconciliation.last_verdict_sequence"


def last_verdict_sequence(tx: LedgerTx) -> int:
    return int(tx.get_meta(LAST_VERDICT) or 0)


def apply_verdict(ledger: Ledger, command: ApplyVerdict, actor: Actor) -> OperationResult:
    def body(tx: LedgerTx, work: Work) -> None:
        if actor.kind is not ActorKind.OVERSIGHT:
            raise NotAuthorized(
                f"only the oversight node's signed verdict quarantines blocks; {actor} may not",
                actor=str(actor),
            )
        last = last_verdict_sequence(tx)
        if command.sequence <= last:
            raise StaleVerdict(
                f"run {command.run_id} has sequence {command.sequence}; this registry already "
                f"applied the verdict of sequence {last}",
                run_id=command.run_id,
                sequence=command.sequence,
                applied=last,
            )
        changed = []
        if command.release:
            for holding in tx.quarantined_blocks():
                tx.set_quarantined(holding, False)
                changed.append(holding.block.to_dict())
        else:
            for block in command.blocks:
                # Fresh rows for each range: an earlier range of this verdict may have split one.
                rows = tx.overlapping(block.unit_class, block.serials)
                # Rows that overlap each other (serials held twice here): the ledger refuses
                # to write around them, so they are quarantined whole, never split.
                tangled = any(a.serials.overlaps(b.serials) for a, b in combinations(rows, 2))
                for holding in rows:
                    if holding.quarantined:
                        continue
                    if tangled:
                        tx.set_quarantined(holding, True)
                        changed.append(holding.block.to_dict())
                    else:
                        changed.append(_quarantine(tx, work, holding, block).to_dict())
        tx.set_meta(LAST_VERDICT, str(command.sequence))
        work.detail.update(
            run_id=command.run_id,
            sequence=command.sequence,
            status=command.status,
            disputed=[b.to_dict() for b in command.blocks],
            **{"released" if command.release else "quarantined": changed},
        )

    return ledger.run(command, actor, "apply-verdict", body)


def _quarantine(tx: LedgerTx, work: Work, holding: Holding, block: UnitBlock) -> UnitBlock:
    """Quarantine the disputed serials of one row, and only those: a row reaching beyond them
    is split in place (same account, state and transfer) so that the rest stays usable. A split
    moves nothing, so it writes no journal movement; the audit still sees every serial kept."""
    part = holding.serials.intersection(block.serials)
    assert part is not None
    if part == holding.serials:
        tx.set_quarantined(holding, True)
        return holding.block
    pieces = sorted([part, *holding.serials.minus(part)], key=lambda r: r.start)
    place = Place(holding.account_id, holding.state, holding.attributed_account_id)
    # The row only shrinks before the other pieces are inserted: no statement makes two rows
    # overlap (PostgreSQL's exclusion constraint checks each one).
    tx.rewrite_block(holding, pieces[0], place, holding.transfer_id)
    if pieces[0] == part:
        shrunk = replace(
            holding, block=UnitBlock(holding.unit_class, part), version=holding.version + 1
        )
        tx.set_quarantined(shrunk, True)
    for piece in pieces[1:]:
        tx.insert_block(
            UnitBlock(holding.unit_class, piece),
            holding.account_id,
            holding.state,
            attributed_account_id=holding.attributed_account_id,
            transfer_id=holding.transfer_id,
            quarantined=piece == part,
        )
    work.audit.take(holding.block)
    for piece in pieces:
        work.audit.put(UnitBlock(holding.unit_class, piece))
    return UnitBlock(holding.unit_class, part)


def oversight_actor(code: str) -> Actor:
    return Actor(ActorKind.OVERSIGHT, code)
