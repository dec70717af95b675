"""The node's ``Reconciliation`` service: its signed snapshot and journal streams, served to the
oversight node and to no one else.

Only a certificate of role OVERSIGHT whose registry code is the oversight member active in this
node's directory may call it; anyone else is refused WRONG_ROLE, as GetStatus refuses, and
nothing is read or written. The database read runs on a thread of its own, never on the event
loop, so the node keeps serving transfers meanwhile; it stays at most a few parts ahead of what
the client has taken (the read waits for the client, not the other way round), so a slow reader
costs the node a few parts of memory, not its whole table.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, TypeVar

from regfed.certs.directory import Directory, MemberStatus
from regfed.certs.identity import Identity, Role
from regfed.node import RegistryError
from regfed.node.domain.errors import InvalidArgument

from ._generated.reconciliation.v1 import reconciliation_pb2 as pb
from ._generated.reconciliation.v1 import reconciliation_pb2_grpc as pb_grpc
from .errors import GatewayError, status_of
from .service import Gateway
from .snapshot_source import journal_parts, snapshot_parts
from .snapshot_stream import StreamTooLarge
from .transport import Callers, Context, _Timed, refuse

T = TypeVar("T")
RECONCILIATION_SERVICE = "regfed.reconciliation.v1.Reconciliation"
#: Parts the read may have made that the client has not taken yet.
READ_AHEAD = 2
#: Streams read at once; another waits for one of them to end.
STREAM_THREADS = 2
MAX_TRANSFER_IDS = 10_000
MAX_ID_CHARS = 64
MAX_RUN_ID_CHARS = 128
_END = object()


def check_reconciler(
    identity: Identity, directory: Directory, purpose: str = "for reconciliation"
) -> None:
    """Who may read a registry for reconciliation (or, ``purpose``, its public records): the
    oversight member active in the directory, by its own certificate. Refused: every
    registry's nodes and people."""
    member = directory.member(identity.registry)
    if identity.role is not Role.OVERSIGHT:
        raise GatewayError(
            "WRONG_ROLE",
            f"a {identity.registry} {identity.role.value} certificate cannot read a registry "
            f"{purpose}: only the oversight node's certificate can",
        )
    if member is None or member.role is not Role.OVERSIGHT or member.status != MemberStatus.ACTIVE:
        raise GatewayError(
            "WRONG_ROLE",
            f"{identity.registry} is not the active oversight member of directory version "
            f"{directory.version}",
        )


def check_run_id(run_id: str) -> None:
    if not run_id or len(run_id) > MAX_RUN_ID_CHARS:
        raise InvalidArgument(f"a run id of 1 to {MAX_RUN_ID_CHARS} characters is required")


def check_journal_request(request: pb.JournalRequest) -> None:
    check_run_id(request.run_id)
    if request.after < 0:
        raise InvalidArgument(f"after must be a journal position (0 or more), not {request.after}")
    ids = request.transfer_ids
    if len(ids) > MAX_TRANSFER_IDS:
        raise InvalidArgument(f"{len(ids)} transfer ids asked, at most {MAX_TRANSFER_IDS}")
    bad = next((t for t in ids if not t or len(t) > MAX_ID_CHARS), None)
    if bad is not None:
        raise InvalidArgument(f"transfer ids have 1 to {MAX_ID_CHARS} characters: {bad[:80]!r}")


async def pumped(
    produce: Callable[[], Generator[T, None, None]],
    executor: Executor,
    ahead: int = READ_AHEAD,
) -> AsyncGenerator[T, None]:
    """What ``produce()`` yields, produced on ``executor``, at most ``ahead`` items before
    the consumer takes them. When the consumer stops (done, cancelled, gone), the producer is
    closed at its next item, which ends its database read."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue()
    credits = threading.Semaphore(ahead)
    stop = threading.Event()

    def hand(done: bool, value: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
            loop.call_soon_threadsafe(ready.put_nowait, (done, value))

    def credit() -> bool:
        while not stop.is_set():
            if credits.acquire(timeout=0.2):
                return not stop.is_set()
        return False

    def run() -> None:
        try:
            with contextlib.closing(produce()) as items:
                while credit():
                    item = next(items, _END)
                    if item is _END:
                        hand(True, None)
                        return
                    hand(False, item)
        except BaseException as error:  # handed to the consumer, raised there
            hand(True, error)

    executor.submit(run)
    try:
        while True:
            done, value = await ready.get()
            if done:
                if value is not None:
                    raise value
                return
            yield value
            credits.release()
    finally:
        stop.set()
        credits.release()  # a producer waiting for credit sees the stop at once


Handler = Callable[[Any, Any, Context], AsyncGenerator[Any, None]]


def guarded_stream(handler: Handler) -> Handler:
    """A streaming handler's refusals leave as gRPC statuses with their code (as transport's
    ``_guarded`` does for single replies); its calls are timed when metrics are on. For the
    methods of a servicer with ``SERVICE`` and ``observe_rpc`` (transport's ``_Timed``)."""
    method = handler.__name__

    @functools.wraps(handler)
    async def wrapper(self: _Timed, request: Any, context: Context) -> AsyncGenerator[Any, None]:
        began = time.perf_counter()
        outcome = "UNKNOWN"
        try:
            async with contextlib.aclosing(handler(self, request, context)) as parts:
                async for part in parts:
                    yield part
            outcome = "OK"
        except (GatewayError, RegistryError, StreamTooLarge) as error:
            too_large = isinstance(error, StreamTooLarge)
            refusal = GatewayError("OVERSIZED", str(error)) if too_large else error
            outcome = status_of(refusal)[0]
            await refuse(context, refusal)
            raise AssertionError("abort always raises") from error
        except (asyncio.CancelledError, GeneratorExit):
            outcome = "CANCELLED"
            raise
        finally:
            if self.observe_rpc is not None:
                self.observe_rpc(self.SERVICE, method, outcome, time.perf_counter() - began)

    return wrapper


class ReconciliationService(_Timed, pb_grpc.ReconciliationServicer):
    SERVICE = "reconciliation"

    def __init__(self, gateway: Gateway, callers: Callers, read_ahead: int = READ_AHEAD) -> None:
        self.gateway = gateway
        self.callers = callers
        self.read_ahead = read_ahead
        self.executor = ThreadPoolExecutor(STREAM_THREADS, thread_name_prefix="regfed-reconcile")

    def _caller(self, context: Context) -> None:
        check_reconciler(self.callers.identify(context), self.gateway.directory)

    @guarded_stream
    async def Snapshot(  # noqa: N802 - the generated servicer's names
        self, request: pb.SnapshotRequest, context: Context
    ) -> AsyncGenerator[pb.SignedPart, None]:
        self._caller(context)
        check_run_id(request.run_id)
        gateway = self.gateway
        parts = functools.partial(
            snapshot_parts,
            gateway.ledger.store,
            registry=gateway.me,
            run_id=request.run_id,
            signing_key=gateway.signing_key,
        )
        async for part in pumped(parts, self.executor, self.read_ahead):
            yield part

    @guarded_stream
    async def Journal(  # noqa: N802
        self, request: pb.JournalRequest, context: Context
    ) -> AsyncGenerator[pb.SignedPart, None]:
        self._caller(context)
        check_journal_request(request)
        gateway = self.gateway
        parts = functools.partial(
            journal_parts,
            gateway.ledger.store,
            registry=gateway.me,
            run_id=request.run_id,
            after=request.after,
            transfer_ids=tuple(request.transfer_ids),
            signing_key=gateway.signing_key,
        )
        async for part in pumped(parts, self.executor, self.read_ahead):
            yield part

    def close(self) -> None:
        """Stop taking streams; reads still running end at their next part."""
        self.executor.shutdown(wait=False, cancel_futures=True)
