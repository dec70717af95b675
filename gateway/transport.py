"""The gRPC boundary: mutual TLS, who the caller is, and the node's three services.

Every port requires a client certificate at the handshake (``require_client_auth``) that chains
to the federation CA; the caller's role and registry come from that certificate, never from a
request field. Database work runs on one writer thread (SQLite serializes writers anyway) and a
small reader pool, so the event loop only moves bytes. Refusals leave as gRPC error statuses
with the stable code in the trailing metadata key ``regfed-code``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
from cryptography import x509

from regfed.certs.identity import Identity, Role
from regfed.certs.intermediate import load_crl
from regfed.certs.verify import CertificateRefused, identity_of_peer_chain
from regfed.node import RegistryError
from regfed.node.domain.commands import Selection
from regfed.node.domain.prices import Price
from regfed.node.domain.serials import UnitBlock

from ._generated.client.v1 import client_pb2, client_pb2_grpc
from ._generated.health.v1 import health_pb2, health_pb2_grpc
from ._generated.peer.v1 import peer_pb2, peer_pb2_grpc
from .envelope import Envelope
from .errors import GatewayError, status_of
from .service import Gateway, Outbound
from .status import check_status_reader, regfed_version, unsettled
from .store import GatewayRecords
from .trading import Trading, TransferRequest, TransferView, actor_of
from .watch import TransferWatch
from .workers import Workers

T = TypeVar("T")
R = TypeVar("R")
Context = Any  # grpc.aio.ServicerContext: grpc ships no type information
CODE_KEY = "regfed-code"
MAX_MESSAGE_BYTES = 256 * 1024
PEER_SERVICE = "regfed.peer.v1.Peer"
CLIENT_SERVICE = "regfed.client.v1.Registry"
HEALTH_SERVICE = "grpc.health.v1.Health"
IDENTITY_TTL = 60.0
MAX_VERIFIED = 4096
Send = Callable[[list[Outbound]], None]


def server_credentials(ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [(key_pem, cert_pem)], root_certificates=ca_pem, require_client_auth=True
    )


def channel_credentials(ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=ca_pem, private_key=key_pem, certificate_chain=cert_pem
    )


def _modified(path: Path) -> int:
    """A file's modification stamp, 0 when it is absent: one system call per check, since a
    revocation must take effect on the very next call."""
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return 0


class Callers:
    """Who is calling: the verified client chain, checked again against the federation CA, the
    registry intermediates and their revocation lists (re-read when a list file changes).

    The TLS handshake already proved the chain ends at the CA; this adds what TLS cannot: a
    person's certificate must come from its own registry's intermediate and not be revoked.
    """

    def __init__(self, ca: Path, crls: tuple[Path, ...] = ()) -> None:
        self.ca = x509.load_pem_x509_certificate(ca.read_bytes())
        self.crl_files = crls
        self.seen: tuple[int, ...] = ()
        self.crls: list[x509.CertificateRevocationList] = []
        # Chains already verified, so a busy peer's every call does not re-verify signatures;
        # emptied when a revocation list changes, and each entry re-checked after IDENTITY_TTL
        # (a certificate that expired since is then refused).
        self.verified: dict[bytes, tuple[Identity, float]] = {}

    def _revocations(self) -> list[x509.CertificateRevocationList]:
        stamps = tuple(_modified(p) for p in self.crl_files)
        if stamps != self.seen:
            self.crls = [load_crl(p) for p in self.crl_files if p.exists()]
            self.seen = stamps
            self.verified.clear()
        return self.crls

    def identify(self, context: Context) -> Identity:
        auth = context.auth_context()
        pems = list(auth.get("x509_pem_cert", [])) + list(auth.get("x509_pem_cert_chain", []))
        if not pems:
            raise GatewayError("NO_CLIENT_CERTIFICATE", "a client certificate is required")
        chain = b"".join(pems)
        revocations = self._revocations()
        known = self.verified.get(chain)
        if known is not None and time.monotonic() - known[1] < IDENTITY_TTL:
            return known[0]
        try:
            identity = identity_of_peer_chain(chain, self.ca, revocations)
        except CertificateRefused as refused:
            raise GatewayError(
                "CERTIFICATE_REFUSED", f"{refused.code}: {refused.message}"
            ) from None
        if len(self.verified) >= MAX_VERIFIED:
            self.verified.clear()
        self.verified[chain] = (identity, time.monotonic())
        return identity


async def refuse(context: Context, error: Exception) -> None:
    status, code, message = status_of(error)
    await context.abort(
        grpc.StatusCode[status], f"{code}: {message}", trailing_metadata=((CODE_KEY, code),)
    )


def to_pb(envelope: Envelope) -> peer_pb2.Envelope:
    return peer_pb2.Envelope(
        payload=envelope.payload,
        sender=envelope.sender,
        key_id=envelope.key_id,
        signature=envelope.signature,
    )


def from_pb(envelope: peer_pb2.Envelope) -> Envelope:
    return Envelope(envelope.payload, envelope.sender, envelope.key_id, envelope.signature)


MAX_WAIT_MS = 600_000


def _now() -> float:
    return asyncio.get_running_loop().time()


def _deadline(wait_ms: int) -> float:
    """Event-loop time at which a wait of ``wait_ms`` (clamped to 0..10 minutes) ends."""
    return _now() + min(max(wait_ms, 0), MAX_WAIT_MS) / 1000


#: Told each call's (service, method, gRPC status name, seconds): the node's metrics.
ObserveRpc = Callable[[str, str, str, float], None]


class _Timed:
    """A servicer whose calls are timed when ``observe_rpc`` is set (two clock reads and one
    histogram update per call; nothing when it is not)."""

    SERVICE = ""
    observe_rpc: ObserveRpc | None = None


Svc = TypeVar("Svc", bound=_Timed)


def _guarded(
    handler: Callable[[Svc, R, Context], Awaitable[T]],
) -> Callable[[Svc, R, Context], Awaitable[T]]:
    """Refusals leave as gRPC statuses with their code; nothing else is caught here."""
    method = handler.__name__

    @functools.wraps(handler)
    async def wrapper(self: Svc, request: R, context: Context) -> T:
        began = time.perf_counter()
        outcome = "UNKNOWN"
        try:
            reply = await handler(self, request, context)
            outcome = "OK"
            return reply
        except (GatewayError, RegistryError) as error:
            outcome = status_of(error)[0]
            await refuse(context, error)
            raise AssertionError("abort always raises") from error
        except asyncio.CancelledError:
            outcome = "CANCELLED"
            raise
        finally:
            observe = self.observe_rpc
            if observe is not None:
                observe(self.SERVICE, method, outcome, time.perf_counter() - began)

    return wrapper


class PeerService(_Timed, peer_pb2_grpc.PeerServicer):
    SERVICE = "peer"

    def __init__(self, gateway: Gateway, workers: Workers, callers: Callers) -> None:
        self.gateway = gateway
        self.workers = workers
        self.callers = callers

    async def _deliver(
        self, request: peer_pb2.Envelope, context: Context, api: str
    ) -> peer_pb2.ExchangeReply:
        identity = self.callers.identify(context)
        replies = await self.workers.write(self.gateway.receive, from_pb(request), identity, api)
        return peer_pb2.ExchangeReply(replies=[to_pb(e) for e in replies])

    @_guarded
    async def Exchange(  # noqa: N802 - the generated servicer's names
        self, request: peer_pb2.Envelope, context: Context
    ) -> peer_pb2.ExchangeReply:
        return await self._deliver(request, context, "peer")

    @_guarded
    async def Status(  # noqa: N802
        self, request: peer_pb2.Envelope, context: Context
    ) -> peer_pb2.ExchangeReply:
        return await self._deliver(request, context, "peer-status")


def _block(
    d: dict[str, Any], state: str = "", provenance: dict[str, Any] | None = None
) -> client_pb2.Block:
    block = client_pb2.Block(
        issuer=str(d["issuer"]),
        program=str(d["program"]),
        unit_type=str(d["unit_type"]),
        vintage=int(d["vintage"]),
        start=int(d["start"]),
        end=int(d["end"]),
        state=state,
    )
    if provenance is not None:
        block.provenance.CopyFrom(
            client_pb2.Provenance(
                issuance=_block(provenance["issuance"]),
                **{k: str(v) for k, v in provenance.items() if k != "issuance"},
            )
        )
    return block


def transfer_pb(view: TransferView) -> client_pb2.Transfer:
    return client_pb2.Transfer(
        transfer_id=view.transfer_id,
        status=view.status,
        settled=view.settled,
        from_account=view.from_account,
        to_account=view.to_account,
        blocks=[_block(b) for b in view.blocks],
        error_code=view.error_code,
        error_message=view.error_message,
        quantity=view.quantity,
        request_id=view.request_id,
        side=view.side,
        price=None if view.price is None else client_pb2.Price(**view.price.to_dict()),
    )


def block_dict(b: client_pb2.Block) -> dict[str, Any]:
    """A wire block as the dict the domain and the CLI use (``state`` only when set)."""
    out: dict[str, Any] = {
        "issuer": b.issuer,
        "program": b.program,
        "unit_type": b.unit_type,
        "vintage": b.vintage,
        "start": b.start,
        "end": b.end,
    }
    if b.state:
        out["state"] = b.state
    if b.HasField("provenance"):
        p = b.provenance
        out["provenance"] = {
            "issuance": block_dict(p.issuance),
            **{f.name: getattr(p, f.name) for f in p.DESCRIPTOR.fields if f.name != "issuance"},
        }
    return out


def selection_of(request: client_pb2.ProposeTransferRequest) -> Selection:
    return Selection(
        quantity=request.quantity or None,
        program=request.program or None,
        unit_type=request.unit_type or None,
        vintage=request.vintage or None,
        blocks=tuple(UnitBlock.from_dict(block_dict(b)) for b in request.blocks),
    )


def price_of(request: client_pb2.ProposeTransferRequest) -> Price | None:
    """The request's price per unit, checked (InvalidArgument when it is not one), or None."""
    if not request.HasField("price"):
        return None
    return Price.parse(request.price.amount, request.price.currency)


class RegistryService(_Timed, client_pb2_grpc.RegistryServicer):
    """The client API: traders, administrators and (read-only) the oversight node."""

    SERVICE = "client"

    def __init__(
        self,
        gateway: Gateway,
        workers: Workers,
        callers: Callers,
        send: Send,
        settlements: TransferWatch,
    ) -> None:
        self.gateway = gateway
        self.settlements = settlements
        self.callers = callers
        self.trading = Trading(gateway)
        self.workers = workers
        self.send = send
        self.started = time.monotonic()

    def _actor(self, context: Context) -> Any:
        identity = self.callers.identify(context)
        if identity.role is Role.REGISTRY:
            raise GatewayError("WRONG_ROLE", "a registry node certificate has no client API")
        return actor_of(identity, self.gateway.me)

    @_guarded
    async def ListHoldings(  # noqa: N802
        self, request: client_pb2.ListHoldingsRequest, context: Context
    ) -> client_pb2.ListHoldingsReply:
        actor = self._actor(context)
        holdings = await self.workers.read(
            self.gateway.registry.queries.holdings, request.account, actor
        )
        return client_pb2.ListHoldingsReply(
            account=holdings.account,
            blocks=[_block(h.block, h.state, h.provenance) for h in holdings.blocks],
        )

    @_guarded
    async def ProposeTransfer(  # noqa: N802
        self,
        request: client_pb2.ProposeTransferRequest,
        context: Context,
    ) -> client_pb2.Transfer:
        actor = self._actor(context)
        proposal = TransferRequest(
            request.request_id,
            request.from_account,
            request.to_account,
            selection_of(request),
            price_of(request),
        )
        deadline = _deadline(request.wait_ms)
        view, outbound = await self.workers.write(self.trading.propose, actor, proposal)
        if view.settled or deadline <= _now():
            self.send(outbound)
            return transfer_pb(view)
        if not outbound:  # a retry: the transfer's messages left with the first proposal
            return transfer_pb(await self._follow(actor, view.transfer_id, deadline))
        # Nothing can settle this transfer before its first message leaves, so subscribing
        # before sending needs no read between.
        settled = self.settlements.subscribe(view.transfer_id)
        try:
            self.send(outbound)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(settled.wait(), deadline - _now())
        finally:
            self.settlements.unsubscribe(view.transfer_id, settled)
        if settled.status == "completed":
            # Completion changes nothing the trader saw but the status (the blocks are the
            # escrowed ones, there is no error): no need to read the transfer again.
            return transfer_pb(dataclasses.replace(view, status="completed", settled=True))
        return transfer_pb(await self.workers.read(self.trading.view, actor, view.transfer_id))

    async def _follow(self, actor: Any, transfer_id: str, deadline: float) -> TransferView:
        """Read the transfer until it settles or ``deadline`` (event-loop time) passes."""
        while True:
            settled = self.settlements.subscribe(transfer_id)
            try:
                view = await self.workers.read(self.trading.view, actor, transfer_id)
                remaining = deadline - _now()
                if view.settled or remaining <= 0 or self.settlements.closing:
                    return view
                # On timeout: one last read, then the reply as it stands.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(settled.wait(), remaining)
            finally:
                self.settlements.unsubscribe(transfer_id, settled)

    @_guarded
    async def GetTransfer(  # noqa: N802
        self, request: client_pb2.GetTransferRequest, context: Context
    ) -> client_pb2.Transfer:
        actor = self._actor(context)
        deadline = _deadline(request.wait_ms)
        return transfer_pb(await self._follow(actor, request.transfer_id, deadline))

    @_guarded
    async def CancelTransfer(  # noqa: N802
        self,
        request: client_pb2.CancelTransferRequest,
        context: Context,
    ) -> client_pb2.Transfer:
        actor = self._actor(context)
        view, outbound = await self.workers.write(self.trading.cancel, actor, request.transfer_id)
        self.send(outbound)
        return transfer_pb(view)

    @_guarded
    async def GetReceipts(  # noqa: N802
        self, request: client_pb2.GetReceiptsRequest, context: Context
    ) -> client_pb2.GetReceiptsReply:
        actor = self._actor(context)
        view = await self.workers.read(self.trading.view, actor, request.transfer_id)
        receipts = await self.workers.read(
            self.gateway.read, lambda tx: GatewayRecords(tx).receipts(request.transfer_id)
        )
        return client_pb2.GetReceiptsReply(
            transfer=transfer_pb(view),
            receipts=[
                client_pb2.Receipt(
                    direction=r.direction,
                    step=r.step,
                    kind=r.kind,
                    payload=r.envelope.payload,
                    sender=r.envelope.sender,
                    key_id=r.envelope.key_id,
                    signature=r.envelope.signature,
                    recorded_at=r.recorded_at,
                )
                for r in receipts
            ],
        )

    @_guarded
    async def GetStatus(  # noqa: N802
        self, request: client_pb2.GetStatusRequest, context: Context
    ) -> client_pb2.GetStatusReply:
        check_status_reader(self.callers.identify(context), self.gateway.me)
        report = await self.workers.read(self.gateway.read, lambda tx: unsettled(tx, request.limit))
        return client_pb2.GetStatusReply(
            registry=self.gateway.me,
            version=regfed_version(),
            uptime_seconds=time.monotonic() - self.started,
            in_flight=report.total,
            transfers=[
                client_pb2.InFlightTransfer(
                    transfer_id=t.transfer_id,
                    side=t.side,
                    status=t.status,
                    peer=t.peer,
                    quantity=t.quantity,
                    created_at=t.created_at,
                    age_seconds=t.age_seconds,
                )
                for t in report.transfers
            ],
            node_time=report.node_time,
            directory_version=self.gateway.directory.version,
        )


class HealthService(health_pb2_grpc.HealthServicer):
    SERVICES: tuple[str, ...] = ("", PEER_SERVICE, CLIENT_SERVICE)

    def __init__(self) -> None:
        self.serving = True
        self.stopping = asyncio.Event()

    def stop(self) -> None:
        """NOT_SERVING from now on; open Watch streams send it and end, so that a stopping
        server is not kept waiting for its grace period by a probe that never hangs up."""
        self.serving = False
        self.stopping.set()

    def _status(self, service: str) -> int:
        if service not in self.SERVICES:
            return health_pb2.HealthCheckResponse.SERVICE_UNKNOWN
        if self.serving:
            return health_pb2.HealthCheckResponse.SERVING
        return health_pb2.HealthCheckResponse.NOT_SERVING

    async def Check(  # noqa: N802
        self, request: health_pb2.HealthCheckRequest, context: Context
    ) -> health_pb2.HealthCheckResponse:
        return health_pb2.HealthCheckResponse(status=self._status(request.service))  # type: ignore[arg-type]

    async def Watch(  # noqa: N802
        self, request: health_pb2.HealthCheckRequest, context: Context
    ) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        last = None
        while True:
            status = self._status(request.service)
            if status != last:
                yield health_pb2.HealthCheckResponse(status=status)  # type: ignore[arg-type]
                last = status
            if self.stopping.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), 1.0)
