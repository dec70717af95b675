"""Projects, verifiers and documents, and the issuance of credits on approval.

Each write is a ledger operation (:meth:`Ledger.run`): atomic, journaled, idempotent on its
operation id, and refused whole with a typed error. Approving an accredited verifier's
verification report is the only way ERCs and offsets of a verification program come into being:
the approval, the issuance and its provenance record commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .domain.accounts import Account, AccountType
from .domain.actors import Actor
from .domain.commands import (
    AccreditVerifier,
    RegisterProject,
    ReviewDocument,
    SetProjectStatus,
    SubmitDocument,
)
from .domain.credits import (
    PROJECT_ID,
    UNIT_TYPE_OF,
    Accreditation,
    Project,
    ProjectKind,
    ProjectStatus,
    capacity_text,
    check_project_transition,
    kind_of,
    parse_day,
    require_accredited,
)
from .domain.documents import (
    CONTENT_TYPE,
    SHA256,
    Document,
    DocumentKind,
    MonitoringPeriod,
    ReviewStatus,
    certification_due,
    check_content,
    check_resubmission,
    check_review,
    require_intact,
    submitted_day,
)
from .domain.errors import (
    AccountTypeMismatch,
    DocumentImmutable,
    DocumentNotFound,
    DoubleIssuance,
    InvalidArgument,
    IssuanceOverlap,
    NotAuthorized,
    ProjectNotApproved,
    ProjectNotFound,
    ReportNotApproved,
    ReviewConflict,
    VerifierNotFound,
)
from .domain.holdings import BlockState
from .domain.journal import Movement, Place
from .domain.programs import ControlPeriod
from .domain.provenance import Provenance
from .domain.representatives import Right, Role
from .domain.serials import MAX_SERIAL, UnitBlock, UnitClass
from .ledger import Ledger, OperationResult, Work, timestamp
from .storage.store import LedgerTx

#: What a plan must be, per kind of project, before anything it earns is issued.
PLAN_KIND = {
    ProjectKind.ELIGIBLE_RESOURCE: DocumentKind.EMV_PLAN,
    ProjectKind.OFFSET_PROJECT: DocumentKind.CONSISTENCY_APPLICATION,
}


class CreditLedger:
    """The credit side of one registry's ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @property
    def registry(self) -> str:
        return self.ledger.registry

    def _run(
        self, command: Any, actor: Actor, kind: str, body: Callable[[LedgerTx, Work], None]
    ) -> OperationResult:
        return self.ledger.run(command, actor, kind, body)

    # -- projects ------------------------------------------------------------------------------

    def register_project(self, command: RegisterProject, actor: Actor) -> OperationResult:
        def body(tx: LedgerTx, work: Work) -> None:
            sponsor = self.ledger._account(tx, command.sponsor_account, locked=True)
            if sponsor.type is not AccountType.GENERAL:
                raise AccountTypeMismatch(
                    f"projects are registered under a sponsor's general account; "
                    f"{sponsor.label} is a {sponsor.type.value} account",
                    account=sponsor.label,
                )
            self._require_sponsor_or_admin(tx, actor, sponsor)
            sponsor.ensure_can_receive()
            unit_type = UNIT_TYPE_OF[kind_of(command.category)]
            rules = self.ledger.programs.get(command.program)
            rules.require_accepts(unit_type, self.registry, self.registry)
            number = tx.credits.next_project_number()
            project = Project(
                id=f"{self.registry}-P{number:04d}",
                name=command.name,
                sponsor_account_id=sponsor.id,
                sponsor=sponsor.label,
                category=command.category,
                program=rules.code,
                location=command.location,
                capacity_mw=capacity_text(command.capacity_mw),
                baseline=command.baseline,
                status=ProjectStatus.PROPOSED,
            )
            work.on_seq.append(lambda seq: tx.credits.insert_project(project, number, seq))
            work.accounts.add(sponsor.id)
            work.detail.update(project.to_dict())

        return self._run(command, actor, "register-project", body)

    def set_project_status(self, command: SetProjectStatus, actor: Actor) -> OperationResult:
        def body(tx: LedgerTx, work: Work) -> None:
            self.ledger._require_admin(actor, "approve, suspend or terminate projects")
            project = self._project(tx, command.project)
            try:
                to = ProjectStatus(command.status)
            except ValueError:
                raise InvalidArgument(
                    f"{command.status!r} is not a project status "
                    f"({', '.join(s.value for s in ProjectStatus)})"
                ) from None
            check_project_transition(project.id, project.status, to)
            tx.credits.set_project_status(project.id, to)
            work.accounts.add(project.sponsor_account_id)
            work.detail.update(
                project=project.id, previous=project.status.value, status=to.value,
                reason=command.reason,
            )  # fmt: skip

        return self._run(command, actor, "project-status", body)

    # -- verifiers -----------------------------------------------------------------------------

    def accredit_verifier(self, command: AccreditVerifier, actor: Actor) -> OperationResult:
        def body(tx: LedgerTx, work: Work) -> None:
            self.ledger._require_admin(actor, "accredit verifiers")
            accreditation = Accreditation(
                verifier=command.verifier,
                name=command.name,
                person=command.person,
                categories=tuple(sorted(set(command.categories))),
                valid_from=parse_day(command.valid_from, "valid from"),
                valid_to=parse_day(command.valid_to, "valid to"),
                conflicts=tuple(sorted(set(command.conflicts))),
            )
            work.on_seq.append(lambda seq: tx.credits.insert_accreditation(accreditation, seq))
            work.detail.update(accreditation.to_dict())

        return self._run(command, actor, "accreditation", body)

    # -- documents -----------------------------------------------------------------------------

    def submit_document(
        self, command: SubmitDocument, content: bytes, actor: Actor
    ) -> OperationResult:
        def body(tx: LedgerTx, work: Work) -> None:
            sha256 = check_content(content)
            if sha256 != command.content_sha256:
                raise InvalidArgument(
                    f"the bytes received hash to {sha256}, not {command.content_sha256}: they "
                    "were damaged on the way; submit again",
                    expected=command.content_sha256,
                    received=sha256,
                )
            kind = _kind(command.document_kind)
            if not CONTENT_TYPE.match(command.content_type):
                raise InvalidArgument(f"content type {command.content_type!r} is not type/subtype")
            existing = tx.credits.document(sha256)
            if existing is not None:
                raise DocumentImmutable(
                    f"these bytes are already document {sha256} (version {existing.version} of "
                    f"series {existing.series}, {existing.status.value}); a document's identity "
                    "is its content and is never reused",
                    document=sha256,
                    status=existing.status.value,
                )
            facts, account_id = self._facts(tx, kind, command, actor)
            series, version = sha256, 1
            if command.supersedes is not None:
                previous = self._document(tx, command.supersedes)
                check_resubmission(previous, kind, command.subject)
                latest = tx.credits.latest_in_series(previous.series)
                if latest is not None and latest.sha256 != previous.sha256:
                    raise ReviewConflict(
                        f"{previous.sha256} is version {previous.version}; the latest of its "
                        f"series is {latest.sha256} (version {latest.version}): supersede that",
                        latest=latest.sha256,
                    )
                series, version = previous.series, previous.version + 1
            at = timestamp(self.ledger.clock())
            if kind is DocumentKind.COMPLIANCE_CERTIFICATION:
                due = certification_due(ControlPeriod.parse(facts["period"]).last_year)
                facts.update(due=due.isoformat(), late=submitted_day(at) > due)
            document = Document(
                sha256=sha256,
                kind=kind,
                subject=command.subject,
                title=command.title,
                content_type=command.content_type,
                size=len(content),
                public=command.public,
                series=series,
                version=version,
                supersedes=command.supersedes,
                submitted_by=str(actor),
                submitted_at=at,
                facts=facts,
            )
            work.on_seq.append(lambda seq: tx.credits.insert_document(document, content, seq))
            if account_id is not None:
                work.accounts.add(account_id)
            work.detail.update(document.to_dict())

        return self._run(command, actor, "submit-document", body)

    def _facts(
        self, tx: LedgerTx, kind: DocumentKind, command: SubmitDocument, actor: Actor
    ) -> tuple[dict[str, Any], int | None]:
        """The kind's required facts, checked, and the account the document concerns; refuses
        a submitter with no standing for it."""
        given = dict(command.facts)
        if kind is DocumentKind.COMPLIANCE_CERTIFICATION:
            account = self.ledger._account(tx, command.subject)
            if account.type is not AccountType.COMPLIANCE:
                raise AccountTypeMismatch(
                    f"a compliance certification is for a source's compliance account; "
                    f"{account.label} is a {account.type.value} account"
                )
            officials = {
                r.person_id
                for r in tx.representatives(account.id)
                if r.role in (Role.PRIMARY, Role.ALTERNATE)
            }
            if actor.is_administrator or actor.id not in officials:
                raise NotAuthorized(
                    f"a compliance certification of {account.label} is signed and submitted by "
                    f"its authorized representative or alternate; {actor} is neither",
                    actor=str(actor),
                    account=account.label,
                )
            program = self.ledger.programs.get(_required(given, "program", kind)).code
            period = str(ControlPeriod.parse(_required(given, "period", kind)))
            official = _required(given, "official", kind)
            return {"program": program, "period": period, "official": official}, account.id
        project = self._project(tx, command.subject)
        sponsor = self._sponsor(tx, project)
        facts: dict[str, Any] = {"project": project.id}
        if kind in (DocumentKind.EMV_PLAN, DocumentKind.CONSISTENCY_APPLICATION):
            if kind is not PLAN_KIND[project.kind]:
                raise InvalidArgument(
                    f"project {project.id} is an {project.kind.value}: its plan is a "
                    f"{PLAN_KIND[project.kind].value}, not a {kind.value}"
                )
        else:
            facts["period"] = str(MonitoringPeriod.parse(_required(given, "period", kind)))
        if kind is DocumentKind.VERIFICATION_REPORT:
            verifier = _required(given, "verifier", kind)
            accreditations = tx.credits.accreditations(verifier)
            if not accreditations:
                raise VerifierNotFound(f"no verifier {verifier} in registry {self.registry}")
            # The report is dated today: the verifier must be accredited for it today.
            today = self.ledger.clock().date()
            accreditation = require_accredited(accreditations, verifier, project, today)
            mv_report = _required(given, "mv_report", kind)
            if not SHA256.match(mv_report):
                raise InvalidArgument(f"mv_report {mv_report!r} is not a SHA-256 in hex")
            facts.update(
                verifier=verifier,
                verifier_name=accreditation.name,
                quantity=_quantity(_required(given, "quantity", kind)),
                mv_report=mv_report,
            )
            if actor.id == accreditation.person and not actor.is_administrator:
                return facts, sponsor.id
        self._require_sponsor_or_admin(tx, actor, sponsor)
        return facts, sponsor.id

    def review_document(self, command: ReviewDocument, actor: Actor) -> OperationResult:
        def body(tx: LedgerTx, work: Work) -> None:
            self.ledger._require_admin(actor, "review documents")
            document = self._document(tx, command.document)
            self._intact(tx, document)
            try:
                decision = ReviewStatus(command.decision)
            except ValueError:
                raise InvalidArgument(
                    f"{command.decision!r} is not a decision (under-review, approved, rejected)"
                ) from None
            check_review(document, decision, command.reasons)
            latest = tx.credits.latest_in_series(document.series)
            if latest is not None and latest.sha256 != document.sha256:
                raise ReviewConflict(
                    f"{document.sha256} was superseded by {latest.sha256}; review that version",
                    latest=latest.sha256,
                )
            at = timestamp(self.ledger.clock())
            work.detail.update(
                document=document.sha256,
                kind=document.kind.value,
                subject=document.subject,
                previous=document.status.value,
                status=decision.value,
                reasons=command.reasons,
            )
            if decision is ReviewStatus.APPROVED and (
                document.kind is DocumentKind.VERIFICATION_REPORT
            ):
                self._issue_on_approval(tx, work, document, at)
            work.on_seq.append(
                lambda seq: tx.credits.insert_review(
                    document.sha256, decision, str(actor), command.reasons, at, seq
                )
            )

        return self._run(command, actor, "review-document", body)

    def _issue_on_approval(self, tx: LedgerTx, work: Work, report: Document, at: str) -> None:
        project = self._project(tx, report.subject)
        if project.status is not ProjectStatus.APPROVED:
            raise ProjectNotApproved(
                f"project {project.id} is {project.status.value}: nothing is issued for it",
                project=project.id,
                status=project.status.value,
            )
        plan_kind = PLAN_KIND[project.kind]
        plans = tx.credits.documents(subject=project.id, kind=plan_kind)
        if not any(p.status is ReviewStatus.APPROVED for p in plans):
            raise ReportNotApproved(
                f"project {project.id} has no approved {plan_kind.value}: approve it first",
                project=project.id,
            )
        period = MonitoringPeriod.parse(str(report.facts["period"]))
        mv = tx.credits.document(str(report.facts["mv_report"]))
        if (
            mv is None
            or mv.kind is not DocumentKind.MV_REPORT
            or mv.subject != project.id
            or mv.facts.get("period") != str(period)
        ):
            raise ReportNotApproved(
                f"verification report {report.sha256} verifies {report.facts['mv_report']}, "
                f"which is not a monitoring and verification report of {project.id} for {period}",
                document=report.sha256,
            )
        self._intact(tx, mv)
        if mv.status is not ReviewStatus.APPROVED:
            raise ReportNotApproved(
                f"the monitoring and verification report {mv.sha256} it verifies is "
                f"{mv.status.value}: approve it first",
                document=mv.sha256,
            )
        verifier = str(report.facts["verifier"])
        accreditation = require_accredited(
            tx.credits.accreditations(verifier),
            verifier,
            project,
            submitted_day(report.submitted_at),
        )
        if tx.credits.provenance_by_report(report.sha256) is not None:
            raise DoubleIssuance(
                f"credits were already issued for report {report.sha256}",
                document=report.sha256,
            )
        for earlier in tx.credits.issued_for_project(project.id, self.registry):
            if MonitoringPeriod.parse(earlier.monitoring_period).overlaps(period):
                raise DoubleIssuance(
                    f"project {project.id} was already issued credits for "
                    f"{earlier.monitoring_period} (report {earlier.report_sha256}); {period} "
                    "overlaps it",
                    project=project.id,
                    issued=earlier.issuance.to_dict(),
                )
        rules = self.ledger.programs.get(project.program)
        rules.require_accepts(project.unit_type, self.registry, self.registry)
        sponsor = self.ledger._lock(tx, self._sponsor(tx, project))[0]
        sponsor.ensure_can_receive()
        quantity = int(report.facts["quantity"])
        uc = UnitClass(self.registry, project.program, project.unit_type, period.vintage)
        block = UnitBlock(uc, tx.claim_serials(uc, quantity, None))
        clash = tx.issuance_overlaps(block)
        if clash:
            raise IssuanceOverlap(f"serials {block} overlap earlier issuance {clash[0]}")
        provenance = Provenance(
            issuance=block,
            project=project.id,
            project_name=project.name,
            category=project.category,
            sponsor=project.sponsor,
            report_sha256=report.sha256,
            verifier=verifier,
            verifier_name=accreditation.name,
            monitoring_period=str(period),
            issued_at=at,
        )
        place = Place(sponsor.id, BlockState.HELD)
        tx.insert_block(block, sponsor.id, BlockState.HELD)
        work.audit.issue(block)
        work.audit.put(block)
        work.movements.append(Movement(block, None, place))
        work.accounts.add(sponsor.id)
        work.labels[sponsor.id] = sponsor.label
        work.on_seq.append(lambda seq: tx.insert_issuance(block, sponsor.id, seq))
        work.on_seq.append(lambda seq: tx.credits.insert_provenance(provenance, "issued", seq))
        work.detail.update(issued=provenance.to_dict(), to=sponsor.label, quantity=quantity)

    # -- helpers -------------------------------------------------------------------------------

    def _project(self, tx: LedgerTx, project_id: str) -> Project:
        if not PROJECT_ID.match(project_id):
            raise InvalidArgument(f"{project_id!r} is not a project id like PA-P0001")
        project = tx.credits.project(project_id)
        if project is None:
            raise ProjectNotFound(
                f"no project {project_id} in registry {self.registry}", project=project_id
            )
        return project

    def _sponsor(self, tx: LedgerTx, project: Project) -> Account:
        account = tx.account_by_id(project.sponsor_account_id)
        assert account is not None, "a project's sponsor account exists (foreign key)"
        return account

    def _document(self, tx: LedgerTx, sha256: str) -> Document:
        if not SHA256.match(sha256):
            raise InvalidArgument(f"{sha256!r} is not a document's SHA-256 in hex")
        document = tx.credits.document(sha256)
        if document is None:
            raise DocumentNotFound(
                f"no document {sha256} in registry {self.registry}", document=sha256
            )
        return document

    def _intact(self, tx: LedgerTx, document: Document) -> bytes:
        content = tx.credits.content(document.sha256)
        return require_intact(document.sha256, content if content is not None else b"")

    def _require_sponsor_or_admin(self, tx: LedgerTx, actor: Actor, sponsor: Account) -> None:
        if actor == self.ledger.administrator:
            return
        self.ledger._require_right(tx, actor, sponsor, Right.INITIATE)


def _kind(text: str) -> DocumentKind:
    try:
        return DocumentKind(text)
    except ValueError:
        raise InvalidArgument(
            f"{text!r} is not a document kind ({', '.join(k.value for k in DocumentKind)})"
        ) from None


def _required(facts: dict[str, str], name: str, kind: DocumentKind) -> str:
    value = facts.get(name, "").strip()
    if not value:
        raise InvalidArgument(f"a {kind.value} states its {name} (--{name.replace('_', '-')})")
    return value


def _quantity(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= MAX_SERIAL:
        raise InvalidArgument(f"verified quantity {text!r} must be a positive whole number")
    return int(text)


__all__ = ["PLAN_KIND", "CreditLedger"]
