"""``regfed scenario run``, as a user runs it: every shipped scenario passes through the real CLI
(real node processes over mutual TLS, crashes by SIGKILL), and a scenario whose expectation is
wrong, whose armed crash never fires, or that restarts a live node fails with a clear outcome."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from conftest import POSTGRES_URL, require_postgres

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def scenario(path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = subprocess.run(
        [sys.executable, "-m", "regfed.cli", "scenario", "run", str(path), "--json", *extra],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


SHIPPED = sorted([*SCENARIOS.glob("*.json"), *SCENARIOS.glob("*.yaml")])


@pytest.mark.parametrize("file", SHIPPED, ids=lambda f: f.name)
def test_every_shipped_scenario_passes(file: Path) -> None:
    """The conformance suite, and the gateway's crash matrix: scenarios 10-14 arm every crash
    point on both sides (tests/unit/test_scenario_format.py checks that they do)."""
    code, outcome = scenario(file)
    assert (code, outcome["ok"]) == (0, True), json.dumps(outcome["steps"], indent=1)
    assert [s["index"] for s in outcome["steps"]] == list(range(len(outcome["steps"])))
    for step in outcome["steps"]:
        if step["op"] == "transfer":
            assert step["status"] in {"completed", "rejected", "terminated", "cancelled"}
        if step["op"] == "crash":  # it fired (the node's own marker), after its arming
            assert step["fired_during_step"] > step["index"], step
    for blocks in outcome["holdings"].values():
        for block in blocks:
            assert isinstance(block["start"], int) and isinstance(block["end"], int)
            assert block["state"] in {"held", "escrowed", "surrendered", "retired"}
    assert outcome["invariants"] and all(c["ok"] for c in outcome["invariants"])


def test_the_tour_moves_and_settles_what_it_says(tmp_path: Path) -> None:
    _code, outcome = scenario(SCENARIOS / "01-tour.json")
    steps = outcome["steps"]
    crashed = steps[6]  # the transfer NY died accepting: settled after the restart
    assert (crashed["status"], crashed["outcome"]) == ("completed", "ok")
    assert steps[9]["deducted"] == 1000 and steps[9]["shortfall"] == 0
    held = sum(
        b["end"] - b["start"] + 1 for b in outcome["holdings"]["plant"] if b["state"] == "held"
    )
    assert held == 1200 + 100 - 1000  # received, less what compliance took
    surrendered = [b for b in outcome["holdings"]["plant"] if b["state"] == "surrendered"]
    assert sum(b["end"] - b["start"] + 1 for b in surrendered) == 1000


def write(tmp_path: Path, steps: list[dict[str, Any]]) -> Path:
    file = tmp_path / "scenario.json"
    file.write_text(
        json.dumps(
            {
                "registries": ["PA", "NY"],
                "accounts": {
                    "alloc": {"registry": "PA", "type": "state"},
                    "buyer": {"registry": "NY", "type": "general"},
                },
                "steps": [
                    {
                        "op": "issue",
                        "registry": "PA",
                        "vintage": 2025,
                        "quantity": 10,
                        "to": "alloc",
                    },
                    *steps,
                ],
            }
        )
    )
    return file


def test_an_unmet_expectation_fails_the_run(tmp_path: Path) -> None:
    code, outcome = scenario(
        write(tmp_path, [{"op": "transfer", "from": "alloc", "to": "buyer", "quantity": 11}])
    )
    assert code != 0 and outcome["ok"] is False
    assert outcome["steps"][1]["outcome"].startswith("failed:")
    assert outcome["steps"][1]["error"] == "INSUFFICIENT_HOLDINGS"
    assert all(c["ok"] for c in outcome["invariants"])  # a refusal changed nothing wrong


def test_a_crash_that_never_fires_and_a_restart_of_a_live_node_fail_the_run(
    tmp_path: Path,
) -> None:
    code, outcome = scenario(
        write(
            tmp_path,
            [
                {"op": "restart", "registry": "NY"},
                {"op": "crash", "registry": "NY", "at": "destination.credit.after-commit"},
            ],
        )
    )
    assert code != 0 and outcome["ok"] is False
    assert "is running" in outcome["steps"][1]["outcome"]
    assert "never fired" in outcome["steps"][2]["outcome"]
    assert "fired_during_step" not in outcome["steps"][2]


def test_a_step_on_a_dead_registry_fails_clearly(tmp_path: Path) -> None:
    code, outcome = scenario(
        write(
            tmp_path,
            [
                {"op": "crash", "registry": "PA", "at": "source.escrow.in-transaction"},
                {"op": "transfer", "from": "alloc", "to": "buyer", "quantity": 2},
                {"op": "issue", "registry": "PA", "vintage": 2025, "quantity": 1, "to": "alloc"},
                {"op": "restart", "registry": "PA"},
            ],
        )
    )
    steps = outcome["steps"]
    assert "registry PA is down" in steps[3]["outcome"]
    # The interrupted proposal was asked again by its request id after the restart: it moved
    # once (the crash rolled the escrow back, so the retry is the first proposal).
    assert (steps[2]["status"], steps[2]["outcome"]) == ("completed", "ok")
    assert code != 0 and all(c["ok"] for c in outcome["invariants"])


def test_transfers_interrupted_on_two_registries_settle_after_both_restarts(
    tmp_path: Path,
) -> None:
    file = tmp_path / "two.json"
    file.write_text(
        json.dumps(
            {
                "registries": ["PA", "NY"],
                "accounts": {
                    "pa": {"registry": "PA", "type": "state"},
                    "ny": {"registry": "NY", "type": "state"},
                },
                "steps": [
                    {"op": "issue", "registry": "PA", "vintage": 2025, "quantity": 10, "to": "pa"},
                    {"op": "issue", "registry": "NY", "vintage": 2025, "quantity": 10, "to": "ny"},
                    {"op": "crash", "registry": "NY", "at": "destination.credit.in-transaction"},
                    {"op": "transfer", "from": "pa", "to": "ny", "quantity": 3},
                    {"op": "crash", "registry": "PA", "at": "source.escrow.after-commit"},
                    {"op": "transfer", "from": "pa", "to": "ny", "quantity": 4},
                    {"op": "restart", "registry": "PA"},
                    {"op": "restart", "registry": "NY"},
                ],
            }
        )
    )
    code, outcome = scenario(file)
    steps = outcome["steps"]
    assert (code, outcome["ok"]) == (0, True), json.dumps(steps, indent=1)
    assert [s["index"] for s in steps] == list(range(8))  # each step reported once
    assert [steps[i]["status"] for i in (3, 5)] == ["completed", "completed"]
    received = [b for b in outcome["holdings"]["ny"] if b["issuer"] == "PA"]
    assert sum(b["end"] - b["start"] + 1 for b in received) == 7  # each moved exactly once


def test_a_scenario_runs_on_postgresql_and_drops_its_databases(tmp_path: Path) -> None:
    require_postgres()
    server = make_url(POSTGRES_URL).set(database="postgres")
    code, outcome = scenario(
        SCENARIOS / "01-tour.json", "--db", server.render_as_string(hide_password=False)
    )
    assert (code, outcome["ok"]) == (0, True), json.dumps(outcome, indent=1)
    engine = create_engine(server.set(drivername="postgresql+psycopg"))
    try:
        with engine.connect() as connection:
            left = connection.execute(
                text("SELECT datname FROM pg_database WHERE datname LIKE 'regfed_scenario_%'")
            ).all()
    finally:
        engine.dispose()
    assert left == []


def test_a_bad_database_choice_is_refused_before_anything_starts(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "regfed.cli",
            "scenario",
            "run",
            str(SCENARIOS / "01-tour.json"),
            "--db",
            "mysql://somewhere/",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "give sqlite or a PostgreSQL server URL" in result.stderr


def test_a_registry_left_dead_fails_the_run_and_its_holdings_are_still_read(
    tmp_path: Path,
) -> None:
    code, outcome = scenario(
        write(
            tmp_path,
            [
                {"op": "crash", "registry": "PA", "at": "source.escrow.in-transaction"},
                {"op": "transfer", "from": "alloc", "to": "buyer", "quantity": 2},
                {"op": "transfer", "from": "alloc", "to": "buyer", "quantity": 1, "wait": False},
                {"op": "cancel", "transfer": 3, "as": "bob"},
            ],
        )
    )
    steps = outcome["steps"]
    assert code != 0 and outcome["ok"] is False
    assert steps[1]["fired_during_step"] == 2
    assert steps[2]["outcome"] == "failed: registry PA was never restarted"
    checks = {c["name"]: c for c in outcome["invariants"]}
    assert checks["registries-up"]["ok"] is False
    assert "PA is down" in checks["registries-up"]["problems"][0]
    assert "alloc" in outcome["holdings"]  # read from PA's database although PA is down
    assert "registry PA is down" in steps[3]["outcome"]
    assert "registry PA is down" in steps[4]["outcome"]  # bob got a certificate


def test_a_refusal_code_is_checked_whatever_the_expectation(tmp_path: Path) -> None:
    code, outcome = scenario(
        write(
            tmp_path,
            [
                {
                    "op": "transfer",
                    "from": "alloc",
                    "to": "buyer",
                    "quantity": 11,
                    "expect": "any",
                    "error": "ACCOUNT_CLOSED",
                },
                {
                    "op": "transfer",
                    "from": "alloc",
                    "to": "buyer",
                    "quantity": 11,
                    "expect": "any",
                    "error": "INSUFFICIENT_HOLDINGS",
                },
            ],
        )
    )
    assert code != 0
    assert outcome["steps"][1]["outcome"].startswith("failed:")
    assert outcome["steps"][2]["outcome"] == "ok"


def test_renewable_credits_cross_a_state_line_and_keep_their_provenance() -> None:
    _code, outcome = scenario(SCENARIOS / "06-renewable-credits-across-states.yaml")
    steps = outcome["steps"]
    assert steps[11]["issued"] == 41_250  # approving the verification report issued them
    in_pa, in_nj = steps[13]["provenance"], steps[16]["provenance"]
    assert in_nj == in_pa  # the record travelled with the serials, unchanged
    assert (in_nj["project"], in_nj["verifier"]) == ("PA-P0001", "VER-GREEN")
    assert in_nj["report_sha256"] == steps[8]["sha256"]
    assert in_nj["issuance"]["issuer"] == "PA" and in_nj["issuance"]["unit_type"] == "erc"
    # New York's own CPPR rules take ERCs issued in NY and NJ only: its node rejected the
    # proposal, and the trader in PA reads its words; the 1,000 ERCs came back.
    border = steps[14]
    assert (border["status"], border["error"]) == ("rejected", "UNIT_NOT_ACCEPTED")
    assert border["reason"] == (
        "registry NY under CPPR does not accept units issued by PA (only NY, NJ)"
    )
    held = [b for b in outcome["holdings"]["ridge"] if b["state"] == "held"]
    assert sum(b["end"] - b["start"] + 1 for b in held) == 41_250 - 5000
    assert outcome["holdings"]["ravenswood"] == []
    assert (steps[18]["deducted"], steps[18]["shortfall"]) == (5000, 5000)
    surrendered = [b for b in outcome["holdings"]["linden"] if b["state"] == "surrendered"]
    assert sum(b["end"] - b["start"] + 1 for b in surrendered) == 5000
    assert {b["unit_type"] for b in surrendered} == {"erc"}
