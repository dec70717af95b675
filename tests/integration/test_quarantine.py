"""Quarantine at the ledger: a verified verdict's disputed blocks cannot be sent, retired or
surrendered; everything else stays usable; a clean verdict releases them; verdicts apply in run
order (an older one is refused) and once (the same run twice is answered from the stored
result). Both engines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from regfed.node import (
    Registry,
    Retire,
    Selection,
    SerialRange,
    UnitBlock,
    UnitClass,
    open_registry,
)
from regfed.node.domain.actors import Actor
from regfed.node.domain.commands import ApplyVerdict
from regfed.node.quarantine import apply_verdict, oversight_actor
from support import fund, issue, op_id, open_general, person, refused, send

UC = UnitClass("PA", "RGGI", "allowance", 2025)


@pytest.fixture
def reg(db_url: str) -> Iterator[Registry]:
    registry = open_registry(db_url, "PA")
    yield registry
    registry.close()


def verdict(run: str, sequence: int, *blocks: UnitBlock, release: bool = False) -> ApplyVerdict:
    return ApplyVerdict(
        operation_id=f"verdict:{run}",
        run_id=run,
        sequence=sequence,
        status="completed" if release else "inconsistent",
        release=release,
        blocks=blocks,
    )


def held(reg: Registry, account: str, who: str) -> list[tuple[int, int, bool]]:
    return [
        (b.block["start"], b.block["end"], bool(b.quarantined))
        for b in reg.queries.holdings(account, person(who)).blocks
    ]


def test_disputed_blocks_are_frozen_and_only_they(reg: Registry) -> None:
    acme, other = open_general(reg, "alice"), open_general(reg, "bob")
    issue(reg, 1000)
    fund(reg, acme, 100)  # 1-100
    send(reg, acme, other, person("alice"), blocks=(UnitBlock(UC, SerialRange(51, 100)),))
    oversight = oversight_actor("EPA")
    result = apply_verdict(
        reg.ledger, verdict("run-1", 1, UnitBlock(UC, SerialRange(10, 20))), oversight
    )
    assert result.detail["quarantined"] == [UnitBlock(UC, SerialRange(10, 20)).to_dict()]
    # Only the disputed serials: the row is split, the rest stays spendable.
    assert held(reg, acme, "alice") == [(1, 9, False), (10, 20, True), (21, 50, False)]

    # Named serials: a typed refusal naming them, nothing changed.
    err = refused(
        reg,
        "UNITS_QUARANTINED",
        lambda: send(
            reg, acme, other, person("alice"), blocks=(UnitBlock(UC, SerialRange(5, 15)),)
        ),
    )
    assert err.details["blocks"] == [UnitBlock(UC, SerialRange(10, 15)).to_dict()]
    # By quantity: the quarantined serials are not eligible (39 of 50 are); retirement neither.
    refused(
        reg, "INSUFFICIENT_HOLDINGS", lambda: send(reg, acme, other, person("alice"), quantity=40)
    )
    refused(
        reg,
        "INSUFFICIENT_HOLDINGS",
        lambda: reg.ledger.retire(
            Retire(operation_id=op_id("r"), from_account=acme, selection=Selection(quantity=40)),
            person("alice"),
        ),
    )
    # Nothing else is frozen: alice's other serials and bob's units move.
    send(reg, acme, other, person("alice"), quantity=9)  # 1-9
    send(reg, other, acme, person("bob"), quantity=10)
    assert (10, 20, True) in held(reg, acme, "alice")

    # Only the oversight node's verdict quarantines; an administrator may not.
    refused(
        reg,
        "NOT_AUTHORIZED",
        lambda: apply_verdict(reg.ledger, verdict("run-x", 9), reg.ledger.administrator),
    )
    # The same run again: applied once, answered from the stored result.
    again = apply_verdict(
        reg.ledger, verdict("run-1", 1, UnitBlock(UC, SerialRange(10, 20))), oversight
    )
    assert again.replayed
    # A clean later run releases; after it, an older verdict is refused.
    released = apply_verdict(reg.ledger, verdict("run-2", 2, release=True), oversight)
    assert released.detail["released"] == [UnitBlock(UC, SerialRange(10, 20)).to_dict()]
    assert all(not q for *_r, q in held(reg, acme, "alice"))
    send(reg, acme, other, person("alice"), blocks=(UnitBlock(UC, SerialRange(5, 15)),))
    refused(
        reg,
        "STALE_VERDICT",
        lambda: apply_verdict(
            reg.ledger, verdict("run-0", 1, UnitBlock(UC, SerialRange(1, 4))), oversight
        ),
    )
    assert reg.queries.verify().ok


def test_a_person_cannot_pose_as_oversight(reg: Registry) -> None:
    refused(
        reg,
        "NOT_AUTHORIZED",
        lambda: apply_verdict(reg.ledger, verdict("run-1", 1), Actor.person("EPA")),
    )


def test_rows_holding_serials_twice_are_quarantined_whole(tmp_path: Path) -> None:
    """Serials held twice in one registry, written behind the ledger's back (SQLite only: on
    PostgreSQL the exclusion constraint refuses the tampering itself). The ledger will not write
    around overlapping rows, so a verdict quarantines both rows whole, unsplit."""
    reg = open_registry(f"sqlite:///{tmp_path / 'pa.db'}", "PA")
    try:
        acme = open_general(reg, "alice")
        issue(reg, 100)
        fund(reg, acme, 50)  # 1-50 at alice, 51-100 in the allocation account
        with reg.engine.begin() as conn:
            alloc = conn.execute(text("SELECT MIN(id) FROM accounts WHERE type = 'state'")).scalar()
            conn.execute(
                text(
                    "INSERT INTO blocks (issuer, program, unit_type, vintage, start_serial, "
                    "end_serial, account_id, state, quarantined, version) "
                    "VALUES ('PA', 'RGGI', 'allowance', 2025, 10, 12, :a, 'held', false, 1)"
                ),
                {"a": alloc},
            )
        disputed = UnitBlock(UC, SerialRange(10, 12))
        apply_verdict(reg.ledger, verdict("run-1", 1, disputed), oversight_actor("EPA"))
        with reg.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT start_serial, end_serial FROM blocks WHERE quarantined ORDER BY 1, 2")
            ).all()
        assert [tuple(r) for r in rows] == [(1, 50), (10, 12)]
    finally:
        reg.close()
