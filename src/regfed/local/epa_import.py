"""``regfed import epa-arp``: EPA's Acid Rain Program data played into a new local federation of
real node processes, year by year, by the plan of :mod:`regfed.epa.arp_plan`.

Each state's administrator acts straight on its node's database, as ``regfed ledger`` does
(issuance, allocation, emissions, deduction); the purchases between states are ordinary
interstate transfers proposed at the seller's node by its account representative over mTLS, and
each has settled (the buyer's credit confirmed) before anyone deducts. Every operation id and
transfer request id is derived from the plan (``arp-1995-AL-issue``), so nothing is done twice.
After the last year every deduction's shortfall was 0, or the import stopped saying where.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regfed.epa import ImportPlan, Purchase, YearPlan
from regfed.node import (
    DeductCompliance,
    Issue,
    OpenAccount,
    RecordEmissions,
    Registry,
    RepresentativeSpec,
    Selection,
    StatePurpose,
    Transfer,
    open_existing,
)

from .client import RegistryClient
from .federation import Federation, create_federation, free_base_port
from .processes import LocalFederation

PROGRAM = "ARP"
#: Interstate purchases in flight at once (each is a few round trips between two nodes).
PARALLEL_TRANSFERS = 8
SETTLE_TIMEOUT_S = 120.0


class ImportFailed(RuntimeError):
    """The import stopped part-way: the message says where and what to look at."""


@dataclass
class ImportReport:
    plan: ImportPlan
    federation: Path
    transfers: int = 0
    seconds: float = 0.0
    balances: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "federation": str(self.federation),
            "states": list(plan.states),
            "years": [plan.years[0], plan.years[-1]],
            "issued": sum(plan.issued_total(y) for y in plan.years),
            "deducted": sum(plan.deducted_total(y) for y in plan.years),
            "interstate_transfers": self.transfers,
            "lowest_bank": {"year": plan.lowest_bank[0], "allowances": plan.lowest_bank[1]},
            "seconds": round(self.seconds, 1),
            "balances": [
                {
                    "state": state,
                    "balance": self.balances.get(state, 0),
                    "planned": plan.final_balance[state],
                    "epa_year": plan.carried_over[state][0],
                    "epa_carried_over": plan.carried_over[state][1],
                    "difference": self.balances.get(state, 0) - plan.carried_over[state][1],
                }
                for state in plan.states
            ],
        }


Progress = Callable[[str], None]


def _quiet(_text: str) -> None:
    pass


class ArpImport:
    """The plan carried out against a running local federation."""

    def __init__(self, federation: Federation, plan: ImportPlan, progress: Progress) -> None:
        self.federation = federation
        self.plan = plan
        self.progress = progress
        self.registries: dict[str, Registry] = {}
        self.accounts: dict[str, str] = {}
        self.allocation: dict[str, str] = {}
        self.transfers = 0

    def open(self) -> None:
        for state in self.plan.states:
            registry = open_existing(self.federation.node_config(state).database)
            self.registries[state] = registry
            name = self.plan.names.get(state, state)
            opened = registry.ledger.open_account(
                OpenAccount(
                    operation_id=f"arp-{state}-open",
                    account_type="compliance",
                    name=f"{name} Acid Rain Program units",
                    source_id=f"ARP-{state}",
                    representatives=(RepresentativeSpec(person="trader1", role="primary"),),
                ),
                registry.ledger.administrator,
            )
            self.accounts[state] = str(opened.detail["account"])
            self.allocation[state] = registry.state_account(StatePurpose.ALLOCATION).label

    def close(self) -> None:
        for registry in self.registries.values():
            registry.close()

    def run_year(self, year: YearPlan) -> None:
        for state, quantity in year.issued.items():
            if quantity:
                self._issue(state, year.year, quantity)
        self._buy(year.purchases)
        for state, tons in year.deducted.items():
            self._deduct(state, year.year, tons)

    def _issue(self, state: str, year: int, quantity: int) -> None:
        ledger = self.registries[state].ledger
        admin = ledger.administrator
        ledger.issue(
            Issue(
                operation_id=f"arp-{year}-{state}-issue",
                program=PROGRAM,
                unit_type="allowance",
                vintage=year,
                quantity=quantity,
                to_account=self.allocation[state],
            ),
            admin,
        )
        ledger.transfer(
            Transfer(
                operation_id=f"arp-{year}-{state}-allocate",
                from_account=self.allocation[state],
                to_account=self.accounts[state],
                selection=Selection(quantity=quantity, program=PROGRAM, vintage=year),
                memo=f"ARP {year} allocation",
            ),
            admin,
        )

    def _buy(self, purchases: tuple[Purchase, ...]) -> None:
        if not purchases:
            return
        with ThreadPoolExecutor(PARALLEL_TRANSFERS, thread_name_prefix="arp-buy") as pool:
            for done in pool.map(self._purchase, purchases):
                self.transfers += done

    def _purchase(self, purchase: Purchase) -> int:
        p = purchase
        with RegistryClient(self.federation, p.seller, timeout=60.0) as seller:
            t = seller.propose(
                self.accounts[p.seller],
                self.accounts[p.buyer],
                quantity=p.quantity,
                program=PROGRAM,
                request_id=f"arp-{p.year}-{p.seller}-{p.buyer}",
                wait_s=30.0,
            )
            if not t["settled"]:
                t = seller.wait_settled(t["transfer_id"], SETTLE_TIMEOUT_S)
        if t["status"] != "completed" or not t["settled"]:
            raise ImportFailed(
                f"{p.year}: {p.seller} -> {p.buyer} {p.quantity:,} ended {t['status']} "
                f"(settled {t['settled']}) {t.get('error_code') or ''} "
                f"{t.get('error_message') or ''}; see {self.federation.folder / p.seller}/node.log"
            )
        return 1

    def _deduct(self, state: str, year: int, tons: int) -> None:
        ledger = self.registries[state].ledger
        admin = ledger.administrator
        ledger.record_emissions(
            RecordEmissions(
                operation_id=f"arp-{year}-{state}-emissions",
                account=self.accounts[state],
                program=PROGRAM,
                period=str(year),
                tons=tons,
            ),
            admin,
        )
        result = ledger.deduct_compliance(
            DeductCompliance(
                operation_id=f"arp-{year}-{state}-deduct",
                program=PROGRAM,
                period=str(year),
                accounts=(self.accounts[state],),
            ),
            admin,
        )
        if result.detail["shortfall"]:
            raise ImportFailed(
                f"{year}: {state} was {result.detail['shortfall']:,} short of its deduction of "
                f"{tons:,} after the planned purchases; the plan and the ledger disagree"
            )

    def balances(self) -> dict[str, int]:
        out = {}
        for state, registry in self.registries.items():
            held = registry.queries.holdings(self.accounts[state], registry.ledger.administrator)
            out[state] = sum(
                int(b.block["end"]) - int(b.block["start"]) + 1
                for b in held.blocks
                if b.state == "held"
            )
        return out


def import_arp(
    plan: ImportPlan,
    folder: Path,
    *,
    progress: Progress = _quiet,
    settings: dict[str, Any] | None = None,
) -> ImportReport:
    """Create the federation of ``plan.states`` in ``folder``, start it, carry the plan out,
    stop it (``regfed up folder`` serves it again)."""
    if (folder / "federation.json").exists():
        raise ImportFailed(f"{folder} already holds a federation: import into a new folder")
    began = time.monotonic()
    federation = create_federation(
        folder,
        list(plan.states),
        base_port=free_base_port(2 * len(plan.states) + 2),
        settings={"redrive_interval": 0.2, "ask_after": 2.0, **(settings or {})},
    )
    progress(f"starting {len(plan.states)} registry nodes and the oversight node ...")
    local = LocalFederation(federation)
    work = ArpImport(federation, plan, progress)
    try:
        local.start()
        progress(f"nodes up in {time.monotonic() - began:.0f} s")
        work.open()
        for year in plan.plan:
            work.run_year(year)
            progress(
                f"{year.year}: issued {sum(year.issued.values()):,}, "
                f"{len(year.purchases)} purchases, deducted {sum(year.deducted.values()):,} "
                f"({work.transfers} transfers so far, {time.monotonic() - began:.0f} s)"
            )
        report = ImportReport(plan, federation.file, work.transfers)
        report.balances = work.balances()
    finally:
        work.close()
        local.stop()
    report.seconds = time.monotonic() - began
    return report
