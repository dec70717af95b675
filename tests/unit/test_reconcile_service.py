"""The Reconciliation service's rules without a network: who may read, which requests are
malformed, and that a stream's producer never runs more than a few parts ahead of its reader."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor

import pytest

from regfed.certs.directory import Directory, Member, MemberStatus
from regfed.certs.identity import Identity, Role
from regfed.gateway._generated.reconciliation.v1 import reconciliation_pb2 as pb
from regfed.gateway.errors import GatewayError
from regfed.gateway.reconcile_service import (
    check_journal_request,
    check_reconciler,
    check_run_id,
    pumped,
)
from regfed.node.domain.errors import InvalidArgument

pytestmark = pytest.mark.unit


def directory(*members: tuple[str, Role, MemberStatus]) -> Directory:
    return Directory(7, tuple(Member(c, r, "127.0.0.1:1", "", "", s) for c, r, s in members))


ACTIVE = MemberStatus.ACTIVE
FEDERATION = directory(("PA", Role.REGISTRY, ACTIVE), ("EPA", Role.OVERSIGHT, ACTIVE))


def test_the_active_oversight_member_may_read() -> None:
    check_reconciler(Identity(Role.OVERSIGHT, "EPA"), FEDERATION)


@pytest.mark.parametrize(
    ("identity", "listed"),
    [
        (Identity(Role.TRADER, "PA", "trader1"), FEDERATION),
        (Identity(Role.ADMINISTRATOR, "PA", "admin"), FEDERATION),
        (Identity(Role.REGISTRY, "PA"), FEDERATION),
        (Identity(Role.REGISTRY, "NY"), FEDERATION),
        # An oversight certificate of a code the directory does not list as its oversight
        # member, or no longer lists as active.
        (Identity(Role.OVERSIGHT, "FED"), FEDERATION),
        (Identity(Role.OVERSIGHT, "EPA"), directory(("EPA", Role.REGISTRY, ACTIVE))),
        (
            Identity(Role.OVERSIGHT, "EPA"),
            directory(("EPA", Role.OVERSIGHT, MemberStatus.SUSPENDED)),
        ),
        (Identity(Role.OVERSIGHT, "EPA"), directory(("EPA", Role.OVERSIGHT, MemberStatus.REMOVED))),
    ],
)
def test_everyone_else_is_refused_wrong_role(identity: Identity, listed: Directory) -> None:
    with pytest.raises(GatewayError) as refused:
        check_reconciler(identity, listed)
    assert (refused.value.code, refused.value.status) == ("WRONG_ROLE", "PERMISSION_DENIED")


@pytest.mark.parametrize(
    "request_",
    [
        pb.JournalRequest(run_id=""),
        pb.JournalRequest(run_id="r" * 129),
        pb.JournalRequest(run_id="r", after=-1),
        pb.JournalRequest(run_id="r", transfer_ids=["t"] * 10_001),
        pb.JournalRequest(run_id="r", transfer_ids=["ok", "x" * 65]),
        pb.JournalRequest(run_id="r", transfer_ids=[""]),
    ],
)
def test_malformed_journal_requests_are_invalid_arguments(request_: pb.JournalRequest) -> None:
    with pytest.raises(InvalidArgument):
        check_journal_request(request_)


def test_well_formed_requests_pass() -> None:
    check_run_id("run-1")
    check_journal_request(pb.JournalRequest(run_id="r", after=0, transfer_ids=["t"] * 10_000))
    check_journal_request(pb.JournalRequest(run_id="r", after=5, transfer_ids=["x" * 64]))
    with pytest.raises(InvalidArgument):
        check_run_id("")


class Counted:
    """A producer that counts what it made and notes when it was closed."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.made = 0
        self.closed = threading.Event()

    def __call__(self) -> Generator[int, None, None]:
        try:
            for i in range(self.total):
                self.made += 1
                yield i
        finally:
            self.closed.set()


@pytest.mark.asyncio
async def test_the_producer_stays_a_few_items_ahead_of_a_slow_reader() -> None:
    producer = Counted(1_000)
    with ThreadPoolExecutor(1) as executor:
        stream = pumped(producer, executor, ahead=3)
        taken = [await anext(stream)]
        await asyncio.sleep(0.3)  # a slow reader: the producer must wait for it
        assert producer.made <= len(taken) + 3
        taken += [await anext(stream) for _ in range(10)]
        await asyncio.sleep(0.3)
        assert producer.made <= len(taken) + 3
        taken += [item async for item in stream]
    assert taken == list(range(1_000))
    assert producer.closed.is_set()


@pytest.mark.asyncio
async def test_a_reader_that_stops_closes_the_producer() -> None:
    producer = Counted(1_000_000)
    with ThreadPoolExecutor(1) as executor:
        stream = pumped(producer, executor, ahead=2)
        assert [await anext(stream) for _ in range(5)] == list(range(5))
        await stream.aclose()  # the client went away
        began = time.monotonic()
        while not producer.closed.is_set() and time.monotonic() - began < 5:
            await asyncio.sleep(0.01)
    assert producer.closed.is_set() and producer.made <= 5 + 2 + 1


@pytest.mark.asyncio
async def test_a_producer_error_reaches_the_reader() -> None:
    def failing() -> Generator[int, None, None]:
        yield 1
        raise InvalidArgument("past the head")

    with ThreadPoolExecutor(1) as executor:
        stream = pumped(failing, executor)
        assert await anext(stream) == 1
        with pytest.raises(InvalidArgument, match="past the head"):
            await anext(stream)
