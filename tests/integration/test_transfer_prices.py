"""A price per unit on transfers, on both engines: recorded by the source registry (the journal
entry of an intrastate transfer or of an interstate escrow, and the gateway's transfer record),
never sent to the destination, and part of the request's identity for idempotency."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pair_support import Pair, gateway_pair
from sqlalchemy import text

from regfed.gateway.errors import GatewayError
from regfed.gateway.store import GatewayRecords
from regfed.node import Price, Registry, Selection, Transfer
from regfed.node.domain.errors import IdempotencyConflict
from support import fund, issue, open_general, person

pytestmark = pytest.mark.integration


@pytest.fixture
def pair(db_url: str, tmp_path: Path) -> Iterator[tuple[Pair, str, str, str]]:
    with gateway_pair(db_url, tmp_path) as built:
        reg = built.pa.registry
        alice, bob = open_general(reg, "alice"), open_general(reg, "bob")
        carol = open_general(built.ny.registry, "carol")
        issue(reg, 1000)
        fund(reg, alice, 300)
        yield built, alice, bob, carol


def detail(reg: Registry, operation_id: str) -> dict[str, Any]:
    with reg.engine.connect() as conn:
        raw = conn.execute(
            text("SELECT detail FROM journal_entries WHERE operation_id = :op"),
            {"op": operation_id},
        ).scalar_one()
    return dict(json.loads(raw))


def test_an_intrastate_transfer_records_its_price_and_an_id_reused_with_another_is_refused(
    pair: tuple[Pair, str, str, str],
) -> None:
    built, alice, bob, _carol = pair
    ledger = built.pa.ledger

    def transfer(price: Price | None) -> Any:
        command = Transfer(
            operation_id="sale-1",
            from_account=alice,
            to_account=bob,
            selection=Selection(quantity=10),
            price=price,
        )
        return ledger.transfer(command, person("alice"))

    first = transfer(Price.parse("12.5"))
    assert first.detail["price"] == {"amount": "12.50", "currency": "USD"}
    assert detail(built.pa.registry, "sale-1")["price"] == {"amount": "12.50", "currency": "USD"}
    assert transfer(Price.parse("12.50")).replayed
    for other in (Price.parse("12.51"), Price.parse("12.50", "EUR"), None):
        with pytest.raises(IdempotencyConflict):
            transfer(other)
    unpriced = ledger.transfer(
        Transfer(
            operation_id="gift-1",
            from_account=alice,
            to_account=bob,
            selection=Selection(quantity=1),
        ),
        person("alice"),
    )
    assert "price" not in unpriced.detail


def test_an_interstate_price_stays_with_the_source(pair: tuple[Pair, str, str, str]) -> None:
    built, alice, _bob, carol = pair
    price = Price.parse("9.99", "USD")
    view, outbound = built.propose("alice", alice, carol, Selection(quantity=20), price)
    assert view.price == price
    # Nothing of the price in the protocol message to NY: the peer protocol is unchanged.
    assert all(b"9.99" not in o.envelope.payload for o in outbound)
    assert all(b"price" not in o.envelope.payload for o in outbound)
    built.deliver(outbound)
    source = built.pa.transfer_row(view.transfer_id)
    destination = built.ny.transfer_row(view.transfer_id)
    assert source is not None and destination is not None
    assert (source.status, source.price) == ("completed", price)
    assert (destination.status, destination.price) == ("completed", None)
    escrow = detail(built.pa.registry, f"{view.transfer_id}:escrow")
    assert escrow["price"] == {"amount": "9.99", "currency": "USD"}


def test_a_request_id_retried_with_another_price_is_a_conflict(
    pair: tuple[Pair, str, str, str],
) -> None:
    built, alice, bob, carol = pair
    for to in (carol, bob):  # interstate, then intrastate through the client API
        request_id = f"retry-{to}"
        first, _ = built.propose(
            "alice", alice, to, Selection(quantity=3), Price.parse("5"), request_id
        )
        again, outbound = built.propose(
            "alice", alice, to, Selection(quantity=3), Price.parse("5.00"), request_id
        )
        assert (again.transfer_id, outbound) == (first.transfer_id, [])
        for other in (Price.parse("5.01"), None):
            with pytest.raises(GatewayError) as refused:
                built.propose("alice", alice, to, Selection(quantity=3), other, request_id)
            assert refused.value.code == "REQUEST_ID_CONFLICT"


def test_a_local_transfer_through_the_client_api_keeps_its_price(
    pair: tuple[Pair, str, str, str],
) -> None:
    built, alice, bob, _carol = pair
    view, outbound = built.propose("alice", alice, bob, Selection(quantity=4), Price.parse("7.25"))
    assert (view.side, view.status, outbound) == ("local", "completed", [])
    assert view.price == Price("7.25")
    assert detail(built.pa.registry, f"{view.transfer_id}:local")["price"]["amount"] == "7.25"
    row = built.pa.read(lambda tx: GatewayRecords(tx).transfer(view.transfer_id))
    assert row is not None and row.price == Price("7.25")


def regfed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regfed.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_ledger_command_takes_a_price_and_refuses_a_bad_one(tmp_path: Path) -> None:
    db = ["--db", str(tmp_path / "pa.db")]
    init = json.loads(regfed("ledger", "init", *db, "--registry", "PA", "--json").stdout)
    alloc = next(a["account"] for a in init["accounts"] if a["purpose"] == "allocation")
    opened = regfed(
        "ledger",
        "open-account",
        *db,
        "--type",
        "general",
        "--name",
        "A",
        "--rep",
        "alice",
        "--json",
    )
    to = json.loads(opened.stdout)["detail"]["account"]
    regfed("ledger", "issue", *db, "--program", "RGGI", "--vintage", "2025", "--quantity", "50")
    for bad, what in (("12.345", "price"), ("-1", "price"), ("1", "currency")):
        extra = ["--currency", "usd"] if what == "currency" else []
        refused = regfed(
            "ledger",
            "transfer",
            *db,
            "--from",
            alloc,
            "--to",
            to,
            "--quantity",
            "5",
            "--price",
            bad,
            *extra,
        )
        assert refused.returncode == 2, refused
        assert "INVALID_ARGUMENT" in refused.stderr and what in refused.stderr
        assert "what to do" in refused.stderr
    done = regfed(
        "ledger",
        "transfer",
        *db,
        "--from",
        alloc,
        "--to",
        to,
        "--quantity",
        "5",
        "--price",
        "3.5",
        "--currency",
        "CAD",
        "--json",
    )
    assert done.returncode == 0, done
    assert json.loads(done.stdout)["detail"]["price"] == {"amount": "3.50", "currency": "CAD"}
    readable = regfed(
        "ledger",
        "transfer",
        *db,
        "--from",
        alloc,
        "--to",
        to,
        "--quantity",
        "5",
        "--price",
        "4",
    )
    assert "at 4.00 USD per unit" in readable.stdout, readable
