"""Reconciliation over the network: real registry nodes and a real oversight node over mTLS.

Every discrepancy kind is injected by tampering one node's database directly, then found and
named by `regfed reconcile`; the nodes fetch their verdicts and quarantine exactly the disputed
serials, a registry that cannot be reached makes a run incomplete and releases nothing, and a
clean run releases. A transfer settling between two registries' reads is explained, in both
orders; a run during a stream of concurrent transfers, with clocks offset by +2 s and -2 s,
finds nothing; the nightly window missed while the node was down runs once at its next start.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from federation_support import fund, open_account, running_federation

from regfed.certs.identity import Role
from regfed.local import Federation, LocalFederation, RegistryClient, TransferFailed
from regfed.local.oversight import OversightClient

pytestmark = pytest.mark.e2e

FAST: dict[str, Any] = {"verdict_poll": 0.3}


def db(federation: Federation, code: str) -> Path:
    return Path(federation.node_config(code).database.removeprefix("sqlite:///"))


def sql(
    federation: Federation, code: str, statement: str, params: tuple[Any, ...] = ()
) -> list[Any]:
    with contextlib.closing(sqlite3.connect(db(federation, code))) as conn, conn:
        return conn.execute(statement, params).fetchall()


def reconcile(federation: Federation) -> dict[str, Any]:
    with OversightClient(federation, timeout=60.0) as client:
        return client.reconcile()


def findings(document: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [d for d in document["result"]["discrepancies"] if d["kind"] == kind]


def quarantined(federation: Federation, code: str) -> list[tuple[int, int]]:
    return [
        (a, z)
        for a, z in sql(
            federation,
            code,
            "SELECT start_serial, end_serial FROM blocks WHERE quarantined ORDER BY start_serial",
        )
    ]


def applied(federation: Federation, code: str) -> int:
    """The sequence of the last verdict the registry applied (0: none)."""
    rows = sql(
        federation,
        code,
        "SELECT value FROM registry_meta WHERE key = 'reconciliation.last_verdict_sequence'",
    )
    return int(rows[0][0]) if rows else 0


def has_applied(federation: Federation, code: str, sequence: int) -> bool:
    return applied(federation, code) == sequence


def eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.1)


def send(federation: Federation, source: str, to: str, **selection: Any) -> dict[str, Any]:
    """trader1's transfer from its account at ``source``, followed until it settles."""
    code = source.split("-", maxsplit=1)[0]
    with RegistryClient(federation, code) as client:
        proposed = client.propose(source, to, wait_s=30.0, **selection)
        settled = client.wait_settled(proposed["transfer_id"])
    assert settled["settled"], settled
    return settled


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[tuple[Federation, LocalFederation, dict[str, str]]]:
    with running_federation(tmp_path, ["PA", "NY", "NJ"], verdict_poll=0.3) as (federation, local):
        accounts = {code: open_account(federation, code, "trader1") for code in ("PA", "NY", "NJ")}
        fund(federation, "PA", accounts["PA"], 1_000)  # PA serials 1-1000
        fund(federation, "NY", accounts["NY"], 500, vintage=2024)
        yield federation, local, accounts


INSERT = (
    "INSERT INTO blocks (issuer, program, unit_type, vintage, start_serial, end_serial, "
    "account_id, state, transfer_id, quarantined, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 1)"
)


def account_id(federation: Federation, code: str, number: str) -> int:
    return int(sql(federation, code, "SELECT id FROM accounts WHERE number = ?", (number,))[0][0])


def test_each_kind_is_named_its_serials_quarantined_and_a_clean_run_releases(
    federation: tuple[Federation, LocalFederation, dict[str, str]],
) -> None:
    fed, local, acc = federation
    moved = send(fed, acc["PA"], acc["NY"], quantity=100, vintage=2025)
    tid, block = moved["transfer_id"], moved["blocks"][0]
    cls = (block["issuer"], block["program"], block["unit_type"], block["vintage"])
    first = reconcile(fed)
    assert (first["status"], first["result"]["discrepancies"]) == ("completed", []), first

    [(lo, hi)] = sql(
        fed,
        "PA",
        "SELECT start_serial, end_serial FROM blocks WHERE account_id = ?",
        (account_id(fed, "PA", acc["PA"]),),
    )
    ny, nj = account_id(fed, "NY", acc["NY"]), account_id(fed, "NJ", acc["NJ"])
    alloc = sql(fed, "PA", "SELECT id FROM accounts WHERE type = 'state' ORDER BY id LIMIT 1")[0][0]
    [(created_at,)] = sql(
        fed, "NY", "SELECT created_at FROM transfers WHERE transfer_id = ?", (tid,)
    )
    long_ago = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    far = 10**6

    # name: (registry, tamper, undo, (kind, registries, start, end))
    cases: dict[
        str,
        tuple[
            str,
            list[tuple[str, tuple[Any, ...]]],
            list[tuple[str, tuple[Any, ...]]],
            tuple[str, list[str], int | None, int | None],
        ],
    ] = {
        "copied into another registry": (
            "NY",
            [(INSERT, (*cls, lo, lo + 4, ny, "held", None))],
            [("DELETE FROM blocks WHERE issuer = 'PA' AND start_serial = ?", (lo,))],
            ("SERIAL_IN_TWO_PLACES", ["NY", "PA"], lo, lo + 4),
        ),
        "held twice in one registry": (
            "PA",
            [(INSERT, (*cls, hi - 50, hi - 46, alloc, "held", None))],
            [("DELETE FROM blocks WHERE account_id = ? AND start_serial = ?", (alloc, hi - 50))],
            ("SERIAL_TWICE_IN_REGISTRY", ["PA"], hi - 50, hi - 46),
        ),
        "a unit its issuer never issued": (
            "NJ",
            [(INSERT, (*cls, far, far + 9, nj, "held", None))],
            [("DELETE FROM blocks WHERE start_serial = ?", (far,))],
            ("UNIT_WITHOUT_ISSUER", ["NJ"], far, far + 9),
        ),
        "issued units held nowhere": (
            "PA",
            [("UPDATE blocks SET end_serial = end_serial - 5 WHERE end_serial = ?", (hi,))],
            [("UPDATE blocks SET end_serial = ? WHERE end_serial = ?", (hi, hi - 5))],
            ("UNITS_HELD_NOWHERE", ["PA"], hi - 4, hi),
        ),
        "in transit for two days": (
            "NY",
            [
                (
                    "UPDATE blocks SET state = 'incoming', transfer_id = ? "
                    "WHERE issuer = 'PA' AND start_serial = ?",
                    (tid, block["start"]),
                ),
                (
                    "UPDATE transfers SET status = 'accepted', settled = 0, created_at = ? "
                    "WHERE transfer_id = ?",
                    (long_ago, tid),
                ),
            ],
            [
                (
                    "UPDATE blocks SET state = 'held', transfer_id = NULL "
                    "WHERE issuer = 'PA' AND start_serial = ?",
                    (block["start"],),
                ),
                (
                    "UPDATE transfers SET status = 'completed', settled = 1, created_at = ? "
                    "WHERE transfer_id = ?",
                    (created_at, tid),
                ),
            ],
            ("IN_TRANSIT_TOO_LONG", ["NY", "PA"], block["start"], block["end"]),
        ),
        "a credit its source never completed": (
            "PA",
            [("UPDATE transfers SET status = 'cancelled' WHERE transfer_id = ?", (tid,))],
            [("UPDATE transfers SET status = 'completed' WHERE transfer_id = ?", (tid,))],
            ("TRANSFER_LOGS_DISAGREE", ["NY", "PA"], None, None),
        ),
    }
    last_inconsistent = ""
    for name, (code, tamper, undo, (kind, registries, start, end)) in cases.items():
        for statement, params in tamper:
            sql(fed, code, statement, params)
        found = reconcile(fed)
        assert found["status"] == "inconsistent", (name, found["status"])
        named = [
            d
            for d in findings(found, kind)
            if d["registries"] == registries and (d["start"], d["end"]) == (start, end)
        ]
        assert named, (name, found["result"]["discrepancies"])
        if kind == "TRANSFER_LOGS_DISAGREE":
            assert named[0]["transfer_ids"] == [tid]
        elif kind == "UNITS_HELD_NOWHERE":
            # Check 3's quantity statement for the class: five units short.
            [supply] = findings(found, "SUPPLY_NOT_CONSERVED")
            assert (supply["issuer"], supply["vintage"]) == ("PA", 2025)
            assert supply["details"]["issued"] - supply["details"]["accounted"] == 5
        else:
            assert named[0]["issuer"] == "PA" and named[0]["vintage"] == 2025
            # The registry's books (its journal) disagree with the blocks written behind them.
            assert any(d["registries"] == [code] for d in findings(found, "TOTALS_MISMATCH")), name
        # Each node fetches this run's verdict itself (before the tamper is undone).
        for registry in ("PA", "NY", "NJ"):
            eventually(
                functools.partial(has_applied, fed, registry, int(found["sequence"])),
                f"{registry} applies the verdict of {name!r}",
            )
        if name == "copied into another registry":
            # Each node quarantines exactly the disputed serials.
            eventually(lambda: (lo, lo + 4) in quarantined(fed, "PA"), "PA quarantines")
            eventually(lambda: (lo, lo + 4) in quarantined(fed, "NY"), "NY quarantines")
            assert quarantined(fed, "PA") == [(lo, lo + 4)]
            with RegistryClient(fed, "PA") as pa:
                refused = pa.propose(
                    acc["PA"], acc["NJ"], blocks=[{**block, "start": lo, "end": lo + 2}]
                )
            assert (refused["status"], refused["error_code"]) == ("rejected", "UNITS_QUARANTINED")
            send(fed, acc["PA"], acc["NJ"], quantity=10, vintage=2025)  # the rest still moves
        for statement, params in undo:
            sql(fed, code, statement, params)
        last_inconsistent = found["run_id"]

    # A registry that cannot be reached: incomplete, naming it; nothing is released.
    held_back = {code: quarantined(fed, code) for code in ("PA", "NY")}
    assert (lo, lo + 4) in held_back["PA"]
    # Held twice inside PA: the ledger will not split rows that overlap each other, so the
    # whole row holding the duplicated serials is quarantined.
    assert any(a <= hi - 50 and hi - 46 <= z for a, z in held_back["PA"])
    local.kill("NJ")
    partial = reconcile(fed)
    assert partial["status"] == "incomplete"
    assert [m["registry"] for m in partial["missing"]] == ["NJ"]
    time.sleep(1.0)  # several verdict polls
    assert {code: quarantined(fed, code) for code in ("PA", "NY")} == held_back
    local.start(["NJ"])

    # An administrator's recorded resolution, then a clean run: completed after intervention.
    with OversightClient(fed) as oversight:
        resolution = oversight.resolve(last_inconsistent, "pa-ops", "NY's copied rows deleted")
    assert resolution["run_id"] == last_inconsistent
    clean = reconcile(fed)
    assert clean["status"] == "completed_after_intervention", clean["result"]["discrepancies"]
    assert clean["follows_resolution_of"] == last_inconsistent
    eventually(lambda: quarantined(fed, "PA") == [] and quarantined(fed, "NY") == [], "released")
    send(fed, acc["PA"], acc["NJ"], blocks=[{**block, "start": lo, "end": lo + 2}])

    # Past runs, listed and shown later, with the CLI (signatures verified on the way).
    listed = cli(fed, "reconcile", "list", "--json")
    statuses = [r["status"] for r in listed["runs"]]
    assert statuses[0] == "completed_after_intervention" and statuses[1] == "incomplete"
    assert statuses.count("inconsistent") == len(cases)
    shown = cli(fed, "reconcile", "show", last_inconsistent, "--json")
    assert shown["status"] == "inconsistent" and shown["run_id"] == last_inconsistent
    # A registry's administrator may read runs; a trader may not.
    with OversightClient(fed, Role.ADMINISTRATOR, "PA") as admin:
        assert admin.show("latest")["run_id"] == clean["run_id"]
        with pytest.raises(TransferFailed) as refused_admin:
            admin.reconcile()
    assert refused_admin.value.code == "WRONG_ROLE"
    with OversightClient(fed, Role.TRADER, "PA") as trader, pytest.raises(TransferFailed) as no:
        trader.runs()
    assert no.value.code == "WRONG_ROLE"


def cli(federation: Federation, *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "regfed.cli", *args, "--federation", str(federation.file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return dict(json.loads(result.stdout))


@pytest.mark.parametrize(
    ("source", "destination", "explained_kind"),
    [
        # PA read first (still holding), NY after the credit: held twice.
        ("PA", "NY", "SERIAL_IN_TWO_PLACES"),
        # PA read first (not yet arrived), NY after the debit: held nowhere.
        ("NY", "PA", "UNITS_HELD_NOWHERE"),
    ],
)
def test_a_transfer_settling_between_two_reads_is_explained(
    tmp_path: Path, source: str, destination: str, explained_kind: str
) -> None:
    pause = tmp_path / "pause"
    pause.mkdir()
    env = {"REGFED_TEST_CRASH_HOOKS": "1", "REGFED_TEST_RECONCILE_PAUSE": str(pause)}
    with running_federation(tmp_path / "fed", ["PA", "NY"], env=env) as (fed, _local):
        acc = {code: open_account(fed, code, "trader1") for code in ("PA", "NY")}
        fund(fed, source, acc[source], 100)
        (pause / "hold-PA").touch()  # the run reads PA, then waits
        outcome: dict[str, Any] = {}
        runner = threading.Thread(target=lambda: outcome.update(reconcile(fed)))
        runner.start()
        eventually((pause / "read-PA").exists, "the run read PA")
        with pytest.raises(TransferFailed) as busy:  # one run at a time
            reconcile(fed)
        assert busy.value.code == "RUN_IN_PROGRESS"
        moved = send(fed, acc[source], acc[destination], quantity=40)
        (pause / "go-PA").touch()
        runner.join(60)
        assert outcome["status"] == "completed", outcome["result"]["discrepancies"]
        explained = outcome["result"]["explained"]
        kinds = {e["kind"] for e in explained}
        assert explained_kind in kinds and "SUPPLY_NOT_CONSERVED" in kinds, explained
        ours = [e for e in explained if e["kind"] == explained_kind]
        assert moved["transfer_id"] in ours[0]["explanation"]
        assert (ours[0]["start"], ours[0]["end"]) == (
            moved["blocks"][0]["start"],
            moved["blocks"][0]["end"],
        )
        # The next run, with nothing moving, has nothing to explain.
        again = reconcile(fed)
        assert (again["status"], again["result"]["explained"]) == ("completed", [])


def test_a_run_during_concurrent_transfers_with_skewed_clocks_finds_nothing(
    tmp_path: Path,
) -> None:
    codes = ["PA", "NY", "NJ"]
    with running_federation(tmp_path, codes) as (fed, local):
        acc = {code: open_account(fed, code, "trader1") for code in codes}
        # Each registry sends only its own vintage, so no serial moves twice between two reads.
        vintages = {"PA": 2025, "NY": 2024, "NJ": 2023}
        for code in codes:
            fund(fed, code, acc[code], 5_000, vintage=vintages[code])
        # PA's clock 2 s ahead, NY's 2 s behind (the test-only clock offset), NJ's true.
        for code, offset in (("PA", "2"), ("NY", "-2")):
            clock = tmp_path / f"clock-{code}"
            clock.write_text(offset)
            local.kill(code)
            local.start(
                [code], env={"REGFED_TEST_CRASH_HOOKS": "1", "REGFED_TEST_CLOCK_FILE": str(clock)}
            )
        stop = threading.Event()
        sent: list[str] = []
        errors: list[BaseException] = []

        def trade(source: str, destination: str) -> None:
            try:
                with RegistryClient(fed, source) as client:
                    while not stop.is_set():
                        t = client.propose(
                            acc[source], acc[destination], quantity=3, vintage=vintages[source]
                        )
                        sent.append(t["transfer_id"])
            except BaseException as error:  # reported below, not lost in the thread
                errors.append(error)

        pairs = [("PA", "NY"), ("NY", "NJ"), ("NJ", "PA"), ("PA", "NJ")]
        traders = [threading.Thread(target=trade, args=pair) for pair in pairs]
        for t in traders:
            t.start()
        try:
            runs = []
            for _ in range(3):
                time.sleep(1.0)
                runs.append(reconcile(fed))
        finally:
            stop.set()
            for t in traders:
                t.join(30)
        assert not errors, errors
        assert len(sent) > 20, "the transfers did not flow during the runs"
        for run in runs:
            assert run["status"] == "completed", run["result"]["discrepancies"]
            assert run["result"]["discrepancies"] == []
        # Transfers were in flight during the runs: the runs saw some of them in transit.
        assert any(run["result"]["in_transit"] or run["result"]["explained"] for run in runs)


def test_the_missed_nightly_window_runs_once_at_start_and_not_again_after_a_restart(
    tmp_path: Path,
) -> None:
    # Midnight UTC has passed today whenever this runs: the window was missed while down.
    nightly = {"reconcile_nightly": True, "reconcile_at": "00:00", "reconcile_timezone": "UTC"}
    with running_federation(tmp_path, ["PA"], oversight_settings=nightly) as (fed, local):

        def runs() -> list[dict[str, Any]]:
            with OversightClient(fed) as client:
                return client.runs()

        def scheduled() -> list[dict[str, Any]]:
            return [r for r in runs() if r["trigger"] == "scheduled"]

        eventually(lambda: [r["status"] for r in scheduled()] == ["completed"], "catch-up run")
        today = datetime.now(UTC).date().isoformat()
        assert scheduled()[0]["scheduled_for"] == today
        reconcile(fed)  # on demand: does not count against the nightly run
        local.stop()
        local.start()
        time.sleep(2.0)
        assert len(scheduled()) == 1
        assert [r["trigger"] for r in runs()] == ["on_demand", "scheduled"]

        # On the oversight host, from its own file (its certificate, its listen address).
        config = fed.oversight_config()
        keys = ("code", "listen", "ca", "certificate", "key", "signing_key", "directory")
        toml = tmp_path / "oversight.toml"
        lines = [f'{k} = "{getattr(config, k)}"' for k in keys]
        toml.write_text("\n".join([*lines, f'database = "{config.database}"']) + "\n")
        result = subprocess.run(
            [sys.executable, "-m", "regfed.cli", "reconcile", "--config", str(toml), "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["status"] == "completed"
        assert len(runs()) == 3
