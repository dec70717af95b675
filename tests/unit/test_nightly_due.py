"""When the nightly run is due: today's window passed and today has no scheduled run; never an
earlier day; local calendar days in the configured zone; DST as APScheduler's cron fires."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger

from regfed.oversight.schedule import due_on_start, window_of

NEW_YORK = ZoneInfo("America/New_York")
TWO = time(2, 0)


def never(day: date) -> bool:
    return False


def utc(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_before_the_window_nothing_is_due() -> None:
    assert due_on_start(utc(2025, 6, 10, 1, 59, 59), TWO, UTC, never) is None


def test_at_and_after_the_window_today_is_due() -> None:
    assert due_on_start(utc(2025, 6, 10, 2, 0), TWO, UTC, never) == date(2025, 6, 10)
    assert due_on_start(utc(2025, 6, 10, 23, 59), TWO, UTC, never) == date(2025, 6, 10)


def test_nothing_is_due_when_today_already_ran() -> None:
    asked: list[date] = []

    def ran(day: date) -> bool:
        asked.append(day)
        return True

    assert due_on_start(utc(2025, 6, 10, 9, 0), TWO, UTC, ran) is None
    assert asked == [date(2025, 6, 10)]


def test_a_window_missed_yesterday_is_not_replayed() -> None:
    """Down from before yesterday's window until before today's: nothing runs at start, and
    nobody even asks about yesterday."""
    asked: list[date] = []

    def ran(day: date) -> bool:
        asked.append(day)
        return False

    assert due_on_start(utc(2025, 6, 10, 1, 0), TWO, UTC, ran) is None
    assert asked == []


def test_the_day_is_the_local_calendar_day_not_the_utc_one() -> None:
    # 03:30 UTC on the 10th is 23:30 on the 9th in New York: the 9th's 23:00 window passed.
    assert due_on_start(utc(2025, 6, 10, 3, 30), time(23, 0), NEW_YORK, never) == date(2025, 6, 9)
    # 05:00 UTC is past 02:00 in UTC, but it is 01:00 in New York: not yet.
    assert due_on_start(utc(2025, 6, 10, 5, 0), TWO, NEW_YORK, never) is None
    assert due_on_start(utc(2025, 6, 10, 6, 0), TWO, NEW_YORK, never) == date(2025, 6, 10)
    # Tokyo is ahead: 20:00 UTC on the 9th is 05:00 on the 10th there.
    tokyo = ZoneInfo("Asia/Tokyo")
    assert due_on_start(utc(2025, 6, 9, 20, 0), TWO, tokyo, never) == date(2025, 6, 10)


def test_a_window_in_the_spring_forward_gap_falls_an_hour_after_the_gap_opens() -> None:
    """2025-03-09 in New York: 02:00 EST jumps to 03:00 EDT, so 02:30 never happens. The window
    is 02:30 on the old offset: 07:30 UTC, 03:30 EDT."""
    day = date(2025, 3, 9)
    assert window_of(day, time(2, 30), NEW_YORK) == utc(2025, 3, 9, 7, 30)
    assert due_on_start(utc(2025, 3, 9, 7, 10), time(2, 30), NEW_YORK, never) is None  # 03:10
    assert due_on_start(utc(2025, 3, 9, 7, 30), time(2, 30), NEW_YORK, never) == day
    # The next day is on daylight time.
    assert window_of(day + timedelta(1), time(2, 30), NEW_YORK) == utc(2025, 3, 10, 6, 30)


def test_a_window_at_a_repeated_time_falls_at_its_first_occurrence() -> None:
    """2025-11-02 in New York: 01:00-02:00 happens twice. The window is the first 01:30 (EDT,
    05:30 UTC); at the second (06:30 UTC) the day has its run."""
    day = date(2025, 11, 2)
    assert window_of(day, time(1, 30), NEW_YORK) == utc(2025, 11, 2, 5, 30)
    assert due_on_start(utc(2025, 11, 2, 5, 30), time(1, 30), NEW_YORK, never) == day
    assert due_on_start(utc(2025, 11, 2, 6, 30), time(1, 30), NEW_YORK, lambda d: d == day) is None


@pytest.mark.parametrize("zone", [UTC, NEW_YORK, ZoneInfo("Europe/London"), ZoneInfo("Asia/Tokyo")])
@pytest.mark.parametrize("at", [time(0, 0), time(1, 30), time(2, 0), time(2, 30), time(23, 59)])
@pytest.mark.parametrize(
    "day",
    [date(2025, 3, 9), date(2025, 3, 30), date(2025, 6, 10), date(2025, 10, 26), date(2025, 11, 2)],
)
def test_the_window_is_the_instant_apschedulers_cron_first_fires(
    zone: tzinfo, at: time, day: date
) -> None:
    """The due rule and the cron job agree on every window, including both DST changes in the
    US (March 9, November 2) and in Europe (March 30, October 26), so a start just after the
    cron's firing and the firing itself name the same day."""
    trigger = CronTrigger(hour=at.hour, minute=at.minute, second=0, timezone=zone)
    midnight = datetime.combine(day, time(0), tzinfo=zone)  # the first fire at or after it
    fired = trigger.get_next_fire_time(None, midnight)
    assert fired.astimezone(UTC) == window_of(day, at, zone)


def test_now_must_say_its_zone() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        due_on_start(datetime(2025, 6, 10, 3, 0), TWO, UTC, never)
