"""The text grammar of ``/interview`` sub-commands, shared by Slack and the console."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import time

from core.calendar import (
    is_weekday,
    looks_like_clock,
    looks_like_reminders,
    looks_like_weeks,
    parse_clock,
    parse_reminders,
    parse_weekday,
    parse_weeks,
)
from core.errors import InvalidInput
from core.parsing import looks_like_duration, looks_like_tokens, parse_duration, parse_tokens

USAGE = {
    "start": "/interview start @candidate [45m|1h|1h30m] [20k|15000] [challenge]",
    "extend": "/interview extend [@candidate] +10m  or  /interview extend [@candidate] +5k",
    "pause": "/interview pause [@candidate]",
    "resume": "/interview resume [@candidate]",
    "end": "/interview end [@candidate]",
    "schedule": (
        "/interview schedule @candidate [mon..sun] [15:00] [12w] [45m] [20k] [challenge] "
        "[remind:24h,1h,5m|off]"
    ),
    "schedules": "/interview schedules",
    "unschedule": "/interview unschedule <program id>",
    "skip": "/interview skip <program id>",
    "summary": "/interview summary",
    "report": "/interview report @candidate",
    "export": "/interview export @candidate",
    "compare": "/interview compare @candidate @candidate [@candidate] [@candidate]",
    "status": "/interview status",
    "challenges": "/interview challenges",
    "help": "/interview help",
    "config": (
        "/interview config channel #channel | team-channel #channel | interviewers @user ... "
        "| timezone Europe/Berlin | summary fri 17:00 (or off)"
    ),
}

HELP_TEXT = "Interview Buddy commands:\n" + "\n".join(f"• `{form}`" for form in USAGE.values())

MentionResolver = Callable[[str], str | None]


@dataclass(frozen=True)
class Command:
    """A parsed ``/interview`` command."""

    name: str
    candidate: str | None = None
    seconds: int | None = None
    tokens: int | None = None
    challenge: str | None = None
    args: tuple[str, ...] = field(default_factory=tuple)
    weekday: int | None = None  # schedule
    clock: time | None = None
    weeks: int | None = None
    program: str | None = None  # unschedule, skip
    reminders: tuple[int, ...] | None = None  # schedule: the program's own reminders
    candidates: tuple[str, ...] = ()  # compare


def usage_error(name: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{problem}\nUsage: `{USAGE[name]}`")


def parse_command(text: str, resolve_mention: MentionResolver) -> Command:
    """Parse the text after ``/interview``; raises InvalidInput with the right form."""
    words = text.split()
    if not words:
        return Command("help")
    name, rest = words[0].lower(), words[1:]
    if name not in USAGE:
        raise InvalidInput(f"`{words[0]}` is not an /interview command.\n{HELP_TEXT}")
    if name in ("status", "challenges", "help", "schedules", "summary"):
        return Command(name)
    if name in ("unschedule", "skip"):
        if len(rest) != 1:
            raise usage_error(name, "Name the program by its id (`/interview schedules`).")
        return Command(name, program=rest[0].lower())
    if name in ("report", "export"):
        candidate = resolve_mention(rest[0]) if len(rest) == 1 else None
        if candidate is None:
            raise usage_error(name, "Mention the candidate.")
        return Command(name, candidate=candidate)
    if name == "compare":
        people = [resolve_mention(word) for word in rest]
        if any(p is None for p in people) or not 2 <= len(set(people)) <= 4:
            raise usage_error(name, "Mention two to four different candidates.")
        return Command(name, candidates=tuple(dict.fromkeys(p for p in people if p)))
    if name == "config":
        if not rest:
            raise usage_error(name, "Say what to configure.")
        return Command(name, args=tuple(rest))

    candidate = resolve_mention(rest[0]) if rest else None
    if candidate is not None:
        rest = rest[1:]
    if name in ("start", "schedule") and candidate is None:
        raise usage_error(name, "Mention the candidate first.")

    try:
        return _with_options(name, candidate, rest)
    except InvalidInput as exc:
        if "\nUsage:" in str(exc):
            raise
        raise usage_error(name, str(exc)) from None


def _with_options(name: str, candidate: str | None, rest: list[str]) -> Command:
    seconds = tokens = weekday = weeks = None
    clock: time | None = None
    challenge = None
    reminders: tuple[int, ...] | None = None
    for word in rest:
        if name == "schedule" and looks_like_reminders(word):
            if reminders is not None:
                raise usage_error(name, "Give the reminders only once.")
            reminders = parse_reminders(word)
        elif name == "schedule" and (is_weekday(word) or word.lower().endswith("day")):
            if weekday is not None:
                raise usage_error(name, "Give the day only once.")
            weekday = parse_weekday(word)
        elif name == "schedule" and looks_like_clock(word):
            if clock is not None:
                raise usage_error(name, "Give the time only once.")
            clock = parse_clock(word)
        elif name == "schedule" and looks_like_weeks(word):
            if weeks is not None:
                raise usage_error(name, "Give the number of weeks only once.")
            weeks = parse_weeks(word)
        elif name in ("start", "extend", "schedule") and looks_like_duration(word):
            if seconds is not None:
                raise usage_error(name, "Give the duration only once.")
            seconds = parse_duration(word)
        elif name in ("start", "extend", "schedule") and looks_like_tokens(word):
            if tokens is not None:
                raise usage_error(name, "Give the token budget only once.")
            tokens = parse_tokens(word)
        elif word.lstrip("+-")[:1].isdigit():
            raise usage_error(
                name,
                f"`{word}` is neither a duration (like `45m`) nor a token budget (like `20k`).",
            )
        elif (
            name in ("start", "schedule")
            and challenge is None
            and not word.startswith(("+", "-", "<"))
            and ":" not in word
        ):
            challenge = word.lower()
        else:
            raise usage_error(name, f"I don't understand `{word}`.")
    if name == "extend" and seconds is None and tokens is None:
        raise usage_error(name, "Say how much to add.")
    return Command(
        name,
        candidate=candidate,
        seconds=seconds,
        tokens=tokens,
        challenge=challenge,
        weekday=weekday,
        clock=clock,
        weeks=weeks,
        reminders=reminders,
    )
