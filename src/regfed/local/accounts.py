"""Setting up a local federation's accounts straight on a node's database, as its administrator:
for the demo, the benchmark and the tests (traders then act through the node's client API)."""

from __future__ import annotations

import uuid

from regfed.node import (
    Issue,
    OpenAccount,
    RepresentativeSpec,
    Selection,
    StatePurpose,
    Transfer,
    open_existing,
)

from .federation import Federation


def _op(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex}"


def open_account(
    federation: Federation,
    code: str,
    person: str,
    *,
    kind: str = "general",
    name: str | None = None,
    source: str | None = None,
) -> str:
    """A new account at ``code`` with ``person`` as primary representative; its number."""
    reg = open_existing(federation.node_config(code).database)
    try:
        result = reg.ledger.open_account(
            OpenAccount(
                operation_id=_op("open"),
                account_type=kind,
                name=name or f"{person} {kind}",
                source_id=(source or _op("SRC")) if kind == "compliance" else None,
                representatives=(RepresentativeSpec(person=person, role="primary"),),
            ),
            reg.ledger.administrator,
        )
        return str(result.detail["account"])
    finally:
        reg.close()


def fund(
    federation: Federation,
    code: str,
    account: str,
    quantity: int,
    *,
    program: str = "RGGI",
    vintage: int = 2025,
    issue: int | None = None,
) -> None:
    """Issue ``issue`` units (default ``quantity``) into the allocation account and allocate
    ``quantity`` of them to ``account``."""
    reg = open_existing(federation.node_config(code).database)
    try:
        admin = reg.ledger.administrator
        alloc = reg.state_account(StatePurpose.ALLOCATION).label
        reg.ledger.issue(
            Issue(
                operation_id=_op("issue"),
                program=program,
                unit_type="allowance",
                vintage=vintage,
                quantity=issue or quantity,
                to_account=alloc,
            ),
            admin,
        )
        reg.ledger.transfer(
            Transfer(
                operation_id=_op("allocate"),
                from_account=alloc,
                to_account=account,
                selection=Selection(quantity=quantity, program=program),
            ),
            admin,
        )
    finally:
        reg.close()
