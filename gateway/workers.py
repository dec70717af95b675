"""Where blocking database work runs: one writer thread and a small reader pool, so the event
loop only moves bytes.

The writer applies the inputs that queued up while it was busy as one group: each in its own
savepoint of one transaction, committed once (group commit, as databases do for their logs).
Under load that turns many fsyncs and lock hand-overs into one; when idle a group is one input.
A reply leaves only when the group has committed: every future resolves after the commit.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
MAX_GROUP = 64
Batch = Callable[[], AbstractContextManager[None]]


@dataclass(slots=True)
class _Job:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    ok: bool = False
    outcome: Any = None


def _settle(jobs: list[_Job]) -> None:
    for job in jobs:
        if job.future.cancelled():
            continue
        if job.ok:
            job.future.set_result(job.outcome)
        else:
            job.future.set_exception(job.outcome)


class Workers:
    def __init__(self, batch: Batch | None = None, max_group: int = MAX_GROUP) -> None:
        """``batch`` opens a group transaction (``Store.batch``); without it, one per input."""
        self.batch = batch or nullcontext
        self.max_group = max_group if batch is not None else 1
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.writer = threading.Thread(target=self._write_loop, name="regfed-writer", daemon=True)
        self.writer.start()
        self.readers = ThreadPoolExecutor(2, thread_name_prefix="regfed-reader")

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self.jobs.put(_Job(fn, args, loop, future))
        return await future

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.readers, fn, *args)

    def close(self) -> None:
        self.jobs.put(None)
        self.writer.join()
        self.readers.shutdown(wait=True)

    def _write_loop(self) -> None:
        while True:
            first = self.jobs.get()
            if first is None:
                return
            group, stopping = [first], False
            while len(group) < self.max_group:
                try:
                    more = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                group.append(more)
            self._run(group)
            if stopping:
                return

    def _run(self, group: list[_Job]) -> None:
        try:
            with self.batch():
                for job in group:
                    try:
                        job.outcome, job.ok = job.fn(*job.args), True
                    except BaseException as error:
                        job.outcome, job.ok = error, False
        except BaseException as error:
            for job in group:
                if job.ok:
                    job.outcome, job.ok = error, False
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        for job in group:
            by_loop.setdefault(job.loop, []).append(job)
        for loop, jobs in by_loop.items():
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, jobs)
