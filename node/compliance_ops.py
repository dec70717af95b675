"""Compliance operations of the ledger: emissions recorded per source and control period, and
the deduction that surrenders what they oblige (mass- or rate-based, within the program's share
limits for credits). Each runs as one ledger operation (:meth:`Ledger._run`): atomic, journaled,
idempotent by its operation id.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from ._moves import apply_takes
from .domain import compliance
from .domain.accounts import Account, AccountType, StatePurpose
from .domain.actors import Actor
from .domain.commands import DeductCompliance, RecordEmissions, Selection
from .domain.errors import AccountTypeMismatch, InvalidArgument
from .domain.holdings import BlockState
from .domain.journal import Place
from .domain.programs import Basis, ControlPeriod, ProgramRules, decimal_text
from .domain.serials import MAX_SERIAL
from .storage.store import LedgerTx

if TYPE_CHECKING:
    from .ledger import Ledger, OperationResult, Work


def record_emissions(ledger: Ledger, command: RecordEmissions, actor: Actor) -> OperationResult:
    def body(tx: LedgerTx, work: Work) -> None:
        ledger._require_admin(actor, "record emissions")
        account = ledger._account(tx, command.account, locked=True)
        if account.type is not AccountType.COMPLIANCE:
            raise AccountTypeMismatch(
                f"emissions are recorded for compliance accounts; {account.label} is "
                f"a {account.type.value} account",
                account=account.label,
            )
        rules = ledger.programs.get(command.program)
        period = str(ControlPeriod.parse(command.period))
        record = _emissions_record(rules, command)
        previous = tx.compliance.emissions(account.id, command.program, period)
        work.on_seq.append(
            lambda seq: tx.compliance.set_emissions(
                account.id, command.program, period, record, seq
            )
        )
        work.accounts.add(account.id)
        work.detail.update(
            account=account.label,
            source=account.source_id,
            program=command.program,
            period=period,
            tons=command.tons,
            previous_tons=previous,
        )
        if rules.basis is Basis.RATE:
            work.detail.update(
                co2_lb=command.tons,
                mwh=record.mwh,
                standard=record.standard,
                obligation=record.obligation(rules),
            )

    return ledger._run(command, actor, body, "emissions")


def deduct_compliance(ledger: Ledger, command: DeductCompliance, actor: Actor) -> OperationResult:
    def body(tx: LedgerTx, work: Work) -> None:
        ledger._require_admin(actor, "run compliance deduction")
        rules = ledger.programs.get(command.program)
        period = ControlPeriod.parse(command.period)
        surrender = ledger._state_account(tx, StatePurpose.SURRENDER)
        if command.blocks and len(command.accounts) != 1:
            raise InvalidArgument(
                "a surrender of named blocks names the one account they come from"
            )
        if command.accounts:
            named = [ledger._account(tx, n) for n in command.accounts]
            # The same account named twice (even spelled differently) is deducted once.
            chosen = list({a.id: a for a in named}.values())
        else:
            emitting = [i for i, _tons in tx.compliance.emitters(rules.code, str(period))]
            chosen = [a for i in emitting if (a := tx.account_by_id(i)) is not None]
        *chosen, surrender = ledger._lock(tx, *chosen, surrender)
        # Read under the locks: emissions are recorded under the same account lock.
        emitters = dict(tx.compliance.emission_records(rules.code, str(period)))
        results: list[dict[str, Any]] = []
        for account in chosen:
            if account.type is not AccountType.COMPLIANCE:
                raise AccountTypeMismatch(
                    f"compliance deduction applies to compliance accounts; {account.label} "
                    f"is a {account.type.value} account",
                    account=account.label,
                )
            record = emitters.get(account.id, compliance.Emissions(0))
            tons = record.amount
            by_type_before = tx.compliance.surrendered_by_type(account.id, rules.code, str(period))
            previously = sum(by_type_before.values())
            obligation = record.obligation(rules) if account.id in emitters else 0
            if command.blocks:
                plan = _named_surrender(
                    ledger,
                    tx,
                    account,
                    rules,
                    period,
                    command,
                    obligation,
                    previously,
                    by_type_before,
                )
            else:
                plan = compliance.plan_deduction(
                    tx.spendable_in_order(
                        account.id,
                        program=rules.code,
                        unit_types=rules.deduction_unit_types,
                        max_vintage=period.last_year,
                    ),
                    rules,
                    period,
                    tons,
                    previously,
                    obligation=obligation,
                    previously_by_type=by_type_before,
                )
            work.movements += apply_takes(
                tx,
                plan.takes,
                Place(surrender.id, BlockState.SURRENDERED, account.id),
                work.audit,
            )
            work.on_seq.append(
                functools.partial(
                    tx.compliance.insert_deduction,
                    account_id=account.id,
                    program=rules.code,
                    period=str(period),
                    obligation=plan.obligation,
                    deducted=plan.deducted,
                    shortfall=plan.shortfall,
                    by_type=plan.by_type,
                )
            )
            work.accounts.add(account.id)
            results.append(
                {
                    "account": account.label,
                    "source": account.source_id,
                    "emissions": tons,
                    "obligation": plan.obligation,
                    "previously_surrendered": plan.previously_surrendered,
                    "deducted": plan.deducted,
                    "shortfall": plan.shortfall,
                    "by_type": plan.by_type,
                }
            )
        work.accounts.add(surrender.id)
        work.detail.update(
            program=rules.code,
            period=str(period),
            sources=results,
            deducted=sum(r["deducted"] for r in results),
            shortfall=sum(r["shortfall"] for r in results),
        )

    return ledger._run(command, actor, body, "deduction")


def _named_surrender(
    ledger: Ledger,
    tx: LedgerTx,
    account: Account,
    rules: ProgramRules,
    period: ControlPeriod,
    command: DeductCompliance,
    obligation: int,
    previously: int,
    by_type_before: dict[str, int],
) -> compliance.DeductionPlan:
    """Exactly the named blocks, each eligible, within what is owed and the share limits."""
    takes = ledger._select(tx, account, Selection(blocks=command.blocks))
    for take in takes:
        if not compliance.eligible(take.holding, rules, period):
            uc = take.holding.unit_class
            raise InvalidArgument(
                f"{take.block} cannot be surrendered for {rules.code} {period}: it is "
                f"{uc.program} {uc.unit_type} of vintage {uc.vintage} (the program takes "
                f"{', '.join(rules.deduction_unit_types)} up to vintage {period.last_year})",
                block=take.block.to_dict(),
            )
    named = sum(t.serials.quantity for t in takes)
    owed = max(0, obligation - previously)
    if named > owed:
        raise InvalidArgument(
            f"{account.label} owes {owed:,} more for {rules.code} {period}; {named:,} named",
            owed=owed,
            named=named,
        )
    compliance.check_named_surrender(rules, obligation, by_type_before, takes, account.label)
    return compliance.DeductionPlan(obligation, previously, tuple(takes))


def _emissions_record(rules: ProgramRules, command: RecordEmissions) -> compliance.Emissions:
    if not 0 <= command.tons <= MAX_SERIAL:
        raise InvalidArgument(f"emissions must be between 0 and {MAX_SERIAL}, got {command.tons}")
    if rules.basis is not Basis.RATE:
        if command.mwh is not None or command.standard is not None:
            raise InvalidArgument(
                f"{rules.code} is mass-based: record tons only (MWh and a standard are for "
                "rate-based programs)"
            )
        return compliance.Emissions(command.tons)
    if command.mwh is None or command.standard is None:
        raise InvalidArgument(
            f"{rules.code} is rate-based: record CO2 in lb (--co2-lb), generation (--mwh) and "
            "the source's standard in lb/MWh (--standard)"
        )
    if not 0 <= command.mwh <= MAX_SERIAL:
        raise InvalidArgument(f"generation must be between 0 and {MAX_SERIAL} MWh")
    # Parsed from decimal text, so its canonical text is exact.
    standard = decimal_text(compliance.standard_of(command.standard))
    return compliance.Emissions(command.tons, command.mwh, standard)
