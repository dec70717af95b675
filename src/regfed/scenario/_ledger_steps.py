"""Steps that run on one registry's ledger: opening the scenario's accounts, issuance,
emissions, compliance deduction, retirement and account status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from regfed.node import (
    Actor,
    ActorKind,
    DeductCompliance,
    Issue,
    OpenAccount,
    RecordEmissions,
    RegistryError,
    RepresentativeSpec,
    Retire,
    Selection,
    SetAccountStatus,
    StatePurpose,
)

from ._base import Context, StepFailed, operation_id, refusal_expected
from ._format import DEFAULT_PROGRAM, SET_ASIDE, Step


class LedgerSteps(Context):
    def _open(self, alias: str) -> str:
        spec = self.scenario.accounts[alias]

        def work(reg: Any) -> str:
            if spec.type == "state":
                return str(reg.state_account(StatePurpose.ALLOCATION).label)
            if spec.type == "state:retirement":
                return str(reg.state_account(StatePurpose.RETIREMENT).label)
            if spec.type.startswith(SET_ASIDE):
                command = OpenAccount(
                    operation_id=operation_id("open"),
                    account_type="state",
                    name=alias,
                    purpose=StatePurpose.SET_ASIDE.value,
                    set_aside=spec.type.removeprefix(SET_ASIDE),
                )
            else:
                command = OpenAccount(
                    operation_id=operation_id("open"),
                    account_type=spec.type,
                    name=alias,
                    source_id=spec.source,
                    representatives=tuple(
                        RepresentativeSpec(person=p, role="primary" if i == 0 else "alternate")
                        for i, p in enumerate(spec.representatives)
                    ),
                )
            result = reg.ledger.open_account(command, reg.ledger.administrator)
            return str(result.detail["account"])

        return str(self._ledger(spec.registry, work))

    def _expect(self, step: Step, out: dict[str, Any], error: RegistryError | None) -> None:
        """Success unless the step expects a refusal (with its code)."""
        expect, code = step.get("expect"), step.get("error")
        if error is not None:
            out["error"] = error.code
            if refusal_expected(expect, code, error.code):
                return
            raise StepFailed(f"refused {error.code}: {error.message}")
        if expect == "rejected":
            raise StepFailed(f"expected a refusal{f' ({code})' if code else ''}, it succeeded")

    def _admin_op(
        self, step: Step, out: dict[str, Any], code: str, make: Callable[[Any], Any]
    ) -> Any:
        try:
            result = self._ledger(code, make)
        except RegistryError as error:
            self._expect(step, out, error)
            return None
        self._expect(step, out, None)
        return result

    def _account_op(self, step: Step, out: dict[str, Any], make: Callable[[Any, str], Any]) -> Any:
        """An operation on the step's ``account``, given its registry and its number."""
        spec = self.scenario.accounts[step.get("account")]
        number = self.numbers[spec.alias]
        return self._admin_op(step, out, spec.registry, lambda reg: make(reg, number))

    def _actor(self, step: Step, alias: str, reg: Any) -> Actor:
        who = self._acting(step, alias)
        if who == "admin":
            return reg.ledger.administrator  # type: ignore[no-any-return]
        if who == "oversight":
            return Actor(ActorKind.OVERSIGHT, "oversight")
        return Actor.person(who)

    def _issue(self, step: Step, out: dict[str, Any]) -> None:
        to = self.numbers[step.get("to")]
        self._admin_op(
            step,
            out,
            step.get("registry"),
            lambda reg: reg.ledger.issue(
                Issue(
                    operation_id=operation_id("issue"),
                    program=step.get("program", DEFAULT_PROGRAM),
                    unit_type=step.get("unit_type", "allowance"),
                    vintage=step.get("vintage"),
                    quantity=step.get("quantity"),
                    to_account=to,
                    start=step.get("start"),
                ),
                reg.ledger.administrator,
            ),
        )

    def _retire(self, step: Step, out: dict[str, Any]) -> None:
        selection = Selection(
            quantity=step.get("quantity"),
            program=step.get("program"),
            unit_type=step.get("unit_type"),
            vintage=step.get("vintage"),
        )
        self._account_op(
            step,
            out,
            lambda reg, number: reg.ledger.retire(
                Retire(
                    operation_id=operation_id("retire"), from_account=number, selection=selection
                ),
                self._actor(step, step.get("account"), reg),
            ),
        )

    def _emissions(self, step: Step, out: dict[str, Any]) -> None:
        self._account_op(
            step,
            out,
            lambda reg, number: reg.ledger.record_emissions(
                RecordEmissions(
                    operation_id=operation_id("emissions"),
                    account=number,
                    program=step.get("program", DEFAULT_PROGRAM),
                    period=str(step.get("period")),
                    tons=step.get("tons"),
                    mwh=step.get("mwh"),
                    standard=None if step.get("standard") is None else str(step.get("standard")),
                ),
                reg.ledger.administrator,
            ),
        )

    def _deduct(self, step: Step, out: dict[str, Any]) -> None:
        result = self._admin_op(
            step,
            out,
            step.get("registry"),
            lambda reg: reg.ledger.deduct_compliance(
                DeductCompliance(
                    operation_id=operation_id("deduct"),
                    program=step.get("program", DEFAULT_PROGRAM),
                    period=str(step.get("period")),
                ),
                reg.ledger.administrator,
            ),
        )
        if result is not None:
            out["deducted"] = int(result.detail["deducted"])
            out["shortfall"] = int(result.detail["shortfall"])

    def _close(self, step: Step, out: dict[str, Any]) -> None:
        self._set_status(step, out, "closed")

    def _restrict(self, step: Step, out: dict[str, Any]) -> None:
        self._set_status(step, out, "restricted")

    def _set_status(self, step: Step, out: dict[str, Any], status: str) -> None:
        self._account_op(
            step,
            out,
            lambda reg, number: reg.ledger.set_account_status(
                SetAccountStatus(operation_id=operation_id(status), account=number, status=status),
                reg.ledger.administrator,
            ),
        )
