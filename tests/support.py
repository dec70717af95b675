"""Helpers for building registries in tests (not fixtures: plain functions)."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from regfed.node import (
    Actor,
    Issue,
    OpenAccount,
    Registry,
    RegistryError,
    RepresentativeSpec,
    Selection,
    StatePurpose,
    Transfer,
    open_registry,
)

_ids = itertools.count(1)


def op_id(prefix: str = "op") -> str:
    return f"{prefix}-{next(_ids)}"


def open_test_registry(url: str, code: str = "PA") -> Registry:
    return open_registry(url, code)


def open_general(reg: Registry, person: str, name: str = "General") -> str:
    result = reg.ledger.open_account(
        OpenAccount(
            operation_id=op_id("open"),
            account_type="general",
            name=name,
            representatives=(RepresentativeSpec(person=person, role="primary"),),
        ),
        reg.ledger.administrator,
    )
    return str(result.detail["account"])


def open_compliance(reg: Registry, person: str, source: str) -> str:
    result = reg.ledger.open_account(
        OpenAccount(
            operation_id=op_id("open"),
            account_type="compliance",
            name=f"Source {source}",
            source_id=source,
            representatives=(RepresentativeSpec(person=person, role="primary"),),
        ),
        reg.ledger.administrator,
    )
    return str(result.detail["account"])


def issue(
    reg: Registry,
    quantity: int,
    *,
    program: str = "RGGI",
    vintage: int = 2025,
    unit_type: str = "allowance",
) -> dict[str, Any]:
    alloc = reg.state_account(StatePurpose.ALLOCATION).label
    result = reg.ledger.issue(
        Issue(
            operation_id=op_id("issue"),
            program=program,
            unit_type=unit_type,
            vintage=vintage,
            quantity=quantity,
            to_account=alloc,
        ),
        reg.ledger.administrator,
    )
    return dict(result.detail["block"])


def person(name: str) -> Actor:
    return Actor.person(name)


def ledger_digest(reg: Registry) -> str:
    """A digest of every table's contents: equal before and after means nothing changed."""
    h = hashlib.sha256()
    with reg.engine.connect() as conn:
        for table in (
            "accounts",
            "representatives",
            "issuances",
            "blocks",
            "journal_entries",
            "journal_movements",
            "journal_accounts",
            "journal_head",
            "operations",
            "serial_counters",
            "emissions",
            "deductions",
            "registry_meta",
            "projects",
            "accreditations",
            "documents",
            "document_contents",
            "document_reviews",
            "provenance",
        ):
            rows = conn.execute(text(f"SELECT * FROM {table} ORDER BY 1")).all()
            h.update(table.encode())
            for row in rows:
                h.update(repr(tuple(row)).encode())
    return h.hexdigest()


def refused(reg: Registry, code: str, call: Callable[[], object]) -> RegistryError:
    before = ledger_digest(reg)
    with pytest.raises(RegistryError) as caught:
        call()
    assert caught.value.code == code, caught.value
    assert ledger_digest(reg) == before, "a refusal changed the database"
    return caught.value


def alloc(reg: Registry) -> str:
    return reg.state_account(StatePurpose.ALLOCATION).label


def fund(reg: Registry, account: str, quantity: int, **kw: Any) -> None:
    reg.ledger.transfer(
        Transfer(
            operation_id=op_id("fund"),
            from_account=alloc(reg),
            to_account=account,
            selection=Selection(quantity=quantity, **kw),
        ),
        reg.ledger.administrator,
    )


def send(reg: Registry, src: str, dst: str, actor: Actor, **sel: Any) -> object:
    return reg.ledger.transfer(
        Transfer(
            operation_id=op_id("t"), from_account=src, to_account=dst, selection=Selection(**sel)
        ),
        actor,
    )
