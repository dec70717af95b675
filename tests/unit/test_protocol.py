"""The two-phase protocol's state machines, step by step, including hostile inputs."""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

import pytest

from regfed.gateway.protocol import (
    Decision,
    DestinationRecord,
    Kind,
    LedgerOp,
    Lot,
    Message,
    Refusal,
    RefusalCode,
    SourceRecord,
    TransferStatus,
    destination,
    source,
)
from regfed.gateway.protocol.messages import MAX_DETAIL
from regfed.gateway.protocol.records import source_from_dict, source_to_dict
from regfed.node.domain.serials import SerialRange, UnitBlock, UnitClass

LOT = Lot(
    (UnitBlock(UnitClass("PA", "RGGI", "allowance", 2025), SerialRange(1, 100)),),
    "PA-000004-88",
    "NY-000003-35",
)


R = TypeVar("R")


def decided(outcome: Decision[R] | Refusal | None) -> Decision[R]:
    assert isinstance(outcome, Decision), outcome
    return outcome


def proposed(now: float = 0.0) -> tuple[SourceRecord, Message]:
    d = source.propose("PA-1", "PA", "NY", LOT, now, hold_seconds=60)
    assert d.ledger is LedgerOp.ESCROW and d.record.status is TransferStatus.PROPOSED
    return d.record, d.send[0]


def accepted() -> tuple[SourceRecord, DestinationRecord, Message, Message]:
    src, propose = proposed()
    d = decided(destination.receive(None, propose, "NY", 1.0))
    assert d.ledger is LedgerOp.PIN
    assert isinstance(d.record, DestinationRecord)
    return src, d.record, propose, d.send[0]


def test_happy_path_escrow_pin_debit_credit_settle() -> None:
    src, dst, _propose, accept = accepted()
    assert accept.kind is Kind.ACCEPT and dst.status is TransferStatus.ACCEPTED
    d = decided(source.receive(src, accept, 2.0))
    assert d.ledger is LedgerOp.DEBIT and d.record.status is TransferStatus.COMPLETED
    commit = d.send[0]
    src = d.record
    d2 = decided(destination.receive(dst, commit, "NY", 3.0))
    assert d2.ledger is LedgerOp.CREDIT and d2.record.status is TransferStatus.COMPLETED
    d3 = decided(source.receive(src, d2.send[0], 4.0))
    assert d3.record.settled and d3.ledger is None


def test_duplicates_get_the_stored_answer_and_change_nothing() -> None:
    _src, dst, propose, accept = accepted()
    again = decided(destination.receive(dst, propose, "NY", 5.0))
    assert again.ledger is None and again.record == dst and again.send == (accept,)


def test_same_step_with_other_content_is_refused() -> None:
    _src, dst, propose, _accept = accepted()
    forged = replace(propose, body={**propose.body, "to_account": "NY-000999-99"})
    outcome = destination.receive(dst, forged, "NY", 5.0)
    assert isinstance(outcome, Refusal) and outcome.code is RefusalCode.CONFLICTING_DUPLICATE


def test_a_message_replayed_into_another_transfer_or_step_is_refused() -> None:
    src, _dst, _propose, accept = accepted()
    d = decided(source.receive(src, accept, 2.0))
    commit = d.send[0]
    # A second transfer, accepted at the same destination.
    second_propose = source.propose("PA-2", "PA", "NY", LOT, 0, 60).send[0]
    second = decided(destination.receive(None, second_propose, "NY", 1.0)).record
    assert isinstance(second, DestinationRecord)
    # The first transfer's commit, replayed into the second: its chain is wrong there.
    outcome = destination.receive(second, replace(commit, transfer_id="PA-2"), "NY", 3.0)
    assert isinstance(outcome, Refusal) and outcome.code is RefusalCode.BROKEN_CHAIN
    # An accept replayed as the answer to a later step does not follow the chain either.
    committed = d.record
    assert isinstance(committed, SourceRecord)
    replayed = source.receive(committed, replace(accept, kind=Kind.CREDITED), 3.0)
    assert isinstance(replayed, Refusal) and replayed.code is RefusalCode.BROKEN_CHAIN


def test_wrong_parties_are_refused() -> None:
    src, _dst, propose, accept = accepted()
    outcome = destination.receive(None, propose, "NJ", 1.0)
    assert isinstance(outcome, Refusal) and outcome.code is RefusalCode.WRONG_PARTY
    from_elsewhere = replace(accept, sender="NJ")
    refused = source.receive(src, from_elsewhere, 2.0)
    assert isinstance(refused, Refusal) and refused.code is RefusalCode.WRONG_PARTY


def test_destination_verdict_rejects_and_source_releases() -> None:
    src, propose = proposed()
    d = decided(destination.receive(None, propose, "NY", 1.0, verdict="ACCOUNT_CLOSED"))
    assert d.ledger is None and d.send[0].kind is Kind.REJECT
    back = decided(source.receive(src, d.send[0], 2.0))
    assert back.ledger is LedgerOp.RELEASE and back.record.status is TransferStatus.REJECTED


def test_a_rejection_carries_its_words_to_the_source_cut_to_their_limit() -> None:
    why = "registry NY under CPPR does not accept units issued by PA (only NY)"
    src, propose = proposed()
    d = decided(destination.receive(None, propose, "NY", 1.0, "UNIT_NOT_ACCEPTED", why))
    assert d.send[0].body == {"reason": "UNIT_NOT_ACCEPTED", "detail": why}
    back = decided(source.receive(src, d.send[0], 2.0)).record
    assert (back.void_reason, back.void_detail) == ("UNIT_NOT_ACCEPTED", why)
    assert source_from_dict(source_to_dict(back)) == back
    # A record written before details existed still loads.
    older = {k: v for k, v in source_to_dict(back).items() if k != "void_detail"}
    assert source_from_dict(older).void_detail == ""
    # A peer's words are cut to MAX_DETAIL on both sides; anything but text is dropped.
    long = decided(destination.receive(None, propose, "NY", 1.0, "X", "w" * 10_000)).send[0]
    assert len(long.body["detail"]) == MAX_DETAIL
    for given in ("w" * 10_000, 12, ["w"], None):
        hostile = replace(long, body={"reason": given, "detail": given})
        kept = decided(source.receive(src, hostile, 2.0)).record
        assert kept.void_detail == (given[:MAX_DETAIL] if isinstance(given, str) else "")
        # the code is kept in a 48-character column: a peer's longer one is cut to fit
        assert kept.void_reason == (given[:48] if isinstance(given, str) else "")


def test_expired_proposal_is_rejected_by_the_destination() -> None:
    _src, propose = proposed(now=0.0)
    d = decided(destination.receive(None, propose, "NY", 61.0))
    assert d.send[0].kind is Kind.REJECT and d.send[0].body["reason"] == "EXPIRED"
    assert "expired" in d.send[0].body["detail"]


def test_hold_expiry_voids_on_the_source_clock_and_a_late_accept_gets_the_void() -> None:
    src, dst, _propose, accept = accepted()
    assert src.outbox is not None
    assert source.tick(src, 59.0) == Decision(src, None, (src.outbox,))  # re-send, no expiry
    d = decided(source.tick(src, 60.0))
    assert d.ledger is LedgerOp.RELEASE and d.record.status is TransferStatus.CANCELLED
    void = d.send[0]
    late = decided(source.receive(d.record, accept, 61.0))
    assert late.ledger is None and late.send == (void,)
    unpinned = decided(destination.receive(dst, void, "NY", 62.0))
    assert unpinned.ledger is LedgerOp.UNPIN and unpinned.send[0].kind is Kind.VOIDED


def test_accept_after_expiry_voids_instead_of_committing() -> None:
    src, _dst, _propose, accept = accepted()
    d = decided(source.receive(src, accept, 100.0))
    assert d.ledger is LedgerOp.RELEASE and d.send[0].kind is Kind.VOID


def test_no_void_after_the_commit_point() -> None:
    src, dst, _propose, accept = accepted()
    committed = decided(source.receive(src, accept, 2.0)).record
    assert isinstance(committed, SourceRecord)
    assert committed.outbox is not None
    assert source.tick(committed, 10_000.0) == Decision(committed, None, (committed.outbox,))
    refused = source.cancel(committed, "trader cancel")
    assert isinstance(refused, Refusal) and refused.code is RefusalCode.TOO_LATE
    credited = decided(destination.receive(dst, committed.outbox, "NY", 3.0)).record
    forged_void = Message("PA-1", Kind.VOID, "PA", "NY", dst.known[2], {"reason": "x"})
    outcome = destination.receive(credited, forged_void, "NY", 4.0)
    assert isinstance(outcome, Refusal) and outcome.code is RefusalCode.TOO_LATE


def test_a_void_overtaking_its_proposal_leaves_a_tombstone() -> None:
    src, propose = proposed()
    void = decided(source.cancel(src, "trader cancel")).send[0]
    tomb = decided(destination.receive(None, void, "NY", 1.0))
    assert tomb.record.status is TransferStatus.CANCELLED and tomb.send[0].kind is Kind.VOIDED
    late = decided(destination.receive(tomb.record, propose, "NY", 2.0))
    assert late.ledger is None and late.send == ()  # never pinned


def test_destination_in_doubt_asks_the_source() -> None:
    src, dst, _propose, accept = accepted()
    assert destination.tick(dst, 5.0, ask_after=10.0) is None
    query = destination.tick(dst, 11.0, ask_after=10.0)
    assert query is not None and query.kind is Kind.STATUS
    committed = decided(source.receive(src, accept, 2.0)).record
    answer = decided(source.receive(committed, query, 12.0))
    assert answer.send[0].kind is Kind.COMMIT


def test_commit_for_an_unknown_transfer_is_refused() -> None:
    commit = Message("PA-9", Kind.COMMIT, "PA", "NY", "abc", {})
    outcome = destination.receive(None, commit, "NY", 1.0)
    assert isinstance(outcome, Refusal) and outcome.code is RefusalCode.UNKNOWN_TRANSFER


def test_messages_round_trip_through_their_bytes() -> None:
    _src, propose = proposed()
    assert Message.decode(propose.encode()) == propose
    with pytest.raises(ValueError, match="step"):
        Message.decode(propose.encode().replace(b'"step":1', b'"step":3'))
