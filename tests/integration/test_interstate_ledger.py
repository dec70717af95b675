"""The ledger's side of interstate transfers, on both engines: escrow, pin, debit, credit,
release and unpin, each journaled so that both registries' replay checks still hold."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import create_postgres_database, drop_postgres_database
from regfed.node import (
    GatewayStep,
    Registry,
    RegistryError,
    Selection,
    SetAccountStatus,
    StatePurpose,
    Transfer,
    UnitBlock,
    Work,
    interstate,
    open_registry,
)
from regfed.node.storage.store import LedgerTx
from support import issue, ledger_digest, open_general, person

Body = Callable[[LedgerTx, Work], object]


@pytest.fixture(params=["sqlite", "postgresql"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Registry, Registry]]:
    if request.param == "sqlite":
        urls = [f"sqlite:///{tmp_path / 'pa.db'}", f"sqlite:///{tmp_path / 'ny.db'}"]
    else:
        urls = [create_postgres_database(), create_postgres_database()]
    pa, ny = open_registry(urls[0], "PA"), open_registry(urls[1], "NY")
    try:
        yield pa, ny
    finally:
        pa.close()
        ny.close()
        if request.param == "postgresql":
            for url in urls:
                drop_postgres_database(url)


def step(reg: Registry, transfer_id: str, name: str, body: Body) -> None:
    reg.ledger.run(
        GatewayStep(operation_id=f"{transfer_id}:{name}", transfer_id=transfer_id, step=name),
        reg.ledger.administrator if name != "escrow" else person("alice"),
        name,
        lambda tx, work: _discard(body(tx, work)),
    )


def _discard(_value: object) -> None:
    return None


def funded(pa: Registry, ny: Registry) -> tuple[str, str]:
    acme = open_general(pa, "alice")
    plant = open_general(ny, "carol")
    issue(pa, 1000)
    alloc = pa.state_account(StatePurpose.ALLOCATION).label
    pa.ledger.transfer(
        Transfer(
            operation_id="fund",
            from_account=alloc,
            to_account=acme,
            selection=Selection(quantity=300),
        ),
        pa.ledger.administrator,
    )
    return acme, plant


def escrow(pa: Registry, tid: str, acme: str, quantity: int) -> tuple[UnitBlock, ...]:
    out: list[UnitBlock] = []
    step(
        pa,
        tid,
        "escrow",
        lambda tx, w: out.extend(
            interstate.escrow(
                pa.ledger, tx, w, tid, acme, Selection(quantity=quantity), person("alice")
            )
        ),
    )
    return tuple(out)


def states(reg: Registry, account: str) -> dict[str, int]:
    totals: dict[str, int] = {}
    for t in reg.queries.holdings(account, reg.ledger.administrator).totals:
        totals[t["state"]] = totals.get(t["state"], 0) + t["quantity"]
    return totals


def test_commit_path_moves_units_between_registries(pair: tuple[Registry, Registry]) -> None:
    pa, ny = pair
    acme, plant = funded(pa, ny)
    blocks = escrow(pa, "PA-T1", acme, 120)
    assert states(pa, acme) == {"held": 180, "escrowed": 120}
    # Escrowed units are not spendable.
    with pytest.raises(RegistryError) as caught:
        pa.ledger.transfer(
            Transfer(
                operation_id="x",
                from_account=acme,
                to_account=pa.state_account(StatePurpose.ALLOCATION).label,
                selection=Selection(quantity=200),
            ),
            person("alice"),
        )
    assert caught.value.code == "INSUFFICIENT_HOLDINGS"
    step(ny, "PA-T1", "pin", lambda tx, w: interstate.pin(ny.ledger, tx, w, "PA-T1", plant, blocks))
    assert states(ny, plant) == {"incoming": 120}
    # An account with a pinned credit cannot be closed.
    with pytest.raises(RegistryError) as closing:
        ny.ledger.set_account_status(
            SetAccountStatus(operation_id="close", account=plant, status="closed"),
            ny.ledger.administrator,
        )
    assert closing.value.code == "ACCOUNT_NOT_EMPTY"
    step(pa, "PA-T1", "debit", lambda tx, w: interstate.debit(tx, w, "PA-T1"))
    step(ny, "PA-T1", "credit", lambda tx, w: interstate.credit(tx, w, "PA-T1"))
    assert states(pa, acme) == {"held": 180}
    assert states(ny, plant) == {"held": 120}
    assert pa.queries.verify().ok and ny.queries.verify().ok
    statement = pa.queries.statement(acme, person("alice"))
    assert statement["entries"][-1]["units_out"] == 120
    assert statement["entries"][-1]["blocks"][0]["state"] == "departed"


def test_void_paths_release_and_unpin(pair: tuple[Registry, Registry]) -> None:
    pa, ny = pair
    acme, plant = funded(pa, ny)
    blocks = escrow(pa, "PA-T2", acme, 50)
    step(ny, "PA-T2", "pin", lambda tx, w: interstate.pin(ny.ledger, tx, w, "PA-T2", plant, blocks))
    step(pa, "PA-T2", "release", lambda tx, w: interstate.release(tx, w, "PA-T2"))
    step(ny, "PA-T2", "unpin", lambda tx, w: interstate.unpin(tx, w, "PA-T2"))
    assert states(pa, acme) == {"held": 300}
    assert states(ny, plant) == {}
    assert pa.queries.verify().ok and ny.queries.verify().ok


def test_a_hold_resolves_once(pair: tuple[Registry, Registry]) -> None:
    pa, ny = pair
    acme, _plant = funded(pa, ny)
    escrow(pa, "PA-T3", acme, 10)
    step(pa, "PA-T3", "debit", lambda tx, w: interstate.debit(tx, w, "PA-T3"))
    before = ledger_digest(pa)
    with pytest.raises(RegistryError) as caught:
        step(pa, "PA-T3", "release", lambda tx, w: interstate.release(tx, w, "PA-T3"))
    assert caught.value.code == "INVARIANT_VIOLATION"
    assert ledger_digest(pa) == before


def test_destination_refuses_present_serials_and_closed_accounts(
    pair: tuple[Registry, Registry],
) -> None:
    pa, ny = pair
    acme, plant = funded(pa, ny)
    blocks = escrow(pa, "PA-T4", acme, 10)
    step(ny, "PA-T4", "pin", lambda tx, w: interstate.pin(ny.ledger, tx, w, "PA-T4", plant, blocks))
    with ny.ledger.store.write() as tx:
        again = interstate.incoming_refusal(ny.ledger, tx, plant, blocks)
    assert again is not None and again.code == "UNITS_NOT_HELD"
    other = open_general(ny, "dave")
    ny.ledger.set_account_status(
        SetAccountStatus(operation_id="close-d", account=other, status="closed"),
        ny.ledger.administrator,
    )
    with ny.ledger.store.write() as tx:
        closed = interstate.incoming_refusal(ny.ledger, tx, other, blocks)
    assert closed is not None and closed.code == "ACCOUNT_CLOSED"
