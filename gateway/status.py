"""A node's own status for operators: its release, uptime and the transfers it holds unsettled.

Read-only. Ages are measured here, on this node's clock, from each transfer's ``created_at``
(also written on this clock): the nodes of a federation may disagree about the time, so an age
is only meaningful at the node that reports it.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from datetime import datetime

from regfed.certs.identity import Identity, Role
from regfed.node.ledger import timestamp, utc_now
from regfed.node.storage.store import LedgerTx

from .errors import GatewayError
from .store import GatewayRecords, Unsettled

#: The most unsettled transfers one status reply lists (oldest first); the count is exact.
#: About 150 bytes each on the wire: far below the 256 KiB message limit.
MAX_LISTED = 100


def check_status_reader(identity: Identity, me: str) -> None:
    """Who may read a node's status: its administrators, its own node certificate and the
    oversight node. Traders, and every other registry's people and nodes, are refused."""
    if identity.role is Role.OVERSIGHT:
        return
    if identity.role in (Role.ADMINISTRATOR, Role.REGISTRY) and identity.registry == me:
        return
    if identity.registry != me:
        raise GatewayError(
            "WRONG_ROLE",
            f"a {identity.registry} {identity.role.value} certificate cannot read the status "
            f"of {me}: use {me}'s administrator or the oversight credential",
        )
    raise GatewayError(
        "WRONG_ROLE",
        f"a {identity.role.value} certificate cannot read the node's status: it is for "
        f"{me}'s administrators and the oversight node",
    )


def regfed_version() -> str:
    try:
        return importlib.metadata.version("regfed")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True, slots=True)
class InFlight:
    transfer_id: str
    side: str
    status: str
    peer: str
    quantity: int
    created_at: str
    age_seconds: float


@dataclass(frozen=True, slots=True)
class InFlightReport:
    """How many transfers are unsettled at this node, and the oldest of them with their age."""

    total: int
    transfers: tuple[InFlight, ...]
    node_time: str


def _age(created_at: str, now: datetime) -> float:
    try:
        created = datetime.fromisoformat(created_at)
    except ValueError:
        return 0.0
    return max((now - created).total_seconds(), 0.0)


def unsettled(tx: LedgerTx, limit: int = MAX_LISTED, now: datetime | None = None) -> InFlightReport:
    """The unsettled transfers of this node's database: both sides, oldest first, at most
    ``limit`` (clamped to 1..MAX_LISTED), aged on this node's clock (``now``)."""
    limit = MAX_LISTED if limit <= 0 else min(limit, MAX_LISTED)
    total, rows = GatewayRecords(tx).unsettled_summary(limit)
    moment = now or utc_now()
    return InFlightReport(total, tuple(_aged(r, moment) for r in rows), timestamp(moment))


def _aged(row: Unsettled, now: datetime) -> InFlight:
    return InFlight(
        row.transfer_id,
        row.side,
        row.status,
        row.peer,
        row.quantity,
        row.created_at,
        _age(row.created_at, now),
    )
