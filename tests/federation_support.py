"""Helpers for end-to-end tests: a real local federation in a temp dir, checks across it."""

from __future__ import annotations

import itertools
import random
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from regfed.local import Federation, LocalFederation, create_federation
from regfed.local.audit import audit, digest, security_codes, statuses
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


__all__ = [
    "audit",
    "digest",
    "fund",
    "open_account",
    "registry",
    "running_federation",
    "security_codes",
    "statuses",
]
