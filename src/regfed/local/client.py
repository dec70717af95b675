"""A synchronous client of a node's client API, over mutual TLS with a role's credential."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import grpc

from regfed.certs.identity import Role
from regfed.gateway._generated.client.v1 import client_pb2, client_pb2_grpc
from regfed.gateway._generated.health.v1 import health_pb2, health_pb2_grpc
from regfed.gateway.transport import CODE_KEY, block_dict, channel_credentials

from .federation import Federation


class TransferFailed(Exception):
    """A refusal from the node: its gRPC status, the stable code, the message."""

    def __init__(self, status: str, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "code": self.code, "message": self.message}


def refusal(error: grpc.RpcError) -> TransferFailed:
    """A node's refusal as :class:`TransferFailed`: its gRPC status, the stable code from the
    trailing metadata (else the status), the message without the code's prefix."""
    metadata = dict(error.trailing_metadata() or ())
    status = error.code().name
    code = str(metadata.get(CODE_KEY, status))
    details = str(error.details() or "")
    message = details.split(": ", 1)[-1] if details.startswith(code) else details
    return TransferFailed(status, code, message)


def transfer_dict(t: client_pb2.Transfer) -> dict[str, Any]:
    return {
        "transfer_id": t.transfer_id,
        "side": t.side,
        "status": t.status,
        "settled": t.settled,
        "from_account": t.from_account,
        "to_account": t.to_account,
        "quantity": t.quantity,
        "blocks": [block_dict(b) for b in t.blocks],
        "error_code": t.error_code,
        "error_message": t.error_message,
        "request_id": t.request_id,
        "price": (
            {"amount": t.price.amount, "currency": t.price.currency}
            if t.HasField("price")
            else None
        ),
    }


@dataclass
class RegistryClient:
    federation: Federation
    registry: str
    role: Role = Role.TRADER
    person: str | None = None
    timeout: float = 30.0

    def __post_init__(self) -> None:
        chain, key = self.federation.credential(self.registry, self.role, self.person)
        credentials = channel_credentials(
            self.federation.ca.read_bytes(), chain.read_bytes(), key.read_bytes()
        )
        self.channel = grpc.secure_channel(self.federation.endpoint(self.registry), credentials)
        self.stub = client_pb2_grpc.RegistryStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        try:
            return method(request, timeout=timeout or self.timeout)
        except grpc.RpcError as error:
            raise refusal(error) from None

    def holdings(self, account: str) -> list[dict[str, Any]]:
        reply = self._call(self.stub.ListHoldings, client_pb2.ListHoldingsRequest(account=account))
        return [block_dict(b) for b in reply.blocks]

    def propose(
        self,
        from_account: str,
        to_account: str,
        *,
        quantity: int = 0,
        program: str = "",
        unit_type: str = "",
        vintage: int = 0,
        blocks: list[dict[str, Any]] | None = None,
        request_id: str | None = None,
        wait_s: float = 0.0,
        price: str | None = None,
        currency: str = "",
    ) -> dict[str, Any]:
        """Propose; with ``wait_s``, answer once it settles or that many seconds pass. The
        ``price`` per unit (``"12.50"``; ``currency`` empty: USD) is checked by the node."""
        request = client_pb2.ProposeTransferRequest(
            request_id=request_id or uuid.uuid4().hex,
            from_account=from_account,
            to_account=to_account,
            quantity=quantity,
            program=program,
            unit_type=unit_type,
            vintage=vintage,
            blocks=[client_pb2.Block(**b) for b in blocks or []],
            wait_ms=int(wait_s * 1000),
            price=(None if price is None else client_pb2.Price(amount=price, currency=currency)),
        )
        return transfer_dict(self._call(self.stub.ProposeTransfer, request, self.timeout + wait_s))

    def get(self, transfer_id: str, wait_ms: int = 0) -> dict[str, Any]:
        request = client_pb2.GetTransferRequest(transfer_id=transfer_id, wait_ms=wait_ms)
        return transfer_dict(
            self._call(self.stub.GetTransfer, request, self.timeout + wait_ms / 1000)
        )

    def wait_settled(self, transfer_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
        return self.get(transfer_id, wait_ms=int(timeout_s * 1000))

    def cancel(self, transfer_id: str) -> dict[str, Any]:
        request = client_pb2.CancelTransferRequest(transfer_id=transfer_id)
        return transfer_dict(self._call(self.stub.CancelTransfer, request))

    def receipts(self, transfer_id: str) -> client_pb2.GetReceiptsReply:
        request = client_pb2.GetReceiptsRequest(transfer_id=transfer_id)
        reply: client_pb2.GetReceiptsReply = self._call(self.stub.GetReceipts, request)
        return reply

    def health(self, service: str = "", timeout: float | None = None) -> str:
        """The standard health check: SERVING, NOT_SERVING, SERVICE_UNKNOWN or UNKNOWN."""
        stub = health_pb2_grpc.HealthStub(self.channel)
        request = health_pb2.HealthCheckRequest(service=service)
        reply: health_pb2.HealthCheckResponse = self._call(stub.Check, request, timeout)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    def status(self, limit: int = 0, timeout: float | None = None) -> dict[str, Any]:
        """The node's own status (administrators, its node certificate, oversight)."""
        request = client_pb2.GetStatusRequest(limit=limit)
        reply: client_pb2.GetStatusReply = self._call(self.stub.GetStatus, request, timeout)
        return {
            "registry": reply.registry,
            "version": reply.version,
            "uptime_seconds": reply.uptime_seconds,
            "in_flight": reply.in_flight,
            "transfers": [
                {
                    "transfer_id": t.transfer_id,
                    "side": t.side,
                    "status": t.status,
                    "peer": t.peer,
                    "quantity": t.quantity,
                    "created_at": t.created_at,
                    "age_seconds": t.age_seconds,
                }
                for t in reply.transfers
            ],
            "node_time": reply.node_time,
            "directory_version": reply.directory_version,
        }
