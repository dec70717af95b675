"""Checks across a whole local federation, read straight from every node's database.

Each serial is in exactly one registry, or in transit for exactly one transfer (escrowed at its
source and pinned as incoming at its destination); every issued unit is accounted for. The
reconciliation service will prove the same over the network; this is the local, direct form
used by the demo and the tests.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import defaultdict
from typing import Any

from sqlalchemy import create_engine, text

from .federation import Federation

#: What a refusal must not change (the security log is outside on purpose).
DIGEST_TABLES = (
    "accounts",
    "representatives",
    "issuances",
    "blocks",
    "journal_entries",
    "journal_movements",
    "operations",
    "transfers",
    "transfer_outbox",
    "transfer_evidence",
)


def read_rows(federation: Federation, code: str, sql: str) -> list[Any]:
    return read_queries(federation, code, sql)[0]


def read_queries(federation: Federation, code: str, *sqls: str) -> list[list[Any]]:
    """The rows of each query, read through one connection in one transaction."""
    engine = create_engine(federation.node_config(code).database)
    try:
        with engine.connect() as conn, conn.begin():
            return [list(conn.execute(text(sql)).all()) for sql in sqls]
    finally:
        engine.dispose()


def digest(federation: Federation, code: str) -> str:
    h = hashlib.sha256()
    for table in DIGEST_TABLES:
        for row in read_rows(federation, code, f"SELECT * FROM {table} ORDER BY 1"):
            h.update(repr(tuple(row)).encode())
    return h.hexdigest()


def security_codes(federation: Federation, code: str) -> list[str]:
    return [
        r.code for r in read_rows(federation, code, "SELECT code FROM security_log ORDER BY id")
    ]


def audit(federation: Federation) -> list[str]:
    """Problems across the federation: a serial in two places, or supply not conserved."""
    problems: list[str] = []
    pieces: dict[tuple[str, str, str, int], list[tuple[int, int, str, str, str | None]]] = (
        defaultdict(list)
    )
    for code in federation.registries:
        for r in read_rows(
            federation,
            code,
            "SELECT issuer, program, unit_type, vintage, start_serial, end_serial, state, "
            "transfer_id FROM blocks",
        ):
            key = (r.issuer, r.program, r.unit_type, r.vintage)
            pieces[key].append((r.start_serial, r.end_serial, code, r.state, r.transfer_id))
    for key, ranges in pieces.items():
        ranges.sort()
        for a, b in itertools.pairwise(ranges):
            if b[0] <= a[1]:
                in_transit = (
                    {a[3], b[3]} == {"escrowed", "incoming"} and a[4] == b[4] and a[4] is not None
                )
                if not in_transit:
                    problems.append(f"serials of {key} in two places: {a} and {b}")
    escrowed = {t for ranges in pieces.values() for *_r, state, t in ranges if state == "escrowed"}
    for issuer in federation.registries:
        issued = sum(
            r.end_serial - r.start_serial + 1
            for r in read_rows(federation, issuer, "SELECT start_serial, end_serial FROM issuances")
        )
        present = sum(
            end - start + 1
            for (iss, *_), ranges in pieces.items()
            if iss == issuer
            for start, end, _code, state, t in ranges
            # In transit: counted once, at the source while escrowed, then as incoming.
            if state != "incoming" or t not in escrowed
        )
        if issued != present:
            problems.append(f"{issuer} issued {issued} units, {present} are accounted for")
    return problems


def statuses(federation: Federation, transfer_id: str) -> dict[str, tuple[str, bool]]:
    out = {}
    for code in federation.registries:
        rows = read_rows(
            federation,
            code,
            f"SELECT status, settled FROM transfers WHERE transfer_id = '{transfer_id}'",
        )
        if rows:
            out[code] = (rows[0].status, bool(rows[0].settled))
    return out


def answered_by_destination(federation: Federation, source: str, transfer_id: str) -> bool:
    """Whether the source holds the destination's answer (acceptance or refusal) to the
    transfer: if not, the destination may never have recorded it."""
    rows = read_rows(
        federation,
        source,
        f"SELECT record FROM transfers WHERE transfer_id = '{transfer_id}' AND side = 'source'",
    )
    return bool(rows) and "2" in json.loads(rows[0].record).get("known", {})
