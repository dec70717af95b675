"""The credit reports as pure functions of records and policies: a program that keeps parties
private hides a project's sponsor and name, a certification's document whole, a sponsor named in
a verifier's conflicts; late and missing certifications by the publication's day; altered bytes
refuse the publication; the stream's document slices must fit their public document."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

import pytest

from regfed.gateway._generated.report.v1 import report_pb2 as pb
from regfed.gateway.records_source import section_parts
from regfed.reports import (
    WITHHELD,
    AccountRecord,
    AccreditationRecord,
    DocumentAltered,
    DocumentRecord,
    EmissionRecord,
    ProjectRecord,
    ProvenanceRecord,
    RecordsRefused,
    RegistryRecords,
    Serials,
    build_publication,
    default_policies,
    provenance_findings,
    read_records,
)

pytestmark = pytest.mark.unit

PLAN = b"offset project consistency application"
CERT = b"certification of NY-000009-11"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def document(kind: str, subject: str, content: bytes, **kw: Any) -> DocumentRecord:
    fields: dict[str, Any] = {
        "title": f"{kind} of {subject}",
        "content_type": "application/pdf",
        "size": len(content),
        "public": True,
        "series": sha(content),
        "version": 1,
        "supersedes": "",
        "submitted_at": "2027-01-05T00:00:00.000000Z",
        "status": "approved",
        "reviewer": "admin:NY",
        "reviewed_at": "2027-01-06T00:00:00.000000Z",
        **kw,
    }
    return DocumentRecord("NY", sha(content), kind, subject, **fields)


def account(number: str, *programs: str) -> AccountRecord:
    return AccountRecord("NY", number, "general", "", "", "Holder", "open", "", "", programs)


def ny() -> RegistryRecords:
    """NY: a RGGI offset project of NY-000004-88 (parties private under RGGI), its public
    plan, 10 offsets issued; a source owing a 2024-2026 certification submitted late and
    public, another never certified for 2025 (ARP)."""
    r = RegistryRecords("NY", 20, "2027-03-10T00:00:00.000000Z")
    r.accounts = [account("NY-000004-88", "RGGI"), account("NY-000009-11", "RGGI")]
    r.accounts.append(account("NY-000010-22", "ARP"))
    r.projects = [
        ProjectRecord(
            "NY", "NY-P0001", "Holder Farm digester", "NY-000004-88", "agricultural-manure-methane",
            "offset-project", "offset", "RGGI", "Cayuga County", "", "approved",
            "2027-01-01T00:00:00.000000Z",
        )
    ]  # fmt: skip
    r.verifiers = [
        AccreditationRecord(
            "NY", "VER-2", "Finger Lakes Verify", ("agricultural-manure-methane",),
            "2026-01-01", "2030-12-31", ("NY-P0001", "NY-000004-88"), "2027-01-01T00:00:00Z",
        )
    ]  # fmt: skip
    late = {"program": "RGGI", "period": "2024-2026", "due": "2027-03-01", "late": True}
    r.documents = [
        document("consistency-application", "NY-P0001", PLAN),
        document(
            "compliance-certification", "NY-000009-11", CERT, content_type="text/plain",
            submitted_at="2027-03-05T00:00:00.000000Z", facts=tuple(sorted(late.items())),
        ),
    ]  # fmt: skip
    r.contents = {sha(PLAN): PLAN, sha(CERT): CERT}
    r.emissions = [
        EmissionRecord("NY", "NY-000009-11", "ORIS-9", "RGGI", "2024-2026", 100),
        EmissionRecord("NY", "NY-000010-22", "ORIS-10", "ARP", "2025", 5),
        EmissionRecord("NY", "NY-000010-22", "ORIS-10", "ARP", "2026", 5),
    ]
    r.provenance = [
        ProvenanceRecord(
            "NY", Serials("NY", "RGGI", "offset", 2026, 11, 20), "NY-P0001", "Holder Farm",
            "agricultural-manure-methane", "NY-000004-88", "f" * 64, "VER-2", "Finger Lakes",
            "2026-01-01..2026-12-31", "2027-02-01T00:00:00Z", "issued",
        )
    ]  # fmt: skip
    return r


def publish(records: RegistryRecords, day: str = "2027-03-10") -> Any:
    return build_publication(
        {records.registry: records},
        [],
        default_policies(),
        missing={},
        generated_at=f"{day}T00:00:00.000000Z",
    )


def test_rggi_keeps_sponsors_private_in_projects_and_verifier_conflicts() -> None:
    publication = publish(ny())
    [project] = publication.report("projects").rows
    assert (project["sponsor"], project["name"]) == (WITHHELD, WITHHELD)
    assert (project["unit_type"], project["kind"], project["status"]) == (
        "offset",
        "offset-project",
        "approved",
    )
    assert publication.report("projects").withheld.to_dict() == {
        "RGGI": {"party": 1, "project name": 1}
    }
    [verifier] = publication.report("verifiers").rows
    assert verifier["conflicts"] == "NY-P0001, (withheld)"


def test_a_certification_under_rggi_is_withheld_whole_and_a_project_document_published() -> None:
    publication = publish(ny())
    documents = publication.report("documents")
    assert [d["sha256"] for d in documents.rows] == [sha(PLAN)]
    assert documents.files == {f"documents/{sha(PLAN)}.pdf": PLAN}
    assert documents.withheld.to_dict() == {"RGGI": {"document": 1}}
    [issued] = publication.report("credit-issuance").rows
    # RGGI publishes no serials; the report's hash is not of a published document
    assert (issued["serial_start"], issued["quantity"], issued["report_sha256"]) == (
        WITHHELD,
        10,
        None,
    )


def test_late_and_missing_certifications_as_of_the_publication_day() -> None:
    rows = publish(ny()).report("certifications").rows
    assert {(r["source_id"], r["period"], r["status"], r["account"]) for r in rows} == {
        ("ORIS-9", "2024-2026", "late", WITHHELD),  # RGGI: parties private
        ("ORIS-10", "2025", "missing", "NY-000010-22"),  # due 2026-03-01, passed
        ("ORIS-10", "2026", "missing", "NY-000010-22"),  # due 2027-03-01, passed
    }
    earlier = publish(ny(), day="2027-03-01").report("certifications").rows
    assert ("ORIS-10", "2026") not in {(r["source_id"], r["period"]) for r in earlier}


def test_received_provenance_is_checked_against_its_issuers_record() -> None:
    issuer = ny()
    [original] = issuer.provenance
    nj = RegistryRecords("NJ", 7, "2027-03-10T00:00:00.000000Z")
    nj.provenance = [
        replace(original, registry="NJ", origin="received"),
        replace(original, registry="NJ", origin="received", project="NY-P0099"),
        replace(original, registry="NJ", origin="received", serials=replace(
            original.serials, end=2000), verifier="VER-9"),
        replace(original, registry="NJ", origin="received", report_sha256="e" * 64),
        replace(original, registry="NJ", origin="received", serials=replace(
            original.serials, issuer="CT")),
    ]  # fmt: skip
    publication = build_publication(
        {"NY": issuer, "NJ": nj}, [], default_policies(), missing={"CT": "down"},
        generated_at="2027-03-10T00:00:00.000000Z",
    )  # fmt: skip
    report = publication.report("credit-provenance")
    # The issuer's own record is not listed again (credit-issuance has it).
    assert {r["registry"] for r in report.rows} == {"NJ"}
    assert sorted(str(r["check"]) for r in report.rows) == [
        "agrees",
        "differs: project",
        "differs: serials, verifier",
        "issuer not read",
        "unknown to its issuer",
    ]
    # RGGI publishes no serials; the verification report is not published.
    assert {(r["serial_start"], r["report_sha256"]) for r in report.rows} == {(WITHHELD, None)}
    findings = provenance_findings(publication.reports)
    assert len(findings) == 4 and all(f["check"] != "agrees" for f in findings)
    assert provenance_findings(publish(ny()).reports) == []


def test_altered_bytes_refuse_the_publication_naming_document_and_registry() -> None:
    records = ny()
    records.contents[sha(PLAN)] = PLAN + b" "
    with pytest.raises(DocumentAltered, match=f"document {sha(PLAN)}.*registry NY"):
        publish(records)
    records.contents.pop(sha(PLAN))
    with pytest.raises(DocumentAltered):
        publish(records)


def stream(documents: list[Any], chunks: list[Any]) -> list[Any]:
    parts = [pb.RecordsPart(header=pb.Header(registry="NY", journal_position=1))]
    parts += list(section_parts("documents", documents))
    parts += list(section_parts("document_contents", chunks))
    trailer = pb.Trailer(documents=len(documents), document_contents=len(chunks))
    return [*parts, pb.RecordsPart(trailer=trailer)]


def test_the_reader_joins_slices_and_refuses_ones_that_do_not_fit() -> None:
    public = pb.Document(sha256=sha(PLAN), public=True, facts_json=json.dumps({"late": True}))
    private = pb.Document(sha256=sha(CERT), public=False, facts_json="{}")
    halves = [
        pb.DocumentChunk(sha256=sha(PLAN), offset=0, data=PLAN[:10]),
        pb.DocumentChunk(sha256=sha(PLAN), offset=10, data=PLAN[10:]),
    ]
    records = read_records(stream([public, private], halves), "NY")
    assert records.contents == {sha(PLAN): PLAN}
    assert records.documents[0].fact("late") is True
    with pytest.raises(RecordsRefused, match="expected 10"):
        read_records(stream([public], [halves[0], halves[0]]), "NY")
    leaked = pb.DocumentChunk(sha256=sha(CERT), offset=0, data=CERT)
    with pytest.raises(RecordsRefused, match="no public document"):
        read_records(stream([public, private], [leaked]), "NY")
    with pytest.raises(RecordsRefused, match="not JSON"):
        read_records(stream([pb.Document(sha256="x", facts_json="{")], []), "NY")
