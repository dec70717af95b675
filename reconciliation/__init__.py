"""Reconciliation across registries, sans I/O (issue 5's core).

Feed :func:`reconcile` one :class:`RegistrySnapshot` per registry (sorted block, issuance and
transfer-record iterators, plus totals and unsettled transfers) and get a
:class:`ReconciliationResult`; then give :func:`explain` each registry's
:class:`JournalWindow` after its snapshot (:func:`records_wanted` says which transfer records
to ask for) to move aside what a transfer settling between two reads accounts for. This package
imports neither SQLAlchemy nor gRPC: the networked reconciler streams signed snapshots into it.
See docs/reconciliation.md.
"""

from .explain import explain, records_wanted
from .model import (
    ALLOWED_PAIRS,
    DEFAULT_SETTLEMENT_LIMIT_S,
    ESCROWED,
    HELD,
    INCOMING,
    RETIRED,
    STATES,
    SURRENDERED,
    AllowedPair,
    Block,
    ClassKey,
    ClassSummary,
    Discrepancy,
    InTransit,
    IssuanceRange,
    JournalMove,
    JournalWindow,
    Kind,
    MalformedSnapshot,
    ReconciliationResult,
    RegistrySnapshot,
    TotalsKey,
    TransferRecord,
    UnsettledTransfer,
)
from .sweep import allowed_pair, reconcile
from .transfer_logs import LOG_RULES, LogRule, disagreement

__all__ = [
    "ALLOWED_PAIRS",
    "DEFAULT_SETTLEMENT_LIMIT_S",
    "ESCROWED",
    "HELD",
    "INCOMING",
    "LOG_RULES",
    "RETIRED",
    "STATES",
    "SURRENDERED",
    "AllowedPair",
    "Block",
    "ClassKey",
    "ClassSummary",
    "Discrepancy",
    "InTransit",
    "IssuanceRange",
    "JournalMove",
    "JournalWindow",
    "Kind",
    "LogRule",
    "MalformedSnapshot",
    "ReconciliationResult",
    "RegistrySnapshot",
    "TotalsKey",
    "TransferRecord",
    "UnsettledTransfer",
    "allowed_pair",
    "disagreement",
    "explain",
    "reconcile",
    "records_wanted",
]
