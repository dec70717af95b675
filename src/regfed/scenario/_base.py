"""What every kind of step shares: the federation, the account numbers, the results so far,
and how a refusal is judged against the step's expectation."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regfed.certs.identity import Role
from regfed.gateway.crash import fired_marker
from regfed.local import Federation, LocalFederation
from regfed.node import ProgramCatalog, open_existing

from ._format import Scenario, Step

#: A transfer that has not settled yet: followed again after a restart, or at the end.
UNFINISHED = {"proposed", "accepted"}
NOT_COMPLETED = {"rejected", "terminated", "cancelled"}
SETTLE_TIMEOUT = 60.0


class StepFailed(Exception):
    """The step did not meet its expectation (or could not run): the outcome says why."""


@dataclass
class Pending:
    """A transfer (or a cancel of one) that a crash or a down registry interrupted."""

    step: dict[str, Any]
    home: str
    peer: str  # the destination's registry
    request: dict[str, Any]
    actor: tuple[Role, str | None]
    expect: str
    error: str | None
    transfer_id: str | None = None
    #: The cancel was lost with the crash: ask again once the home node is back.
    cancel: bool = False


@dataclass
class Context:
    scenario: Scenario
    folder: Path
    say: Callable[[str], None]
    federation: Federation = field(init=False)
    local: LocalFederation = field(init=False)
    numbers: dict[str, str] = field(default_factory=dict)
    #: Alias of a project or document -> (the registry that holds it, its id or SHA-256).
    records: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: Registry -> the crash step armed on it that has not fired yet.
    armed: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Registries armed while down: their crash can only fire after their restart.
    armed_down: set[str] = field(default_factory=set)
    results: list[dict[str, Any]] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
    #: Transfers proposed with ``"wait": false``: followed to settlement at the end.
    unwaited: list[Pending] = field(default_factory=list)
    #: When each step started (wall clock), to tell during which step a crash fired.
    started: list[float] = field(default_factory=list)

    def _ledger(self, code: str, work: Callable[[Any], Any]) -> Any:
        """The administrator's ledger operations run on the node's database, as ``regfed
        ledger`` does on the registry's own machine."""
        database = self.federation.node_config(code).database
        registry = open_existing(database, programs=self.programs_at(code))
        try:
            return work(registry)
        finally:
            registry.close()

    def programs_at(self, code: str) -> ProgramCatalog:
        """The rules registry ``code`` applies (its node reads the same list from its
        ``programs`` setting); the format has checked them."""
        return ProgramCatalog.default().with_overrides(list(self.scenario.programs_at(code)))

    def _crash_file(self, code: str) -> Path:
        return self.federation.folder / code / "crash-at"

    def _clock_file(self, code: str) -> Path:
        return self.federation.folder / code / "clock-offset"

    def crashed(self) -> list[str]:
        """Armed registries that died since the last look: disarmed. The crash step says
        during which step its point was reached (the node leaves a marker just before it kills
        itself); a death without the marker fails the crash step."""
        dead = [
            code
            for code in self.armed
            if code not in self.armed_down and not self.local.alive(code)
        ]
        for code in dead:
            step = self.armed.pop(code)
            marker = fired_marker(self._crash_file(code))
            try:
                _point, stamp = marker.read_text().split()
            except (FileNotFoundError, ValueError):
                status = self.local.wait_exit(code, 1)
                step["outcome"] = (
                    f"failed: {code} died (exit status {status}) without reaching {step['at']}"
                )
                continue
            marker.unlink()
            during = [i for i, t in enumerate(self.started) if t <= float(stamp)]
            step["fired_during_step"] = during[-1] if during else step["index"]
        return dead

    def _crash_fired(self, codes: set[str], within: float = 3.0) -> bool:
        """Whether one of ``codes`` died on its armed crash (waiting up to ``within``)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            self.crashed()
            if any(not self.local.alive(code) for code in codes):
                return True
            time.sleep(0.05)
        return False

    def _acting(self, step: Step, alias: str) -> str:
        """Who acts on ``alias``: ``admin``, ``oversight`` or a person (default: the first
        representative; the administrator for a state account)."""
        who = step.get("as")
        spec = self.scenario.accounts[alias]
        if who is None:
            return "admin" if spec.is_state else spec.representatives[0]
        return str(who)


def refusal_expected(expect: str | None, wanted: str | None, code: str) -> bool:
    """A refusal with ``code`` meets a step that expects ``rejected`` or ``any`` (with the
    ``wanted`` code, if it names one)."""
    return expect in {"rejected", "any"} and wanted in {None, code}


def operation_id(what: str) -> str:
    return f"scenario-{what}-{uuid.uuid4().hex}"
