"""NightlySchedule with a real AsyncIOScheduler over a real run table (SQLite): a window a few
seconds ahead fires; a window missed while down runs once at start, and not again after a
restart; a racing writer's ALREADY_RAN and a failing run are logged, not raised; a stop cancels
a run in flight. Not a timing benchmark: waits are generous and only order is asserted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from regfed.oversight.config import OversightConfig
from regfed.oversight.run_errors import AlreadyRan
from regfed.oversight.runs import RunStore
from regfed.oversight.schedule import NightlySchedule

NOON = datetime(2025, 3, 9, 12, 0, tzinfo=UTC)
TODAY = date(2025, 3, 9)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


@pytest.fixture
def store(url: str) -> Iterator[RunStore]:
    with RunStore(url) as opened:
        yield opened


class Reconciler:
    """Stands in for the reconciliation: begins the scheduled run and finishes it clean."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.days: list[date] = []
        self.ran = asyncio.Event()

    async def __call__(self, day: date) -> None:
        run = await asyncio.to_thread(self.store.begin, "scheduled", day)
        await asyncio.sleep(0)  # a real one awaits the registries here
        await asyncio.to_thread(
            self.store.finish,
            run.run_id,
            "completed",
            b"{}",
            b"signature",
            "epa-key-1",
            registries=["PA"],
            counts={},
        )
        self.days.append(day)
        self.ran.set()


def a_zone_far_from_midnight(now: datetime) -> tzinfo:
    """A window a few seconds ahead must fall on today's local date, not tomorrow's."""
    return UTC if 1 <= now.hour <= 22 else ZoneInfo("Asia/Tokyo")


@pytest.mark.asyncio
async def test_a_window_a_few_seconds_ahead_fires_the_days_run(store: RunStore) -> None:
    now = datetime.now(UTC)
    zone = a_zone_far_from_midnight(now)
    window = (now + timedelta(seconds=3)).astimezone(zone).replace(microsecond=0)
    reconciler = Reconciler(store)
    schedule = NightlySchedule(store, reconciler, window.timetz().replace(tzinfo=None), zone)
    schedule.start()
    try:
        assert schedule.catch_up is not None
        assert await schedule.catch_up is None  # not due yet at start
        assert schedule.next_window() == window
        await asyncio.wait_for(reconciler.ran.wait(), timeout=20)
    finally:
        await schedule.shutdown()
    assert reconciler.days == [window.date()]
    ran = store.scheduled_on(window.date())
    assert ran is not None and (ran.trigger, ran.status) == ("scheduled", "completed")
    assert schedule.next_window() is None


@pytest.mark.asyncio
async def test_a_missed_window_runs_once_at_start_and_not_again_after_a_restart(
    url: str, store: RunStore
) -> None:
    # An on-demand run earlier today does not count against the nightly one.
    store.begin("on_demand")
    first = Reconciler(store)
    schedule = NightlySchedule(store, first, time(2, 0), UTC, clock=lambda: NOON)
    schedule.start()
    assert schedule.catch_up is not None
    assert await schedule.catch_up == TODAY
    await schedule.shutdown()
    assert first.days == [TODAY]

    # A restart: a new process opens the same run table.
    with RunStore(url) as reopened:
        again = Reconciler(reopened)
        restarted = NightlySchedule(reopened, again, time(2, 0), UTC, clock=lambda: NOON)
        restarted.start()
        assert restarted.catch_up is not None
        assert await restarted.catch_up is None
        # A window firing now (as the cron job would) finds the day's run too.
        assert await restarted.run_if_due() is None
        await restarted.shutdown()
    assert again.days == []
    assert [r.trigger for r in store.list()] == ["scheduled", "on_demand"]


@pytest.mark.asyncio
async def test_the_schedule_comes_from_the_configuration(store: RunStore, tmp_path: Path) -> None:
    base = OversightConfig(
        code="EPA",
        listen="127.0.0.1:1",
        ca=tmp_path,
        certificate=tmp_path,
        key=tmp_path,
        signing_key=tmp_path,
        directory=tmp_path,
        database=f"sqlite:///{tmp_path / 'runs.db'}",
    )
    config = replace(base, reconcile_at="23:30", reconcile_timezone="Asia/Tokyo")
    schedule = NightlySchedule.from_config(config, store, Reconciler(store))
    assert schedule is not None
    assert (schedule.at, schedule.tz) == (time(23, 30), ZoneInfo("Asia/Tokyo"))
    assert schedule.describe() == "nightly at 23:30:00 Asia/Tokyo"
    off = replace(base, reconcile_nightly=False)
    assert NightlySchedule.from_config(off, store, Reconciler(store)) is None


@pytest.mark.asyncio
async def test_already_ran_from_a_racing_writer_is_logged_and_ignored(
    store: RunStore, caplog: pytest.LogCaptureFixture
) -> None:
    async def raced(day: date) -> None:
        raise AlreadyRan(f"{day} already has its scheduled run, run-other")

    schedule = NightlySchedule(store, raced, time(2, 0), UTC, clock=lambda: NOON)
    with caplog.at_level(logging.INFO, logger="regfed.oversight.schedule"):
        schedule.start()
        assert schedule.catch_up is not None
        assert await schedule.catch_up is None
        await schedule.shutdown()
    assert "not started: ALREADY_RAN" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.asyncio
async def test_a_failing_run_is_logged_and_the_schedule_carries_on(
    store: RunStore, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(day: date) -> None:
        raise RuntimeError("registries unreachable and the reconciler did not say so")

    schedule = NightlySchedule(store, broken, time(2, 0), UTC, clock=lambda: NOON)
    with caplog.at_level(logging.INFO, logger="regfed.oversight.schedule"):
        schedule.start()
        assert schedule.catch_up is not None
        assert await schedule.catch_up is None
        assert schedule.next_window() is not None  # still scheduled
        await schedule.shutdown()
    failed = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failed) == 1 and "scheduled reconciliation (start) failed" in failed[0].message


@pytest.mark.asyncio
async def test_shutdown_cancels_a_run_in_flight_and_the_next_start_fails_it(url: str) -> None:
    store = RunStore(url)
    began = asyncio.Event()

    async def endless(day: date) -> None:
        await asyncio.to_thread(store.begin, "scheduled", day)
        began.set()
        await asyncio.Event().wait()

    schedule = NightlySchedule(store, endless, time(2, 0), UTC, clock=lambda: NOON)
    schedule.start()
    await asyncio.wait_for(began.wait(), timeout=10)
    await asyncio.wait_for(schedule.shutdown(), timeout=10)
    assert schedule.catch_up is not None and schedule.catch_up.cancelled()
    assert store.get("latest").status == "running"
    store.close()
    with RunStore(url) as restarted:
        assert len(restarted.abandon_interrupted()) == 1
        assert restarted.get("latest").status == "failed"
        # Interrupted, but the day had its run: the next start does not run it again.
        schedule = NightlySchedule(restarted, endless, time(2, 0), UTC, clock=lambda: NOON)
        schedule.start()
        assert schedule.catch_up is not None
        assert await schedule.catch_up is None
        await schedule.shutdown()
