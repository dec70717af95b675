"""Steps for projects, verifiers, documents and credits: registration to issued credits, and
a check that credits anywhere in the federation still name where they came from.

Projects and documents get aliases like accounts do; a project lives in its sponsor's
registry, a document in its subject's. Document content is the step's text, as UTF-8 bytes.
"""

from __future__ import annotations

from typing import Any

from regfed.node import (
    AccreditVerifier,
    Actor,
    RegisterProject,
    ReviewDocument,
    SetProjectStatus,
    SubmitDocument,
)
from regfed.node.domain.documents import digest

from ._base import StepFailed, operation_id
from ._format import DEFAULT_PROGRAM, Step
from ._ledger_steps import LedgerSteps

#: Document facts a step may give, by their scenario names.
FACTS = ("period", "verifier", "quantity", "program", "official")


class CreditSteps(LedgerSteps):
    def _home(self, alias: str) -> str:
        """The registry of an account, project or document alias."""
        if alias in self.scenario.accounts:
            return self.scenario.accounts[alias].registry
        if alias not in self.records:
            raise StepFailed(f"no project or document {alias!r} yet: an earlier step makes it")
        return self.records[alias][0]

    def _name(self, alias: str) -> str:
        """A project's id, a document's SHA-256, or an account's number."""
        if alias in self.records:
            return self.records[alias][1]
        if alias not in self.numbers:
            raise StepFailed(f"no project, document or account {alias!r} yet")
        return self.numbers[alias]

    def _project(self, step: Step, out: dict[str, Any]) -> None:
        sponsor = step.get("sponsor")
        registry = self.scenario.accounts[sponsor].registry
        number = self.numbers[sponsor]
        result = self._admin_op(
            step,
            out,
            registry,
            lambda reg: reg.credits.register_project(
                RegisterProject(
                    operation_id=operation_id("project"),
                    sponsor_account=number,
                    name=step.get("name", step.get("alias")),
                    category=step.get("category"),
                    program=step.get("program", DEFAULT_PROGRAM),
                    location=step.get("location", "unstated"),
                    capacity_mw=step.get("capacity_mw"),
                ),
                self._actor(step, sponsor, reg),
            ),
        )
        if result is not None:
            out["project"] = result.detail["project"]
            self.records[step.get("alias")] = (registry, str(result.detail["project"]))

    def _project_status(self, step: Step, out: dict[str, Any]) -> None:
        alias = step.get("project")
        self._admin_op(
            step,
            out,
            self._home(alias),
            lambda reg: reg.credits.set_project_status(
                SetProjectStatus(
                    operation_id=operation_id("project-status"),
                    project=self._name(alias),
                    status=step.get("status"),
                ),
                reg.ledger.administrator,
            ),
        )

    def _accredit(self, step: Step, out: dict[str, Any]) -> None:
        verifier = str(step.get("verifier"))
        self._admin_op(
            step,
            out,
            step.get("registry"),
            lambda reg: reg.credits.accredit_verifier(
                AccreditVerifier(
                    operation_id=operation_id("accredit"),
                    verifier=verifier,
                    name=step.get("name", verifier),
                    person=step.get("person", verifier.lower()),
                    categories=tuple(step.get("categories")),
                    valid_from=step.get("valid_from", "2000-01-01"),
                    valid_to=step.get("valid_to", "2099-12-31"),
                    conflicts=tuple(step.get("conflicts", ())),
                ),
                reg.ledger.administrator,
            ),
        )

    def _document(self, step: Step, out: dict[str, Any]) -> None:
        subject = step.get("subject")
        registry = self._home(subject)
        content = str(step.get("content")).encode()
        facts = {k: str(step.get(k)) for k in FACTS if step.get(k) is not None}
        if step.get("mv_report") is not None:
            facts["mv_report"] = self._name(step.get("mv_report"))
        supersedes = step.get("supersedes")
        who = step.get("as", "admin")

        def submit(reg: Any) -> Any:
            actor = reg.ledger.administrator if who == "admin" else Actor.person(who)
            return reg.credits.submit_document(
                SubmitDocument(
                    operation_id=operation_id("document"),
                    document_kind=step.get("kind"),
                    subject=self._name(subject),
                    title=step.get("title", step.get("alias")),
                    content_sha256=digest(content),
                    content_type="text/plain",
                    public=bool(step.get("public", True)),
                    supersedes=self._name(supersedes) if supersedes else None,
                    facts=tuple(sorted(facts.items())),
                ),
                content,
                actor,
            )

        result = self._admin_op(step, out, registry, submit)
        if result is not None:
            out["sha256"] = result.detail["sha256"]
            self.records[step.get("alias")] = (registry, str(result.detail["sha256"]))

    def _review(self, step: Step, out: dict[str, Any]) -> None:
        alias = step.get("document")
        result = self._admin_op(
            step,
            out,
            self._home(alias),
            lambda reg: reg.credits.review_document(
                ReviewDocument(
                    operation_id=operation_id("review"),
                    document=self._name(alias),
                    decision=step.get("decision", "approved"),
                    reasons=step.get("reasons", ""),
                ),
                reg.ledger.administrator,
            ),
        )
        if result is not None and "issued" in result.detail:
            out["issued"] = result.detail["quantity"]

    def _provenance(self, step: Step, out: dict[str, Any]) -> None:
        """Every credit the account holds (or surrendered) names the project it came from."""
        alias = step.get("account")
        spec = self.scenario.accounts[alias]
        project = self._name(step.get("project"))

        def holdings(reg: Any) -> dict[str, Any]:
            view = reg.queries.holdings(self.numbers[alias], reg.ledger.administrator)
            return dict(view.to_dict())

        view = self._ledger(spec.registry, holdings)
        credits = [b for b in view["blocks"] if b["unit_type"] in ("erc", "offset")]
        if not credits:
            raise StepFailed(f"{alias} holds no credits in registry {spec.registry}")
        for block in credits:
            origin = block.get("provenance")
            if origin is None or origin["project"] != project:
                raise StepFailed(
                    f"{alias}: credits {block['start']}-{block['end']} name "
                    f"{origin['project'] if origin else 'no project'}, not {project}"
                )
        out["credits"] = sum(int(b["end"]) - int(b["start"]) + 1 for b in credits)
        out["provenance"] = credits[0]["provenance"]
