"""Reconciliation of a local federation, read straight from every node's database.

The same checks the oversight node runs over signed snapshots (issue 5), fed here from each
registry's tables by the very reader a node streams its snapshot from
(:mod:`regfed.gateway.snapshot_source`): one consistent read per registry of its blocks, its own
issuances, its totals (summed by the database, an aggregation independent of the block stream),
its interstate transfer records and its unsettled transfers, aged on this machine's clock.
Meant for a federation at rest (the end of a scenario, the demo): the reads of two registries
are not taken at one moment.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from contextlib import ExitStack

from regfed.gateway.snapshot_source import registry_read
from regfed.gateway.snapshot_stream import ClassBlocks
from regfed.node.ledger import utc_now
from regfed.node.storage.engine import make_engine
from regfed.node.storage.store import Store
from regfed.reconciliation import (
    STATES,
    Block,
    ReconciliationResult,
    RegistrySnapshot,
    reconcile,
)

from .federation import Federation


def reconcile_local(
    federation: Federation, *, settlement_limit_s: float = 86_400.0
) -> ReconciliationResult:
    # Every registry's read stays open while the sweep merges their block streams: blocks are
    # streamed from the databases, never all in memory.
    with ExitStack() as stack:
        snapshots = [_snapshot(stack, federation, code) for code in federation.registries]
        return reconcile(snapshots, settlement_limit_s=settlement_limit_s)


def _snapshot(stack: ExitStack, federation: Federation, code: str) -> RegistrySnapshot:
    engine = make_engine(federation.node_config(code).database)
    stack.callback(engine.dispose)
    read = stack.enter_context(registry_read(Store(engine)))
    blocks = _blocks(read.blocks(read.classes()), code)
    transfers = read.transfers(code)
    # Closed before the read ends, should the sweep stop early: no cursor outlives it.
    stack.callback(transfers.close)
    stack.callback(blocks.close)
    return RegistrySnapshot(
        code,
        blocks=blocks,
        issuances=list(read.issuances()),
        totals=read.totals(),
        unsettled=read.unsettled(utc_now()),
        transfers=transfers,
    )


def _blocks(classes: Iterator[ClassBlocks], code: str) -> Generator[Block, None, None]:
    for (issuer, program, unit_type, vintage), rows in classes:
        for start, end, state, transfer_id in rows:
            yield Block(
                issuer, program, unit_type, vintage, start, end, code, STATES[state], transfer_id
            )
