"""The reports a publication has: names (the files' stems), titles, what each says, and their
columns in order. Data only; :mod:`.build` fills them."""

from __future__ import annotations

from typing import NamedTuple


class ReportSpec(NamedTuple):
    name: str
    title: str
    description: str
    columns: tuple[str, ...]


_CLASS = ("issuer", "program", "unit_type", "vintage")
_SERIALS = ("serial_start", "serial_end", "quantity")

#: Every report, in publication order.
REPORTS: tuple[ReportSpec, ...] = (
    ReportSpec(
        "accounts",
        "Accounts and their representatives",
        "Every account of every registry, with its authorized representatives.",
        (
            "registry",
            "account",
            "type",
            "purpose",
            "status",
            "name",
            "source_id",
            "representatives",
            "programs",
            "opened_at",
        ),
    ),
    ReportSpec(
        "sources-emissions",
        "Sources and their emissions",
        "Emissions reported for each regulated source, per program and control period (tons).",
        ("registry", "program", "period", "source_id", "account", "tons"),
    ),
    ReportSpec(
        "compliance",
        "Compliance results",
        "Per source, program and control period: the units owed for its emissions, the units "
        "surrendered by compliance deduction, and what is still owed.",
        (
            "registry",
            "program",
            "period",
            "source_id",
            "account",
            "emissions",
            "obligation",
            "surrendered",
            "shortfall",
            "status",
        ),
    ),
    ReportSpec(
        "issuance-allocation",
        "Allowance issuance and allocation",
        "Units issued by each registry into its state accounts, and allocated from them.",
        ("time", "kind", "registry", "from_account", "to_account", *_CLASS, *_SERIALS),
    ),
    ReportSpec(
        "transfers",
        "Transfers",
        "Every transfer between accounts, within a registry (intrastate) or between two "
        "registries (interstate), per block moved.",
        (
            "time",
            "updated",
            "kind",
            "reference",
            "status",
            "recorded_by",
            "from_registry",
            "from_account",
            "to_registry",
            "to_account",
            *_CLASS,
            *_SERIALS,
        ),
    ),
    ReportSpec(
        "prices",
        "Transaction prices",
        "The price per unit of every transaction that named one, where the program publishes "
        "prices: date, quantity and price, without serial numbers.",
        (
            "date",
            "kind",
            "from_registry",
            "to_registry",
            "program",
            "unit_type",
            "vintage",
            "quantity",
            "price",
            "currency",
            "from_account",
            "to_account",
        ),
    ),
    ReportSpec(
        "retirements",
        "Retirements",
        "Units retired voluntarily (permanently), per block.",
        ("time", "registry", "account", *_CLASS, *_SERIALS, "reason"),
    ),
    ReportSpec(
        "projects",
        "Credit projects",
        "Every project registered to earn credits: eligible resources earn emission reduction "
        "credits (ERCs), offset projects earn offsets, once an accredited verifier's report is "
        "approved.",
        (
            "registry",
            "project",
            "name",
            "sponsor",
            "category",
            "kind",
            "unit_type",
            "program",
            "location",
            "capacity_mw",
            "status",
            "registered_at",
        ),
    ),
    ReportSpec(
        "verifiers",
        "Accredited verifiers",
        "Every accreditation record of a verifier: the project categories it may verify, "
        "between which days, and the conflicts of interest it declared.",
        (
            "registry",
            "verifier",
            "name",
            "categories",
            "valid_from",
            "valid_to",
            "conflicts",
            "recorded_at",
        ),
    ),
    ReportSpec(
        "documents",
        "Public documents",
        "Every document submitted as public (plans, monitoring and verification reports, "
        "compliance certifications), each downloadable: its file's SHA-256 is its identity, "
        "checked when published.",
        (
            "registry",
            "kind",
            "subject",
            "title",
            "version",
            "series",
            "status",
            "reviewer",
            "submitted_at",
            "reviewed_at",
            "content_type",
            "size",
            "sha256",
            "file",
        ),
    ),
    ReportSpec(
        "credit-issuance",
        "Credit issuance by project",
        "ERCs and offsets issued on approved verification reports, by project and unit type, "
        "as the issuing registry recorded them (report_sha256: the verification report, when "
        "it is public).",
        (
            "issued_at",
            "registry",
            "project",
            "program",
            "unit_type",
            "vintage",
            *_SERIALS,
            "monitoring_period",
            "verifier",
            "report_sha256",
        ),
    ),
    ReportSpec(
        "credit-provenance",
        "Credit provenance across registries",
        "Every record of a credit's origin that a registry received with credits from another "
        "registry, checked against the issuing registry's own record: agrees, differs (naming "
        "the fields), unknown to its issuer, or issuer not read. Anything but agrees is a "
        "finding for the regulator. Serials and quantity are the whole issuance the record "
        "describes; the registry may hold part of it.",
        (
            "registry",
            "issuer",
            "project",
            "program",
            "unit_type",
            "vintage",
            *_SERIALS,
            "verifier",
            "report_sha256",
            "check",
        ),
    ),
    ReportSpec(
        "certifications",
        "Late or missing compliance certifications",
        "Per source with emissions recorded for a control period: its compliance certification "
        "if submitted after the due day (March 1 after the period), or missing when none was "
        "submitted and that day has passed.",
        (
            "registry",
            "program",
            "period",
            "source_id",
            "account",
            "due",
            "status",
            "submitted_at",
            "document",
        ),
    ),
    ReportSpec(
        "reconciliation",
        "Reconciliation status",
        "The oversight node's reconciliation runs, newest first: whether every serial is in "
        "one registry only and every issued unit is accounted for. Each signed result was "
        "verified against the oversight node's key in the federation directory.",
        (
            "run_id",
            "sequence",
            "trigger",
            "status",
            "started_at",
            "finished_at",
            "registries",
            "missing",
            "discrepancies",
            "kinds",
            "signature",
        ),
    ),
)


__all__ = ["REPORTS", "ReportSpec"]
