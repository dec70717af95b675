"""Public transparency reports: every registry's records, each program's disclosure policy
applied, published as CSV, JSON and a small static site (docs/reports.md).

What this package exports is pure and imports neither SQLAlchemy nor gRPC (a test checks):
the records (:mod:`.records`), the policies (:mod:`.policy`), the reports built from both
(:mod:`.build`, :mod:`.tables`), the writers (:mod:`.write`, :mod:`.html`), and the reader of a
node's ``PublicRecords`` stream (:mod:`.stream`, protobuf messages only). The network is in
:mod:`.fetch` (as the oversight node, over mutual TLS) and :mod:`.publish` puts everything
together for ``regfed report publish``; import them by name.
"""

from .build import build_publication
from .catalog import REPORTS, ReportSpec
from .credits import DocumentAltered, provenance_findings
from .policy import (
    DEFAULT_POLICIES,
    FIELDS,
    DisclosurePolicy,
    PolicyRefused,
    PolicySet,
    default_policies,
    load_policies,
    with_overrides,
)
from .records import (
    AccountRecord,
    AccreditationRecord,
    ComplianceRecord,
    DocumentRecord,
    EmissionRecord,
    InterstateRecord,
    IssuanceRecord,
    MovementRecord,
    Price,
    ProjectRecord,
    ProvenanceRecord,
    RegistryRecords,
    RunRecord,
    Serials,
)
from .stream import RecordsRefused, read_records
from .tables import WITHHELD, Publication, Report, Tally
from .write import PublishRefused, files_of, write_publication

__all__ = [
    "DEFAULT_POLICIES",
    "FIELDS",
    "REPORTS",
    "WITHHELD",
    "AccountRecord",
    "AccreditationRecord",
    "ComplianceRecord",
    "DisclosurePolicy",
    "DocumentAltered",
    "DocumentRecord",
    "EmissionRecord",
    "InterstateRecord",
    "IssuanceRecord",
    "MovementRecord",
    "PolicyRefused",
    "PolicySet",
    "Price",
    "ProjectRecord",
    "ProvenanceRecord",
    "Publication",
    "PublishRefused",
    "RecordsRefused",
    "RegistryRecords",
    "Report",
    "ReportSpec",
    "RunRecord",
    "Serials",
    "Tally",
    "build_publication",
    "default_policies",
    "files_of",
    "load_policies",
    "provenance_findings",
    "read_records",
    "with_overrides",
    "write_publication",
]
