"""The oversight node's run table on SQLite and PostgreSQL: sequences, one scheduled run per day
(in the schema, and with two writers racing), finishing, resolutions, the status a clean run
ends with, the run served to nodes, and runs a crash left behind."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from regfed.oversight.run_errors import (
    AlreadyFinished,
    AlreadyRan,
    InvalidRun,
    NotInconsistent,
    RunError,
    RunIdTaken,
    RunStoreUnusable,
    UnknownRun,
)
from regfed.oversight.runs import RunRow, RunStore

DAY = date(2025, 3, 9)
REGISTRIES = ("NJ", "NY", "PA")


@pytest.fixture
def store(db_url: str) -> Iterator[RunStore]:
    with RunStore(db_url) as opened:
        yield opened


def document(run: RunRow, status: str) -> bytes:
    body = {"run_id": run.run_id, "sequence": run.sequence, "status": status}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def finish(
    store: RunStore,
    run: RunRow,
    status: str = "completed",
    *,
    missing: tuple[str, ...] = (),
    discrepancies: int = 0,
    follows_up: str | None = None,
) -> RunRow:
    return store.finish(
        run.run_id,
        status,
        document(run, status),
        b"\x01" * 64,
        "epa-key-1",
        registries=REGISTRIES,
        missing=missing,
        counts={"blocks": 12, "discrepancies_found": discrepancies},
        discrepancies=discrepancies,
        follows_up=follows_up,
    )


def run_to(store: RunStore, status: str, **kwargs: Any) -> RunRow:
    """An on-demand run, begun and finished with ``status``."""
    if status == "incomplete":
        kwargs.setdefault("missing", ("NY",))
    if status == "inconsistent":
        kwargs.setdefault("discrepancies", 2)
    return finish(store, store.begin("on_demand"), status, **kwargs)


def test_sequences_increase_in_begin_order_and_a_refused_begin_takes_none(
    store: RunStore,
) -> None:
    first = store.begin("on_demand")
    second = store.begin("scheduled", DAY)
    with pytest.raises(AlreadyRan):
        store.begin("scheduled", DAY)
    with pytest.raises(RunIdTaken):
        store.begin("on_demand", run_id=first.run_id)
    third = store.begin("on_demand", run_id="epa-2025-03-09-manual")
    assert [first.sequence, second.sequence, third.sequence] == [1, 2, 3]
    assert third.run_id == "epa-2025-03-09-manual"
    assert (second.trigger, second.scheduled_for, second.status) == ("scheduled", DAY, "running")
    assert first.scheduled_for is None and first.finished_at is None
    assert first.started_at.endswith("Z") and "T" in first.started_at


def test_a_second_scheduled_run_of_a_day_is_refused_but_on_demand_runs_do_not_count(
    store: RunStore,
) -> None:
    store.begin("on_demand")
    nightly = store.begin("scheduled", DAY)
    store.begin("on_demand")
    with pytest.raises(AlreadyRan) as refused:
        store.begin("scheduled", DAY)
    assert refused.value.code == "ALREADY_RAN" and refused.value.status == "ALREADY_EXISTS"
    assert refused.value.details == {"scheduled_for": "2025-03-09", "run_id": nightly.run_id}
    # Finished, failed or not, the day had its run.
    store.fail(nightly.run_id, "the reconciler raised")
    with pytest.raises(AlreadyRan):
        store.begin("scheduled", DAY)
    assert store.begin("scheduled", DAY + timedelta(days=1)).scheduled_for == DAY + timedelta(1)
    found = store.scheduled_on(DAY)
    assert found is not None and found.run_id == nightly.run_id
    assert store.scheduled_on(DAY - timedelta(days=1)) is None


def test_the_schema_itself_refuses_a_second_scheduled_run_of_a_day(store: RunStore) -> None:
    store.begin("scheduled", DAY)
    insert = text(
        'INSERT INTO runs (run_id, sequence, "trigger", scheduled_for, status, started_at, '
        "registries, missing, counts, discrepancies) VALUES (:id, :seq, 'scheduled', :day, "
        "'running', '2025-03-09T07:00:00.000Z', '[]', '[]', '{}', 0)"
    )
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(insert, {"id": "sneaky", "seq": 99, "day": DAY})
    # ...and a scheduled run without its day, or an on-demand run with one.
    with pytest.raises(IntegrityError), store.engine.begin() as conn:
        conn.execute(insert, {"id": "sneaky", "seq": 99, "day": None})


def test_when_the_codes_check_misses_a_racing_row_the_schema_still_refuses(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check inside begin is skipped once (as if the racing writer committed just after
    it): the insert hits the UNIQUE day, and the caller is still told ALREADY_RAN."""
    nightly = store.begin("scheduled", DAY)
    real = RunStore._refuse_taken
    calls: list[str] = []

    def miss_once(self: RunStore, *args: Any) -> None:
        calls.append("check")
        if len(calls) > 1:
            real(self, *args)

    monkeypatch.setattr(RunStore, "_refuse_taken", miss_once)
    with pytest.raises(AlreadyRan) as refused:
        store.begin("scheduled", DAY)
    assert refused.value.details["run_id"] == nightly.run_id and len(calls) == 2
    monkeypatch.undo()
    assert store.begin("on_demand").sequence == 2  # the refused begin's number was rolled back


@pytest.mark.parametrize("rounds", [12])
def test_two_writers_racing_for_a_day_exactly_one_wins(db_url: str, rounds: int) -> None:
    """Two stores (two engines, as two processes would have) begin the same day's scheduled
    run at the same moment, day after day: each day one wins and the other is told
    ALREADY_RAN; no sequence is given twice."""
    stores = [RunStore(db_url), RunStore(db_url)]
    try:
        outcomes: list[list[RunRow | RunError]] = [[], []]
        barrier = threading.Barrier(2, timeout=30)

        def writer(i: int) -> None:
            for r in range(rounds):
                barrier.wait()
                try:
                    outcomes[i].append(stores[i].begin("scheduled", DAY + timedelta(days=r)))
                except AlreadyRan as lost:
                    outcomes[i].append(lost)

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        for r in range(rounds):
            pair = [outcomes[0][r], outcomes[1][r]]
            winners = [o for o in pair if isinstance(o, RunRow)]
            losers = [o for o in pair if isinstance(o, AlreadyRan)]
            assert (len(winners), len(losers)) == (1, 1), pair
            assert losers[0].details["run_id"] == winners[0].run_id
        rows = stores[0].list(limit=100)
        assert len(rows) == rounds
        assert sorted(r.scheduled_for for r in rows if r.scheduled_for) == [
            DAY + timedelta(days=r) for r in range(rounds)
        ]
        assert sorted(r.sequence for r in rows) == list(range(1, rounds + 1))
    finally:
        for s in stores:
            s.close()


def test_two_processes_opening_a_new_database_at_once_both_get_it(db_url: str) -> None:
    opened: list[RunStore | BaseException] = []
    barrier = threading.Barrier(3, timeout=30)

    def open_it() -> None:
        barrier.wait()
        try:
            opened.append(RunStore(db_url))
        except BaseException as error:  # reported below, with the other's outcome
            opened.append(error)

    threads = [threading.Thread(target=open_it) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stores = [s for s in opened if isinstance(s, RunStore)]
    try:
        assert len(stores) == 3, opened
        assert stores[0].begin("on_demand").sequence == 1
        assert stores[1].begin("on_demand").sequence == 2
    finally:
        for s in stores:
            s.close()


def test_a_sqlite_file_and_its_folder_are_made_on_first_open_and_kept(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'oversight' / 'runs.db'}"
    with RunStore(url) as store:
        run = finish(store, store.begin("scheduled", DAY))
    assert (tmp_path / "oversight" / "runs.db").is_file()
    with RunStore(str(tmp_path / "oversight" / "runs.db")) as again:  # a plain path too
        assert again.get(run.run_id) == run
        assert again.begin("on_demand").sequence == 2


def test_an_unreachable_database_is_refused_with_a_typed_error() -> None:
    with pytest.raises(RunStoreUnusable, match="cannot open the run database") as refused:
        RunStore("postgresql://postgres@127.0.0.1:1/runs")
    assert refused.value.code == "RUN_STORE_UNUSABLE"


def test_a_database_with_only_some_of_the_tables_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    with RunStore(url) as store, store.engine.begin() as conn:
        conn.execute(text("DROP TABLE resolutions"))
    with pytest.raises(RunStoreUnusable, match=r"only some of its tables \(run_sequence, runs\)"):
        RunStore(url)


def test_a_finished_run_keeps_its_signed_result(store: RunStore) -> None:
    run = store.begin("on_demand")
    done = finish(store, run, "inconsistent", discrepancies=3)
    assert done.status == "inconsistent" and done.finished_at is not None
    assert done.document == document(run, "inconsistent")  # the exact bytes that were signed
    assert (done.signature, done.key_id) == (b"\x01" * 64, "epa-key-1")
    assert done.registries == REGISTRIES and done.missing == ()
    assert done.counts == {"blocks": 12, "discrepancies_found": 3}
    assert done.discrepancies == 3
    assert done.result() == {"run_id": run.run_id, "sequence": 1, "status": "inconsistent"}
    assert store.get(run.run_id) == done
    shown = json.loads(json.dumps(done.to_dict(document=True)))
    assert shown["status"] == "inconsistent" and shown["scheduled_for"] is None
    assert "document" in shown and "document" not in done.to_dict()


def test_finishing_refuses_what_contradicts_the_run_rules(store: RunStore) -> None:
    run = store.begin("on_demand")

    def refused(status: str, **kwargs: Any) -> str:
        with pytest.raises(InvalidRun) as error:
            finish(store, run, status, **kwargs)
        return error.value.message

    assert "exactly when it could not reach" in refused("incomplete")
    assert "exactly when it could not reach" in refused("completed", missing=("NY",))
    assert "not among the run's registries" in refused("incomplete", missing=("TX",))
    assert "inconsistent means at least one" in refused("completed", discrepancies=1)
    assert "inconsistent means at least one" in refused("inconsistent")
    assert "not one a run finishes with" in refused("running")
    assert "not one a run finishes with" in refused("failed")
    assert "completed_after_intervention" in refused("completed", follows_up=run.run_id)
    with pytest.raises(UnknownRun):
        store.finish("nope", "completed", b"{}", b"s", "k", registries=REGISTRIES, counts={})
    with pytest.raises(InvalidRun, match="not JSON"):
        store.finish(run.run_id, "completed", b"{", b"s", "k", registries=REGISTRIES, counts={})
    # An incomplete run names the missing registries; its count is of what it could read.
    done = finish(store, run, "incomplete", missing=("NY",), discrepancies=1)
    assert (done.status, done.missing) == ("incomplete", ("NY",))
    with pytest.raises(AlreadyFinished) as twice:
        finish(store, run)
    assert twice.value.details == {"run_id": run.run_id, "status": "incomplete"}
    with pytest.raises(AlreadyFinished):
        store.fail(run.run_id, "late")


def test_begin_refuses_a_trigger_day_or_id_that_does_not_fit(store: RunStore) -> None:
    with pytest.raises(InvalidRun, match="trigger 'nightly'"):
        store.begin("nightly", DAY)
    with pytest.raises(InvalidRun, match="scheduled_for"):
        store.begin("scheduled")
    with pytest.raises(InvalidRun, match="scheduled_for"):
        store.begin("on_demand", DAY)
    for bad in ("latest", "", "has space", "x" * 65):
        with pytest.raises(InvalidRun, match="run id"):
            store.begin("on_demand", run_id=bad)


def test_resolutions_are_for_inconsistent_runs_and_append_only(store: RunStore) -> None:
    with pytest.raises(UnknownRun) as unknown:
        store.resolve("nope", "alice@pa", "checked")
    assert unknown.value.code == "UNKNOWN_RUN" and unknown.value.status == "NOT_FOUND"
    clean = run_to(store, "completed")
    with pytest.raises(NotInconsistent) as refused:
        store.resolve(clean.run_id, "alice@pa", "checked")
    assert refused.value.details == {"run_id": clean.run_id, "status": "completed"}
    running = store.begin("on_demand")
    with pytest.raises(NotInconsistent):
        store.resolve(running.run_id, "alice@pa", "too early")
    bad = run_to(store, "inconsistent")
    with pytest.raises(InvalidRun):
        store.resolve(bad.run_id, " ", "no name")
    first = store.resolve(bad.run_id, "alice@pa", "serials 100-199 removed from NY by its admin")
    second = store.resolve(bad.run_id, "bob@epa", "confirmed with NY")
    assert store.resolutions(bad.run_id) == [first, second]
    assert first.to_dict()["resolved_by"] == "alice@pa"
    with pytest.raises(DBAPIError), store.engine.begin() as conn:
        conn.execute(text("UPDATE resolutions SET note = 'rewritten'"))
    with pytest.raises(DBAPIError), store.engine.begin() as conn:
        conn.execute(text("DELETE FROM resolutions"))
    assert store.resolutions(bad.run_id) == [first, second]


def test_a_clean_run_after_a_resolved_inconsistent_one_is_completed_after_intervention(
    store: RunStore,
) -> None:
    assert store.status_for_clean_run() == ("completed", None)
    bad = run_to(store, "inconsistent")
    # Nobody has recorded an intervention: a clean run now is just completed.
    assert store.status_for_clean_run() == ("completed", None)
    store.resolve(bad.run_id, "alice@pa", "fixed")
    assert store.status_for_clean_run() == ("completed_after_intervention", bad.run_id)
    # Runs without a verdict in between change nothing: they say nothing of the federation.
    run_to(store, "incomplete")
    store.fail(store.begin("on_demand").run_id, "the reconciler raised")
    store.begin("on_demand")  # still running
    assert store.status_for_clean_run() == ("completed_after_intervention", bad.run_id)
    rerun = store.begin("on_demand")
    status, follows = store.status_for_clean_run()
    done = finish(store, rerun, status, follows_up=follows)
    assert (done.status, done.follows_up) == ("completed_after_intervention", bad.run_id)
    # That closes it: the next clean run is plain completed again.
    assert store.status_for_clean_run() == ("completed", None)


def test_a_resolution_of_an_older_run_does_not_clear_a_newer_inconsistency(
    store: RunStore,
) -> None:
    older = run_to(store, "inconsistent")
    run_to(store, "inconsistent")
    store.resolve(older.run_id, "alice@pa", "fixed the first")
    assert store.status_for_clean_run() == ("completed", None)
    # The older run is resolved, but a clean run now does not follow up its resolution.
    with pytest.raises(InvalidRun, match="follows up only the latest verdict run") as refused:
        finish(
            store, store.begin("on_demand"), "completed_after_intervention", follows_up=older.run_id
        )
    assert refused.value.details == {"follows_up": older.run_id, "expected": None}


def test_only_verdicts_are_served_and_the_newest_by_sequence(store: RunStore) -> None:
    assert store.latest_verdict_run() is None
    good = run_to(store, "completed")
    run_to(store, "incomplete")
    store.fail(store.begin("on_demand").run_id, "boom")
    store.begin("on_demand")
    served = store.latest_verdict_run()
    assert served is not None and served.run_id == good.run_id
    # A run begun earlier but finished later is still the older one.
    early = store.begin("on_demand")
    late = store.begin("on_demand")
    finish(store, late, "inconsistent", discrepancies=1)
    finish(store, early)
    served = store.latest_verdict_run()
    assert served is not None and served.run_id == late.run_id


def test_get_latest_and_list_newest_first(store: RunStore) -> None:
    with pytest.raises(UnknownRun):
        store.get("latest")
    made = [store.begin("on_demand") for _ in range(5)]
    assert store.get("latest") == made[-1]
    assert store.get(made[1].run_id) == made[1]
    assert [r.sequence for r in store.list()] == [5, 4, 3, 2, 1]
    assert [r.sequence for r in store.list(limit=2)] == [5, 4]
    with pytest.raises(InvalidRun):
        store.list(limit=0)


def test_runs_a_crash_left_running_are_failed_at_start(db_url: str) -> None:
    with RunStore(db_url) as before_crash:
        done = run_to(before_crash, "completed")
        left = [before_crash.begin("scheduled", DAY), before_crash.begin("on_demand")]
    with RunStore(db_url) as restarted:
        assert restarted.abandon_interrupted() == [r.run_id for r in left]
        for r in left:
            failed = restarted.get(r.run_id)
            assert failed.status == "failed" and failed.finished_at is not None
            assert failed.reason is not None and failed.reason.startswith("interrupted")
        assert restarted.get(done.run_id).status == "completed"
        assert restarted.abandon_interrupted() == []
        # The day's scheduled run was interrupted, but the day had it: not run again.
        with pytest.raises(AlreadyRan):
            restarted.begin("scheduled", DAY)


def test_run_errors_have_stable_codes() -> None:
    codes: dict[type[RunError], str] = {
        AlreadyRan: "ALREADY_RAN",
        UnknownRun: "UNKNOWN_RUN",
        NotInconsistent: "NOT_INCONSISTENT",
        AlreadyFinished: "ALREADY_FINISHED",
        RunIdTaken: "RUN_ID_TAKEN",
        InvalidRun: "INVALID_RUN",
        RunStoreUnusable: "RUN_STORE_UNUSABLE",
    }
    for kind, code in codes.items():
        error = kind("why", run_id="r")
        assert error.to_dict() == {"code": code, "message": "why", "details": {"run_id": "r"}}
        assert str(error) == f"{code}: why"
