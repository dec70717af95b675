"""The demo's credit scene: a renewable project in Pennsylvania earns ERCs on the approval of
an accredited verifier's report; they cross to New Jersey over the federation, where a plant
surrenders them for rate-based compliance, and New Jersey's node still shows, to the plant's
own representative, which project and which report they came from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from regfed.local import Federation, RegistryClient
from regfed.local.accounts import open_account
from regfed.node import (
    AccreditVerifier,
    Actor,
    DeductCompliance,
    RecordEmissions,
    RegisterProject,
    Registry,
    ReviewDocument,
    SetProjectStatus,
    SubmitDocument,
    open_existing,
)
from regfed.node.domain.documents import digest

PERIOD = "2025-01-01..2025-12-31"
VERIFIED_MWH = 41_250


def _on(federation: Federation, code: str, work: Callable[[Registry], Any]) -> Any:
    """Administrator's work on a node's own database, as `regfed credits` does."""
    reg = open_existing(federation.node_config(code).database)
    try:
        return work(reg)
    finally:
        reg.close()


def _earn(reg: Registry, sponsor: str) -> dict[str, Any]:
    admin, sol, vera = reg.ledger.administrator, Actor.person("trader1"), Actor.person("vera")
    project = str(
        reg.credits.register_project(
            RegisterProject(
                operation_id="demo-project", sponsor_account=sponsor, name="Ridge Wind",
                category="renewable-generation", program="CPPR",
                location="Somerset County, PA", capacity_mw="120.5",
            ),
            sol,
        ).detail["project"]
    )  # fmt: skip
    reg.credits.set_project_status(
        SetProjectStatus(operation_id="demo-approve", project=project, status="approved"), admin
    )
    reg.credits.accredit_verifier(
        AccreditVerifier(
            operation_id="demo-accredit", verifier="VER-GREEN", name="Green Check LLC",
            person="vera", categories=("renewable-generation",), valid_from="2024-01-01",
            valid_to="2030-12-31",
        ),
        admin,
    )  # fmt: skip

    def document(kind: str, text: str, actor: Actor, **facts: str) -> str:
        content = text.encode()
        result = reg.credits.submit_document(
            SubmitDocument(
                operation_id=f"demo-{kind}", document_kind=kind, subject=project,
                title=f"Ridge Wind {kind}", content_sha256=digest(content),
                content_type="text/plain", facts=tuple(sorted(facts.items())),
            ),
            content,
            actor,
        )  # fmt: skip
        return str(result.detail["sha256"])

    def approve(sha: str, what: str) -> dict[str, Any]:
        result = reg.credits.review_document(
            ReviewDocument(operation_id=f"demo-review-{what}", document=sha, decision="approved"),
            admin,
        )
        return dict(result.detail)

    approve(document("emv-plan", "EM&V plan: revenue-grade meters, hourly data", sol), "plan")
    mv = document("mv-report", f"2025: {VERIFIED_MWH} MWh metered", sol, period=PERIOD)
    approve(mv, "mv")
    report = document(
        "verification-report", f"Green Check verifies {VERIFIED_MWH} MWh", vera,
        period=PERIOD, verifier="VER-GREEN", quantity=str(VERIFIED_MWH), mv_report=mv,
    )  # fmt: skip
    issued = approve(report, "verification")
    return {"project": project, "report": report, "issued": issued["quantity"]}


def _comply(reg: Registry, plant: str) -> dict[str, Any]:
    admin = reg.ledger.administrator
    # 35,000,000 lb CO2 over 30,000 MWh against 1,000 lb/MWh: ceil(35,000 - 30,000) = 5,000.
    reg.ledger.record_emissions(
        RecordEmissions(
            operation_id="demo-rate", account=plant, program="CPPR", period="2025",
            tons=35_000_000, mwh=30_000, standard="1000",
        ),
        admin,
    )  # fmt: skip
    result = reg.ledger.deduct_compliance(
        DeductCompliance(operation_id="demo-rate-deduct", program="CPPR", period="2025"), admin
    )
    return dict(result.detail["sources"][0])


def credit_scene(federation: Federation, say: Callable[[str], None]) -> dict[str, Any]:
    say("\n  Credits: a Pennsylvania wind farm's ERCs, surrendered in New Jersey")
    sponsor = open_account(federation, "PA", "trader1", name="Ridge Wind LLC")
    plant = open_account(
        federation, "NJ", "trader1", kind="compliance", name="Linden Generating",
        source="NJ-ORIS-2406",
    )  # fmt: skip
    earned = _on(federation, "PA", lambda reg: _earn(reg, sponsor))
    say(
        f"    PA approved verification report {earned['report'][:12]}...: "
        f"{earned['issued']:,} ERCs issued to {sponsor} for project {earned['project']}"
    )
    with RegistryClient(federation, "PA") as client:
        moved = client.propose(
            sponsor, plant, quantity=5_000, program="CPPR", unit_type="erc", wait_s=60
        )
    say(f"    PA -> NJ, 5,000 ERCs: {moved['status']}{' and settled' if moved['settled'] else ''}")
    compliance = _on(federation, "NJ", lambda reg: _comply(reg, plant))
    say(
        f"    NJ rate-based deduction for {plant}: owed {compliance['obligation']:,} ERCs, "
        f"surrendered {compliance['deducted']:,}, short {compliance['shortfall']:,}"
    )
    with RegistryClient(federation, "NJ") as client:
        blocks = [b for b in client.holdings(plant) if b["unit_type"] == "erc"]
    origins = {b.get("provenance", {}).get("report_sha256") for b in blocks}
    seen = blocks[0].get("provenance", {}) if blocks else {}
    if seen:
        say(
            f"    NJ's node shows the plant its surrendered ERCs' provenance: project "
            f"{seen['project']} ({seen['project_name']}, {seen['category']}), verifier "
            f"{seen['verifier']}, report {seen['report_sha256'][:12]}..., issued by "
            f"{seen['issuance']['issuer']} for {seen['monitoring_period']}"
        )
    problems = []
    if origins != {earned["report"]}:
        problems.append(f"ERCs in NJ do not all name report {earned['report']}: {origins}")
    if not moved["settled"] or compliance["shortfall"]:
        problems.append("the ERCs did not arrive, or did not cover the plant's obligation")
    return {
        "project": earned["project"],
        "report": earned["report"],
        "issued": earned["issued"],
        "transfer": moved,
        "compliance": compliance,
        "provenance_in_NJ": seen,
        "problems": problems,
    }
