"""The credit reports from a real registry database: a CPPR project approved, verified and
issued ERCs through the Python API, its documents (public and not), emissions with and without
a compliance certification; read as the node streams them, built, written. Nothing of a
non-public document reaches any published file; altered bytes stop the publication."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from credit_support import issue_credits, rewrite, tamper
from pair_support import gateway_pair

from regfed.gateway.records_source import CHUNK_BYTES, records_parts
from regfed.node import RecordEmissions, Selection
from regfed.node.domain.commands import (
    AccreditVerifier,
    RegisterProject,
    ReviewDocument,
    SetProjectStatus,
    SubmitDocument,
)
from regfed.node.registry import Registry
from regfed.reports import (
    DocumentAltered,
    RegistryRecords,
    build_publication,
    default_policies,
    provenance_findings,
    read_records,
    write_publication,
)
from support import op_id, open_compliance, open_general, open_test_registry, person

pytestmark = pytest.mark.integration

PLAN = b"%PDF-1.4 emv plan " + bytes(range(256)) * 500  # over one slice: comes in several
MV = b"PRIVATE monitoring data of the wind farm"
VERIFICATION = b"%PDF-1.4 verification statement: 40 MWh-equivalent ERCs"
CERTIFICATION = b"SECRET certification of ORIS-2 signed late"


def records_of(reg: Registry) -> RegistryRecords:
    parts = records_parts(reg.ledger.store, registry="PA", programs=reg.ledger.programs)
    return read_records(parts, "PA")


def submit(reg: Registry, kind: str, subject: str, title: str, content: bytes, **kw: Any) -> str:
    actor = kw.pop("actor", reg.ledger.administrator)
    facts = tuple((k, str(v)) for k, v in kw.pop("facts", {}).items())
    reg.credits.submit_document(
        SubmitDocument(
            operation_id=op_id("doc"),
            document_kind=kind,
            subject=subject,
            title=title,
            content_sha256=hashlib.sha256(content).hexdigest(),
            facts=facts,
            **kw,
        ),
        content,
        actor,
    )
    return hashlib.sha256(content).hexdigest()


def approve(reg: Registry, sha256: str) -> None:
    reg.credits.review_document(
        ReviewDocument(operation_id=op_id("review"), document=sha256, decision="approved"),
        reg.ledger.administrator,
    )


@pytest.fixture
def reg(db_url: str) -> Iterator[Registry]:
    """PA: a CPPR wind project of Keystone Wind approved; its plan (public), its monitoring
    report (not public) and the verification report (public) approved, so 40 ERCs issued. Two
    ARP sources with 2020 emissions: ORIS-1 never certified (missing), ORIS-2 certified now,
    years late, privately; ORIS-3's 2026 certification is not due yet."""
    reg = open_test_registry(db_url)
    admin = reg.ledger.administrator
    sponsor = open_general(reg, "kim", name="Keystone Wind LLC")
    result = reg.credits.register_project(
        RegisterProject(
            operation_id=op_id("project"),
            sponsor_account=sponsor,
            name="Keystone Ridge Wind",
            category="renewable-generation",
            program="CPPR",
            location="Somerset County, PA",
            capacity_mw="52.5",
            baseline="grid average",
        ),
        admin,
    )
    project = str(result.detail["project"])
    reg.credits.set_project_status(
        SetProjectStatus(operation_id=op_id("status"), project=project, status="approved"), admin
    )
    reg.credits.accredit_verifier(
        AccreditVerifier(
            operation_id=op_id("accredit"),
            verifier="VER-1",
            name="Allegheny Verification",
            person="vera",
            categories=("renewable-generation",),
            valid_from="2020-01-01",
            valid_to="2099-12-31",
            conflicts=("PA-P0099",),
        ),
        admin,
    )
    approve(reg, submit(reg, "emv-plan", project, "Ridge EM&V plan", PLAN))
    period = "2025-01-01..2025-12-31"
    mv = submit(
        reg, "mv-report", project, "Ridge private M&V", MV, public=False, facts={"period": period}
    )
    approve(reg, mv)
    facts = {"period": period, "verifier": "VER-1", "quantity": 40, "mv_report": mv}
    report = submit(reg, "verification-report", project, "Ridge verification", VERIFICATION,
                    content_type="application/pdf", facts=facts)  # fmt: skip
    approve(reg, report)
    plants = {s: open_compliance(reg, "carol", s) for s in ("ORIS-1", "ORIS-2", "ORIS-3")}
    for source, period_ in (("ORIS-1", "2020"), ("ORIS-2", "2020"), ("ORIS-3", "2026")):
        reg.ledger.record_emissions(
            RecordEmissions(
                operation_id=op_id("em"),
                account=plants[source],
                program="ARP",
                period=period_,
                tons=7,
            ),
            admin,
        )
    submit(
        reg,
        "compliance-certification",
        plants["ORIS-2"],
        "ORIS-2 certification 2020",
        CERTIFICATION,
        public=False,
        content_type="text/plain",
        facts={"program": "ARP", "period": "2020", "official": "Carol Smith"},
        actor=person("carol"),
    )
    yield reg
    reg.close()


def test_the_node_streams_every_credit_record(reg: Registry) -> None:
    records = records_of(reg)
    [project] = records.projects
    assert (project.id, project.kind, project.unit_type, project.status) == (
        "PA-P0001",
        "eligible-resource",
        "erc",
        "approved",
    )
    assert project.sponsor.startswith("PA-") and project.capacity_mw == "52.5"
    [accreditation] = records.verifiers
    assert accreditation.conflicts == ("PA-P0099",)
    assert len(records.documents) == 4
    public = {d.sha256 for d in records.documents if d.public}
    assert set(records.contents) == public  # the bytes of public documents only
    assert records.contents[hashlib.sha256(PLAN).hexdigest()] == PLAN
    assert len(PLAN) > CHUNK_BYTES
    [issued] = records.provenance
    assert (issued.origin, issued.serials.unit_type, issued.serials.quantity) == (
        "issued",
        "erc",
        40,
    )


def test_the_reports_show_the_credits_and_nothing_private(reg: Registry, tmp_path: Path) -> None:
    records = records_of(reg)
    publication = build_publication(
        {"PA": records},
        [],
        default_policies(),
        missing={},
        generated_at="2026-06-01T00:00:00.000000Z",
    )
    [project] = publication.report("projects").rows
    assert project["sponsor"] == records.projects[0].sponsor  # CPPR publishes parties
    [issued] = publication.report("credit-issuance").rows
    report_sha = hashlib.sha256(VERIFICATION).hexdigest()
    assert (issued["project"], issued["quantity"], issued["report_sha256"]) == (
        "PA-P0001",
        40,
        report_sha,
    )
    documents = publication.report("documents").rows
    assert {d["title"] for d in documents} == {"Ridge EM&V plan", "Ridge verification"}
    certifications = publication.report("certifications").rows
    assert {(r["source_id"], r["status"], r["document"]) for r in certifications} == {
        ("ORIS-1", "missing", None),
        ("ORIS-2", "late", None),  # late, and its private document's hash is not shown
    }

    site = tmp_path / "site"
    write_publication(publication, site)
    plan = site / "documents" / f"{hashlib.sha256(PLAN).hexdigest()}.pdf"
    assert plan.read_bytes() == PLAN
    assert f'href="documents/{plan.name}"' in (site / "documents.html").read_text()
    private = [
        MV,
        CERTIFICATION,
        b"Ridge private M&V",
        b"Ridge private M&amp;V",
        b"ORIS-2 certification",
        hashlib.sha256(MV).hexdigest().encode(),
        hashlib.sha256(CERTIFICATION).hexdigest().encode(),
    ]
    published = [p for p in site.rglob("*") if p.is_file()]
    assert len(published) > 20
    for path in published:
        data = path.read_bytes()
        for secret in private:
            assert secret not in data, (path, secret)
    assert report_sha.encode() in (site / "documents.html").read_bytes()
    assert report_sha.encode() in (site / "credit-issuance.csv").read_bytes()


def test_altered_bytes_stop_the_publication(reg: Registry, tmp_path: Path) -> None:
    sha256 = hashlib.sha256(VERIFICATION).hexdigest()
    tamper(reg, sha256, VERIFICATION.replace(b"40", b"90"))
    with pytest.raises(DocumentAltered) as refused:
        build_publication(
            {"PA": records_of(reg)}, [], default_policies(), missing={}, generated_at="2026-06-01"
        )
    assert refused.value.registry == "PA" and refused.value.sha256 == sha256
    assert "PA" in str(refused.value) and sha256 in str(refused.value)


def test_received_provenance_agrees_with_its_issuer_until_a_copy_is_rewritten(
    db_url: str, tmp_path: Path
) -> None:
    """ERCs walk from PA to NY through the gateways; NY's copy of their provenance is checked
    against PA's own record, as each node streams them. Rewriting the copy in NY's database
    (its owner lifting the append-only trigger) is a finding naming the field."""
    with gateway_pair(db_url, tmp_path) as pair:
        sol = open_general(pair.pa.registry, "sol")
        carol = open_general(pair.ny.registry, "carol")
        issue_credits(pair.pa.registry, sol, "renewable-generation", "CPPR", 60, year=2025)
        _view, outbound = pair.propose("sol", sol, carol, Selection(quantity=25, unit_type="erc"))
        pair.deliver(outbound)

        def publication() -> Any:
            read = {
                code: read_records(
                    records_parts(g.ledger.store, registry=code, programs=g.ledger.programs), code
                )
                for code, g in (("PA", pair.pa), ("NY", pair.ny))
            }
            return build_publication(
                read, [], default_policies(), missing={}, generated_at="2026-06-01T00:00:00Z"
            )

        [row] = publication().report("credit-provenance").rows
        assert (row["registry"], row["issuer"], row["quantity"], row["check"]) == (
            "NY", "PA", 60, "agrees",  # the whole issuance block's record travels
        )  # fmt: skip
        assert provenance_findings(publication().reports) == []
        rewrite(pair.ny.registry, "UPDATE provenance SET verifier = 'VER-FORGED'", {})
        [finding] = provenance_findings(publication().reports)
        assert (finding["registry"], finding["verifier"], finding["check"]) == (
            "NY", "VER-FORGED", "differs: verifier",
        )  # fmt: skip
