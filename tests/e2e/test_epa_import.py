"""EPA's Acid Rain Program data through the real commands: `regfed import epa-arp` for a subset
of states that must buy from each other in the shortfall years 2000-2005, then `regfed up DIR`
serving it again, the oversight node's figures checked against EPA's file, and a clean
reconciliation. An infeasible subset is refused before anything is written.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from regfed.epa import plan_import, read_arp

pytestmark = pytest.mark.e2e

DATA = Path(__file__).resolve().parents[2] / "data" / "camd" / "ARPComplianceData-StateLevel.csv"
#: Chosen with the plan (checked below): AL, GA, MD and OR buy in 2000-2005; GA and AZ sell.
STATES = ["AL", "AZ", "GA", "MD", "OR"]
YEARS = (1995, 2005)


def regfed(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regfed.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def epa_rows() -> list[dict[str, str]]:
    with DATA.open(newline="") as f:
        return [
            r
            for r in csv.DictReader(f)
            if r["stateCode"] in STATES and YEARS[0] <= int(r["year"]) <= YEARS[1]
        ]


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("arp") / "federation"
    done = regfed(
        "import",
        "epa-arp",
        str(DATA),
        "--dir",
        str(folder),
        "--states",
        ",".join(STATES),
        "--years",
        f"{YEARS[0]}-{YEARS[1]}",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert "2005: issued" in done.stderr  # progress, year by year, on stderr
    report: dict[str, Any] = json.loads(done.stdout)
    report["folder"] = folder
    return report


@pytest.fixture(scope="module")
def served(imported: dict[str, Any]) -> Iterator[Path]:
    """`regfed up DIR` on the imported folder: every state's node and the oversight node."""
    folder: Path = imported["folder"]
    errors = (folder / "up.err").open("w")
    up = subprocess.Popen(
        [sys.executable, "-m", "regfed.cli", "up", str(folder)],
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    assert up.stdout is not None
    lines = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = up.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("federation file:"):
            break
    assert any(line.startswith("federation file:") for line in lines), (lines, up.poll())
    assert {line.split()[0] for line in lines[2:] if line.strip()} >= set(STATES)
    try:
        yield folder / "federation.json"
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(60)
        up.stdout.close()
        errors.close()


def oversight(federation: Path, *args: str) -> dict[str, Any]:
    done = regfed("oversight", *args, "--federation", str(federation), "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    assert answer["missing"] == []
    return answer


def test_the_subset_buys_across_state_lines_in_the_shortfall_years(
    imported: dict[str, Any],
) -> None:
    plan = plan_import(read_arp(DATA), STATES, YEARS)
    shortfall_years = {p.year for p in plan.purchases}
    assert set(range(2000, 2006)) <= shortfall_years
    assert len({p.buyer for p in plan.purchases}) >= 3
    assert len({p.seller for p in plan.purchases}) >= 2
    assert imported["interstate_transfers"] == len(plan.purchases) == 14
    assert imported["states"] == STATES
    rows = epa_rows()
    assert imported["issued"] == sum(int(r["allocated"]) for r in rows)
    assert imported["deducted"] == sum(int(r["totalAllowancesDeducted"]) for r in rows)
    for b in imported["balances"]:
        assert b["balance"] == b["planned"], b
        last = [r for r in rows if r["stateCode"] == b["state"] and int(r["year"]) == b["epa_year"]]
        assert b["epa_carried_over"] == int(last[0]["carriedOver"])
        assert b["difference"] == b["balance"] - b["epa_carried_over"]


def test_oversight_reproduces_epa_figures_per_state_and_year(served: Path) -> None:
    rows = epa_rows()
    supply = oversight(served, "supply", "--by", "issuer,vintage")
    issued = {(r["issuer"], r["vintage"]): r["issued"] for r in supply["rows"]}
    expected = {(r["stateCode"], int(r["year"])): int(r["allocated"]) for r in rows}
    assert {k: v for k, v in issued.items() if v} == {k: v for k, v in expected.items() if v}
    compliance = oversight(served, "compliance", "--by", "registry,period")
    surrendered = {(r["registry"], int(r["period"])): r["surrendered"] for r in compliance["rows"]}
    assert surrendered == {
        (r["stateCode"], int(r["year"])): int(r["totalAllowancesDeducted"]) for r in rows
    }
    assert all(r["shortfall"] == 0 for r in compliance["rows"])
    # and in total, per year
    for year in range(YEARS[0], YEARS[1] + 1):
        of_year = [r for r in rows if int(r["year"]) == year]
        per_year = oversight(served, "supply", "--vintage", str(year), "--by", "vintage")
        assert per_year["rows"][0]["issued"] == sum(int(r["allocated"]) for r in of_year)
    flows = oversight(served, "flows")
    assert sum(r["transfers"] for r in flows["rows"]) == 14


def test_reconciliation_of_the_imported_federation_is_clean(served: Path) -> None:
    done = regfed("reconcile", "--federation", str(served), "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    assert run["status"] == "completed"
    assert run["result"]["discrepancies"] == []
    assert run["registries"] == STATES


def test_an_infeasible_subset_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    folder = tmp_path / "never"
    done = regfed("import", "epa-arp", str(DATA), "--dir", str(folder), "--years", "2000-2005")
    assert done.returncode == 2
    assert "INFEASIBLE_SUBSET: in 2000" in done.stderr and "1,644,079 short" in done.stderr
    assert not folder.exists()
    as_json = regfed(
        "import", "epa-arp", str(DATA), "--dir", str(folder), "--states", "MD,PA", "--json"
    )
    assert as_json.returncode == 2
    error = json.loads(as_json.stdout)["error"]
    assert error["code"] == "INFEASIBLE_SUBSET" and error["short"] > 0
    assert not folder.exists()
