"""Hostile inputs against real node processes: each gets a gRPC status and a typed code, and no
table changes (digest before and after; refusals go to the security log, outside the digest)."""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from federation_support import (
    digest,
    fund,
    open_account,
    registry,
    running_federation,
    security_codes,
)

from regfed.certs.authority import Authority, issue_node, load_signing_key
from regfed.certs.directory import MemberStatus
from regfed.certs.identity import Identity, Role
from regfed.certs.intermediate import issue_person, revoke
from regfed.certs.local import init_federation, intermediate_folder
from regfed.certs.publish import set_status
from regfed.gateway._generated.client.v1 import client_pb2, client_pb2_grpc
from regfed.gateway._generated.peer.v1 import peer_pb2, peer_pb2_grpc
from regfed.gateway.envelope import Envelope, seal
from regfed.gateway.protocol import Kind, Message
from regfed.gateway.transport import CODE_KEY, channel_credentials, to_pb
from regfed.local import Federation, LocalFederation, RegistryClient, TransferFailed
from regfed.node import SetAccountStatus

Running = tuple[Federation, LocalFederation]


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("hostile")
    with running_federation(folder, ["PA", "NY"]) as running:
        yield running


@pytest.fixture(scope="module")
def world(fed: Running) -> dict[str, Any]:
    federation, _ = fed
    pa = open_account(federation, "PA", "trader1")
    ny = open_account(federation, "NY", "trader1")
    fund(federation, "PA", pa, 100)
    with RegistryClient(federation, "PA") as client:
        t = client.propose(pa, ny, quantity=10)
        client.wait_settled(t["transfer_id"], 30)
        receipts = client.receipts(t["transfer_id"]).receipts
    by_kind = {r.kind: Envelope(r.payload, r.sender, r.key_id, r.signature) for r in receipts}
    return {"pa": pa, "ny": ny, "transfer": t["transfer_id"], "sent": by_kind}


def peer_stub(federation: Federation, cert: Path, key: Path, code: str = "NY") -> Any:
    creds = channel_credentials(federation.ca.read_bytes(), cert.read_bytes(), key.read_bytes())
    channel = grpc.secure_channel(federation.endpoint(code), creds)
    return channel, peer_pb2_grpc.PeerStub(channel)


def node_cert(federation: Federation, code: str) -> tuple[Path, Path]:
    return federation.certs / code / "tls.pem", federation.certs / code / "tls.key"


def pa_key(federation: Federation, code: str = "PA") -> Any:
    return load_signing_key(federation.certs / code / "signing.key")


def exchange(federation: Federation, envelope: Envelope, as_code: str = "PA") -> Any:
    channel, stub = peer_stub(federation, *node_cert(federation, as_code))
    try:
        return stub.Exchange(to_pb(envelope), timeout=10)
    finally:
        channel.close()


def refused(federation: Federation, call: Callable[[], Any], status: str, code: str | None) -> None:
    """The call is refused with ``status`` (and ``code``) and NY's tables do not change."""
    before = digest(federation, "NY")
    with pytest.raises(grpc.RpcError) as error:
        call()
    assert error.value.code().name == status, error.value.details()
    if code is not None:
        metadata = dict(error.value.trailing_metadata() or ())
        assert metadata.get(CODE_KEY) == code, error.value.details()
        assert security_codes(federation, "NY")[-1] == code
    assert digest(federation, "NY") == before


def propose_message(world: dict[str, Any], transfer_id: str, **body: Any) -> Message:
    content = {
        "blocks": [
            {
                "issuer": "PA",
                "program": "RGGI",
                "unit_type": "allowance",
                "vintage": 2025,
                "start": 5000,
                "end": 5009,
            }
        ],
        "from_account": world["pa"],
        "to_account": world["ny"],
        "expires_at": time.time() + 600,
        **body,
    }
    return Message(transfer_id, Kind.PROPOSE, "PA", "NY", "", content)


def test_plaintext_and_certificateless_connections_are_refused(fed: Running) -> None:
    federation, _ = fed
    plain = grpc.insecure_channel(federation.endpoint("NY"))
    no_cert = grpc.secure_channel(
        federation.endpoint("NY"),
        grpc.ssl_channel_credentials(root_certificates=federation.ca.read_bytes()),
    )
    for channel in (plain, no_cert):
        stub = peer_pb2_grpc.PeerStub(channel)
        refused(
            federation,
            functools.partial(stub.Exchange, peer_pb2.Envelope(), timeout=5),
            "UNAVAILABLE",
            None,
        )
        channel.close()


def test_certificate_from_another_ca_is_refused(fed: Running, tmp_path: Path) -> None:
    federation, _ = fed
    init_federation(tmp_path / "other", ["PA"], "EPA")
    channel, stub = peer_stub(
        federation, tmp_path / "other" / "PA" / "tls.pem", tmp_path / "other" / "PA" / "tls.key"
    )
    refused(federation, lambda: stub.Exchange(peer_pb2.Envelope(), timeout=5), "UNAVAILABLE", None)
    channel.close()


@pytest.mark.parametrize("role", [Role.TRADER, Role.ADMINISTRATOR, Role.OVERSIGHT])
def test_non_registry_certificates_on_the_peer_api(
    fed: Running, world: dict[str, Any], role: Role
) -> None:
    federation, _ = fed
    cert, key = federation.credential("PA", role)
    channel, stub = peer_stub(federation, cert, key)
    envelope = to_pb(world["sent"]["propose"])
    refused(
        federation, lambda: stub.Exchange(envelope, timeout=5), "PERMISSION_DENIED", "WRONG_ROLE"
    )
    channel.close()


def test_envelope_and_signature_refusals(fed: Running, world: dict[str, Any]) -> None:
    federation, _ = fed
    fresh = propose_message(world, "PA-hostile-1").encode()
    cases: list[tuple[Envelope, str, str, str]] = [
        (
            dataclasses.replace(seal(fresh, "PA", pa_key(federation)), signature=b"\0" * 64),
            "PA",
            "UNAUTHENTICATED",
            "BAD_SIGNATURE",
        ),
        (seal(fresh, "PA", pa_key(federation, "NY")), "PA", "UNAUTHENTICATED", "UNKNOWN_KEY"),
        (seal(fresh, "PA", pa_key(federation)), "NY", "PERMISSION_DENIED", "SENDER_MISMATCH"),
        (
            seal(b"\x00not a message", "PA", pa_key(federation)),
            "PA",
            "INVALID_ARGUMENT",
            "MALFORMED_MESSAGE",
        ),
        (seal(b"x" * 70_000, "PA", pa_key(federation)), "PA", "RESOURCE_EXHAUSTED", "OVERSIZED"),
    ]
    for envelope, as_code, status, code in cases:
        refused(
            federation, functools.partial(exchange, federation, envelope, as_code), status, code
        )
    huge = seal(b"x" * 300_000, "PA", pa_key(federation))
    refused(federation, lambda: exchange(federation, huge), "RESOURCE_EXHAUSTED", None)


def test_unknown_registry_is_refused(fed: Running, world: dict[str, Any], tmp_path: Path) -> None:
    federation, _ = fed
    authority = Authority.load(federation.certs)
    creds = issue_node(authority, Identity(Role.REGISTRY, "ZZ"), tmp_path / "ZZ")
    message = propose_message(world, "ZZ-1").encode()
    envelope = seal(message, "ZZ", load_signing_key(creds.signing_key))
    channel, stub = peer_stub(federation, creds.tls_certificate, creds.tls_key)
    refused(
        federation,
        lambda: stub.Exchange(to_pb(envelope), timeout=5),
        "PERMISSION_DENIED",
        "UNKNOWN_SENDER",
    )
    channel.close()


def test_protocol_refusals(fed: Running, world: dict[str, Any]) -> None:
    federation, _ = fed
    key = pa_key(federation)
    tid = world["transfer"]
    sent = world["sent"]
    accept_digest = Message.decode(sent["commit"].payload).prev_hash
    # The same (transfer id, step) with another payload.
    other = propose_message(world, tid)
    # A valid commit chained to transfer A, replayed into transfer B.
    into_other = Message("PA-other-transfer", Kind.COMMIT, "PA", "NY", accept_digest, {})
    # Voiding after the commit point.
    late_void = Message(tid, Kind.VOID, "PA", "NY", accept_digest, {"reason": "late"})
    # A proposal whose hold has expired.
    expired = propose_message(world, "PA-expired", expires_at=time.time() - 1)
    # A commit with a wrong hash link.
    broken = Message(tid, Kind.COMMIT, "PA", "NY", "0" * 64, {})
    # A proposal that claims to follow an earlier message.
    chained = Message(
        "PA-chained", Kind.PROPOSE, "PA", "NY", "ab" * 32, propose_message(world, "PA-chained").body
    )
    # Wrong step number for its kind.
    wrong_step = json.loads(sent["commit"].payload)
    wrong_step["step"] = 2
    for message, status, code in (
        (other, "ALREADY_EXISTS", "CONFLICTING_DUPLICATE"),
        (into_other, "NOT_FOUND", "UNKNOWN_TRANSFER"),
        (late_void, "FAILED_PRECONDITION", "TOO_LATE"),
        (expired, "FAILED_PRECONDITION", "MESSAGE_EXPIRED"),
        (broken, "ALREADY_EXISTS", "CONFLICTING_DUPLICATE"),
        (chained, "FAILED_PRECONDITION", "BROKEN_CHAIN"),
    ):
        envelope = seal(message.encode(), "PA", key)
        refused(federation, functools.partial(exchange, federation, envelope), status, code)
    raw = json.dumps(wrong_step, sort_keys=True, separators=(",", ":")).encode()
    refused(
        federation,
        lambda: exchange(federation, seal(raw, "PA", key)),
        "INVALID_ARGUMENT",
        "MALFORMED_MESSAGE",
    )
    # An exact duplicate is answered from what is stored and changes nothing.
    before = digest(federation, "NY")
    reply = exchange(federation, sent["commit"])
    assert [Message.decode(r.payload).kind for r in reply.replies] == [Kind.CREDITED]
    assert digest(federation, "NY") == before


def test_trader_refusals_at_the_home_node(fed: Running, world: dict[str, Any]) -> None:
    federation, _ = fed
    issue_person(intermediate_folder(federation.certs, "PA"), Role.TRADER, "mallory")
    before = digest(federation, "PA")
    with RegistryClient(federation, "PA", person="mallory") as mallory:
        with pytest.raises(TransferFailed) as error:
            mallory.propose(world["pa"], world["ny"], quantity=1)
        assert (error.value.status, error.value.code) == ("PERMISSION_DENIED", "NOT_AUTHORIZED")
        with pytest.raises(TransferFailed) as error:
            mallory.get(world["transfer"])
        assert error.value.code == "TRANSFER_NOT_FOUND"
    assert digest(federation, "PA") == before


def test_compliance_account_where_its_program_forbids_sending(
    fed: Running, world: dict[str, Any]
) -> None:
    federation, _ = fed
    plant = open_account(federation, "PA", "trader1", kind="compliance")
    fund(federation, "PA", plant, 20, program="CAQC")
    with RegistryClient(federation, "PA") as client:
        t = client.propose(plant, world["ny"], quantity=5)
    assert (t["status"], t["error_code"]) == ("rejected", "PROGRAM_FORBIDS_SEND")


def test_unknown_and_closed_destination_accounts_are_rejected(
    fed: Running, world: dict[str, Any]
) -> None:
    federation, _ = fed
    closed = open_account(federation, "NY", "trader1")
    reg = registry(federation, "NY")
    try:
        reg.ledger.set_account_status(
            SetAccountStatus(operation_id="close-1", account=closed, status="closed"),
            reg.ledger.administrator,
        )
    finally:
        reg.close()
    from regfed.node.domain.account_numbers import AccountNumber

    unknown = str(AccountNumber.make("NY", 9999))
    before = digest(federation, "NY")
    with RegistryClient(federation, "PA") as client:
        for to, code in ((unknown, "ACCOUNT_NOT_FOUND"), (closed, "ACCOUNT_CLOSED")):
            t = client.propose(world["pa"], to, quantity=1)
            done = client.wait_settled(t["transfer_id"], 30)
            assert (done["status"], done["error_code"]) == ("rejected", code)
    assert digest(federation, "NY") != before  # only the rejected records, checked next
    ny = registry(federation, "NY")
    try:
        with ny.engine.connect() as conn:
            from sqlalchemy import text

            statuses = conn.execute(text("SELECT status FROM transfers ORDER BY created_at")).all()
    finally:
        ny.close()
    assert [s.status for s in statuses][-2:] == ["rejected", "rejected"]


def test_revoked_and_foreign_person_certificates(fed: Running, world: dict[str, Any]) -> None:
    federation, _ = fed
    folder = intermediate_folder(federation.certs, "PA")
    eve = issue_person(folder, Role.TRADER, "eve")
    with RegistryClient(federation, "PA", person="eve") as client:
        with pytest.raises(TransferFailed) as before:
            client.holdings(world["pa"])
        assert before.value.code == "NOT_AUTHORIZED"  # known, but not eve's account
        revoke(folder, [eve.serial])
        with pytest.raises(TransferFailed) as after:
            client.holdings(world["pa"])
        assert (after.value.status, after.value.code) == ("UNAUTHENTICATED", "CERTIFICATE_REFUSED")
        assert "REVOKED" in after.value.message
    # NY's trader acts through NY, never directly at PA.
    chain, key = federation.credential("NY", Role.TRADER)
    creds = channel_credentials(federation.ca.read_bytes(), chain.read_bytes(), key.read_bytes())
    channel = grpc.secure_channel(federation.endpoint("PA"), creds)
    stub = client_pb2_grpc.RegistryStub(channel)
    with pytest.raises(grpc.RpcError) as foreign:
        stub.ListHoldings(client_pb2.ListHoldingsRequest(account=world["pa"]), timeout=5)
    channel.close()
    assert dict(foreign.value.trailing_metadata() or ()).get(CODE_KEY) == "WRONG_ROLE"


def test_suspended_member_gets_no_new_transfers(fed: Running, world: dict[str, Any]) -> None:
    federation, _ = fed
    set_status(federation.certs, "PA", MemberStatus.SUSPENDED)
    time.sleep(1.0)  # nodes pick the new directory up on their next re-drive pass
    envelope = seal(
        propose_message(world, "PA-after-suspension").encode(), "PA", pa_key(federation)
    )
    refused(
        federation, lambda: exchange(federation, envelope), "PERMISSION_DENIED", "MEMBER_SUSPENDED"
    )
