"""The gateway without the network, on both engines: two registries' gateways exchanging signed
messages by hand, every decision applied to a real database."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import text

from conftest import create_postgres_database, drop_postgres_database
from regfed.certs.directory import Directory, Member, MemberStatus
from regfed.certs.identity import Identity, Role
from regfed.gateway.envelope import Envelope, seal
from regfed.gateway.errors import GatewayError
from regfed.gateway.protocol import Kind, Message
from regfed.gateway.service import Gateway, Outbound
from regfed.gateway.status import MAX_LISTED, unsettled
from regfed.gateway.store import GatewayRecords
from regfed.gateway.trading import Trading, TransferRequest
from regfed.node import Registry, Selection, StatePurpose, Transfer, open_registry
from support import issue, ledger_digest, open_general, person

GATEWAY_TABLES = ("transfers", "transfer_outbox", "transfer_evidence")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Pair:
    pa: Gateway
    ny: Gateway
    keys: dict[str, ed25519.Ed25519PrivateKey]
    clock: Clock
    alice: str
    carol: str

    def gateway(self, code: str) -> Gateway:
        return self.pa if code == "PA" else self.ny

    def deliver(self, outbound: list[Outbound], rounds: int = 8) -> None:
        """Hand each message to its receiver and the replies back, like the dispatcher."""
        for _ in range(rounds):
            if not outbound:
                return
            follow: list[Outbound] = []
            for o in outbound:
                sender = o.envelope.sender
                receiver = self.gateway(o.peer)
                replies = receiver.receive(o.envelope, Identity(Role.REGISTRY, sender))
                follow += self.gateway(sender).answer(o.peer, replies)
            outbound = follow


def _member(code: str, key: ed25519.Ed25519PrivateKey) -> Member:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return Member(code, Role.REGISTRY, "127.0.0.1:1", "", base64.b64encode(raw).decode())


def digest(reg: Registry) -> str:
    h = hashlib.sha256(ledger_digest(reg).encode())
    with reg.engine.connect() as conn:
        for table in GATEWAY_TABLES:
            for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1")).all():
                h.update(repr(tuple(row)).encode())
    return h.hexdigest()


@pytest.fixture(params=["sqlite", "postgresql"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    if request.param == "sqlite":
        urls = [f"sqlite:///{tmp_path / 'pa.db'}", f"sqlite:///{tmp_path / 'ny.db'}"]
    else:
        urls = [create_postgres_database(), create_postgres_database()]
    keys = {code: ed25519.Ed25519PrivateKey.generate() for code in ("PA", "NY", "NJ")}
    directory = Directory(1, tuple(_member(c, k) for c, k in keys.items()))
    clock = Clock()
    regs = [open_registry(urls[0], "PA"), open_registry(urls[1], "NY")]
    pa = Gateway(regs[0], keys["PA"], directory, clock=clock, hold_seconds=60)
    ny = Gateway(regs[1], keys["NY"], directory, clock=clock, hold_seconds=60)
    alice = open_general(regs[0], "alice")
    carol = open_general(regs[1], "carol")
    issue(regs[0], 1000)
    alloc = regs[0].state_account(StatePurpose.ALLOCATION).label
    regs[0].ledger.transfer(
        Transfer(
            operation_id="fund",
            from_account=alloc,
            to_account=alice,
            selection=Selection(quantity=300),
        ),
        regs[0].ledger.administrator,
    )
    try:
        yield Pair(pa, ny, keys, clock, alice, carol)
    finally:
        for reg in regs:
            reg.close()
        if request.param == "postgresql":
            for url in urls:
                drop_postgres_database(url)


_requests = itertools.count(1)


def propose(pair: Pair, quantity: int, to: str | None = None) -> tuple[str, list[Outbound]]:
    request = TransferRequest(
        f"req-{next(_requests)}", pair.alice, to or pair.carol, Selection(quantity=quantity)
    )
    view, outbound = Trading(pair.pa).propose(person("alice"), request)
    return view.transfer_id, outbound


def held(reg: Registry, account: str, who: str) -> int:
    holdings = reg.queries.holdings(account, person(who))
    return sum(t["quantity"] for t in holdings.totals if t["state"] == "held")


def test_commit_path_settles_and_moves_units_once(pair: Pair) -> None:
    tid, outbound = propose(pair, 120)
    assert pair.pa.transfer_row(tid).status == "proposed"  # type: ignore[union-attr]
    pair.deliver(outbound)
    source, dest = pair.pa.transfer_row(tid), pair.ny.transfer_row(tid)
    assert source is not None and dest is not None
    assert (source.status, source.settled) == ("completed", True)
    assert (dest.status, dest.settled) == ("completed", True)
    assert held(pair.pa.registry, pair.alice, "alice") == 180
    assert held(pair.ny.registry, pair.carol, "carol") == 120
    for gw in (pair.pa, pair.ny):
        assert gw.registry.queries.verify().ok
    # Every message sent is evidence on both sides: propose, accept, commit, credited.
    kinds = {(r.direction, r.kind) for r in _receipts(pair.pa, tid)}
    assert kinds == {
        ("sent", "propose"),
        ("received", "accept"),
        ("sent", "commit"),
        ("received", "credited"),
    }


def _receipts(gw: Gateway, tid: str) -> list:  # type: ignore[type-arg]
    from regfed.gateway.store import GatewayRecords

    return gw.read(lambda tx: GatewayRecords(tx).receipts(tid))


def test_duplicates_get_the_stored_reply_and_change_nothing(pair: Pair) -> None:
    _tid, outbound = propose(pair, 10)
    [first] = outbound
    replies = pair.ny.receive(first.envelope, Identity(Role.REGISTRY, "PA"))
    before = digest(pair.ny.registry)
    again = pair.ny.receive(first.envelope, Identity(Role.REGISTRY, "PA"))
    assert again == replies
    assert digest(pair.ny.registry) == before


def test_a_message_decided_again_is_sent_as_first_stored(pair: Pair) -> None:
    tid, outbound = propose(pair, 10)
    [first] = outbound
    message = Message.decode(first.envelope.payload)
    before = digest(pair.pa.registry)
    # A decision that produces a message already recorded (signed and stored in one insert)
    # gets the stored envelope back and records nothing twice.
    again = pair.pa.write(lambda tx: pair.pa.sign_new(GatewayRecords(tx), message))
    assert again == first.envelope
    assert digest(pair.pa.registry) == before
    assert [r.kind for r in _receipts(pair.pa, tid)] == ["propose"]


def test_rejection_by_destination_releases_the_escrow(pair: Pair) -> None:
    unknown = "NY-000099-" + _check("NY", 99)
    tid, outbound = propose(pair, 50, to=unknown)
    pair.deliver(outbound)
    source = pair.pa.transfer_row(tid)
    assert source is not None
    assert (source.status, source.settled, source.error_code) == (
        "rejected",
        True,
        "ACCOUNT_NOT_FOUND",
    )
    # The destination's words came with its code, in the signed reject.
    assert unknown in (source.error_message or ""), source.error_message
    assert held(pair.pa.registry, pair.alice, "alice") == 300


def _check(registry: str, sequence: int) -> str:
    from regfed.node.domain.account_numbers import check_digits

    return check_digits(registry, sequence)


def test_cancel_before_acceptance_and_hold_expiry(pair: Pair) -> None:
    tid, _lost = propose(pair, 10)
    view, outbound = Trading(pair.pa).cancel(person("alice"), tid)
    assert view.status == "cancelled"
    pair.deliver(outbound)
    assert pair.pa.transfer_row(tid).settled  # type: ignore[union-attr]
    assert held(pair.pa.registry, pair.alice, "alice") == 300
    tid2, _lost2 = propose(pair, 10)
    pair.clock.now += 61
    pair.deliver(pair.pa.redrive())
    row = pair.pa.transfer_row(tid2)
    assert row is not None and (row.status, row.settled) == ("cancelled", True)
    assert held(pair.pa.registry, pair.alice, "alice") == 300


def test_retry_with_same_request_id_returns_same_transfer(pair: Pair) -> None:
    request = TransferRequest("retry-1", pair.alice, pair.carol, Selection(quantity=5))
    trading = Trading(pair.pa)
    first, _ = trading.propose(person("alice"), request)
    again, outbound = trading.propose(person("alice"), request)
    assert again.transfer_id == first.transfer_id and outbound == []
    other = dataclasses.replace(request, selection=Selection(quantity=6))
    with pytest.raises(GatewayError) as refused:
        trading.propose(person("alice"), other)
    assert refused.value.code == "REQUEST_ID_CONFLICT"


@pytest.mark.parametrize(
    "tamper, code",
    [
        (lambda e, k: dataclasses.replace(e, signature=b"x" * 64), "BAD_SIGNATURE"),
        (lambda e, k: seal(e.payload, "PA", k["NJ"]), "UNKNOWN_KEY"),
        (lambda e, k: dataclasses.replace(e, sender="NJ"), "SENDER_MISMATCH"),
        (lambda e, k: seal(b"{not json", "PA", k["PA"]), "MALFORMED_MESSAGE"),
        (lambda e, k: seal(b"x" * 70_000, "PA", k["PA"]), "OVERSIZED"),
    ],
)
def test_hostile_envelopes_change_nothing(pair: Pair, tamper, code: str) -> None:  # type: ignore[no-untyped-def]
    _tid, [first] = propose(pair, 10)
    before = digest(pair.ny.registry)
    hostile: Envelope = tamper(first.envelope, pair.keys)
    with pytest.raises(GatewayError) as refused:
        pair.ny.receive(hostile, Identity(Role.REGISTRY, "PA"))
    assert refused.value.code == code
    assert digest(pair.ny.registry) == before


def test_message_chained_into_another_transfer_is_refused(pair: Pair) -> None:
    tid_a, out_a = propose(pair, 10)
    pair.deliver(out_a)
    tid_b, [prop_b] = propose(pair, 10)
    pair.ny.receive(prop_b.envelope, Identity(Role.REGISTRY, "PA"))
    accept_a = next(r for r in _receipts(pair.ny, tid_a) if r.kind == "accept")
    forged = Message(tid_b, Kind.COMMIT, "PA", "NY", accept_a.digest, {})
    before = digest(pair.ny.registry)
    with pytest.raises(GatewayError) as refused:
        pair.ny.receive(seal(forged.encode(), "PA", pair.keys["PA"]), Identity(Role.REGISTRY, "PA"))
    assert refused.value.code == "BROKEN_CHAIN"
    assert digest(pair.ny.registry) == before


def test_suspended_member_gets_no_new_transfers(pair: Pair) -> None:
    _tid, [first] = propose(pair, 10)
    members = tuple(
        dataclasses.replace(m, status=MemberStatus.SUSPENDED) if m.code == "PA" else m
        for m in pair.ny.directory.members
    )
    pair.ny.install_directory(Directory(2, members))
    before = digest(pair.ny.registry)
    with pytest.raises(GatewayError) as refused:
        pair.ny.receive(first.envelope, Identity(Role.REGISTRY, "PA"))
    assert refused.value.code == "MEMBER_SUSPENDED"
    assert digest(pair.ny.registry) == before


def test_a_retry_after_the_member_is_suspended_returns_the_same_transfer(pair: Pair) -> None:
    request = TransferRequest(
        "req-before-suspension", pair.alice, pair.carol, Selection(quantity=5)
    )
    first, _outbound = Trading(pair.pa).propose(person("alice"), request)
    members = tuple(
        dataclasses.replace(m, status=MemberStatus.SUSPENDED) if m.code == "NY" else m
        for m in pair.pa.directory.members
    )
    pair.pa.install_directory(Directory(2, members))
    before = digest(pair.pa.registry)
    again, outbound = Trading(pair.pa).propose(person("alice"), request)
    assert (again.transfer_id, outbound) == (first.transfer_id, [])
    fresh = dataclasses.replace(request, request_id="req-after-suspension")
    with pytest.raises(GatewayError) as refused:
        Trading(pair.pa).propose(person("alice"), fresh)
    assert refused.value.code == "MEMBER_SUSPENDED"
    assert digest(pair.pa.registry) == before


def test_a_proposal_answers_with_the_transfer_as_stored(pair: Pair) -> None:
    request = TransferRequest("req-as-stored", pair.alice, pair.carol, Selection(quantity=4))
    view, [outbound] = Trading(pair.pa).propose(person("alice"), request)
    assert Trading(pair.pa).view(person("alice"), view.transfer_id) == view
    assert view.status == "proposed" and len(view.blocks) == 1
    [(tid, peer, envelope)] = pair.pa.read(lambda tx: GatewayRecords(tx).outbox())
    assert (tid, peer, envelope) == (view.transfer_id, "NY", outbound.envelope)


def test_status_lists_the_unsettled_transfers_of_both_sides_oldest_first(pair: Pair) -> None:
    first, outbound = propose(pair, 10)
    [proposal] = outbound
    # NY accepts (its side is unsettled) and PA never hears the answer.
    pair.ny.receive(proposal.envelope, Identity(Role.REGISTRY, "PA"))
    second, _lost = propose(pair, 20)
    pa = pair.pa.read(unsettled)
    assert pa.total == 2
    assert [(t.transfer_id, t.side, t.status, t.peer) for t in pa.transfers] == [
        (first, "source", "proposed", "NY"),
        (second, "source", "proposed", "NY"),
    ]
    assert [t.quantity for t in pa.transfers] == [10, 20]
    ny = pair.ny.read(unsettled)
    [incoming] = ny.transfers
    assert (ny.total, incoming.transfer_id, incoming.side, incoming.status, incoming.peer) == (
        1,
        first,
        "destination",
        "accepted",
        "PA",
    )
    # The age is measured on the reporting node's clock, from the row's creation time.
    created = datetime.fromisoformat(incoming.created_at)
    later = pair.ny.read(lambda tx: unsettled(tx, now=created + timedelta(seconds=90)))
    assert later.transfers[0].age_seconds == pytest.approx(90.0)
    earlier = pair.ny.read(lambda tx: unsettled(tx, now=created - timedelta(seconds=5)))
    assert earlier.transfers[0].age_seconds == 0.0  # a clock set back never gives a negative age
    # The list is capped; the count is not.
    capped = pair.pa.read(lambda tx: unsettled(tx, limit=1))
    assert (capped.total, [t.transfer_id for t in capped.transfers]) == (2, [first])
    assert pair.pa.read(lambda tx: unsettled(tx, limit=10 * MAX_LISTED)).total == 2
    # Once settled, nothing is in flight on either side.
    Trading(pair.pa).cancel(person("alice"), second)
    pair.deliver(pair.pa.redrive())
    pair.clock.now += 61
    pair.deliver(pair.pa.redrive())
    pair.deliver(pair.ny.redrive())
    for gw in (pair.pa, pair.ny):
        assert gw.read(unsettled).total == 0, gw.me


def test_a_credit_of_a_committed_transfer_lands_quarantined(pair: Pair) -> None:
    """Reconciliation disputes serials pinned at the destination: the transfer still commits
    and credits (a committed transfer must roll forward), and the credit lands quarantined."""
    from regfed.node.domain.commands import ApplyVerdict
    from regfed.node.domain.holdings import BlockState
    from regfed.node.quarantine import apply_verdict, oversight_actor

    tid, outbound = propose(pair, 120)
    [first] = outbound
    replies = pair.ny.receive(first.envelope, Identity(Role.REGISTRY, "PA"))  # NY pins
    with pair.ny.registry.ledger.store.read() as tx:
        pinned = tuple(h.block for h in tx.transfer_blocks(tid, BlockState.INCOMING))
    assert sum(b.quantity for b in pinned) == 120
    verdict = ApplyVerdict(
        operation_id="verdict:run-1",
        run_id="run-1",
        sequence=1,
        status="inconsistent",
        release=False,
        blocks=pinned,
    )
    apply_verdict(pair.ny.ledger, verdict, oversight_actor("EPA"))
    pair.deliver(pair.pa.answer("NY", replies))
    dest = pair.ny.transfer_row(tid)
    assert dest is not None and (dest.status, dest.settled) == ("completed", True)
    blocks = pair.ny.registry.queries.holdings(pair.carol, person("carol")).blocks
    assert [(b.state, b.quarantined) for b in blocks] == [("held", True)]
    assert sum(b.block["end"] - b.block["start"] + 1 for b in blocks) == 120
    assert pair.ny.registry.queries.verify().ok
