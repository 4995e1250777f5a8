"""EventBridge Scheduler's schedule expressions as the local scheduler evaluates them: AWS's six-field cron
in the schedule's timezone (DST both ways, half-hour offsets, the year field, `?`, AWS's day numbers),
rate() and at(); expressions AWS would refuse (moto takes them) are refused with a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from infra.local.aws_cron import ScheduleExpressionError, fire_times, parse

DAILY_NINE = "cron(0 9 * * ? *)"
NEW_YORK, LONDON, KOLKATA = "America/New_York", "Europe/London", "Asia/Kolkata"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def hhmm(times: list[datetime]) -> list[str]:
    return [t.strftime("%m-%d %H:%M") for t in times]


def test_nine_in_new_york_is_13_utc_in_july_and_14_utc_in_january() -> None:
    july = fire_times(DAILY_NINE, NEW_YORK, utc(2026, 7, 1), utc(2026, 7, 3))
    january = fire_times(DAILY_NINE, NEW_YORK, utc(2026, 1, 1), utc(2026, 1, 3))

    assert hhmm(july) == ["07-01 13:00", "07-02 13:00"]
    assert hhmm(january) == ["01-01 14:00", "01-02 14:00"]
    assert all(t.tzinfo is UTC for t in july + january)


def test_nine_in_new_york_fires_exactly_once_on_both_transition_days() -> None:
    # 2026: clocks spring forward on Sunday 8 March and fall back on Sunday 1 November.
    spring = fire_times(DAILY_NINE, NEW_YORK, utc(2026, 3, 7), utc(2026, 3, 10))
    autumn = fire_times(DAILY_NINE, NEW_YORK, utc(2026, 10, 31), utc(2026, 11, 3))

    assert hhmm(spring) == ["03-07 14:00", "03-08 13:00", "03-09 13:00"]
    assert hhmm(autumn) == ["10-31 13:00", "11-01 14:00", "11-02 14:00"]


def test_a_time_the_spring_forward_skips_does_not_fire_that_day() -> None:
    # AWS: "if a cron expression falls on a non-existent date and time, your schedule invocation is skipped".
    fired = fire_times("cron(30 2 * * ? *)", NEW_YORK, utc(2026, 3, 7), utc(2026, 3, 10))

    assert hhmm(fired) == ["03-07 07:30", "03-09 06:30"]


def test_a_time_the_fall_back_repeats_fires_once_at_its_first_occurrence() -> None:
    # AWS: "your schedule runs only once and doesn't repeat its invocation"; 01:30 EDT is 05:30 UTC.
    fired = fire_times("cron(30 1 * * ? *)", NEW_YORK, utc(2026, 10, 31), utc(2026, 11, 3))

    assert hhmm(fired) == ["10-31 05:30", "11-01 05:30", "11-02 06:30"]


def test_an_hourly_schedule_fires_once_in_the_repeated_hour_and_continues_after_it() -> None:
    fired = fire_times("cron(0 * * * ? *)", NEW_YORK, utc(2026, 11, 1, 4, 30), utc(2026, 11, 1, 8, 30))

    assert hhmm(fired) == ["11-01 05:00", "11-01 07:00", "11-01 08:00"]  # 01:00 EDT, 02:00 EST, 03:00 EST


def test_a_check_inside_the_repeated_hour_does_not_fire_its_first_occurrence_again() -> None:
    second_pass = utc(2026, 11, 1, 6, 15)  # 01:15 EST, the hour's second pass: 01:30 already fired at 05:30

    fired = fire_times("cron(30 1 * * ? *)", NEW_YORK, second_pass, utc(2026, 11, 2, 12))

    assert hhmm(fired) == ["11-02 06:30"]


def test_london_both_ways() -> None:
    # 2026: BST starts Sunday 29 March at 01:00 UTC and ends Sunday 25 October at 01:00 UTC.
    spring = fire_times("cron(30 7 * * ? *)", LONDON, utc(2026, 3, 28), utc(2026, 3, 31))
    autumn = fire_times("cron(30 7 * * ? *)", LONDON, utc(2026, 10, 24), utc(2026, 10, 27))
    skipped = fire_times("cron(30 1 * * ? *)", LONDON, utc(2026, 3, 28), utc(2026, 3, 31))
    repeated = fire_times("cron(30 1 * * ? *)", LONDON, utc(2026, 10, 24, 12), utc(2026, 10, 26, 12))

    assert hhmm(spring) == ["03-28 07:30", "03-29 06:30", "03-30 06:30"]
    assert hhmm(autumn) == ["10-24 06:30", "10-25 07:30", "10-26 07:30"]
    assert hhmm(skipped) == ["03-28 01:30", "03-30 00:30"]  # 01:30 does not exist on 29 March
    assert hhmm(repeated) == ["10-25 00:30", "10-26 01:30"]  # 01:30 BST, then GMT the next day


def test_kolkatas_half_hour_offset() -> None:
    fired = fire_times("cron(30 7 * * ? *)", KOLKATA, utc(2026, 3, 7), utc(2026, 3, 9))

    assert hhmm(fired) == ["03-07 02:00", "03-08 02:00"]


def test_after_is_exclusive_and_until_inclusive() -> None:
    nine = utc(2026, 7, 1, 9)

    assert fire_times(DAILY_NINE, "UTC", nine, nine + timedelta(days=1)) == [nine + timedelta(days=1)]
    assert fire_times(DAILY_NINE, "UTC", nine - timedelta(microseconds=1), nine) == [nine]


def test_the_year_field_limits_the_years() -> None:
    only_2027 = fire_times("cron(0 9 1 1 ? 2027)", "UTC", utc(2026, 1, 1), utc(2030, 1, 1))
    odd_years = fire_times("cron(0 9 1 1 ? 2027/2)", "UTC", utc(2026, 1, 1), utc(2032, 1, 1))
    a_past_year = fire_times("cron(0 9 * * ? 2020)", "UTC", utc(2026, 1, 1), utc(2027, 1, 1))

    assert only_2027 == [utc(2027, 1, 1, 9)]
    assert [t.year for t in odd_years] == [2027, 2029, 2031]
    assert a_past_year == []


def test_day_of_week_numbers_run_from_sunday_as_one() -> None:
    # 1 March 2026 is a Sunday.
    sundays = fire_times("cron(0 9 ? * 1 *)", "UTC", utc(2026, 3, 1), utc(2026, 3, 15, 23))
    weekdays = fire_times("cron(0 9 ? * 2-6 *)", "UTC", utc(2026, 3, 1), utc(2026, 3, 8))
    by_name = fire_times("cron(0 9 ? * MON-FRI *)", "UTC", utc(2026, 3, 1), utc(2026, 3, 8))
    saturdays = fire_times("cron(0 9 ? * 7 *)", "UTC", utc(2026, 3, 1), utc(2026, 3, 8))

    assert [t.day for t in sundays] == [1, 8, 15]
    assert [t.day for t in weekdays] == [2, 3, 4, 5, 6] == [t.day for t in by_name]
    assert [t.day for t in saturdays] == [7]


def test_question_mark_lets_the_other_day_field_decide() -> None:
    fifteenth = fire_times("cron(0 9 15 * ? *)", "UTC", utc(2026, 1, 1), utc(2026, 4, 1))
    tuesdays = fire_times("cron(0 9 ? 3 TUE *)", "UTC", utc(2026, 1, 1), utc(2026, 4, 1))

    assert [(t.month, t.day) for t in fifteenth] == [(1, 15), (2, 15), (3, 15)]
    assert [t.day for t in tuesdays] == [3, 10, 17, 24, 31]


@pytest.mark.parametrize(
    ("expression", "days"),
    [
        ("cron(0 9 L * ? *)", [31, 30, 31]),  # the month's last day
        ("cron(0 9 15W * ? *)", [16, 15, 15]),  # the weekday nearest the 15th (15 March is a Sunday)
        ("cron(0 9 ? * 6L *)", [27, 24, 29]),  # the month's last Friday
        ("cron(0 9 ? * 3#2 *)", [10, 14, 12]),  # the second Tuesday
        ("cron(0 9 ? * FRI#1 *)", [6, 3, 1]),
    ],
)
def test_l_w_and_hash(expression: str, days: list[int]) -> None:
    fired = fire_times(expression, "UTC", utc(2026, 3, 1), utc(2026, 5, 31, 23))

    assert [t.day for t in fired] == days


def test_steps_ranges_lists_and_month_names() -> None:
    fired = fire_times("cron(1/20 9,17 ? JAN-FEB 2 *)", "UTC", utc(2026, 1, 4), utc(2026, 1, 5, 23))

    assert hhmm(fired) == ["01-05 09:01", "01-05 09:21", "01-05 09:41", "01-05 17:01", "01-05 17:21", "01-05 17:41"]


def test_at_is_read_in_its_timezone_and_fires_once() -> None:
    london_summer = fire_times("at(2026-07-01T10:00:00)", LONDON, utc(2026, 1, 1), utc(2027, 1, 1))
    in_utc = fire_times("at(2026-07-01T10:00:00)", None, utc(2026, 1, 1), utc(2027, 1, 1))

    assert london_summer == [utc(2026, 7, 1, 9)]
    assert in_utc == [utc(2026, 7, 1, 10)]
    assert fire_times("at(2026-07-01T10:00:00)", "UTC", utc(2026, 7, 1, 10), utc(2027, 1, 1)) == []


def test_rate_counts_plain_durations_from_its_start_across_dst() -> None:
    start = utc(2026, 3, 7, 12)

    fired = fire_times("rate(1 day)", NEW_YORK, start - timedelta(hours=1), utc(2026, 3, 9, 13), start=start)
    hourly = fire_times("rate(90 minutes)", "UTC", start, start + timedelta(hours=3), start=start)

    assert hhmm(fired) == ["03-07 12:00", "03-08 12:00", "03-09 12:00"]  # 24 h apart, DST or not
    assert hhmm(hourly) == ["03-07 13:30", "03-07 15:00"]


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("cron(0 9 * * * *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 9 ? * ? *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 9 * * ?)", "6 fields"),
        ("cron(0 0 9 * * ? *)", "6 fields"),
        ("cron(60 9 * * ? *)", "0-59"),
        ("cron(0 24 * * ? *)", "0-23"),
        ("cron(0 9 32 * ? *)", "1-31"),
        ("cron(0 9 ? 13 MON *)", "1-12"),
        ("cron(0 9 ? * 0 *)", "1-7"),
        ("cron(0 9 ? * 8 *)", "1-7"),
        ("cron(0 9 ? * MON/2 *)", "no step"),
        ("cron(0 9 ? * 3#1,6#3 *)", "stand alone"),
        ("cron(0 9 ? * 3#6 *)", "1-5"),
        ("cron(0 9 ? * FRI-MON *)", "backwards"),
        ("cron(0 9 * * ? 1969)", "1970-2199"),
        ("cron(0 9 * * ? 2150)", "beyond the local scheduler"),
        ("cron(0 9 LW * ? *)", "beyond the local scheduler"),
        ("cron(0 9 1,L * ? *)", "not a value"),
        ("cron(*/0 9 * * ? *)", "at least 1"),
        ("cron(0 9 * * ? *", "is not cron"),
        ("cron(0 nine * * ? *)", "not a value"),
        ("rate(0 minutes)", "positive number"),
        ("rate(2 weeks)", "minutes|hours|days"),
        ("rate(-5 minutes)", "is not cron"),
        ("at(2026-02-30T10:00:00)", "out of range"),
        ("at(2026-02-01 10:00:00)", "is not cron"),
        ("at(2026-02-01T10:00)", "is not cron"),
        ("0 9 * * *", "is not cron"),
        ("", "is not cron"),
    ],
)
def test_what_aws_would_refuse_is_refused_with_the_reason(expression: str, why: str) -> None:
    with pytest.raises(ScheduleExpressionError, match=why.replace("|", r"\|").replace("(", r"\(")):
        parse(expression)


def test_an_unknown_timezone_is_refused() -> None:
    with pytest.raises(ScheduleExpressionError, match="IANA"):
        parse(DAILY_NINE, "Mars/Olympus_Mons")
    with pytest.raises(ScheduleExpressionError, match="IANA"):
        parse(DAILY_NINE, "../etc/passwd")


def test_what_our_adapter_writes_is_read() -> None:
    from coach.domain.schedules import daily_cron

    assert fire_times(daily_cron("07:30"), KOLKATA, utc(2026, 3, 7), utc(2026, 3, 8)) == [utc(2026, 3, 7, 2)]
