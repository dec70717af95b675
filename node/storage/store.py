"""The ledger's persistence adapter: one :class:`LedgerTx` per database transaction.

Everything the domain needs from the database goes through here, as domain objects in and out.
Database errors are translated into the ledger's typed errors at this boundary.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Row

from ..domain.account_numbers import AccountNumber
from ..domain.accounts import Account, AccountStatus, AccountType, StatePurpose
from ..domain.errors import (
    ConcurrentModification,
    InvariantViolation,
    RegistryBusy,
    RegistryError,
)
from ..domain.holdings import BlockState, Holding
from ..domain.journal import Place
from ..domain.representatives import Representative, Right, Role
from ..domain.serials import SerialRange, UnitBlock, UnitClass
from . import schema as t
from .compliance_records import ComplianceRecords
from .credit_records import CreditRecords
from .engine import WRITE, is_sqlite
from .journal_records import JournalRecords
from .prepared import Prepared, run_sql
from .rows import unit_class_of, unit_values

PAGE = 64


def _translate(error: sa_exc.DBAPIError) -> RegistryError:
    orig = error.orig
    sqlstate = getattr(orig, "sqlstate", None)
    text = str(orig)
    if sqlstate in ("40001", "40P01") or (sqlstate or "").startswith("55P03"):
        return ConcurrentModification("another transaction touched the same rows; retried")
    if sqlstate == "23505" or "UNIQUE constraint failed" in text:
        return ConcurrentModification(f"a concurrent operation created the same record ({text})")
    if sqlstate == "23P01":
        return InvariantViolation(f"serial ranges would overlap: {text}")
    if "database is locked" in text or "database is busy" in text:
        return RegistryBusy("the registry database stayed locked by other writers")
    if sqlstate == "P0001" or "append-only" in text:
        return InvariantViolation(f"append-only record changed: {text}")
    return InvariantViolation(f"the database refused the transaction: {text}")


@contextmanager
def translated_errors() -> Iterator[None]:
    try:
        yield
    except sa_exc.DBAPIError as error:
        raise _translate(error) from error


def _account(row: Row[Any]) -> Account:
    return Account(
        id=row.id,
        number=AccountNumber.parse(row.number),
        type=AccountType(row.type),
        name=row.name,
        status=AccountStatus(row.status),
        purpose=StatePurpose(row.purpose) if row.purpose else None,
        set_aside=row.set_aside,
        source_id=row.source_id,
    )


def _holding(row: Row[Any]) -> Holding:
    return Holding(
        id=row.id,
        block=UnitBlock(unit_class_of(row), SerialRange(row.start_serial, row.end_serial)),
        account_id=row.account_id,
        state=BlockState(row.state),
        version=row.version,
        attributed_account_id=row.attributed_account_id,
        transfer_id=row.transfer_id,
        quarantined=bool(row.quarantined),
    )


def _class_filter(table: Any, uc: UnitClass) -> Any:
    return and_(
        table.c.issuer == uc.issuer,
        table.c.program == uc.program,
        table.c.unit_type == uc.unit_type,
        table.c.vintage == uc.vintage,
    )


# The hot path's statements, built once and sent straight to the driver (see prepared.py):
# together about a third less CPU per interstate transfer (`regfed bench transfers`). Bound
# names avoid column names.
_a, _b, _r = t.accounts, t.blocks, t.representatives
_ACCOUNT_BY_NUMBER_QUERY = select(_a).where(_a.c.number == bindparam("p_number"))
_ACCOUNT_BY_NUMBER = Prepared(_ACCOUNT_BY_NUMBER_QUERY)
_ACCOUNT_BY_NUMBER_LOCKED = Prepared(_ACCOUNT_BY_NUMBER_QUERY.with_for_update())
_ACCOUNT_BY_ID = Prepared(select(_a).where(_a.c.id == bindparam("p_id")))
_REPRESENTATIVES = Prepared(
    select(_r).where(_r.c.account_id == bindparam("p_account")).order_by(_r.c.id)
)
_SAME_CLASS = (
    _b.c.issuer == bindparam("p_issuer"),
    _b.c.program == bindparam("p_program"),
    _b.c.unit_type == bindparam("p_unit_type"),
    _b.c.vintage == bindparam("p_vintage"),
)
_STARTING_INSIDE = Prepared(
    select(_b)
    .where(*_SAME_CLASS, _b.c.start_serial.between(bindparam("p_lo"), bindparam("p_hi")))
    .order_by(_b.c.start_serial)
)
_PREDECESSOR = Prepared(
    select(_b)
    .where(*_SAME_CLASS, _b.c.start_serial < bindparam("p_lo"))
    .order_by(_b.c.start_serial.desc())
    .limit(1)
)
_INSERT_BLOCK = Prepared(insert(_b))
_REWRITE_BLOCK = Prepared(
    update(_b).where(_b.c.id == bindparam("p_id"), _b.c.version == bindparam("p_version"))
)
_DELETE_BLOCK = Prepared(
    delete(_b).where(_b.c.id == bindparam("p_id"), _b.c.version == bindparam("p_version"))
)
_TRANSFER_BLOCKS = Prepared(
    select(_b)
    .where(_b.c.transfer_id == bindparam("p_transfer"), _b.c.state == bindparam("p_state"))
    .order_by(_b.c.issuer, _b.c.program, _b.c.unit_type, _b.c.vintage, _b.c.start_serial)
)


@functools.lru_cache(maxsize=64)
def _accounts_in(count: int, *, locked: bool) -> Prepared:
    """Accounts by id, one statement per number of ids (an operation names one to a few)."""
    ids: list[Any] = [bindparam(f"p_id{i}") for i in range(count)]
    query = select(_a).where(_a.c.id.in_(ids)).order_by(_a.c.id)
    return Prepared(query.with_for_update() if locked else query)


_SPENDABLE_FILTERS = ("p_program", "p_unit_types", "p_vintage", "p_max_vintage")
_SPENDABLE_AFTER = ("a_vintage", "a_issuer", "a_program", "a_unit_type", "a_start")


@functools.cache
def _spendable_query(shape: tuple[bool, ...], *, paged: bool) -> Prepared | Select[Any]:
    """Spendable blocks of an account in selection order, one page; one statement per shape
    of the filter (which of program, unit types, vintage, maximum vintage are given)."""
    order = (_b.c.vintage, _b.c.issuer, _b.c.program, _b.c.unit_type, _b.c.start_serial)
    filters = (
        _b.c.program == bindparam("p_program"),
        _b.c.unit_type.in_(bindparam("p_unit_types", expanding=True)),
        _b.c.vintage == bindparam("p_vintage"),
        _b.c.vintage <= bindparam("p_max_vintage"),
    )
    conditions: list[Any] = [
        _b.c.account_id == bindparam("p_account"),
        _b.c.state == BlockState.HELD.value,
        _b.c.quarantined.is_(False),
        *(f for f, given in zip(filters, shape, strict=True) if given),
    ]
    if paged:
        conditions.append(tuple_(*order) > tuple_(*(bindparam(n) for n in _SPENDABLE_AFTER)))
    query = select(_b).where(*conditions).order_by(*order).limit(PAGE)
    # A list of unit types is an expanding IN, which only SQLAlchemy can render per call.
    return query if shape[1] else Prepared(query)


def _class_params(uc: UnitClass) -> dict[str, Any]:
    return {
        "p_issuer": uc.issuer,
        "p_program": uc.program,
        "p_unit_type": uc.unit_type,
        "p_vintage": uc.vintage,
    }


class LedgerTx:
    """Operations on one open database transaction."""

    def __init__(self, conn: Connection, *, sqlite: bool) -> None:
        self.conn = conn
        self.sqlite = sqlite
        # Transfers this transaction settled, with their final status: after the commit,
        # whoever waits for one of them (a trader's long poll) is woken and told the outcome.
        self.settled_transfers: dict[str, str] = {}
        # Every transfer status change in this transaction (the gateway's TransferChange): after
        # the commit they become log lines and metrics.
        self.transfer_changes: list[Any] = []

    @functools.cached_property
    def journal(self) -> JournalRecords:
        """The hash-chained journal and the operations it answers, in this transaction."""
        return JournalRecords(self.conn, sqlite=self.sqlite)

    @functools.cached_property
    def compliance(self) -> ComplianceRecords:
        """Emissions and compliance deductions, in this transaction."""
        return ComplianceRecords(self.conn)

    @functools.cached_property
    def credits(self) -> CreditRecords:
        """Projects, accreditations, documents and provenance, in this transaction."""
        return CreditRecords(self.conn)

    # -- registry metadata -------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        return self.conn.execute(
            select(t.registry_meta.c.value).where(t.registry_meta.c.key == key)
        ).scalar_one_or_none()

    def set_meta(self, key: str, value: str) -> None:
        if self.get_meta(key) is None:
            self.conn.execute(insert(t.registry_meta).values(key=key, value=value))
        else:
            self.conn.execute(
                update(t.registry_meta).where(t.registry_meta.c.key == key).values(value=value)
            )

    # -- accounts ----------------------------------------------------------------------------

    def next_account_sequence(self) -> int:
        current = self.conn.execute(select(func.max(t.accounts.c.id))).scalar_one_or_none()
        return int(current or 0) + 1

    def insert_account(self, account: Account, opened_at: str) -> Account:
        self.conn.execute(
            insert(t.accounts).values(
                id=account.id,
                number=str(account.number),
                type=account.type.value,
                purpose=account.purpose.value if account.purpose else None,
                set_aside=account.set_aside,
                name=account.name,
                source_id=account.source_id,
                status=account.status.value,
                version=1,
                opened_at=opened_at,
            )
        )
        return account

    def account_by_number(self, number: AccountNumber, *, locked: bool = False) -> Account | None:
        """``locked``: row-locked as :meth:`lock_accounts` does (a plain read on SQLite)."""
        query = _ACCOUNT_BY_NUMBER_LOCKED if locked and not self.sqlite else _ACCOUNT_BY_NUMBER
        row = query.first(self.conn, {"p_number": str(number)})
        return _account(row) if row else None

    def account_by_id(self, account_id: int) -> Account | None:
        row = _ACCOUNT_BY_ID.first(self.conn, {"p_id": account_id})
        return _account(row) if row else None

    def account_for_source(self, source_id: str) -> Account | None:
        row = self.conn.execute(
            select(t.accounts).where(t.accounts.c.source_id == source_id)
        ).one_or_none()
        return _account(row) if row else None

    def state_account(self, purpose: StatePurpose) -> Account | None:
        row = self.conn.execute(
            select(t.accounts)
            .where(t.accounts.c.type == "state", t.accounts.c.purpose == purpose.value)
            .order_by(t.accounts.c.id)
            .limit(1)
        ).one_or_none()
        return _account(row) if row else None

    def all_accounts(self) -> list[Account]:
        rows = self.conn.execute(select(t.accounts).order_by(t.accounts.c.id))
        return [_account(r) for r in rows]

    def lock_accounts(self, ids: Sequence[int]) -> dict[int, Account]:
        """Row-lock accounts in id order (no deadlocks) and return them as they are now.

        Every check of an account's status or representatives must use what this returns: on
        PostgreSQL a row read before the lock may have changed while we waited for it. SQLite
        already holds the database's write lock, so there the lock is a plain read.
        """
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        query = _accounts_in(len(wanted), locked=not self.sqlite)
        rows = query.rows(self.conn, {f"p_id{i}": v for i, v in enumerate(wanted)})
        return {row.id: _account(row) for row in rows}

    def set_account_status(self, account_id: int, status: AccountStatus) -> None:
        self.conn.execute(
            update(t.accounts)
            .where(t.accounts.c.id == account_id)
            .values(status=status.value, version=t.accounts.c.version + 1)
        )

    # -- representatives ---------------------------------------------------------------------

    def representatives(self, account_id: int) -> list[Representative]:
        rows = _REPRESENTATIVES.rows(self.conn, {"p_account": account_id})
        return [
            Representative(
                r.person_id, Role(r.role), frozenset(Right(x) for x in r.rights.split(","))
            )
            for r in rows
        ]

    def replace_representatives(
        self, account_id: int, roster: Sequence[Representative], at: str
    ) -> None:
        current = {r.person_id: r for r in self.representatives(account_id)}
        wanted = {r.person_id: r for r in roster}
        gone = [p for p, r in current.items() if wanted.get(p) != r]
        if gone:
            self.conn.execute(
                delete(t.representatives).where(
                    t.representatives.c.account_id == account_id,
                    t.representatives.c.person_id.in_(gone),
                )
            )
        for person, rep in wanted.items():
            if current.get(person) != rep:
                self.conn.execute(
                    insert(t.representatives).values(
                        account_id=account_id,
                        person_id=person,
                        role=rep.role.value,
                        rights=",".join(sorted(r.value for r in rep.rights)),
                        appointed_at=at,
                    )
                )

    def accounts_of_person(self, person_id: str) -> list[tuple[int, Representative]]:
        rows = self.conn.execute(
            select(t.representatives).where(t.representatives.c.person_id == person_id)
        )
        return [
            (
                r.account_id,
                Representative(
                    r.person_id, Role(r.role), frozenset(Right(x) for x in r.rights.split(","))
                ),
            )
            for r in rows
        ]

    # -- blocks ------------------------------------------------------------------------------

    def spendable_in_order(
        self,
        account_id: int,
        *,
        program: str | None = None,
        unit_types: Sequence[str] | None = None,
        vintage: int | None = None,
        max_vintage: int | None = None,
    ) -> Iterator[Holding]:
        """Spendable blocks in selection order, fetched a page at a time (keyset paging)."""
        params: dict[str, Any] = {
            "p_account": account_id,
            "p_program": program,
            "p_unit_types": list(unit_types) if unit_types is not None else None,
            "p_vintage": vintage,
            "p_max_vintage": max_vintage,
        }
        shape = tuple(params[k] is not None for k in _SPENDABLE_FILTERS)
        after: tuple[Any, ...] | None = None
        while True:
            query = _spendable_query(shape, paged=after is not None)
            if after is not None:
                params.update(zip(_SPENDABLE_AFTER, after, strict=True))
            if isinstance(query, Prepared):
                rows = query.rows(self.conn, params)
            else:
                rows = list(self.conn.execute(query, params).all())
            for row in rows:
                yield _holding(row)
            if len(rows) < PAGE:
                return
            last = rows[-1]
            after = (last.vintage, last.issuer, last.program, last.unit_type, last.start_serial)

    def overlapping(
        self, uc: UnitClass, span: SerialRange, account_id: int | None = None
    ) -> list[Holding]:
        """Rows of the class overlapping ``span``, by start serial.

        Rows are disjoint (the invariant this module guards), so only one row starting before
        the span can reach into it: its predecessor. Two index range scans, whatever the number
        of blocks in the class.
        """
        params = {**_class_params(uc), "p_lo": span.start, "p_hi": span.end}
        inside = _STARTING_INSIDE.rows(self.conn, params)
        before = _PREDECESSOR.rows(self.conn, params)
        rows = [r for r in before if r.end_serial >= span.start] + list(inside)
        holdings = [_holding(r) for r in rows]
        if account_id is not None:
            holdings = [h for h in holdings if h.account_id == account_id]
        return holdings

    def insert_block(
        self,
        block: UnitBlock,
        account_id: int,
        state: BlockState,
        *,
        attributed_account_id: int | None = None,
        transfer_id: str | None = None,
        quarantined: bool = False,
    ) -> None:
        _INSERT_BLOCK.run(
            self.conn,
            {
                **unit_values(block),
                "account_id": account_id,
                "state": state.value,
                "attributed_account_id": attributed_account_id,
                "transfer_id": transfer_id,
                "quarantined": quarantined,
                "version": 1,
            },
        )

    def rewrite_block(
        self,
        holding: Holding,
        serials: SerialRange,
        place: Place,
        transfer_id: str | None = None,
    ) -> None:
        """Compare-and-set: change one row's range and place, only if nobody changed it since."""
        changed = _REWRITE_BLOCK.run(
            self.conn,
            {
                "p_id": holding.id,
                "p_version": holding.version,
                "start_serial": serials.start,
                "end_serial": serials.end,
                "account_id": place.account_id,
                "state": place.state.value,
                "attributed_account_id": place.attributed_account_id,
                "transfer_id": transfer_id,
                "version": holding.version + 1,
            },
        )
        if changed != 1:
            raise ConcurrentModification(
                f"block {holding.block} changed under this operation", block=holding.block.to_dict()
            )

    def delete_block(self, holding: Holding) -> None:
        """Compare-and-set delete: the serials leave this registry."""
        changed = _DELETE_BLOCK.run(self.conn, {"p_id": holding.id, "p_version": holding.version})
        if changed != 1:
            raise ConcurrentModification(
                f"block {holding.block} changed under this operation", block=holding.block.to_dict()
            )

    def transfer_blocks(self, transfer_id: str, state: BlockState) -> list[Holding]:
        rows = _TRANSFER_BLOCKS.rows(self.conn, {"p_transfer": transfer_id, "p_state": state.value})
        return [_holding(r) for r in rows]

    def quarantined_blocks(self) -> list[Holding]:
        b = t.blocks
        rows = self.conn.execute(
            select(b)
            .where(b.c.quarantined.is_(True))
            .order_by(b.c.issuer, b.c.program, b.c.unit_type, b.c.vintage, b.c.start_serial)
        )
        return [_holding(r) for r in rows]

    def set_quarantined(self, holding: Holding, quarantined: bool) -> None:
        """Compare-and-set the quarantine flag of one row (its place and serials unchanged)."""
        b = t.blocks
        changed = self.conn.execute(
            update(b)
            .where(b.c.id == holding.id, b.c.version == holding.version)
            .values(quarantined=quarantined, version=holding.version + 1)
        ).rowcount
        if changed != 1:
            raise ConcurrentModification(
                f"block {holding.block} changed under this operation", block=holding.block.to_dict()
            )

    def account_blocks(self, account_id: int) -> list[Holding]:
        """Blocks held by the account, plus final blocks attributed to it, in selection order."""
        b = t.blocks
        rows = self.conn.execute(
            select(b)
            .where((b.c.account_id == account_id) | (b.c.attributed_account_id == account_id))
            .order_by(
                b.c.state, b.c.vintage, b.c.issuer, b.c.program, b.c.unit_type, b.c.start_serial
            )
        )
        return [_holding(r) for r in rows]

    def has_blocks(self, account_id: int) -> bool:
        b = t.blocks
        return (
            self.conn.execute(
                select(b.c.id)
                .where(b.c.account_id == account_id, b.c.state.notin_(["surrendered", "retired"]))
                .limit(1)
            ).first()
            is not None
        )

    def all_blocks(self) -> Iterator[Holding]:
        b = t.blocks
        rows = self.conn.execute(
            select(b).order_by(
                b.c.issuer, b.c.program, b.c.unit_type, b.c.vintage, b.c.start_serial
            )
        )
        for row in rows:
            yield _holding(row)

    def totals(self) -> list[Row[Any]]:
        b = t.blocks
        return list(
            self.conn.execute(
                select(
                    b.c.issuer,
                    b.c.program,
                    b.c.unit_type,
                    b.c.vintage,
                    b.c.state,
                    func.sum(b.c.end_serial - b.c.start_serial + 1).label("quantity"),
                    func.count().label("blocks"),
                )
                .group_by(b.c.issuer, b.c.program, b.c.unit_type, b.c.vintage, b.c.state)
                .order_by(b.c.issuer, b.c.program, b.c.unit_type, b.c.vintage, b.c.state)
            )
        )

    # -- issuance ----------------------------------------------------------------------------

    def claim_serials(self, uc: UnitClass, quantity: int, start: int | None) -> SerialRange:
        """Reserve the next serials of a class (or the given ones) under the counter's row lock."""
        c = t.serial_counters
        where = (
            c.c.issuer == uc.issuer,
            c.c.program == uc.program,
            c.c.unit_type == uc.unit_type,
            c.c.vintage == uc.vintage,
        )
        query = select(c.c.next_serial).where(*where)
        if not self.sqlite:
            query = query.with_for_update()
        current = self.conn.execute(query).scalar_one_or_none()
        if current is None:
            self.conn.execute(
                insert(c).values(
                    issuer=uc.issuer,
                    program=uc.program,
                    unit_type=uc.unit_type,
                    vintage=uc.vintage,
                    next_serial=1,
                )
            )
            current = 1
        first = current if start is None else start
        serials = SerialRange(first, first + quantity - 1)
        self.conn.execute(
            update(c)
            .where(*where)
            .values(
                next_serial=func.max(c.c.next_serial, serials.end + 1)
                if self.sqlite
                else func.greatest(c.c.next_serial, serials.end + 1)
            )
        )
        return serials

    def issuance_overlaps(self, block: UnitBlock) -> list[UnitBlock]:
        """The first earlier issuance of the class that overlaps ``block``, if any.

        Issuances are disjoint, so the one with the smallest end at or after the block's start
        is the only candidate that needs looking at.
        """
        i = t.issuances
        row = self.conn.execute(
            select(i)
            .where(_class_filter(i, block.unit_class), i.c.end_serial >= block.serials.start)
            .order_by(i.c.end_serial)
            .limit(1)
        ).one_or_none()
        if row is None or row.start_serial > block.serials.end:
            return []
        return [UnitBlock(unit_class_of(row), SerialRange(row.start_serial, row.end_serial))]

    def insert_issuance(self, block: UnitBlock, account_id: int, seq: int) -> None:
        self.conn.execute(
            insert(t.issuances).values(**unit_values(block), account_id=account_id, seq=seq)
        )

    def issuances(self) -> list[tuple[UnitBlock, int]]:
        i = t.issuances
        rows = self.conn.execute(select(i).order_by(i.c.id))
        return [
            (UnitBlock(unit_class_of(r), SerialRange(r.start_serial, r.end_serial)), r.account_id)
            for r in rows
        ]


@dataclass
class _Batch:
    conn: Connection
    after_commit: list[Callable[[], None]]
    savepoints: int = 0


class Store:
    """Opens transactions on one registry database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = is_sqlite(engine)
        self._local = threading.local()

    def _batch(self) -> _Batch | None:
        batch: _Batch | None = getattr(self._local, "batch", None)
        return batch

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group commit: every :meth:`write` on this thread inside the block runs in its own
        savepoint of one transaction, committed once at the end (one fsync for many inputs).

        A write that raises rolls back to its savepoint only. :meth:`after_commit` callbacks
        wait for the real commit, and are dropped if it fails.
        """
        if self._batch() is not None:
            raise RuntimeError("a write batch is already open on this thread")
        with translated_errors(), self.engine.connect() as raw:
            batch = _Batch(raw.execution_options(**{WRITE: True}), [])
            with batch.conn.begin():
                self._local.batch = batch
                try:
                    yield
                finally:
                    self._local.batch = None
        for callback in batch.after_commit:
            callback()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once what this thread wrote is committed: now, outside a batch."""
        batch = self._batch()
        if batch is None:
            callback()
        else:
            batch.after_commit.append(callback)

    @contextmanager
    def write(self) -> Iterator[LedgerTx]:
        """A write transaction: committed if the block returns, rolled back if it raises."""
        batch = self._batch()
        if batch is not None:
            # Savepoints by plain SQL on the driver: SQLAlchemy's begin_nested() compiled a
            # new statement for each of the group's inputs.
            batch.savepoints += 1
            name = f"write_{batch.savepoints}"
            with translated_errors():
                run_sql(batch.conn, f"SAVEPOINT {name}")
                try:
                    yield LedgerTx(batch.conn, sqlite=self.sqlite)
                except BaseException:
                    run_sql(batch.conn, f"ROLLBACK TO SAVEPOINT {name}")
                    run_sql(batch.conn, f"RELEASE SAVEPOINT {name}")
                    raise
                run_sql(batch.conn, f"RELEASE SAVEPOINT {name}")
            return
        with translated_errors(), self.engine.connect() as raw:
            conn = raw.execution_options(**{WRITE: True})
            with conn.begin():
                yield LedgerTx(conn, sqlite=self.sqlite)

    @contextmanager
    def read(self) -> Iterator[LedgerTx]:
        """A consistent read-only snapshot."""
        with translated_errors(), self.engine.connect() as raw:
            conn = raw
            if not self.sqlite:
                conn = raw.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                )
            with conn.begin() as tx:
                yield LedgerTx(conn, sqlite=self.sqlite)
                tx.rollback()
