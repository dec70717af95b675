"""The registry ledger: every write operation, each one atomic and journaled.

Each operation runs in one database transaction that (1) answers a repeated operation id from
the stored result, (2) checks the actor's rights and the account and program rules, (3) selects
and moves serial blocks, (4) checks the ledger invariants, (5) appends a hash-chained journal
entry and stores the result under the operation id. Retryable conflicts (a concurrent writer got
there first) re-run the whole transaction a few times before the typed error reaches the caller.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from . import compliance_ops
from ._moves import apply_takes, check_transaction
from .domain.account_numbers import AccountNumber
from .domain.accounts import Account, AccountStatus, AccountType, StatePurpose
from .domain.actors import Actor
from .domain.commands import (
    AppointRepresentative,
    Command,
    DeductCompliance,
    Issue,
    OpenAccount,
    RecordEmissions,
    RemoveRepresentative,
    Retire,
    Selection,
    SetAccountStatus,
    Transfer,
)
from .domain.errors import (
    AccountInOtherRegistry,
    AccountNotEmpty,
    AccountNotFound,
    AccountTypeMismatch,
    IdempotencyConflict,
    InvalidArgument,
    IssuanceOverlap,
    NotAuthorized,
    ProgramForbidsSend,
    RegistryError,
    ReportNotApproved,
    RepresentativeConflict,
    RepresentativeNotFound,
    SourceAlreadyHasAccount,
)
from .domain.holdings import BlockState
from .domain.invariants import MovementAudit
from .domain.journal import Movement, Place
from .domain.programs import (
    CREDIT_UNIT_TYPES,
    CreditIssuance,
    ProgramCatalog,
)
from .domain.representatives import Representative, Right, Role, validate_roster
from .domain.selection import Take, take_blocks, take_quantity
from .domain.serials import UnitBlock, UnitClass, UnitType
from .storage.store import LedgerTx, Store

Clock = Callable[[], datetime]
E = TypeVar("E", bound=StrEnum)
MAX_ATTEMPTS = 8


def utc_now() -> datetime:
    return datetime.now(UTC)


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class OperationResult:
    """What an operation did. ``replayed`` is true when answered from a stored result."""

    operation_id: str
    kind: str
    seq: int
    recorded_at: str
    detail: dict[str, Any]
    movements: tuple[dict[str, Any], ...] = ()
    replayed: bool = False

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> OperationResult:
        return cls(
            operation_id=data["operation_id"],
            kind=data["kind"],
            seq=data["seq"],
            recorded_at=data["recorded_at"],
            detail=data["detail"],
            movements=tuple(data["movements"]),
            replayed=True,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation_id": self.operation_id,
            "kind": self.kind,
            "seq": self.seq,
            "recorded_at": self.recorded_at,
            "detail": self.detail,
            "movements": list(self.movements),
            "replayed": self.replayed,
        }


@dataclass
class Work:
    """What one operation accumulates inside its transaction before the journal entry."""

    kind: str
    detail: dict[str, Any]
    movements: list[Movement] = field(default_factory=list)
    accounts: set[int] = field(default_factory=set)
    # Account numbers by id, as far as the operation already read them (the journal names them).
    labels: dict[int, str | None] = field(default_factory=dict)
    audit: MovementAudit = field(default_factory=MovementAudit)
    #: Writes that need the entry's sequence number, run right after the journal append.
    on_seq: list[Callable[[int], None]] = field(default_factory=list)


class Ledger:
    """One registry's ledger on one database."""

    def __init__(
        self,
        store: Store,
        registry: str,
        programs: ProgramCatalog | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.registry = registry
        self.programs = programs or ProgramCatalog.default()
        self.clock = clock
        self.administrator = Actor.administrator(registry)

    # -- plumbing ----------------------------------------------------------------------------

    def run(
        self, command: Command, actor: Actor, kind: str, body: Callable[[LedgerTx, Work], None]
    ) -> OperationResult:
        """Run ``body`` as one atomic, journaled, idempotent operation.

        For adapters that compose ledger changes with their own records in one transaction
        (the gateway: a protocol decision, its escrow or credit, its outbox).
        """
        return self._run(command, actor, body, kind)

    def _run(
        self, command: Command, actor: Actor, body: Callable[[LedgerTx, Work], None], kind: str
    ) -> OperationResult:
        attempt = 0
        while True:
            try:
                with self.store.write() as tx:
                    return self.apply(tx, command, actor, kind, body)
            except RegistryError as error:
                attempt += 1
                if not error.retryable or attempt >= MAX_ATTEMPTS:
                    raise
                time.sleep(random.uniform(0, 0.005 * 2**attempt))

    def apply(
        self,
        tx: LedgerTx,
        command: Command,
        actor: Actor,
        kind: str,
        body: Callable[[LedgerTx, Work], None],
    ) -> OperationResult:
        """One operation inside a write transaction the caller opened (and retries).

        For adapters whose own records must commit with the ledger change: the gateway reads
        and locks its transfer record, decides, and applies the ledger change here, in one
        transaction.
        """
        fingerprint = _fingerprint(command, actor)
        # A concurrent twin waits here until the first commits, then gets its stored result
        # (not a refusal computed against the first one's effects).
        tx.journal.lock_operation_id(command.operation_id)
        stored = tx.journal.find_operation(command.operation_id)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                raise IdempotencyConflict(
                    f"operation id {command.operation_id} was already used for a different request",
                    operation_id=command.operation_id,
                )
            return OperationResult.from_stored(stored.result)
        work = Work(kind, {})
        body(tx, work)
        check_transaction(tx, work.audit)
        at = timestamp(self.clock())
        record = tx.journal.append(
            operation_id=command.operation_id,
            kind=work.kind,
            actor=str(actor),
            recorded_at=at,
            detail=work.detail,
            movements=work.movements,
            accounts=sorted(work.accounts),
        )
        for write in work.on_seq:
            write(record.seq)
        labels = work.labels
        result = OperationResult(
            operation_id=command.operation_id,
            kind=work.kind,
            seq=record.seq,
            recorded_at=at,
            detail=work.detail,
            movements=tuple(self._describe(tx, m, labels) for m in work.movements),
        )
        stored_result = result.to_dict()
        stored_result.pop("replayed")
        tx.journal.record_operation(
            command.operation_id, work.kind, fingerprint, stored_result, record.seq, at
        )
        return result

    def _describe(
        self, tx: LedgerTx, movement: Movement, labels: dict[int, str | None]
    ) -> dict[str, Any]:
        def number(place: Place | None) -> str | None:
            if place is None:
                return None
            if place.account_id not in labels:
                account = tx.account_by_id(place.account_id)
                labels[place.account_id] = account.label if account else None
            return labels[place.account_id]

        return {
            **movement.block.to_dict(),
            "from": number(movement.origin),
            "to": number(movement.destination),
            "state": movement.destination.state.value if movement.destination else "departed",
        }

    def _account(self, tx: LedgerTx, number: str, *, locked: bool = False) -> Account:
        """The account by number; ``locked`` row-locks it first, for an operation that checks
        and changes it (see :meth:`LedgerTx.lock_accounts`)."""
        parsed = AccountNumber.parse(number)
        if parsed.registry != self.registry:
            raise AccountInOtherRegistry(
                f"account {number} belongs to registry {parsed.registry}, this is {self.registry}",
                account=number,
            )
        account = tx.account_by_number(parsed, locked=locked)
        if account is None:
            raise AccountNotFound(
                f"no account {number} in registry {self.registry}", account=number
            )
        return account

    def _state_account(self, tx: LedgerTx, purpose: StatePurpose) -> Account:
        account = tx.state_account(purpose)
        if account is None:
            raise AccountNotFound(
                f"registry {self.registry} has no {purpose.value} account: run `regfed ledger init`"
            )
        return account

    def _lock(self, tx: LedgerTx, *accounts: Account) -> list[Account]:
        """Lock the accounts and return them re-read under the lock, in the order given."""
        fresh = tx.lock_accounts([a.id for a in accounts])
        return [fresh[a.id] for a in accounts]

    def _require_admin(self, actor: Actor, what: str) -> None:
        if actor != self.administrator:
            raise NotAuthorized(
                f"only the {self.registry} registry administrator may {what}; {actor} may not",
                actor=str(actor),
            )

    def _require_right(self, tx: LedgerTx, actor: Actor, account: Account, right: Right) -> None:
        if account.type is AccountType.STATE:
            self._require_admin(actor, f"act for state account {account.label}")
            return
        for rep in tx.representatives(account.id):
            if rep.person_id == actor.id and not actor.is_administrator and right in rep.rights:
                return
        raise NotAuthorized(
            f"{actor} does not hold the {right.value} right on account {account.label}",
            actor=str(actor),
            account=account.label,
            right=right.value,
        )

    def _check_program_allows_send(self, account: Account, takes: list[Take]) -> None:
        if account.type is not AccountType.COMPLIANCE:
            return
        for program in sorted({t.holding.unit_class.program for t in takes}):
            if not self.programs.get(program).compliance_account_may_send:
                raise ProgramForbidsSend(
                    f"under {program} rules compliance account {account.label} cannot send units; "
                    "only compliance deduction removes them",
                    account=account.label,
                    program=program,
                )

    def _select(self, tx: LedgerTx, account: Account, selection: Selection) -> list[Take]:
        if selection.quantity is not None:
            if selection.program is not None:
                self.programs.get(selection.program)
            candidates = tx.spendable_in_order(
                account.id,
                program=selection.program,
                unit_types=[selection.unit_type] if selection.unit_type else None,
                vintage=selection.vintage,
            )
            return take_quantity(candidates, selection.quantity, account.label)
        rows = [
            h
            for block in selection.blocks
            for h in tx.overlapping(block.unit_class, block.serials, account.id)
        ]
        unique = list({h.id: h for h in rows}.values())
        return take_blocks(unique, list(selection.blocks), account.label)

    # -- accounts and representatives ----------------------------------------------------------

    def open_account(self, command: OpenAccount, actor: Actor) -> OperationResult:
        def body(tx: LedgerTx, work: Work) -> None:
            self._require_admin(actor, "open accounts")
            account_type = _enum(AccountType, command.account_type, "account type")
            purpose = (
                _enum(StatePurpose, command.purpose, "state account purpose")
                if command.purpose
                else None
            )
            if account_type is AccountType.STATE and purpose is None:
                raise InvalidArgument("a state account needs a purpose")
            roster = [
                Representative.of(r.person, r.role, r.rights) for r in command.representatives
            ]
            if account_type is not AccountType.STATE or roster:
                validate_roster(roster)
            if command.source_id is not None:
                existing = tx.account_for_source(command.source_id)
                if existing is not None:
                    raise SourceAlreadyHasAccount(
                        f"source {command.source_id} already has compliance account "
                        f"{existing.label}",
                        source=command.source_id,
                        account=existing.label,
                    )
            standing = (StatePurpose.RETIREMENT, StatePurpose.SURRENDER, StatePurpose.ALLOCATION)
            if purpose in standing and tx.state_account(purpose) is not None:
                raise AccountTypeMismatch(
                    f"registry {self.registry} already has its {purpose.value} account"
                )
            sequence = tx.next_account_sequence()
            account = Account(
                id=sequence,
                number=AccountNumber.make(self.registry, sequence),
                type=account_type,
                name=command.name,
                status=AccountStatus.OPEN,
                purpose=purpose,
                set_aside=command.set_aside,
                source_id=command.source_id,
            )
            tx.insert_account(account, timestamp(self.clock()))
            tx.replace_representatives(account.id, roster, timestamp(self.clock()))
            work.accounts.add(account.id)
            work.detail.update(
                account=account.label,
                account_type=account_type.value,
                name=command.name,
                purpose=purpose.value if purpose else None,
                set_aside=command.set_aside,
                source_id=command.source_id,
                representatives=[r.to_dict() for r in roster],
            )

        return self._run(command, actor, body, "open-account")

    def set_account_status(self, command: SetAccountStatus, actor: Actor) -> OperationResult:
        def body(tx: LedgerTx, work: Work) -> None:
            self._require_admin(actor, "restrict, reopen or close accounts")
            status = _enum(AccountStatus, command.status, "account status")
            account = self._account(tx, command.account, locked=True)
            if account.status is AccountStatus.CLOSED:
                raise InvalidArgument(f"account {account.label} is closed for good")
            if status is AccountStatus.CLOSED and tx.has_blocks(account.id):
                raise AccountNotEmpty(
                    f"account {account.label} still holds units", account=account.label
                )
            tx.set_account_status(account.id, status)
            work.accounts.add(account.id)
            work.detail.update(
                account=account.label,
                previous=account.status.value,
                status=status.value,
                reason=command.reason,
            )

        return self._run(command, actor, body, "account-status")

    def appoint_representative(
        self, command: AppointRepresentative, actor: Actor
    ) -> OperationResult:
        def body(tx: LedgerTx, work: Work) -> None:
            account = self._account(tx, command.account, locked=True)
            new = Representative.of(
                command.representative.person,
                command.representative.role,
                command.representative.rights,
            )
            self._authorize_roster_change(tx, actor, account, new.role)
            before = tx.representatives(account.id)
            after = [
                r
                for r in before
                if r.person_id != new.person_id
                and not (new.role is not Role.AGENT and r.role is new.role)
            ] + [new]
            validate_roster(after)
            self._write_roster(tx, work, account, before, after)

        return self._run(command, actor, body, "representatives")

    def remove_representative(self, command: RemoveRepresentative, actor: Actor) -> OperationResult:
        def body(tx: LedgerTx, work: Work) -> None:
            account = self._account(tx, command.account, locked=True)
            before = tx.representatives(account.id)
            leaving = next((r for r in before if r.person_id == command.person), None)
            if leaving is None:
                raise RepresentativeNotFound(
                    f"{command.person} does not represent account {account.label}",
                    account=account.label,
                    person=command.person,
                )
            if leaving.role is Role.PRIMARY:
                raise RepresentativeConflict(
                    "the authorized account representative cannot be removed, only replaced: "
                    "appoint a new primary representative",
                    account=account.label,
                )
            self._authorize_roster_change(tx, actor, account, leaving.role)
            after = [r for r in before if r.person_id != command.person]
            self._write_roster(tx, work, account, before, after)

        return self._run(command, actor, body, "representatives")

    def _authorize_roster_change(
        self, tx: LedgerTx, actor: Actor, account: Account, role: Role
    ) -> None:
        if actor == self.administrator:
            return
        # The authorized representative and the alternate may delegate to agents themselves.
        if role is Role.AGENT and any(
            r.person_id == actor.id and r.role in (Role.PRIMARY, Role.ALTERNATE)
            for r in tx.representatives(account.id)
        ):
            return
        raise NotAuthorized(
            f"{actor} may not change the {role.value} representatives of {account.label}",
            actor=str(actor),
            account=account.label,
        )

    def _write_roster(
        self,
        tx: LedgerTx,
        work: Work,
        account: Account,
        before: list[Representative],
        after: list[Representative],
    ) -> None:
        tx.replace_representatives(account.id, after, timestamp(self.clock()))
        work.accounts.add(account.id)
        work.detail.update(
            account=account.label,
            before=[r.to_dict() for r in before],
            after=[r.to_dict() for r in after],
        )

    # -- units ---------------------------------------------------------------------------------

    def issue(self, command: Issue, actor: Actor) -> OperationResult:
        def body(tx: LedgerTx, work: Work) -> None:
            self._require_admin(actor, "issue units")
            rules = self.programs.get(command.program)
            unit_type = _enum(UnitType, command.unit_type, "unit type")
            rules.require_accepts(unit_type.value, self.registry, self.registry)
            if (
                unit_type.value in CREDIT_UNIT_TYPES
                and rules.credit_issuance is CreditIssuance.VERIFICATION
            ):
                raise ReportNotApproved(
                    f"{unit_type.value} units of {rules.code} are issued only by approving an "
                    "accredited verifier's verification report, not by plain issuance",
                    program=rules.code,
                    unit_type=unit_type.value,
                )
            if command.quantity <= 0:
                raise InvalidArgument(f"quantity must be positive, got {command.quantity}")
            account = self._account(tx, command.to_account, locked=True)
            if account.purpose not in (StatePurpose.ALLOCATION, StatePurpose.SET_ASIDE):
                raise AccountTypeMismatch(
                    f"units are issued into the allocation or a set-aside account, "
                    f"not {account.label}",
                    account=account.label,
                )
            account.ensure_can_receive()
            uc = UnitClass(self.registry, command.program, unit_type.value, command.vintage)
            serials = tx.claim_serials(uc, command.quantity, command.start)
            block = UnitBlock(uc, serials)
            clash = tx.issuance_overlaps(block)
            if clash:
                raise IssuanceOverlap(
                    f"serials {block} overlap earlier issuance {clash[0]}",
                    blocks=[c.to_dict() for c in clash],
                )
            place = Place(account.id, BlockState.HELD)
            tx.insert_block(block, account.id, BlockState.HELD)
            work.audit.issue(block)
            work.audit.put(block)
            work.movements.append(Movement(block, None, place))
            work.accounts.add(account.id)
            work.on_seq.append(lambda seq: tx.insert_issuance(block, account.id, seq))
            work.detail.update(to=account.label, quantity=command.quantity, block=block.to_dict())

        return self._run(command, actor, body, "issue")

    def transfer(self, command: Transfer, actor: Actor) -> OperationResult:
        return self._run(command, actor, self.transfer_body(command, actor), "transfer")

    def transfer_body(self, command: Transfer, actor: Actor) -> Callable[[LedgerTx, Work], None]:
        """The body of :meth:`transfer`, for adapters that run it with :meth:`apply`."""

        def body(tx: LedgerTx, work: Work) -> None:
            source = self._account(tx, command.from_account)
            target = self._account(tx, command.to_account)
            if source.id == target.id:
                raise InvalidArgument("an account cannot transfer to itself", account=source.label)
            source, target = self._lock(tx, source, target)
            self._require_right(tx, actor, source, Right.INITIATE)
            source.ensure_can_send()
            target.ensure_can_receive()
            takes = self._select(tx, source, command.selection)
            self._check_program_allows_send(source, takes)
            work.kind = "allocation" if source.type is AccountType.STATE else "transfer"
            work.movements += apply_takes(tx, takes, Place(target.id, BlockState.HELD), work.audit)
            work.accounts |= {source.id, target.id}
            work.detail.update(
                **{"from": source.label, "to": target.label},
                quantity=sum(t.serials.quantity for t in takes),
                memo=command.memo,
            )
            if command.price is not None:
                # In the hash-chained entry: the price report is read from here.
                work.detail["price"] = command.price.to_dict()

        return body

    def retire(self, command: Retire, actor: Actor) -> OperationResult:
        def body(tx: LedgerTx, work: Work) -> None:
            retirement = self._state_account(tx, StatePurpose.RETIREMENT)
            source, retirement = self._lock(tx, self._account(tx, command.from_account), retirement)
            self._require_right(tx, actor, source, Right.INITIATE)
            source.ensure_can_send()
            takes = self._select(tx, source, command.selection)
            self._check_program_allows_send(source, takes)
            work.movements += apply_takes(
                tx, takes, Place(retirement.id, BlockState.RETIRED, source.id), work.audit
            )
            work.accounts |= {source.id, retirement.id}
            work.detail.update(
                **{"from": source.label},
                quantity=sum(t.serials.quantity for t in takes),
                reason=command.reason,
            )

        return self._run(command, actor, body, "retire")

    # -- compliance (compliance_ops.py) --------------------------------------------------------

    def record_emissions(self, command: RecordEmissions, actor: Actor) -> OperationResult:
        return compliance_ops.record_emissions(self, command, actor)

    def deduct_compliance(self, command: DeductCompliance, actor: Actor) -> OperationResult:
        return compliance_ops.deduct_compliance(self, command, actor)


def _fingerprint(command: Command, actor: Actor) -> str:
    return hashlib.sha256(f"{actor}|{command.fingerprint()}".encode()).hexdigest()


def _enum(cls: type[E], value: str, what: str) -> E:
    try:
        return cls(value)
    except ValueError:
        options = ", ".join(m.value for m in cls)
        raise InvalidArgument(f"{value!r} is not a valid {what} (one of: {options})") from None
