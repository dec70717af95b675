"""Explanations: a transfer settling between two registries' reads, shown by their journals.

Transfer t1 moves serials 0-9 of PA's 2020 ARP allowances from NJ (source) to NY (destination);
PA issued 0-19 and holds 10-19 itself. Each case builds the two snapshots as they were read and
the journal windows after each read by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import pytest
from reconciliation_support import PA20, blk, iss, rec, snapshots

from regfed.reconciliation import (
    Block,
    Discrepancy,
    JournalMove,
    JournalWindow,
    Kind,
    ReconciliationResult,
    TransferRecord,
    UnsettledTransfer,
    explain,
    reconcile,
    records_wanted,
)

pytestmark = pytest.mark.unit

S, D = "NJ", "NY"
TWO = Kind.SERIAL_IN_TWO_PLACES
NOWHERE = Kind.UNITS_HELD_NOWHERE
SUPPLY = Kind.SUPPLY_NOT_CONSERVED
LOGS = Kind.TRANSFER_LOGS_DISAGREE

# The protocol's moves of t1's serials 0-9, as each registry's journal writes them.
ESCROW = (S, "held", "escrowed")
DEBIT = (S, "escrowed", None)
RELEASE = (S, "escrowed", "held")
PIN = (D, None, "incoming")
CREDIT = (D, "incoming", "held")
UNPIN = (D, "incoming", None)


def mv(
    step: tuple[str, str | None, str | None],
    seq: int,
    tid: str = "t1",
    start: int = 0,
    end: int = 9,
) -> JournalMove:
    registry, frm, to = step
    return JournalMove(registry, seq, tid, *PA20, start, end, frm, to)


def src(status: str, settled: bool | None = None, tid: str = "t1") -> TransferRecord:
    return rec(tid, S, "source", D, status, settled)


def dst(status: str, settled: bool | None = None, tid: str = "t1") -> TransferRecord:
    return rec(tid, D, "destination", S, status, settled)


def windows(
    moves: Iterable[JournalMove] = (), records: Iterable[TransferRecord] = ()
) -> dict[str, JournalWindow]:
    moves, records = list(moves), list(records)
    return {
        code: JournalWindow(
            code,
            after=10,
            upto=20,
            moves=tuple(m for m in moves if m.registry == code),
            records={r.transfer_id: r for r in records if r.registry == code},
        )
        for code in ("PA", S, D)
    }


def read(
    blocks: Sequence[Block],
    transfers: Iterable[TransferRecord] = (),
    issuances: Sequence[tuple[int, int]] = ((0, 19),),
    **kw: object,
) -> ReconciliationResult:
    snaps = snapshots(
        [blk("PA", 10, 19), *blocks],
        [iss(a, z) for a, z in issuances],
        registries=("PA", S, D),
        transfers=transfers,
        **kw,  # type: ignore[arg-type]
    )
    return reconcile(snaps)


def kinds(ds: Iterable[Discrepancy]) -> list[str]:
    return sorted(d.kind for d in ds)


def of_kinds(*names: str) -> list[str]:
    return sorted(names)


# -- the skew cases -------------------------------------------------------------------------------

# name: (blocks read, records read, moves after the reads, current records, kinds found)
CASES: dict[
    str,
    tuple[list[Block], list[TransferRecord], list[JournalMove], list[TransferRecord], list[str]],
] = {
    # The source read before its escrow, the destination after its pin.
    "source before escrow, destination after pin": (
        [blk(S, 0, 9), blk(D, 0, 9, "incoming", "t1")],
        [dst("accepted")],
        [mv(ESCROW, 11), mv(DEBIT, 12), mv(CREDIT, 13)],
        [src("completed", True), dst("completed")],
        of_kinds(SUPPLY, TWO, LOGS),
    ),
    "source before escrow, destination after credit": (
        [blk(S, 0, 9), blk(D, 0, 9)],
        [dst("completed")],
        [mv(ESCROW, 11), mv(DEBIT, 12)],
        [src("completed", True), dst("completed")],
        of_kinds(SUPPLY, TWO, LOGS),
    ),
    "source escrowed, destination after credit": (
        [blk(S, 0, 9, "escrowed", "t1"), blk(D, 0, 9)],
        [src("proposed"), dst("completed")],
        [mv(DEBIT, 12)],
        [src("completed", True), dst("completed")],
        of_kinds(SUPPLY, TWO, LOGS),
    ),
    "source after debit, destination before pin": (
        [],
        [src("completed")],
        [mv(PIN, 11), mv(CREDIT, 12)],
        [src("completed", True), dst("completed")],
        of_kinds(NOWHERE, SUPPLY, LOGS),
    ),
    # A void after the pin: the source read after its release (and the void's acknowledgement),
    # the destination before it unpinned.
    "void after pin, source read after release": (
        [blk(S, 0, 9), blk(D, 0, 9, "incoming", "t1")],
        [src("cancelled", True), dst("accepted")],
        [mv(UNPIN, 14)],
        [src("cancelled", True), dst("cancelled")],
        of_kinds(SUPPLY, TWO, LOGS),
    ),
}


@pytest.fixture(params=sorted(CASES))
def case(
    request: pytest.FixtureRequest,
) -> tuple[list[Block], list[TransferRecord], list[JournalMove], list[TransferRecord], list[str]]:
    return CASES[request.param]


def test_each_skew_case_is_found_then_explained(
    case: tuple[
        list[Block], list[TransferRecord], list[JournalMove], list[TransferRecord], list[str]
    ],
) -> None:
    blocks, read_records, moves, now, found = case
    result = read(blocks, read_records)
    assert kinds(result.discrepancies) == found
    # The windows hold the records of what they moved; the rest is asked for.
    moved_here = {(m.registry, m.transfer_id) for m in moves}
    w = windows(moves, [r for r in now if (r.registry, r.transfer_id) in moved_here])
    wanted = records_wanted(result, w)
    for registry, tids in wanted.items():
        assert tids == {"t1"} and (registry, "t1") not in moved_here
    w = windows(moves, now)
    assert records_wanted(result, w) == {}
    explained = explain(result, w)
    assert explained.clean, explained.discrepancies
    assert kinds(d for d, _ in explained.explained) == found
    for _, why in explained.explained:
        assert "\n" not in why
    for d, why in explained.explained:
        if d.kind != SUPPLY:
            assert "t1" in why
    assert explained.counts["explained"] == len(found)
    out = json.loads(json.dumps(explained.to_dict()))
    assert out["clean"] and {e["kind"] for e in out["explained"]} == set(found)
    # Pure: the input result is as it was; explaining again changes nothing.
    assert kinds(result.discrepancies) == found and result.explained == []
    again = explain(explained, w)
    assert again.clean and again.explained == explained.explained


def test_without_the_moves_nothing_is_explained(
    case: tuple[
        list[Block], list[TransferRecord], list[JournalMove], list[TransferRecord], list[str]
    ],
) -> None:
    blocks, read_records, _, now, found = case
    result = explain(read(blocks, read_records), windows([], now))
    assert kinds(result.discrepancies) == found
    assert result.explained == []


@pytest.mark.parametrize("missing", [S, D])
def test_without_one_sides_record_nothing_is_explained(
    case: tuple[
        list[Block], list[TransferRecord], list[JournalMove], list[TransferRecord], list[str]
    ],
    missing: str,
) -> None:
    blocks, read_records, moves, now, found = case
    result = read(blocks, read_records)
    w = windows(moves, [r for r in now if r.registry != missing])
    assert records_wanted(result, w).get(missing) == {"t1"}
    assert kinds(explain(result, w).discrepancies) == found


def test_the_right_moves_under_another_transfer_id_explain_nothing(
    case: tuple[
        list[Block], list[TransferRecord], list[JournalMove], list[TransferRecord], list[str]
    ],
) -> None:
    blocks, read_records, moves, now, found = case
    result = read(blocks, read_records)
    other = [m._replace(transfer_id="t2") for m in moves]
    assert kinds(explain(result, windows(other, now)).discrepancies) == found
    # Even when both registries record t2 between them too.
    also = [*now, src("completed", True, "t2"), dst("completed", tid="t2")]
    remaining = explain(result, windows(other, also)).discrepancies
    if any(b.state == "incoming" for b in blocks):
        # The destination's block is pinned for t1: t2 cannot account for it.
        assert TWO in kinds(remaining)
    assert LOGS in kinds(remaining)  # t1 did not move


def test_records_that_do_not_name_each_other_explain_nothing() -> None:
    blocks, read_records, moves, _, found = CASES["source before escrow, destination after pin"]
    result = read(blocks, read_records)
    stranger = [src("completed", True), rec("t1", D, "destination", "PA", "completed")]
    assert kinds(explain(result, windows(moves, stranger)).discrepancies) == found
    both_sources = [src("completed", True), rec("t1", D, "source", S, "completed")]
    assert kinds(explain(result, windows(moves, both_sources)).discrepancies) == found


def test_moves_out_of_protocol_order_explain_nothing() -> None:
    blocks, read_records, _, now, _ = CASES["source before escrow, destination after pin"]
    result = read(blocks, read_records)
    # The source's journal debits serials it held, never escrowed.
    skipped = [mv(DEBIT, 12), mv(CREDIT, 13)]
    assert TWO in kinds(explain(result, windows(skipped, now)).discrepancies)
    # The destination's journal shows t1 arriving after the read that already had it.
    again = [mv(ESCROW, 11), mv(DEBIT, 12), mv(PIN, 13)]
    result = read([blk(S, 0, 9), blk(D, 0, 9)], [dst("completed")])
    assert TWO in kinds(explain(result, windows(again, now)).discrepancies)


def test_a_partly_covered_range_is_not_explained() -> None:
    blocks, read_records, _, now, _ = CASES["source after debit, destination before pin"]
    result = read(blocks, read_records)
    half = [mv(PIN, 11, end=4), mv(CREDIT, 12, end=4)]
    assert kinds(explain(result, windows(half, now)).discrepancies) == of_kinds(NOWHERE, SUPPLY)


def test_two_transfers_may_explain_one_range_together() -> None:
    # One gap 0-9: t1 carried 0-4, t2 carried 5-9; both read after the debit, before the pin.
    read_records = [
        rec("t1", S, "source", D, "completed", False, 5),
        rec("t2", S, "source", D, "completed", False, 5),
    ]
    result = read([], read_records)
    [gap] = [d for d in result.discrepancies if d.kind == NOWHERE]
    assert (gap.start, gap.end) == (0, 9)
    moves = [
        mv(PIN, 11, end=4),
        mv(PIN, 12, "t2", 5, 9),
        mv(CREDIT, 13, end=4),
        mv(CREDIT, 14, "t2", 5, 9),
    ]
    now = [
        rec("t1", S, "source", D, "completed", True, 5),
        rec("t1", D, "destination", S, "completed", True, 5),
        rec("t2", S, "source", D, "completed", True, 5),
        rec("t2", D, "destination", S, "completed", True, 5),
    ]
    explained = explain(result, windows(moves, now))
    assert explained.clean
    why = dict((d.kind, w) for d, w in explained.explained)[NOWHERE]
    assert "t1" in why and "t2" in why


# -- what is never explained ----------------------------------------------------------------------


def test_a_tampered_copy_is_not_explained_by_an_old_transfer() -> None:
    # t0 moved 0-9 from NJ to NY long ago; someone copied the block back into NJ's table.
    old = [src("completed", True, "t0"), dst("completed", tid="t0")]
    result = read([blk(S, 0, 9), blk(D, 0, 9)], old)
    assert kinds(result.discrepancies) == of_kinds(SUPPLY, TWO)
    assert explain(result, windows([], old)).explained == []


def test_a_tampered_copy_is_not_explained_by_a_rejected_transfer() -> None:
    # NY holds a copy of NJ's 0-9; NJ then offers them to NY, which refuses serials it has.
    result = read([blk(S, 0, 9), blk(D, 0, 9)])
    moves = [mv(ESCROW, 11), mv(RELEASE, 12)]
    now = [src("rejected"), dst("rejected")]
    assert kinds(explain(result, windows(moves, now)).discrepancies) == of_kinds(SUPPLY, TWO)


def test_a_copy_beside_a_genuine_skew_is_not_explained() -> None:
    blocks, read_records, moves, now, _ = CASES["source before escrow, destination after pin"]
    # A third registry holds a copy.
    result = explain(read([*blocks, blk("PA", 0, 9)], read_records), windows(moves, now))
    remaining = kinds(result.discrepancies)
    assert remaining == of_kinds(SUPPLY, TWO, TWO)
    assert all("PA" in d.registries for d in result.discrepancies if d.kind == TWO)
    # The destination holds a copy beside its pinned block: nothing of it is vouched for.
    copy = blk(D, 0, 9)
    result = explain(read([*blocks, copy], read_records), windows(moves, now))
    assert Kind.SERIAL_TWICE_IN_REGISTRY in kinds(result.discrepancies)
    assert all(copy not in d.pieces for d, _ in result.explained)
    assert kinds(d for d in result.discrepancies if d.kind == TWO) == of_kinds(TWO, TWO)


def test_supply_is_explained_only_when_the_quantities_add_up() -> None:
    blocks, read_records, moves, now, _ = CASES["source before escrow, destination after pin"]
    # The same skew in a class PA also issued 15-19 twice: the imbalance is 10 - 5.
    result = read(blocks, read_records, issuances=((0, 19), (15, 19)))
    assert kinds(explain(result, windows(moves, now)).discrepancies) == of_kinds(SUPPLY)


def test_other_kinds_are_never_explained() -> None:
    _, read_records, moves, now, _ = CASES["source before escrow, destination after pin"]
    unsettled = {S: [UnsettledTransfer("t1", "source", "proposed", D, 90_000.0)]}
    in_transit = [blk(S, 0, 9, "escrowed", "t1"), blk(D, 0, 9, "incoming", "t1")]
    in_flight = [src("proposed"), *read_records]
    result = read(in_transit, in_flight, unsettled=unsettled, totals={D: {}})
    found = kinds(result.discrepancies)
    assert set(found) == {Kind.IN_TRANSIT_TOO_LONG, Kind.TOTALS_MISMATCH}
    assert kinds(explain(result, windows(moves, now)).discrepancies) == found
    # Units outside every issuance, held twice in one registry: never explained either.
    result = read([blk(S, 0, 9), blk(S, 5, 9), blk(D, 20, 29)], [])
    found = kinds(result.discrepancies)
    assert Kind.UNIT_WITHOUT_ISSUER in found and Kind.SERIAL_TWICE_IN_REGISTRY in found
    all_moves = [*moves, mv(ESCROW, 20, start=20, end=29)]
    assert kinds(explain(result, windows(all_moves, now)).discrepancies) == found


def test_a_truncated_result_is_left_as_it_is() -> None:
    blocks, read_records, moves, now, _ = CASES["source before escrow, destination after pin"]
    snaps = snapshots(
        [blk("PA", 10, 19), *blocks],
        [iss(0, 19)],
        registries=("PA", S, D),
        transfers=read_records,
    )
    result = reconcile(snaps, max_discrepancies=1)
    assert result.truncated
    assert explain(result, windows(moves, now)).explained == []


def test_logs_are_explained_only_when_the_current_records_continue_the_read_ones() -> None:
    blocks, read_records, moves, _, _ = CASES["source escrowed, destination after credit"]
    result = read(blocks, read_records)
    # The destination's record now says something no later moment of it can: accepted again.
    now = [src("completed", True), dst("accepted")]
    assert LOGS in kinds(explain(result, windows(moves, now)).discrepancies)
    # Current records that still disagree explain nothing.
    now = [src("cancelled", True), dst("completed")]
    assert LOGS in kinds(explain(result, windows(moves, now)).discrepancies)


# -- a void on its way: one consistent moment, no window needed --------------------------------


def test_a_void_on_its_way_to_the_destination_is_a_legitimate_overlap() -> None:
    # The source voided t1 and released 0-9 at once; the destination still pins them. Both
    # reads may be of the same moment: nothing moved after either.
    blocks = [blk(S, 0, 9), blk(D, 0, 9, "incoming", "t1")]
    found = read(blocks, [src("cancelled", False), dst("accepted")])
    assert TWO in kinds(found.discrepancies)
    explained = explain(found, windows((), [src("cancelled", False), dst("accepted")]))
    assert explained.clean, [d.to_dict() for d in explained.discrepancies]
    assert any("voided by its source" in why for _d, why in explained.explained)


@pytest.mark.parametrize(
    "records",
    [
        [src("accepted"), dst("accepted")],  # not voided: two places at once for real
        [src("cancelled", False)],  # the destination shows no such transfer
        [dst("accepted")],  # the source shows no such transfer
        [src("cancelled", False), dst("completed")],  # credited after a void: never legitimate
        [src("cancelled", True), dst("accepted")],  # the void was acknowledged: D unpinned
        [src("cancelled", False), dst("cancelled")],  # the void arrived: only an unpin explains
        [src("cancelled", False, tid="t2"), dst("accepted", tid="t2")],  # another transfer
    ],
)
def test_an_overlap_is_not_a_void_in_flight_unless_both_records_say_so(
    records: list[TransferRecord],
) -> None:
    blocks = [blk(S, 0, 9), blk(D, 0, 9, "incoming", "t1")]
    found = read(blocks, [src("cancelled", False), dst("accepted")])
    explained = explain(found, windows((), records))
    assert TWO in kinds(explained.discrepancies)
