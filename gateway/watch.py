"""Wake a trader's long poll when its transfer settles, instead of polling the database.

The writer thread reports, after each commit, which transfers it settled; waiters on the event
loop subscribe *before* they read, so a change that commits between their read and their wait
still wakes them.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict


class TransferWatch:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)

    def subscribe(self, transfer_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self.waiters[transfer_id].add(event)
        return event

    def unsubscribe(self, transfer_id: str, event: asyncio.Event) -> None:
        waiting = self.waiters.get(transfer_id)
        if waiting is not None:
            waiting.discard(event)
            if not waiting:
                del self.waiters[transfer_id]

    def settled(self, transfer_ids: frozenset[str]) -> None:
        """Thread-safe: called by the writer thread after a commit."""
        self.loop.call_soon_threadsafe(self._wake, transfer_ids)

    def _wake(self, transfer_ids: frozenset[str]) -> None:
        for transfer_id in transfer_ids:
            for event in self.waiters.get(transfer_id, ()):
                event.set()
