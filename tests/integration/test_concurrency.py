"""Real concurrency on both engines: OS processes and threads racing for the same serials.

Each process opens its own registry on the shared database (``open_registry`` is idempotent on
an existing one) and waits at a barrier, so that all of them submit at once. Children report
what happened through a queue: the operation's result, or the typed refusal's ``code``; an
exception that is not a :class:`RegistryError` is reported as ``RAW:<type>`` and fails the test.
Every child is joined with a timeout: a hung child fails the test instead of hanging it.
"""

from __future__ import annotations

import multiprocessing
import queue
import random
import runpy
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text

from conftest import create_postgres_database, drop_postgres_database
from regfed.node import (
    Actor,
    Registry,
    RegistryError,
    Selection,
    SerialRange,
    StatePurpose,
    Transfer,
    UnitBlock,
    UnitClass,
    open_registry,
)
from support import issue, op_id, open_general, person

pytestmark = pytest.mark.integration

PROCESSES = 4
#: Seconds a whole race may take, children's start-up included, before the test fails.
RACE_TIMEOUT = 30.0
#: Seconds a child may wait at the barrier for the others.
BARRIER_TIMEOUT = 20.0
#: The name this file runs under in a child process (see ``race``).
CHILD = "__regfed_race_child__"

Outcome = tuple[str, Any]  # ("ok", result dict) or (error code, message)


# -- what runs in the child processes ----------------------------------------------------------
#
# A spawned child must import its target by module name, and how pytest names this module
# depends on how it was started (``python -m pytest`` or the ``pytest`` script). So the target is
# ``runpy.run_path`` on this very file, run as ``CHILD`` with the child's arguments in its
# globals; the last lines of the file then call ``_transfer_in_child``.


def _selection(spec: dict[str, Any]) -> Selection:
    if "quantity" in spec:
        return Selection(quantity=spec["quantity"])
    return Selection(
        blocks=tuple(
            UnitBlock(UnitClass(*b["unit_class"]), SerialRange(b["start"], b["end"]))
            for b in spec["blocks"]
        )
    )


def _transfer_in_child(
    url: str,
    index: int,
    command: dict[str, Any],
    actor: str,
    barrier: Any,
    results: Any,
) -> None:
    """Open the registry, wait for the others, submit one transfer, report the outcome."""
    try:
        reg = open_registry(url, "PA")
    except BaseException as error:
        barrier.abort()
        results.put((index, f"RAW:{type(error).__name__}", repr(error)))
        return
    try:
        barrier.wait(BARRIER_TIMEOUT)
        transfer = Transfer(
            operation_id=command["operation_id"],
            from_account=command["from_account"],
            to_account=command["to_account"],
            selection=_selection(command["selection"]),
            memo=command.get("memo", ""),
        )
        try:
            result = reg.ledger.transfer(transfer, Actor.person(actor))
        except RegistryError as error:
            results.put((index, error.code, error.message))
        else:
            results.put((index, "ok", result.to_dict()))
    except BaseException as error:
        results.put((index, f"RAW:{type(error).__name__}", repr(error)))
    finally:
        reg.close()


def race(
    url: str, commands: list[dict[str, Any]], actor: str, timeout: float = RACE_TIMEOUT
) -> list[Outcome]:
    """Run one transfer per command, each in its own process, all released at once."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(commands))
    results = ctx.Queue()
    children = [
        ctx.Process(
            target=runpy.run_path,
            args=(__file__,),
            kwargs={
                "run_name": CHILD,
                "init_globals": {"CHILD_ARGS": (url, i, command, actor, barrier, results)},
            },
            name=f"racer-{i}",
            daemon=True,
        )
        for i, command in enumerate(commands)
    ]
    outcomes: dict[int, Outcome] = {}
    deadline = time.monotonic() + timeout
    try:
        for child in children:
            child.start()
        while len(outcomes) < len(children):
            try:
                index, code, payload = results.get(timeout=0.2)
            except queue.Empty:
                silent = [(i, c) for i, c in enumerate(children) if i not in outcomes]
                dead = [f"{c.name} (exit code {c.exitcode})" for _, c in silent if not c.is_alive()]
                if dead and results.empty():  # a dead child's last words are already queued
                    pytest.fail(f"child processes died without an outcome: {dead}")
                if time.monotonic() > deadline:
                    pytest.fail(f"no outcome within {timeout} s from {[c.name for _, c in silent]}")
                continue
            outcomes[index] = (code, payload)
        for child in children:
            child.join(max(deadline - time.monotonic(), 1.0))
            if child.is_alive():
                pytest.fail(f"{child.name} reported but did not exit")
            assert child.exitcode == 0, f"{child.name} exited with {child.exitcode}"
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
                child.join(5)
        results.close()
        results.join_thread()
    raw = {i: o for i, o in outcomes.items() if o[0].startswith("RAW:")}
    assert not raw, f"untyped exceptions escaped the ledger: {raw}"
    return [outcomes[i] for i in range(len(children))]


# -- helpers in the test process --------------------------------------------------------------


def alloc(reg: Registry) -> str:
    return reg.state_account(StatePurpose.ALLOCATION).label


def fund(reg: Registry, account: str, **selection: Any) -> dict[str, Any]:
    result = reg.ledger.transfer(
        Transfer(
            operation_id=op_id("fund"),
            from_account=alloc(reg),
            to_account=account,
            selection=Selection(**selection),
        ),
        reg.ledger.administrator,
    )
    return result.to_dict()


def held_blocks(reg: Registry, account: str) -> list[tuple[tuple[str, str, str, int], int, int]]:
    """The held blocks of an account as (unit class, start, end), in serial order."""
    view = reg.queries.holdings(account, reg.ledger.administrator)
    return sorted(
        (
            (b.block["issuer"], b.block["program"], b.block["unit_type"], b.block["vintage"]),
            b.block["start"],
            b.block["end"],
        )
        for b in view.blocks
        if b.state == "held"
    )


def merged(blocks: list[tuple[tuple[str, str, str, int], int, int]]) -> list[Any]:
    """Join touching ranges of one class (rows may be split differently, serials may not)."""
    out: list[list[Any]] = []
    for uc, start, end in sorted(blocks):
        if out and out[-1][0] == uc and start <= out[-1][2] + 1:
            assert start > out[-1][2], f"serials {uc}:{start}-{end} held twice"
            out[-1][2] = max(out[-1][2], end)
        else:
            out.append([uc, start, end])
    return [tuple(x) for x in out]


def journal_entries_for(reg: Registry, operation_id: str) -> int:
    with reg.engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM journal_entries WHERE operation_id = :id"),
                {"id": operation_id},
            ).scalar_one()
        )


def setup_race(url: str, quantity: int) -> tuple[Registry, str, list[str], dict[str, Any]]:
    """A source account holding exactly ``quantity`` units in one block, and empty targets."""
    reg = open_registry(url, "PA")
    source = open_general(reg, "alice")
    targets = [open_general(reg, f"target-{i}") for i in range(PROCESSES)]
    issue(reg, quantity * 3)
    fund(reg, source, quantity=quantity)
    [block] = reg.queries.holdings(source, person("alice")).blocks
    assert block.block["end"] - block.block["start"] + 1 == quantity
    return reg, source, targets, block.block


def assert_one_winner(
    reg: Registry,
    source: str,
    targets: list[str],
    outcomes: list[Outcome],
    block: dict[str, Any],
    loser_codes: set[str],
) -> None:
    winners = [i for i, (code, _) in enumerate(outcomes) if code == "ok"]
    assert len(winners) == 1, outcomes
    losers = [code for code, _ in outcomes if code != "ok"]
    assert set(losers) <= loser_codes, outcomes
    assert reg.queries.verify().ok, reg.queries.verify().to_dict()
    assert held_blocks(reg, source) == []
    uc = (block["issuer"], block["program"], block["unit_type"], block["vintage"])
    [winner] = winners
    for i, target in enumerate(targets):
        expected = [(uc, block["start"], block["end"])] if i == winner else []
        assert merged(held_blocks(reg, target)) == expected, (i, winner)


# -- processes racing for the same block ------------------------------------------------------


def test_processes_race_to_spend_one_block_by_quantity(db_url: str) -> None:
    quantity = 1000
    reg, source, targets, block = setup_race(db_url, quantity)
    try:
        seq_before = reg.queries.verify().journal_seq
        commands = [
            {
                "operation_id": f"race-q-{i}",
                "from_account": source,
                "to_account": target,
                "selection": {"quantity": quantity},
            }
            for i, target in enumerate(targets)
        ]
        outcomes = race(db_url, commands, "alice")
        assert_one_winner(
            reg,
            source,
            targets,
            outcomes,
            block,
            {"INSUFFICIENT_HOLDINGS", "CONCURRENT_MODIFICATION"},
        )
        # Only the winner wrote to the journal; a refusal leaves no trace.
        assert reg.queries.verify().journal_seq == seq_before + 1
    finally:
        reg.close()


def test_processes_race_to_spend_one_block_by_named_serials(db_url: str) -> None:
    quantity = 500
    reg, source, targets, block = setup_race(db_url, quantity)
    try:
        named = {
            "unit_class": [block["issuer"], block["program"], block["unit_type"], block["vintage"]],
            "start": block["start"],
            "end": block["end"],
        }
        commands = [
            {
                "operation_id": f"race-s-{i}",
                "from_account": source,
                "to_account": target,
                "selection": {"blocks": [named]},
            }
            for i, target in enumerate(targets)
        ]
        outcomes = race(db_url, commands, "alice")
        assert_one_winner(
            reg, source, targets, outcomes, block, {"UNITS_NOT_HELD", "CONCURRENT_MODIFICATION"}
        )
    finally:
        reg.close()


def test_processes_race_for_overlapping_serial_ranges(db_url: str) -> None:
    """Each named range overlaps another: the winners' ranges never overlap each other, every
    loser is refused with UNITS_NOT_HELD, and every serial ends up in exactly one account."""
    reg, source, targets, block = setup_race(db_url, 100)
    try:
        start = block["start"]
        uc = [block["issuer"], block["program"], block["unit_type"], block["vintage"]]
        ranges = [(0, 59), (40, 99), (20, 79), (80, 99)]
        commands = [
            {
                "operation_id": f"race-o-{i}",
                "from_account": source,
                "to_account": targets[i],
                "selection": {"blocks": [{"unit_class": uc, "start": start + a, "end": start + b}]},
            }
            for i, (a, b) in enumerate(ranges)
        ]
        outcomes = race(db_url, commands, "alice")
        assert {code for code, _ in outcomes} <= {"ok", "UNITS_NOT_HELD"}, outcomes
        won = [i for i, (code, _) in enumerate(outcomes) if code == "ok"]
        assert won, outcomes
        for i, j in ((i, j) for i in won for j in won if i < j):
            (a1, b1), (a2, b2) = ranges[i], ranges[j]
            assert b1 < a2 or b2 < a1, f"overlapping ranges {ranges[i]} and {ranges[j]} both won"
        assert reg.queries.verify().ok
        key = tuple(uc)
        everything: list[Any] = list(held_blocks(reg, source))
        for i, target in enumerate(targets):
            got = merged(held_blocks(reg, target))
            want = [(key, start + ranges[i][0], start + ranges[i][1])] if i in won else []
            assert got == want, (i, outcomes)
            everything += held_blocks(reg, target)
        assert merged(everything) == [(key, block["start"], block["end"])]
    finally:
        reg.close()


# -- one operation id submitted from several processes at once --------------------------------


@pytest.mark.parametrize("quantity", [10, 100])
def test_same_operation_id_from_several_processes_applies_once(db_url: str, quantity: int) -> None:
    """With everything the account holds (100), a twin that ran its body against the first
    one's effects would be refused INSUFFICIENT_HOLDINGS instead of getting the stored result."""
    reg, source, targets, _block = setup_race(db_url, 100)
    try:
        command = {
            "operation_id": "client-retry-7",
            "from_account": source,
            "to_account": targets[0],
            "selection": {"quantity": quantity},
            "memo": "submitted four times",
        }
        outcomes = race(db_url, [command] * PROCESSES, "alice")
        assert [code for code, _ in outcomes] == ["ok"] * PROCESSES, outcomes
        results = [payload for _, payload in outcomes]
        assert sorted(r["replayed"] for r in results) == [False] + [True] * (PROCESSES - 1)
        first = next(r for r in results if not r["replayed"])
        for r in results:
            assert {**r, "replayed": False} == first
        assert journal_entries_for(reg, "client-retry-7") == 1
        assert sum(q for _, a, b in held_blocks(reg, source) for q in [b - a + 1]) == 100 - quantity
        assert sum(q for _, a, b in held_blocks(reg, targets[0]) for q in [b - a + 1]) == quantity
        assert reg.queries.verify().ok
    finally:
        reg.close()


def test_same_operation_id_with_different_content_from_several_processes(db_url: str) -> None:
    reg, source, targets, _block = setup_race(db_url, 100)
    try:
        commands = [
            {
                "operation_id": "client-clash-1",
                "from_account": source,
                "to_account": target,
                "selection": {"quantity": 10},
            }
            for target in targets
        ]
        outcomes = race(db_url, commands, "alice")
        codes = sorted(code for code, _ in outcomes)
        assert codes == ["IDEMPOTENCY_CONFLICT"] * (PROCESSES - 1) + ["ok"], outcomes
        [winner] = [i for i, (code, _) in enumerate(outcomes) if code == "ok"]
        assert outcomes[winner][1]["replayed"] is False
        assert journal_entries_for(reg, "client-clash-1") == 1
        for i, target in enumerate(targets):
            total = sum(b - a + 1 for _, a, b in held_blocks(reg, target))
            assert total == (10 if i == winner else 0)
        assert reg.queries.verify().ok
    finally:
        reg.close()


# -- threads sharing one Registry (one pooled connection each) --------------------------------

THREADS = 8


def run_threads(work: Callable[[int], None], count: int, timeout: float = 60.0) -> None:
    """Run ``work(i)`` on ``count`` daemon threads; fail (not hang) if one does not finish."""
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            work(i)
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=guarded, args=(i,), name=f"spender-{i}", daemon=True)
        for i in range(count)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(deadline - time.monotonic(), 0.01))
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, f"threads still running after {timeout} s: {stuck}"
    if errors:
        raise errors[0]


def test_threads_drain_one_account_in_small_transfers(db_url: str) -> None:
    reg = open_registry(db_url, "PA")
    try:
        source = open_general(reg, "alice")
        targets = [open_general(reg, f"sink-{i}") for i in range(THREADS)]
        # M units in three blocks of two vintages, so transfers also cross block boundaries.
        issue(reg, 200, vintage=2024)
        issue(reg, 200, vintage=2025)
        fund(reg, source, quantity=150, vintage=2024)
        fund(reg, source, quantity=60, vintage=2025)
        fund(reg, source, quantity=40, vintage=2025)
        m = 250
        original = merged(held_blocks(reg, source))
        assert sum(b - a + 1 for _, a, b in original) == m
        seq_before = reg.queries.verify().journal_seq

        barrier = threading.Barrier(THREADS)
        moved: list[list[int]] = [[] for _ in range(THREADS)]
        failures: list[list[str]] = [[] for _ in range(THREADS)]

        def spend(i: int) -> None:
            rng = random.Random(i)
            ceiling: int | None = None
            barrier.wait(BARRIER_TIMEOUT)
            for n in range(10_000):
                # A pause now and then lets the others in (SQLite's busy wait is not fair).
                time.sleep(rng.choice((0, 0, 0.001, 0.002)))
                quantity = rng.randint(1, 7)
                if ceiling is not None:
                    quantity = min(quantity, ceiling)
                command = Transfer(
                    operation_id=f"drain-{i}-{n}",
                    from_account=source,
                    to_account=targets[i],
                    selection=Selection(quantity=quantity),
                )
                try:
                    result = reg.ledger.transfer(command, person("alice"))
                except RegistryError as error:
                    failures[i].append(error.code)
                    if error.code != "INSUFFICIENT_HOLDINGS":
                        return
                    ceiling = int(error.details["available"])
                    if ceiling == 0:
                        return
                else:
                    assert not result.replayed
                    assert result.detail["quantity"] == quantity
                    moved[i].append(quantity)

        started = time.monotonic()
        run_threads(spend, THREADS)
        elapsed = time.monotonic() - started

        codes = {code for f in failures for code in f}
        assert codes == {"INSUFFICIENT_HOLDINGS"}, failures  # each thread stops on one
        assert sum(map(sum, moved)) == m, (moved, elapsed)
        assert held_blocks(reg, source) == []
        everything = []
        for i, target in enumerate(targets):
            blocks = held_blocks(reg, target)
            assert sum(b - a + 1 for _, a, b in blocks) == sum(moved[i])
            everything += blocks
        assert merged(everything) == original  # no unit lost, none in two accounts
        transfers = sum(len(x) for x in moved)
        report = reg.queries.verify()
        assert report.ok, report.to_dict()
        assert report.journal_seq == seq_before + transfers
    finally:
        reg.close()


# -- an account changing status while a transfer waits for its lock (PostgreSQL) ---------------


@pytest.fixture
def postgres_url() -> Iterator[str]:
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.mark.parametrize(
    ("change", "locked", "status", "code"),
    [
        ("close the target", "target", "closed", "ACCOUNT_CLOSED"),
        ("restrict the source", "source", "restricted", "ACCOUNT_RESTRICTED"),
    ],
)
def test_status_change_committed_while_a_transfer_waits_for_the_account_lock(
    postgres_url: str, change: str, locked: str, status: str, code: str
) -> None:
    """A transfer reads its accounts, then waits for their row locks; meanwhile an administrator
    changes one's status and commits. The transfer must judge the account as it is under the
    lock: a closed account never receives units, a restricted one never sends.

    Only PostgreSQL has this window: SQLite takes the database's write lock before reading.
    """
    reg = open_registry(postgres_url, "PA")
    try:
        accounts = {"source": open_general(reg, "alice"), "target": open_general(reg, "bob")}
        issue(reg, 100)
        fund(reg, accounts["source"], quantity=100)
        outcome: list[str] = []

        def transfer() -> None:
            try:
                reg.ledger.transfer(
                    Transfer(
                        operation_id="waits-for-the-lock",
                        from_account=accounts["source"],
                        to_account=accounts["target"],
                        selection=Selection(quantity=10),
                    ),
                    person("alice"),
                )
                outcome.append("ok")
            except RegistryError as error:
                outcome.append(error.code)

        waiter = threading.Thread(target=transfer, name="waiting-transfer", daemon=True)
        # The administrator's transaction holds the account's row lock (committed at the end of
        # the block); the probe watches for the transfer to queue behind it.
        with reg.engine.connect() as probe, reg.engine.begin() as admin:
            admin.execute(
                text("SELECT id FROM accounts WHERE number = :n FOR UPDATE"),
                {"n": accounts[locked]},
            )
            waiter.start()
            deadline = time.monotonic() + 10
            while not probe.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one():
                probe.rollback()  # a new snapshot of pg_stat_activity next time
                assert waiter.is_alive(), f"the transfer did not wait: {outcome}"
                assert time.monotonic() < deadline, "the transfer never waited for the lock"
                time.sleep(0.01)
            admin.execute(
                text("UPDATE accounts SET status = :s, version = version + 1 WHERE number = :n"),
                {"s": status, "n": accounts[locked]},
            )
        waiter.join(10)
        assert not waiter.is_alive(), "the transfer is still waiting after the lock was released"
        assert outcome == [code], f"{change}: {outcome}"
        assert held_blocks(reg, accounts["target"]) == []
        assert sum(b - a + 1 for _, a, b in held_blocks(reg, accounts["source"])) == 100
        assert reg.queries.verify().ok
    finally:
        reg.close()


if __name__ == CHILD:  # this file run by runpy in a child process of ``race``
    _transfer_in_child(*globals()["CHILD_ARGS"])
