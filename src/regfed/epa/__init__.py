"""Real EPA data, loaded into a federation (``regfed import epa-arp``), sans I/O: the file's
reader and the import's plan. The import itself (real node processes) is
:mod:`regfed.local.epa_import`. See docs/epa-import.md."""

from .arp_data import ArpDataError, StateYear, parse_arp, read_arp
from .arp_plan import ImportPlan, InfeasibleSubset, Purchase, YearPlan, plan_import

__all__ = [
    "ArpDataError",
    "ImportPlan",
    "InfeasibleSubset",
    "Purchase",
    "StateYear",
    "YearPlan",
    "parse_arp",
    "plan_import",
    "read_arp",
]
