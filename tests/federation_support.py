"""Helpers for end-to-end tests: a real local federation in a temp dir, and checks across it."""

from __future__ import annotations

import hashlib
import itertools
import random
import socket
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from regfed.local import Federation, LocalFederation, create_federation
from regfed.node import (
    Issue,
    OpenAccount,
    Registry,
    RepresentativeSpec,
    Selection,
    StatePurpose,
    Transfer,
    open_existing,
)

_ops = itertools.count(1)
#: What an end-to-end test compares before and after a refusal (the security log is outside).
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


def free_base_port(count: int) -> int:
    for _ in range(200):
        base = random.randrange(20_000, 60_000 - count)
        sockets = []
        try:
            for port in range(base, base + count + 1):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free ports")


@contextmanager
def running_federation(
    folder: Path, codes: list[str], **settings: Any
) -> Iterator[tuple[Federation, LocalFederation]]:
    federation = create_federation(
        folder,
        codes,
        base_port=free_base_port(len(codes) + 1),
        settings={"redrive_interval": 0.2, "ask_after": 1.0, **settings},
    )
    local = LocalFederation(federation)
    try:
        local.start()
        yield federation, local
    finally:
        local.stop()


def registry(federation: Federation, code: str) -> Registry:
    return open_existing(federation.node_config(code).database)


def open_account(federation: Federation, code: str, person: str, kind: str = "general") -> str:
    reg = registry(federation, code)
    try:
        result = reg.ledger.open_account(
            OpenAccount(
                operation_id=f"open-{next(_ops)}",
                account_type=kind,
                name=f"{person} {kind}",
                source_id=f"SRC-{next(_ops)}" if kind == "compliance" else None,
                representatives=(RepresentativeSpec(person=person, role="primary"),),
            ),
            reg.ledger.administrator,
        )
        return str(result.detail["account"])
    finally:
        reg.close()


def fund(
    federation: Federation, code: str, account: str, quantity: int, program: str = "RGGI"
) -> None:
    reg = registry(federation, code)
    try:
        alloc = reg.state_account(StatePurpose.ALLOCATION).label
        reg.ledger.issue(
            Issue(
                operation_id=f"issue-{next(_ops)}",
                program=program,
                unit_type="allowance",
                vintage=2025,
                quantity=quantity,
                to_account=alloc,
            ),
            reg.ledger.administrator,
        )
        reg.ledger.transfer(
            Transfer(
                operation_id=f"fund-{next(_ops)}",
                from_account=alloc,
                to_account=account,
                selection=Selection(quantity=quantity, program=program),
            ),
            reg.ledger.administrator,
        )
    finally:
        reg.close()


def _rows(federation: Federation, code: str, sql: str) -> list[Any]:
    engine = create_engine(federation.node_config(code).database)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)).all())
    finally:
        engine.dispose()


def digest(federation: Federation, code: str) -> str:
    h = hashlib.sha256()
    for table in DIGEST_TABLES:
        for row in _rows(federation, code, f"SELECT * FROM {table} ORDER BY 1"):
            h.update(repr(tuple(row)).encode())
    return h.hexdigest()


def security_codes(federation: Federation, code: str) -> list[str]:
    return [r.code for r in _rows(federation, code, "SELECT code FROM security_log ORDER BY id")]


def audit(federation: Federation) -> list[str]:
    """Problems across the federation: a serial in two places, or supply not conserved."""
    problems: list[str] = []
    pieces: dict[tuple[str, str, str, int], list[tuple[int, int, str, str, str | None]]] = (
        defaultdict(list)
    )
    for code in federation.registries:
        for r in _rows(
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
            for r in _rows(federation, issuer, "SELECT start_serial, end_serial FROM issuances")
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
        rows = _rows(
            federation,
            code,
            f"SELECT status, settled FROM transfers WHERE transfer_id = '{transfer_id}'",
        )
        if rows:
            out[code] = (rows[0].status, bool(rows[0].settled))
    return out
