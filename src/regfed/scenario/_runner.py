"""Run a scenario against a fresh local federation of real node processes.

Transfers and cancels go through the acting person's home node over mutual TLS, with a
certificate issued to that person for the run; the administrator's ledger operations (issue,
emissions, deduction, account status) and retirements run on the node's database as
``regfed ledger`` does. Crashes are armed, and test clocks moved, through files the node reads.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

from regfed.certs.identity import Role
from regfed.certs.intermediate import issue_person, person_folder
from regfed.certs.local import intermediate_folder
from regfed.gateway.crash import ARM, CLOCK_FILE, POINT_FILE
from regfed.gateway.protocol.durable import crash_points
from regfed.local import LocalFederation
from regfed.local.audit import answered_by_destination, audit, statuses
from regfed.local.federation import create_federation, free_base_port
from regfed.local.processes import NodeFailed
from regfed.local.reconcile import reconcile_local

from ._base import StepFailed
from ._credit_steps import CreditSteps
from ._databases import Databases
from ._format import Step
from ._transfer_steps import TransferSteps

_HOOKS = {p["name"]: str(p["hook"]) for p in crash_points()}
#: How long ``restart`` waits for an armed registry's crash to fire before calling it alive.
CRASH_GRACE = 30.0
_BLOCK_KEYS = ("issuer", "program", "unit_type", "vintage", "start", "end")


@dataclass
class Runner(CreditSteps, TransferSteps):
    databases: Databases = field(default_factory=Databases)
    clock_offsets: dict[str, float] = field(default_factory=dict)

    # -- the federation ----------------------------------------------------------------------

    def start(self) -> None:
        codes = list(self.scenario.registries)
        settings: dict[str, Any] = {"redrive_interval": 0.2, "ask_after": 1.0}
        node_settings: dict[str, dict[str, Any]] = {}
        for code in codes:
            if self.scenario.programs_at(code):  # a node reads its rules from a file
                rules = self.folder / f"programs-{code}.json"
                rules.parent.mkdir(parents=True, exist_ok=True)
                rules.write_text(json.dumps(list(self.scenario.programs_at(code)), indent=1))
                node_settings[code] = {"programs": str(rules)}
        self.federation = create_federation(
            self.folder / "federation",
            codes,
            # A random start: two runs at once (two terminals, two test sessions) would
            # otherwise probe the same ports and race to bind them.
            base_port=free_base_port(len(codes) + 1, random.randrange(20_000, 60_000)),
            databases=self.databases.create(codes),
            settings=settings,
            node_settings=node_settings,
        )
        self._people()
        self.local = LocalFederation(self.federation)
        for code in codes:
            self._crash_file(code).write_text("")
            self.local.start([code], env=self._env(code))
        self.say(f"nodes up: {', '.join(codes)} ({self.databases.kind})")
        for alias, spec in self.scenario.accounts.items():
            self.numbers[alias] = self._open(alias)
            self.say(f"  account {alias}: {spec.type} {self.numbers[alias]}")

    def stop(self) -> None:
        try:
            if hasattr(self, "local"):
                self.local.stop()
        finally:
            self.databases.drop()

    def _env(self, code: str) -> dict[str, str]:
        return {
            ARM: "1",
            POINT_FILE: str(self._crash_file(code)),
            CLOCK_FILE: str(self._clock_file(code)),
        }

    def _people(self) -> None:
        """A trader certificate for every person the scenario names, at each registry."""
        wanted: dict[str, set[str]] = {code: set() for code in self.scenario.registries}
        for spec in self.scenario.accounts.values():
            wanted[spec.registry] |= set(spec.representatives)
        for step in self.scenario.steps:
            who, alias = step.get("as"), step.get("from") or step.get("account")
            if step.op == "cancel":  # acts at the home node of the transfer it cancels
                alias = self.scenario.steps[step.get("transfer")].get("from")
            if isinstance(who, str) and who not in {"admin", "oversight"} and alias:
                wanted[self.scenario.accounts[alias].registry].add(who)
        for code, people in wanted.items():
            intermediate = intermediate_folder(self.federation.certs, code)
            for person in sorted(people):
                if not (person_folder(intermediate, Role.TRADER, person) / "tls.key").exists():
                    issue_person(intermediate, Role.TRADER, person)

    # -- steps -------------------------------------------------------------------------------

    def run_step(self, step: Step) -> dict[str, Any]:
        out: dict[str, Any] = {"index": step.index, "op": step.op}
        self.results.append(out)
        self.started.append(time.time())
        try:
            self._require_alive(step)
            getattr(self, "_" + step.op.replace("-", "_"))(step, out)
            out.setdefault("outcome", "ok")
        except StepFailed as failure:
            out["outcome"] = f"failed: {failure}"
        except Exception as error:  # a runner fault still ends in an outcome, not a traceback
            out["outcome"] = f"failed: the runner could not run this step: {error!r}"
        return out

    def _require_alive(self, step: Step) -> None:
        if step.op in {"restart", "crash", "advance-clock"}:
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
            cancelled = self.scenario.steps[step.get("transfer")]
            return self.scenario.accounts[cancelled.get("from")].registry
        return None

    # -- crashes and clocks ------------------------------------------------------------------

    def _crash(self, step: Step, out: dict[str, Any]) -> None:
        """Arms the point: a running node reaches it next; a node that is down, once it is
        restarted (before it can receive anything)."""
        code = step.get("registry")
        self.crashed()
        if code in self.armed:
            raise StepFailed(f"{code} already has a crash armed at {self.armed[code]['at']}")
        self._crash_file(code).write_text(_HOOKS[step.get("at")])
        out["at"] = step.get("at")
        self.armed[code] = out
        if not self.local.alive(code):
            self.armed_down.add(code)

    def _restart(self, step: Step, out: dict[str, Any]) -> None:
        code = step.get("registry")
        if code in self.armed and code not in self.armed_down:
            # Its crash may be on its way (a tick, a re-sent message).
            self.local.wait_exit(code, CRASH_GRACE)
            self.crashed()
        if self.local.alive(code):
            crash = self.armed.get(code)
            why = f" (its crash at {crash['at']} did not fire)" if crash else ""
            raise StepFailed(f"registry {code} is running{why}: only a dead one is restarted")
        self.local.wait_exit(code, 5)
        self.armed_down.discard(code)
        if code not in self.armed:
            self._crash_file(code).write_text("")
        crash = self.armed.get(code)
        try:
            self.local.start([code], env=self._env(code))
        except NodeFailed as failure:
            # Armed before the restart, it may reach its point before it says it is ready.
            self.crashed()
            if crash is None or "fired_during_step" not in crash:
                raise StepFailed(str(failure)) from None
        self._settle_pending()

    def _advance_clock(self, step: Step, out: dict[str, Any]) -> None:
        """Moves the registry's protocol clock (hold expiry, re-asking) forward; a registry
        that is down keeps the offset when it restarts."""
        code = step.get("registry")
        self.clock_offsets[code] = self.clock_offsets.get(code, 0.0) + float(step.get("seconds"))
        file = self._clock_file(code)
        temporary = file.with_suffix(".tmp")
        temporary.write_text(repr(self.clock_offsets[code]))
        os.replace(temporary, file)  # the node never reads half a number
        out["offset_seconds"] = self.clock_offsets[code]

    # -- the end -----------------------------------------------------------------------------

    def finish(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Holdings of every alias and the final checks, once every transfer has settled."""
        self.crashed()
        self._settle_pending()
        self._follow_unwaited()
        self.crashed()
        for pending in self.pending:
            down = [c for c in (pending.home, pending.peer) if not self.local.alive(c)]
            pending.step["outcome"] = f"failed: registry {', '.join(down)} was never restarted"
        for code, crash in self.armed.items():
            crash["outcome"] = f"failed: the crash armed at {crash['at']} on {code} never fired"
        holdings = {}
        for alias, spec in self.scenario.accounts.items():
            blocks = self._holdings(spec.registry, self.numbers[alias])
            holdings[alias] = [
                {**{k: h.block[k] for k in _BLOCK_KEYS}, "state": h.state} for h in blocks
            ]
        return holdings, self._checks()

    def _checks(self) -> list[dict[str, Any]]:
        down = [code for code in self.scenario.registries if not self.local.alive(code)]
        checks: list[dict[str, Any]] = [
            {
                "name": "registries-up",
                "ok": not down,
                "problems": [f"{code} is down at the end (add a restart step)" for code in down],
            }
        ]
        problems = audit(self.federation)
        checks.append({"name": "federation-audit", "ok": not problems, "problems": problems})
        # Reconciliation's own checks (issue 5's core), fed from the registries' tables.
        result = reconcile_local(self.federation)
        checks.append(
            {
                "name": "reconciliation",
                "ok": result.clean,
                "problems": [d.to_dict() for d in result.discrepancies],
                "in_transit": len(result.in_transit),
            }
        )
        disagreements = self._transfers_disagree()
        checks.append(
            {"name": "transfers-agree", "ok": not disagreements, "problems": disagreements}
        )
        for code in self.scenario.registries:
            report = self._ledger(code, lambda reg: reg.queries.verify())
            checks.append(
                {"name": f"{code}-ledger-verify", "ok": report.ok, "problems": report.to_dict()}
            )
        return checks

    def _transfers_disagree(self) -> list[str]:
        """Every transfer the scenario made ends in one status on both sides, settled at its
        source. The destination may never have heard of one refused or cancelled at its source
        before it arrived; then the source never got the destination's answer either."""
        problems = []
        for out in self.results:
            tid = out.get("transfer_id")
            if out["op"] != "transfer" or not tid:
                continue
            sides = statuses(self.federation, tid)
            source, destination = sides.get(out["home"]), sides.get(out["peer"])
            if out["home"] == out["peer"]:
                continue  # within one registry: one ledger operation, nothing to agree on
            if source is None or not source[1]:
                problems.append(f"{tid}: not settled at its source {out['home']}: {source}")
            elif destination is None:
                if answered_by_destination(self.federation, out["home"], tid):
                    problems.append(
                        f"{tid}: {source[0]} at {out['home']} with {out['peer']}'s answer, "
                        f"unknown at {out['peer']}"
                    )
            elif destination is not None and destination[0] != source[0]:
                problems.append(
                    f"{tid}: {source[0]} at {out['home']}, {destination[0]} at {out['peer']}"
                )
        return problems
