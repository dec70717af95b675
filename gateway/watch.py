"""Wake a trader's long poll when its transfer settles, instead of polling the database.

The writer thread reports, after each commit, which transfers it settled and how they ended;
waiters on the event loop subscribe *before* they read (or, for a new proposal, before its first
message leaves), so a settlement that commits in between still wakes them.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(eq=False)
class Waiter:
    """One wait for one transfer: ``status`` is its final status once ``event`` is set."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    status: str | None = None

    async def wait(self) -> None:
        await self.event.wait()


class TransferWatch:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiters: defaultdict[str, set[Waiter]] = defaultdict(set)
        self.closing = False

    def subscribe(self, transfer_id: str) -> Waiter:
        waiter = Waiter()
        if self.closing:
            waiter.event.set()  # a stopping node answers at once, with what it has
        else:
            self.waiters[transfer_id].add(waiter)
        return waiter

    def close(self) -> None:
        """The node is stopping: every long poll answers now, its transfer as it stands (as on
        its deadline), instead of holding the shutdown for the whole grace period."""
        self.closing = True
        for waiting in self.waiters.values():
            for waiter in waiting:
                waiter.event.set()

    def unsubscribe(self, transfer_id: str, waiter: Waiter) -> None:
        waiting = self.waiters.get(transfer_id)
        if waiting is not None:
            waiting.discard(waiter)
            if not waiting:
                del self.waiters[transfer_id]

    def settled(self, statuses: Mapping[str, str]) -> None:
        """Thread-safe: called by the writer thread after a commit, transfer id -> status."""
        self.loop.call_soon_threadsafe(self._wake, dict(statuses))

    def _wake(self, statuses: Mapping[str, str]) -> None:
        for transfer_id, status in statuses.items():
            for waiter in self.waiters.get(transfer_id, ()):
                waiter.status = status
                waiter.event.set()
