"""Run a scenario against a fresh local federation of real node processes.

Transfers and cancels go through the acting person's home node over mutual TLS, with a
certificate issued to that person for the run; the administrator's ledger operations (issue,
emissions, deduction, account status) and retirements run on the node's database as
``regfed ledger`` does. Crashes are armed on the running node through its crash file.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regfed.certs.identity import Role
from regfed.certs.intermediate import issue_person, person_folder
from regfed.certs.local import intermediate_folder
from regfed.gateway.crash import ARM, POINT_FILE
from regfed.gateway.protocol.durable import crash_points
from regfed.local import Federation, LocalFederation, RegistryClient, TransferFailed
from regfed.local.audit import audit
from regfed.local.federation import create_federation, free_base_port
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
    open_existing,
)

from ._format import DEFAULT_PROGRAM, Scenario, Step

_HOOKS = {p["name"]: str(p["hook"]) for p in crash_points()}
_UNFINISHED = {"proposed", "accepted"}
_NOT_COMPLETED = {"rejected", "terminated", "cancelled"}
SETTLE_TIMEOUT = 60.0


class StepFailed(Exception):
    """The step did not meet its expectation (or could not run): the outcome says why."""


@dataclass
class _Pending:
    """A transfer interrupted by a crash: settled after the restart, or at the end."""

    step: dict[str, Any]
    home: str
    peer: str  # the destination's registry
    request: dict[str, Any]
    actor: tuple[Role, str | None]
    expect: str
    error: str | None
    transfer_id: str | None = None


@dataclass
class Runner:
    scenario: Scenario
    folder: Path
    say: Callable[[str], None]
    federation: Federation = field(init=False)
    local: LocalFederation = field(init=False)
    numbers: dict[str, str] = field(default_factory=dict)
    armed: dict[str, str] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)
    pending: list[_Pending] = field(default_factory=list)

    # -- the federation ----------------------------------------------------------------------

    def start(self) -> None:
        codes = list(self.scenario.registries)
        self.federation = create_federation(
            self.folder / "federation",
            codes,
            base_port=free_base_port(len(codes) + 1),
            settings={"redrive_interval": 0.2, "ask_after": 1.0},
        )
        self._people()
        self.local = LocalFederation(self.federation)
        for code in codes:
            self._crash_file(code).write_text("")
            self.local.start([code], env=self._env(code))
        self.say(f"nodes up: {', '.join(codes)}")
        for alias, spec in self.scenario.accounts.items():
            self.numbers[alias] = self._open(alias)
            self.say(f"  account {alias}: {spec.type} {self.numbers[alias]}")

    def stop(self) -> None:
        self.local.stop()

    def _env(self, code: str) -> dict[str, str]:
        return {ARM: "1", POINT_FILE: str(self._crash_file(code))}

    def _crash_file(self, code: str) -> Path:
        return self.federation.folder / code / "crash-at"

    def _people(self) -> None:
        """A trader certificate for every person the scenario names, at each registry."""
        wanted: dict[str, set[str]] = {code: set() for code in self.scenario.registries}
        for spec in self.scenario.accounts.values():
            wanted[spec.registry] |= set(spec.representatives)
        for step in self.scenario.steps:
            who, alias = step.get("as"), step.get("from") or step.get("account")
            if isinstance(who, str) and who not in {"admin", "oversight"} and alias:
                wanted[self.scenario.accounts[alias].registry].add(who)
        for code, people in wanted.items():
            intermediate = intermediate_folder(self.federation.certs, code)
            for person in sorted(people):
                if not (person_folder(intermediate, Role.TRADER, person) / "tls.key").exists():
                    issue_person(intermediate, Role.TRADER, person)

    def _ledger(self, code: str, work: Callable[[Any], Any]) -> Any:
        registry = open_existing(self.federation.node_config(code).database)
        try:
            return work(registry)
        finally:
            registry.close()

    def _open(self, alias: str) -> str:
        spec = self.scenario.accounts[alias]

        def work(reg: Any) -> str:
            if spec.type == "state":
                return str(reg.state_account(StatePurpose.ALLOCATION).label)
            if spec.type == "state:retirement":
                return str(reg.state_account(StatePurpose.RETIREMENT).label)
            result = reg.ledger.open_account(
                OpenAccount(
                    operation_id=_op("open"),
                    account_type=spec.type,
                    name=alias,
                    source_id=spec.source,
                    representatives=tuple(
                        RepresentativeSpec(person=p, role="primary" if i == 0 else "alternate")
                        for i, p in enumerate(spec.representatives)
                    ),
                ),
                reg.ledger.administrator,
            )
            return str(result.detail["account"])

        return str(self._ledger(spec.registry, work))

    # -- steps -------------------------------------------------------------------------------

    def run_step(self, step: Step) -> dict[str, Any]:
        out: dict[str, Any] = {"index": step.index, "op": step.op}
        try:
            self._require_alive(step)
            getattr(self, "_" + step.op.replace("-", "_"))(step, out)
            out.setdefault("outcome", "ok")
        except StepFailed as failure:
            out["outcome"] = f"failed: {failure}"
        self.results.append(out)
        return out

    def _require_alive(self, step: Step) -> None:
        if step.op in {"restart", "crash"}:
            return
        code = self._registry_of(step)
        if code is not None and not self.local.alive(code):
            raise StepFailed(f"registry {code} is down; add a restart step before this one")

    def _registry_of(self, step: Step) -> str | None:
        if step.get("registry"):
            return str(step.get("registry"))
        alias = step.get("from") or step.get("account")
        if alias:
            return self.scenario.accounts[alias].registry
        if step.op == "cancel":
            return str(self._transfer_step(step)["home"])
        return None

    def _expect(self, step: Step, out: dict[str, Any], error: RegistryError | None) -> None:
        """Ledger steps: success unless the step expects a refusal (with its code)."""
        expect, code = step.get("expect"), step.get("error")
        if error is not None:
            out["error"] = error.code
            if _refusal_expected(expect, code, error.code):
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

    def _issue(self, step: Step, out: dict[str, Any]) -> None:
        to = self.numbers[step.get("to")]
        self._admin_op(
            step,
            out,
            step.get("registry"),
            lambda reg: reg.ledger.issue(
                Issue(
                    operation_id=_op("issue"),
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
        self._account_op(
            step,
            out,
            lambda reg, number: reg.ledger.retire(
                Retire(operation_id=_op("retire"), from_account=number, selection=_selection(step)),
                self._actor(step, step.get("account"), reg),
            ),
        )

    def _emissions(self, step: Step, out: dict[str, Any]) -> None:
        self._account_op(
            step,
            out,
            lambda reg, number: reg.ledger.record_emissions(
                RecordEmissions(
                    operation_id=_op("emissions"),
                    account=number,
                    program=step.get("program", DEFAULT_PROGRAM),
                    period=str(step.get("period")),
                    tons=step.get("tons"),
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
                    operation_id=_op("deduct"),
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
                SetAccountStatus(operation_id=_op(status), account=number, status=status),
                reg.ledger.administrator,
            ),
        )

    def _acting(self, step: Step, alias: str) -> str:
        """Who acts on ``alias``: ``admin``, ``oversight`` or a person (default: the first
        representative; the administrator for a state account)."""
        who = step.get("as")
        spec = self.scenario.accounts[alias]
        if who is None:
            return "admin" if spec.is_state else spec.representatives[0]
        return str(who)

    def _actor(self, step: Step, alias: str, reg: Any) -> Actor:
        who = self._acting(step, alias)
        if who == "admin":
            return reg.ledger.administrator  # type: ignore[no-any-return]
        if who == "oversight":
            return Actor(ActorKind.OVERSIGHT, "oversight")
        return Actor.person(who)

    # -- crashes -----------------------------------------------------------------------------

    def _crash(self, step: Step, out: dict[str, Any]) -> None:
        code = step.get("registry")
        if not self.local.alive(code):
            raise StepFailed(f"registry {code} is down; restart it before arming a crash")
        self._crash_file(code).write_text(_HOOKS[step.get("at")])
        self.armed[code] = step.get("at")

    def _restart(self, step: Step, out: dict[str, Any]) -> None:
        code = step.get("registry")
        if self.local.alive(code):
            raise StepFailed(f"registry {code} is running: only a crashed registry is restarted")
        self.local.wait_exit(code, 5)
        self._crash_file(code).write_text("")
        self.local.start([code], env=self._env(code))
        self._settle_pending()

    def crashed(self) -> list[str]:
        """Registries whose armed crash fired (their process is dead): disarmed."""
        fired = [code for code in self.armed if not self.local.alive(code)]
        for code in fired:
            del self.armed[code]
        return fired

    # -- transfers ---------------------------------------------------------------------------

    def _client(self, home: str, actor: tuple[Role, str | None]) -> RegistryClient:
        return RegistryClient(self.federation, home, role=actor[0], person=actor[1], timeout=10)

    def _transfer_actor(self, step: Step, alias: str) -> tuple[Role, str | None]:
        who = self._acting(step, alias)
        if who == "admin":
            return (Role.ADMINISTRATOR, None)
        if who == "oversight":
            return (Role.OVERSIGHT, None)
        return (Role.TRADER, who)

    def _transfer(self, step: Step, out: dict[str, Any]) -> None:
        spec = self.scenario.accounts[step.get("from")]
        home = spec.registry
        actor = self._transfer_actor(step, spec.alias)
        request: dict[str, Any] = {
            "from_account": self.numbers[spec.alias],
            "to_account": self.numbers[step.get("to")],
            "request_id": f"scenario-{step.index}-{uuid.uuid4().hex[:8]}",
        }
        if step.get("serials"):
            request["blocks"] = self._blocks(home, request["from_account"], step.get("serials"))
        else:
            request.update(
                quantity=step.get("quantity"),
                program=step.get("program", ""),
                unit_type=step.get("unit_type", ""),
                vintage=step.get("vintage", 0),
            )
        peer = self.scenario.accounts[step.get("to")].registry
        out.update(home=home, peer=peer, expect=step.get("expect", "completed"))
        pending = _Pending(
            out, home, peer, request, actor, step.get("expect", "completed"), step.get("error")
        )
        transfer = self._propose(pending)
        if transfer is None:
            return
        out.update(transfer_id=transfer["transfer_id"])
        pending.transfer_id = transfer["transfer_id"]
        if not step.get("wait", True):
            # Returns once proposed: only a refusal at proposal can miss the expectation.
            out["status"] = transfer["status"]
            if transfer["status"] in _NOT_COMPLETED:
                self._judge(pending, transfer)
            return
        followed = self._follow(pending, transfer["transfer_id"])
        if followed is not None:
            self._judge(pending, followed)

    def _propose(self, pending: _Pending) -> dict[str, Any] | None:
        """The proposal; None when a crash interrupted it (it becomes pending)."""
        try:
            with self._client(pending.home, pending.actor) as client:
                return client.propose(**pending.request)
        except TransferFailed as failure:
            if failure.status == "UNAVAILABLE" and self._crash_fired():
                self.pending.append(pending)
                pending.step["outcome"] = "interrupted by a crash"
                return None
            pending.step.update(status="rejected", error=failure.code)
            if _refusal_expected(pending.expect, pending.error, failure.code):
                return None
            raise StepFailed(f"refused {failure.code}: {failure.message}") from None

    def _crash_fired(self) -> bool:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if self.crashed():
                return True
            time.sleep(0.05)
        return False

    def _follow(self, pending: _Pending, transfer_id: str) -> dict[str, Any] | None:
        """The settled transfer; None when a crash interrupted it or one of its registries is
        down (it becomes pending: followed again after the restart)."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            if self.local.alive(pending.home):
                try:
                    with self._client(pending.home, pending.actor) as client:
                        transfer = client.get(transfer_id, wait_ms=500)
                except TransferFailed as failure:
                    if failure.status != "UNAVAILABLE":
                        raise StepFailed(f"could not follow {transfer_id}: {failure}") from None
                    time.sleep(0.1)
                else:
                    if transfer["settled"]:
                        return transfer
            if self.crashed() or not self._both_up(pending):
                self.pending.append(pending)
                pending.step["outcome"] = "interrupted by a crash"
                return None
        raise StepFailed(f"transfer {transfer_id} did not settle within {SETTLE_TIMEOUT:.0f} s")

    def _judge(self, pending: _Pending, transfer: dict[str, Any]) -> None:
        status, code = transfer["status"], transfer["error_code"] or None
        pending.step["status"] = status
        if code:
            pending.step["error"] = code
        expect = pending.expect
        if expect == "completed" and status != "completed":
            raise StepFailed(f"ended {status}{f' ({code})' if code else ''}, expected completed")
        if expect == "rejected" and status not in _NOT_COMPLETED:
            raise StepFailed(f"ended {status}, expected it not to complete")
        if expect == "rejected" and pending.error not in {None, code}:
            raise StepFailed(f"refused with {code}, expected {pending.error}")

    def _settle_pending(self) -> None:
        """Transfers interrupted by a crash: asked again by request id, followed to the end.

        One whose home node is still down keeps waiting; one a new crash interrupts is pending
        again (``_propose`` and ``_follow`` put it back)."""
        waiting, self.pending = self.pending, []
        for pending in waiting:
            if not self._both_up(pending):
                self.pending.append(pending)
                continue
            pending.step["outcome"] = "ok"
            try:
                tid = pending.transfer_id
                if tid is None:  # the home node died answering: the same request id again
                    transfer = self._propose(pending)
                    tid = None if transfer is None else transfer["transfer_id"]
                    pending.transfer_id = tid
                    if tid is not None:
                        pending.step["transfer_id"] = tid
                transfer = None if tid is None else self._follow(pending, tid)
                if transfer is not None:
                    self._judge(pending, transfer)
            except StepFailed as failure:
                pending.step["outcome"] = f"failed: {failure}"

    def _both_up(self, pending: _Pending) -> bool:
        return self.local.alive(pending.home) and self.local.alive(pending.peer)

    def _cancel(self, step: Step, out: dict[str, Any]) -> None:
        target = self._transfer_step(step)
        tid = target.get("transfer_id")
        if not tid:
            raise StepFailed(f"step {step.get('transfer')} has no transfer to cancel")
        spec = self.scenario.accounts[self.scenario.steps[step.get("transfer")].get("from")]
        actor = self._transfer_actor(step, spec.alias)
        try:
            with self._client(target["home"], actor) as client:
                client.cancel(tid)
        except TransferFailed as failure:
            out["error"] = failure.code
            if _refusal_expected(step.get("expect"), step.get("error"), failure.code):
                return
            raise StepFailed(f"refused {failure.code}: {failure.message}") from None
        if step.get("expect") == "rejected":
            raise StepFailed("expected the cancel to be refused")
        # The transfer step's own expectation judges how it ends; this step only follows it.
        expected_error = self.scenario.steps[step.get("transfer")].get("error")
        pending = _Pending(
            target, target["home"], target["peer"], {}, actor, target["expect"], expected_error, tid
        )
        done = self._follow(pending, tid)
        if done is not None:
            target["status"] = out["status"] = done["status"]

    def _transfer_step(self, step: Step) -> dict[str, Any]:
        index = step.get("transfer")
        if self.scenario.steps[index].op != "transfer":
            raise StepFailed(f"step {index} is not a transfer")
        target: dict[str, Any] = self.results[index]
        return target

    def _holdings(self, code: str, account: str) -> Any:
        return self._ledger(
            code, lambda reg: reg.queries.holdings(account, reg.ledger.administrator).blocks
        )

    def _blocks(self, home: str, account: str, serials: list[list[int]]) -> list[dict[str, Any]]:
        """Serial ranges as blocks: the unit class from the account's holdings that hold them."""
        held = self._holdings(home, account)
        blocks = []
        for start, end in serials:
            owner = next(
                (h.block for h in held if h.block["start"] <= start and end <= h.block["end"]),
                None,
            )
            if owner is None:  # let the node refuse it, with its own code
                owner = held[0].block if held else {"issuer": home, "program": DEFAULT_PROGRAM}
            blocks.append({**owner, "start": start, "end": end})
        return [
            {
                k: b[k]
                for k in ("issuer", "program", "unit_type", "vintage", "start", "end")
                if k in b
            }
            for b in blocks
        ]

    # -- the end -----------------------------------------------------------------------------

    def finish(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Holdings of every alias and the invariant checks, once pending transfers settle."""
        self._settle_pending()
        for pending in self.pending:
            down = [c for c in (pending.home, pending.peer) if not self.local.alive(c)]
            pending.step["outcome"] = f"failed: registry {', '.join(down)} was never restarted"
        for code, point in self.armed.items():
            self.results.append(
                {
                    "index": len(self.results),
                    "op": "crash-check",
                    "outcome": f"failed: the crash armed at {point} on {code} never fired",
                }
            )
        holdings = {}
        for alias, spec in self.scenario.accounts.items():
            if not self.local.alive(spec.registry):
                continue
            blocks = self._holdings(spec.registry, self.numbers[alias])
            holdings[alias] = [
                {**{k: h.block[k] for k in _BLOCK_KEYS}, "state": h.state} for h in blocks
            ]
        problems = audit(self.federation)
        checks = [{"name": "federation-audit", "ok": not problems, "problems": problems}]
        for code in self.scenario.registries:
            report = self._ledger(code, lambda reg: reg.queries.verify())
            checks.append(
                {"name": f"{code}-ledger-verify", "ok": report.ok, "problems": report.to_dict()}
            )
        return holdings, checks


_BLOCK_KEYS = ("issuer", "program", "unit_type", "vintage", "start", "end")


def _refusal_expected(expect: str | None, wanted: str | None, code: str) -> bool:
    """A refusal with ``code`` meets a step that expects ``rejected`` or ``any`` (with the
    ``wanted`` code, if it names one)."""
    return expect in {"rejected", "any"} and wanted in {None, code}


def _op(what: str) -> str:
    return f"scenario-{what}-{uuid.uuid4().hex}"


def _selection(step: Step) -> Selection:
    return Selection(
        quantity=step.get("quantity"),
        program=step.get("program"),
        unit_type=step.get("unit_type"),
        vintage=step.get("vintage"),
    )
