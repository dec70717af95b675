"""``regfed credits`` and the rate-based ``regfed ledger`` options, as an operator runs them:
a renewable project to issued ERCs, a tampered document refused on download."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text


def regfed(db: Path, *args: str, ok: bool = True) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "regfed.cli", *args, "--db", str(db), "--json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (result.returncode == 0) == ok, (result.stdout, result.stderr)
    return json.loads(result.stdout) if ok else json.loads(result.stdout or result.stderr)


def test_an_operator_takes_a_project_to_ercs_and_a_plant_surrenders_them(tmp_path: Path) -> None:
    db = tmp_path / "pa.db"
    regfed(db, "ledger", "init", "--registry", "PA")
    sponsor = regfed(db, "ledger", "open-account", "--type", "general", "--name", "Ridge",
                     "--rep", "sol")["detail"]["account"]  # fmt: skip
    plant = regfed(db, "ledger", "open-account", "--type", "compliance", "--name", "Plant",
                   "--source", "ORIS-1", "--rep", "pat")["detail"]["account"]  # fmt: skip
    project = regfed(db, "credits", "register-project", "--sponsor", sponsor, "--name", "Ridge",
                     "--category", "renewable-generation", "--program", "CPPR",
                     "--location", "PA", "--as", "sol")["detail"]["project"]  # fmt: skip
    regfed(db, "credits", "project-status", "--project", project, "--status", "approved")
    regfed(db, "credits", "accredit", "--verifier", "VER-G", "--name", "Green", "--person",
           "vera", "--category", "renewable-generation", "--valid-from", "2020-01-01",
           "--valid-to", "2099-12-31")  # fmt: skip
    shas = {}
    for kind, content, who, extra in (
        ("emv-plan", b"plan", "sol", []),
        ("mv-report", b"metered 700", "sol", ["--period", "2025-01-01..2025-12-31"]),
    ):
        f = tmp_path / kind
        f.write_bytes(content)
        submitted = regfed(db, "credits", "submit", str(f), "--kind", kind, "--subject",
                           project, "--title", kind, "--as", who, *extra)  # fmt: skip
        shas[kind] = submitted["detail"]["sha256"]
        regfed(db, "credits", "review", "--document", shas[kind], "--decision", "approved")
    report = tmp_path / "report"
    report.write_bytes(b"verified 700")
    submitted = regfed(db, "credits", "submit", str(report), "--kind", "verification-report",
                       "--subject", project, "--title", "verification", "--as", "vera",
                       "--period", "2025-01-01..2025-12-31", "--verifier", "VER-G",
                       "--quantity", "700", "--mv-report", shas["mv-report"])  # fmt: skip
    sha = submitted["detail"]["sha256"]
    approved = regfed(db, "credits", "review", "--document", sha, "--decision", "approved")
    assert approved["detail"]["quantity"] == 700
    assert approved["detail"]["issued"]["report_sha256"] == sha
    issuance = regfed(db, "credits", "issuance")["issuance"]
    assert [(r["project"], r["origin"]) for r in issuance] == [(project, "issued")]
    regfed(db, "ledger", "transfer", "--from", sponsor, "--to", plant, "--quantity", "700",
           "--unit-type", "erc", "--as", "sol")  # fmt: skip
    recorded = regfed(db, "ledger", "emissions", "--account", plant, "--program", "CPPR",
                      "--period", "2025", "--co2-lb", "1200000", "--mwh", "800",
                      "--standard", "1500")  # fmt: skip
    assert recorded["detail"]["obligation"] == 0  # 1,200,000 / 1,500 = 800 MWh: at the rate
    regfed(db, "ledger", "emissions", "--account", plant, "--program", "CPPR", "--period",
           "2025", "--co2-lb", "1800000", "--mwh", "800", "--standard", "1500")  # fmt: skip
    deducted = regfed(db, "ledger", "deduct", "--program", "CPPR", "--period", "2025")
    assert (deducted["detail"]["deducted"], deducted["detail"]["shortfall"]) == (400, 0)
    held = regfed(db, "ledger", "holdings", "--account", plant)
    assert all(b["provenance"]["project"] == project for b in held["blocks"])
    # Download checks the bytes; after someone edits them, it refuses.
    out = tmp_path / "copy"
    regfed(db, "credits", "download", "--document", sha, "--out", str(out))
    assert out.read_bytes() == b"verified 700"
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER document_contents_append_only_update"))
        conn.execute(text("UPDATE document_contents SET content = x'00' WHERE sha256 = :s"),
                     {"s": sha})  # fmt: skip
    engine.dispose()
    error = regfed(db, "credits", "download", "--document", sha, "--out", str(out), ok=False)
    assert "DOCUMENT_TAMPERED" in json.dumps(error)
    verify = regfed(db, "ledger", "verify", ok=False)
    assert [c["name"] for c in verify["checks"] if not c["ok"]] == ["documents"]
