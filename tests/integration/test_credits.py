"""Projects, verifiers, documents and credits on both engines: the path from a registered
project to issued credits with their provenance, and every refusal on the way (typed error,
nothing changed: a digest of every table before and after)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from credit_support import (
    PERIOD,
    accredit,
    approve_project,
    credit_chain,
    register,
    review,
    submit,
    tamper,
)

from regfed.node import (
    DeductCompliance,
    Issue,
    RecordEmissions,
    Registry,
    ReviewDocument,
    Selection,
    Transfer,
    UnitBlock,
    interstate,
    open_registry,
)
from regfed.node.domain.documents import Document, digest
from regfed.node.domain.holdings import BlockState
from regfed.node.domain.programs import ProgramCatalog
from support import alloc, ledger_digest, op_id, open_compliance, open_general, person, refused


class Clock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 2, 10, 12, 0, tzinfo=UTC))


@pytest.fixture
def reg(db_url: str, clock: Clock) -> Iterator[Registry]:
    registry = open_registry(db_url, "PA", clock=clock)
    yield registry
    registry.close()


def credit_blocks(reg: Registry, account: str) -> list[dict[str, object]]:
    view = reg.queries.holdings(account, reg.ledger.administrator).to_dict()
    return [b for b in view["blocks"] if b["unit_type"] in ("erc", "offset")]


# -- the path ------------------------------------------------------------------------------------


def test_approving_a_verification_report_issues_ercs_with_provenance(reg: Registry) -> None:
    accredit(reg)
    chain = credit_chain(reg, quantity=500)
    blocks = credit_blocks(reg, chain.sponsor)
    assert len(blocks) == 1
    block = blocks[0]
    assert (block["issuer"], block["program"], block["unit_type"], block["vintage"]) == (
        "PA", "CPPR", "erc", 2025,
    )  # fmt: skip
    assert int(str(block["end"])) - int(str(block["start"])) + 1 == 500
    provenance = block["provenance"]
    assert isinstance(provenance, dict)
    assert provenance["project"] == chain.project
    assert provenance["report_sha256"] == chain.report
    assert provenance["verifier"] == "VER-1"
    assert provenance["monitoring_period"] == PERIOD
    # A part of the block, moved on, still finds its provenance.
    other = open_general(reg, "tom", "Trader")
    reg.ledger.transfer(
        Transfer(
            operation_id=op_id("t"),
            from_account=chain.sponsor,
            to_account=other,
            selection=Selection(quantity=120, unit_type="erc"),
        ),
        person("sol"),
    )
    moved = credit_blocks(reg, other)
    assert [b["provenance"] for b in moved] == [provenance]
    documents = {d.sha256: d for d in _documents(reg)}
    assert documents[chain.report].status.value == "approved"
    assert documents[chain.report].reviewer == "administrator:PA-admin"
    report = reg.queries.verify()
    assert report.ok, report.to_dict()
    assert {c.name for c in report.checks} >= {"documents", "provenance"}


def _documents(reg: Registry) -> list[Document]:
    with reg.ledger.store.read() as tx:
        return tx.credits.documents()


def test_the_verifier_may_submit_its_own_report_and_strangers_may_not(reg: Registry) -> None:
    accredit(reg)
    chain = credit_chain(reg, approve_report=False)
    assert chain.report
    # The sponsor submitted the plan and the M&V report; a stranger submits nothing.
    refused(
        reg,
        "NOT_AUTHORIZED",
        lambda: submit(reg, "mv-report", chain.project, b"stranger", "eve", period=PERIOD),
    )


# -- refusals ------------------------------------------------------------------------------------


def test_an_unaccredited_verifier_supports_nothing(reg: Registry) -> None:
    accredit(reg, "VER-LF", categories=("landfill-methane",))
    accredit(reg, "VER-OLD", valid=("2010-01-01", "2019-12-31"))
    accredit(reg, "VER-CONFLICT", conflicts=("PA-P0001",))
    sponsor = open_general(reg, "sol", "Ridge Wind LLC")
    project = register(reg, sponsor, "sol")
    approve_project(reg, project)
    review(reg, submit(reg, "emv-plan", project, b"plan", "sol"))
    mv = submit(reg, "mv-report", project, b"metered", "sol", period=PERIOD)
    review(reg, mv)
    for verifier, why in (
        ("VER-LF", "not accredited for renewable-generation"),
        ("VER-OLD", "not accredited for renewable-generation on 2026-02-10"),
        ("VER-CONFLICT", "conflict of interest"),
    ):
        error = refused(
            reg,
            "VERIFIER_NOT_ACCREDITED",
            lambda v=verifier: submit(  # type: ignore[misc]
                reg,
                "verification-report",
                project,
                f"by {v}".encode(),
                v.lower(),
                period=PERIOD,
                verifier=v,
                quantity=10,
                mv_report=mv,
            ),
        )
        assert why in error.message
    refused(
        reg,
        "VERIFIER_NOT_FOUND",
        lambda: submit(
            reg,
            "verification-report",
            project,
            b"by nobody",
            "sol",
            period=PERIOD,
            verifier="VER-NOBODY",
            quantity=10,
            mv_report=mv,
        ),
    )


def test_altered_stored_bytes_are_refused_and_reported(reg: Registry) -> None:
    accredit(reg)
    chain = credit_chain(reg, approve_report=False)
    tamper(reg, chain.report, b"verified 5000000 instead")
    error = refused(reg, "DOCUMENT_TAMPERED", lambda: review(reg, chain.report))
    assert error.details["document"] == chain.report
    assert error.details["stored_hash"] == digest(b"verified 5000000 instead")
    report = reg.queries.verify()
    failing = [c for c in report.checks if not c.ok]
    assert [c.name for c in failing] == ["documents"], report.to_dict()
    assert chain.report in failing[0].detail
    assert credit_blocks(reg, chain.sponsor) == []


def test_an_altered_monitoring_report_stops_the_issuance_that_rests_on_it(reg: Registry) -> None:
    accredit(reg)
    chain = credit_chain(reg, approve_report=False)
    tamper(reg, chain.mv_report, b"metered 9999999 MWh")
    refused(reg, "DOCUMENT_TAMPERED", lambda: review(reg, chain.report))


def test_approved_documents_are_final_and_identities_never_reused(reg: Registry) -> None:
    accredit(reg)
    chain = credit_chain(reg)
    content = f"plan of {chain.project}".encode()
    # The same bytes again: the identity is taken.
    refused(
        reg, "DOCUMENT_IMMUTABLE", lambda: submit(reg, "emv-plan", chain.project, content, "sol")
    )
    # A new version of an approved document: refused.
    error = refused(
        reg,
        "DOCUMENT_IMMUTABLE",
        lambda: submit(
            reg, "emv-plan", chain.project, b"plan, revised", "sol", supersedes=chain.plan
        ),
    )
    assert "approved and final" in error.message
    refused(reg, "REVIEW_CONFLICT", lambda: review(reg, chain.plan, "rejected", "too late"))


def test_a_rejected_document_is_resubmitted_as_a_new_version(reg: Registry) -> None:
    sponsor = open_general(reg, "sol", "Ridge Wind LLC")
    project = register(reg, sponsor, "sol")
    first = submit(reg, "emv-plan", project, b"plan v1", "sol")
    refused(reg, "INVALID_ARGUMENT", lambda: review(reg, first, "rejected"))  # no reasons
    review(reg, first, "rejected", "baseline not documented")
    second = submit(reg, "emv-plan", project, b"plan v2", "sol", supersedes=first)
    documents = {d.sha256: d for d in _documents(reg)}
    assert (documents[second].series, documents[second].version) == (first, 2)
    assert documents[first].reasons == "baseline not documented"
    # Only the latest version is superseded or reviewed.
    refused(
        reg,
        "REVIEW_CONFLICT",
        lambda: submit(reg, "emv-plan", project, b"plan v3", "sol", supersedes=first),
    )


def test_no_issuance_without_the_approved_documents(reg: Registry) -> None:
    accredit(reg)
    refused(
        reg,
        "REPORT_NOT_APPROVED",
        lambda: reg.ledger.issue(
            Issue(
                operation_id=op_id("issue"),
                program="CPPR",
                unit_type="erc",
                vintage=2025,
                quantity=100,
                to_account=alloc(reg),
            ),
            reg.ledger.administrator,
        ),
    )
    sponsor = open_general(reg, "sol", "Ridge Wind LLC")
    project = register(reg, sponsor, "sol")
    plan = submit(reg, "emv-plan", project, b"plan", "sol")
    mv = submit(reg, "mv-report", project, b"metered", "sol", period=PERIOD)
    report = submit(
        reg, "verification-report", project, b"verified", "ver-1",
        period=PERIOD, verifier="VER-1", quantity=10, mv_report=mv,
    )  # fmt: skip
    refused(reg, "PROJECT_NOT_APPROVED", lambda: review(reg, report))
    approve_project(reg, project)
    error = refused(reg, "REPORT_NOT_APPROVED", lambda: review(reg, report))
    assert "emv-plan" in error.message
    review(reg, plan)
    error = refused(reg, "REPORT_NOT_APPROVED", lambda: review(reg, report))
    assert mv in error.message
    review(reg, mv)
    review(reg, report)
    assert len(credit_blocks(reg, sponsor)) == 1


def test_no_double_issuance_for_a_report_or_a_period(reg: Registry) -> None:
    accredit(reg)
    chain = credit_chain(reg, quantity=500)
    refused(reg, "REVIEW_CONFLICT", lambda: review(reg, chain.report))
    # A second report on the same project over an overlapping period.
    half = "2025-07-01..2025-12-31"
    mv = submit(reg, "mv-report", chain.project, b"second half again", "sol", period=half)
    review(reg, mv)
    again = submit(
        reg, "verification-report", chain.project, b"verified again", "ver-1",
        period=half, verifier="VER-1", quantity=250, mv_report=mv,
    )  # fmt: skip
    error = refused(reg, "DOUBLE_ISSUANCE", lambda: review(reg, again))
    assert PERIOD in error.message
    assert sum(1 for _ in credit_blocks(reg, chain.sponsor)) == 1


def test_unit_types_a_program_does_not_take_are_refused(reg: Registry) -> None:
    sponsor = open_general(reg, "sol", "Ridge Wind LLC")
    # RGGI takes offsets, not ERCs; CPPR takes ERCs, not offsets; ARP takes allowances only.
    error = refused(reg, "UNIT_NOT_ACCEPTED", lambda: register(reg, sponsor, "sol", program="RGGI"))
    assert error.details["unit_type"] == "erc"
    refused(
        reg,
        "UNIT_NOT_ACCEPTED",
        lambda: register(reg, sponsor, "sol", category="landfill-methane", program="CPPR"),
    )
    refused(
        reg,
        "UNIT_NOT_ACCEPTED",
        lambda: reg.ledger.issue(
            Issue(
                operation_id=op_id("issue"),
                program="ARP",
                unit_type="offset",
                vintage=2025,
                quantity=1,
                to_account=alloc(reg),
            ),
            reg.ledger.administrator,
        ),
    )


# -- compliance with credits -------------------------------------------------------------------


def test_rate_based_deduction_surrenders_the_ercs_the_rate_requires(reg: Registry) -> None:
    accredit(reg)
    chain = credit_chain(reg, quantity=1000)
    plant = open_compliance(reg, "pat", "ORIS-3")
    reg.ledger.transfer(
        Transfer(
            operation_id=op_id("t"), from_account=chain.sponsor, to_account=plant,
            selection=Selection(quantity=1000, unit_type="erc"),
        ),
        person("sol"),
    )  # fmt: skip
    # 1,000,001 lb over 600 MWh against 1,000 lb/MWh: ceil(1000.001 - 600) = 401 ERCs.
    refused(
        reg,
        "INVALID_ARGUMENT",
        lambda: _emissions(reg, plant, "CPPR", 1_000_001),  # a rate program needs MWh
    )
    refused(
        reg,
        "INVALID_ARGUMENT",
        lambda: _emissions(reg, plant, "RGGI", 5, mwh=1, standard="1000"),
    )
    _emissions(reg, plant, "CPPR", 1_000_001, mwh=600, standard="1000")
    result = reg.ledger.deduct_compliance(
        DeductCompliance(operation_id=op_id("d"), program="CPPR", period="2025"),
        reg.ledger.administrator,
    )
    (source,) = result.detail["sources"]
    assert (source["obligation"], source["deducted"], source["shortfall"]) == (401, 401, 0)
    assert source["by_type"] == {"erc": 401}
    (row,) = [r for r in reg.queries.compliance() if r["program"] == "CPPR"]
    assert (row["emissions"], row["mwh"], row["standard"], row["obligation"]) == (
        1_000_001, 600, "1000", 401,
    )  # fmt: skip
    surrendered = [
        b for b in credit_blocks(reg, plant) if b["state"] == BlockState.SURRENDERED.value
    ]
    assert surrendered and all(b["provenance"] for b in surrendered)
    # A source under its standard owes nothing.
    clean = open_compliance(reg, "pat", "ORIS-4")
    _emissions(reg, clean, "CPPR", 500_000, mwh=1000, standard="771.5")
    result = reg.ledger.deduct_compliance(
        DeductCompliance(operation_id=op_id("d"), program="CPPR", period="2025", accounts=(clean,)),
        reg.ledger.administrator,
    )
    assert result.detail["sources"][0]["obligation"] == 0


def _emissions(
    reg: Registry,
    account: str,
    program: str,
    amount: int,
    *,
    mwh: int | None = None,
    standard: str | None = None,
    period: str = "2025",
) -> object:
    return reg.ledger.record_emissions(
        RecordEmissions(
            operation_id=op_id("e"), account=account, program=program, period=period,
            tons=amount, mwh=mwh, standard=standard,
        ),
        reg.ledger.administrator,
    )  # fmt: skip


def _offsets_and_allowances(reg: Registry, allowances: int, offsets: int) -> str:
    """A RGGI source holding ``allowances`` and ``offsets`` (from an approved offset project)."""
    accredit(reg, "VER-LF", categories=("landfill-methane",))
    chain = credit_chain(
        reg, verifier="VER-LF", quantity=offsets, category="landfill-methane", program="RGGI",
        period="2024-01-01..2024-12-31",
    )  # fmt: skip
    plant = open_compliance(reg, "pat", "ORIS-9")
    reg.ledger.transfer(
        Transfer(
            operation_id=op_id("t"), from_account=chain.sponsor, to_account=plant,
            selection=Selection(quantity=offsets, unit_type="offset"),
        ),
        person("sol"),
    )  # fmt: skip
    if allowances:
        reg.ledger.issue(
            Issue(
                operation_id=op_id("issue"), program="RGGI", unit_type="allowance",
                vintage=2024, quantity=allowances, to_account=alloc(reg),
            ),
            reg.ledger.administrator,
        )  # fmt: skip
        reg.ledger.transfer(
            Transfer(
                operation_id=op_id("t"), from_account=alloc(reg), to_account=plant,
                selection=Selection(quantity=allowances),
            ),
            reg.ledger.administrator,
        )  # fmt: skip
    return plant


def test_offsets_cover_at_most_their_share_of_an_obligation(reg: Registry) -> None:
    plant = _offsets_and_allowances(reg, allowances=900, offsets=100)
    _emissions(reg, plant, "RGGI", 1000, period="2024-2026")
    offsets = [b for b in credit_blocks(reg, plant) if b["unit_type"] == "offset"]
    named = UnitBlock.from_dict(
        {**offsets[0], "end": int(str(offsets[0]["start"])) + 39}  # 40 offsets > 3.3% of 1000
    )
    error = refused(
        reg,
        "CREDIT_SHARE_EXCEEDED",
        lambda: reg.ledger.deduct_compliance(
            DeductCompliance(
                operation_id=op_id("d"),
                program="RGGI",
                period="2024-2026",
                accounts=(plant,),
                blocks=(named,),
            ),
            reg.ledger.administrator,
        ),
    )
    assert (error.details["limit"], error.details["named"]) == (33, 40)
    # The automatic deduction takes the allowances, then offsets up to the limit: 900 + 33.
    result = reg.ledger.deduct_compliance(
        DeductCompliance(operation_id=op_id("d"), program="RGGI", period="2024-2026"),
        reg.ledger.administrator,
    )
    (source,) = result.detail["sources"]
    assert source["by_type"] == {"allowance": 900, "offset": 33}
    assert source["shortfall"] == 67
    # Earlier deductions count against the limit: no more offsets for this period.
    second = reg.ledger.deduct_compliance(
        DeductCompliance(operation_id=op_id("d"), program="RGGI", period="2024-2026"),
        reg.ledger.administrator,
    )
    assert second.detail["sources"][0]["deducted"] == 0


# -- compliance certifications ---------------------------------------------------------------


def test_compliance_certification_is_signed_by_the_representative_and_dated(
    reg: Registry, clock: Clock
) -> None:
    plant = open_compliance(reg, "pat", "ORIS-9")
    official = "Pat Doe, plant manager"
    refused(
        reg,
        "NOT_AUTHORIZED",
        lambda: submit(reg, "compliance-certification", plant, b"c", "admin", period="2024"),
    )
    refused(
        reg,
        "NOT_AUTHORIZED",
        lambda: submit(reg, "compliance-certification", plant, b"c", "eve", period="2024"),
    )
    # Control period 2024 is due by 2025-03-01: submitted in 2026, it is late.
    late = submit(
        reg, "compliance-certification", plant, b"2024 certified", "pat",
        period="2024", program="RGGI", official=official,
    )  # fmt: skip
    on_time = submit(
        reg, "compliance-certification", plant, b"2025 certified", "pat",
        period="2025", program="RGGI", official=official,
    )  # fmt: skip
    documents = {d.sha256: d for d in _documents(reg)}
    assert (documents[late].facts["due"], documents[late].facts["late"]) == ("2025-03-01", True)
    assert (documents[on_time].facts["due"], documents[on_time].facts["late"]) == (
        "2026-03-01", False,
    )  # fmt: skip
    assert documents[late].submitted_by == "person:pat"
    assert documents[late].facts["official"] == "Pat Doe, plant manager"


def test_refusals_leave_every_table_unchanged_and_replays_answer_the_same(reg: Registry) -> None:
    accredit(reg)
    chain = credit_chain(reg, approve_report=False)
    before = ledger_digest(reg)
    first = review(reg, chain.report)
    assert ledger_digest(reg) != before
    # The same operation id again: the stored answer, nothing new issued.
    with reg.ledger.store.read() as tx:
        issued = tx.credits.all_provenance()
    again = reg.credits.review_document(
        ReviewDocument(operation_id=first.operation_id, document=chain.report, decision="approved"),
        reg.ledger.administrator,
    )
    assert again.replayed and again.detail == first.detail
    with reg.ledger.store.read() as tx:
        assert tx.credits.all_provenance() == issued


def test_a_registry_refuses_credits_it_does_not_accept_or_without_provenance(
    tmp_path: Path, reg: Registry
) -> None:
    """The destination's check of an interstate proposal (the gateway rejects with its code)."""
    accredit(reg)
    chain = credit_chain(reg, quantity=100)
    with reg.ledger.store.read() as tx:
        (held,) = [h.block for h in tx.all_blocks() if h.unit_class.unit_type == "erc"]
        records = interstate.provenance_for(tx, [held])
    assert [r.report_sha256 for r in records] == [chain.report]
    strict = ProgramCatalog.default().with_overrides(
        [{**ProgramCatalog.default().get("CPPR").to_dict(), "issuers": ["NY"]}]
    )
    for programs, given, code in (
        (strict, records, "UNIT_NOT_ACCEPTED"),  # CPPR here takes NY's ERCs only
        (ProgramCatalog.default(), (), "PROVENANCE_MISSING"),  # credits without their record
        (ProgramCatalog.default(), records, None),
    ):
        nj = open_registry(f"sqlite:///{tmp_path / f'nj-{code}.db'}", "NJ", programs=programs)
        try:
            plant = open_compliance(nj, "lin", "ORIS-2406")
            with nj.ledger.store.write() as tx:
                refusal = interstate.incoming_refusal(nj.ledger, tx, plant, (held,), given)
            assert (refusal.code if refusal else None) == code, refusal
        finally:
            nj.close()
