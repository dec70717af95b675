"""A trader's long poll is woken by the commit that settled its transfer, from the writer
thread, and by nothing else."""

from __future__ import annotations

import asyncio
import threading

import pytest

from regfed.gateway.watch import TransferWatch


@pytest.mark.asyncio
async def test_a_commit_on_another_thread_wakes_only_that_transfers_waiters() -> None:
    watch = TransferWatch(asyncio.get_running_loop())
    mine, other = watch.subscribe("t-1"), watch.subscribe("t-2")
    writer = threading.Thread(target=watch.settled, args=({"t-1": "completed"},))
    writer.start()
    writer.join()
    await asyncio.wait_for(mine.wait(), 5)
    assert mine.status == "completed"  # the outcome travels with the wake-up
    await asyncio.sleep(0)
    assert not other.event.is_set() and other.status is None


@pytest.mark.asyncio
async def test_a_change_between_subscribe_and_wait_is_not_lost() -> None:
    watch = TransferWatch(asyncio.get_running_loop())
    waiter = watch.subscribe("t-1")
    watch.settled({"t-1": "cancelled"})  # lands while the waiter is still reading
    await asyncio.wait_for(waiter.wait(), 5)
    assert waiter.status == "cancelled"


@pytest.mark.asyncio
async def test_unsubscribed_waiters_leave_nothing_behind() -> None:
    watch = TransferWatch(asyncio.get_running_loop())
    first, second = watch.subscribe("t-1"), watch.subscribe("t-1")
    watch.unsubscribe("t-1", first)
    assert "t-1" in watch.waiters
    watch.unsubscribe("t-1", second)
    watch.unsubscribe("t-1", second)  # twice is harmless
    assert watch.waiters == {}
    watch.settled({"t-1": "completed"})
    await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_closing_answers_every_long_poll_at_once_and_every_later_one_too() -> None:
    watch = TransferWatch(asyncio.get_running_loop())
    waiting = watch.subscribe("t-1")
    watch.close()
    await asyncio.wait_for(waiting.wait(), 1)
    assert waiting.status is None  # not settled: the transfer is answered as it stands
    later = watch.subscribe("t-2")
    await asyncio.wait_for(later.wait(), 1)
