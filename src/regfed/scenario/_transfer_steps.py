"""Transfers and cancels: through the acting person's home node over mutual TLS, followed to
settlement, and picked up again by request id when a crash interrupts them."""

from __future__ import annotations

import time
import uuid
from typing import Any

from regfed.certs.identity import Role
from regfed.local import RegistryClient, TransferFailed

from ._base import (
    NOT_COMPLETED,
    SETTLE_TIMEOUT,
    Context,
    Pending,
    StepFailed,
    refusal_expected,
)
from ._format import DEFAULT_PROGRAM, Step

_INTERRUPTED = "interrupted by a crash"


class TransferSteps(Context):
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
        expect = step.get("expect", "completed")
        out.update(home=home, peer=peer, expect=expect)
        actor = self._transfer_actor(step, spec.alias)
        pending = Pending(out, home, peer, request, actor, expect, step.get("error"))
        transfer = self._propose(pending)
        if transfer is None:
            return
        if not step.get("wait", True):
            # Returns once proposed (or, if a registry it involves is armed, once that crash
            # fired); followed to its end with the other unwaited ones.
            out["status"] = transfer["status"]
            involved = {home, peer} & (set(self.armed) - self.armed_down)
            if involved:
                self._crash_fired(involved)
            self.unwaited.append(pending)
            if transfer["status"] in NOT_COMPLETED:
                self._judge(pending, transfer)
            return
        followed = self._follow(pending, transfer["transfer_id"])
        if followed is not None:
            self._judge(pending, followed)

    def _propose(self, pending: Pending) -> dict[str, Any] | None:
        """The proposal; None when a crash interrupted it (it becomes pending) or when it was
        refused as expected."""
        try:
            with self._client(pending.home, pending.actor) as client:
                transfer = client.propose(**pending.request)
        except TransferFailed as failure:
            if failure.status == "UNAVAILABLE" and self._crash_fired({pending.home}):
                self.pending.append(pending)
                pending.step["outcome"] = _INTERRUPTED
                return None
            pending.step.update(status="rejected", error=failure.code, reason=failure.message)
            if refusal_expected(pending.expect, pending.error, failure.code):
                pending.step["outcome"] = "ok"
                return None
            raise StepFailed(f"refused {failure.code}: {failure.message}") from None
        pending.transfer_id = pending.step["transfer_id"] = transfer["transfer_id"]
        return transfer

    def _follow(self, pending: Pending, transfer_id: str) -> dict[str, Any] | None:
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
                pending.step["outcome"] = _INTERRUPTED
                return None
        raise StepFailed(f"transfer {transfer_id} did not settle within {SETTLE_TIMEOUT:.0f} s")

    def _judge(self, pending: Pending, transfer: dict[str, Any]) -> None:
        """The transfer's end against its step's expectation, written on that step."""
        status, code = transfer["status"], transfer["error_code"] or None
        step = pending.step
        step["status"] = status
        if code:
            step["error"] = code
            # The registry's words for it: a rejecting destination's reach the trader too.
            step["reason"] = transfer["error_message"] or code
        expect = pending.expect
        if expect == "completed" and status != "completed":
            problem = f"ended {status}{f' ({code})' if code else ''}, expected completed"
        elif expect == "rejected" and status not in NOT_COMPLETED:
            problem = f"ended {status}, expected it not to complete"
        elif status in NOT_COMPLETED and pending.error not in {None, code}:
            problem = f"ended {status} with {code}, expected {pending.error}"
        else:
            step["outcome"] = "ok"
            return
        step["outcome"] = f"failed: {problem}"

    def _settle_pending(self) -> None:
        """Interrupted transfers and cancels: asked again (a transfer by its request id, a
        lost cancel once more), then followed to the end. One whose registries are not both up
        keeps waiting; one a new crash interrupts is pending again."""
        waiting, self.pending = self.pending, []
        for pending in waiting:
            if not self._both_up(pending):
                self.pending.append(pending)
                continue
            try:
                if pending.cancel:
                    self._cancel_again(pending)
                    continue
                if pending.transfer_id is None and self._propose(pending) is None:
                    continue
                assert pending.transfer_id is not None
                transfer = self._follow(pending, pending.transfer_id)
                if transfer is not None:
                    self._judge(pending, transfer)
            except StepFailed as failure:
                pending.step["outcome"] = f"failed: {failure}"

    def _both_up(self, pending: Pending) -> bool:
        return self.local.alive(pending.home) and self.local.alive(pending.peer)

    def _cancel(self, step: Step, out: dict[str, Any]) -> None:
        target = self._transfer_step(step)
        tid = target.get("transfer_id")
        if not tid:
            raise StepFailed(f"step {step.get('transfer')} has no transfer to cancel")
        transfer_step = self.scenario.steps[step.get("transfer")]
        actor = self._transfer_actor(step, transfer_step.get("from"))
        # The transfer's own step judges how it ends; this one asks and follows.
        followed = Pending(
            target,
            target["home"],
            target["peer"],
            {},
            actor,
            target["expect"],
            transfer_step.get("error"),
            tid,
        )
        try:
            with self._client(target["home"], actor) as client:
                client.cancel(tid)
        except TransferFailed as failure:
            if failure.status == "UNAVAILABLE" and self._crash_fired({target["home"]}):
                out["outcome"] = _INTERRUPTED
                lost = Pending(out, target["home"], target["home"], {}, actor, "", None, tid)
                lost.cancel = True
                self.pending.append(lost)
                self.pending.append(followed)
                return
            out["error"] = failure.code
            if refusal_expected(step.get("expect"), step.get("error"), failure.code):
                return
            raise StepFailed(f"refused {failure.code}: {failure.message}") from None
        if step.get("expect") == "rejected":
            raise StepFailed("expected the cancel to be refused")
        done = self._follow(followed, tid)
        if done is not None:
            target["status"] = out["status"] = done["status"]

    def _cancel_again(self, lost: Pending) -> None:
        """A cancel whose node died answering it: asked again. If the crash came after its
        commit, the transfer is cancelled already and the node says so (TOO_LATE)."""
        assert lost.transfer_id is not None
        lost.step["outcome"] = "ok"
        try:
            with self._client(lost.home, lost.actor) as client:
                client.cancel(lost.transfer_id)
        except TransferFailed as failure:
            if failure.status == "UNAVAILABLE" and self._crash_fired({lost.home}):
                lost.step["outcome"] = _INTERRUPTED
                self.pending.append(lost)
                return
            try:
                with self._client(lost.home, lost.actor) as client:
                    now = client.get(lost.transfer_id)
            except TransferFailed as again:
                lost.step["outcome"] = f"failed: cannot read {lost.transfer_id}: {again}"
                return
            if not (failure.code == "TOO_LATE" and now["status"] == "cancelled"):
                lost.step["outcome"] = f"failed: refused {failure.code}: {failure.message}"

    def _transfer_step(self, step: Step) -> dict[str, Any]:
        index = step.get("transfer")
        if self.scenario.steps[index].op != "transfer":
            raise StepFailed(f"step {index} is not a transfer")
        target: dict[str, Any] = self.results[index]
        return target

    def _follow_unwaited(self) -> None:
        """Transfers proposed without waiting: followed to their end and judged."""
        for pending in self.unwaited:
            if pending.transfer_id is None or any(p.step is pending.step for p in self.pending):
                continue
            try:
                transfer = self._follow(pending, pending.transfer_id)
                if transfer is not None:
                    self._judge(pending, transfer)
            except StepFailed as failure:
                pending.step["outcome"] = f"failed: {failure}"

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
        keys = ("issuer", "program", "unit_type", "vintage", "start", "end")
        return [{k: b[k] for k in keys if k in b} for b in blocks]
