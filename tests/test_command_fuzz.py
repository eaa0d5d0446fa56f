"""Fuzzing what people type (issue 11): the ``/interview`` grammar (Slack and the console),
the Discord options, and the schedule pieces of ``core.calendar``.

Every input is either understood (a :class:`Command` whose values are within the engine's
limits) or refused with :class:`InvalidInput` that shows the command's ``Usage:`` line (or,
for an unknown sub-command, the list of commands). Nothing else is ever raised, and whatever
the parsers produce, the engine itself refuses only with a :class:`DomainError` (a private,
friendly answer), never with a crash.

Crashes these found and that are fixed: a token count with hundreds of digits
(``float`` -> inf -> ``OverflowError``), a duration or a number of weeks with more than
4300 digits (``int()`` refuses them: ``ValueError``), ``config timezone Europe`` (a folder
of the zone database: ``IsADirectoryError``), and Discord numbers outside the ranges the
client enforces (discord.py does not check them: ``minutes`` of 10**15 overflowed the
deadline).
"""

from __future__ import annotations

import asyncio
from datetime import time
from types import SimpleNamespace
from typing import Any

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from adapters.discord.commands import (
    DISCORD_USAGE,
    compare_command,
    discord_wording,
    extend_command,
    program_command,
    schedule_command,
    start_command,
    summary_command,
    timezone_command,
)
from adapters.slack.mentions import channel_id, user_id
from core.calendar import (
    _FULL,
    MAX_WEEKS,
    WEEKDAYS,
    is_weekday,
    looks_like_clock,
    looks_like_reminders,
    looks_like_weeks,
    parse_clock,
    parse_reminders,
    parse_weekday,
    parse_weeks,
    parse_when,
)
from core.commands import HELP_TEXT, USAGE, Command, parse_command
from core.dispatch import run_command
from core.errors import DomainError, InvalidInput
from core.models import Actor
from core.parsing import (
    MAX_DURATION_SECONDS,
    MAX_TOKEN_BUDGET,
    looks_like_duration,
    looks_like_tokens,
    parse_duration,
    parse_tokens,
)
from tests.conftest import make_engine

# Slack-shaped ids (no "_"), so that mentions of them parse.
INTERVIEWER = Actor("UINTVW1", is_interviewer=True)
CANDIDATE = "UCANDI1"
FUZZ = settings(max_examples=400, deadline=None)
ENGINE_FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
DISCORD_INT = st.integers(-(2**53), 2**53)  # what an INTEGER option can carry
DISCORD_STR = st.text(max_size=120) | st.text(alphabet="0123456789:hmsw,+- ", max_size=40)


def assert_helpful(error: InvalidInput, usage: dict[str, str] = USAGE) -> None:
    """The refusal names the form to use: a ``Usage:`` line, or the list of commands."""
    text = str(error)
    assert text.strip(), "an empty refusal"
    assert "\nUsage: `" in text or HELP_TEXT in text, text
    if "\nUsage: `" in text:
        form = text.rsplit("\nUsage: `", 1)[1].removesuffix("`")
        assert form in usage.values(), form


def assert_within_limits(command: Command) -> None:
    """What a parsed command carries is within what the engine allows."""
    assert command.name in USAGE
    if command.seconds is not None:
        assert 1 <= command.seconds <= MAX_DURATION_SECONDS
    if command.tokens is not None:
        assert 1 <= command.tokens <= MAX_TOKEN_BUDGET
    if command.weekday is not None:
        assert 0 <= command.weekday <= 6
    if command.clock is not None:
        assert isinstance(command.clock, time)
    if command.weeks is not None:
        assert 1 <= command.weeks <= MAX_WEEKS
    if command.reminders is not None:
        assert all(1 <= r <= MAX_DURATION_SECONDS for r in command.reminders)
        assert list(command.reminders) == sorted(set(command.reminders), reverse=True)
    if command.name == "compare":
        assert 2 <= len(command.candidates) <= 4
        assert len(set(command.candidates)) == len(command.candidates)
    if command.name in ("start", "schedule", "report", "export"):
        assert command.candidate


def parse(text: str) -> Command | None:
    """``parse_command`` as Slack and the console call it; None when refused helpfully."""
    try:
        command = parse_command(text, user_id)
    except InvalidInput as error:
        assert_helpful(error)
        return None
    assert_within_limits(command)
    if command.name == "extend":  # (Discord leaves "how much?" to the engine)
        assert command.seconds is not None or command.tokens is not None
    return command


# ---------------------------------------------------------------------------- the grammar

digits = st.one_of(
    st.integers(0, 100_000).map(str),
    st.integers(0, 10**40).map(str),
    st.builds(lambda zeros, n: "0" * zeros + str(n), st.integers(0, 6000), st.integers(0, 99)),
    st.integers(4290, 5100).map(lambda n: "9" * n),
    st.sampled_from(["٣", "١٥", "²", ""]),  # other scripts' digits, a superscript, nothing
)
sign = st.sampled_from(["", "+", "-", "++"])
duration = st.builds(
    lambda s, h, m, sec, order: s + "".join(p for p in (h, m, sec)[:: order or 1] if p),
    sign,
    st.none() | digits.map(lambda d: d + "h"),
    st.none() | digits.map(lambda d: d + "m"),
    st.none() | digits.map(lambda d: d + "s"),
    st.sampled_from([1, -1]),
).map(lambda text: text or "0m")
token_count = st.builds(
    lambda s, n, frac, k, sep: s + n + frac + k + sep,
    sign,
    digits,
    st.sampled_from(["", ".5", ".0", ".000001", ".", "." + "0" * 400 + "1"]),
    st.sampled_from(["", "k", "K", "kk"]),
    st.sampled_from(["", "_000", ",000"]),
)
weekday = st.sampled_from([*WEEKDAYS, *_FULL, "FRI", "Friday", "someday", "day", "fri."])
clock = st.builds(lambda h, m: f"{h}:{m}", digits, digits) | st.sampled_from(
    ["15:00", "25:00", "9:75", "00:00", "23:59", "7:5", ":30", "15:"]
)
weeks = digits.map(lambda d: d + "w") | st.sampled_from(["12w", "0w", "53w", "W", "12W"])
reminders = st.builds(
    lambda parts: "remind:" + ",".join(parts),
    st.lists(duration | st.sampled_from(["off", "none", "", "24h", "x"]), max_size=4),
) | st.sampled_from(["remind:", "remind:off", "REMIND:1h", "remind::", "remind:0m"])
mention = st.one_of(
    st.builds(lambda n, name: f"<@U{n}|{name}>", st.integers(0, 10**12), st.text(max_size=6)),
    st.builds(lambda n: f"<@W{n}>", st.integers(0, 999)),
    st.from_regex(r"U[A-Z0-9]{2,10}", fullmatch=True),
    st.sampled_from(["<@>", "<@U1", "@alice", "<#C0123|general>", "<@u1>", "<!channel>"]),
)
channel = st.builds(lambda n: f"<#C{n}|x>", st.integers(0, 999)) | st.sampled_from(["#x", "<#>"])
zone = st.sampled_from(
    ["Europe/Berlin", "UTC", "Europe", "Etc", "../etc/passwd", "/UTC", "", "Mars/Base", "\x00"]
) | st.text(max_size=20)
slug = st.sampled_from(["two-sum", "lru-cache", "TWO-SUM", "nope", "a:b", "-x", "<x>"])
junk = st.text(min_size=1, max_size=12)
option_word = st.one_of(duration, token_count, weekday, clock, weeks, reminders, slug)
word = st.one_of(option_word, option_word, option_word, mention, channel, zone, junk)
sub_command = st.sampled_from([*USAGE, *USAGE, *USAGE, "frobnicate", "", "start!"]).flatmap(
    lambda name: st.sampled_from([name, name, name.upper(), name.title()])
)
grammar_text = st.builds(
    lambda name, who, words, glue: glue.join([name, *who, *words]),
    sub_command,
    st.lists(mention, max_size=4),  # usually the candidate comes first
    st.lists(word, max_size=6),
    st.sampled_from([" ", "  ", "\t", " \n "]),
)


@FUZZ
@given(st.text())
@example("start <@U1> " + "9" * 400)  # was OverflowError (float inf)
@example("start <@U1> " + "9" * 5000 + "m")  # was ValueError (int() of > 4300 digits)
@example("schedule <@U1> " + "9" * 5000 + "w")
@example("schedule <@U1> remind:" + "9" * 5000 + "m")
@example("extend +" + "9" * 400 + "k")
def test_arbitrary_text_is_a_command_or_a_helpful_refusal(text: str) -> None:
    parse(text)


# The candidate and then options: what start, extend and schedule go on to parse.
options_text = st.builds(
    lambda name, who, words: " ".join([name, who, *words]),
    st.sampled_from(["start", "extend", "schedule", "Schedule", "EXTEND"]),
    st.builds(lambda n: f"<@U{n}|x>", st.integers(1, 10**6))
    | st.from_regex(r"U[A-Z0-9]{2,10}", fullmatch=True),
    st.lists(option_word, max_size=3),
)


@settings(max_examples=1500, deadline=None)
@given(grammar_text | options_text)
def test_text_built_from_the_grammar_is_a_command_within_limits_or_a_usage(text: str) -> None:
    parse(text)


@FUZZ
@given(
    st.sampled_from(["start", "schedule", "extend"]),
    st.builds(lambda n: f"<@U{n}|x>", st.integers(1, 10**6)),
    st.permutations(["45m", "20k", "two-sum", "fri", "15:00", "12w", "remind:24h,1h"]),
)
def test_options_in_any_order_mean_the_same(name: str, who: str, words: list[str]) -> None:
    allowed = {
        "start": {"45m", "20k", "two-sum"},
        "extend": {"45m", "20k"},
        "schedule": set(words),
    }[name]
    command = parse(" ".join([name, who, *(w for w in words if w in allowed)]))
    assert command is not None
    assert (command.seconds, command.tokens) == (2700, 20000)
    if name != "extend":
        assert command.challenge == "two-sum"
    if name == "schedule":
        assert (command.weekday, command.clock, command.weeks) == (4, time(15, 0), 12)
        assert command.reminders == (86400, 3600)


# ---------------------------------------------------------------------------- calendar


def refused_plainly(call: Any, *args: Any) -> Any:
    """``call(*args)``, or None when it refuses with a non-empty InvalidInput."""
    try:
        return call(*args)
    except InvalidInput as error:
        assert str(error).strip()
        return None


@FUZZ
@given(st.one_of(word, st.text(max_size=30)))
def test_the_schedule_pieces_refuse_only_with_invalid_input(text: str) -> None:
    day = refused_plainly(parse_weekday, text)
    assert day is None or (0 <= day <= 6 and is_weekday(text))
    at = refused_plainly(parse_clock, text)
    assert at is None or isinstance(at, time)
    if at is not None:
        assert looks_like_clock(text) or text.isdigit() or len(text) <= 2
    count = refused_plainly(parse_weeks, text)
    assert count is None or (1 <= count <= MAX_WEEKS and looks_like_weeks(text))
    if looks_like_reminders(text):
        offsets = refused_plainly(parse_reminders, text)
        assert offsets is None or all(1 <= s <= MAX_DURATION_SECONDS for s in offsets)
    seconds = refused_plainly(parse_duration, text)
    assert seconds is None or (1 <= seconds <= MAX_DURATION_SECONDS and looks_like_duration(text))
    tokens = refused_plainly(parse_tokens, text)
    assert tokens is None or 1 <= tokens <= MAX_TOKEN_BUDGET
    if tokens is not None:
        assert looks_like_tokens(text.replace("_", "").replace(",", ""))


@FUZZ
@given(st.builds(lambda a, b: f"{a} {b}", weekday | junk, clock | junk) | st.text(max_size=20))
@example("off")
@example("OFF")
def test_the_summary_time_is_a_day_and_a_time_or_off(text: str) -> None:
    when = refused_plainly(parse_when, text)
    if when is not None:
        day, at = when
        assert 0 <= day <= 6 and isinstance(at, time)


# ---------------------------------------------------------------------------- Discord


def user(bot: bool = False) -> Any:
    return SimpleNamespace(id=4242, bot=bot)


def from_options(build: Any, *args: Any) -> Command | None:
    """A Discord option handler: a Command within limits, or a refusal with its usage."""
    try:
        command: Command = build(*args)
    except InvalidInput as error:
        assert_helpful(error)
        # shown with the Discord form of the usage
        assert "\nUsage: `/interview " in discord_wording(str(error))
        assert any(form in discord_wording(str(error)) for form in DISCORD_USAGE.values())
        return None
    assert_within_limits(command)
    return command


optional_int = st.none() | DISCORD_INT | st.integers(-2, 1442) | st.integers(0, 10_000_001)
optional_str = st.none() | DISCORD_STR | slug | clock | weekday


@FUZZ
@given(st.booleans(), optional_int, optional_int, optional_str)
@example(False, 10**15, None, None)  # was an OverflowError computing the deadline
@example(False, 0, 0, "")
def test_discord_start_and_extend_options(
    bot: bool, minutes: int | None, tokens: int | None, challenge: str | None
) -> None:
    started = from_options(start_command, user(bot), minutes, tokens, challenge)
    if started is not None:
        assert not bot and started.candidate == "4242"
        assert started.challenge is None or started.challenge == started.challenge.strip().lower()
    from_options(extend_command, user(bot), minutes, tokens)


@FUZZ
@given(
    st.booleans(),
    optional_str,
    optional_str,
    optional_int,
    optional_int,
    optional_int,
    optional_str,
    st.none() | DISCORD_STR | reminders.map(lambda r: r.removeprefix("remind:")),
)
def test_discord_schedule_options(
    bot: bool,
    day: str | None,
    at: str | None,
    weeks: int | None,
    minutes: int | None,
    tokens: int | None,
    challenge: str | None,
    remind: str | None,
) -> None:
    from_options(schedule_command, user(bot), day, at, weeks, minutes, tokens, challenge, remind)


@FUZZ
@given(st.sampled_from(["unschedule", "skip"]), DISCORD_STR, DISCORD_STR, zone)
def test_discord_program_and_config_options(name: str, program: str, when: str, tz: str) -> None:
    found = from_options(program_command, name, program)
    assert found is None or (found.program and found.program == found.program.strip().lower())
    summary = summary_command(when)
    assert summary.args[0] == "summary" and len(summary.args) >= 2
    assert timezone_command(tz).args == ("timezone", tz.strip())
    people = [SimpleNamespace(id=i, bot=False) for i in (1, 2, 2)]
    assert compare_command(*people, None).candidates == ("1", "2", "2")


# ---------------------------------------------------------------------------- the engine


async def engine_run(command: Command, actor: Actor) -> None:
    """Run ``command`` on an engine with one interview running; only refusals come out."""
    engine = await make_engine()
    service = engine.service
    try:
        await service.lifecycle.start(engine.workspace, INTERVIEWER, CANDIDATE)
        try:
            await run_command(
                service,
                engine.workspace,
                actor,
                command,
                resolve_channel=channel_id,
                resolve_user=user_id,
                platform_data={"parent_channel": "1"},
            )
            event(f"engine: {command.name} done")
        except DomainError as refusal:
            assert str(refusal).strip()
            event(f"engine: {command.name} refused ({type(refusal).__name__})")
    finally:
        await service.close()


# Text that mostly parses: the engine sees every kind of command, within the limits.
someone = st.sampled_from([f"<@{CANDIDATE}|c>", "<@UOTHER1|o>", f"<@{INTERVIEWER.user_id}>"])
minutes_word = st.integers(1, 1440).map(lambda m: f"{m}m") | st.integers(1, 24).map(
    lambda h: f"{h}h"
)
budget_word = st.integers(1, 10_000).map(lambda k: f"{k}k") | st.integers(1, 10_000_000).map(str)
plus = st.sampled_from(["", "+"])


def sentence(name: str, *parts: st.SearchStrategy[list[str]]) -> st.SearchStrategy[str]:
    return st.tuples(*parts).map(lambda lists: " ".join([name, *(w for ws in lists for w in ws)]))


def some(*words: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    """Any subset of ``words`` (each at most once), in any order."""
    return st.tuples(*(st.none() | w for w in words)).flatmap(
        lambda chosen: st.permutations([w for w in chosen if w is not None])
    )


one = someone.map(lambda w: [w])
valid_text = st.one_of(
    sentence("start", one, some(minutes_word, budget_word, slug)),
    sentence(
        "extend",
        st.none().map(lambda _: []) | one,
        some(st.tuples(plus, minutes_word).map("".join), st.tuples(plus, budget_word).map("".join)),
    ),
    sentence(
        "schedule",
        one,
        some(
            st.sampled_from(WEEKDAYS),
            st.sampled_from(["15:00", "00:00", "23:59", "9:30"]),
            st.integers(1, 52).map(lambda n: f"{n}w"),
            minutes_word,
            budget_word,
            slug,
            st.sampled_from(["remind:24h,1h,5m", "remind:off", "remind:10m"]),
        ),
    ),
    st.tuples(st.sampled_from(["pause", "resume", "end"]), st.none() | someone).map(
        lambda t: " ".join(w for w in t if w)
    ),
    st.tuples(st.sampled_from(["report", "export"]), someone).map(" ".join),
    st.lists(someone, min_size=2, max_size=4).map(lambda ws: " ".join(["compare", *ws])),
    st.sampled_from(
        [
            "status",
            "challenges",
            "help",
            "schedules",
            "summary",
            "unschedule abc123",
            "skip abc123",
            "config timezone Europe",  # was IsADirectoryError
            "config timezone Europe/Berlin",
            "config summary fri 17:00",
            "config summary off",
            "config channel <#C1|x>",
            "config team-channel <#C1|x>",
            f"config interviewers <@{INTERVIEWER.user_id}>",
        ]
    ),
)

ACTORS = st.sampled_from(
    [INTERVIEWER, Actor(CANDIDATE, is_interviewer=False), Actor(CANDIDATE, is_interviewer=True)]
)


@ENGINE_FUZZ
@given(valid_text | grammar_text, ACTORS)
@example("config timezone Europe", INTERVIEWER)  # was IsADirectoryError
@example(f"schedule <@{CANDIDATE}> 1440m 10000000", INTERVIEWER)
@example(f"extend <@{CANDIDATE}> +24h", INTERVIEWER)
def test_what_the_text_parser_accepts_the_engine_answers(text: str, actor: Actor) -> None:
    command = parse(text)
    if command is not None:
        asyncio.run(engine_run(command, actor))


@ENGINE_FUZZ
@given(
    st.sampled_from(["start", "extend", "schedule"]),
    optional_int,
    optional_int,
    optional_str,
    ACTORS,
)
@example("start", 1440, 10_000_000, None, INTERVIEWER)
@example("schedule", 1440, 10_000_000, "two-sum", INTERVIEWER)
def test_what_the_discord_options_accept_the_engine_answers(
    name: str, minutes: int | None, tokens: int | None, challenge: str | None, actor: Actor
) -> None:
    candidate = SimpleNamespace(id=CANDIDATE, bot=False)
    try:
        if name == "start":
            command = start_command(candidate, minutes, tokens, challenge)
        elif name == "extend":
            command = extend_command(candidate, minutes, tokens)
        else:
            command = schedule_command(candidate, None, None, None, minutes, tokens, challenge)
    except InvalidInput:
        return
    asyncio.run(engine_run(command, actor))
