"""Sending to peers: deliver signed messages, feed their replies back, re-drive on a timer.

A failed send changes nothing: the message stays in the outbox (or is asked for again) and the
next re-drive sends it again, byte for byte, however long the peer is down. A peer that does not
answer is retried with a short capped backoff so that a restarted node is picked up quickly.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc

from ._generated.peer.v1 import peer_pb2_grpc
from .envelope import Envelope
from .service import Gateway, Outbound
from .transport import from_pb, to_pb
from .workers import Workers

log = logging.getLogger("regfed.gateway")
MAX_ROUNDS = 8
BACKOFF_CAP = 2.0


@dataclass
class _Peer:
    endpoint: str
    channel: grpc.aio.Channel
    stub: peer_pb2_grpc.PeerStub
    failures: int = 0
    retry_at: float = 0.0


@dataclass
class Dispatcher:
    gateway: Gateway
    workers: Workers
    credentials: grpc.ChannelCredentials
    timeout: float = 5.0
    peers: dict[str, _Peer] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    #: Told (peer, gRPC status name) of each failed send: the node's metrics count them.
    failed: Callable[[str, str], None] | None = None

    def submit(self, outbound: list[Outbound]) -> None:
        """Send in the background (from a request handler, which answers right away)."""
        if not outbound:
            return
        task = asyncio.get_running_loop().create_task(self.deliver(outbound))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def deliver(self, outbound: list[Outbound]) -> None:
        pending = outbound
        for _ in range(MAX_ROUNDS):
            if not pending:
                return
            answers = await asyncio.gather(*(self._send(o) for o in pending))
            follow_up: list[Outbound] = []
            for sent, replies in zip(pending, answers, strict=True):
                if replies:
                    follow_up += await self.workers.write(self.gateway.answer, sent.peer, replies)
            pending = follow_up

    def _peer(self, code: str) -> _Peer | None:
        member = self.gateway.member(code)
        if member is None:
            return None
        known = self.peers.get(code)
        if known is not None and known.endpoint == member.endpoint:
            return known
        channel = grpc.aio.secure_channel(member.endpoint, self.credentials)
        peer = _Peer(member.endpoint, channel, peer_pb2_grpc.PeerStub(channel))
        self.peers[code] = peer
        return peer

    async def _send(self, outbound: Outbound) -> list[Envelope]:
        peer = self._peer(outbound.peer)
        loop = asyncio.get_running_loop()
        if peer is None or loop.time() < peer.retry_at:
            return []
        call = peer.stub.Status if outbound.rpc == "status" else peer.stub.Exchange
        try:
            reply = await call(to_pb(outbound.envelope), timeout=self.timeout)
        except grpc.aio.AioRpcError as error:
            code = dict(error.trailing_metadata() or ()).get("regfed-code", "")
            if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                peer.failures += 1
                peer.retry_at = loop.time() + min(BACKOFF_CAP, 0.05 * 2**peer.failures)
            log.warning(
                "send to %s refused or failed: %s %s %s",
                outbound.peer,
                error.code().name,
                code,
                error.details(),
                extra={"transfer_id": _transfer_of(outbound.envelope), "peer": outbound.peer},
            )
            if self.failed is not None:
                self.failed(outbound.peer, error.code().name)
            return []
        peer.failures = 0
        peer.retry_at = 0.0
        return [from_pb(e) for e in reply.replies]

    async def redrive_forever(
        self, interval: float, between: Callable[[], None] = lambda: None
    ) -> None:
        """Re-drive, then ``between`` (on the writer thread), every ``interval`` seconds."""
        while True:
            try:
                await self.deliver(await self.workers.write(self.gateway.redrive))
                await self.workers.write(between)
            except Exception:  # the loop must outlive any one bad pass; it is logged
                log.exception("re-drive pass failed; retrying next interval")
            await asyncio.sleep(interval)

    async def drain(self, timeout: float) -> int:
        """Wait up to ``timeout`` for background sends; how many were still unfinished."""
        if self.tasks and timeout > 0:
            await asyncio.wait(list(self.tasks), timeout=timeout)
        return len(self.tasks)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for peer in self.peers.values():
            await peer.channel.close()


def _transfer_of(envelope: Envelope) -> str | None:
    """The transfer a message we signed is about (read on the failure path only)."""
    try:
        return str(json.loads(envelope.payload)["transfer_id"])
    except (ValueError, KeyError, TypeError):
        return None
