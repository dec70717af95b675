"""The nightly reconciliation: one scheduled run per local calendar day, at a configured time.

One rule decides, at start and at every window (:func:`due_on_start`): the run of *today* (the
local calendar day in the configured zone) is due once today's window has passed and the run
table has no scheduled run for today. So a window missed while the node was down runs once at
the next start that same day; an earlier day's missed window is never replayed (the next start
is a new day, and that day's own window decides); a restart after today's run runs nothing,
because the table (not the process) remembers it. On-demand runs are not scheduled runs and do
not count.

Daylight saving time, checked against APScheduler 3's CronTrigger (a unit test keeps the two in
step): a window whose local time does not exist that day (02:30 on a spring-forward night in
America/New_York) falls at the instant that wall time names on the old offset, one hour after
the gap opened, i.e. 03:30 local daylight time; a window whose local time happens twice (01:30
on a fall-back night) falls at the first, and the cron trigger's second firing finds the day's
run and does nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, tzinfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from .config import OversightConfig
from .run_errors import AlreadyRan
from .runs import RunStore, utc_now

log = logging.getLogger("regfed.oversight.schedule")

JOB_ID = "nightly-reconciliation"
#: A firing delayed by a blocked event loop or a suspended host still reaches the due rule if
#: less than a day late; the rule, not this grace, decides whether the day still needs its run
#: (so a firing that lands after local midnight does nothing).
MISFIRE_GRACE_SECONDS = 24 * 3600


def window_of(day: date, at: time, tz: tzinfo) -> datetime:
    """The instant (UTC) of ``day``'s window. A wall time that does not exist that day is read
    on the offset before the change, a repeated one at its first occurrence (``fold=0``): the
    instants APScheduler's CronTrigger fires at."""
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def due_on_start(
    now: datetime, at: time, tz: tzinfo, already_ran: Callable[[date], bool]
) -> date | None:
    """The local calendar day whose scheduled run is due at ``now`` (timezone-aware), or None:
    today's, once its window has passed, unless ``already_ran(today)``. Never an earlier day."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    today = now.astimezone(tz).date()
    # Compared in UTC: two datetimes of one zone compare by wall time, ignoring DST's fold.
    if now.astimezone(UTC) < window_of(today, at, tz):
        return None
    return None if already_ran(today) else today


class NightlySchedule:
    """Runs ``run(day)`` for each local day's window, at most once per day across processes
    and restarts. ``run`` is the reconciliation: it begins the run with
    ``store.begin("scheduled", day)`` and finishes it; if another writer got there first it
    raises :class:`~regfed.oversight.run_errors.AlreadyRan`, which is logged and ignored.

    :meth:`start` (on the running event loop) installs the cron job and starts
    :attr:`catch_up`, the task running today's window if it passed while the node was down;
    the node serves meanwhile. :meth:`shutdown` stops the job and cancels a run in flight (the
    run table then shows it ``running`` until the next start fails it:
    :meth:`RunStore.abandon_interrupted`).
    """

    def __init__(
        self,
        store: RunStore,
        run: Callable[[date], Awaitable[None]],
        at: time,
        tz: tzinfo,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.run = run
        self.at = at
        self.tz = tz
        self.clock = clock
        self.catch_up: asyncio.Task[date | None] | None = None
        self._scheduler: AsyncIOScheduler | None = None
        # The catch-up and a firing of the same day queue here; the second then finds the run.
        self._one_at_a_time = asyncio.Lock()
        self._in_flight: set[asyncio.Task[object]] = set()

    @classmethod
    def from_config(
        cls, config: OversightConfig, store: RunStore, run: Callable[[date], Awaitable[None]]
    ) -> NightlySchedule | None:
        """The configured schedule, or None when ``reconcile_nightly`` is off."""
        if not config.reconcile_nightly:
            return None
        return cls(store, run, config.reconcile_time, config.reconcile_zone)

    def describe(self) -> str:
        return f"nightly at {self.at:%H:%M:%S} {self.tz}"

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        scheduler = AsyncIOScheduler(event_loop=loop, timezone=self.tz)
        scheduler.add_job(
            self._fire,
            CronTrigger(
                hour=self.at.hour, minute=self.at.minute, second=self.at.second, timezone=self.tz
            ),
            id=JOB_ID,
            name="nightly reconciliation",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=MISFIRE_GRACE_SECONDS,
        )
        # The job before the catch-up: a window passing in between is then fired, not lost;
        # whichever comes second finds the day's run.
        scheduler.start()
        self._scheduler = scheduler
        self.catch_up = loop.create_task(self._guarded("start"))
        log.info("reconciliation scheduled %s", self.describe())

    async def shutdown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        pending = [t for t in self._in_flight if not t.done()]
        if self.catch_up is not None and not self.catch_up.done():
            pending.append(self.catch_up)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def next_window(self) -> datetime | None:
        """When the cron job fires next (None before start or after shutdown)."""
        if self._scheduler is None:
            return None
        job = self._scheduler.get_job(JOB_ID)
        return None if job is None else job.next_run_time

    async def run_if_due(self) -> date | None:
        """Run today's scheduled run if :func:`due_on_start` says so; the day run, or None."""
        async with self._one_at_a_time:
            now = self.clock()
            day = await asyncio.to_thread(due_on_start, now, self.at, self.tz, self._already_ran)
            if day is None:
                log.debug("no scheduled run due at %s", now.isoformat())
                return None
            log.info("scheduled reconciliation of %s starting", day.isoformat())
            try:
                await self.run(day)
            except AlreadyRan as ran:
                log.info("scheduled reconciliation of %s not started: %s", day.isoformat(), ran)
                return None
            return day

    async def _fire(self) -> None:
        await self._guarded("window")

    async def _guarded(self, why: str) -> date | None:
        """A failed run is logged; the schedule (and the node) carry on to the next window."""
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            return await self.run_if_due()
        except Exception:
            log.exception("scheduled reconciliation (%s) failed", why)
            return None
        finally:
            if task is not None:
                self._in_flight.discard(task)

    def _already_ran(self, day: date) -> bool:
        return self.store.scheduled_on(day) is not None
