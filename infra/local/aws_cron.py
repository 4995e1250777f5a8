"""EventBridge Scheduler's schedule expressions, evaluated as AWS does, for the local scheduler emulator.

  cron(minutes hours day-of-month month day-of-week year)   in the schedule's ScheduleExpressionTimezone
  rate(value minutes|hours|days)                             every value units from the schedule's start
  at(yyyy-mm-ddThh:mm:ss)                                    once, read in the schedule's timezone

croniter does the calendar arithmetic; this module checks AWS's grammar first (moto accepts anything), and
translates what croniter reads differently: AWS numbers days of the week 1-7 from Sunday (croniter 0-6),
writes "last Friday" as 6L (croniter L5), and has a year field (croniter's seventh, after seconds).

Daylight saving time, as EventBridge Scheduler documents it: when the clocks spring forward, an occurrence
at a local time that does not exist that day is skipped; when they fall back, a local time that happens
twice fires once. AWS does not say which of the two; we fire the first (the earlier UTC instant). Rates
are plain durations (a day is 24 hours, whatever the clocks do). An at() time that falls in a spring-forward
gap is read with the offset before the jump (AWS does not document this case; our adapter writes UTC).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

MAX_YEAR = 2099  # croniter's last year; AWS accepts up to 2199, which this emulator cannot honour
# How many candidate times one search may look at before giving up: a cron whose every match in reach
# falls in DST gaps or before the start would otherwise loop; real schedules need a handful.
_SEARCH_LIMIT = 2000

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")  # AWS: SUN = 1 ... SAT = 7


class ScheduleExpressionError(ValueError):
    """A schedule expression or timezone EventBridge Scheduler would refuse, or that we cannot honour."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # NAMES[i] means low + i
    steps: bool = True


_MINUTES = _Field("minutes", 0, 59)
_HOURS = _Field("hours", 0, 23)
_DAY_OF_MONTH = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, MONTHS)
_DAY_OF_WEEK = _Field("day-of-week", 1, 7, DAYS, steps=False)
_YEAR = _Field("year", 1970, 2199)

_ELEMENT = re.compile(r"^(?P<base>\*|[A-Z0-9]+(?:-[A-Z0-9]+)?)(?:/(?P<step>\d+))?$")


def _value(field: _Field, token: str, expression: str) -> int:
    if token.isdigit():
        number = int(token)
    elif token in field.names:
        number = field.low + field.names.index(token)
    else:
        raise ScheduleExpressionError(f"{expression}: {token!r} is not a value of the {field.name} field")
    if not field.low <= number <= field.high:
        raise ScheduleExpressionError(
            f"{expression}: {field.name} must be within {field.low}-{field.high}, got {number}"
        )
    if field is _YEAR and number > MAX_YEAR:
        raise ScheduleExpressionError(f"{expression}: years after {MAX_YEAR} are beyond the local scheduler (croniter)")
    return number


def _translate_list(field: _Field, text: str, expression: str, shift: int = 0) -> str:
    """A comma list of `*`, values, ranges and steps, checked and rewritten for croniter (values + shift)."""
    parts = []
    for element in text.split(","):
        match = _ELEMENT.match(element)
        if match is None:
            raise ScheduleExpressionError(f"{expression}: {element!r} is not valid in the {field.name} field")
        base, step = match["base"], match["step"]
        if step is not None and not field.steps:
            raise ScheduleExpressionError(f"{expression}: the {field.name} field takes no step ({element!r})")
        if step is not None and int(step) < 1:
            raise ScheduleExpressionError(f"{expression}: a step must be at least 1 ({element!r})")
        if base == "*":
            translated = "*"
        elif "-" in base:
            first, last = (_value(field, token, expression) for token in base.split("-"))
            if first > last:  # AWS documents no wrap-around; refuse rather than guess
                raise ScheduleExpressionError(f"{expression}: the range {base!r} runs backwards")
            translated = f"{first + shift}-{last + shift}"
        else:
            translated = str(_value(field, base, expression) + shift)
        parts.append(translated if step is None else f"{translated}/{step}")
    return ",".join(parts)


def _day_of_month(text: str, expression: str) -> str:
    if text == "L":
        return "l"
    if text == "LW":
        raise ScheduleExpressionError(f"{expression}: LW (last weekday of the month) is beyond the local scheduler")
    if match := re.fullmatch(r"(\d+)W", text):
        return f"{_value(_DAY_OF_MONTH, match[1], expression)}w"
    return _translate_list(_DAY_OF_MONTH, text, expression)


def _day_of_week(text: str, expression: str) -> str:
    """AWS 1-7 (SUN-SAT) to croniter 0-6; `L` alone is the week's last day, Saturday; `6L` the month's last Friday."""
    if text == "L":
        return "6"
    if match := re.fullmatch(r"([A-Z0-9]+)L", text):
        return f"L{_value(_DAY_OF_WEEK, match[1], expression) - 1}"
    if match := re.fullmatch(r"([A-Z0-9]+)#(\d+)", text):
        nth = int(match[2])
        if not 1 <= nth <= 5:
            raise ScheduleExpressionError(f"{expression}: {text!r} asks for a week of the month outside 1-5")
        return f"{_value(_DAY_OF_WEEK, match[1], expression) - 1}#{nth}"
    if "#" in text or "L" in text:  # no day's name holds an L: this is an L or # inside a list or range
        raise ScheduleExpressionError(f"{expression}: # and L stand alone in the day-of-week field ({text!r})")
    return _translate_list(_DAY_OF_WEEK, text, expression, shift=-1)


@dataclass(frozen=True)
class Cron:
    """A cron expression in a timezone: occurrences are local wall-clock times, mapped to UTC."""

    expression: str
    zone: ZoneInfo
    croniter_expression: str  # minutes hours dom month dow second year, croniter's seven fields

    def next_after(self, moment: datetime, start: datetime | None = None) -> datetime | None:
        """The first occurrence strictly after `moment` (aware), as an aware UTC datetime; None when none is left.

        croniter walks the local wall clock (given to it as UTC, which has no DST), so its arithmetic never
        sees a transition; each wall time is then placed in the zone: skipped if the clocks jumped over it,
        the earlier instant if they fell back over it (so a repeated hour fires once)."""
        wall = moment.astimezone(self.zone).replace(tzinfo=UTC)
        walk = croniter(self.croniter_expression, wall, ret_type=datetime)
        for _ in range(_SEARCH_LIMIT):
            try:
                candidate: datetime = walk.get_next()
            except CroniterBadDateError:  # no match left (a past year, 31 February)
                return None
            instant = _instant(candidate.replace(tzinfo=None), self.zone)
            if instant is not None and instant > moment:
                return instant
        return None


@dataclass(frozen=True)
class Rate:
    """Every `interval` from the schedule's start (AWS: its StartDate, else when it was created)."""

    expression: str
    interval: timedelta

    def next_after(self, moment: datetime, start: datetime | None = None) -> datetime | None:
        if start is None:
            raise ValueError("a rate schedule needs the moment it started")
        if start > moment:
            return start.astimezone(UTC)
        periods = (moment - start) // self.interval + 1
        return (start + periods * self.interval).astimezone(UTC)


@dataclass(frozen=True)
class At:
    """Once, at a local time of the schedule's timezone."""

    expression: str
    when: datetime  # aware, UTC

    def next_after(self, moment: datetime, start: datetime | None = None) -> datetime | None:
        return self.when if self.when > moment else None


Timing = Cron | Rate | At

_RATE_UNITS = {"minute": 1, "minutes": 1, "hour": 60, "hours": 60, "day": 1440, "days": 1440}


@lru_cache(maxsize=4096)
def parse(expression: str, timezone: str | None = "UTC") -> Timing:
    """The timing of a ScheduleExpression in a ScheduleExpressionTimezone (None or "" mean UTC, as in AWS)."""
    zone = _zone(timezone or "UTC")
    text = expression.strip()
    if match := re.fullmatch(r"cron\((.*)\)", text):
        return _cron(text, match[1], zone)
    if match := re.fullmatch(r"rate\((\d+) +([a-z]+)\)", text):
        value, unit = int(match[1]), match[2]
        if value < 1 or unit not in _RATE_UNITS:
            raise ScheduleExpressionError(f"{expression}: write rate(<positive number> minutes|hours|days)")
        return Rate(text, timedelta(minutes=value * _RATE_UNITS[unit]))
    if match := re.fullmatch(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)", text):
        try:
            local = datetime.strptime(match[1], "%Y-%m-%dT%H:%M:%S")
        except ValueError as exc:
            raise ScheduleExpressionError(f"{expression}: {exc}") from None
        return At(text, local.replace(tzinfo=zone).astimezone(UTC))
    raise ScheduleExpressionError(
        f"{expression!r} is not cron(min hour day-of-month month day-of-week year), "
        "rate(value unit) or at(yyyy-mm-ddThh:mm:ss)"
    )


def _cron(expression: str, body: str, zone: ZoneInfo) -> Cron:
    fields = body.upper().split()
    if len(fields) != 6:
        raise ScheduleExpressionError(
            f"{expression}: cron takes 6 fields (minutes hours day-of-month month day-of-week year), got {len(fields)}"
        )
    minutes, hours, day_of_month, month, day_of_week, year = fields
    if (day_of_month == "?") == (day_of_week == "?"):
        raise ScheduleExpressionError(f"{expression}: exactly one of day-of-month and day-of-week must be ?")
    translated = [
        _translate_list(_MINUTES, minutes, expression),
        _translate_list(_HOURS, hours, expression),
        "*" if day_of_month == "?" else _day_of_month(day_of_month, expression),
        _translate_list(_MONTH, month, expression),
        "*" if day_of_week == "?" else _day_of_week(day_of_week, expression),
        "0",
        _translate_list(_YEAR, year, expression),
    ]
    croniter_expression = " ".join(translated)
    try:  # what croniter cannot read, we cannot honour
        croniter(croniter_expression, datetime(2000, 1, 1, tzinfo=UTC))
    except (CroniterError, ValueError) as exc:
        raise ScheduleExpressionError(f"{expression}: {exc}") from None
    return Cron(expression, zone, croniter_expression)


def _zone(timezone: str) -> ZoneInfo:
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleExpressionError(f"{timezone!r} is not an IANA timezone") from None


def _instant(wall: datetime, zone: ZoneInfo) -> datetime | None:
    """The UTC instant a naive local time names: the earlier one when it happens twice, None when never."""
    instant = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != wall:
        return None
    return instant


def fire_times(
    expression: str,
    timezone: str | None,
    after: datetime,
    until: datetime,
    *,
    start: datetime | None = None,
) -> list[datetime]:
    """Every occurrence in (after, until], as aware UTC datetimes, oldest first. `start`: a rate's origin."""
    timing = parse(expression, timezone)
    times: list[datetime] = []
    moment = after
    while (following := timing.next_after(moment, start)) is not None and following <= until:
        times.append(following)
        moment = following
    return times
