"""The `regfed` command as an operator uses it: readable output, --json for scripts, typed
errors with a non-zero exit, and the README's main job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def regfed(*args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "regfed.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == expect, (result.stdout, result.stderr)
    return result


def regfed_json(*args: str, expect: int = 0) -> Any:
    return json.loads(regfed(*args, "--json", expect=expect).stdout)


def test_operator_commands_round_trip(tmp_path: Path) -> None:
    db = ["--db", str(tmp_path / "ny.db")]
    init = regfed_json("ledger", "init", *db, "--registry", "NY")
    allocation = next(a["account"] for a in init["accounts"] if a["purpose"] == "allocation")
    acme = regfed_json(
        "ledger",
        "open-account",
        *db,
        "--type",
        "general",
        "--name",
        "Acme",
        "--rep",
        "alice",
        "--rep",
        "bob:alternate",
    )["detail"]["account"]
    plant = regfed_json(
        "ledger",
        "open-account",
        *db,
        "--type",
        "compliance",
        "--name",
        "Plant",
        "--source",
        "ORIS-1",
        "--rep",
        "carol",
    )["detail"]["account"]
    issued = regfed_json(
        "ledger",
        "issue",
        *db,
        "--program",
        "RGGI",
        "--vintage",
        "2025",
        "--quantity",
        "1000000",
        "--op-id",
        "issue-1",
    )
    assert issued["detail"]["block"] == {
        "issuer": "NY",
        "program": "RGGI",
        "unit_type": "allowance",
        "vintage": 2025,
        "start": 1,
        "end": 1000000,
    }
    again = regfed_json(
        "ledger",
        "issue",
        *db,
        "--program",
        "RGGI",
        "--vintage",
        "2025",
        "--quantity",
        "1000000",
        "--op-id",
        "issue-1",
    )
    assert again["replayed"] and again["seq"] == issued["seq"]
    regfed_json("ledger", "transfer", *db, "--from", allocation, "--to", acme, "--quantity", "500")
    moved = regfed_json(
        "ledger",
        "transfer",
        *db,
        "--from",
        acme,
        "--to",
        plant,
        "--as",
        "bob",
        "--serials",
        "NY/RGGI/allowance/2025:100-199",
    )
    assert moved["movements"][0]["start"] == 100 and moved["movements"][0]["to"] == plant

    refusal = regfed_json(
        "ledger",
        "transfer",
        *db,
        "--from",
        acme,
        "--to",
        plant,
        "--as",
        "mallory",
        "--quantity",
        "1",
        expect=2,
    )
    assert refusal == {"ok": False, "error": refusal["error"]}
    assert refusal["error"]["code"] == "NOT_AUTHORIZED"
    human = regfed(
        "ledger",
        "transfer",
        *db,
        "--from",
        acme,
        "--to",
        plant[:-1] + "0",
        "--as",
        "alice",
        "--quantity",
        "1",
        expect=2,
    )
    assert "ACCOUNT_NUMBER_CHECK_FAILED" in human.stderr and "what to do" in human.stderr

    holdings = regfed_json("ledger", "holdings", *db, "--account", plant, "--as", "carol")
    assert holdings["totals"][0]["quantity"] == 100
    statement = regfed_json("ledger", "statement", *db, "--account", acme)
    assert [e["kind"] for e in statement["entries"]] == ["open-account", "allocation", "transfer"]
    regfed_json(
        "ledger",
        "emissions",
        *db,
        "--account",
        plant,
        "--program",
        "RGGI",
        "--period",
        "2024-2026",
        "--tons",
        "150",
    )
    deduction = regfed_json("ledger", "deduct", *db, "--program", "RGGI", "--period", "2024-2026")
    assert (deduction["detail"]["deducted"], deduction["detail"]["shortfall"]) == (100, 50)
    assert regfed_json("ledger", "verify", *db)["ok"] is True
    assert "ledger verified" in regfed("ledger", "verify", *db).stdout
    totals = regfed_json("ledger", "totals", *db)["rows"]
    assert totals[0]["issued"] == 1_000_000 and totals[0]["surrendered"] == 100


def test_commands_without_a_database_say_what_to_do(tmp_path: Path) -> None:
    result = regfed("ledger", "totals", "--db", str(tmp_path / "new.db"), expect=2)
    assert "regfed ledger init" in result.stderr


def test_program_rules_are_configurable(tmp_path: Path) -> None:
    rules = tmp_path / "programs.json"
    rules.write_text(
        json.dumps(
            [{"code": "RGGI", "name": "RGGI, stricter", "compliance_account_may_send": False}]
        )
    )
    db = ["--db", str(tmp_path / "pa.db")]
    init = regfed_json("ledger", "init", *db, "--registry", "PA")
    allocation = next(a["account"] for a in init["accounts"] if a["purpose"] == "allocation")
    plant = regfed_json(
        "ledger",
        "open-account",
        *db,
        "--type",
        "compliance",
        "--name",
        "P",
        "--source",
        "S1",
        "--rep",
        "carol",
    )["detail"]["account"]
    acme = regfed_json(
        "ledger", "open-account", *db, "--type", "general", "--name", "A", "--rep", "alice"
    )["detail"]["account"]
    regfed_json("ledger", "issue", *db, "--program", "RGGI", "--vintage", "2025", "--quantity", "9")
    regfed_json("ledger", "transfer", *db, "--from", allocation, "--to", plant, "--quantity", "5")
    send = (
        "ledger",
        "transfer",
        *db,
        "--from",
        plant,
        "--to",
        acme,
        "--as",
        "carol",
        "--quantity",
        "1",
    )
    regfed_json(*send)  # built-in RGGI rules: compliance accounts may send
    refusal = regfed_json(*send, "--programs", str(rules), expect=2)
    assert refusal["error"]["code"] == "PROGRAM_FORBIDS_SEND"
    listed = regfed_json("ledger", "programs", *db, "--programs", str(rules))["programs"]
    assert {p["code"]: p["compliance_account_may_send"] for p in listed}["RGGI"] is False


def test_figures_only_in_digits_0_to_9_and_nothing_changes(tmp_path: Path) -> None:
    """int() takes Arabic-Indic digits and underscores; a typed registry figure may not."""
    db = ["--db", str(tmp_path / "ny.db")]
    regfed_json("ledger", "init", *db, "--registry", "NY")
    issue = ["ledger", "issue", *db, "--program", "RGGI", "--vintage", "2025", "--quantity"]
    for figure in ("١٠٠", "1_000", "1e3", "٢"):
        refused = regfed(*issue, figure, expect=2)
        assert "not a whole number written in digits 0-9" in refused.stderr
    refused = regfed(
        "ledger",
        "transfer",
        *db,
        "--from",
        "NY-1",
        "--to",
        "NY-2",
        "--serials",
        "NY/RGGI/allowance/2025:١-٥",
        expect=2,
    )
    assert "INVALID_ARGUMENT" in refused.stderr
    assert regfed_json("ledger", "totals", *db)["rows"] == []
    assert regfed_json(*issue, "100")["detail"]["block"]["end"] == 100


def test_reading_a_registry_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    for command in (["compliance"], ["accounts"], ["verify"]):
        done = regfed("ledger", *command, "--db", f"sqlite:///{missing}", expect=2)
        assert "there is no registry database at" in done.stderr, command
        assert not missing.exists(), command
