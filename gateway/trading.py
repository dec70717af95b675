"""What traders and operators do through their home node: propose, follow, cancel transfers.

Interstate and intrastate transfers look the same to the trader: one transfer id, one status
table. A proposal carries a request id made by the client; a retry with the same id returns the
same transfer, the same id with other fields is refused, so a retry never moves units twice.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, replace
from typing import Any

from regfed.certs.identity import Identity, Role
from regfed.node import Actor, ActorKind, RegistryError, interstate
from regfed.node.domain.account_numbers import AccountNumber
from regfed.node.domain.commands import Selection, Transfer
from regfed.node.domain.errors import (
    AccountClosed,
    AccountRestricted,
    InsufficientHoldings,
    InvalidArgument,
    ProgramForbidsSend,
    UnitsNotHeld,
    UnknownProgram,
)
from regfed.node.domain.prices import Price
from regfed.node.domain.representatives import Right
from regfed.node.domain.serials import UnitBlock
from regfed.node.storage.store import LedgerTx

from .envelope import MAX_PAYLOAD
from .errors import GatewayError
from .logs import TRANSFER_ID
from .protocol import LedgerOp, Lot, Refusal, SourceRecord, TransferStatus, source
from .protocol.records import source_from_dict, source_to_dict
from .service import Gateway, Outbound
from .store import GatewayRecords, TransferRow

#: Refusals on business grounds: the home node records the transfer as rejected. Anything else
#: (not authorized, unknown account, malformed request) is refused and changes nothing.
BUSINESS_REFUSALS = (
    InsufficientHoldings,
    UnitsNotHeld,
    ProgramForbidsSend,
    AccountRestricted,
    AccountClosed,
    UnknownProgram,
)


@dataclass(frozen=True, slots=True)
class TransferRequest:
    request_id: str
    from_account: str
    to_account: str
    selection: Selection
    #: The price per unit agreed, if given: recorded by this (the source) registry only.
    price: Price | None = None

    def fingerprint(self) -> str:
        s = self.selection
        body: dict[str, Any] = {
            "from": self.from_account,
            "to": self.to_account,
            "quantity": s.quantity,
            "program": s.program,
            "unit_type": s.unit_type,
            "vintage": s.vintage,
            "blocks": [b.to_dict() for b in s.blocks],
        }
        # Only when given: a proposal stored before prices existed keeps its fingerprint, and
        # the same request id with another price (or none) is a conflict.
        if self.price is not None:
            body["price"] = self.price.to_dict()
        raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class TransferView:
    transfer_id: str
    side: str
    status: str
    settled: bool
    from_account: str
    to_account: str
    quantity: int
    blocks: tuple[dict[str, Any], ...]
    error_code: str
    error_message: str
    request_id: str
    price: Price | None = None

    @classmethod
    def of(cls, row: TransferRow) -> TransferView:
        lot = row.record.get("lot", {})
        return cls(
            transfer_id=row.transfer_id,
            side=row.side,
            status=row.status,
            settled=row.settled,
            from_account=row.from_account,
            to_account=row.to_account,
            quantity=row.quantity,
            blocks=tuple(lot.get("blocks", ())),
            error_code=row.error_code or "",
            error_message=row.error_message or "",
            request_id=row.request_id or "",
            price=row.price,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "transfer_id": self.transfer_id,
            "side": self.side,
            "status": self.status,
            "settled": self.settled,
            "from_account": self.from_account,
            "to_account": self.to_account,
            "quantity": self.quantity,
            "blocks": list(self.blocks),
            "error_code": self.error_code,
            "error_message": self.error_message,
            "request_id": self.request_id,
            "price": None if self.price is None else self.price.to_dict(),
        }


def actor_of(identity: Identity, registry: str) -> Actor:
    """The ledger actor a client certificate stands for, at this registry's client API."""
    if identity.role is Role.OVERSIGHT:
        return Actor(ActorKind.OVERSIGHT, identity.registry)
    if identity.registry != registry:
        raise GatewayError(
            "WRONG_ROLE",
            f"a {identity.registry} certificate acts through the {identity.registry} node, "
            f"not {registry}",
        )
    if identity.role is Role.ADMINISTRATOR:
        return Actor.administrator(registry)
    if identity.role is Role.TRADER and identity.person:
        return Actor.person(identity.person)
    raise GatewayError("WRONG_ROLE", f"a {identity.role.value} certificate has no client API")


class Trading:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.me = gateway.me

    def propose(
        self, actor: Actor, request: TransferRequest
    ) -> tuple[TransferView, list[Outbound]]:
        if actor.kind is ActorKind.OVERSIGHT:
            raise GatewayError("READ_ONLY", "the oversight node reads; it cannot transfer")
        if not request.request_id or len(request.request_id) > 128:
            raise InvalidArgument("a proposal needs a request id of 1 to 128 characters")
        AccountNumber.parse(request.from_account)
        to = AccountNumber.parse(request.to_account)
        fingerprint = request.fingerprint()
        transfer_id = f"{self.me}-{uuid.uuid4().hex}"
        token = TRANSFER_ID.set(transfer_id)
        try:
            return self._propose(actor, request, transfer_id, to.registry, fingerprint)
        finally:
            TRANSFER_ID.reset(token)

    def _propose(
        self,
        actor: Actor,
        request: TransferRequest,
        transfer_id: str,
        to: str,
        fingerprint: str,
    ) -> tuple[TransferView, list[Outbound]]:
        if to == self.me:
            return self._local(actor, request, transfer_id, fingerprint), []
        refusal = self._membership_refusal(to)
        if refusal is not None:
            # A retry of a proposal made before the member was suspended gets its transfer;
            # every other path looks the request id up inside its own write transaction.
            existing = self._existing(actor, request, fingerprint)
            if existing is not None:
                return existing, []
            raise refusal
        hooks = self.gateway.hooks
        hooks.reach("source-escrow", "after-receive")
        try:
            view, outbound = self.gateway.write(
                lambda tx: self._open(tx, actor, request, transfer_id, to, fingerprint)
            )
        except BUSINESS_REFUSALS as error:
            return self._rejected(actor, request, transfer_id, to, fingerprint, error), []
        if outbound:
            self.gateway.reach_after_commit("source-escrow")
        return view, outbound

    def _membership_refusal(self, registry: str) -> GatewayError | None:
        member = self.gateway.member(registry)
        if member is None:
            return GatewayError(
                "UNKNOWN_REGISTRY", f"{registry} is not a registry of this federation"
            )
        if not self.gateway._active(registry):
            return GatewayError(
                "MEMBER_SUSPENDED",
                f"registry {registry} is {member.status.value}: no new transfers with it",
            )
        return None

    def _existing(
        self, actor: Actor, request: TransferRequest, fingerprint: str
    ) -> TransferView | None:
        row = self.gateway.read(
            lambda tx: GatewayRecords(tx).by_request(str(actor), request.request_id)
        )
        return None if row is None else _same_request(row, fingerprint)

    def _open(
        self,
        tx: LedgerTx,
        actor: Actor,
        request: TransferRequest,
        transfer_id: str,
        peer: str,
        fingerprint: str,
    ) -> tuple[TransferView, list[Outbound]]:
        records = GatewayRecords(tx)
        row = records.by_request(str(actor), request.request_id)
        if row is not None:
            return _same_request(row, fingerprint), []
        escrowed: list[UnitBlock] = []
        gateway = self.gateway
        gateway.ledger_step(
            tx,
            transfer_id,
            LedgerOp.ESCROW,
            lambda t, w: escrowed.extend(
                interstate.escrow(
                    gateway.ledger,
                    t,
                    w,
                    transfer_id,
                    request.from_account,
                    request.selection,
                    actor,
                    request.price,
                )
            ),
            actor=actor,
        )
        lot = Lot(
            tuple(escrowed),
            request.from_account,
            request.to_account,
            interstate.provenance_for(tx, escrowed),
        )
        decision = source.propose(
            transfer_id, self.me, peer, lot, gateway.clock(), gateway.hold_seconds
        )
        if len(decision.send[0].encode()) > MAX_PAYLOAD:
            raise InvalidArgument(
                f"the selection spans {len(lot.blocks)} blocks, too many for one transfer: "
                "split it into smaller transfers"
            )
        row = _row(
            decision.record, str(actor), request, fingerprint, gateway.now_text(), "source", peer
        )
        records.insert_transfer(row)
        [message] = decision.send
        envelope = gateway.sign_new(records, message)
        gateway.open_outbox(records, decision.record, {message.digest: envelope})
        outbound = [Outbound(peer, "exchange", envelope)]
        gateway.hooks.reach("source-escrow", "in-transaction")
        # The row as inserted is the row as stored: no need to read it back.
        return TransferView.of(row), outbound

    def _local(
        self, actor: Actor, request: TransferRequest, transfer_id: str, fingerprint: str
    ) -> TransferView:
        gateway = self.gateway

        def body(tx: LedgerTx) -> TransferView:
            records = GatewayRecords(tx)
            row = records.by_request(str(actor), request.request_id)
            if row is not None:
                return _same_request(row, fingerprint)
            command = Transfer(
                operation_id=f"{transfer_id}:local",
                from_account=request.from_account,
                to_account=request.to_account,
                selection=request.selection,
                price=request.price,
            )
            result = gateway.ledger.apply(
                tx, command, actor, "transfer", gateway.ledger.transfer_body(command, actor)
            )
            blocks = tuple(
                UnitBlock.from_dict(m) for m in result.movements if m.get("state") == "held"
            )
            lot = Lot(blocks, request.from_account, request.to_account)
            record = SourceRecord(
                transfer_id, self.me, self.me, lot, TransferStatus.COMPLETED, 0.0, settled=True
            )
            at = gateway.now_text()
            records.insert_transfer(
                _row(record, str(actor), request, fingerprint, at, "local", self.me)
            )
            return TransferView.of(records.transfer(transfer_id) or _missing(transfer_id))

        try:
            return gateway.write(body)
        except BUSINESS_REFUSALS as error:
            return self._rejected(actor, request, transfer_id, self.me, fingerprint, error)

    def _rejected(
        self,
        actor: Actor,
        request: TransferRequest,
        transfer_id: str,
        peer: str,
        fingerprint: str,
        error: RegistryError,
    ) -> TransferView:
        """The home node refused before any message: recorded as rejected, nothing moved."""
        gateway = self.gateway

        def body(tx: LedgerTx) -> TransferView:
            records = GatewayRecords(tx)
            row = records.by_request(str(actor), request.request_id)
            if row is not None:
                return _same_request(row, fingerprint)
            lot = Lot((), request.from_account, request.to_account)
            record = SourceRecord(
                transfer_id,
                self.me,
                peer,
                lot,
                TransferStatus.REJECTED,
                gateway.clock(),
                settled=True,
                void_reason=error.code,
            )
            at = gateway.now_text()
            side = "local" if peer == self.me else "source"
            new = _row(record, str(actor), request, fingerprint, at, side, peer)
            records.insert_transfer(
                replace(new, error_code=error.code, error_message=error.message)
            )
            return TransferView.of(records.transfer(transfer_id) or _missing(transfer_id))

        return gateway.write(body)

    def cancel(self, actor: Actor, transfer_id: str) -> tuple[TransferView, list[Outbound]]:
        if actor.kind is ActorKind.OVERSIGHT:
            raise GatewayError("READ_ONLY", "the oversight node reads; it cannot cancel")
        gateway = self.gateway

        def body(tx: LedgerTx) -> tuple[TransferView, list[Outbound]]:
            records = GatewayRecords(tx)
            row = self._authorized(tx, actor, transfer_id, Right.INITIATE, lock=True)
            if row.side != "source":
                raise GatewayError(
                    "TOO_LATE",
                    f"transfer {transfer_id} is {row.status} and not pending here: "
                    "only its home node can cancel a proposed transfer",
                )
            before = source_from_dict(row.record)
            decided = source.cancel(before, f"cancelled by {actor}")
            if isinstance(decided, Refusal):
                raise GatewayError(decided.code.value, decided.reason)
            applied = gateway._apply_source(tx, before, decided, None)
            out = [Outbound(row.peer, "exchange", e) for e in applied.replies]
            return TransferView.of(records.transfer(transfer_id) or _missing(transfer_id)), out

        token = TRANSFER_ID.set(transfer_id)
        try:
            view, outbound = gateway.write(body)
        finally:
            TRANSFER_ID.reset(token)
        gateway.reach_after_commit("source-void")
        return view, outbound

    def view(self, actor: Actor, transfer_id: str) -> TransferView:
        return self.gateway.read(
            lambda tx: TransferView.of(self._authorized(tx, actor, transfer_id, Right.READ))
        )

    def _authorized(
        self, tx: LedgerTx, actor: Actor, transfer_id: str, right: Right, *, lock: bool = False
    ) -> TransferRow:
        row = GatewayRecords(tx).transfer(transfer_id, lock=lock)
        if row is None:
            raise GatewayError("TRANSFER_NOT_FOUND", f"no transfer {transfer_id} at {self.me}")
        if actor.is_administrator or (actor.kind is ActorKind.OVERSIGHT and right is Right.READ):
            return row
        ledger = self.gateway.ledger
        home = row.to_account if row.side == "destination" else row.from_account
        try:
            account = ledger._account(tx, home)
            ledger._require_right(tx, actor, account, right)
        except RegistryError:
            # Whether a transfer exists is itself not for everyone to learn.
            raise GatewayError(
                "TRANSFER_NOT_FOUND", f"no transfer {transfer_id} at {self.me} for {actor}"
            ) from None
        return row


def _same_request(row: TransferRow, fingerprint: str) -> TransferView:
    if row.request_fingerprint != fingerprint:
        raise GatewayError(
            "REQUEST_ID_CONFLICT",
            f"request id {row.request_id} was used for another transfer ({row.transfer_id}); "
            "a retry must repeat the same fields, a new transfer needs a new request id",
        )
    return TransferView.of(row)


def _row(
    record: SourceRecord,
    actor: str,
    request: TransferRequest,
    fingerprint: str,
    at: str,
    side: str,
    peer: str,
) -> TransferRow:
    return TransferRow(
        transfer_id=record.transfer_id,
        side=side,
        peer=peer,
        status=record.status.value,
        settled=record.settled,
        record=source_to_dict(record),
        from_account=request.from_account,
        to_account=request.to_account,
        quantity=record.lot.quantity,
        requested_by=actor,
        request_id=request.request_id,
        request_fingerprint=fingerprint,
        error_code=None,
        error_message=None,
        created_at=at,
        updated_at=at,
        price=request.price,
    )


def _missing(transfer_id: str) -> TransferRow:
    raise AssertionError(f"transfer {transfer_id} vanished inside its own transaction")
