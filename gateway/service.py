"""A registry node's gateway, without the network: protocol decisions applied to the database.

Every input (a peer's signed message, a clock tick, a trader's request) is handled in one write
transaction: read and lock the transfer's record, let the pure core decide, apply the ledger
change, the new record, the outbox row and the evidence, commit, and only then hand the signed
replies to the transport. Refusals change nothing but a line in the security log.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric import ed25519

from regfed.certs.directory import Directory, Member, MemberStatus
from regfed.certs.identity import Identity, Role
from regfed.node import Actor, GatewayStep, Registry, RegistryError, interstate
from regfed.node.domain.errors import InvariantViolation
from regfed.node.ledger import timestamp, utc_now
from regfed.node.storage.store import LedgerTx

from .changes import TransferChange, log_changes
from .crash import CrashHooks
from .envelope import Envelope, EnvelopeRefused, open_envelope, seal
from .errors import GatewayError
from .logs import TRANSFER_ID
from .protocol import (
    Decision,
    DestinationRecord,
    Kind,
    LedgerOp,
    Lot,
    Message,
    Refusal,
    SourceRecord,
    TransferStatus,
    destination,
    source,
)
from .protocol.durable import destination_effect, source_effect
from .protocol.messages import FROM_DESTINATION, FROM_SOURCE
from .protocol.records import (
    destination_from_dict,
    destination_to_dict,
    source_from_dict,
    source_to_dict,
)
from .store import GatewayRecords, TransferRow

T = TypeVar("T")
log = logging.getLogger("regfed.gateway")
DEFAULT_HOLD_SECONDS = 24 * 3600.0
DEFAULT_ASK_AFTER = 30.0
MAX_ATTEMPTS = 8
DIRECTORY_VERSION = "directory_version"
#: A message in the outbox is re-sent by the re-drive only once it is this old (seconds).
RESEND_AFTER = 0.5


@dataclass(frozen=True, slots=True)
class Outbound:
    """A signed message to hand to a peer: ``rpc`` is ``exchange`` or ``status``."""

    peer: str
    rpc: str
    envelope: Envelope


@dataclass
class Applied:
    replies: list[Envelope]
    effect: str | None


class Gateway:
    def __init__(
        self,
        registry: Registry,
        signing_key: ed25519.Ed25519PrivateKey,
        directory: Directory,
        *,
        clock: Callable[[], float] = time.time,
        hold_seconds: float = DEFAULT_HOLD_SECONDS,
        ask_after: float = DEFAULT_ASK_AFTER,
        hooks: CrashHooks | None = None,
    ) -> None:
        self.registry = registry
        self.me = registry.code
        self.ledger = registry.ledger
        self.signing_key = signing_key
        self.clock = clock
        self.hold_seconds = hold_seconds
        self.ask_after = ask_after
        self.hooks = hooks or CrashHooks.from_environment()
        self.directory = Directory(0, ())
        # Called on the writing thread, after the commit, with the transfers it settled.
        self.on_settled: Callable[[Mapping[str, str]], None] | None = None
        # Called likewise with every status change committed (the node's metrics count them).
        self.on_changes: Callable[[tuple[TransferChange, ...]], None] | None = None
        self.install_directory(directory)

    # -- membership ----------------------------------------------------------------------------

    def install_directory(self, directory: Directory) -> None:
        """Accept a newer (or the same) signed directory; an older one is refused for good."""

        def body(tx: LedgerTx) -> None:
            highest = int(tx.get_meta(DIRECTORY_VERSION) or 0)
            directory.replacing(highest)
            if directory.version > highest:
                tx.set_meta(DIRECTORY_VERSION, str(directory.version))

        self.write(body)
        me = directory.member(self.me)
        if me is None or me.role is not Role.REGISTRY:
            raise ValueError(f"the directory does not list registry {self.me}")
        self.directory = directory

    def member(self, code: str) -> Member | None:
        member = self.directory.member(code)
        return member if member is not None and member.role is Role.REGISTRY else None

    def _active(self, code: str) -> bool:
        member = self.member(code)
        return member is not None and member.status is MemberStatus.ACTIVE

    # -- transactions --------------------------------------------------------------------------

    def write(self, body: Callable[[LedgerTx], T]) -> T:
        attempt = 0
        while True:
            try:
                with self.ledger.store.write() as tx:
                    result = body(tx)
                if tx.settled_transfers and self.on_settled is not None:
                    settled = dict(tx.settled_transfers)
                    self.ledger.store.after_commit(functools.partial(self.on_settled, settled))
                if tx.transfer_changes:
                    changes = tuple(tx.transfer_changes)
                    self.ledger.store.after_commit(functools.partial(self._changed, changes))
                return result
            except RegistryError as error:
                attempt += 1
                if not error.retryable or attempt >= MAX_ATTEMPTS:
                    raise
                time.sleep(random.uniform(0, 0.005 * 2**attempt))

    def _changed(self, changes: tuple[TransferChange, ...]) -> None:
        log_changes(changes)
        if self.on_changes is not None:
            self.on_changes(changes)

    def read(self, body: Callable[[LedgerTx], T]) -> T:
        with self.ledger.store.read() as tx:
            return body(tx)

    def reach_after_commit(self, effect: str | None) -> None:
        """The crash matrix's after-commit point: once the effect is durable, before any send
        (inside a group commit, that is after the whole group's commit)."""
        if self.hooks.armed:
            self.ledger.store.after_commit(
                functools.partial(self.hooks.reach, effect, "after-commit")
            )

    def now_text(self) -> str:
        return timestamp(utc_now())

    # -- signing and evidence ------------------------------------------------------------------

    def signed(self, records: GatewayRecords, message: Message) -> Envelope:
        """The signed envelope of a message this node sends: stored once, re-sent as stored.

        For a reply sent again (a duplicate's answer, a repeated query): looked up first, so a
        flood of duplicates costs reads, not signatures."""
        stored = records.sent(message.transfer_id, message.digest)
        return stored if stored is not None else self.sign_new(records, message)

    def sign_new(self, records: GatewayRecords, message: Message) -> Envelope:
        """The signed envelope of a message a new decision produced: signed and recorded in one
        insert; should the same message have been recorded already, the stored envelope."""
        envelope = seal(message.encode(), self.me, self.signing_key)
        if self._record(records, "sent", message, envelope):
            return envelope
        stored = records.sent(message.transfer_id, message.digest)
        if stored is None:  # the insert found the key taken, so the row exists
            raise InvariantViolation(f"sent message {message.digest} neither new nor stored")
        return stored

    def _record(
        self, records: GatewayRecords, direction: str, message: Message, envelope: Envelope
    ) -> bool:
        return records.add_evidence(
            message.transfer_id,
            direction,
            message.step,
            message.kind.value,
            message.digest,
            envelope,
            self.now_text(),
        )

    def ledger_step(
        self,
        tx: LedgerTx,
        transfer_id: str,
        op: LedgerOp,
        apply: Callable[[LedgerTx, Any], object],
        actor: Actor | None = None,
    ) -> None:
        result = self.ledger.apply(
            tx,
            GatewayStep(operation_id=f"{transfer_id}:{op.value}", transfer_id=transfer_id, step=op),
            actor or self.ledger.administrator,
            f"transfer-{op.value}",
            lambda t, work: _discard(apply(t, work)),
        )
        if result.replayed:
            raise InvariantViolation(
                f"transfer {transfer_id}: {op.value} was already applied (a hold resolves once)",
                transfer_id=transfer_id,
            )

    # -- peers ---------------------------------------------------------------------------------

    def receive(self, envelope: Envelope, peer: Identity, api: str = "peer") -> list[Envelope]:
        """Verify, decide, persist; the signed replies for the sender. Raises GatewayError."""
        transfer_id: str | None = None
        token = None
        try:
            payload, member = open_envelope(envelope, self.directory, peer)
            message = _decode(payload)
            transfer_id = message.transfer_id
            token = TRANSFER_ID.set(transfer_id)
            if message.sender != member.code:
                raise GatewayError("SENDER_MISMATCH", "the message names another sender")
            if message.receiver != self.me:
                raise GatewayError(
                    "WRONG_RECEIVER", f"message is for {message.receiver}, this is {self.me}"
                )
            applied = self.write(lambda tx: self._decide(tx, message, envelope, member))
        except EnvelopeRefused as refused:
            self._log(peer, api, refused.code, str(refused), transfer_id)
            raise GatewayError(refused.code, str(refused).split(": ", 1)[-1]) from None
        except GatewayError as error:
            self._log(peer, api, error.code, error.message, transfer_id)
            raise
        finally:
            if token is not None:
                TRANSFER_ID.reset(token)
        self.reach_after_commit(applied.effect)
        return applied.replies

    def _log(
        self, peer: Identity, api: str, code: str, message: str, transfer_id: str | None
    ) -> None:
        log.warning(
            "refused %s from %s (%s): %s",
            code,
            peer.uri,
            api,
            message,
            extra={"transfer_id": transfer_id, "code": code, "peer": peer.uri},
        )
        self.write(
            lambda tx: GatewayRecords(tx).log_refusal(
                self.now_text(), peer.uri, api, code, message, transfer_id
            )
        )

    def _decide(
        self, tx: LedgerTx, message: Message, envelope: Envelope, member: Member
    ) -> Applied:
        records = GatewayRecords(tx)
        row = records.transfer(message.transfer_id, lock=True)
        if message.kind is Kind.STATUS:
            return self._status_query(records, row, message)
        if message.kind in FROM_DESTINATION:
            if row is None or row.side != "source":
                raise GatewayError("UNKNOWN_TRANSFER", f"no transfer {message.transfer_id} sent")
            before = source_from_dict(row.record)
            decided = source.receive(before, message, self.clock())
            return self._apply_source(tx, before, decided, (message, envelope))
        assert message.kind in FROM_SOURCE
        if row is not None and row.side != "destination":
            raise GatewayError("WRONG_PARTY", f"transfer {message.transfer_id} is not incoming")
        prior = None if row is None else destination_from_dict(row.record)
        verdict, detail = None, ""
        if prior is None and message.kind is Kind.PROPOSE:
            if member.status is not MemberStatus.ACTIVE:
                raise GatewayError(
                    "MEMBER_SUSPENDED", f"{member.code} is {member.status.value}: no new transfers"
                )
            refusal = self._verdict(tx, message)
            if refusal is not None:
                verdict, detail = refusal.code, refusal.message
        decided_d = destination.receive(prior, message, self.me, self.clock(), verdict, detail)
        return self._apply_destination(tx, prior, decided_d, (message, envelope))

    def _verdict(self, tx: LedgerTx, message: Message) -> RegistryError | None:
        """Why this registry refuses a new, well-formed proposal (business grounds), or None."""
        try:
            lot = source_lot(message)
        except (KeyError, TypeError, ValueError, RegistryError) as error:
            raise GatewayError("MALFORMED_MESSAGE", f"proposal body: {error}") from None
        expires_at = message.body.get("expires_at")
        if not isinstance(expires_at, int | float) or self.clock() >= expires_at:
            raise GatewayError("MESSAGE_EXPIRED", "the proposal's hold has expired")
        for block in lot.blocks:
            try:
                self.ledger.programs.get(block.unit_class.program)
            except RegistryError as error:
                return error
        return interstate.incoming_refusal(
            self.ledger, tx, lot.to_account, lot.blocks, lot.provenance
        )

    def _status_query(
        self, records: GatewayRecords, row: TransferRow | None, message: Message
    ) -> Applied:
        if row is None or row.side != "source":
            raise GatewayError("UNKNOWN_TRANSFER", f"no transfer {message.transfer_id} sent")
        decided = source.receive(source_from_dict(row.record), message, self.clock())
        if isinstance(decided, Refusal):
            raise GatewayError(decided.code.value, decided.reason)
        if decided is None:
            return Applied([], None)
        return Applied([self.signed(records, m) for m in decided.send], None)

    def _apply_source(
        self,
        tx: LedgerTx,
        before: SourceRecord,
        decided: Decision[SourceRecord] | Refusal | None,
        inbound: tuple[Message, Envelope] | None,
    ) -> Applied:
        if isinstance(decided, Refusal):
            raise GatewayError(decided.code.value, decided.reason)
        records = GatewayRecords(tx)
        if decided is None:
            if inbound is not None:
                self._received(records, *inbound)
            return Applied([], None)
        effect = source_effect(before, decided)
        self.hooks.reach(effect, "after-receive")
        record = decided.record
        tid = record.transfer_id
        if decided.ledger is LedgerOp.DEBIT:
            self.ledger_step(tx, tid, LedgerOp.DEBIT, lambda t, w: interstate.debit(t, w, tid))
        elif decided.ledger is LedgerOp.RELEASE:
            self.ledger_step(tx, tid, LedgerOp.RELEASE, lambda t, w: interstate.release(t, w, tid))
        elif decided.ledger is not None:
            raise InvariantViolation(f"a source never applies {decided.ledger.value}")
        if inbound is not None:
            self._received(records, *inbound)
        replies = [self.sign_new(records, m) for m in decided.send]
        sent_now = {m.digest: e for m, e in zip(decided.send, replies, strict=True)}
        self._save_source(records, record, before, sent_now)
        self.hooks.reach(effect, "in-transaction")
        return Applied(replies, effect)

    def _save_source(
        self,
        records: GatewayRecords,
        record: SourceRecord,
        before: SourceRecord | None,
        sent_now: Mapping[str, Envelope] | None = None,
    ) -> None:
        """Persist the record and its outbox; ``sent_now`` holds envelopes signed moments ago
        in this transaction (by digest), so the outbox row does not look them up again."""
        error = None
        if record.status is TransferStatus.REJECTED:
            error = record.void_reason or "REJECTED"
        elif record.status is TransferStatus.CANCELLED:
            error = "CANCELLED"
        records.update_transfer(
            record.transfer_id,
            status=record.status.value,
            settled=record.settled,
            record=source_to_dict(record),
            at=self.now_text(),
            error_code=error,
            error_message=record.void_detail or record.void_reason or None,
            side="source",
            peer=record.destination,
            before=None if before is None else (before.status.value, before.settled),
        )
        if record.outbox is None:
            records.clear_outbox(record.transfer_id)
        elif before is None or before.outbox is None or before.outbox != record.outbox:
            self._put_outbox(records, record, record.outbox, sent_now or {}, replacing=True)

    def open_outbox(
        self, records: GatewayRecords, record: SourceRecord, sent_now: Mapping[str, Envelope]
    ) -> None:
        """The first outbox row of a transfer just inserted (nothing to replace yet)."""
        if record.outbox is not None:
            self._put_outbox(records, record, record.outbox, sent_now, replacing=False)

    def _put_outbox(
        self,
        records: GatewayRecords,
        record: SourceRecord,
        message: Message,
        sent_now: Mapping[str, Envelope],
        *,
        replacing: bool,
    ) -> None:
        envelope = sent_now.get(message.digest) or self.signed(records, message)
        records.put_outbox(
            record.transfer_id,
            record.destination,
            message.step,
            message.kind.value,
            envelope,
            self.clock(),
            replacing=replacing,
        )

    def _received(self, records: GatewayRecords, message: Message, envelope: Envelope) -> None:
        self._record(records, "received", message, envelope)

    def _apply_destination(
        self,
        tx: LedgerTx,
        before: DestinationRecord | None,
        decided: Decision[DestinationRecord] | Refusal | None,
        inbound: tuple[Message, Envelope],
    ) -> Applied:
        if isinstance(decided, Refusal):
            raise GatewayError(decided.code.value, decided.reason)
        records = GatewayRecords(tx)
        if decided is None:
            return Applied([], None)
        effect = destination_effect(before, decided)
        if effect is None:  # a duplicate: the stored replies, nothing changes
            return Applied([self.signed(records, m) for m in decided.send], None)
        self.hooks.reach(effect, "after-receive")
        record = decided.record
        tid = record.transfer_id
        op = decided.ledger
        if op is LedgerOp.PIN:
            lot = record.lot
            self.ledger_step(
                tx,
                tid,
                op,
                lambda t, w: interstate.pin(
                    self.ledger, t, w, tid, lot.to_account, lot.blocks, lot.provenance
                ),
            )
        elif op is LedgerOp.CREDIT:
            self.ledger_step(tx, tid, op, lambda t, w: interstate.credit(t, w, tid))
        elif op is LedgerOp.UNPIN:
            self.ledger_step(tx, tid, op, lambda t, w: interstate.unpin(t, w, tid))
        elif op is not None:
            raise InvariantViolation(f"a destination never applies {op.value}")
        self._received(records, *inbound)
        replies = [self.sign_new(records, m) for m in decided.send]
        self._save_destination(records, record, before)
        self.hooks.reach(effect, "in-transaction")
        return Applied(replies, effect)

    def _save_destination(
        self, records: GatewayRecords, record: DestinationRecord, before: DestinationRecord | None
    ) -> None:
        # Only the source waits for settlement; this side is settled once final.
        settled = record.status.final
        at = self.now_text()
        error = record.reason or None
        if before is None:
            records.insert_transfer(
                TransferRow(
                    transfer_id=record.transfer_id,
                    side="destination",
                    peer=record.source,
                    status=record.status.value,
                    settled=settled,
                    record=destination_to_dict(record),
                    from_account=record.lot.from_account,
                    to_account=record.lot.to_account,
                    quantity=record.lot.quantity,
                    requested_by=None,
                    request_id=None,
                    request_fingerprint=None,
                    error_code=error,
                    error_message=error,
                    created_at=at,
                    updated_at=at,
                )
            )
            return
        records.update_transfer(
            record.transfer_id,
            status=record.status.value,
            settled=settled,
            record=destination_to_dict(record),
            at=at,
            error_code=error,
            error_message=error,
            side="destination",
            peer=record.source,
            before=(before.status.value, before.status.final),
        )

    # -- re-driving what is not settled ---------------------------------------------------------

    def redrive(self) -> list[Outbound]:
        """On start and periodically: void what expired, re-send every outbox, ask when in doubt."""
        out: list[Outbound] = []
        rows = self.read(lambda tx: GatewayRecords(tx).unsettled("source"))
        for row in rows:
            effect, sent = self.write(
                functools.partial(self._tick_source, transfer_id=row.transfer_id)
            )
            self.reach_after_commit(effect)
            out += sent
        doubtful = self.read(lambda tx: GatewayRecords(tx).in_flight("destination", "accepted"))
        for row in doubtful:
            record = destination_from_dict(row.record)
            query = destination.tick(record, self.clock(), self.ask_after)
            if query is not None:
                envelope = self.write(functools.partial(self._sign_query, message=query))
                out.append(Outbound(record.source, "status", envelope))
        return out

    def _sign_query(self, tx: LedgerTx, message: Message) -> Envelope:
        return self.signed(GatewayRecords(tx), message)

    def _tick_source(self, tx: LedgerTx, transfer_id: str) -> tuple[str | None, list[Outbound]]:
        token = TRANSFER_ID.set(transfer_id)
        try:
            return self._tick_source_of(tx, transfer_id)
        finally:
            TRANSFER_ID.reset(token)

    def _tick_source_of(self, tx: LedgerTx, transfer_id: str) -> tuple[str | None, list[Outbound]]:
        records = GatewayRecords(tx)
        row = records.transfer(transfer_id, lock=True)
        if row is None or row.settled:
            return None, []
        record = source_from_dict(row.record)
        decided: Decision[SourceRecord] | Refusal | None
        if record.status is TransferStatus.PROPOSED and not self._active(record.destination):
            decided = source.cancel(record, f"registry {record.destination} is not active")
        else:
            decided = source.tick(record, self.clock())
        if decided is None or isinstance(decided, Refusal):
            return None, []
        if (
            decided.record == record
            and records.outbox_age(transfer_id, self.clock()) < RESEND_AFTER
        ):
            return None, []  # just sent: the answer is probably on its way
        applied = self._apply_source(tx, record, decided, None)
        return applied.effect, [
            Outbound(record.destination, "exchange", e) for e in applied.replies
        ]

    def answer(self, peer: str, envelopes: list[Envelope]) -> list[Outbound]:
        """Handle a peer's replies to what we sent; what to send it next. Never raises."""
        out: list[Outbound] = []
        identity = Identity(Role.REGISTRY, peer)
        for envelope in envelopes:
            try:
                replies = self.receive(envelope, identity, api="reply")
            except (GatewayError, RegistryError):
                continue  # logged; the re-drive will try again
            out += [Outbound(peer, "exchange", e) for e in replies]
        return out

    # -- reading -------------------------------------------------------------------------------

    def transfer_row(self, transfer_id: str) -> TransferRow | None:
        return self.read(lambda tx: GatewayRecords(tx).transfer(transfer_id))


def _discard(_value: object) -> None:
    return None


def _decode(payload: bytes) -> Message:
    try:
        return Message.decode(payload)
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as error:
        raise GatewayError(
            "MALFORMED_MESSAGE", f"payload is not a protocol message: {error}"
        ) from None


def source_lot(message: Message) -> Lot:
    lot = Lot.from_body(message.body)
    if not lot.blocks:
        raise ValueError("a proposal names at least one block")
    return lot
