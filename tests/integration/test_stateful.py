"""Random operation sequences on a real registry, checked against a pure-Python reference model.

The model predicts, for every request, either the exact refusal code or the exact serials that
move (the selection order is documented and deterministic), and is updated only when the
ledger succeeds. After every step the ledger must agree with the model: each account's serial
ranges per unit class and state, its totals and status; no serial in two blocks; supply
conserved; and ``verify()`` passes. A refusal must leave every table unchanged.
"""

from __future__ import annotations

import dataclasses
import itertools
import shutil
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from conftest import create_postgres_database, drop_postgres_database
from regfed.node import (
    AccountNumber,
    Actor,
    ControlPeriod,
    DeductCompliance,
    Issue,
    OpenAccount,
    OperationResult,
    ProgramCatalog,
    RecordEmissions,
    Registry,
    RegistryError,
    RepresentativeSpec,
    Retire,
    Selection,
    SerialRange,
    SetAccountStatus,
    Transfer,
    UnitBlock,
    UnitClass,
    open_registry,
)
from regfed.node.storage.engine import make_engine
from regfed.node.storage.schema import metadata
from support import ledger_digest

pytestmark = pytest.mark.integration

REGISTRY = "PA"
PROGRAMS = ("RGGI", "ARP", "CAQC")
UNIT_TYPES = ("allowance", "offset")
VINTAGES = (2023, 2024, 2025, 2026)
PERIODS = ("2024", "2025", "2024-2026")
# Offsets held beside allowances and issued by the administrator (as California's ARB issues
# offsets verified elsewhere), deduction taking allowances only: the model's rules. The
# verification path to credits has its own tests (test_credits.py).
CATALOG = ProgramCatalog.default().with_overrides(
    [
        {
            **ProgramCatalog.default().get(code).to_dict(),
            "deduction_unit_types": ["allowance"],
            "share_limits": {},
            "unit_types": list(UNIT_TYPES),
            "credit_issuance": "administrative",
        }
        for code in PROGRAMS
    ]
)

Range = tuple[int, int]
ClassKey = tuple[str, str, str, int]  # issuer, program, unit type, vintage
Place = tuple[ClassKey, str]  # unit class and block state


# -- serial range arithmetic on sorted, merged lists of inclusive ranges -----------------------


def merge(ranges: list[Range], where: str = "the model") -> list[Range]:
    """Sorted, with touching ranges joined; overlapping ranges mean a serial is held twice."""
    out: list[Range] = []
    for start, end in sorted(ranges):
        assert start <= end
        if out and start <= out[-1][1] + 1:
            assert start > out[-1][1], f"{where} holds serials {start}-{end} twice"
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def remove(ranges: list[Range], piece: Range) -> list[Range]:
    for i, (start, end) in enumerate(ranges):
        if start <= piece[0] and piece[1] <= end:
            rest = [(start, piece[0] - 1), (piece[1] + 1, end)]
            return ranges[:i] + [r for r in rest if r[0] <= r[1]] + ranges[i + 1 :]
    raise AssertionError(f"model: {piece} is not held")


def covered(ranges: list[Range], piece: Range) -> bool:
    return any(start <= piece[0] and piece[1] <= end for start, end in ranges)


def quantity_of(ranges: list[Range]) -> int:
    return sum(end - start + 1 for start, end in ranges)


def size(takes: list[tuple[ClassKey, Range]]) -> int:
    return sum(end - start + 1 for _, (start, end) in takes)


def selection_order(key: ClassKey) -> tuple[int, str, str, str]:
    issuer, program, unit_type, vintage = key
    return (vintage, issuer, program, unit_type)


def block_dict(key: ClassKey, piece: Range) -> dict[str, Any]:
    return {
        "issuer": key[0],
        "program": key[1],
        "unit_type": key[2],
        "vintage": key[3],
        "start": piece[0],
        "end": piece[1],
    }


def moved_pieces(result: OperationResult) -> dict[ClassKey, list[Range]]:
    out: dict[ClassKey, list[Range]] = defaultdict(list)
    for m in result.movements:
        out[(m["issuer"], m["program"], m["unit_type"], m["vintage"])].append(
            (m["start"], m["end"])
        )
    return {k: merge(v) for k, v in out.items()}


def grouped(takes: list[tuple[ClassKey, Range]]) -> dict[ClassKey, list[Range]]:
    out: dict[ClassKey, list[Range]] = defaultdict(list)
    for key, piece in takes:
        out[key].append(piece)
    return {k: merge(v) for k, v in out.items()}


# -- the reference model -----------------------------------------------------------------------


@dataclass
class ModelAccount:
    label: str
    kind: str  # allocation, retirement, surrender, general, compliance
    status: str = "open"
    person: str | None = None
    source: str | None = None

    @property
    def is_state(self) -> bool:
        return self.kind in ("allocation", "retirement", "surrender")


@dataclass
class Expected:
    """What the ledger must do: refuse with ``code``, or succeed and pass ``check``."""

    code: str | None = None
    check: Callable[[OperationResult], None] | None = None
    replay_of: OperationResult | None = None


@dataclass
class Model:
    admin: Actor
    accounts: list[ModelAccount] = field(default_factory=list)
    #: Per account: what it holds, and the final (retired/surrendered) blocks attributed to it.
    places: dict[str, dict[Place, list[Range]]] = field(default_factory=dict)
    issued: dict[ClassKey, list[Range]] = field(default_factory=dict)
    counters: dict[ClassKey, int] = field(default_factory=dict)
    emissions: dict[tuple[str, str, str], int] = field(default_factory=dict)
    surrendered: dict[tuple[str, str, str], int] = field(default_factory=dict)
    #: operation id -> (command, actor, result) of every operation that succeeded.
    done: dict[str, tuple[Any, Actor, OperationResult]] = field(default_factory=dict)

    # -- lookups -------------------------------------------------------------------------------

    def account(self, label: str) -> ModelAccount:
        return next(a for a in self.accounts if a.label == label)

    def state(self, kind: str) -> ModelAccount:
        return next(a for a in self.accounts if a.kind == kind)

    def held(self, label: str) -> dict[ClassKey, list[Range]]:
        return {k: r for (k, s), r in self.places.get(label, {}).items() if s == "held" and r}

    def add(self, label: str, place: Place, piece: Range) -> None:
        ranges = self.places.setdefault(label, {}).setdefault(place, [])
        self.places[label][place] = merge([*ranges, piece])

    def take(self, label: str, key: ClassKey, piece: Range) -> None:
        self.places[label][(key, "held")] = remove(self.places[label][(key, "held")], piece)

    def authorized(self, account: ModelAccount, actor: Actor) -> bool:
        if account.is_state:
            return actor == self.admin
        return not actor.is_administrator and actor.id == account.person

    # -- selection -----------------------------------------------------------------------------

    def by_quantity(
        self, label: str, selection: Selection, max_vintage: int | None = None
    ) -> list[tuple[ClassKey, Range]]:
        """The documented selection: oldest vintage, issuer, program, type, lowest serial.
        Takes as much as there is, up to the selection's quantity."""
        takes: list[tuple[ClassKey, Range]] = []
        still = selection.quantity or 0
        for key in sorted(self.held(label), key=selection_order):
            _, program, unit_type, vintage = key
            if selection.program is not None and program != selection.program:
                continue
            if selection.unit_type is not None and unit_type != selection.unit_type:
                continue
            if selection.vintage is not None and vintage != selection.vintage:
                continue
            if max_vintage is not None and vintage > max_vintage:
                continue
            for start, end in self.held(label)[key]:
                if still == 0:
                    break
                n = min(still, end - start + 1)
                takes.append((key, (start, start + n - 1)))
                still -= n
        return takes

    def select(self, label: str, selection: Selection) -> tuple[str | None, list[Any]]:
        if selection.quantity is not None:
            takes = self.by_quantity(label, selection)
            if size(takes) < selection.quantity:
                return "INSUFFICIENT_HOLDINGS", []
            return None, takes
        wanted = sorted(
            (
                (
                    b.unit_class.issuer,
                    b.unit_class.program,
                    b.unit_class.unit_type,
                    b.unit_class.vintage,
                ),
                (b.serials.start, b.serials.end),
            )
            for b in selection.blocks
        )
        for (k1, r1), (k2, r2) in itertools.pairwise(wanted):
            if k1 == k2 and r1[0] <= r2[1] and r2[0] <= r1[1]:
                return "UNITS_NOT_HELD", []
        held = self.held(label)
        if not all(covered(held.get(key, []), piece) for key, piece in wanted):
            return "UNITS_NOT_HELD", []
        return None, wanted

    def forbids_send(self, source: ModelAccount, takes: list[tuple[ClassKey, Range]]) -> bool:
        return source.kind == "compliance" and any(
            not CATALOG.get(key[1]).compliance_account_may_send for key, _ in takes
        )

    # -- predictions, one per command type -----------------------------------------------------

    def predict(self, command: Any, actor: Actor) -> Expected:
        previous = self.done.get(command.operation_id)
        if previous is not None:
            same = previous[0] == command and previous[1] == actor
            return Expected(replay_of=previous[2]) if same else Expected("IDEMPOTENCY_CONFLICT")
        predictors: dict[type, Callable[[Any, Actor], Expected]] = {
            Issue: self.issue,
            Transfer: self.transfer,
            Retire: self.retire,
            OpenAccount: self.open_account,
            SetAccountStatus: self.set_status,
            RecordEmissions: self.record_emissions,
            DeductCompliance: self.deduct,
        }
        return predictors[type(command)](command, actor)

    def issue(self, command: Issue, actor: Actor) -> Expected:
        assert actor == self.admin
        key = (REGISTRY, command.program, command.unit_type, command.vintage)
        start = self.counters.get(key, 1) if command.start is None else command.start
        piece = (start, start + command.quantity - 1)
        if any(a <= piece[1] and piece[0] <= b for a, b in self.issued.get(key, [])):
            return Expected("ISSUANCE_OVERLAP")
        allocation = self.state("allocation").label

        def check(result: OperationResult) -> None:
            assert result.detail["block"] == block_dict(key, piece)
            assert result.detail["to"] == allocation
            self.issued[key] = merge([*self.issued.get(key, []), piece])
            self.counters[key] = max(self.counters.get(key, 1), piece[1] + 1)
            self.add(allocation, (key, "held"), piece)

        return Expected(check=check)

    def transfer(self, command: Transfer, actor: Actor) -> Expected:
        source = self.account(command.from_account)
        target = self.account(command.to_account)
        if source is target:
            return Expected("INVALID_ARGUMENT")
        if not self.authorized(source, actor):
            return Expected("NOT_AUTHORIZED")
        if source.status == "closed":
            return Expected("ACCOUNT_CLOSED")
        if source.status == "restricted":
            return Expected("ACCOUNT_RESTRICTED")
        if target.status == "closed":
            return Expected("ACCOUNT_CLOSED")
        if target.kind in ("retirement", "surrender"):
            return Expected("ACCOUNT_TYPE_MISMATCH")
        refusal, takes = self.select(source.label, command.selection)
        if refusal:
            return Expected(refusal)
        if self.forbids_send(source, takes):
            return Expected("PROGRAM_FORBIDS_SEND")

        def check(result: OperationResult) -> None:
            assert result.kind == ("allocation" if source.is_state else "transfer")
            assert moved_pieces(result) == grouped(takes)
            assert result.detail["quantity"] == size(takes)
            for key, piece in takes:
                self.take(source.label, key, piece)
                self.add(target.label, (key, "held"), piece)

        return Expected(check=check)

    def retire(self, command: Retire, actor: Actor) -> Expected:
        source = self.account(command.from_account)
        if not self.authorized(source, actor):
            return Expected("NOT_AUTHORIZED")
        if source.status == "closed":
            return Expected("ACCOUNT_CLOSED")
        if source.status == "restricted":
            return Expected("ACCOUNT_RESTRICTED")
        refusal, takes = self.select(source.label, command.selection)
        if refusal:
            return Expected(refusal)
        if self.forbids_send(source, takes):
            return Expected("PROGRAM_FORBIDS_SEND")

        def check(result: OperationResult) -> None:
            assert moved_pieces(result) == grouped(takes)
            assert {m["state"] for m in result.movements} == {"retired"}
            for key, piece in takes:
                self.take(source.label, key, piece)
                self.add(source.label, (key, "retired"), piece)

        return Expected(check=check)

    def open_account(self, command: OpenAccount, actor: Actor) -> Expected:
        assert actor == self.admin
        if command.source_id is not None and any(
            a.source == command.source_id for a in self.accounts
        ):
            return Expected("SOURCE_ALREADY_HAS_ACCOUNT")
        label = str(AccountNumber.make(REGISTRY, len(self.accounts) + 1))

        def check(result: OperationResult) -> None:
            assert result.detail["account"] == label
            person = command.representatives[0].person
            self.accounts.append(
                ModelAccount(label, command.account_type, person=person, source=command.source_id)
            )

        return Expected(check=check)

    def set_status(self, command: SetAccountStatus, actor: Actor) -> Expected:
        assert actor == self.admin
        account = self.account(command.account)
        if account.status == "closed":
            return Expected("INVALID_ARGUMENT")
        if command.status == "closed" and self.held(account.label):
            return Expected("ACCOUNT_NOT_EMPTY")

        def check(result: OperationResult) -> None:
            assert (result.detail["previous"], result.detail["status"]) == (
                account.status,
                command.status,
            )
            account.status = command.status

        return Expected(check=check)

    def record_emissions(self, command: RecordEmissions, actor: Actor) -> Expected:
        assert actor == self.admin
        account = self.account(command.account)
        if account.kind != "compliance":
            return Expected("ACCOUNT_TYPE_MISMATCH")
        key = (account.label, command.program, command.period)

        def check(result: OperationResult) -> None:
            assert result.detail["previous_tons"] == self.emissions.get(key)
            assert result.movements == ()
            self.emissions[key] = command.tons

        return Expected(check=check)

    def deduct(self, command: DeductCompliance, actor: Actor) -> Expected:
        assert actor == self.admin
        if command.accounts:
            chosen = [self.account(label) for label in command.accounts]
        else:
            chosen = [
                a
                for a in self.accounts
                if (a.label, command.program, command.period) in self.emissions
            ]
        if any(a.kind != "compliance" for a in chosen):
            return Expected("ACCOUNT_TYPE_MISMATCH")
        last_year = ControlPeriod.parse(command.period).last_year
        plans = []
        for account in chosen:
            key = (account.label, command.program, command.period)
            tons = self.emissions.get(key, 0)
            before = self.surrendered.get(key, 0)
            owed = max(0, tons - before)
            takes: list[tuple[ClassKey, Range]] = []
            if owed:
                wanted = Selection(quantity=owed, program=command.program, unit_type="allowance")
                takes = self.by_quantity(account.label, wanted, max_vintage=last_year)
            deducted = size(takes)
            plans.append((account, key, tons, before, takes, deducted))

        def check(result: OperationResult) -> None:
            rows = result.detail["sources"]
            assert [r["account"] for r in rows] == [p[0].label for p in plans]
            everything: list[tuple[ClassKey, Range]] = []
            for row, (account, key, tons, before, takes, deducted) in zip(rows, plans, strict=True):
                assert row["obligation"] == tons
                assert row["previously_surrendered"] == before
                assert row["deducted"] == deducted
                assert row["shortfall"] == max(0, tons - before - deducted)
                for class_key, piece in takes:
                    self.take(account.label, class_key, piece)
                    self.add(account.label, (class_key, "surrendered"), piece)
                self.surrendered[key] = before + deducted
                everything += takes
            assert moved_pieces(result) == grouped(everything)
            assert {m["state"] for m in result.movements} <= {"surrendered"}

        return Expected(check=check)


# -- strategies --------------------------------------------------------------------------------

PICK = st.integers(0, 10**6)
PER_MILLE = st.integers(0, 1000)
#: Mostly the right thing, sometimes not: sampled_from shrinks towards the first element.
ACTORS = st.sampled_from(("owner",) * 8 + ("stranger", "administrator"))
MOSTLY = st.sampled_from((True, True, True, False))
TARGETS = st.sampled_from(("ordinary", "ordinary", "ordinary", "any"))
#: Selection filters: mostly none.
PROGRAM_FILTERS = st.sampled_from((None, None, None, None, *PROGRAMS))
UNIT_TYPE_FILTERS = st.sampled_from((None, None, None, None, *UNIT_TYPES))
VINTAGE_FILTERS = st.sampled_from((None, None, None, None, *VINTAGES))
QUANTITY_MODES = st.sampled_from(("portion", "portion", "portion", "all", "more", "absolute"))
NAMED = st.lists(
    st.tuples(
        st.sampled_from(
            (
                "inside",
                "inside",
                "inside",
                "inside",
                "overhang",
                "foreign",
                "other-vintage",
                "anywhere",
            )
        ),
        PICK,
        PER_MILLE,
        PER_MILLE,
    ),
    min_size=1,
    max_size=2,
)


# -- the state machine ---------------------------------------------------------------------------


class LedgerMachine(RuleBasedStateMachine):
    """Subclassed by :func:`machine_on`, which says where each example gets a fresh registry."""

    make_registry: Callable[[], Registry]

    def __init__(self) -> None:
        super().__init__()
        self.reg = self.make_registry()
        self.admin = self.reg.ledger.administrator
        self.model = Model(self.admin)
        self.ids = itertools.count(1)
        self.people = itertools.count(1)
        self.failed: list[tuple[Any, Actor]] = []
        for account in self.reg.queries.accounts():
            self.model.accounts.append(ModelAccount(account["account"], account["purpose"]))
        assert [a.kind for a in self.model.accounts] == ["allocation", "retirement", "surrender"]

    def teardown(self) -> None:
        self.reg.close()

    # -- plumbing ------------------------------------------------------------------------------

    def op(self) -> str:
        return f"op-{next(self.ids)}"

    def submit(self, command: Any, actor: Actor) -> OperationResult | None:
        """Run ``command`` on the ledger and hold the outcome to the model's prediction."""
        expected = self.model.predict(command, actor)
        ledger = self.reg.ledger
        methods: dict[type, Callable[[Any, Actor], OperationResult]] = {
            Issue: ledger.issue,
            Transfer: ledger.transfer,
            Retire: ledger.retire,
            OpenAccount: ledger.open_account,
            SetAccountStatus: ledger.set_account_status,
            RecordEmissions: ledger.record_emissions,
            DeductCompliance: ledger.deduct_compliance,
        }
        changes_nothing = expected.code is not None or expected.replay_of is not None
        before = ledger_digest(self.reg) if changes_nothing else None
        try:
            result = methods[type(command)](command, actor)
        except RegistryError as error:
            assert error.code == expected.code, (
                f"{command} by {actor}: expected {expected.code or 'success'}, got {error}"
            )
            assert ledger_digest(self.reg) == before, f"refused {error.code} changed the database"
            if error.code != "IDEMPOTENCY_CONFLICT":
                self.failed.append((command, actor))
            return None
        assert expected.code is None, (
            f"{command} by {actor}: expected {expected.code}, got success {result.to_dict()}"
        )
        if expected.replay_of is not None:
            assert result.replayed, result
            assert dataclasses.replace(result, replayed=False) == expected.replay_of
            assert ledger_digest(self.reg) == before, "a replayed operation changed the database"
            return result
        assert not result.replayed
        assert expected.check is not None
        expected.check(result)
        self.model.done[command.operation_id] = (command, actor, result)
        return result

    def pick(self, n: int, accounts: list[ModelAccount] | None = None) -> ModelAccount:
        pool = self.model.accounts if accounts is None else accounts
        return pool[n % len(pool)]

    def holders(self) -> list[ModelAccount]:
        return [a for a in self.model.accounts if self.model.held(a.label)]

    def source(self, n: int, prefer_holder: bool) -> ModelAccount:
        holders = self.holders()
        return self.pick(n, holders if prefer_holder and holders else None)

    def target(self, n: int, kind: str) -> ModelAccount:
        ordinary = [a for a in self.model.accounts if not a.is_state]
        return self.pick(n, ordinary if kind == "ordinary" and ordinary else None)

    def actor_for(self, account: ModelAccount, mode: str) -> Actor:
        if mode == "administrator":
            return self.admin
        if mode == "stranger":
            return Actor.person("mallory")
        return self.admin if account.is_state else Actor.person(account.person or "nobody")

    def quantity_selection(
        self,
        label: str,
        mode: str,
        portion: int,
        absolute: int,
        program: str | None,
        unit_type: str | None,
        vintage: int | None,
    ) -> Selection:
        probe = Selection(quantity=10**18, program=program, unit_type=unit_type, vintage=vintage)
        available = size(self.model.by_quantity(label, probe))
        quantity = {
            "portion": max(1, available * portion // 1000),
            "all": max(1, available),
            "more": available + 1,
            "absolute": absolute,
        }[mode]
        return Selection(quantity=quantity, program=program, unit_type=unit_type, vintage=vintage)

    def named_selection(self, label: str, specs: list[tuple[str, int, int, int]]) -> Selection:
        def ranges_of(account: str) -> list[tuple[ClassKey, Range]]:
            return [(k, r) for k, rs in sorted(self.model.held(account).items()) for r in rs]

        blocks = []
        for kind, n, a, b in specs:
            own = ranges_of(label)
            if kind == "foreign":
                others = [x for x in self.model.accounts if x.label != label]
                pool = [p for x in others for p in ranges_of(x.label)]
            elif kind == "anywhere" or not own:
                pool = [(k, r) for k, rs in sorted(self.model.issued.items()) for r in rs]
            else:
                pool = own
            if not pool:
                pool = [((REGISTRY, "RGGI", "allowance", 2025), (1, 1000))]
            key, (start, end) = pool[n % len(pool)]
            lo, hi = sorted((a, b))
            first = start + (end - start) * lo // 1000
            last = start + (end - start) * hi // 1000
            if kind == "overhang":
                last = end + 1 + n % 5
            if kind == "other-vintage":
                key = (*key[:3], VINTAGES[(VINTAGES.index(key[3]) + 1 + n) % len(VINTAGES)])
            blocks.append(UnitBlock(UnitClass(*key), SerialRange(first, last)))
        return Selection(blocks=tuple(blocks))

    # -- rules ---------------------------------------------------------------------------------

    @initialize(
        generals=st.integers(1, 3),
        plants=st.integers(1, 2),
        grants=st.lists(
            st.tuples(st.sampled_from(PROGRAMS), st.sampled_from(VINTAGES), st.integers(1, 10**9)),
            min_size=1,
            max_size=4,
        ),
        shares=st.lists(st.tuples(PROGRAM_FILTERS, PER_MILLE), max_size=6),
    )
    def populate(
        self,
        generals: int,
        plants: int,
        grants: list[tuple[str, int, int]],
        shares: list[tuple[str | None, int]],
    ) -> None:
        """A few accounts holding some units, so that most sequences start somewhere."""
        for i in range(generals + plants):
            self.open_account("general" if i < generals else "compliance", False, 1, i)
        for program, vintage, quantity in grants:
            self.issue(program, "allowance", vintage, quantity, "next", 0)
        allocation = self.model.state("allocation").label
        # Plants first: compliance deduction needs units to deduct.
        ordinary = sorted(
            (a for a in self.model.accounts if not a.is_state), key=lambda a: a.kind != "compliance"
        )
        for (only, share), account in zip(shares, itertools.cycle(ordinary)):
            self.submit(
                Transfer(
                    operation_id=self.op(),
                    from_account=allocation,
                    to_account=account.label,
                    selection=self.quantity_selection(
                        allocation, "portion", share, 1, only, None, None
                    ),
                ),
                self.admin,
            )

    @rule(
        program=st.sampled_from(PROGRAMS),
        unit_type=st.sampled_from(("allowance", "allowance", "offset")),
        vintage=st.sampled_from(VINTAGES),
        quantity=st.integers(1, 10**9),
        start_mode=st.sampled_from(("next", "next", "next", "overlap", "gap")),
        n=PICK,
    )
    def issue(
        self, program: str, unit_type: str, vintage: int, quantity: int, start_mode: str, n: int
    ) -> None:
        key = (REGISTRY, program, unit_type, vintage)
        start = None
        if start_mode == "overlap" and self.model.issued.get(key):
            first, last = self.model.issued[key][n % len(self.model.issued[key])]
            start = first + n % (last - first + 1)
        elif start_mode == "gap":
            start = self.model.counters.get(key, 1) + 1 + n % 1000
        self.submit(
            Issue(
                operation_id=self.op(),
                program=program,
                unit_type=unit_type,
                vintage=vintage,
                quantity=quantity,
                to_account=self.model.state("allocation").label,
                start=start,
            ),
            self.admin,
        )

    @rule(
        src=PICK,
        dst=PICK,
        prefer_holder=MOSTLY,
        dst_kind=TARGETS,
        actor=ACTORS,
        mode=QUANTITY_MODES,
        portion=PER_MILLE,
        absolute=st.integers(1, 10**9),
        program=PROGRAM_FILTERS,
        unit_type=UNIT_TYPE_FILTERS,
        vintage=VINTAGE_FILTERS,
    )
    def transfer_quantity(
        self,
        src: int,
        dst: int,
        prefer_holder: bool,
        dst_kind: str,
        actor: str,
        mode: str,
        portion: int,
        absolute: int,
        program: str | None,
        unit_type: str | None,
        vintage: int | None,
    ) -> None:
        source = self.source(src, prefer_holder)
        target = self.target(dst, dst_kind)
        selection = self.quantity_selection(
            source.label, mode, portion, absolute, program, unit_type, vintage
        )
        self.submit(
            Transfer(
                operation_id=self.op(),
                from_account=source.label,
                to_account=target.label,
                selection=selection,
            ),
            self.actor_for(source, actor),
        )

    @rule(src=PICK, dst=PICK, prefer_holder=MOSTLY, dst_kind=TARGETS, actor=ACTORS, named=NAMED)
    def transfer_named(
        self,
        src: int,
        dst: int,
        prefer_holder: bool,
        dst_kind: str,
        actor: str,
        named: list[tuple[str, int, int, int]],
    ) -> None:
        source = self.source(src, prefer_holder)
        target = self.target(dst, dst_kind)
        self.submit(
            Transfer(
                operation_id=self.op(),
                from_account=source.label,
                to_account=target.label,
                selection=self.named_selection(source.label, named),
                memo="named serials",
            ),
            self.actor_for(source, actor),
        )

    @rule(
        src=PICK,
        prefer_holder=MOSTLY,
        actor=ACTORS,
        by_name=st.booleans(),
        mode=QUANTITY_MODES,
        portion=PER_MILLE,
        absolute=st.integers(1, 10**9),
        program=PROGRAM_FILTERS,
        named=NAMED,
    )
    def retire(
        self,
        src: int,
        prefer_holder: bool,
        actor: str,
        by_name: bool,
        mode: str,
        portion: int,
        absolute: int,
        program: str | None,
        named: list[tuple[str, int, int, int]],
    ) -> None:
        source = self.source(src, prefer_holder)
        selection = (
            self.named_selection(source.label, named)
            if by_name
            else self.quantity_selection(source.label, mode, portion, absolute, program, None, None)
        )
        self.submit(
            Retire(
                operation_id=self.op(),
                from_account=source.label,
                selection=selection,
                reason="voluntary",
            ),
            self.actor_for(source, actor),
        )

    @precondition(lambda self: len(self.model.accounts) < 10)
    @rule(
        kind=st.sampled_from(("general", "compliance")),
        reuse_person=st.booleans(),
        reuse_source=st.integers(0, 4),
        n=PICK,
    )
    def open_account(self, kind: str, reuse_person: bool, reuse_source: int, n: int) -> None:
        people = [p for a in self.model.accounts if (p := a.person)]
        person = (
            people[n % len(people)] if reuse_person and people else f"person-{next(self.people)}"
        )
        sources = [a.source for a in self.model.accounts if a.source]
        source = None
        if kind == "compliance":
            source = sources[n % len(sources)] if reuse_source == 0 and sources else f"ORIS-{n}"
        self.submit(
            OpenAccount(
                operation_id=self.op(),
                account_type=kind,
                name=f"{kind} account of {person}",
                source_id=source,
                representatives=(RepresentativeSpec(person=person, role="primary"),),
            ),
            self.admin,
        )

    @rule(n=PICK, status=st.sampled_from(("restricted", "open", "closed")))
    def set_status(self, n: int, status: str) -> None:
        ordinary = [a for a in self.model.accounts if not a.is_state]
        if not ordinary:
            return
        account = self.pick(n, ordinary)
        self.submit(
            SetAccountStatus(
                operation_id=self.op(), account=account.label, status=status, reason="test"
            ),
            self.admin,
        )

    @rule(
        n=PICK,
        plant=MOSTLY,
        program=st.sampled_from(PROGRAMS),
        period=st.sampled_from(PERIODS),
        scale=st.sampled_from(("holdings", "holdings", "small", "huge")),
        amount=st.integers(0, 10**9),
    )
    def record_emissions(
        self, n: int, plant: bool, program: str, period: str, scale: str, amount: int
    ) -> None:
        plants = [a for a in self.model.accounts if a.kind == "compliance"]
        account = self.pick(n, plants if plant and plants else None)
        held = self.model.held(account.label)
        if scale == "holdings":  # a program it holds; 0-120 % of what it holds of it
            programs = sorted({k[1] for k in held})
            program = programs[n % len(programs)] if programs else program
            of_program = sum(quantity_of(r) for k, r in held.items() if k[1] == program)
            tons = of_program * (amount % 1201) // 1000
        else:
            tons = amount % 2001 if scale == "small" else amount
        self.submit(
            RecordEmissions(
                operation_id=self.op(),
                account=account.label,
                program=program,
                period=period,
                tons=tons,
            ),
            self.admin,
        )

    @rule(
        program=st.sampled_from(PROGRAMS),
        period=st.sampled_from(PERIODS),
        which=st.sampled_from(("recorded", "recorded", "emitters", "plant", "any")),
        n=PICK,
    )
    def deduct(self, program: str, period: str, which: str, n: int) -> None:
        """Deduct for every source with emissions in the period, or for one named account;
        mostly for a program and period that some source reported emissions for."""
        plants = [a for a in self.model.accounts if a.kind == "compliance"]
        reported = sorted(self.model.emissions)
        accounts: tuple[str, ...] = ()
        if which == "recorded" and reported:
            label, program, period = reported[n % len(reported)]
            if n % 2:
                accounts = (label,)
        elif which == "plant" and plants:
            accounts = (self.pick(n, plants).label,)
        elif which == "any":
            accounts = (self.pick(n).label,)
        self.submit(
            DeductCompliance(
                operation_id=self.op(), program=program, period=period, accounts=accounts
            ),
            self.admin,
        )

    @rule(
        n=PICK,
        period=st.sampled_from(PERIODS),
        portion=st.integers(0, 1500),
        only_this_plant=st.booleans(),
        topped_up=st.integers(0, 1000),
    )
    def report_and_deduct(
        self, n: int, period: str, portion: int, only_this_plant: bool, topped_up: int
    ) -> None:
        """A plant reports emissions (0-150 % of what it holds of a program) and the deduction
        runs; sometimes it buys more from the allocation and the deduction runs again."""
        plants = [a for a in self.model.accounts if a.kind == "compliance"]
        if not plants:
            return
        holding = [a for a in plants if self.model.held(a.label)]
        plant = self.pick(n, holding or plants)
        held = self.model.held(plant.label)
        programs = sorted({k[1] for k in held}) or list(PROGRAMS)
        program = programs[n % len(programs)]
        of_program = sum(quantity_of(r) for k, r in held.items() if k[1] == program)
        self.submit(
            RecordEmissions(
                operation_id=self.op(),
                account=plant.label,
                program=program,
                period=period,
                tons=of_program * portion // 1000,
            ),
            self.admin,
        )
        accounts = (plant.label,) if only_this_plant else ()
        self.submit(
            DeductCompliance(
                operation_id=self.op(), program=program, period=period, accounts=accounts
            ),
            self.admin,
        )
        if topped_up:
            allocation = self.model.state("allocation").label
            self.submit(
                Transfer(
                    operation_id=self.op(),
                    from_account=allocation,
                    to_account=plant.label,
                    selection=self.quantity_selection(
                        allocation, "portion", topped_up, 1, program, None, None
                    ),
                ),
                self.admin,
            )
            self.submit(
                DeductCompliance(
                    operation_id=self.op(), program=program, period=period, accounts=accounts
                ),
                self.admin,
            )

    @precondition(lambda self: bool(self.model.done))
    @rule(n=PICK, how=st.sampled_from(("same", "same", "changed", "other-actor")))
    def resubmit(self, n: int, how: str) -> None:
        """One of the last operation ids again: the same request is answered from the stored
        result, anything else under that id is refused."""
        recent = list(self.model.done.values())[-8:]
        command, actor, _ = recent[n % len(recent)]
        if how == "changed":
            command = changed(command)
        elif how == "other-actor":
            actor = Actor.person("mallory") if actor == self.admin else self.admin
        self.submit(command, actor)

    @precondition(lambda self: bool(self.failed))
    @rule(n=PICK)
    def retry_failed(self, n: int) -> None:
        """A refused operation is not remembered: its id may be submitted again and is judged
        on the ledger as it is now."""
        command, actor = self.failed[n % len(self.failed)]
        self.submit(command, actor)

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def ledger_agrees_with_model(self) -> None:
        everything: list[tuple[ClassKey, int, int, str]] = []
        for account in self.model.accounts:
            view = self.reg.queries.holdings(account.label, self.admin)
            assert view.status == account.status, account
            stored: dict[Place, list[Range]] = defaultdict(list)
            for b in view.blocks:
                key = (
                    b.block["issuer"],
                    b.block["program"],
                    b.block["unit_type"],
                    b.block["vintage"],
                )
                stored[(key, b.state)].append((b.block["start"], b.block["end"]))
                everything.append((key, b.block["start"], b.block["end"], account.label))
            expected = {p: r for p, r in self.model.places.get(account.label, {}).items() if r}
            where = f"account {account.label}"
            assert {p: merge(r, where) for p, r in stored.items()} == expected, where
            totals: dict[Place, int] = defaultdict(int)
            for t in view.totals:
                key = (t["issuer"], t["program"], t["unit_type"], t["vintage"])
                totals[(key, t["state"])] += t["quantity"]
            assert totals == {p: quantity_of(r) for p, r in expected.items()}, account.label
            model_held = sum(quantity_of(r) for r in self.model.held(account.label).values())
            assert sum(q for (_, s), q in totals.items() if s == "held") == model_held

        # No serial in two blocks, across all accounts (every block shows up in exactly one
        # account's holdings: final blocks under the account they are attributed to).
        everything.sort()
        for (k1, _, end1, a1), (k2, start2, _, a2) in itertools.pairwise(everything):
            assert k1 != k2 or end1 < start2, f"serials held twice: {k1} by {a1} and {a2}"
        # Supply is conserved: what the blocks hold is exactly what was issued.
        supply = sum(end - start + 1 for _, start, end, _ in everything)
        issued = sum(quantity_of(r) for r in self.model.issued.values())
        assert supply == issued
        by_class: dict[ClassKey, list[Range]] = defaultdict(list)
        for key, start, end, _ in everything:
            by_class[key].append((start, end))
        assert {k: merge(v, "the registry") for k, v in by_class.items()} == {
            k: r for k, r in self.model.issued.items() if r
        }
        for row in self.reg.queries.totals():
            key = (row["issuer"], row["program"], row["unit_type"], row["vintage"])
            assert row["issued"] == quantity_of(self.model.issued.get(key, []))
            states = ("held", "escrowed", "incoming", "surrendered", "retired")
            assert sum(row[s] for s in states) == row["issued"]
        report = self.reg.queries.verify()
        assert report.ok, report.to_dict()


def machine_on(make_registry: Callable[[], Registry]) -> type[LedgerMachine]:
    class Machine(LedgerMachine):
        pass

    Machine.make_registry = staticmethod(make_registry)
    return Machine


def changed(command: Any) -> Any:
    """The same operation id with different content."""
    if isinstance(command, Transfer):
        return dataclasses.replace(command, memo=command.memo + " (edited)")
    if isinstance(command, Retire):
        return dataclasses.replace(command, reason=command.reason + " (edited)")
    if isinstance(command, Issue):
        return dataclasses.replace(command, quantity=command.quantity + 1)
    if isinstance(command, OpenAccount):
        return dataclasses.replace(command, name=command.name + " (edited)")
    if isinstance(command, SetAccountStatus):
        return dataclasses.replace(command, reason=command.reason + " (edited)")
    if isinstance(command, RecordEmissions):
        return dataclasses.replace(command, tons=command.tons + 1)
    if isinstance(command, DeductCompliance):
        other = next(p for p in PERIODS if p != command.period)
        return dataclasses.replace(command, period=other)
    raise AssertionError(f"no edit for {command!r}")


SETTINGS = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)


def test_random_operation_sequences_on_sqlite(tmp_path: Path) -> None:
    """A new database file per example, copied from a freshly migrated one."""
    template = tmp_path / "template.db"
    open_registry(f"sqlite:///{template}", REGISTRY, programs=CATALOG).close()
    counter = itertools.count()

    def fresh() -> Registry:
        path = tmp_path / f"example-{next(counter)}.db"
        shutil.copyfile(template, path)
        return open_registry(f"sqlite:///{path}", REGISTRY, programs=CATALOG)

    run_state_machine_as_test(
        machine_on(fresh),
        settings=settings(SETTINGS, max_examples=25, stateful_step_count=30),
    )


@pytest.fixture
def postgres_url() -> Iterator[str]:
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


def test_random_operation_sequences_on_postgresql(postgres_url: str) -> None:
    """One database for the test, emptied between examples (the schema stays migrated)."""
    tables = ", ".join(t.name for t in metadata.sorted_tables)
    opened = itertools.count()

    def fresh() -> Registry:
        if next(opened):
            engine = make_engine(postgres_url)
            with engine.begin() as conn:
                conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            engine.dispose()
        return open_registry(postgres_url, REGISTRY, programs=CATALOG)

    run_state_machine_as_test(
        machine_on(fresh),
        settings=settings(SETTINGS, max_examples=8, stateful_step_count=30),
    )
