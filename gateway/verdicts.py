"""A registry node fetches its own reconciliation verdict from the oversight node, verifies it
and applies it (quarantine of its disputed blocks, or their release after a clean run).

The node pulls: nothing the oversight node sends can change a registry, only a document the
node itself asked for and verified against the oversight member's key pinned in the signed
directory. Refusals (a forged or unsigned document, one for another registry, one older than
the verdict already applied) change nothing but a line in the security log.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc

from regfed.certs.directory import Directory, Member, MemberStatus
from regfed.certs.documents import DocumentRefused, SignedDocument, open_document
from regfed.certs.identity import Role
from regfed.node.domain.commands import ApplyVerdict
from regfed.node.domain.errors import RegistryError
from regfed.node.domain.serials import UnitBlock
from regfed.node.ledger import OperationResult
from regfed.node.quarantine import apply_verdict, oversight_actor

from ._generated.reconciliation.v1 import reconciliation_pb2, reconciliation_pb2_grpc
from .service import Gateway
from .store import GatewayRecords
from .transport import MAX_MESSAGE_BYTES

log = logging.getLogger("regfed.verdicts")

VERDICT_FORMAT = "regfed-verdict/1"
#: A verdict names at most this many disputed blocks (a larger dispute is refused unread).
MAX_DISPUTED = 100_000


class VerdictRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def oversight_member(directory: Directory) -> Member | None:
    """The directory's oversight member (the signer of verdicts), unless it was removed."""
    found = [m for m in directory.members if m.role is Role.OVERSIGHT]
    if len(found) != 1 or found[0].status is MemberStatus.REMOVED:
        return None
    return found[0]


def verdict_command(body: dict[str, Any], registry: str) -> ApplyVerdict:
    """The ledger command a verified verdict body asks for, or :class:`VerdictRefused`."""
    if body.get("format") != VERDICT_FORMAT:
        raise VerdictRefused("MALFORMED", f"not a {VERDICT_FORMAT} document")
    if body.get("registry") != registry:
        raise VerdictRefused(
            "WRONG_REGISTRY", f"the verdict is for {body.get('registry')!r}, not {registry}"
        )
    try:
        disputed = body["disputed"]
        if not isinstance(disputed, list) or len(disputed) > MAX_DISPUTED:
            raise ValueError(f"disputed must be a list of at most {MAX_DISPUTED} blocks")
        run_id, sequence = str(body["run_id"]), body["sequence"]
        if not isinstance(sequence, int) or isinstance(sequence, bool):
            raise ValueError("sequence must be an integer")
        return ApplyVerdict(
            operation_id=f"verdict:{run_id}",
            run_id=run_id,
            sequence=sequence,
            status=str(body["status"]),
            release=bool(body["release"]),
            blocks=tuple(UnitBlock.from_dict(b) for b in disputed),
        )
    except (KeyError, TypeError, ValueError, RegistryError) as error:
        raise VerdictRefused("MALFORMED", f"verdict does not parse: {error}") from None


def accept_verdict(gateway: Gateway, document: SignedDocument) -> OperationResult:
    """Verify a verdict and apply it. Raises :class:`VerdictRefused` or a ledger refusal
    (``STALE_VERDICT``); either way nothing changed but the security log."""
    signer = oversight_member(gateway.directory)
    try:
        body = open_document(document, signer)
        command = verdict_command(body, gateway.me)
        assert signer is not None
        return apply_verdict(gateway.ledger, command, oversight_actor(signer.code))
    except (DocumentRefused, VerdictRefused, RegistryError) as error:
        code = str(getattr(error, "code", "REFUSED"))
        who = signer.code if signer is not None else "oversight"
        message = str(error)
        log.warning("verdict refused: %s", message, extra={"code": code})
        gateway.write(
            lambda tx: GatewayRecords(tx).log_refusal(
                gateway.now_text(), f"urn:regfed:oversight:{who}", "verdict", code, message, None
            )
        )
        raise


def document_of(reply: reconciliation_pb2.SignedDocument) -> SignedDocument:
    return SignedDocument(bytes(reply.payload), bytes(reply.signature), reply.key_id)


class VerdictPoller:
    """Asks the oversight node for this registry's verdict every ``interval`` seconds."""

    def __init__(self, gateway: Gateway, credentials: grpc.ChannelCredentials) -> None:
        self.gateway = gateway
        self.credentials = credentials
        self._channel: grpc.aio.Channel | None = None
        self._endpoint = ""
        #: The last verdict applied or refused (by run id): a refusal is logged once, not at
        #: every poll.
        self.last_seen: str | None = None

    def _stub(self, member: Member) -> reconciliation_pb2_grpc.OversightStub:
        if self._channel is None or self._endpoint != member.endpoint:
            options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
            self._channel = grpc.aio.secure_channel(member.endpoint, self.credentials, options)
            self._endpoint = member.endpoint
        return reconciliation_pb2_grpc.OversightStub(self._channel)

    async def poll_once(self) -> str:
        """What happened: ``applied``, ``unchanged``, ``none`` (no verdict yet), ``refused`` or
        ``unreachable``."""
        member = oversight_member(self.gateway.directory)
        if member is None:
            return "none"
        request = reconciliation_pb2.GetVerdictRequest(registry=self.gateway.me)
        try:
            reply = await self._stub(member).GetVerdict(request, timeout=10.0)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return "none"
            log.debug("oversight node unreachable: %s", error.details())
            return "unreachable"
        document = document_of(reply)
        key = f"{document.key_id}:{hash(document.payload)}"
        if key == self.last_seen:
            return "unchanged"
        self.last_seen = key
        try:
            result = await asyncio.to_thread(accept_verdict, self.gateway, document)
        except (DocumentRefused, VerdictRefused, RegistryError):
            return "refused"
        if not result.replayed:
            detail = result.detail
            log.info(
                "verdict of run %s (sequence %s, %s) applied: %d quarantined, %d released",
                detail["run_id"],
                detail["sequence"],
                detail["status"],
                len(detail.get("quarantined", [])),
                len(detail.get("released", [])),
            )
            return "applied"
        return "unchanged"

    async def run_forever(self, interval: float) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:  # a bad poll must not stop the node's other work
                log.exception("verdict poll failed")
            await asyncio.sleep(interval)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
