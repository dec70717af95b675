"""Group commit: inputs that queue up for the writer share one transaction, each in its own
savepoint; a failing input takes only its own writes with it; callbacks that must follow the
commit (trader wake-ups, the crash matrix's after-commit point) wait for the real commit."""

from __future__ import annotations

import asyncio
import functools
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from regfed.gateway.workers import Workers
from regfed.node.storage.engine import make_engine
from regfed.node.storage.store import Store


def _store(url: str) -> Store:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"))
    return Store(engine)


def _note(store: Store, note_id: int, *, fail: bool = False) -> int:
    with store.write() as tx:
        tx.conn.execute(text("INSERT INTO notes VALUES (:i, 'x')"), {"i": note_id})
        if fail:
            raise ValueError(f"input {note_id} refused after writing")
    return note_id


def _ids(store: Store) -> list[int]:
    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT id FROM notes ORDER BY id"))]


def test_a_failing_write_rolls_back_only_its_own_savepoint(db_url: str) -> None:
    store = _store(db_url)
    seen_before_commit: list[list[int]] = []
    with store.batch():
        _note(store, 1)
        with pytest.raises(ValueError):
            _note(store, 2, fail=True)
        _note(store, 3)
        store.after_commit(lambda: seen_before_commit.append(_ids(store)))
        assert _ids(store) == []  # another connection sees nothing before the commit
        assert seen_before_commit == []
    assert _ids(store) == [1, 3]
    assert seen_before_commit == [[1, 3]]  # the callback ran after the commit, not before
    store.engine.dispose()


def test_a_failed_group_commit_runs_no_callback(tmp_path: Path) -> None:
    store = _store(f"sqlite:///{tmp_path / 'g.db'}")
    called: list[str] = []
    with pytest.raises(RuntimeError), store.batch():
        _note(store, 1)
        store.after_commit(lambda: called.append("woken"))
        raise RuntimeError("the group dies before its commit")
    assert called == [] and _ids(store) == []
    with pytest.raises(RuntimeError, match="already open"), store.batch(), store.batch():
        pass


@pytest.mark.asyncio
async def test_queued_inputs_share_a_commit_and_each_gets_its_own_outcome(
    tmp_path: Path,
) -> None:
    store = _store(f"sqlite:///{tmp_path / 'w.db'}")
    groups: list[int] = []
    real_batch = store.batch

    def counting_batch():  # type: ignore[no-untyped-def]
        groups.append(1)
        return real_batch()

    workers = Workers(batch=counting_batch)
    gate = threading.Event()
    try:
        blocker = asyncio.ensure_future(workers.write(gate.wait, 10))
        await asyncio.sleep(0.05)  # the writer is now busy in its first group
        queued = [
            asyncio.ensure_future(workers.write(functools.partial(_note, fail=(i == 5)), store, i))
            for i in range(1, 9)
        ]
        await asyncio.sleep(0.05)
        gate.set()
        await blocker
        outcomes = await asyncio.gather(*queued, return_exceptions=True)
    finally:
        workers.close()
    assert [o if isinstance(o, int) else "refused" for o in outcomes] == [
        1,
        2,
        3,
        4,
        "refused",
        6,
        7,
        8,
    ]
    assert _ids(store) == [1, 2, 3, 4, 6, 7, 8]
    assert len(groups) == 2  # the blocker's group, then all eight queued inputs together


@pytest.mark.asyncio
async def test_without_a_batch_every_input_commits_alone(tmp_path: Path) -> None:
    store = _store(f"sqlite:///{tmp_path / 'w.db'}")
    workers = Workers()
    try:
        done = await asyncio.gather(*(workers.write(_note, store, i) for i in range(1, 4)))
        with pytest.raises(ValueError):
            await workers.write(functools.partial(_note, fail=True), store, 4)
    finally:
        workers.close()
    assert done == [1, 2, 3] and _ids(store) == [1, 2, 3]
