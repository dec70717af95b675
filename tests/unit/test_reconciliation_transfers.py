"""Check 5 of reconciliation: the source's and the destination's records of a transfer agree."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from reconciliation_support import blk, of, rec, run

from regfed.reconciliation import (
    LOG_RULES,
    Block,
    Kind,
    MalformedSnapshot,
    RegistrySnapshot,
    TransferRecord,
    disagreement,
    reconcile,
)

pytestmark = pytest.mark.unit

LOGS = Kind.TRANSFER_LOGS_DISAGREE
STATUSES = ("proposed", "accepted", "completed", "rejected", "terminated", "cancelled")


def src(status: str, settled: bool | None = None, **kw: object) -> TransferRecord:
    return rec("t1", "PA", "source", "NY", status, settled, **kw)  # type: ignore[arg-type]


def dst(status: str, settled: bool | None = None, **kw: object) -> TransferRecord:
    return rec("t1", "NY", "destination", "PA", status, settled, **kw)  # type: ignore[arg-type]


# One row per rule of docs/reconciliation.md's check 5 table, and the consistent combinations.
RULE_ROWS: list[tuple[TransferRecord | None, TransferRecord | None, str | None]] = [
    # PEERS_DIFFER: each must name the other.
    (src("completed"), rec("t1", "NY", "destination", "NJ", "completed"), "PEERS_DIFFER"),
    (rec("t1", "PA", "source", "NJ", "completed"), dst("completed"), "PEERS_DIFFER"),
    # QUANTITY_DIFFERS, except a tombstone (a void that overtook its proposal).
    (src("completed"), dst("completed", quantity=9), "QUANTITY_DIFFERS"),
    (src("cancelled", True), dst("cancelled", quantity=0), None),
    (src("cancelled", True), dst("rejected", quantity=0), "QUANTITY_DIFFERS"),
    # Completed at the source: pinned or credited at the destination.
    (src("completed"), None, "COMPLETED_UNKNOWN_AT_DESTINATION"),
    (src("completed"), dst("rejected"), "COMPLETED_NOT_PINNED"),
    (src("completed"), dst("cancelled"), "COMPLETED_NOT_PINNED"),
    (src("completed"), dst("proposed"), "COMPLETED_NOT_PINNED"),
    (src("completed"), dst("accepted"), None),  # in transit: commit not yet received
    (src("completed"), dst("completed"), None),
    (src("completed", True), dst("completed"), None),
    (src("completed", True), dst("accepted"), "SETTLED_NOT_CREDITED"),
    # Nothing arrives at a destination whose source does not record it.
    (None, dst("accepted"), "NO_SOURCE"),
    (None, dst("completed"), "NO_SOURCE"),
    (None, dst("proposed"), None),
    (None, dst("rejected"), None),
    (None, dst("cancelled", quantity=0), None),
    # Nothing credited at a destination whose source did not complete.
    (src("proposed"), dst("completed"), "CREDITED_NOT_COMPLETED"),
    (src("cancelled"), dst("completed"), "CREDITED_NOT_COMPLETED"),
    (src("rejected"), dst("completed"), "CREDITED_NOT_COMPLETED"),
    (src("terminated"), dst("completed"), "CREDITED_NOT_COMPLETED"),
    # Released for good at the source, still pinned at the destination.
    (src("rejected"), dst("accepted"), "RELEASED_BUT_PINNED"),
    (src("terminated"), dst("accepted"), "RELEASED_BUT_PINNED"),
    (src("cancelled", True), dst("accepted"), "RELEASED_BUT_PINNED"),
    (src("cancelled", False), dst("accepted"), None),  # the void is on its way
    (src("proposed"), dst("accepted"), None),  # the acceptance is on its way
    (src("proposed"), dst("rejected"), None),  # the rejection is on its way
    (src("rejected"), dst("rejected"), None),
    (src("cancelled", True), dst("cancelled"), None),
    (src("cancelled", False), dst("rejected"), None),
    # Only at the source, not completed: the destination may never have seen it.
    *[(src(s), None, None) for s in ("proposed", "rejected", "cancelled", "terminated")],
]


@pytest.mark.parametrize(("source", "destination", "rule"), RULE_ROWS)
def test_the_rule_table(
    source: TransferRecord | None, destination: TransferRecord | None, rule: str | None
) -> None:
    assert disagreement(source, destination) == rule
    found = of(run([], transfers=[r for r in (source, destination) if r is not None]), LOGS)
    if rule is None:
        assert found == []
        return
    [d] = found
    assert dict(d.details)["rule"] == rule
    assert d.transfer_ids == ("t1",)
    assert {"PA", "NY"} <= set(d.registries)
    assert dict(d.details)["source"] == source
    assert dict(d.details)["destination"] == destination


def test_every_rule_is_written_down_and_reachable() -> None:
    reached = {rule for _, _, rule in RULE_ROWS if rule is not None} | {"SIDE_TWICE"}
    assert reached == {r.code for r in LOG_RULES}


def test_every_status_pair_is_decided() -> None:
    # No combination crashes, and the verdict does not depend on anything but the two records.
    for s in (None, *STATUSES):
        for d in (None, *STATUSES):
            for settled in (False, True):
                source = src(s, settled) if s else None
                destination = dst(d) if d else None
                assert disagreement(source, destination) in {None} | {r.code for r in LOG_RULES}


def test_a_finding_names_both_registries_the_transfer_and_both_records() -> None:
    result = run([blk("PA", 0, 9)], transfers=[src("completed"), dst("rejected")])
    [d] = result.discrepancies
    assert d.kind == LOGS
    assert d.registries == ("NY", "PA")
    out = d.to_dict()
    assert out["details"]["source"] == src("completed")._asdict()
    assert out["details"]["destination"]["status"] == "rejected"
    assert out["transfer_ids"] == ["t1"]
    json.dumps(result.to_dict())
    assert result.counts["transfer_records"] == 2
    assert result.counts["transfers"] == 1


def test_a_record_only_at_the_source_names_the_peer_it_names() -> None:
    [d] = of(run([], transfers=[src("completed")]), LOGS)
    assert d.registries == ("NY", "PA")
    assert dict(d.details)["destination"] is None


def test_two_registries_recording_one_side_disagree() -> None:
    twice = rec("t1", "NJ", "source", "NY", "proposed")
    [d] = of(run([], transfers=[src("proposed"), twice, dst("accepted")]), LOGS)
    assert dict(d.details)["rule"] == "SIDE_TWICE"
    assert d.registries == ("NJ", "NY", "PA")
    details = dict(d.details)
    assert {details["source"], *details["also"]} == {src("proposed"), twice}
    assert details["destination"] == dst("accepted")


def test_many_transfers_are_grouped_by_id_across_registries() -> None:
    records = []
    for i in range(50):
        tid = f"t{i:03d}"
        status = "completed" if i % 2 else "proposed"
        records.append(rec(tid, "PA", "source", "NY", status))
        if i % 5:
            records.append(
                rec(tid, "NY", "destination", "PA", "completed" if i % 2 else "accepted")
            )
    result = run([], transfers=records)
    # Missing destination records of completed transfers: i odd and i % 5 == 0.
    bad = sorted(d.transfer_ids[0] for d in of(result, LOGS))
    assert bad == [f"t{i:03d}" for i in range(50) if i % 2 and i % 5 == 0]
    assert result.counts["transfers"] == 50


def _records(*records: TransferRecord) -> Iterator[TransferRecord]:
    yield from records


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([rec("t2", "PA", "source", "NY", "proposed"), src("proposed")], "not sorted"),
        ([src("proposed"), src("completed")], "not sorted"),  # one record per id
        ([rec("t1", "NY", "destination", "PA", "accepted")], "record of NY"),
        ([rec("t1", "PA", "local", "NY", "completed")], "unknown transfer side"),
        ([rec("t1", "PA", "source", "NY", "lost")], "unknown transfer status"),
        ([src("proposed", quantity=-1)], "negative"),
    ],
)
def test_a_transfer_stream_breaking_its_contract_stops_the_run(
    records: list[TransferRecord], message: str
) -> None:
    snap = RegistrySnapshot("PA", iter([]), transfers=_records(*records))
    with pytest.raises(MalformedSnapshot, match=message):
        reconcile([snap])


def test_transfer_records_are_read_after_every_block() -> None:
    state = {"blocks_done": False, "read_early": False}

    def blocks() -> Iterator[Block]:
        yield blk("PA", 0, 9)
        state["blocks_done"] = True

    def records() -> Iterator[TransferRecord]:
        if not state["blocks_done"]:
            state["read_early"] = True
        yield src("proposed")

    reconcile([RegistrySnapshot("PA", blocks(), transfers=records())])
    assert state == {"blocks_done": True, "read_early": False}
