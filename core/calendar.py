"""Wall-clock times in a team's time zone, and when weekly things happen (pure functions).

The DST rule, on purpose: a weekly 15:00 stays 15:00 local time across both changes. A wall
time that does not exist (the spring-forward gap) moves forward by the gap (02:30 -> 03:30);
one that occurs twice (fall-back) happens once, at the first. Python's ``zoneinfo`` with
``fold=0`` does exactly this, so the rule is one ``datetime.combine``; APScheduler's
``CronTrigger`` would skip or double such times, which is why it is not used for this.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.errors import InvalidInput
from core.parsing import parse_duration

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CLOCK = re.compile(r"^(?P<h>\d{1,2})(?::(?P<m>\d{2}))?$")
MAX_WEEKS = 52


def is_weekday(word: str) -> bool:
    return word.lower() in WEEKDAYS or word.lower() in _FULL


def parse_weekday(word: str) -> int:
    """``fri`` / ``Friday`` -> 4 (Monday is 0)."""
    key = word.lower()
    if key in WEEKDAYS:
        return WEEKDAYS.index(key)
    if key in _FULL:
        return _FULL.index(key)
    raise InvalidInput(f"`{word}` is not a day; use mon, tue, wed, thu, fri, sat or sun.")


def looks_like_clock(word: str) -> bool:
    return bool(re.fullmatch(r"\d{1,2}:\d{2}", word))


def parse_clock(word: str) -> time:
    """``15:00`` -> 15:00; ``25:00`` and ``9:75`` are refused."""
    match = _CLOCK.match(word)
    hours = int(match["h"]) if match else -1
    minutes = int(match["m"] or 0) if match else -1
    if not (0 <= hours <= 23 and 0 <= minutes <= 59):
        raise InvalidInput(f"`{word}` is not a time of day; use 24-hour HH:MM, e.g. `15:00`.")
    return time(hours, minutes)


def looks_like_weeks(word: str) -> bool:
    return bool(re.fullmatch(r"\d+w", word.lower()))


def parse_weeks(word: str) -> int:
    """``12w`` -> 12 weekly occurrences (1 to 52)."""
    digits = word.lower().removesuffix("w").lstrip("0") if looks_like_weeks(word) else ""
    count = int(digits) if 0 < len(digits) <= 2 else 0  # more digits: beyond MAX_WEEKS
    if not 1 <= count <= MAX_WEEKS:
        raise InvalidInput(f"`{word}` must be from `1w` to `{MAX_WEEKS}w` weekly occurrences.")
    return count


def at_wall_time(day: date, clock: time, zone: str) -> datetime:
    """The UTC moment of ``day`` at ``clock`` in ``zone``, by the DST rule above."""
    return datetime.combine(day, clock, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def first_day(after: datetime, weekday: int, clock: time, zone: str) -> date:
    """The first local date on ``weekday`` whose ``clock`` moment is after ``after``."""
    local = after.astimezone(ZoneInfo(zone)).date()
    day = local + timedelta(days=(weekday - local.weekday()) % 7)
    while at_wall_time(day, clock, zone) <= after:
        day += timedelta(days=7)
    return day


def weekly(first: date, clock: time, zone: str, count: int) -> list[datetime]:
    """``count`` weekly moments from ``first``, each at ``clock`` local time."""
    return [at_wall_time(first + timedelta(weeks=k), clock, zone) for k in range(count)]


def next_weekly(after: datetime, weekday: int, clock: time, zone: str) -> datetime:
    """The next moment after ``after`` that is ``weekday`` at ``clock`` in ``zone``."""
    return at_wall_time(first_day(after, weekday, clock, zone), clock, zone)


def parse_when(text: str) -> tuple[int, time] | None:
    """``fri 17:00`` -> (4, 17:00); ``off`` -> None (the weekly summary's setting)."""
    words = text.split()
    if [w.lower() for w in words] == ["off"]:
        return None
    if len(words) != 2:
        raise InvalidInput("Say a day and a time, e.g. `fri 17:00`, or `off`.")
    return parse_weekday(words[0]), parse_clock(words[1])


def local_text(moment: datetime, zone: str) -> str:
    """``Fri 4 Dec 2026, 15:00 Europe/Berlin`` (for readers without per-reader rendering)."""
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local:%a} {local.day} {local:%b %Y, %H:%M} {zone}"


def looks_like_reminders(word: str) -> bool:
    return word.lower().startswith("remind:")


def parse_reminders(word: str) -> tuple[int, ...]:
    """``remind:24h,10m`` -> (86400, 600); ``remind:off`` -> () (a program's own reminders)."""
    body = word.split(":", 1)[1].strip().lower()
    if body in ("off", "none", ""):
        return ()
    return tuple(sorted({parse_duration(part) for part in body.split(",") if part}, reverse=True))
